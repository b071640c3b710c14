"""CreateTopics, DeleteTopics and Metadata auto-creation against a real broker process."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

pytestmark = pytest.mark.timeout(60)

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40
INVALID_REQUEST = 42
POLICY_VIOLATION = 44
UNKNOWN_TOPIC_ID = 100
QUIET = {"log_level": 3}  # librdkafka: errors only
BAD_NAMES = ["bad name!", "..", "x" * 250]


def confluent_admin(broker: Any) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})


def kafka_python_admin(broker: Any) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)


def create_error(admin: AdminClient, topic: NewTopic, **options: Any) -> int | None:
    """The Kafka error code CreateTopics answered for `topic`, or None on success."""
    future = admin.create_topics([topic], operation_timeout=10, **options)[topic.topic]
    try:
        future.result(timeout=15)
    except KafkaException as exc:
        return exc.args[0].code()
    return None


def delete_error(admin: AdminClient, name: str) -> int | None:
    future = admin.delete_topics([name], operation_timeout=10)[name]
    try:
        future.result(timeout=15)
    except KafkaException as exc:
        return exc.args[0].code()
    return None


def topic_partitions(admin: AdminClient, name: str) -> dict[int, Any] | None:
    """Partition metadata of `name` (None if the broker does not know it); never auto-creates."""
    metadata = admin.list_topics(timeout=10)
    topic = metadata.topics.get(name)
    return None if topic is None else topic.partitions


def partition_dirs(data_dir: Path, name: str) -> list[str]:
    return sorted(p.name for p in data_dir.glob(f"{name}-*") if p.is_dir())


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **QUIET})
    for value in values:
        producer.produce(topic, value=value, partition=0)
    assert producer.flush(15) == 0


def consume_values(bootstrap: str, topic: str, count: int, timeout: float = 15.0) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-manual-assignment",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **QUIET,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(message.value())
        return values
    finally:
        consumer.close()


# -- CreateTopics -----------------------------------------------------------------------------


def test_confluent_create_topic_with_partitions(broker) -> None:
    admin = confluent_admin(broker)
    assert create_error(admin, NewTopic("orders", num_partitions=3, replication_factor=1)) is None
    partitions = topic_partitions(admin, "orders")
    assert partitions is not None and sorted(partitions) == [0, 1, 2]
    for partition in partitions.values():
        assert partition.leader == 1 and partition.replicas == [1] and partition.isrs == [1]
    assert partition_dirs(broker.data_dir, "orders") == ["orders-0", "orders-1", "orders-2"]
    # Broker defaults (-1) are accepted too.
    assert create_error(admin, NewTopic("defaults")) is None
    assert sorted(topic_partitions(admin, "defaults") or {}) == [0]


def test_confluent_create_errors(broker) -> None:
    admin = confluent_admin(broker)
    assert create_error(admin, NewTopic("dup", 1, 1)) is None
    assert create_error(admin, NewTopic("dup", 2, 1)) == TOPIC_ALREADY_EXISTS
    assert sorted(topic_partitions(admin, "dup") or {}) == [0]  # the first one stands
    for name in BAD_NAMES:
        assert create_error(admin, NewTopic(name, 1, 1)) == INVALID_TOPIC_EXCEPTION, name
    # 249 characters is the longest legal name.
    assert create_error(admin, NewTopic("y" * 249, 1, 1)) is None
    assert create_error(admin, NewTopic("zero", 0, 1)) == INVALID_PARTITIONS
    assert create_error(admin, NewTopic("rf3", 1, 3)) == INVALID_REPLICATION_FACTOR
    assert create_error(admin, NewTopic("badcfg", 1, 1, config={"retention.ms": "soon"})) == (
        INVALID_CONFIG
    )
    names = set(admin.list_topics(timeout=10).topics)
    assert names == {"dup", "y" * 249}
    assert sorted(p.name for p in broker.data_dir.iterdir() if p.is_dir()) == [
        "__cluster_metadata-0",
        "dup-0",
        "y" * 249 + "-0",
    ]


def errors_of(futures: dict[str, Any]) -> dict[str, tuple[int, str] | None]:
    """Each topic's (error code, message), None where it succeeded."""
    found: dict[str, tuple[int, str] | None] = {}
    for name, future in futures.items():
        try:
            future.result(60)
        except KafkaException as exc:
            error = exc.args[0]
            found[name] = (error.code(), error.str())
        else:
            found[name] = None
    return found


