"""`rafka group` (run as a subprocess) on a consumer-protocol group (KIP-848) of confluent-kafka
consumers with `group.protocol=consumer`: `list` shows its type, `describe --members` the
members' epochs and assignments (`--verbose`: the target assignment too), `describe --state` the
group epoch and the server-side assignor, the offsets view the lag; a classic group beside it
keeps its view."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from group_support import Ledger, MemberThread

pytestmark = pytest.mark.timeout(150)

TOPIC = "orders"
GROUP = "next-gen-cli"
CLASSIC_GROUP = "old-style"
PARTITIONS = 4
RECORDS = 400
BROKER_OVERRIDES = {
    "group.consumer.heartbeat.interval.ms": "300",
    "group.consumer.min.heartbeat.interval.ms": "100",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "1000",
    "broker.rack": "rack-1",
}


class Member(MemberThread):
    """A consumer-protocol member that commits everything it reads, synchronously."""

    def __init__(self, name: str, bootstrap: str, ledger: Ledger) -> None:
        super().__init__(name, bootstrap, ledger)
        self.partitions: set[int] = set()
        self.member_id = ""
        self.lock = threading.Lock()

    def consume(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": GROUP,
                "group.protocol": "consumer",
                "client.id": self.name,
                "client.rack": f"rack-{self.name[-1]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "log_level": 2,
            }
        )

        def on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            with self.lock:
                self.partitions |= {tp.partition for tp in partitions}

        def on_revoke(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            with self.lock:
                self.partitions -= {tp.partition for tp in partitions}

        consumer.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke)
        try:
            while not self.stop_event.is_set():
                messages = consumer.consume(100, 0.1)
                self.member_id = consumer.memberid() or self.member_id
                values = [int(m.value()) for m in messages if m.error() is None]
                if values:
                    self.record(values)
                    try:
                        consumer.commit(asynchronous=False)
                    except KafkaException:
                        pass  # retried with the next batch's commit
        finally:
            consumer.close()

    def owned(self) -> set[int]:
        with self.lock:
            return set(self.partitions)


def rafka(bootstrap: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "rafka", "group", *args, "--bootstrap-server", bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def rafka_json(bootstrap: str, *args: str) -> Any:
    return json.loads(rafka(bootstrap, *args, "--json").stdout)


def table(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def produce(bootstrap: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 2})
    for value in range(RECORDS):
        producer.produce(TOPIC, str(value).encode(), partition=value % PARTITIONS)
    assert producer.flush(30) == 0


def committed_to_end(bootstrap: str) -> bool:
    described = rafka_json(bootstrap, "describe", "--group", GROUP)
    return len(described["offsets"]) == PARTITIONS and all(
        o["lag"] == 0 for o in described["offsets"]
    )


def test_describe_and_list_a_consumer_protocol_group(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    bootstrap = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    produce(bootstrap)
    ledger = Ledger()
    members = [Member(name, bootstrap, ledger) for name in ("m1", "m2")]
    for member in members:
        member.start()
    classic = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": CLASSIC_GROUP,
            "client.id": "classic-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    try:
        wait_until(
            lambda: all(len(m.owned()) == 2 for m in members) and ledger.distinct == RECORDS,
            60,
            "two members with two partitions each, everything read",
        )
        wait_until(lambda: committed_to_end(bootstrap), 30, "every offset committed")
        ids = {m.name: m.member_id for m in members}
        assert all(ids.values())

        # describe --json: the group as ConsumerGroupDescribe shows it.
        described = rafka_json(bootstrap, "describe", "--group", GROUP)
        assert described["exists"] and described["type"] == "consumer"
        assert described["state"] == "Stable"
        assert described["assignment_strategy"] == "uniform"  # the default server assignor
        epoch = described["group_epoch"]
        assert epoch >= 2 and described["assignment_epoch"] == epoch
        by_client = {m["client_id"]: m for m in described["members"]}
        assert sorted(by_client) == ["m1", "m2"]
        for name, m in by_client.items():
            assert m["member_id"] == ids[name]
            assert m["member_epoch"] == epoch  # reconciled: at the group's epoch
            assert m["assignment"] == m["target_assignment"]
            owned = {tp["partition"] for tp in m["assignment"]}
            assert {tp["topic"] for tp in m["assignment"]} == {TOPIC}
            assert owned == next(x for x in members if x.name == name).owned()
            assert m["host"] == "/127.0.0.1"
            assert m["upgraded"] is True
            assert m["rack_id"] == f"rack-{name[-1]}"  # client.rack, sent in the heartbeat
        assert {o["consumer_id"] for o in described["offsets"]} == set(ids.values())
        assert all(o["current_offset"] == RECORDS // PARTITIONS for o in described["offsets"])

        # describe --members: epochs and assignments in Kafka's columns.
        rows = table(rafka(bootstrap, "describe", "--group", GROUP, "--members").stdout)
        assert rows[0] == [
            "GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS",
            "CURRENT-EPOCH", "CURRENT-ASSIGNMENT",
        ]  # fmt: skip
        shown = {r[1]: r for r in rows[1:]}
        assert set(shown) == set(ids.values())
        for name, member_id in ids.items():
            row = shown[member_id]
            assert row[2] == "-"  # no group.instance.id
            assert row[4] == name and row[5] == "2" and row[6] == str(epoch)
            mine = sorted(next(x for x in members if x.name == name).owned())
            assert row[7] == f"{TOPIC}:{','.join(map(str, mine))}"

        verbose = table(
            rafka(bootstrap, "describe", "--group", GROUP, "--members", "--verbose").stdout
        )
        assert verbose[0][-4:] == [
            "CURRENT-EPOCH", "CURRENT-ASSIGNMENT", "TARGET-EPOCH", "TARGET-ASSIGNMENT",
        ]  # fmt: skip
        for row in verbose[1:]:
            assert row[8] == str(epoch) and row[9] == row[7]  # target reached

        # describe --state: state, epochs, assignor, members.
        state = table(rafka(bootstrap, "describe", "--group", GROUP, "--state").stdout)
        assert state[0] == [
            "GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY", "STATE", "GROUP-EPOCH",
            "TARGET-ASSIGNMENT-EPOCH", "#MEMBERS",
        ]  # fmt: skip
        assert state[1][0] == GROUP and state[1][3:] == ["uniform", "Stable", str(epoch)] + [
            str(epoch),
            "2",
        ]

        # The offsets view: lag 0 on every partition, owned by the members.
        offsets = table(rafka(bootstrap, "describe", "--group", GROUP).stdout)
        assert offsets[0][:6] == [
            "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
        ]  # fmt: skip
        assert sorted(int(r[2]) for r in offsets[1:]) == list(range(PARTITIONS))
        assert all(r[5] == "0" and r[6] in ids.values() for r in offsets[1:])

        # A classic group beside it: listed as classic, described by DescribeGroups.
        classic.subscribe([TOPIC])
        wait_until(lambda: classic.poll(0.2) is not None, 30, "the classic member's records")
        listed = {g["group"]: g for g in rafka_json(bootstrap, "list")}
        assert listed[GROUP]["type"] == "consumer" and listed[GROUP]["state"] == "Stable"
        assert listed[CLASSIC_GROUP]["type"] == "classic"
        only = rafka_json(bootstrap, "list", "--type", "consumer")
        assert [g["group"] for g in only] == [GROUP]
        assert [g["group"] for g in rafka_json(bootstrap, "list", "--type", "classic")] == [
            CLASSIC_GROUP
        ]
        listing = table(rafka(bootstrap, "list", "--type", "classic,consumer").stdout)
        assert listing[0] == ["GROUP", "STATE", "PROTOCOL-TYPE", "TYPE"]
        assert {r[0]: r[3] for r in listing[1:]} == {GROUP: "consumer", CLASSIC_GROUP: "classic"}
        bad = rafka(bootstrap, "list", "--type", "streams", ok=False)
        assert bad.returncode == 1 and "invalid group type" in bad.stderr

        old = rafka_json(bootstrap, "describe", "--group", CLASSIC_GROUP)
        assert old["type"] == "classic" and old["group_epoch"] is None
        assert [m["client_id"] for m in old["members"]] == ["classic-reader"]
        classic_members = table(
            rafka(bootstrap, "describe", "--group", CLASSIC_GROUP, "--members").stdout
        )
        assert classic_members[0] == [
            "GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS",
        ]  # fmt: skip

        # A group with active consumer-protocol members cannot have its offsets reset.
        refused = rafka(
            bootstrap, "reset-offsets", "-g", GROUP, "--all-topics", "--to-earliest",
            "--execute", ok=False,
        )  # fmt: skip
        assert refused.returncode == 1 and "inactive" in refused.stderr

        # Both members leave: the group is Empty, its offsets stay.
        for member in members:
            member.finish()
        wait_until(
            lambda: rafka_json(bootstrap, "describe", "--group", GROUP)["members"] == [],
            30,
            "the members gone",
        )
        empty = rafka_json(bootstrap, "describe", "--group", GROUP)
        assert empty["exists"] and empty["state"] == "Empty"
        assert all(o["current_offset"] == RECORDS // PARTITIONS for o in empty["offsets"])
        assert "has no active members" in rafka(bootstrap, "describe", "--group", GROUP).stdout
        assert "Deleted consumer group" in rafka(bootstrap, "delete", "-g", GROUP).stdout
        assert rafka_json(bootstrap, "describe", "-g", GROUP)["exists"] is False
    finally:
        classic.close()
        for member in members:
            if member.is_alive():
                member.finish()
