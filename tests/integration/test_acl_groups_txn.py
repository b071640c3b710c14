"""ACLs on the group and transaction APIs, with real clients (issue 16), as Kafka's KafkaApis
checks them: consuming in a group takes READ on the group and on the topic; a transactional
producer takes WRITE on its transactional id, and committing offsets in its transaction READ on
the group; DescribeGroups and ListGroups hide the groups the principal may not DESCRIBE. The
brokers' own forms (AddPartitionsToTxn v4+, WriteTxnMarkers) need CLUSTER_ACTION on a client
listener. confluent-kafka for the clients' paths, kafka-python where confluent-kafka hides the
error, rafka's wire client for the brokers' forms. The super user `admin` sets things up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from acl_support import acl_broker, admin, allow, as_user, create_topics, produce, unique
from broker_process import BrokerProcess
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AclOperation, ResourceType
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import (
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)

from rafka.broker.security.sasl import PLAIN
from rafka.cli.client_security import CURRENT, ClientSecurity
from rafka.cli.kafka_client import Connection

pytestmark = pytest.mark.timeout(120)

OFFSET_COMMIT, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 8, 11, 12, 13, 14
ADD_PARTITIONS_TO_TXN, WRITE_TXN_MARKERS, TXN_OFFSET_COMMIT = 24, 27, 28
OFFSET_DELETE, DESCRIBE_PRODUCERS = 47, 61
TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED = 29, 30, 31
TRANSACTIONAL_ID_AUTHORIZATION_FAILED, OPERATION_NOT_ATTEMPTED = 53, 55
NODE_ID = 1  # the single node's default node.id


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = acl_broker(tmp_path_factory.mktemp("acl-groups-txn")).start()
    yield process
    process.kill()


def group_consumer(broker: BrokerProcess, user: str, group: str) -> Consumer:
    return Consumer(
        as_user(
            broker,
            user,
            **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False},
        )
    )


def first_error(consumer: Consumer, timeout: float = 15.0) -> KafkaError:
    """The first error a subscribed consumer reports (failing if it consumes instead)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        assert message.error() is not None, "consumed without the ACLs it needs"
        return message.error()
    raise AssertionError("no error reported")


def kp_admin(broker: BrokerProcess, user: str) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=broker.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN", sasl_plain_username=user, sasl_plain_password=f"{user}-secret",
        request_timeout_ms=10_000,
    )  # fmt: skip


def wire(broker: BrokerProcess, user: str) -> Connection:
    """rafka's wire client, authenticated as `user` (for requests no client library sends)."""
    host, port = broker.sasl_bootstrap.rsplit(":", 1)
    token = CURRENT.set(ClientSecurity("SASL_PLAINTEXT", PLAIN, user, f"{user}-secret"))
    try:
        return Connection(host, int(port), "acl-test", 10.0)
    finally:
        CURRENT.reset(token)


def codes_by_partition(topic_results: Any) -> dict[tuple[str, int], int]:
    return {
        (t.name, p.partition_index): p.partition_error_code
        for t in topic_results
        for p in t.results_by_partition
    }


# -- consuming in a group ---------------------------------------------------------------------


def test_consuming_in_a_group_takes_read_on_the_group_and_the_topic(broker) -> None:
    topic, other, group = unique("orders"), unique("secret"), unique("readers")
    create_topics(broker, topic, other)
    produce(broker, topic, 5)
    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.READ)

    # READ on the topic only: the group refuses her (FindCoordinator already says so).
    consumer = group_consumer(broker, "alice", group)
    consumer.subscribe([topic])
    assert first_error(consumer).code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    consumer.close()

    # READ on the group but nothing on the other topic: TOPIC_AUTHORIZATION_FAILED, for the
    # subscription, for committing its offsets and for fetching them.
    allow(broker, "alice", ResourceType.GROUP, group, AclOperation.READ)
    consumer = group_consumer(broker, "alice", group)
    consumer.subscribe([other])
    assert first_error(consumer).code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as refused:
        consumer.commit(offsets=[TopicPartition(other, 0, 1)], asynchronous=False)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    (fetched,) = consumer.committed([TopicPartition(other, 0)], 10)
    assert fetched.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    consumer.close()

    # Both: she consumes and commits.
    consumer = group_consumer(broker, "alice", group)
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(values) < 5 and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None:
            assert message.error() is None, message.error()
            values.append(message.value())
    assert values == [f"m{i}".encode() for i in range(5)]
    consumer.commit(asynchronous=False)
    (committed,) = consumer.committed([TopicPartition(topic, 0)], 10)
    assert (committed.error, committed.offset) == (None, 5)
    consumer.close()


