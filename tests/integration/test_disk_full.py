"""A full disk: a broker whose log directory is a small tmpfs is written until it is full.

The partition that cannot append answers KAFKA_STORAGE_ERROR and goes offline (as Kafka takes a
failed log directory offline) with one error line, not a traceback; the broker keeps serving.
Restarted with more space, it has every acknowledged record at the offset it was acknowledged
at, and takes writes again. A node whose metadata log cannot be written stops with one line, as
Kafka halts when its metadata log directory fails. In a 3-node cluster, a replica whose disk
fills goes offline (a leader stops answering its followers, and another is elected), and an
acks=all producer loses nothing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_process import BrokerProcess
from cluster import Cluster, wait_until
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.timeout(180)

TOPIC = "fill"
VALUE_SIZE = 1000
DISK = "12m"
MORE = "48m"


def _mount(path: Path, size: str, *options: str) -> subprocess.CompletedProcess[str]:
    opts = ",".join((*options, f"size={size}"))
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK bytes, unmounted at teardown (after the brokers on it are killed); at
    node 1's data directory of a `Cluster(tmp_path, ...)`."""
    mount_point = tmp_path / "node1"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root: the full disk is a small tmpfs mounted for the test")
    mounted = _mount(mount_point, DISK)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _value(index: int) -> bytes:
    return str(index).encode().rjust(VALUE_SIZE, b".")


class Deliveries:
    """A producer's delivery reports: acknowledged offset -> value, and the errors."""

    def __init__(self) -> None:
        self.acked: dict[int, bytes] = {}
        self.errors: list[KafkaError] = []

    def __call__(self, error: KafkaError | None, message) -> None:
        if error is None:
            self.acked[message.offset()] = message.value()
        else:
            self.errors.append(error)


def _fill(bootstrap: str) -> tuple[dict[int, bytes], list[int]]:
    """Produce until the broker refuses: acknowledged offset -> value, and the error codes."""
    deliveries = Deliveries()
    # No retries: the first answer a batch gets is the one reported.
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "retries": 0,
            "message.timeout.ms": 20000,
            "log_level": 2,
        }
    )
    index = 0
    while not deliveries.errors and index < 200_000:  # 200 MB: far beyond the disk
        for _ in range(500):
            producer.produce(TOPIC, _value(index), on_delivery=deliveries)
            index += 1
        assert producer.flush(30) == 0
    return deliveries.acked, [error.code() for error in deliveries.errors]