def test_one_request_creates_at_most_kafkas_partitions_and_records(broker) -> None:
    """Kafka's controller takes at most 10,000 new partitions and 10,000 metadata records from
    one CreateTopics or CreatePartitions (POLICY_VIOLATION), checked before anything is made:
    a request for 100,000 partitions used to be created, one by one, for minutes."""
    admin = confluent_admin(broker)
    too_many = (POLICY_VIOLATION, "Excessively large number of partitions per request.")
    too_large = (POLICY_VIOLATION, "Unable to perform excessively large batch operation.")
    started = time.monotonic()
    assert errors_of(admin.create_topics([NewTopic("huge", 100_000, 1)])) == {"huge": too_many}
    assert time.monotonic() - started < 10
    # Over the partitions: every topic of the request is refused, the small one too.
    topics = [NewTopic("small", 1, 1), NewTopic("large", 10_000, 1)]
    assert errors_of(admin.create_topics(topics)) == {"small": too_many, "large": too_many}
    # 10,000 partitions are 10,001 records with their topic's.
    assert errors_of(admin.create_topics([NewTopic("even", 10_000, 1)])) == {"even": too_large}
    assert errors_of(admin.create_topics([NewTopic("x", 1, 1), NewTopic("y", 1, 1)])) == {
        "x": None,
        "y": None,
    }
    # Partitions added by one request: the topic that would take it past 10,000 is refused
    # whole, the ones before it stand.
    grow = [NewPartitions("x", 4_001), NewPartitions("y", 6_002)]
    assert errors_of(admin.create_partitions(grow)) == {"x": None, "y": too_large}
    assert len(topic_partitions(admin, "x") or {}) == 4_001
    assert len(topic_partitions(admin, "y") or {}) == 1
    names = set(admin.list_topics(timeout=10).topics)
    assert not names & {"huge", "small", "large", "even"}


def test_confluent_validate_only_does_not_create(broker) -> None:
    admin = confluent_admin(broker)
    assert create_error(admin, NewTopic("dry", 4, 1), validate_only=True) is None
    assert create_error(admin, NewTopic("dry!", 4, 1), validate_only=True) == (
        INVALID_TOPIC_EXCEPTION
    )
    assert create_error(admin, NewTopic("dry", 1, 3), validate_only=True) == (
        INVALID_REPLICATION_FACTOR
    )
    assert topic_partitions(admin, "dry") is None
    assert partition_dirs(broker.data_dir, "dry") == []
    # Validation did not reserve the name.
    assert create_error(admin, NewTopic("dry", 2, 1)) is None
    assert sorted(topic_partitions(admin, "dry") or {}) == [0, 1]


def test_create_with_configs_is_accepted_and_used(broker) -> None:
    admin = confluent_admin(broker)
    topic = NewTopic(
        "configured",
        1,
        1,
        config={"retention.ms": "3600000", "segment.bytes": "1048576", "cleanup.policy": "delete"},
    )
    assert create_error(admin, topic) is None
    produce(broker.bootstrap, "configured", [b"a", b"b"])
    assert consume_values(broker.bootstrap, "configured", 2) == [b"a", b"b"]


