"""`docker run -p 9092:9092 rafka:latest` as a developer uses it: clients on the host and on the
container's network, a clean `docker stop`, data kept on the volume across containers."""

from __future__ import annotations

import socket
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from container_support import IMAGE, LABEL, free_port, wait_healthy

TOPIC = "greetings"


def produce(bootstrap: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for value in values:
        producer.produce(TOPIC, value)
    assert producer.flush(30) == 0


def consume_all(bootstrap: str, expected: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    values: list[bytes] = []
    try:
        while len(values) < expected:
            message = consumer.poll(30)
            assert message is not None, f"only {len(values)} of {expected} records read"
            if message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


def host_port() -> int:
    """9092 as in `docker run -p 9092:9092`, the zero-configuration path, when it is free."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 9092))
        except OSError:
            return free_port()
    return 9092


def run_broker(engine, network: str, volume: str, port: int):
    name = f"rafka-{uuid.uuid4().hex[:6]}"
    environment = {}
    if port != 9092:  # the documented override: advertise the port the host publishes
        environment["KAFKA_ADVERTISED_LISTENERS"] = (
            f"PLAINTEXT://{name}:19092,PLAINTEXT_HOST://localhost:{port}"
        )
    return engine.containers.run(
        IMAGE,
        name=name,
        hostname=name,
        detach=True,
        labels=LABEL,
        network=network,
        environment=environment,
        ports={"9092/tcp": ("127.0.0.1", port)},
        volumes={volume: {"bind": "/var/lib/rafka", "mode": "rw"}},
    )


def test_docker_run_serves_the_host_and_the_network_and_keeps_data(engine, network) -> None:
    volume = engine.volumes.create(f"rafka-test-{uuid.uuid4().hex[:6]}", labels=LABEL).name
    port = host_port()
    broker = run_broker(engine, network, volume, port)
    healthy_after = wait_healthy(broker)
    print(f"healthy {healthy_after:.2f}s after docker run")

    # A client on the host, through the published port and the localhost listener.
    host_bootstrap = f"127.0.0.1:{port}"
    produce(host_bootstrap, [b"from the host %d" % i for i in range(10)])
    assert consume_all(host_bootstrap, 10) == [b"from the host %d" % i for i in range(10)]

    # A client in another container on the same network, by the broker container's name.
    in_network = f"{broker.name}:19092"
    output = engine.containers.run(
        IMAGE,
        entrypoint=["sh", "-c"],
        command=[
            f"printf 'a\\nb\\n' | rafka produce --topic {TOPIC} --bootstrap-server {in_network}"
            f" && rafka consume --topic {TOPIC} --from-beginning --max-messages 12"
            f" --bootstrap-server {in_network}"
        ],
        network=network,
        labels=LABEL,
        remove=True,
    )
    lines = output.decode().splitlines()
    assert lines[:10] == [f"from the host {i}" for i in range(10)] and lines[10:12] == ["a", "b"]

    # docker stop is SIGTERM to the broker (PID 1): a clean shutdown, marked on the volume.
    broker.stop(timeout=30)
    broker.reload()
    assert broker.attrs["State"]["ExitCode"] == 0, broker.logs()[-2000:].decode()
    marker = engine.containers.run(
        IMAGE,
        entrypoint=["ls", "-a", "/var/lib/rafka/data"],
        volumes={volume: {"bind": "/var/lib/rafka", "mode": "ro"}},
        labels=LABEL,
        remove=True,
    )
    assert ".kafka_cleanshutdown" in marker.decode().split()

    # A new container on the same volume has everything.
    again = run_broker(engine, network, volume, port)
    wait_healthy(again)
    assert len(consume_all(host_bootstrap, 12)) == 12
