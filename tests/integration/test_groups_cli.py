"""`rafka group` against a live broker: lag per partition equals produced minus consumed-and-
committed, state filters, member views, offset resets and deletion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from broker_process import BrokerProcess
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from typer.testing import CliRunner

from rafka.cli.main import app

pytestmark = pytest.mark.timeout(90)

TOPIC = "lagging"
GROUP = "cli-group"
PRODUCED = {0: 100, 1: 200, 2: 300}  # messages per partition
COMMITTED = {0: 10, 1: 200}  # messages consumed and committed per partition; none on 2

runner = CliRunner()


def rafka(broker: BrokerProcess, *args: str, ok: bool = True) -> Any:
    result = runner.invoke(app, ["group", *args, "--bootstrap-server", broker.bootstrap])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def rafka_json(broker: BrokerProcess, *args: str) -> Any:
    return json.loads(rafka(broker, *args, "--json").stdout)


@pytest.fixture
def consumer(broker: BrokerProcess) -> Iterator[Consumer]:
    """A group member that has read everything and committed COMMITTED messages."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, len(PRODUCED), 1)])[TOPIC].result(30)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for partition, count in PRODUCED.items():
        for i in range(count):
            producer.produce(TOPIC, f"{partition}-{i}".encode(), partition=partition)
    assert producer.flush(30) == 0

    member = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": GROUP,
            "client.id": "lag-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 200,
            "log_level": 2,
        }
    )
    member.subscribe([TOPIC])
    offsets: dict[int, list[int]] = {p: [] for p in PRODUCED}
    while sum(map(len, offsets.values())) < sum(PRODUCED.values()):
        for message in member.consume(500, 1.0):
            if message.error() is None:
                offsets[message.partition()].append(message.offset())
    member.commit(
        offsets=[
            TopicPartition(TOPIC, p, sorted(offsets[p])[count - 1] + 1)
            for p, count in COMMITTED.items()
        ],
        asynchronous=False,
    )
    yield member
    member.close()


def test_describe_shows_lag_as_produced_minus_committed(broker, consumer) -> None:
    described = rafka_json(broker, "describe", "--group", GROUP)
    assert described["state"] == "Stable"
    assert described["assignment_strategy"] == "range"
    by_partition = {o["partition"]: o for o in described["offsets"]}
    assert sorted(by_partition) == [0, 1, 2]  # assigned partitions without a commit are listed
    for partition, produced in PRODUCED.items():
        row = by_partition[partition]
        if partition in COMMITTED:
            assert row["lag"] == produced - COMMITTED[partition], row
            assert row["log_end_offset"] - row["current_offset"] == row["lag"]
        else:
            assert row["current_offset"] is None and row["lag"] is None
        assert row["consumer_id"] == consumer.memberid()
        assert row["client_id"] == "lag-reader"
        assert row["host"] == "/127.0.0.1"

    table = rafka(broker, "describe", "--group", GROUP).stdout.splitlines()
    assert table[0].split() == [
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
        "HOST", "CLIENT-ID",
    ]  # fmt: skip
    lags = {int(line.split()[2]): line.split()[5] for line in table[1:]}
    assert lags == {0: "90", 1: "0", 2: "-"}

    members = rafka(broker, "describe", "--group", GROUP, "--members").stdout
    assert consumer.memberid() in members and "lag-reader" in members
    state = rafka(broker, "describe", "--group", GROUP, "--state").stdout
    assert "Stable" in state and "range" in state


def test_list_filters_by_state(broker, consumer) -> None:
    listed = rafka_json(broker, "list")
    assert {"group": GROUP, "state": "Stable", "protocol_type": "consumer", "type": "classic"} in (
        listed
    )
    assert rafka_json(broker, "list", "--state", "Empty") == []
    assert [g["group"] for g in rafka_json(broker, "list", "--state", "Stable")] == [GROUP]


def test_reset_offsets_and_delete(broker, consumer) -> None:
    refused = rafka(broker, "reset-offsets", "-g", GROUP, "--all-topics", "--to-earliest",
                    "--execute", ok=False)  # fmt: skip
    assert refused.exit_code == 1
    assert "inactive" in refused.output and "Stable" in refused.output
    assert rafka(broker, "delete", "-g", GROUP, ok=False).exit_code == 1

    consumer.close()  # leaves the group: Empty
    plan = rafka_json(broker, "reset-offsets", "-g", GROUP, "--topic", f"{TOPIC}:0",
                      "--shift-by", "-5")  # fmt: skip
    assert plan["executed"] is False
    assert [(o["partition"], o["new_offset"]) for o in plan["offsets"]] == [(0, 5)]
    before = rafka_json(broker, "describe", "-g", GROUP)["offsets"]
    assert before[0]["current_offset"] == 10  # the dry run changed nothing

    rafka(broker, "reset-offsets", "-g", GROUP, "--topic", TOPIC, "--to-offset", "50", "--execute")
    after = {o["partition"]: o for o in rafka_json(broker, "describe", "-g", GROUP)["offsets"]}
    assert {p: o["current_offset"] for p, o in after.items()} == {0: 50, 1: 50, 2: 50}
    assert after[2]["lag"] == after[2]["log_end_offset"] - 50

    rafka(broker, "reset-offsets", "-g", GROUP, "--all-topics", "--to-latest", "--execute")
    latest = rafka_json(broker, "describe", "-g", GROUP)["offsets"]
    assert all(o["lag"] == 0 for o in latest)

    assert "Deleted consumer group" in rafka(broker, "delete", "-g", GROUP).stdout
    assert rafka_json(broker, "describe", "-g", GROUP)["exists"] is False
    again = rafka(broker, "delete", "-g", GROUP, ok=False)
    assert again.exit_code == 1 and "GROUP_ID_NOT_FOUND" in again.output


def test_unreachable_bootstrap_is_one_line_and_exit_1() -> None:
    result = runner.invoke(app, ["group", "list", "--bootstrap-server", "127.0.0.1:1"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "cannot connect" in result.output
