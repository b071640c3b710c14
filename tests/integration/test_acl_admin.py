"""Authorization of the admin APIs with real clients, as Kafka's brokers and controller check
it (issue 16): creating topics (CREATE on the cluster or the topic), deleting them without
revealing what may not be described, topic and broker configs, partitions, records, the
cluster's description, SCRAM users. `alice` starts with no ACL; `admin` is a super user."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

import pytest
from acl_support import acl_broker, admin, allow, as_user, delete_all
from admin_support import error_code
from broker_process import BrokerProcess
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import (
    AclOperation,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka import KafkaAdminClient
from kafka.errors import ClusterAuthorizationFailedError
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.create_topics.v7.response import CreateTopicsResponse
from kio.schema.delete_topics.v6.request import DeleteTopicsRequest, DeleteTopicState
from kio.schema.delete_topics.v6.response import DeleteTopicsResponse
from kio.schema.describe_topic_partitions.v0.request import (
    DescribeTopicPartitionsRequest,
    TopicRequest,
)
from kio.schema.describe_topic_partitions.v0.response import DescribeTopicPartitionsResponse
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_authenticate.v2.response import SaslAuthenticateResponse
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest
from kio.schema.sasl_handshake.v1.response import SaslHandshakeResponse
from kio.static.primitive import i32
from raw_client import RawClient

pytestmark = pytest.mark.timeout(90)

TOPIC_AUTHORIZATION_FAILED = 29
CLUSTER_AUTHORIZATION_FAILED = 31
UNKNOWN_TOPIC_OR_PARTITION = 3
CLUSTER = "kafka-cluster"
DESCRIBE_BIT = 1 << 8  # Kafka's authorized-operations bit field: bit n for operation code n


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the module: a start per test would multiply the run time."""
    broker = acl_broker(tmp_path_factory.mktemp("acl-admin") / "data").start()
    yield broker
    broker.kill()


@pytest.fixture
def broker(shared: BrokerProcess) -> Iterator[BrokerProcess]:
    """The shared broker, its ACLs removed after each test so that none leaks into the next."""
    yield shared
    delete_all(shared)


def result(future: Future) -> Any:
    return future.result(timeout=20)


def create(broker: BrokerProcess, user: str, name: str, partitions: int = 1) -> int | None:
    client = admin(broker, user)  # kept until the future is done: destroying it fails it
    (future,) = client.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10).values()
    return error_code(future)


def delete(broker: BrokerProcess, user: str, name: str) -> int | None:
    client = admin(broker, user)
    (future,) = client.delete_topics([name], operation_timeout=10).values()
    return error_code(future)


def describe_configs(broker: BrokerProcess, user: str, kind: ResourceType, name: str) -> int | None:
    client = admin(broker, user)
    (future,) = client.describe_configs([ConfigResource(kind, name)]).values()
    return error_code(future)


def set_config(broker: BrokerProcess, user: str, kind: ResourceType, name: str,
               key: str, value: str) -> int | None:  # fmt: skip
    entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
    client = admin(broker, user)
    (future,) = client.incremental_alter_configs(
        [ConfigResource(kind, name, incremental_configs=[entry])]
    ).values()
    return error_code(future)


def replace_configs(broker: BrokerProcess, user: str, kind: ResourceType, name: str) -> int | None:
    """Legacy AlterConfigs (the resource's whole set of overrides)."""
    client = admin(broker, user)
    resource = ConfigResource(kind, name, set_config={"retention.ms": "120000"})
    (future,) = client.alter_configs([resource]).values()
    return error_code(future)


def raw_as(broker: BrokerProcess, user: str) -> RawClient:
    """A raw connection authenticated with SASL PLAIN, for what the admin clients do not show
    (a CreateTopics answer's configs, DeleteTopics by topic id, DescribeTopicPartitions)."""
    client = RawClient(broker.sasl_bootstrap)  # type: ignore[attr-defined]
    handshake = client.request(SaslHandshakeRequest(mechanism="PLAIN"), SaslHandshakeResponse)
    assert handshake.error_code == 0
    token = f"\0{user}\0{user}-secret".encode()
    answer = client.request(SaslAuthenticateRequest(auth_bytes=token), SaslAuthenticateResponse)
    assert answer.error_code == 0
    return client


