"""Ten thousand partitions on one node, restarted clean and after kill -9 (issue 17).

The broker runs under a descriptor limit of 4,096 (soft and hard): Kafka's layout keeps three
files per partition, so without a budget these partitions could not even be created. After each
restart every partition must lead again and hand back the one record written to it. The times
are the benchmark's business (compat-tests/bench, partition-scale section); this asserts behaviour.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from broker_process import BrokerProcess
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = int(os.environ.get("RAFKA_SCALE_PARTITIONS", "10000"))
PER_TOPIC = 1000
FD_LIMIT = 4096
CLIENT_LOG_LEVEL = 2  # librdkafka logs refused connections during restarts


def topic_names() -> list[str]:
    return [f"scale-{i}" for i in range(max(PARTITIONS // PER_TOPIC, 1))]


def per_topic() -> int:
    return min(PARTITIONS, PER_TOPIC)


def expected_records() -> dict[tuple[str, int], bytes]:
    return {
        (topic, p): f"{topic}/{p}".encode() for topic in topic_names() for p in range(per_topic())
    }


def open_descriptors(broker: BrokerProcess) -> int:
    assert broker.process is not None
    return len(os.listdir(f"/proc/{broker.process.pid}/fd"))


def create_and_fill(bootstrap: str) -> None:
    # rafka answers CreateTopics once the new replicas are open and led, one topic after the
    # other: at 50,000 partitions the last answer comes after librdkafka's default 60 s.
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "log_level": CLIENT_LOG_LEVEL, "socket.timeout.ms": 300000}
    )
    # One request per topic, all sent at once: 10,000 partitions and their topics' records are
    # more than Kafka's controller (and rafka) takes from one request.
    futures = [
        admin.create_topics([NewTopic(t, per_topic(), 1)], request_timeout=300)[t]
        for t in topic_names()
    ]
    for future in futures:
        future.result()
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    # Idempotent: at 50,000 partitions some first writes are acknowledged only after
    # librdkafka's 30 s request timeout (each new partition's first flush fsyncs its segment,
    # leader-epoch checkpoint, quorum state and directory: about 60 s of fsyncs here), and a
    # plain producer's retry would store the record twice, on Kafka as on rafka.
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "enable.idempotence": True,
            "log_level": CLIENT_LOG_LEVEL,
        }
    )
    for (topic, partition), value in expected_records().items():
        producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(180) == 0
    assert failures == []


def leaders_everywhere(bootstrap: str, timeout: float) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": CLIENT_LOG_LEVEL})
    deadline = time.monotonic() + timeout
    missing: list[tuple[str, int]] = []
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=30)
        missing = [
            (topic, p)
            for topic in topic_names()
            for p in range(per_topic())
            if topic not in metadata.topics
            or p not in metadata.topics[topic].partitions
            or metadata.topics[topic].partitions[p].leader < 0
        ]
        if not missing:
            return
        time.sleep(0.2)
    raise AssertionError(f"{len(missing)} partitions without a leader, e.g. {missing[:5]}")


def read_back(bootstrap: str) -> dict[tuple[str, int], bytes]:
    """Every partition's records, from offset 0 (where each log starts: nothing is deleted).

    Not OFFSET_BEGINNING: librdkafka resolves it with one ListOffsets request per partition,
    and at 25,000 partitions it sent about 21,400 of them (all answered within 1.1 s, by its own
    debug log) and never the rest, so those partitions were never fetched. A log start past 0
    would fail here too: the fetch at 0 would be out of range.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "scale-reader",
            "enable.auto.commit": False,
            "log_level": CLIENT_LOG_LEVEL,
        }
    )
    wanted = len(expected_records())
    found: dict[tuple[str, int], bytes] = {}
    try:
        consumer.assign(
            [
                TopicPartition(topic, p, 0)
                for topic in topic_names()
                for p in range(per_topic())
            ]
        )
        deadline = time.monotonic() + 120
        while len(found) < wanted and time.monotonic() < deadline:
            for message in consumer.consume(10_000, 0.5):
                assert message.error() is None, message.error()
                key = (message.topic(), message.partition())
                assert key not in found, f"{key} returned twice"
                assert message.offset() == 0
                found[key] = message.value()
    finally:
        consumer.close()
    return found


def test_ten_thousand_partitions_restart_clean_and_after_kill_9(tmp_path: Path) -> None:
    broker = BrokerProcess(
        tmp_path / "data", launcher=["prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}", "--"]
    )
    try:
        broker.start(timeout=60)
        create_and_fill(broker.bootstrap)
        # Three files per partition would be 30,000: the budget keeps it under the limit.
        assert open_descriptors(broker) < FD_LIMIT
        expected = expected_records()
        # A clean shutdown fsyncs every partition (10,000: seconds; 50,000 on a busy machine:
        # past BrokerProcess's default 30 s).
        for stop in (lambda: broker.stop(timeout=max(30.0, PARTITIONS / 500)), broker.kill):
            stop()
            broker.start(timeout=300)
            leaders_everywhere(broker.bootstrap, timeout=120)
            assert read_back(broker.bootstrap) == expected
            assert open_descriptors(broker) < FD_LIMIT
    finally:
        broker.kill()
