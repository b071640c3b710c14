"""Segment rolling and retention as a running broker applies them, observed through clients."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition

from rafka.protocol.records import iter_batch_headers

pytestmark = pytest.mark.timeout(60)

QUIET = {"log_level": 3}  # librdkafka: errors only
SEGMENT_BYTES = 16384
RETENTION_BYTES = 3 * SEGMENT_BYTES
CHECK_INTERVAL = {"log.retention.check.interval.ms": "200"}
VALUE = b"r" * 1000


def create_topic(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    admin.create_topics([NewTopic(name, 1, 1, config=configs)])[name].result(timeout=10)


def produce(bootstrap: str, topic: str, count: int) -> None:
    # Small batches, so a segment holds several of them and rolls on size.
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 2, "batch.size": 4096, **QUIET}
    )
    for i in range(count):
        producer.produce(topic, value=VALUE, key=b"%d" % i, partition=0)
        producer.poll(0)
    assert producer.flush(15) == 0


def segment_bases(data_dir: Path, topic: str) -> list[int]:
    return sorted(int(p.stem) for p in (data_dir / f"{topic}-0").glob("*.log"))


def segment_sizes(data_dir: Path, topic: str) -> dict[int, int]:
    """Base offset -> bytes of every segment file (skipping one deleted while listing)."""
    sizes = {}
    for path in (data_dir / f"{topic}-0").glob("*.log"):
        try:
            sizes[int(path.stem)] = path.stat().st_size
        except FileNotFoundError:
            continue
    return sizes


def list_offset(bootstrap: str, topic: str, spec: OffsetSpec) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    (future,) = admin.list_offsets({TopicPartition(topic, 0): spec}, request_timeout=10).values()
    return future.result(timeout=15).offset


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def first_message(consumer: Consumer, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        return message
    raise AssertionError("no message or error within the deadline")


def make_consumer(bootstrap: str, reset: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-manual-assignment",
            "enable.auto.commit": False,
            "auto.offset.reset": reset,
            **QUIET,
        }
    )


def test_size_retention_deletes_rolled_segments(broker_factory) -> None:
    broker = broker_factory(**CHECK_INTERVAL).start()
    topic = "by-size"
    create_topic(
        broker.bootstrap,
        topic,
        {"segment.bytes": str(SEGMENT_BYTES), "retention.bytes": str(RETENTION_BYTES)},
    )
    produce(broker.bootstrap, topic, 200)  # ~200 KB: a dozen segments
    end = list_offset(broker.bootstrap, topic, OffsetSpec.latest())
    assert end == 200

    # Retention runs every 200 ms: await it rather than sleeping a fixed time.
    # Kafka's rule: the oldest segment goes while the log stays at least retention.bytes
    # without it, so at rest the log minus its oldest segment is below retention.bytes.
    def trimmed() -> bool:
        sizes = segment_sizes(broker.data_dir, topic)
        return 0 not in sizes and sum(sizes.values()) - sizes[min(sizes)] < RETENTION_BYTES

    wait_for(trimmed, 10, "size retention to delete the oldest segments")
    bases = segment_bases(broker.data_dir, topic)
    assert len(bases) > 1, bases  # retention keeps whole segments, up to retention.bytes
    start = list_offset(broker.bootstrap, topic, OffsetSpec.earliest())
    assert start == bases[0] > 1
    assert list_offset(broker.bootstrap, topic, OffsetSpec.latest()) == end
    # A timestamp before every record now finds the new log start, not a deleted offset.
    assert list_offset(broker.bootstrap, topic, OffsetSpec.for_timestamp(0)) == start
    # The index files went with their segments.
    leftovers = [
        p.name
        for p in (broker.data_dir / f"{topic}-0").iterdir()
        if p.suffix in (".log", ".index", ".timeindex") and int(p.stem) < start
    ]
    assert leftovers == []

    # Fetching offset 0 is OFFSET_OUT_OF_RANGE; auto.offset.reset=earliest restarts at the start.
    consumer = make_consumer(broker.bootstrap, "earliest")
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        message = first_message(consumer)
        assert message.error() is None, message.error()
        assert message.offset() == start
    finally:
        consumer.close()

    consumer = make_consumer(broker.bootstrap, "error")
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        message = first_message(consumer)
        assert message.error() is not None
        assert message.error().code() == KafkaError._AUTO_OFFSET_RESET
    finally:
        consumer.close()

    tp = KafkaTopicPartition(topic, 0)
    kp_consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", request_timeout_ms=10_000
    )
    try:
        kp_consumer.assign([tp])
        kp_consumer.seek(tp, 0)
        records = kp_consumer.poll(timeout_ms=10_000, max_records=5).get(tp, [])
        assert records and records[0].offset == start
        assert [r.offset for r in records] == list(range(start, start + len(records)))
    finally:
        kp_consumer.close()


def test_time_retention_empties_the_log(broker_factory) -> None:
    broker = broker_factory(**CHECK_INTERVAL).start()
    topic = "by-time"
    create_topic(
        broker.bootstrap, topic, {"segment.bytes": str(SEGMENT_BYTES), "retention.ms": "1000"}
    )
    produce(broker.bootstrap, topic, 60)
    assert len(segment_bases(broker.data_dir, topic)) > 1
    end = list_offset(broker.bootstrap, topic, OffsetSpec.latest())
    assert end == 60

    # Every record passes retention.ms, so every segment goes, the active one after a roll.
    wait_for(
        lambda: list_offset(broker.bootstrap, topic, OffsetSpec.earliest()) == end,
        10,
        "time retention to move the log start offset to the end",
    )
    wait_for(
        lambda: segment_bases(broker.data_dir, topic) == [end],
        5,
        "only the fresh active segment left",
    )
    assert list_offset(broker.bootstrap, topic, OffsetSpec.latest()) == end

    # The log keeps its offsets: new records continue from the old end.
    produce(broker.bootstrap, topic, 1)
    consumer = make_consumer(broker.bootstrap, "earliest")
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        message = first_message(consumer)
        assert message.error() is None, message.error()
        assert message.offset() == end
    finally:
        consumer.close()


def batch_timestamps(segment: Path) -> list[int]:
    """Max timestamps of the data batches (Raft leader-change batches carry none: -1)."""
    return [
        header.max_timestamp
        for _, header in iter_batch_headers(segment.read_bytes())
        if not header.is_control
    ]


def test_segment_ms_rolls_by_time(broker) -> None:
    topic = "by-age"
    create_topic(broker.bootstrap, topic, {"segment.ms": "500"})
    produce(broker.bootstrap, topic, 1)

    # Keep producing until a roll happens (segment.ms is judged on record timestamps).
    deadline = time.monotonic() + 10
    while len(segment_bases(broker.data_dir, topic)) < 2:
        assert time.monotonic() < deadline, "segment.ms never rolled the segment"
        time.sleep(0.1)
        produce(broker.bootstrap, topic, 1)
    bases = segment_bases(broker.data_dir, topic)
    assert bases[0] == 0
    segments = [broker.data_dir / f"{topic}-0" / f"{base:020d}.log" for base in bases]
    stamps = [batch_timestamps(segment) for segment in segments]
    # Kafka's rule: a batch goes to a new segment once its timestamp is more than segment.ms
    # past the segment's first batch; never earlier.
    for current, following in zip(stamps, stamps[1:], strict=False):
        assert all(ts - current[0] <= 500 for ts in current), current
        assert following[0] - current[0] > 500
    end = list_offset(broker.bootstrap, topic, OffsetSpec.latest())
    assert end == bases[-1] + len(stamps[-1])

    # Every segment reads back, in order.
    consumer = make_consumer(broker.bootstrap, "earliest")
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        offsets = []
        deadline = time.monotonic() + 15
        while len(offsets) < end and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                offsets.append(message.offset())
        assert offsets == list(range(end))
    finally:
        consumer.close()
