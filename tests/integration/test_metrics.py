"""The Prometheus endpoint (rafka.metrics.port) of a real broker process, fed by real clients and
read over HTTP as Prometheus reads it."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from broker_process import free_port
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

QUIET = {"log_level": 3}  # librdkafka: errors only
TOPIC = "metered"
# Records produced to each partition, and the offset the group commits there.
PRODUCED = {0: 12, 1: 7, 2: 11}
COMMITTED = {0: 5, 1: 7, 2: 0}
GROUP = "lagging"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int, *, compressed: bool = False) -> Samples:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if compressed:
        request.add_header("Accept-Encoding", "gzip")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = response.read()
        if compressed:
            assert response.headers["Content-Encoding"] == "gzip"
            body = gzip.decompress(body)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape_until(port: int, holds: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until `holds` is true of a scrape (the state catches up within a fetch or two)."""
    deadline = time.monotonic() + 15
    while True:
        samples = scrape(port)
        if holds(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never showed {what}")
        time.sleep(0.05)


def produce_and_commit(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    admin.create_topics([NewTopic(TOPIC, len(PRODUCED), 1)])[TOPIC].result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", **QUIET})
    for partition, count in PRODUCED.items():
        for i in range(count):
            producer.produce(TOPIC, value=f"record {i}".encode(), partition=partition)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False, **QUIET}
    )
    try:
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in PRODUCED])
        consumed = 0
        deadline = time.monotonic() + 30
        while consumed < sum(PRODUCED.values()) and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                assert message.error() is None, message.error()
                consumed += 1
        assert consumed == sum(PRODUCED.values())
        positions = [TopicPartition(TOPIC, p, offset) for p, offset in COMMITTED.items()]
        consumer.commit(offsets=positions, asynchronous=False)
    finally:
        consumer.close()


def test_metrics_endpoint_reports_traffic_lag_and_partition_state(broker_factory) -> None:
    port = free_port()
    broker = broker_factory(
        **{"rafka.metrics.port": str(port), "rafka.metrics.host": "127.0.0.1"}
    ).start()
    produce_and_commit(broker.bootstrap)

    def lag_reported(samples: Samples) -> bool:
        return all(
            value(samples, "rafka_consumer_group_lag", group=GROUP, topic=TOPIC, partition=str(p))
            is not None
            for p in PRODUCED
        )

    samples = scrape_until(port, lag_reported, "the group's lag")
    for partition, produced in PRODUCED.items():
        labels = {"topic": TOPIC, "partition": str(partition)}
        lag = value(samples, "rafka_consumer_group_lag", group=GROUP, **labels)
        assert lag == produced - COMMITTED[partition], partition
        assert value(samples, "rafka_partition_high_watermark", **labels) == produced
    assert value(samples, "rafka_topic_messages_in_total", topic=TOPIC) == sum(PRODUCED.values())
    assert value(samples, "rafka_topic_bytes_in_total", topic=TOPIC) > 0
    assert value(samples, "rafka_topic_bytes_out_total", topic=TOPIC) > 0
    for api in ("Produce", "Fetch", "Metadata", "OffsetCommit"):
        assert value(samples, "rafka_request_duration_seconds_count", api=api) > 0, api
        assert value(samples, "rafka_request_duration_seconds_bucket", api=api, le="+Inf") > 0
    assert value(samples, "rafka_log_flush_duration_seconds_count") > 0
    assert value(samples, "rafka_log_flush_duration_seconds_sum") > 0
    assert value(samples, "rafka_under_replicated_partitions") == 0
    assert value(samples, "rafka_offline_partitions") == 0
    assert value(samples, "rafka_metadata_quorum_leader") == 1
    assert value(samples, "rafka_metadata_quorum_epoch") >= 1
    # A single node has no followers to lag.
    assert not any(name == "rafka_partition_follower_lag_records" for name, _ in samples)

    compressed = scrape(port, compressed=True)
    assert value(compressed, "rafka_topic_messages_in_total", topic=TOPIC) == 30
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=10)
    assert missing.value.code == 404
    assert broker.stop() == 0


def test_metrics_port_in_use_stops_the_broker_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [
            sys.executable, "-m", "rafka", "broker",
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}",
            "--override", f"log.dirs={tmp_path / 'data'}",
            "--override", "rafka.metrics.host=127.0.0.1",
            "--override", f"rafka.metrics.port={port}",
        ]  # fmt: skip
        env = {**os.environ, "RAFKA_LOG_FORMAT": "json"}
        finished = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 1, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if '"level": "error"' in line]
    assert len(errors) == 1, output
    assert f"rafka.metrics.port: cannot serve metrics on 127.0.0.1:{port}" in errors[0]
    assert "in use" in errors[0]
