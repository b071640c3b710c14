"""The client libraries' view: confluent-kafka (librdkafka) and kafka-python, each call bounded.

Every helper returns plain values (offsets, error names) for the recorder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

QUIET = {"log_level": 3}  # librdkafka: errors only
LIMIT_S = 20.0
logging.getLogger("kafka").setLevel(logging.CRITICAL)  # kafka-python's retries are not news


def _error(error: Any) -> str | None:
    return None if error is None else error.name()


# -- confluent-kafka ------------------------------------------------------------------------------


def produce(
    bootstrap: str, topic: str, items: Sequence[tuple[int, bytes | None, bytes]],
    producer: Producer | None = None, **config: Any,
) -> list[tuple[int, int, str | None]]:
    """(partition, offset, error) per (partition, key, value), in production order; through
    `producer` if given (a transactional one), else a fresh acks=all producer."""
    if producer is None:
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                             **QUIET, **config})
    reports: list[tuple[int, int, str | None] | None] = [None] * len(items)

    def deliver(index: int) -> Any:
        def report(error: Any, message: Any) -> None:
            reports[index] = (message.partition(), message.offset(), _error(error))
        return report

    for i, (partition, key, value) in enumerate(items):
        producer.produce(topic, value, key, partition=partition, on_delivery=deliver(i))
    remaining = producer.flush(LIMIT_S)
    if remaining:
        raise TimeoutError(f"{remaining} messages undelivered after {LIMIT_S:.0f} s")
    return [r for r in reports if r is not None]


def consumer(bootstrap: str, group: str = "conformance-reader", **config: Any) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "enable.partition.eof": True, **QUIET, **config})


def consume_offsets(
    bootstrap: str, topic: str, partition: int, start: int, **config: Any
) -> list[int]:
    """Offsets of the records a consumer assigned at `start` sees up to the partition's end."""
    reader = consumer(bootstrap, **config)
    reader.assign([TopicPartition(topic, partition, start)])
    offsets: list[int] = []
    deadline = time.monotonic() + LIMIT_S
    try:
        while time.monotonic() < deadline:
            message = reader.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                return offsets
            if error is not None:
                raise RuntimeError(f"consume {topic}-{partition}: {error.name()}")
            offsets.append(message.offset())
        raise TimeoutError(f"no end of {topic}-{partition} within {LIMIT_S:.0f} s")
    finally:
        reader.close()


def watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    reader = consumer(bootstrap)
    try:
        low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), LIMIT_S)
        return low, high
    finally:
        reader.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    reader = consumer(bootstrap, group)
    try:
        answer = reader.committed([TopicPartition(topic, p) for p in range(partitions)], LIMIT_S)
        return [tp.offset for tp in answer]
    finally:
        reader.close()


def group_consume_commit(
    bootstrap: str, group: str, topic: str, ends: Sequence[int]
) -> dict[int, list[int]]:
    """Subscribe, consume until every partition's position reaches `ends`, commit synchronously."""
    member = consumer(bootstrap, group, **{"auto.offset.reset": "earliest"})
    member.subscribe([topic])
    seen: dict[int, list[int]] = {p: [] for p in range(len(ends))}
    deadline = time.monotonic() + LIMIT_S
    try:
        while not _reached(member.position(member.assignment()), ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group} consumed {seen} within {LIMIT_S:.0f} s")
            message = member.poll(0.2)
            if message is not None and message.error() is None:
                seen[message.partition()].append(message.offset())
        member.commit(asynchronous=False)
        return seen
    finally:
        member.close()


def _reached(positions: Sequence[Any], ends: Sequence[int]) -> bool:
    """Every partition assigned and its position at its end (control batches count too)."""
    at = {tp.partition: tp.offset for tp in positions}
    return all(at.get(p, -1) >= end for p, end in enumerate(ends))


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **QUIET})


def admin_list_offsets(bootstrap: str, topic: str, partition: int) -> dict[str, Any]:
    specs = {"earliest": OffsetSpec.earliest(), "latest": OffsetSpec.latest(),
             "max_timestamp": OffsetSpec.max_timestamp()}
    answers: dict[str, Any] = {}
    client = admin(bootstrap)
    for name, spec in specs.items():
        tp = TopicPartition(topic, partition)
        try:
            info = client.list_offsets({tp: spec}, request_timeout=LIMIT_S)[tp].result(LIMIT_S)
            answers[name] = info.offset
        except Exception as exc:  # the client's error, by name
            answers[name] = _exception_name(exc)
    return answers


def admin_delete_records(bootstrap: str, topic: str, partition: int, offset: int) -> Any:
    tp = TopicPartition(topic, partition, offset)
    client = admin(bootstrap)  # held: a collected AdminClient never completes its futures
    try:
        result = client.delete_records([tp], request_timeout=LIMIT_S)[tp].result(LIMIT_S)
        return {"low_watermark": result.offset}
    except Exception as exc:
        return _exception_name(exc)


def _exception_name(exc: Exception) -> str:
    error = exc.args[0] if exc.args else None
    return error.name() if isinstance(error, KafkaError) else type(exc).__name__


# -- kafka-python ---------------------------------------------------------------------------------


def kp_consumer(bootstrap: str, **config: Any) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         request_timeout_ms=int(LIMIT_S * 1000), **config)


def kp_offsets(bootstrap: str, topic: str, partition: int, timestamp: int) -> Any:
    """beginning_offsets, end_offsets and offsets_for_times as kafka-python reports them."""
    client = kp_consumer(bootstrap)
    tp = KpTopicPartition(topic, partition)
    try:
        found = client.offsets_for_times({tp: timestamp}).get(tp)
        return {
            "beginning": client.beginning_offsets([tp])[tp],
            "end": client.end_offsets([tp])[tp],
            "for_time": None if found is None else found.offset,
        }
    finally:
        client.close()


def kp_consume_offsets(
    bootstrap: str, topic: str, partition: int, end: int, **config: Any
) -> list[int]:
    """Offsets of the records seen from the beginning until the position reaches `end`."""
    client = kp_consumer(bootstrap, **config)
    tp = KpTopicPartition(topic, partition)
    client.assign([tp])
    client.seek_to_beginning(tp)
    offsets: list[int] = []
    deadline = time.monotonic() + LIMIT_S
    try:
        while client.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"kafka-python stopped at {client.position(tp)} < {end}")
            for records in client.poll(timeout_ms=200).values():
                offsets.extend(r.offset for r in records)
        return offsets
    finally:
        client.close()


def kp_group_consume_commit(
    bootstrap: str, group: str, topic: str, ends: Sequence[int]
) -> dict[int, list[int]]:
    """Subscribe with kafka-python, consume until the positions reach `ends`, commit."""
    client = kp_consumer(bootstrap, group_id=group, auto_offset_reset="earliest")
    client.subscribe([topic])
    seen: dict[int, list[int]] = {p: [] for p in range(len(ends))}
    deadline = time.monotonic() + LIMIT_S
    try:
        while not _reached([_KpPosition(tp.partition, client.position(tp))
                            for tp in client.assignment()], ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group} consumed {seen} within {LIMIT_S:.0f} s")
            for tp, records in client.poll(timeout_ms=1000).items():
                seen[tp.partition].extend(r.offset for r in records)
        client.commit()
        return seen
    finally:
        client.close()


@dataclass
class _KpPosition:
    partition: int
    offset: int


def kp_committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int | None]:
    client = kp_consumer(bootstrap, group_id=group)
    try:
        return [client.committed(KpTopicPartition(topic, p)) for p in range(partitions)]
    finally:
        client.close()