def _read_all(bootstrap: str, topic: str = TOPIC) -> tuple[dict[int, bytes], int]:
    """Every record of the topic's partition 0 (offset -> value) and its high watermark."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "reader",
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    try:
        partition = TopicPartition(topic, 0)
        _, high = consumer.get_watermark_offsets(partition, timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        records: dict[int, bytes] = {}
        while len(records) < high:
            messages = consumer.consume(1000, 10)
            assert messages, f"only {len(records)} of {high} records came back"
            for message in messages:
                assert message.error() is None, message.error()
                records[message.offset()] = message.value()
        return records, high
    finally:
        consumer.close()


def test_a_full_disk_takes_the_partition_offline_and_loses_no_acknowledged_write(
    broker_factory, small_disk: Path
) -> None:
    broker: BrokerProcess = broker_factory(small_disk / "data").start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)

    acked, errors = _fill(broker.bootstrap)
    assert acked, "nothing was acknowledged before the disk filled"
    # The append that met the full disk and those behind it: KAFKA_STORAGE_ERROR, or a
    # timeout for batches the producer held once the partition had no leader.
    assert KafkaError.KAFKA_STORAGE_ERROR in errors, errors
    assert set(errors) <= {KafkaError.KAFKA_STORAGE_ERROR, KafkaError._MSG_TIMED_OUT}, errors

    # The broker still answers; the partition is offline: no leader, a retriable error.
    assert broker.process is not None and broker.process.poll() is None
    metadata = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions[0]
    assert metadata.leader == -1
    assert metadata.error is not None
    assert metadata.error.code() == KafkaError.LEADER_NOT_AVAILABLE
    output = "\n".join(broker.log_lines)
    assert "Traceback" not in output
    assert output.count('"partition offline after a storage error"') == 1

    # More space and a restart: every acknowledged record is where it was acknowledged. The
    # shutdown does not vouch for the log dir (whether or not its checkpoints still fit on the
    # disk), so the restart recovers it.
    assert broker.stop() == 0
    shutdown = "\n".join(broker.log_lines)
    assert (
        '"log dir not marked clean: it had a storage error"' in shutdown
        or '"checkpoints not written: the next start recovers every log"' in shutdown
    )
    remounted = _mount(small_disk, MORE, "remount")
    assert remounted.returncode == 0, remounted.stderr
    broker.start()
    records, high = _read_all(broker.bootstrap)
    assert high >= max(acked) + 1
    missing = [offset for offset, value in acked.items() if records.get(offset) != value]
    assert not missing, f"{len(missing)} acknowledged records lost, first at {missing[0]}"

    # And the partition takes writes again, after everything it kept.
    delivered: list[int] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "log_level": 2})
    producer.produce(TOPIC, b"after", on_delivery=lambda e, m: delivered.append(m.offset()))
    assert producer.flush(30) == 0
    assert delivered == [high]


def _fill_up(disk: Path) -> None:
    """Take every byte left on `disk`."""
    with open(disk / "filler", "wb") as filler:
        chunk = bytes(64 * 1024)
        try:
            while True:
                filler.write(chunk)
                filler.flush()
        except OSError:
            pass


def test_a_node_that_cannot_write_its_metadata_log_stops(broker_factory, small_disk: Path) -> None:
    broker: BrokerProcess = broker_factory(
        small_disk / "data", **{"log.flush.offset.checkpoint.interval.ms": "100"}
    ).start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)

    # Every byte taken. The periodic checkpoints fail, and are tried again (the housekeeping
    # that runs retention, which could free the disk, goes on).
    _fill_up(small_disk)

    def checkpoint_failures() -> int:
        return sum('"checkpoints not written"' in line for line in broker.log_lines)

    wait_until(lambda: checkpoint_failures() >= 2, 30, "two failed checkpoint rounds")

    # Topics are created (their replicas cannot be, and stay offline) until a metadata record
    # needs a page the disk has not got.
    process = broker.process
    assert process is not None
    for index in range(500):
        name = f"more-{index}"
        try:
            admin.create_topics([NewTopic(name, 1, 1)], request_timeout=10)[name].result(15)
        except KafkaException:
            break
    assert process.wait(30) == 1
    output = "\n".join(broker.log_lines)
    assert "Traceback" not in output
    failures = [line for line in broker.log_lines if '"broker failed"' in line]
    assert len(failures) == 1 and "the metadata log failed" in failures[0], failures
    broker.process = None

    # With the space back it starts, and what it had committed is there.
    (small_disk / "filler").unlink()
    broker.start()
    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    assert TOPIC in topics and "more-0" in topics


CLUSTER_RECORDS = 30_000  # 30 MB: more than twice node 1's disk


@pytest.mark.parametrize(
    ("leader", "during"), [(1, "append"), (2, "write")], ids=["leader-fills", "follower-fills"]
)
def test_a_replica_whose_disk_fills_goes_offline_and_no_acknowledged_write_is_lost(
    tmp_path: Path, small_disk: Path, leader: int, during: str
) -> None:
    """Node 1's disk fills, as the partition's leader (it appends a produce) or as a follower
    (it appends what it fetched)."""
    with Cluster(tmp_path, 3) as cluster:
        cluster.start()
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 2})
        others = [node for node in (1, 2, 3) if node != leader]
        topic = NewTopic(TOPIC, 1, replica_assignment=[[leader, *others]])
        admin.create_topics([topic])[TOPIC].result(30)
        cluster.wait_for_leader(TOPIC, 0)
        # The first replica is the preferred leader.
        wait_until(lambda: cluster.leader_of(TOPIC, 0) == leader, 30, f"node {leader} leading")

        deliveries = Deliveries()
        producer = Producer(
            {
                "bootstrap.servers": cluster.bootstrap,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 30000,  # an election takes seconds
                "log_level": 2,
            }
        )
        for index in range(CLUSTER_RECORDS):
            producer.produce(TOPIC, _value(index), on_delivery=deliveries)
            if index % 500 == 499:
                assert producer.flush(60) == 0
        assert producer.flush(60) == 0

        assert not deliveries.errors, [error.name() for error in deliveries.errors[:5]]
        acked = deliveries.acked
        assert len(acked) == CLUSTER_RECORDS
        offline = [
            line
            for line in cluster.log_lines(1)
            if '"partition offline after a storage error"' in line
        ]
        assert len(offline) == 1 and f'"{TOPIC}-0"' in offline[0], offline
        assert f'"during": "{during}"' in offline[0], offline
        if leader == 1:  # the leader failed: another took over
            assert cluster.leader_of(TOPIC, 0) in (2, 3)
        else:  # a follower failed: the leader stayed
            assert cluster.leader_of(TOPIC, 0) == leader
        for node in (1, 2, 3):
            assert "Traceback" not in "\n".join(cluster.log_lines(node)), f"node {node}"

        records, high = _read_all(cluster.bootstrap)
        assert high == CLUSTER_RECORDS
        missing = [offset for offset, value in acked.items() if records.get(offset) != value]
        assert not missing, f"{len(missing)} acknowledged records lost, first at {missing[0]}"