def raw_create(client: RawClient, name: str, validate_only: bool = False) -> Any:
    topic = CreatableTopic(name=name, num_partitions=i32(1), replication_factor=1,
                           assignments=(), configs=())  # fmt: skip
    request = CreateTopicsRequest(topics=(topic,), timeout=timedelta(seconds=10),
                                  validate_only=validate_only)  # fmt: skip
    (created,) = client.request(request, CreateTopicsResponse).topics
    return created


def raw_delete_by_id(client: RawClient, topic_id: uuid.UUID) -> Any:
    request = DeleteTopicsRequest(topics=(DeleteTopicState(name=None, topic_id=topic_id),),
                                  timeout=timedelta(seconds=10))  # fmt: skip
    (deleted,) = client.request(request, DeleteTopicsResponse).responses
    return deleted


def kafka_python_as(broker: BrokerProcess, user: str) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=broker.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",  # type: ignore[attr-defined]
        sasl_mechanism="PLAIN", sasl_plain_username=user, sasl_plain_password=f"{user}-secret",
        request_timeout_ms=10_000,
    )  # fmt: skip


# -- topics -------------------------------------------------------------------------------------


def test_creating_a_topic_needs_create_on_the_cluster_or_the_topic(broker) -> None:
    assert create(broker, "alice", "orders") == TOPIC_AUTHORIZATION_FAILED
    allow(broker, "alice", ResourceType.TOPIC, "alice-", AclOperation.CREATE,
          pattern=ResourcePatternType.PREFIXED)  # fmt: skip
    assert create(broker, "alice", "alice-orders") is None
    assert create(broker, "alice", "orders") == TOPIC_AUTHORIZATION_FAILED

    # Created, but the configs and layout are shown only with DESCRIBE_CONFIGS on the topic.
    with raw_as(broker, "alice") as client:
        hidden = raw_create(client, "alice-hidden", validate_only=True)
        assert (hidden.error_code, hidden.topic_config_error_code) == (0, 29)
        assert (hidden.num_partitions, hidden.configs) == (-1, ())
        allow(broker, "alice", ResourceType.TOPIC, "alice-hidden", AclOperation.DESCRIBE_CONFIGS)
        shown = raw_create(client, "alice-hidden", validate_only=True)
        assert (shown.error_code, shown.topic_config_error_code, shown.num_partitions) == (0, 0, 1)
        assert "retention.ms" in {config.name for config in shown.configs}

    allow(broker, "alice", ResourceType.BROKER, CLUSTER, AclOperation.CREATE)
    assert create(broker, "alice", "orders") is None


def test_deleting_a_topic_reveals_nothing_that_may_not_be_described(broker) -> None:
    with raw_as(broker, "admin") as client:
        topic_id = raw_create(client, "doomed").topic_id
    # No ACL: refused alike whether the topic exists or not.
    assert delete(broker, "alice", "doomed") == TOPIC_AUTHORIZATION_FAILED
    assert delete(broker, "alice", "ghost") == TOPIC_AUTHORIZATION_FAILED
    allow(broker, "alice", ResourceType.TOPIC, "ghost", AclOperation.DESCRIBE)
    assert delete(broker, "alice", "ghost") == UNKNOWN_TOPIC_OR_PARTITION

    # By topic id: the name stays hidden until the topic may be described.
    with raw_as(broker, "alice") as client:
        refused = raw_delete_by_id(client, topic_id)
        assert (refused.name, refused.error_code) == (None, TOPIC_AUTHORIZATION_FAILED)
        allow(broker, "alice", ResourceType.TOPIC, "doomed", AclOperation.DESCRIBE)
        refused = raw_delete_by_id(client, topic_id)
        assert (refused.name, refused.error_code) == ("doomed", TOPIC_AUTHORIZATION_FAILED)

    allow(broker, "alice", ResourceType.TOPIC, "doomed", AclOperation.DELETE)
    assert delete(broker, "alice", "doomed") is None
    assert create(broker, "admin", "doomed-too") is None
    allow(broker, "alice", ResourceType.BROKER, CLUSTER, AclOperation.DELETE)
    assert delete(broker, "alice", "doomed-too") is None


