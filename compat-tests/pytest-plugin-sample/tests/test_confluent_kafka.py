"""An application's tests with confluent-kafka against the plugin's brokers."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def unique(name: str) -> str:
    # The session broker is shared: each test keeps to its own topics and groups.
    return f"{name}-{uuid.uuid4().hex[:8]}"


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, _msg: err and errors.append(err))
    assert producer.flush(15) == 0
    assert errors == []


def consume(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[bytes]:
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique("app"),
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            values.append(message.value())
    finally:
        consumer.close()
    return values


def test_round_trip_on_the_session_broker(kafka_bootstrap: str) -> None:
    topic = unique("orders")
    sent = [f"order {i}".encode() for i in range(20)]
    produce(kafka_bootstrap, topic, sent)
    assert sorted(consume(kafka_bootstrap, topic, len(sent))) == sorted(sent)


def test_fresh_broker_per_test_starts_empty(kafka_bootstrap_per_test: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap_per_test})
    user_topics = [t for t in admin.list_topics(timeout=10).topics if not t.startswith("__")]
    assert user_topics == []  # nothing from other tests

    futures = admin.create_topics([NewTopic("payments", num_partitions=3, replication_factor=1)])
    futures["payments"].result(10)
    produce(kafka_bootstrap_per_test, "payments", [b"a", b"b", b"c"])

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap_per_test, "group.id": "audit"})
    watermarks = [consumer.get_watermark_offsets(TopicPartition("payments", p), timeout=10)
                  for p in range(3)]
    consumer.close()
    assert sum(high for _low, high in watermarks) == 3


def test_ini_overrides_reach_the_broker(kafka_bootstrap_per_test: str) -> None:
    # pyproject.toml's rafka_overrides sets num.partitions=2 for auto-created topics.
    produce(kafka_bootstrap_per_test, "auto-created", [b"x"])
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap_per_test})
    assert len(admin.list_topics("auto-created", timeout=10).topics["auto-created"].partitions) == 2
