"""ACLs on the data path, with real clients (issue 16), as Kafka's KafkaApis checks them:
producing takes WRITE on the topic (and on the transactional id for transactional batches),
fetching READ, ListOffsets and OffsetForLeaderEpoch DESCRIBE; Metadata hides the topics the
principal may not DESCRIBE and refuses them by name whether they exist or not; auto-creation
takes CREATE; InitProducerId takes WRITE on the transactional id, or for an idempotent
producer IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679). DENY wins over
ALLOW. confluent-kafka and kafka-python for the clients' paths, rafka's wire client where the
exact per-partition answer matters. The super user `admin` creates the topics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from acl_support import acl_broker, admin, allow, as_user, create_topics, deny, unique
from broker_process import BrokerProcess
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType
from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError

from rafka.broker.security.sasl import PLAIN
from rafka.cli.client_security import CURRENT, ClientSecurity
from rafka.cli.kafka_client import Connection
from rafka.protocol.records import build_batch

pytestmark = pytest.mark.timeout(60)

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
INIT_PRODUCER_ID, OFFSET_FOR_LEADER_EPOCH = 22, 23
TOPIC_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED = 29, 31
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
# Kafka's AclOperation codes, as bits of the *_authorized_operations fields.
READ_BIT, DESCRIBE_BIT = 1 << 3, 1 << 8


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = acl_broker(tmp_path_factory.mktemp("acl-clients")).start()
    yield process
    process.kill()


def produce_as(broker: BrokerProcess, user: str, topic: str, *values: bytes, **extra: Any) -> list:
    """Produce with confluent-kafka as `user`: each delivery report's error (None: delivered)."""
    producer = Producer(as_user(broker, user, **extra))
    errors: list = []
    for value in values:
        producer.produce(topic, value, on_delivery=lambda error, _: errors.append(error))
    assert producer.flush(15) == 0
    return errors


def kp_producer(broker: BrokerProcess, user: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=broker.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN", sasl_plain_username=user, sasl_plain_password=f"{user}-secret",
        retries=0, request_timeout_ms=10_000, max_block_ms=10_000,
    )  # fmt: skip


def wire(broker: BrokerProcess, user: str) -> Connection:
    """rafka's wire client, authenticated as `user` (exact requests and answers)."""
    host, port = broker.sasl_bootstrap.rsplit(":", 1)
    token = CURRENT.set(ClientSecurity("SASL_PLAINTEXT", PLAIN, user, f"{user}-secret"))
    try:
        return Connection(host, int(port), "acl-clients-test", 10.0)
    finally:
        CURRENT.reset(token)


def batch(value: bytes, **options: Any) -> bytes:
    return build_batch([(b"k", value, (), int(time.time() * 1000))], **options)


def wire_produce(conn: Connection, batches: dict[str, bytes], transactional_id: str | None = None
                 ) -> dict[str, tuple[int, int]]:  # fmt: skip
    """Produce v9, one batch per topic (partition 0): (error code, base offset) per topic."""
    response = conn.send(
        PRODUCE,
        9,
        {
            "transactional_id": transactional_id,
            "acks": -1,
            "timeout": 10_000,
            "topic_data": [
                {"name": name, "partition_data": [{"index": 0, "records": records}]}
                for name, records in batches.items()
            ],
        },
    )
    return {
        t.name: (p.error_code, p.base_offset)
        for t in response.responses
        for p in t.partition_responses
    }


def wire_fetch(conn: Connection, topic: str) -> tuple[int, bytes]:
    """Fetch v12 of partition 0 from offset 0, without waiting: (error code, records)."""
    response = conn.send(
        FETCH,
        12,
        {
            "replica_id": -1, "max_wait": 0, "min_bytes": 1, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [{
                "partition": 0, "current_leader_epoch": -1, "fetch_offset": 0,
                "last_fetched_epoch": -1, "log_start_offset": -1,
                "partition_max_bytes": 1 << 20,
            }]}],
            "forgotten_topics_data": [], "rack_id": "",
        },
    )  # fmt: skip
    (topic_result,) = response.responses
    (partition,) = topic_result.partitions
    return partition.error_code, bytes(partition.records or b"")


