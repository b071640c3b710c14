"""Fetch sessions (KIP-227) with a client that uses them (kafka-python's FetchSessionHandler):
its incremental fetches deliver every record once and in order, across a broker restart that
forgets the session, and without a session when the cache has no slot. The rules themselves
are compared with Kafka's by compat-tests/conformance (scenario fetch-sessions)."""

from __future__ import annotations

import time
from collections import defaultdict

from broker_process import free_port
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, TopicPartition
from test_metrics import Samples, scrape, scrape_until, value

QUIET = {"log_level": 3}
TOPIC = "sessions"
PARTITIONS = 6


def _produce(bootstrap: str, first: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", **QUIET})
    for i in range(first, first + count):
        producer.produce(TOPIC, value=str(i).encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0


def _consume(consumer: KafkaConsumer, seen: dict[int, list[int]], total: int) -> None:
    deadline = time.monotonic() + 30
    while sum(len(v) for v in seen.values()) < total:
        assert time.monotonic() < deadline, f"{dict(seen)} of {total} records"
        for tp, records in consumer.poll(timeout_ms=200).items():
            seen[tp.partition].extend(int(r.value) for r in records)


def _expected(total: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for i in range(total):
        out[i % PARTITIONS].append(i)
    return dict(out)


def _consumer(bootstrap: str) -> KafkaConsumer:
    # One batch per fetch (KIP-74: the first batch whole, nothing more): a consumer behind the
    # high watermark needs many incremental fetches that bring records and no new watermark.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, fetch_max_wait_ms=100, fetch_max_bytes=1)
    consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
    return consumer


def _start(broker_factory, data_dir=None, port: int | None = None, **overrides: str):
    metrics = free_port()
    broker = broker_factory(
        data_dir, **{"rafka.metrics.port": str(metrics), "rafka.metrics.host": "127.0.0.1"},
        **overrides)
    if port is not None:
        broker.port = port
        broker.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{port}"
    return broker.start(), metrics


def _sessions(samples: Samples) -> tuple[float | None, float | None]:
    return (value(samples, "rafka_fetch_sessions"),
            value(samples, "rafka_fetch_session_partitions"))


def test_incremental_fetches_deliver_every_record_across_a_restart(broker_factory, tmp_path):
    broker, metrics = _start(broker_factory, tmp_path / "data")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout=30)
    consumer = _consumer(broker.bootstrap)
    seen: dict[int, list[int]] = defaultdict(list)
    try:
        for round_ in range(5):  # five batches in each partition
            _produce(broker.bootstrap, 60 * round_, 60)
        _consume(consumer, seen, 300)
        # The consumer holds one session with all six partitions; rounds of records written
        # while it polls reach it through incremental fetches.
        scrape_until(metrics, lambda s: _sessions(s) == (1, PARTITIONS), "one session")
        for round_ in range(5, 8):
            _produce(broker.bootstrap, 60 * round_, 60)
            _consume(consumer, seen, 60 * (round_ + 1))
        assert dict(seen) == _expected(480)
        # A restarted broker knows no session: the consumer is told so and opens a new one.
        port = broker.port
        broker.stop()
        broker, metrics = _start(broker_factory, tmp_path / "data", port)
        _produce(broker.bootstrap, 480, 60)
        _consume(consumer, seen, 540)
        assert dict(seen) == _expected(540)
        scrape_until(metrics, lambda s: _sessions(s) == (1, PARTITIONS), "a new session")
    finally:
        consumer.close()


def test_without_a_slot_a_consumer_fetches_in_full(broker_factory):
    broker, metrics = _start(broker_factory, **{"max.incremental.fetch.session.cache.slots": "0"})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout=30)
    consumer = _consumer(broker.bootstrap)
    seen: dict[int, list[int]] = defaultdict(list)
    try:
        for round_ in range(3):
            _produce(broker.bootstrap, 60 * round_, 60)
            _consume(consumer, seen, 60 * (round_ + 1))
        assert dict(seen) == _expected(180)
        assert _sessions(scrape(metrics)) == (0, 0)
    finally:
        consumer.close()
