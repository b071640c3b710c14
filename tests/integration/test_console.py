"""`rafka produce` and `rafka consume` as subprocesses against a real broker: keys, values and
headers round-trip in Kafka's text formats and as JSON, a group continues from the offsets it
committed (checked with confluent-kafka), two members split the partitions, and errors are one
line with exit status 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from admin_support import QUIET, create_topic
from broker_process import BrokerProcess, free_port
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.timeout(120)

RUN_TIMEOUT = 60  # seconds any one command may take


def rafka(broker: BrokerProcess | str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    bootstrap = broker if isinstance(broker, str) else broker.bootstrap
    return subprocess.run(
        [sys.executable, "-m", "rafka", *args, "--bootstrap-server", bootstrap],
        input=stdin.encode(), capture_output=True, timeout=RUN_TIMEOUT,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def consume_json(broker: BrokerProcess, *args: str) -> list[dict]:
    out = ok(rafka(broker, "consume", "--format", "json", "--timeout-ms", "10000", *args))
    return [json.loads(line) for line in out.splitlines()]


def committed(broker: BrokerProcess, group: str, topic: str, partitions: int) -> list[int]:
    reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, **QUIET})
    try:
        found = reader.committed([TopicPartition(topic, p) for p in range(partitions)], 15)
        return [tp.offset for tp in found]
    finally:
        reader.close()


def test_keys_values_and_headers_round_trip_in_kafkas_text_format(broker) -> None:
    lines = [
        "h1:v1,h2:v2\tkey-1\tfirst value",
        "trace:abc\tkey-2\tsecond\tvalue with a tab",
        "empty:\tNULL\tno key",
        "h:NULL\tkey-4\tNULL",
    ]
    ok(rafka(broker, "produce", "--topic", "text", "--property", "parse.key=true",
             "--property", "parse.headers=true", "--property", "null.marker=NULL",
             stdin="\n".join(lines) + "\n"))

    out = ok(rafka(broker, "consume", "--topic", "text", "--from-beginning",
                   "--max-messages", "4", "--timeout-ms", "10000",
                   "--property", "print.key=true", "--property", "print.headers=true",
                   "--property", "print.offset=true", "--property", "print.partition=true"))
    assert out.splitlines() == [
        "Partition:0\tOffset:0\th1:v1,h2:v2\tkey-1\tfirst value",
        "Partition:0\tOffset:1\ttrace:abc\tkey-2\tsecond\tvalue with a tab",
        "Partition:0\tOffset:2\tempty:\tnull\tno key",
        "Partition:0\tOffset:3\th:null\tkey-4\tnull",
    ]
    # Kafka's key.separator option on both sides, and values only by default.
    ok(rafka(broker, "produce", "--topic", "colon", "--property", "parse.key=true",
             "--property", "key.separator=:", stdin="k1:v1\nk2:v:2\n"))
    keyed = ok(rafka(broker, "consume", "--topic", "colon", "--from-beginning",
                     "--max-messages", "2", "--timeout-ms", "10000",
                     "--property", "print.key=true", "--property", "key.separator=:"))
    assert keyed.splitlines() == ["k1:v1", "k2:v:2"]
    plain = ok(rafka(broker, "consume", "--topic", "colon", "--partition", "0",
                     "--offset", "1", "--max-messages", "1", "--timeout-ms", "10000"))
    assert plain == "v:2\n"


def test_json_format_carries_keys_values_headers_and_positions(broker) -> None:
    create_topic(broker.bootstrap, "json", partitions=2)
    before = int(time.time() * 1000)
    records = [
        {"key": "a", "value": "one", "headers": [{"key": "h", "value": "1"}], "partition": 1},
        {"key": None, "value": "two", "headers": {"x": "y", "z": None}, "partition": 1},
        {"key": "c", "value": None, "partition": 0, "timestamp": 1700000000000},
        {"value": {"nested": [1, 2]}, "partition": 0},
    ]
    ok(rafka(broker, "produce", "--topic", "json", "--format", "json",
             "--compression-codec", "zstd", "--request-required-acks", "1",
             stdin="".join(json.dumps(r) + "\n" for r in records)))

    got = consume_json(broker, "--topic", "json", "--from-beginning", "--max-messages", "4")
    by_position = {(m["partition"], m["offset"]): m for m in got}
    assert set(by_position) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    first = by_position[(1, 0)]
    assert (first["key"], first["value"], first["headers"]) == ("a", "one",
                                                                 [{"key": "h", "value": "1"}])
    assert first["timestamp_type"] == "CreateTime" and first["timestamp"] >= before
    second = by_position[(1, 1)]
    assert second["key"] is None and second["value"] == "two"
    assert second["headers"] == [{"key": "x", "value": "y"}, {"key": "z", "value": None}]
    assert by_position[(0, 0)]["value"] is None
    assert by_position[(0, 0)]["timestamp"] == 1700000000000
    assert json.loads(by_position[(0, 1)]["value"]) == {"nested": [1, 2]}
    assert by_position[(0, 1)]["headers"] == []

    # Keyed records land where Kafka's default partitioner puts them.
    ok(rafka(broker, "produce", "--topic", "json", "--property", "parse.key=true",
             "--property", "key.separator=:", "--producer-property", "acks=0",
             stdin="".join(f"key-{i}:v{i}\n" for i in range(20))))
    from kafka.partitioner.default import murmur2

    keyed = consume_json(broker, "--topic", "json", "--from-beginning", "--max-messages", "24")
    placed = {m["key"]: m["partition"] for m in keyed if m["key"] and m["key"].startswith("key")}
    assert placed == {
        f"key-{i}": (murmur2(f"key-{i}".encode()) & 0x7FFFFFFF) % 2 for i in range(20)
    }


def test_group_commits_and_a_second_run_continues(broker) -> None:
    create_topic(broker.bootstrap, "grouped", partitions=1)
    ok(rafka(broker, "produce", "--topic", "grouped", stdin="".join(f"m{i}\n" for i in range(10))))

    first = ok(rafka(broker, "consume", "--topic", "grouped", "--group", "g", "--from-beginning",
                     "--max-messages", "3", "--timeout-ms", "10000"))
    assert first.splitlines() == ["m0", "m1", "m2"]
    assert committed(broker, "g", "grouped", 1) == [3]

    second = ok(rafka(broker, "consume", "--topic", "grouped", "--group", "g",
                      "--max-messages", "7", "--timeout-ms", "10000"))
    assert second.splitlines() == [f"m{i}" for i in range(3, 10)]
    assert committed(broker, "g", "grouped", 1) == [10]

    # Nothing left: the next run waits --timeout-ms, prints nothing and exits 0.
    result = rafka(broker, "consume", "--topic", "grouped", "--group", "g", "--timeout-ms", "500")
    assert ok(result) == ""
    assert result.stderr.decode().strip() == "Processed a total of 0 messages"


@pytest.fixture
def members(broker) -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


def test_two_members_split_the_partitions(broker, members) -> None:
    create_topic(broker.bootstrap, "shared", partitions=4)
    for _ in range(2):
        members.append(subprocess.Popen(
            [sys.executable, "-m", "rafka", "consume", "--bootstrap-server", broker.bootstrap,
             "--topic", "shared", "--group", "pair", "--from-beginning", "--format", "json",
             "--consumer-property", "heartbeat.interval.ms=200"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    deadline = time.monotonic() + 30
    while True:  # until both are members with two partitions each
        group = admin.describe_consumer_groups(["pair"])["pair"].result(10)
        sizes = sorted(len(m.assignment.topic_partitions) for m in group.members)
        if sizes == [2, 2] and str(group.state).endswith("STABLE"):
            break
        assert time.monotonic() < deadline, f"group never settled: {group.state} {sizes}"
        time.sleep(0.1)  # polling the group's state: no event to wait on from here
    ok(rafka(broker, "produce", "--topic", "shared", "--property", "parse.key=true",
             stdin="".join(f"k{i}\tv{i}\n" for i in range(40))))

    deadline = time.monotonic() + 30
    while sum(committed(broker, "pair", "shared", 4)) < 40:
        assert time.monotonic() < deadline, "the members did not commit everything"
        time.sleep(0.2)
    outputs = []
    for process in members:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 128 + signal.SIGTERM, err.decode()
        outputs.append([json.loads(line) for line in out.decode().splitlines()])
    partitions = [{m["partition"] for m in out} for out in outputs]
    assert partitions[0].isdisjoint(partitions[1])
    assert sorted(m["value"] for out in outputs for m in out) == sorted(f"v{i}" for i in range(40))
    assert committed(broker, "pair", "shared", 4) == [
        len([m for out in outputs for m in out if m["partition"] == p]) for p in range(4)
    ]


def test_errors_are_one_line_and_exit_status_1(broker_factory) -> None:
    broker = broker_factory(**{"auto.create.topics.enable": "false"}).start()
    for command in (["produce", "--topic", "missing"], ["consume", "--topic", "missing"]):
        result = rafka(broker, *command, stdin="x\n")
        assert result.returncode == 1
        assert result.stderr.decode().splitlines() == [
            "rafka: error: topic 'missing' does not exist"
        ]

    unreachable = f"127.0.0.1:{free_port()}"
    for command in (["produce", "--topic", "t"], ["consume", "--topic", "t"]):
        result = rafka(unreachable, *command, stdin="x\n")
        assert result.returncode == 1
        [line] = result.stderr.decode().splitlines()
        assert line.startswith(f"rafka: error: cannot connect to {unreachable}")

    create_topic(broker.bootstrap, "strict")
    result = rafka(broker, "produce", "--topic", "strict", "--property", "parse.key=true",
                   stdin="no separator here\n")
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "rafka: error: No key separator found on line number 1: 'no separator here'"
    ]
    result = rafka(broker, "consume", "--topic", "strict", "--offset", "3")
    assert (result.returncode, result.stderr.decode()) == (
        1, "rafka: error: --offset needs --partition\n"
    )
