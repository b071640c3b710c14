"""compose.yaml's three-node cluster under faults a tester makes with Docker: the partition
leader's container killed and started again, cut off from the network and reconnected, and
paused for longer than an election. An idempotent acks=all producer on the host writes all
along; every acknowledged record is read back once, in order."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from container_support import ROOT, compose, compose_container_name, healthy

TOPIC = "orders"
BOOTSTRAP = "localhost:9092,localhost:9093,localhost:9094"
COMPOSE_FILE = ROOT / "compose.yaml"


@pytest.fixture
def cluster(engine):
    project = f"rafkat{uuid.uuid4().hex[:6]}"
    compose(project, COMPOSE_FILE, "up", "-d")
    try:
        names = {n: compose_container_name(project, f"rafka-{n}") for n in (1, 2, 3)}
        containers = {n: engine.containers.get(name) for n, name in names.items()}
        deadline = time.monotonic() + 90
        while not all(healthy(c) for c in containers.values()):
            assert time.monotonic() < deadline, "the cluster never turned healthy"
            time.sleep(0.5)
        yield project, containers
    finally:
        compose(project, COMPOSE_FILE, "down", "-v", "--remove-orphans")


def leader_node(timeout: float = 60) -> int:
    """The partition's leader, once the node asked knows one (a node just restarted or
    reconnected may answer LEADER_NOT_AVAILABLE for a moment, as Kafka's do)."""
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    deadline = time.monotonic() + timeout
    while True:
        leader = admin.list_topics(TOPIC, timeout=15).topics[TOPIC].partitions[0].leader
        if leader >= 0:
            return leader
        assert time.monotonic() < deadline, f"no leader of {TOPIC}-0 within {timeout}s"
        time.sleep(0.2)


class Writer(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.acked: list[bytes] = []
        self.failed: list[str] = []
        self.writing = threading.Event()  # set by the first acknowledgement

    def run(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": BOOTSTRAP,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "socket.timeout.ms": 1000,
                "reconnect.backoff.max.ms": 250,
                "message.timeout.ms": 120_000,
            }
        )

        def done(error, message) -> None:
            if error is None:
                self.acked.append(message.value())
                self.writing.set()
            else:
                self.failed.append(str(error))

        number = 0
        while not self.stop.is_set():
            producer.produce(TOPIC, b"%d" % number, partition=0, on_delivery=done)
            number += 1
            producer.poll(0.02)
        producer.flush(120)


def read_all(expected: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": uuid.uuid4().hex})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 1.0):
                if message.error() is None:
                    values.append(message.value())
    finally:
        consumer.close()
    return values


@pytest.mark.timeout(600)
def test_acknowledged_records_survive_kill_disconnect_and_pause(engine, cluster) -> None:
    project, containers = cluster
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(TOPIC, 1, 3)])[TOPIC].result(timeout=30)
    network = engine.networks.get(f"{project}_default")
    writer = Writer()
    writer.start()
    try:
        assert writer.writing.wait(60), "no write acknowledged before the faults"

        victim = containers[leader_node()]
        victim.kill()
        time.sleep(3)
        victim.start()
        time.sleep(3)

        victim = containers[leader_node()]
        network.disconnect(victim)
        time.sleep(4)
        network.connect(victim, aliases=[victim.attrs["Config"]["Hostname"]])
        time.sleep(3)

        victim = containers[leader_node()]
        victim.pause()
        time.sleep(4)  # the faults' lengths and the quiet between them: nothing to await
        victim.unpause()
        time.sleep(3)
    finally:
        writer.stop.set()
        writer.join(180)
    assert writer.acked, "nothing acknowledged"
    stored = read_all(len(writer.acked))
    acked = set(writer.acked)
    in_log = [v for v in stored if v in acked]
    assert len(in_log) == len(set(in_log)), "an acknowledged record stored twice"
    assert acked <= set(in_log), f"{len(acked - set(in_log))} acknowledged records lost"
    numbers = [int(v) for v in in_log]
    assert numbers == sorted(numbers), "acknowledged records out of order"
    print(f"{len(acked)} acknowledged, {len(writer.failed)} failed, all read back once in order")