def test_kafka_python_create_and_errors(broker) -> None:
    admin = kafka_python_admin(broker)
    try:
        result = admin.create_topics(
            {
                "kp-a": {"num_partitions": 2, "replication_factor": 1},
                "kp-b": {
                    "num_partitions": 1,
                    "replication_factor": 1,
                    "configs": {"retention.ms": "60000"},
                },
            }
        )
        codes = {t["name"]: t["error_code"] for t in result["topics"]}
        assert codes == {"kp-a": 0, "kp-b": 0}

        bad = {
            "kp-a": {"num_partitions": 1, "replication_factor": 1},
            "bad name!": {"num_partitions": 1, "replication_factor": 1},
            "..": {"num_partitions": 1, "replication_factor": 1},
            "x" * 250: {"num_partitions": 1, "replication_factor": 1},
            "kp-zero": {"num_partitions": 0, "replication_factor": 1},
            "kp-rf3": {"num_partitions": 1, "replication_factor": 3},
        }
        result = admin.create_topics(bad, raise_errors=False)
        codes = {t["name"]: t["error_code"] for t in result["topics"]}
        assert codes == {
            "kp-a": TOPIC_ALREADY_EXISTS,
            "bad name!": INVALID_TOPIC_EXCEPTION,
            "..": INVALID_TOPIC_EXCEPTION,
            "x" * 250: INVALID_TOPIC_EXCEPTION,
            "kp-zero": INVALID_PARTITIONS,
            "kp-rf3": INVALID_REPLICATION_FACTOR,
        }

        result = admin.create_topics(
            {"kp-dry": {"num_partitions": 1, "replication_factor": 1}}, validate_only=True
        )
        assert [t["error_code"] for t in result["topics"]] == [0]
        assert sorted(admin.list_topics()) == ["kp-a", "kp-b"]
        described = {t["name"]: t for t in admin.describe_topics(["kp-a"])}
        assert len(described["kp-a"]["partitions"]) == 2
    finally:
        admin.close()


def test_cluster_metadata_topic_cannot_be_created(broker) -> None:
    """Kafka answers INVALID_REQUEST (KAFKA-14358, KAFKA-16975): the name is the metadata log's.

    Clients are made per call so none outlives its use (a failed test keeps its frame alive)."""
    code = create_error(confluent_admin(broker), NewTopic("__cluster_metadata", 1, 1))
    if code is None:
        # What the bug allows: client records land in the metadata log itself.
        produce(broker.bootstrap, "__cluster_metadata", [b"not a metadata record"])
    broker.stop()
    broker.start()
    running = broker.process is not None and broker.process.poll() is None
    assert running, "broker died on restart:\n" + "\n".join(broker.log_lines[-20:])
    assert code == INVALID_REQUEST


def _produce_and_forget(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 500, **QUIET})
    producer.produce(topic, b"not a metadata record", partition=0)
    producer.flush(10)


def test_producer_cannot_auto_create_cluster_metadata_topic(broker) -> None:
    _produce_and_forget(broker.bootstrap, "__cluster_metadata")
    assert topic_partitions(confluent_admin(broker), "__cluster_metadata") is None


def test_topic_names_colliding_on_period_and_underscore(broker) -> None:
    """Kafka refuses 'a.b' when 'a_b' exists (their metric names would clash)."""
    assert create_error(confluent_admin(broker), NewTopic("metrics_topic", 1, 1)) is None
    code = create_error(confluent_admin(broker), NewTopic("metrics.topic", 1, 1))
    assert code == INVALID_TOPIC_EXCEPTION


# -- DeleteTopics -----------------------------------------------------------------------------


def test_confluent_delete_topic(broker) -> None:
    admin = confluent_admin(broker)
    assert create_error(admin, NewTopic("doomed", 2, 1)) is None
    assert create_error(admin, NewTopic("kept", 1, 1)) is None
    produce(broker.bootstrap, "doomed", [b"gone"])
    assert partition_dirs(broker.data_dir, "doomed") == ["doomed-0", "doomed-1"]

    assert delete_error(admin, "doomed") is None
    assert topic_partitions(admin, "doomed") is None
    wait_for(lambda: partition_dirs(broker.data_dir, "doomed") == [], what="dirs removed")
    assert partition_dirs(broker.data_dir, "kept") == ["kept-0"]
    assert delete_error(admin, "doomed") == UNKNOWN_TOPIC_OR_PARTITION
    assert delete_error(admin, "never-existed") == UNKNOWN_TOPIC_OR_PARTITION

    # The name is free again and the new topic starts empty.
    assert create_error(admin, NewTopic("doomed", 1, 1)) is None
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", **QUIET})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition("doomed", 0), timeout=10)
        assert (low, high) == (0, 0)
    finally:
        consumer.close()


