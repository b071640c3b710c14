"""Several log.dirs (JBOD) on one broker: placement by Kafka's fewest-partitions rule, restarts
clean and after kill -9, DescribeLogDirs (kafka-python), AlterReplicaLogDirs (raw requests, as
no Python client offers it) moving a partition under a continuous acks=all producer, and a
kill -9 in the middle of a move."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from admin_support import create_topic, kafka_python_admin
from broker_process import BrokerProcess
from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition
from kio.schema.alter_replica_log_dirs.v2.request import (
    AlterReplicaLogDir,
    AlterReplicaLogDirsRequest,
    AlterReplicaLogDirTopic,
)
from kio.schema.alter_replica_log_dirs.v2.response import AlterReplicaLogDirsResponse
from raw_client import RawClient

CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"
QUIET = {"log_level": 2}
LOG_DIR_NOT_FOUND = 57
REPLICA_NOT_AVAILABLE = 9
UNKNOWN_TOPIC_OR_PARTITION = 3


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def two_dir_broker(factory, tmp_path: Path) -> tuple[BrokerProcess, Path, Path]:
    first, second = tmp_path / "disk0", tmp_path / "disk1"
    broker = factory(first, **{"log.dirs": f"{first},{second}"})
    return broker.start(), first, second


def partition_dirs(log_dir: Path, topic: str) -> set[int]:
    found = set()
    for name in os.listdir(log_dir):
        stem, dash, number = name.rpartition("-")
        if stem == topic and dash and number.isdigit():
            found.add(int(number))
    return found


def produce_numbered(bootstrap: str, topic: str, partitions: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", **QUIET})
    errors: list[object] = []
    for i in range(count):
        producer.produce(
            topic,
            f"{i}".encode(),
            partition=i % partitions,
            on_delivery=lambda err, _msg: err and errors.append(err),
        )
    assert producer.flush(30) == 0 and not errors, errors


def read_all(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "timed out reading back"
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
        return values
    finally:
        consumer.close()


def restart(broker: BrokerProcess, *, crash: bool) -> None:
    if crash:
        broker.kill()
    else:
        assert broker.stop() == 0
    broker.start()


def alter_log_dir(bootstrap: str, path: str, topic: str, partitions: list[int]) -> dict:
    request = AlterReplicaLogDirsRequest(
        dirs=(
            AlterReplicaLogDir(
                path=path,
                topics=(AlterReplicaLogDirTopic(name=topic, partitions=tuple(partitions)),),
            ),
        )
    )
    with RawClient(bootstrap) as client:
        response = client.request(request, AlterReplicaLogDirsResponse)
    return {
        (t.topic_name, p.partition_index): int(p.error_code)
        for t in response.results
        for p in t.partitions
    }


def describe(bootstrap: str) -> dict[str, dict[tuple[str, int, bool], int]]:
    """log dir -> {(topic, partition, is_future): size}, through kafka-python's admin."""
    admin = kafka_python_admin(bootstrap)
    try:
        (entry,) = admin.describe_log_dirs()
    finally:
        admin.close()
    found: dict[str, dict[tuple[str, int, bool], int]] = {}
    for log_dir in entry["log_dirs"]:
        assert log_dir["error_code"] == 0
        assert log_dir["total_bytes"] > 0 and log_dir["usable_bytes"] > 0
        found[log_dir["log_dir"]] = {
            (t["name"], p["partition_index"], p["is_future_key"]): p["partition_size"]
            for t in log_dir["topics"]
            for p in t["partitions"]
        }
    return found


# -- placement and restarts -------------------------------------------------------------------


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_partitions_spread_over_dirs_and_survive_restarts(broker_factory, tmp_path, crash):
    broker, first, second = two_dir_broker(broker_factory, tmp_path)
    create_topic(broker.bootstrap, "spread", partitions=4)
    # Fewest partitions first, ties in log.dirs order: 0 -> disk0, 1 -> disk1, 2 -> disk0, ...
    assert partition_dirs(first, "spread") == {0, 2}
    assert partition_dirs(second, "spread") == {1, 3}
    assert (first / "__cluster_metadata-0").is_dir()
    assert not (second / "__cluster_metadata-0").exists()
    create_topic(broker.bootstrap, "more", partitions=1)
    assert partition_dirs(first, "more") == {0}  # tie again: the first dir
    produce_numbered(broker.bootstrap, "spread", 4, 400)

    restart(broker, crash=crash)
    assert sorted(read_all(broker.bootstrap, "spread", 4), key=int) == [
        str(i).encode() for i in range(400)
    ]
    assert partition_dirs(first, "spread") == {0, 2}
    assert partition_dirs(second, "spread") == {1, 3}
    props = [
        dict(line.split("=", 1) for line in (d / "meta.properties").read_text().split())
        for d in (first, second)
    ]
    assert props[0]["cluster.id"] == props[1]["cluster.id"]
    assert props[0]["node.id"] == props[1]["node.id"] == "1"
    assert props[0]["directory.id"] != props[1]["directory.id"]
    assert broker.stop() == 0
    assert (first / CLEAN_SHUTDOWN_MARKER).exists() and (second / CLEAN_SHUTDOWN_MARKER).exists()
    ckpt = (second / "recovery-point-offset-checkpoint").read_text().split("\n")
    assert {line.split()[0] for line in ckpt[2:] if line} == {"spread"}


def test_partition_in_two_dirs_is_refused(broker_factory, tmp_path):
    broker, first, second = two_dir_broker(broker_factory, tmp_path)
    create_topic(broker.bootstrap, "twice", partitions=1)
    assert broker.stop() == 0
    shutil.copytree(first / "twice-0", second / "twice-0")
    with pytest.raises(RuntimeError, match="did not become ready"):
        broker.start(timeout=20)
    assert any("is in two log dirs" in line for line in broker.log_lines)