def test_describe_topic_partitions_shows_only_what_may_be_described(broker) -> None:
    for name in ("dtp-open", "dtp-secret"):
        assert create(broker, "admin", name) is None
    allow(broker, "alice", ResourceType.TOPIC, "dtp-open", AclOperation.DESCRIBE)
    wanted = tuple(TopicRequest(name=n) for n in ("dtp-ghost", "dtp-open", "dtp-secret"))
    request = DescribeTopicPartitionsRequest(topics=wanted, response_partition_limit=i32(100),
                                             cursor=None)  # fmt: skip
    with raw_as(broker, "alice") as client:
        topics = client.request(request, DescribeTopicPartitionsResponse).topics
    by_name = {t.name: t for t in topics}
    assert by_name["dtp-open"].error_code == 0
    assert by_name["dtp-open"].topic_authorized_operations == DESCRIBE_BIT
    assert by_name["dtp-secret"].error_code == TOPIC_AUTHORIZATION_FAILED
    assert by_name["dtp-ghost"].error_code == TOPIC_AUTHORIZATION_FAILED  # not "unknown"
    assert by_name["dtp-secret"].topic_id is None  # the zero uuid, as kio reads it


# -- configs ------------------------------------------------------------------------------------


def test_topic_configs_need_describe_configs_and_alter_configs_on_the_topic(broker) -> None:
    assert create(broker, "admin", "conf") is None
    topic = ResourceType.TOPIC
    assert describe_configs(broker, "alice", topic, "conf") == TOPIC_AUTHORIZATION_FAILED
    assert set_config(broker, "alice", topic, "conf", "retention.ms", "60000") == (
        TOPIC_AUTHORIZATION_FAILED
    )
    allow(broker, "alice", topic, "conf", AclOperation.DESCRIBE_CONFIGS)
    assert describe_configs(broker, "alice", topic, "conf") is None
    assert set_config(broker, "alice", topic, "conf", "retention.ms", "60000") == (
        TOPIC_AUTHORIZATION_FAILED
    )
    assert replace_configs(broker, "alice", topic, "conf") == TOPIC_AUTHORIZATION_FAILED
    allow(broker, "alice", topic, "conf", AclOperation.ALTER_CONFIGS)
    assert set_config(broker, "alice", topic, "conf", "retention.ms", "60000") is None
    assert replace_configs(broker, "alice", topic, "conf") is None


def test_broker_configs_need_the_cluster(broker) -> None:
    kind = ResourceType.BROKER
    assert describe_configs(broker, "alice", kind, "1") == CLUSTER_AUTHORIZATION_FAILED
    assert set_config(broker, "alice", kind, "1", "log.retention.ms", "3600000") == (
        CLUSTER_AUTHORIZATION_FAILED
    )
    allow(broker, "alice", ResourceType.BROKER, CLUSTER, AclOperation.DESCRIBE_CONFIGS)
    assert describe_configs(broker, "alice", kind, "1") is None
    assert set_config(broker, "alice", kind, "1", "log.retention.ms", "3600000") == (
        CLUSTER_AUTHORIZATION_FAILED
    )
    assert replace_configs(broker, "alice", kind, "1") == CLUSTER_AUTHORIZATION_FAILED
    allow(broker, "alice", ResourceType.BROKER, CLUSTER, AclOperation.ALTER_CONFIGS)
    assert set_config(broker, "alice", kind, "1", "log.retention.ms", "3600000") is None


