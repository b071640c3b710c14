"""A backup of a stopped broker's log directory (docs/operations.md, "Backing up a log
directory") restores: a broker started on the copy serves the same records at the same offsets,
the topic's configs and the group's committed offsets, and opens it as a clean shutdown."""

from __future__ import annotations

import shutil

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

TOPIC = "ledger"
GROUP = "auditors"
PARTITIONS = 3
RECORDS = 300


def _produce(bootstrap: str) -> dict[int, list[tuple[int, bytes]]]:
    stored: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
    errors: list[str] = []

    def delivered(error, message) -> None:
        if error is not None:
            errors.append(str(error))
        else:
            stored[message.partition()].append((message.offset(), message.value()))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(RECORDS):
        value = f"entry-{i}".encode()
        producer.produce(TOPIC, value, partition=i % PARTITIONS, on_delivery=delivered)
    assert producer.flush(30) == 0 and not errors, errors
    return stored


def _read_all(bootstrap: str, ends: dict[int, int]) -> dict[int, list[tuple[int, bytes]]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "backup-reader", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    found: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
    try:
        while sum(len(v) for v in found.values()) < sum(ends.values()):
            batch = consumer.consume(500, 10)
            assert batch, f"no records within 10 s; read {sum(len(v) for v in found.values())}"
            for message in batch:
                assert message.error() is None, message.error()
                found[message.partition()].append((message.offset(), message.value()))
    finally:
        consumer.close()
    return found


def _committed(bootstrap: str) -> list[int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(
        GROUP, [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    )
    listed = admin.list_consumer_group_offsets([request])[GROUP].result(timeout=30)
    return [tp.offset for tp in sorted(listed.topic_partitions, key=lambda tp: tp.partition)]


def test_a_stopped_brokers_copy_restores_records_configs_and_offsets(broker_factory, tmp_path):
    original = broker_factory(tmp_path / "original").start()
    admin = AdminClient({"bootstrap.servers": original.bootstrap})
    futures = admin.create_topics(
        [NewTopic(TOPIC, PARTITIONS, 1, config={"retention.ms": "604800001"})]
    )
    futures[TOPIC].result(timeout=30)
    stored = _produce(original.bootstrap)
    committer = Consumer({"bootstrap.servers": original.bootstrap, "group.id": GROUP})
    commits = [TopicPartition(TOPIC, p, 10 + p) for p in range(PARTITIONS)]
    committer.commit(offsets=commits, asynchronous=False)
    committer.close()

    assert original.stop() == 0
    shutil.copytree(tmp_path / "original", tmp_path / "restored", symlinks=True)

    restored = broker_factory(tmp_path / "restored").start()
    ready = [line for line in restored.log_lines if "broker started" in line]
    assert ready and '"clean_start": true' in ready[-1], ready
    ends = {p: len(rows) for p, rows in stored.items()}
    assert _read_all(restored.bootstrap, ends) == stored
    assert _committed(restored.bootstrap) == [10 + p for p in range(PARTITIONS)]
    admin = AdminClient({"bootstrap.servers": restored.bootstrap})  # kept: futures need it
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, TOPIC)])
    configs = next(iter(described.values())).result(timeout=10)
    assert configs["retention.ms"].value == "604800001"
