"""Helpers shared by the admin, config and compaction tests: clients, error codes, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient

QUIET = {"log_level": 3}  # librdkafka: errors only

UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_OUT_OF_RANGE = 1
MESSAGE_TOO_LARGE = 10
NOT_ENOUGH_REPLICAS = 19
INVALID_TOPIC_EXCEPTION = 17
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39
INVALID_CONFIG = 40
INVALID_REQUEST = 42
POLICY_VIOLATION = 44
TOPIC_DELETION_DISABLED = 73
INVALID_RECORD = 87


def confluent_admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **QUIET})


def kafka_python_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)


def error_code(future: Future) -> int | None:
    """The Kafka error code a confluent admin future failed with, or None on success."""
    try:
        future.result(timeout=15)
    except KafkaException as exc:
        return exc.args[0].code()
    return None


def create_topic(
    bootstrap: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    admin = confluent_admin(bootstrap)
    topic = NewTopic(name, partitions, 1, config=configs or {})
    admin.create_topics([topic], operation_timeout=10)[name].result(timeout=15)


def produce(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes | None, bytes | None]],
    partition: int = 0,
    **settings: Any,
) -> list[int]:
    """Offsets the records were written at (delivery reports), in order."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **QUIET, **settings})
    offsets: list[int] = [-1] * len(records)
    errors: list[Any] = []

    def delivered(index: int) -> Callable[[Any, Any], None]:
        def report(err: Any, message: Any) -> None:
            if err is not None:
                errors.append(err)
            else:
                offsets[index] = message.offset()

        return report

    for i, (key, value) in enumerate(records):
        producer.produce(topic, key=key, value=value, partition=partition, on_delivery=delivered(i))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors
    return offsets


def consumer(bootstrap: str, reset: str = "earliest", **settings: Any) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-manual-assignment",
            "enable.auto.commit": False,
            "auto.offset.reset": reset,
            **QUIET,
            **settings,
        }
    )


def read_all(
    bootstrap: str, topic: str, end: int, partition: int = 0, timeout: float = 30.0, **settings: Any
) -> list[Any]:
    """Every message of the partition from the start until offset `end` is reached."""
    c = consumer(bootstrap, **settings)
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        messages = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = c.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
            if message.offset() >= end - 1:
                return messages
        raise AssertionError(f"did not reach offset {end} of {topic}-{partition}")
    finally:
        c.close()


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