def test_group_requests_without_read_on_the_group_are_refused(broker) -> None:
    """What a consumer never gets to send once FindCoordinator has refused it, sent anyway:
    every group request answers GROUP_AUTHORIZATION_FAILED, OffsetCommit for each partition,
    and a group-less OffsetDelete (which takes DELETE) as its top-level error."""
    topic, group = unique("t"), unique("g")
    create_topics(broker, topic)
    allow(broker, "bob", ResourceType.TOPIC, topic, AclOperation.READ)
    conn = wire(broker, "bob")
    member = {"group_id": group, "generation_id": 1, "member_id": "m", "group_instance_id": None}
    joined = conn.send(
        JOIN_GROUP,
        5,
        {
            **member,
            "session_timeout": 10000,
            "rebalance_timeout": 10000,
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}],
        },
    )
    assert (joined.error_code, joined.member_id, joined.generation_id) == (
        GROUP_AUTHORIZATION_FAILED,
        "",
        -1,
    )
    synced = conn.send(
        SYNC_GROUP,
        3,
        {**member, "assignments": []},
    )
    assert (synced.error_code, bytes(synced.assignment)) == (GROUP_AUTHORIZATION_FAILED, b"")
    assert conn.send(HEARTBEAT, 3, member).error_code == GROUP_AUTHORIZATION_FAILED
    left = conn.send(
        LEAVE_GROUP,
        3,
        {"group_id": group, "members": [{"member_id": "m", "group_instance_id": None}]},
    )
    assert (left.error_code, list(left.members)) == (GROUP_AUTHORIZATION_FAILED, [])
    partition = {"partition_index": 0, "committed_offset": 1, "committed_leader_epoch": -1,
                 "committed_metadata": ""}  # fmt: skip
    committed = conn.send(
        OFFSET_COMMIT,
        8,
        {
            "group_id": group,
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "group_instance_id": None,
            "topics": [{"name": topic, "partitions": [partition]}],
        },
    )
    assert [p.error_code for t in committed.topics for p in t.partitions] == [
        GROUP_AUTHORIZATION_FAILED
    ]
    deleted = conn.send(
        OFFSET_DELETE,
        0,
        {"group_id": group, "topics": [{"name": topic, "partitions": [{"partition_index": 0}]}]},
    )
    assert (deleted.error_code, list(deleted.topics)) == (GROUP_AUTHORIZATION_FAILED, [])
    # TxnOffsetCommit checks the transactional id first, then the group.
    transactional_id = unique("bob-tx")
    allow(broker, "bob", ResourceType.TRANSACTIONAL_ID, transactional_id, AclOperation.WRITE)
    for txn_id, expected in (
        (unique("not-bobs"), TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        (transactional_id, GROUP_AUTHORIZATION_FAILED),
    ):
        response = conn.send(
            TXN_OFFSET_COMMIT,
            3,
            {
                "transactional_id": txn_id,
                "group_id": group,
                "producer_id": 1,
                "producer_epoch": 0,
                "generation_id": -1,
                "member_id": "",
                "group_instance_id": None,
                "topics": [{"name": topic, "partitions": [partition]}],
            },
        )
        assert [p.error_code for t in response.topics for p in t.partitions] == [expected]
    conn.close()


# -- transactions ----------------------------------------------------------------------------


def test_a_transactional_producer_takes_write_on_its_transactional_id(broker) -> None:
    topic, denied_topic, group = unique("ledger"), unique("audit"), unique("txn-readers")
    create_topics(broker, topic, denied_topic)
    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.WRITE)
    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.READ)

    # No ACL on the transactional id: fatal at init (its coordinator is not even named).
    producer = Producer(as_user(broker, "alice", **{"transactional.id": unique("tx-denied")}))
    with pytest.raises(KafkaException) as refused:
        producer.init_transactions(10)
    error = refused.value.args[0]
    assert (error.code(), error.fatal()) == (
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        True,
    )

    transactional_id = unique("tx")
    allow(broker, "alice", ResourceType.TRANSACTIONAL_ID, transactional_id, AclOperation.WRITE)
    producer = Producer(as_user(broker, "alice", **{"transactional.id": transactional_id}))
    producer.init_transactions(10)
    metadata = group_consumer(broker, "alice", group).consumer_group_metadata()

    # Offsets in the transaction without READ on the group: AddOffsetsToTxn refuses.
    producer.begin_transaction()
    producer.produce(topic, b"first")
    assert producer.flush(10) == 0
    with pytest.raises(KafkaException) as refused:
        producer.send_offsets_to_transaction([TopicPartition(topic, 0, 1)], metadata, 10)
    assert refused.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    producer.abort_transaction(10)

    allow(broker, "alice", ResourceType.GROUP, group, AclOperation.READ)
    producer.begin_transaction()
    producer.produce(topic, b"second")
    producer.send_offsets_to_transaction([TopicPartition(topic, 0, 1)], metadata, 10)
    producer.commit_transaction(10)
    checker = group_consumer(broker, "admin", group)
    (committed,) = checker.committed([TopicPartition(topic, 0)], 10)
    checker.close()
    assert committed.offset == 1

    # A topic she may see but not write: AddPartitionsToTxn refuses it (abortable; the
    # transaction has a partition already, so there is something to abort).
    allow(broker, "alice", ResourceType.TOPIC, denied_topic, AclOperation.DESCRIBE)
    producer.begin_transaction()
    producer.produce(topic, b"third")
    assert producer.flush(10) == 0
    producer.produce(denied_topic, b"nope")
    with pytest.raises(KafkaException) as refused:
        producer.flush(10)
        producer.commit_transaction(10)
    error = refused.value.args[0]
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert error.txn_requires_abort()
    producer.abort_transaction(10)


