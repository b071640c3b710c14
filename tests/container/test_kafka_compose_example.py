"""Apache Kafka's docker documentation gives a 3-node cluster in KRaft combined mode as a compose
file for apache/kafka. The same environment, with only the image changed to rafka's, must form a
cluster that clients on the host use. The compose file is written here from that environment
(node names kafka-1..3, host ports 29092/39092/49092, Kafka's example cluster id, RF 1 internal
topics, logs under /tmp)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from container_support import IMAGE, compose, compose_container_name

HOST_PORTS = {1: 29092, 2: 39092, 3: 49092}
BOOTSTRAP = ",".join(f"localhost:{port}" for port in HOST_PORTS.values())


def kafka_example_service(node: int) -> dict:
    return {
        "image": "${IMAGE}",
        "hostname": f"kafka-{node}",
        "ports": [f"{HOST_PORTS[node]}:9092"],
        "environment": {
            "KAFKA_NODE_ID": node,
            "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093",
            "KAFKA_LISTENERS": "PLAINTEXT://:19092,CONTROLLER://:9093,PLAINTEXT_HOST://:9092",
            "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
            "KAFKA_ADVERTISED_LISTENERS":
                f"PLAINTEXT://kafka-{node}:19092,PLAINTEXT_HOST://localhost:{HOST_PORTS[node]}",
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "CLUSTER_ID": "4L6g3nShT-eMCtK--X86sw",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": 1,
            "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": 0,
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": 1,
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": 1,
            "KAFKA_LOG_DIRS": "/tmp/kraft-combined-logs",
        },
    }  # fmt: skip


@pytest.fixture
def example_cluster(engine, tmp_path: Path, monkeypatch):
    file = tmp_path / "docker-compose.yml"
    services = {f"kafka-{node}": kafka_example_service(node) for node in HOST_PORTS}
    # JSON is YAML: compose reads it as is.
    file.write_text(json.dumps({"version": "2", "services": services}, indent=2))
    monkeypatch.setenv("IMAGE", IMAGE)  # the example's only variable: the image
    project = f"kafkaex{uuid.uuid4().hex[:6]}"
    compose(project, file, "up", "-d")
    try:
        yield [engine.containers.get(compose_container_name(project, s)) for s in services]
    finally:
        compose(project, file, "down", "-v", "--remove-orphans")


def await_brokers(expected: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    while True:
        try:
            if len(admin.list_topics(timeout=5).brokers) == expected:
                return
        except Exception:  # noqa: BLE001 - not up yet: librdkafka raises KafkaException
            pass
        assert time.monotonic() < deadline, "the example cluster never showed three brokers"
        time.sleep(0.5)


@pytest.mark.timeout(300)
def test_apache_kafkas_combined_mode_example_with_the_image_swapped(example_cluster) -> None:
    await_brokers(3)
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic("example", 3, 3)])["example"].result(30)

    producer = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True})
    for i in range(300):
        producer.produce("example", b"%d" % i, partition=i % 3)
    assert producer.flush(60) == 0

    metadata = admin.list_topics("example", timeout=15).topics["example"]
    assert all(len(p.replicas) == 3 for p in metadata.partitions.values())
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "example"})
    consumer.assign([TopicPartition("example", p, 0) for p in range(3)])
    values: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(values) < 300 and time.monotonic() < deadline:
            for message in consumer.consume(500, 1.0):
                assert message.error() is None, message.error()
                values.add(int(message.value()))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert values == set(range(300))
