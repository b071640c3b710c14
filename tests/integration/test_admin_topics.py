"""Topic administration through confluent-kafka's AdminClient and kafka-python's
KafkaAdminClient: CreateTopics with assignments, CreatePartitions, DeleteRecords,
DescribeCluster, DescribeLogDirs, DescribeTopicPartitions, DeleteTopics when disabled."""

from __future__ import annotations

import uuid

import pytest
from admin_support import (
    INVALID_CONFIG,
    INVALID_PARTITIONS,
    INVALID_REPLICA_ASSIGNMENT,
    INVALID_REQUEST,
    OFFSET_OUT_OF_RANGE,
    POLICY_VIOLATION,
    TOPIC_DELETION_DISABLED,
    UNKNOWN_TOPIC_OR_PARTITION,
    confluent_admin,
    consumer,
    create_topic,
    error_code,
    kafka_python_admin,
    produce,
    read_all,
    watermarks,
)
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import NewPartitions, NewTopic
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import OffsetOutOfRangeError, PolicyViolationError

pytestmark = pytest.mark.timeout(60)


def partition_count(bootstrap: str, topic: str) -> int:
    metadata = confluent_admin(bootstrap).list_topics(topic, timeout=10)
    return len(metadata.topics[topic].partitions)


# -- CreateTopics ---------------------------------------------------------------------------------


def test_create_with_replica_assignment_and_config_errors(broker) -> None:
    admin = confluent_admin(broker.bootstrap)

    def create(topic: NewTopic, **options) -> int | None:
        return error_code(admin.create_topics([topic], **options)[topic.topic])

    assert create(NewTopic("assigned", 3, replica_assignment=[[1], [1], [1]])) is None
    assert partition_count(broker.bootstrap, "assigned") == 3
    assert create(NewTopic("to-nowhere", 2, replica_assignment=[[1], [2]])) == (
        INVALID_REPLICA_ASSIGNMENT
    )
    assert create(NewTopic("twice", 1, replica_assignment=[[1, 1]])) == INVALID_REPLICA_ASSIGNMENT
    assert create(NewTopic("odd-config", 1, 1, config={"no.such.config": "1"})) == INVALID_CONFIG
    assert create(NewTopic("bad-value", 1, 1, config={"cleanup.policy": "forever"})) == (
        INVALID_CONFIG
    )
    assert create(NewTopic("dry", 1, replica_assignment=[[1]]), validate_only=True) is None
    assert set(admin.list_topics(timeout=10).topics) == {"assigned"}


def test_kafka_python_create_with_assignments(broker) -> None:
    admin = kafka_python_admin(broker.bootstrap)
    try:
        result = admin.create_topics(
            {
                "kp-assigned": {"assignments": {0: [1], 1: [1]}},
                "kp-bad": {"assignments": {0: [1], 2: [1]}},
                "kp-both": {"num_partitions": 2, "assignments": {0: [1]}},
            },
            raise_errors=False,
        )
        codes = {t["name"]: t["error_code"] for t in result["topics"]}
        assert codes == {
            "kp-assigned": 0,
            "kp-bad": INVALID_REPLICA_ASSIGNMENT,
            "kp-both": INVALID_REQUEST,
        }
        (described,) = admin.describe_topics(["kp-assigned"])
        assert [p["replica_nodes"] for p in described["partitions"]] == [[1], [1]]
    finally:
        admin.close()


def test_delete_topic_disabled(broker_factory) -> None:
    broker = broker_factory(**{"delete.topic.enable": "false"}).start()
    create_topic(broker.bootstrap, "kept")
    admin = confluent_admin(broker.bootstrap)
    assert error_code(admin.delete_topics(["kept"])["kept"]) == TOPIC_DELETION_DISABLED
    assert "kept" in admin.list_topics(timeout=10).topics


# -- CreatePartitions -----------------------------------------------------------------------------