def test_add_partitions_fails_the_refused_topic_and_attempts_no_other(broker) -> None:
    """AddPartitionsToTxn v3 as Kafka answers it: TOPIC_AUTHORIZATION_FAILED for the topic
    without WRITE, OPERATION_NOT_ATTEMPTED for the rest; without WRITE on the transactional id
    every partition carries TRANSACTIONAL_ID_AUTHORIZATION_FAILED."""
    allowed, refused = unique("ok"), unique("denied")
    create_topics(broker, allowed, refused)
    allow(broker, "bob", ResourceType.TOPIC, allowed, AclOperation.WRITE)
    transactional_id = unique("bob-tx")
    allow(broker, "bob", ResourceType.TRANSACTIONAL_ID, transactional_id, AclOperation.WRITE)
    conn = wire(broker, "bob")

    def add(txn_id: str) -> dict[tuple[str, int], int]:
        response = conn.send(
            ADD_PARTITIONS_TO_TXN,
            3,
            {
                "v3_and_below_transactional_id": txn_id,
                "v3_and_below_producer_id": 1,
                "v3_and_below_producer_epoch": 0,
                "v3_and_below_topics": [
                    {"name": allowed, "partitions": [0]},
                    {"name": refused, "partitions": [0]},
                ],
            },
        )
        return codes_by_partition(response.results_by_topic_v3_and_below)

    assert add(transactional_id) == {
        (allowed, 0): OPERATION_NOT_ATTEMPTED,
        (refused, 0): TOPIC_AUTHORIZATION_FAILED,
    }
    assert set(add(unique("not-bobs")).values()) == {TRANSACTIONAL_ID_AUTHORIZATION_FAILED}

    # The brokers' own forms, on a client listener: CLUSTER_ACTION, which bob lacks.
    batched = conn.send(
        ADD_PARTITIONS_TO_TXN,
        4,
        {
            "transactions": [
                {
                    "transactional_id": transactional_id,
                    "producer_id": 1,
                    "producer_epoch": 0,
                    "verify_only": True,
                    "topics": [{"name": allowed, "partitions": [0]}],
                }
            ]
        },
    )
    assert (batched.error_code, list(batched.results_by_transaction)) == (
        CLUSTER_AUTHORIZATION_FAILED,
        [],
    )
    markers = conn.send(
        WRITE_TXN_MARKERS,
        1,
        {
            "markers": [
                {
                    "producer_id": 1,
                    "producer_epoch": 0,
                    "transaction_result": True,
                    "topics": [{"name": allowed, "partition_indexes": [0]}],
                    "coordinator_epoch": 0,
                }
            ]
        },
    )
    (marker,) = markers.markers
    assert [p.error_code for t in marker.topics for p in t.partitions] == [
        CLUSTER_AUTHORIZATION_FAILED
    ]
    producers = conn.send(
        DESCRIBE_PRODUCERS, 0, {"topics": [{"name": refused, "partition_indexes": [0]}]}
    )
    assert producers.topics[0].partitions[0].error_code == TOPIC_AUTHORIZATION_FAILED
    conn.close()