# -- DescribeLogDirs and AlterReplicaLogDirs ----------------------------------------------------


def test_describe_and_alter_errors(broker_factory, tmp_path):
    broker, first, second = two_dir_broker(broker_factory, tmp_path)
    create_topic(broker.bootstrap, "described", partitions=2)
    produce_numbered(broker.bootstrap, "described", 2, 50)
    dirs = describe(broker.bootstrap)
    assert set(dirs) == {str(first.resolve()), str(second.resolve())}
    assert dirs[str(first.resolve())][("described", 0, False)] > 0
    assert dirs[str(second.resolve())][("described", 1, False)] > 0
    assert alter_log_dir(broker.bootstrap, str(tmp_path / "nowhere"), "described", [0]) == {
        ("described", 0): LOG_DIR_NOT_FOUND
    }
    assert alter_log_dir(broker.bootstrap, str(second), "missing", [0]) == {
        ("missing", 0): UNKNOWN_TOPIC_OR_PARTITION
    }
    # Already there: nothing to do.
    assert alter_log_dir(broker.bootstrap, str(second), "described", [1]) == {
        ("described", 1): 0
    }


class ContinuousProducer:
    """acks=all, idempotent, one record at a time in flight per partition; records acked."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.acked: list[bytes] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 2,
                **QUIET,
            }
        )
        self._topic = topic
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            value = f"{i}".encode() + b"." * 200
            self._producer.produce(self._topic, value, partition=0, on_delivery=self._delivered)
            i += 1
            self._producer.poll(0.001 if i % 50 else 0.02)
        self._producer.flush(30)

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked.append(msg.value())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def test_move_partition_under_load(broker_factory, tmp_path):
    broker, first, second = two_dir_broker(broker_factory, tmp_path)
    create_topic(broker.bootstrap, "moving", partitions=1, configs={"segment.bytes": "200000"})
    assert partition_dirs(first, "moving") == {0}
    producer = ContinuousProducer(broker.bootstrap, "moving")
    try:
        wait_until(lambda: len(producer.acked) >= 3000, 60, "acks before the move")
        assert alter_log_dir(broker.bootstrap, str(second), "moving", [0]) == {("moving", 0): 0}
        wait_until(lambda: partition_dirs(second, "moving") == {0}, 60, "the move")
        wait_until(lambda: not partition_dirs(first, "moving"), 30, "the old dir removed")
        acked_at_move = len(producer.acked)
        wait_until(lambda: len(producer.acked) >= acked_at_move + 2000, 60, "acks after it")
    finally:
        producer.stop()
    assert not producer.errors, producer.errors[:5]
    moved = [line for line in broker.log_lines if '"replica moved"' in line]
    assert len(moved) == 1, moved
    held_ms = json.loads(moved[0])["appends_held_ms"]
    print(f"appends held for {held_ms} ms during the swap")
    assert held_ms < 1000
    dirs = describe(broker.bootstrap)
    assert ("moving", 0, False) in dirs[str(second.resolve())]
    assert not any(k[0] == "moving" for k in dirs[str(first.resolve())])
    stored = read_all(broker.bootstrap, "moving", 1)
    assert set(producer.acked) <= set(stored)
    assert len(stored) == len(set(stored))  # idempotent: no duplicates
    restart(broker, crash=True)
    assert set(producer.acked) <= set(read_all(broker.bootstrap, "moving", 1))
    assert partition_dirs(second, "moving") == {0} and not partition_dirs(first, "moving")


def test_kill_during_move_loses_nothing(broker_factory, tmp_path):
    broker, first, second = two_dir_broker(broker_factory, tmp_path)
    create_topic(broker.bootstrap, "crashing", partitions=1, configs={"segment.bytes": "1000000"})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", **QUIET})
    for i in range(40_000):
        producer.produce("crashing", f"{i}".encode() + b"-" * 500, partition=0)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert alter_log_dir(broker.bootstrap, str(second), "crashing", [0]) == {
        ("crashing", 0): 0
    }
    wait_until(
        lambda: any(n.endswith("-future") for n in os.listdir(second)), 30, "the future dir"
    )
    broker.kill()
    broker.start()
    dirs_holding = [d for d in (first, second) if partition_dirs(d, "crashing")]
    assert len(dirs_holding) == 1
    assert not any(n.endswith("-future") for n in os.listdir(second))
    values = read_all(broker.bootstrap, "crashing", 1)
    assert [int(v.split(b"-")[0]) for v in values] == list(range(40_000))


def test_swap_interrupted_after_old_dir_renamed_completes_at_start(broker_factory, tmp_path):
    """The crash point between the two renames of the swap: the old directory is `-delete`,
    the complete copy still `-future`: the restart gives the copy the partition's name."""
    broker, first, second = two_dir_broker(broker_factory, tmp_path)
    create_topic(broker.bootstrap, "halfway", partitions=1)
    produce_numbered(broker.bootstrap, "halfway", 1, 300)
    assert broker.stop() == 0
    shutil.copytree(first / "halfway-0", second / f"halfway-0.{uuid.uuid4().hex}-future")
    os.rename(first / "halfway-0", first / f"halfway-0.{uuid.uuid4().hex}-delete")
    broker.start()
    assert partition_dirs(second, "halfway") == {0} and not partition_dirs(first, "halfway")
    assert not [n for n in os.listdir(first) if n.endswith("-delete")]
    assert sorted(read_all(broker.bootstrap, "halfway", 1), key=int) == [
        str(i).encode() for i in range(300)
    ]