def test_confluent_create_partitions(broker) -> None:
    create_topic(broker.bootstrap, "growing")
    admin = confluent_admin(broker.bootstrap)

    def grow(count: int, **kwargs) -> int | None:
        assignment = kwargs.pop("replica_assignment", None)
        request = (
            NewPartitions("growing", count)
            if assignment is None
            else NewPartitions("growing", count, replica_assignment=assignment)
        )
        return error_code(admin.create_partitions([request], **kwargs)["growing"])

    assert grow(4, validate_only=True) is None
    assert partition_count(broker.bootstrap, "growing") == 1
    assert grow(3) is None
    assert partition_count(broker.bootstrap, "growing") == 3
    assert grow(3) == INVALID_PARTITIONS
    assert grow(2) == INVALID_PARTITIONS
    assert grow(5, replica_assignment=[[1]]) == INVALID_REPLICA_ASSIGNMENT
    assert grow(4, replica_assignment=[[7]]) == INVALID_REPLICA_ASSIGNMENT
    missing = admin.create_partitions([NewPartitions("missing", 2)])["missing"]
    assert error_code(missing) == UNKNOWN_TOPIC_OR_PARTITION

    # The new partitions take writes and serve them back.
    offsets = produce(broker.bootstrap, "growing", [(b"k", b"in new partition")], partition=2)
    assert [m.value() for m in read_all(broker.bootstrap, "growing", offsets[0] + 1, 2)] == [
        b"in new partition"
    ]
    broker.kill()
    broker.start()
    assert partition_count(broker.bootstrap, "growing") == 3


def test_kafka_python_create_partitions(broker) -> None:
    create_topic(broker.bootstrap, "kp-growing")
    admin = kafka_python_admin(broker.bootstrap)
    try:
        result = admin.create_partitions({"kp-growing": 4})
        assert [r.error_code for r in result.results] == [0]
        result = admin.create_partitions({"kp-growing": 2, "kp-missing": 3}, raise_errors=False)
        codes = {r.name: r.error_code for r in result.results}
        assert codes == {"kp-growing": INVALID_PARTITIONS, "kp-missing": UNKNOWN_TOPIC_OR_PARTITION}
    finally:
        admin.close()
    assert partition_count(broker.bootstrap, "kp-growing") == 4


# -- DeleteRecords --------------------------------------------------------------------------------


def test_confluent_delete_records_moves_the_log_start(broker) -> None:
    create_topic(broker.bootstrap, "trimmed")
    offsets = produce(broker.bootstrap, "trimmed", [(None, b"%d" % i) for i in range(10)])
    cut = offsets[5]
    admin = confluent_admin(broker.bootstrap)
    (future,) = admin.delete_records([TopicPartition("trimmed", 0, cut)]).values()
    assert future.result(timeout=15).low_watermark == cut
    assert watermarks(broker.bootstrap, "trimmed") == (cut, offsets[-1] + 1)

    # A consumer asking for a deleted offset gets OFFSET_OUT_OF_RANGE ...
    strict = consumer(broker.bootstrap, reset="error")
    try:
        strict.assign([TopicPartition("trimmed", 0, offsets[0])])
        message = None
        while message is None:
            message = strict.poll(0.2)
        assert message.error() is not None
        assert message.error().code() == KafkaError._AUTO_OFFSET_RESET
    finally:
        strict.close()
    # ... and resetting to the earliest lands on the new log start.
    messages = read_all(broker.bootstrap, "trimmed", offsets[-1] + 1)
    assert [m.offset() for m in messages] == offsets[5:]

    beyond = admin.delete_records([TopicPartition("trimmed", 0, offsets[-1] + 5)])
    assert error_code(next(iter(beyond.values()))) == OFFSET_OUT_OF_RANGE
    # The new log start survives a crash.
    broker.kill()
    broker.start()
    assert watermarks(broker.bootstrap, "trimmed")[0] == cut


def test_delete_records_refused_on_compacted_topic(broker) -> None:
    create_topic(broker.bootstrap, "compacted", configs={"cleanup.policy": "compact"})
    produce(broker.bootstrap, "compacted", [(b"k", b"v")])
    admin = confluent_admin(broker.bootstrap)
    (future,) = admin.delete_records([TopicPartition("compacted", 0, 1)]).values()
    assert error_code(future) == POLICY_VIOLATION