def test_transactions_are_described_and_listed_only_with_describe(broker) -> None:
    topic = unique("events")
    create_topics(broker, topic)
    mine, theirs = unique("tx-mine"), unique("tx-theirs")
    for transactional_id in (mine, theirs):  # both open, as the super user
        producer = Producer(as_user(broker, "admin", **{"transactional.id": transactional_id}))
        producer.init_transactions(10)
        producer.begin_transaction()
        producer.produce(topic, b"open")
        assert producer.flush(10) == 0
    allow(broker, "bob", ResourceType.TRANSACTIONAL_ID, mine, AclOperation.DESCRIBE)

    bob = kp_admin(broker, "bob")
    listed = {t.transactional_id for ts in bob.list_transactions().values() for t in ts}
    assert mine in listed and theirs not in listed
    described = bob.describe_transactions([mine])[mine]
    # The transaction's partitions are shown only for topics bob may DESCRIBE.
    assert described.state == "Ongoing" and not described.topic_partitions
    with pytest.raises(TransactionalIdAuthorizationFailedError):
        bob.describe_transactions([theirs])
    bob.close()


# -- describing and listing groups ------------------------------------------------------------


def test_groups_without_describe_are_hidden(broker) -> None:
    seen, hidden, shown, secret = unique("seen"), unique("hidden"), unique("t"), unique("t")
    create_topics(broker, shown, secret)
    for group in (seen, hidden):
        consumer = group_consumer(broker, "admin", group)
        consumer.commit(
            offsets=[TopicPartition(shown, 0, 3), TopicPartition(secret, 0, 4)],
            asynchronous=False,
        )
        consumer.close()
    allow(broker, "alice", ResourceType.GROUP, seen, AclOperation.DESCRIBE)
    allow(broker, "alice", ResourceType.TOPIC, shown, AclOperation.DESCRIBE)

    # confluent-kafka: ListGroups leaves the group out, DescribeGroups refuses it.
    client = admin(broker, "alice")
    listed = {g.group_id for g in client.list_consumer_groups().result(10).valid}
    assert seen in listed and hidden not in listed
    futures = client.describe_consumer_groups([seen, hidden], include_authorized_operations=True)
    assert futures[seen].result(10).authorized_operations == [AclOperation.DESCRIBE]
    with pytest.raises(KafkaException) as refused:
        futures[hidden].result(10)
    assert refused.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED

    # kafka-python shows the errors confluent-kafka folds away. DescribeGroups itself (not
    # only FindCoordinator) answers GROUP_AUTHORIZATION_FAILED per group.
    alice = kp_admin(broker, "alice")
    with pytest.raises(GroupAuthorizationFailedError):
        alice.describe_groups([hidden])
    (entry,) = alice.describe_groups([hidden], group_coordinator_id=NODE_ID).values()
    assert "GroupAuthorizationFailedError" in entry["error"] and entry["members"] == []
    # OffsetFetch: the offsets of a topic she may not DESCRIBE are left out of "all", and
    # refused when asked for by name.
    offsets = alice.list_group_offsets({seen: None})[seen]
    assert {tp.topic: o.offset for tp, o in offsets.items()} == {shown: 3}
    with pytest.raises(TopicAuthorizationFailedError):
        alice.list_group_offsets({seen: [KpTopicPartition(secret, 0)]})
    # Deleting takes DELETE.
    assert alice.delete_groups([seen]) == {seen: "GroupAuthorizationFailedError"}
    alice.close()

    # The super user sees both groups and every group operation.
    root = kp_admin(broker, "admin")
    assert {seen, hidden} <= {g["group_id"] for g in root.list_groups()}
    described = root.describe_groups([seen], include_authorized_operations=True)[seen]
    assert set(described["authorized_operations"]) == {
        "READ", "DELETE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
    }  # fmt: skip
    root.close()

    # DESCRIBE on the cluster lists every group, as in Kafka.
    allow(broker, "bob", ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE)
    client = admin(broker, "bob")  # kept until the future is done
    listed = {g.group_id for g in client.list_consumer_groups().result(10).valid}
    assert {seen, hidden} <= listed