def wire_metadata(conn: Connection, topics: list[str] | None, auto_create: bool = False,
                  version: int = 10) -> Any:  # fmt: skip
    return conn.send(
        METADATA,
        version,
        {
            "topics": None if topics is None else [{"name": n, "topic_id": None} for n in topics],
            "allow_auto_topic_creation": auto_create,
            "include_cluster_authorized_operations": True,
            "include_topic_authorized_operations": True,
        },
    )


def poll_error(consumer: Consumer, timeout: float = 10.0) -> KafkaError:
    """The first error a consumer reports (failing if it consumes instead)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        assert message.error() is not None, "consumed without READ on the topic"
        return message.error()
    raise AssertionError("no error reported")


def poll_values(consumer: Consumer, count: int, timeout: float = 10.0) -> list[bytes]:
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(values) < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None:
            assert message.error() is None, message.error()
            values.append(message.value())
    return values


# -- producing ----------------------------------------------------------------------------------


def test_producing_takes_write_on_the_topic(broker) -> None:
    topic = unique("orders")
    create_topics(broker, topic)
    # DESCRIBE lets the clients find the topic, so the refusal is the Produce request's own.
    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)

    (error,) = produce_as(broker, "alice", topic, b"refused")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    producer = kp_producer(broker, "alice")
    with pytest.raises(TopicAuthorizationFailedError):
        producer.send(topic, b"refused too").get(timeout=10)
    producer.close(timeout=5)

    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.WRITE)
    assert produce_as(broker, "alice", topic, b"one", b"two") == [None, None]
    producer = kp_producer(broker, "alice")
    assert producer.send(topic, b"three").get(timeout=10).offset == 2
    producer.close(timeout=5)


def test_a_produce_request_appends_the_writable_topics_only(broker) -> None:
    writable, refused, absent = unique("ok"), unique("no-write"), unique("absent")
    create_topics(broker, writable, refused)
    allow(broker, "alice", ResourceType.TOPIC, writable, AclOperation.WRITE)
    allow(broker, "alice", ResourceType.TOPIC, refused, AclOperation.READ)
    conn = wire(broker, "alice")
    answers = wire_produce(
        conn, {writable: batch(b"in"), refused: batch(b"out"), absent: batch(b"nowhere")}
    )
    # A topic that does not exist is refused the same way: its existence is not revealed.
    assert answers == {
        writable: (0, 0),
        refused: (TOPIC_AUTHORIZATION_FAILED, -1),
        absent: (TOPIC_AUTHORIZATION_FAILED, -1),
    }
    assert wire_fetch(conn, refused) == (0, b"")  # READ, but nothing was appended
    conn.close()


def test_deny_wins_over_allow(broker) -> None:
    topic = unique("audit")
    create_topics(broker, topic)
    prefix = topic.split("-")[0] + "-"
    allow(broker, "alice", ResourceType.TOPIC, prefix, AclOperation.ALL,
          pattern=ResourcePatternType.PREFIXED)  # fmt: skip
    assert produce_as(broker, "alice", topic, b"allowed") == [None]

    deny(broker, "alice", ResourceType.TOPIC, topic, AclOperation.WRITE)
    (error,) = produce_as(broker, "alice", topic, b"denied")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The DENY is of WRITE only: reading what was written is still allowed.
    conn = wire(broker, "alice")
    code, records = wire_fetch(conn, topic)
    assert code == 0 and b"allowed" in records
    # A DENY of DESCRIBE hides the topic, whatever the ALLOW of ALL says.
    deny(broker, "alice", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
    assert topic not in {t.name for t in wire_metadata(conn, None).topics}
    conn.close()


# -- consuming ----------------------------------------------------------------------------------


def test_fetching_takes_read_on_the_topic(broker) -> None:
    topic = unique("events")
    create_topics(broker, topic)
    assert produce_as(broker, "admin", topic, b"e0", b"e1") == [None, None]
    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
    # confluent-kafka insists on a group.id, and librdkafka looks its coordinator up even for
    # an assigned consumer: DESCRIBE on the group keeps that quiet.
    group = unique("assigned")
    allow(broker, "alice", ResourceType.GROUP, group, AclOperation.DESCRIBE)

    settings = as_user(broker, "alice", **{"group.id": group, "enable.auto.commit": False})
    consumer = Consumer(settings)
    consumer.assign([TopicPartition(topic, 0, 0)])
    assert poll_error(consumer).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    consumer.close()
    conn = wire(broker, "alice")
    assert wire_fetch(conn, topic) == (TOPIC_AUTHORIZATION_FAILED, b"")
    # Not even whether a topic exists.
    assert wire_fetch(conn, unique("absent")) == (TOPIC_AUTHORIZATION_FAILED, b"")

    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.READ)
    consumer = Consumer(settings)
    consumer.assign([TopicPartition(topic, 0, 0)])
    assert poll_values(consumer, 2) == [b"e0", b"e1"]
    consumer.close()
    code, records = wire_fetch(conn, topic)
    assert code == 0 and b"e1" in records
    conn.close()


def test_list_offsets_and_leader_epochs_take_describe(broker) -> None:
    topic = unique("ledger")
    create_topics(broker, topic)
    assert produce_as(broker, "admin", topic, b"x", b"y") == [None, None]
    conn = wire(broker, "alice")

    def list_latest() -> tuple[int, int, int]:
        response = conn.send(
            LIST_OFFSETS,
            8,
            {"replica_id": -1, "isolation_level": 0, "topics": [{"name": topic, "partitions": [
                {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]},
        )  # fmt: skip
        (partition,) = response.topics[0].partitions
        return partition.error_code, partition.offset, partition.leader_epoch

    def epoch_end(epoch: int) -> tuple[int, int]:
        response = conn.send(
            OFFSET_FOR_LEADER_EPOCH,
            4,
            {"replica_id": -1, "topics": [{"topic": topic, "partitions": [
                {"partition": 0, "current_leader_epoch": -1, "leader_epoch": epoch}]}]},
        )  # fmt: skip
        (partition,) = response.topics[0].partitions
        return partition.error_code, partition.end_offset

    assert list_latest() == (TOPIC_AUTHORIZATION_FAILED, -1, -1)
    assert epoch_end(0) == (TOPIC_AUTHORIZATION_FAILED, -1)
    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
    code, offset, epoch = list_latest()
    assert (code, offset) == (0, 2)
    assert epoch_end(epoch) == (0, 2)  # the current epoch ends at the log end
    conn.close()


# -- metadata -----------------------------------------------------------------------------------


def test_metadata_hides_topics_the_principal_may_not_describe(broker) -> None:
    visible, hidden = unique("visible"), unique("hidden")
    create_topics(broker, visible, hidden)
    allow(broker, "alice", ResourceType.TOPIC, visible, AclOperation.READ)

    client = admin(broker, "alice")
    listed = client.list_topics(timeout=10).topics
    assert visible in listed and hidden not in listed
    for name in (hidden, unique("absent")):  # existing or not: the same answer
        answer = client.list_topics(topic=name, timeout=10).topics[name]
        assert answer.error is not None
        assert answer.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    conn = wire(broker, "alice")
    response = wire_metadata(conn, [visible, hidden])
    by_name = {t.name: t for t in response.topics}
    assert by_name[visible].error_code == 0
    assert by_name[visible].topic_authorized_operations == READ_BIT | DESCRIBE_BIT
    assert (by_name[hidden].error_code, list(by_name[hidden].partitions)) == (
        TOPIC_AUTHORIZATION_FAILED,
        [],
    )
    assert by_name[hidden].topic_authorized_operations == -(2**31)  # Kafka's "not computed"
    assert response.cluster_authorized_operations == 0  # no DESCRIBE on the cluster
    everything = {t.name for t in wire_metadata(conn, None).topics}
    assert visible in everything and hidden not in everything
    conn.close()


def test_auto_creation_takes_create_on_the_cluster_or_the_topic(broker) -> None:
    prefix = unique("auto") + "-"
    allow(broker, "alice", ResourceType.TOPIC, prefix, AclOperation.DESCRIBE,
          pattern=ResourcePatternType.PREFIXED)  # fmt: skip
    conn = wire(broker, "alice")
    # She may describe it but not create it: refused, and not created.
    (refused,) = wire_metadata(conn, [prefix + "a"], auto_create=True).topics
    assert refused.error_code == TOPIC_AUTHORIZATION_FAILED
    (unknown,) = wire_metadata(conn, [prefix + "a"]).topics
    assert unknown.error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION: she may know it is absent
    assert unknown.topic_authorized_operations == DESCRIBE_BIT

    allow(broker, "alice", ResourceType.TOPIC, prefix + "a", AclOperation.CREATE)
    (created,) = wire_metadata(conn, [prefix + "a"], auto_create=True).topics
    assert (created.error_code, created.name) == (0, prefix + "a")
    assert len(created.partitions) >= 1
    conn.close()


# -- producer ids -------------------------------------------------------------------------------


def test_a_transactional_producer_needs_write_on_its_transactional_id(broker) -> None:
    topic, transactional_id = unique("payments"), unique("pay-tx")
    create_topics(broker, topic)
    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.WRITE)
    # DESCRIBE lets FindCoordinator through: the refusal is InitProducerId's.
    allow(broker, "alice", ResourceType.TRANSACTIONAL_ID, transactional_id,
          AclOperation.DESCRIBE)  # fmt: skip
    settings = as_user(broker, "alice", **{"transactional.id": transactional_id})
    with pytest.raises(KafkaException) as refused:
        Producer(settings).init_transactions(10)
    assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    conn = wire(broker, "alice")
    init = conn.send(INIT_PRODUCER_ID, 5, {"transactional_id": transactional_id,
                                           "transaction_timeout": 10_000,
                                           "producer_id": -1, "producer_epoch": -1})  # fmt: skip
    assert (init.error_code, init.producer_id) == (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1)
    # Transactional batches under an id she may not write: the whole request is refused,
    # the plain batch of the same request too.
    other = unique("plain")
    create_topics(broker, other)
    allow(broker, "alice", ResourceType.TOPIC, other, AclOperation.WRITE)
    txn_batch = batch(b"t", producer_id=1, producer_epoch=0, base_sequence=0,
                      is_transactional=True)  # fmt: skip
    answers = wire_produce(conn, {topic: txn_batch, other: batch(b"p")}, transactional_id)
    assert answers == {
        topic: (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1),
        other: (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1),
    }
    conn.close()

    allow(broker, "alice", ResourceType.TRANSACTIONAL_ID, transactional_id, AclOperation.WRITE)
    producer = Producer(settings)
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(topic, b"paid")
    producer.commit_transaction(10)


def test_an_idempotent_producer_works_with_write_on_its_topic(broker) -> None:
    topic = unique("metrics")
    create_topics(broker, topic)
    conn = wire(broker, "bob")

    def init_producer_id() -> tuple[int, int]:
        response = conn.send(INIT_PRODUCER_ID, 5, {"transactional_id": None,
                                                   "transaction_timeout": 10_000,
                                                   "producer_id": -1,
                                                   "producer_epoch": -1})  # fmt: skip
        return response.error_code, response.producer_id

    # Neither IDEMPOTENT_WRITE on the cluster nor WRITE on any topic.
    allow(broker, "bob", ResourceType.TOPIC, topic, AclOperation.READ)
    assert init_producer_id() == (CLUSTER_AUTHORIZATION_FAILED, -1)

    # KIP-679: WRITE on some topic is enough.
    allow(broker, "bob", ResourceType.TOPIC, topic, AclOperation.WRITE)
    code, producer_id = init_producer_id()
    assert code == 0 and producer_id >= 0
    conn.close()
    idempotent = {"enable.idempotence": True, "acks": "all"}
    assert produce_as(broker, "bob", topic, b"m0", b"m1", **idempotent) == [None, None]