def test_kafka_python_delete_records(broker) -> None:
    create_topic(broker.bootstrap, "kp-trimmed")
    create_topic(broker.bootstrap, "kp-compacted", configs={"cleanup.policy": "compact"})
    offsets = produce(broker.bootstrap, "kp-trimmed", [(None, b"%d" % i) for i in range(6)])
    admin = kafka_python_admin(broker.bootstrap)
    tp = KafkaTopicPartition("kp-trimmed", 0)
    try:
        result = admin.delete_records({tp: offsets[3]})
        assert result[tp]["low_watermark"] == offsets[3]
        with pytest.raises(OffsetOutOfRangeError):
            admin.delete_records({tp: offsets[-1] + 10})
        with pytest.raises(PolicyViolationError):
            admin.delete_records({KafkaTopicPartition("kp-compacted", 0): 1})
    finally:
        admin.close()
    assert watermarks(broker.bootstrap, "kp-trimmed")[0] == offsets[3]


# -- DescribeCluster, DescribeLogDirs, DescribeTopicPartitions ------------------------------------


def test_describe_cluster(broker) -> None:
    admin = confluent_admin(broker.bootstrap)
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=15)
    metadata = admin.list_topics(timeout=10)
    assert cluster.cluster_id == metadata.cluster_id and cluster.cluster_id
    assert cluster.controller.id == 1
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", broker.port)]
    assert cluster.authorized_operations  # no authorizer: everything is allowed

    kp = kafka_python_admin(broker.bootstrap)
    try:
        described = kp.describe_cluster()
    finally:
        kp.close()
    assert described["cluster_id"] == cluster.cluster_id
    assert described["controller_id"] == 1
    assert [b["broker_id"] for b in described["brokers"]] == [1]


def test_describe_log_dirs(broker) -> None:
    create_topic(broker.bootstrap, "sized", partitions=2)
    produce(broker.bootstrap, "sized", [(None, b"x" * 1000)] * 5)
    admin = kafka_python_admin(broker.bootstrap)
    try:
        (entry,) = admin.describe_log_dirs()
        (log_dir,) = entry["log_dirs"]
        only = admin.describe_log_dirs({"sized": [1]})[0]["log_dirs"][0]
    finally:
        admin.close()
    assert entry["broker"] == 1
    assert log_dir["error_code"] == 0
    assert log_dir["log_dir"] == str(broker.data_dir.resolve())
    assert log_dir["total_bytes"] > 0 and log_dir["usable_bytes"] > 0
    sizes = {
        p["partition_index"]: p["partition_size"]
        for t in log_dir["topics"]
        if t["name"] == "sized"
        for p in t["partitions"]
    }
    assert sizes[0] > 5000 and sizes[1] == 0  # data vs. nothing (an election takes no offset)
    assert [
        (t["name"], [p["partition_index"] for p in t["partitions"]]) for t in only["topics"]
    ] == [("sized", [1])]


def test_describe_topic_partitions_pages_with_a_cursor(broker) -> None:
    create_topic(broker.bootstrap, "alpha", partitions=3)
    create_topic(broker.bootstrap, "beta", partitions=2)
    admin = kafka_python_admin(broker.bootstrap)
    try:
        seen: list[tuple[str, int]] = []
        cursor = None
        pages = 0
        while True:
            page = admin.describe_topic_partitions(
                ["beta", "alpha"], response_partition_limit=2, cursor=cursor
            )
            pages += 1
            for topic in page["topics"]:
                assert topic["error_code"] == 0
                assert uuid.UUID(str(topic["topic_id"])).int != 0
                for p in topic["partitions"]:
                    assert (p["leader_id"], p["replica_nodes"], p["isr_nodes"]) == (1, [1], [1])
                    seen.append((topic["name"], p["partition_index"]))
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [("alpha", 0), ("alpha", 1), ("alpha", 2), ("beta", 0), ("beta", 1)]
        assert pages == 3
        missing = admin.describe_topic_partitions(["nope"])["topics"]
        assert [(t["name"], t["error_code"]) for t in missing] == [
            ("nope", UNKNOWN_TOPIC_OR_PARTITION)
        ]
    finally:
        admin.close()