def test_kafka_python_delete_topics(broker) -> None:
    admin = kafka_python_admin(broker)
    try:
        admin.create_topics({"kp-del": {"num_partitions": 1, "replication_factor": 1}})
        result = admin.delete_topics(["kp-del", "kp-missing"], raise_errors=False)
        codes = {t["name"]: t["error_code"] for t in result["topics"]}
        assert codes == {"kp-del": 0, "kp-missing": UNKNOWN_TOPIC_OR_PARTITION}
        assert admin.list_topics() == []
        assert partition_dirs(broker.data_dir, "kp-del") == []
    finally:
        admin.close()


def test_kafka_python_delete_by_topic_id(broker) -> None:
    admin = kafka_python_admin(broker)
    try:
        admin.create_topics({"by-id": {"num_partitions": 1, "replication_factor": 1}})
        (described,) = admin.describe_topics(["by-id"])
        topic_id = uuid.UUID(str(described["topic_id"]))
        assert topic_id.int != 0
        unknown = uuid.uuid4()
        result = admin.delete_topics([topic_id, unknown], raise_errors=False)
        codes = {uuid.UUID(str(t["topic_id"])): t["error_code"] for t in result["topics"]}
        assert codes == {topic_id: 0, unknown: UNKNOWN_TOPIC_ID}
        assert admin.list_topics() == []
        assert partition_dirs(broker.data_dir, "by-id") == []
    finally:
        admin.close()


@pytest.mark.parametrize("shutdown", ["stop", "kill"])
def test_topics_survive_restart_and_deletions_stick(broker, shutdown: str) -> None:
    admin = confluent_admin(broker)
    assert create_error(admin, NewTopic("stays", 2, 1)) is None
    assert create_error(admin, NewTopic("goes", 1, 1)) is None
    produce(broker.bootstrap, "stays", [b"one", b"two"])
    assert delete_error(admin, "goes") is None
    getattr(broker, shutdown)()
    broker.start()

    admin = confluent_admin(broker)
    assert sorted(topic_partitions(admin, "stays") or {}) == [0, 1]
    assert topic_partitions(admin, "goes") is None
    assert partition_dirs(broker.data_dir, "goes") == []
    assert consume_values(broker.bootstrap, "stays", 2) == [b"one", b"two"]


# -- Metadata auto-creation -------------------------------------------------------------------


def test_producer_auto_creates_with_num_partitions(broker_factory) -> None:
    broker = broker_factory(**{"num.partitions": "3"}).start()
    produce(broker.bootstrap, "auto-made", [b"hello"])
    admin = confluent_admin(broker)
    partitions = topic_partitions(admin, "auto-made")
    assert partitions is not None and sorted(partitions) == [0, 1, 2]
    assert all(p.leader == 1 for p in partitions.values())
    assert partition_dirs(broker.data_dir, "auto-made") == [
        "auto-made-0",
        "auto-made-1",
        "auto-made-2",
    ]

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        producer.send("kp-auto-made", b"x").get(timeout=15)
    finally:
        producer.close()
    assert sorted(topic_partitions(admin, "kp-auto-made") or {}) == [0, 1, 2]


def test_metadata_without_auto_creation_does_not_create(broker) -> None:
    admin = kafka_python_admin(broker)  # asks with allow_auto_topic_creation=false
    try:
        (described,) = admin.describe_topics(["not-here"])
        assert described["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
        assert admin.list_topics() == []
    finally:
        admin.close()
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        allow_auto_create_topics=False,
        request_timeout_ms=10_000,
    )
    try:
        assert not consumer.partitions_for_topic("also-not-here")
    finally:
        consumer.close()
    assert set(confluent_admin(broker).list_topics(timeout=10).topics) == set()
    assert partition_dirs(broker.data_dir, "not-here") == []


def test_broker_auto_create_disabled(broker_factory) -> None:
    broker = broker_factory(**{"auto.create.topics.enable": "false"}).start()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 500, **QUIET})
    errors: list[KafkaError] = []
    producer.produce("nowhere", b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert len(errors) == 1 and errors[0] is not None
    assert topic_partitions(confluent_admin(broker), "nowhere") is None
