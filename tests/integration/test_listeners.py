"""Each listener is answered with its own advertised addresses, as Kafka does: a container has one
listener for clients on the host (localhost) and one for its Docker network (its name)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_process import BrokerProcess, free_port
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient


@pytest.fixture
def two_listeners(tmp_path: Path) -> Iterator[tuple[BrokerProcess, int]]:
    inner, outer = free_port(), free_port()
    broker = BrokerProcess(
        tmp_path,
        inner,
        **{
            "listeners": f"PLAINTEXT://127.0.0.1:{inner},PLAINTEXT_HOST://127.0.0.1:{outer}",
            # 127.0.0.1 and localhost: two names of this machine, so both answers are usable.
            "advertised.listeners": (
                f"PLAINTEXT://127.0.0.1:{inner},PLAINTEXT_HOST://localhost:{outer}"
            ),
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
        },
    )
    broker.start()
    try:
        yield broker, outer
    finally:
        broker.stop()


def brokers_seen_through(bootstrap: str) -> set[tuple[int, str, int]]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15)
    return {(b.id, b.host, b.port) for b in metadata.brokers.values()}


def test_metadata_and_find_coordinator_answer_with_the_listener_asked(two_listeners) -> None:
    broker, outer = two_listeners
    assert brokers_seen_through(broker.bootstrap) == {(1, "127.0.0.1", broker.port)}
    assert brokers_seen_through(f"127.0.0.1:{outer}") == {(1, "localhost", outer)}

    # FindCoordinator too: a group's coordinator is given at the listener's address.
    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{outer}", "group.id": group})
    try:
        consumer.subscribe(["listener-topic"])
        consumer.poll(2.0)
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{outer}"})  # kept: owns the future
        [future] = admin.describe_consumer_groups([group], request_timeout=10).values()
        coordinator = future.result(timeout=15).coordinator
        assert (coordinator.host, coordinator.port) == ("localhost", outer)
    finally:
        consumer.close()