# -- partitions and records ---------------------------------------------------------------------


def test_creating_partitions_needs_alter_on_the_topic(broker) -> None:
    assert create(broker, "admin", "grow") is None

    def grow(name: str, count: int) -> int | None:
        client = admin(broker, "alice")
        (future,) = client.create_partitions([NewPartitions(name, count)]).values()
        return error_code(future)

    assert grow("grow", 2) == TOPIC_AUTHORIZATION_FAILED
    assert grow("nowhere", 2) == TOPIC_AUTHORIZATION_FAILED  # existence not revealed
    allow(broker, "alice", ResourceType.TOPIC, "grow", AclOperation.ALTER)
    assert grow("grow", 2) is None


def test_deleting_records_needs_delete_on_the_topic(broker) -> None:
    assert create(broker, "admin", "trim") is None
    producer = Producer(as_user(broker, "admin"))
    for n in range(5):
        producer.produce("trim", f"r{n}".encode())
    assert producer.flush(20) == 0

    client = admin(broker, "alice")  # kept until its futures are done

    def trim(offset: int) -> Future:
        (future,) = client.delete_records([TopicPartition("trim", 0, offset)]).values()
        return future

    # DESCRIBE lets the client find the leader; deleting needs DELETE.
    allow(broker, "alice", ResourceType.TOPIC, "trim", AclOperation.DESCRIBE)
    assert error_code(trim(3)) == TOPIC_AUTHORIZATION_FAILED
    allow(broker, "alice", ResourceType.TOPIC, "trim", AclOperation.DELETE)
    assert result(trim(3)).low_watermark == 3


# -- the cluster --------------------------------------------------------------------------------


def test_describe_cluster_reports_the_operations_allowed(broker) -> None:
    # kafka-python sends DescribeCluster (confluent-kafka asks Metadata instead).
    client = kafka_python_as(broker, "alice")
    try:
        # Nothing refused, but without DESCRIBE on the cluster no operation is reported.
        described = client.describe_cluster()
        assert described["brokers"] and described["authorized_operations"] == []
        allow(broker, "alice", ResourceType.BROKER, CLUSTER, AclOperation.DESCRIBE)
        assert client.describe_cluster()["authorized_operations"] == ["DESCRIBE"]
        allow(broker, "alice", ResourceType.BROKER, CLUSTER, AclOperation.ALTER_CONFIGS)
        operations = client.describe_cluster()["authorized_operations"]
        assert sorted(operations) == ["ALTER_CONFIGS", "DESCRIBE", "DESCRIBE_CONFIGS"]
    finally:
        client.close()


def test_log_dirs_and_the_quorum_need_describe_on_the_cluster(broker) -> None:
    client = kafka_python_as(broker, "alice")
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            client.describe_metadata_quorum()
        allow(broker, "alice", ResourceType.BROKER, CLUSTER, AclOperation.DESCRIBE)
        assert client.describe_metadata_quorum()
        assert client.describe_log_dirs()
    finally:
        client.close()


def test_altering_scram_users_needs_alter_on_the_cluster(broker) -> None:
    def upsert() -> int | None:
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192)
        change = UserScramCredentialUpsertion("bob", info, b"bob-scram-secret")
        client = admin(broker, "alice")
        (future,) = client.alter_user_scram_credentials([change]).values()
        return error_code(future)

    assert upsert() == CLUSTER_AUTHORIZATION_FAILED
    # kafka-python raises the describe's top-level error (confluent-kafka's hides it).
    client = kafka_python_as(broker, "alice")
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            client.describe_user_scram_credentials()
        allow(broker, "alice", ResourceType.BROKER, CLUSTER, AclOperation.ALTER)
        assert upsert() is None
        assert client.describe_user_scram_credentials()  # ALTER implies DESCRIBE
    finally:
        client.close()
