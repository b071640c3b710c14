"""Share-group administration (KIP-932, issue 20) with the Java Admin client (kafka-clients
4.3.1) against rafka, around Java KafkaShareConsumers: incrementalAlterConfigs on the GROUP
resource (share.auto.offset.reset=earliest, so a consumer started after the records were
produced gets them all), listGroups of type SHARE, describeShareGroups, listShareGroupOffsets
(start offset and lag), alterShareGroupOffsets (refused while a consumer is in the group; then
the next consumer gets the records again from the new offset), deleteShareGroupOffsets and
deleteShareGroups.

The admin is compat-tests/java/src/test-only/ShareGroupAdmin.java, one JVM answering commands
on stdin; the consumers are share_support's ShareMember (ShareGroupMember.java).
"""

from __future__ import annotations

import queue
from pathlib import Path

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka.admin import AdminClient, NewTopic
from java_process import JavaProcess
from share_support import JAVA_GROUP as GROUP
from share_support import JAVA_TOPIC as TOPIC
from share_support import ShareMember, produce_values, share_classpath

pytestmark = pytest.mark.timeout(300)

ADMIN_SOURCE = (
    Path(__file__).resolve().parents[2]
    / "compat-tests"
    / "java"
    / "src"
    / "test-only"
    / "ShareGroupAdmin.java"
)
RECORDS = 200
NOT_EMPTY = "GroupNotEmptyException"


class AdminProcess(JavaProcess):
    """The Java Admin client: one command at a time, its answer lines up to "done"."""

    def __init__(self, bootstrap: str, classpath: str) -> None:
        self.answers: queue.Queue[str] = queue.Queue()
        super().__init__("admin", classpath, ADMIN_SOURCE, bootstrap)

    def on_line(self, kind: str, rest: str) -> bool:
        if kind == "closed":
            return False
        self.answers.put(f"{kind} {rest}".rstrip())
        return True

    def run(self, command: str) -> list[str]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        lines = []
        while True:
            try:
                line = self.answers.get(timeout=60)
            except queue.Empty:
                raise AssertionError(f"no answer to {command!r}: {self.output[-20:]}") from None
            if line == "done":
                return lines
            lines.append(line)


def accepted(member: ShareMember) -> set[int]:
    return {value for value, _, how in member.snapshot() if how == "A"}


def test_java_admin_share_group_offsets(broker_factory) -> None:
    classpath = share_classpath()
    broker: BrokerProcess = broker_factory(**{"group.share.heartbeat.interval.ms": "500"}).start()
    bootstrap = broker.bootstrap
    topics = AdminClient({"bootstrap.servers": bootstrap})
    topics.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    produce_values(bootstrap, range(RECORDS), RECORDS)
    admin = AdminProcess(bootstrap, classpath)
    members: list[ShareMember] = []
    try:
        assert admin.run(f"config {GROUP} share.auto.offset.reset earliest") == ["configured"]
        bad = admin.run(f"config {GROUP} share.auto.offset.reset soonest")
        assert len(bad) == 1 and "InvalidConfigurationException" in bad[0], bad

        # earliest: a consumer started after the records were produced gets every one.
        first = ShareMember("first", bootstrap, classpath, "accept")
        members.append(first)
        wait_until(
            lambda: accepted(first) == set(range(RECORDS)),
            90,
            f"every record accepted ({len(accepted(first))}; {first.output[-5:]})",
        )
        assert {delivery for _, delivery, _ in first.snapshot()} == {1}

        def start_offset() -> str:
            (line,) = admin.run(f"offsets {GROUP}")
            return line.split()[3]

        wait_until(lambda: start_offset() == str(RECORDS), 60, "the acknowledgements committed")
        (offset,) = admin.run(f"offsets {GROUP}")
        _, topic, partition, start, leader_epoch, lag = offset.split()
        assert (topic, partition, start, lag) == (TOPIC, "0", str(RECORDS), "0")
        assert int(leader_epoch) >= 0

        # While it is a member: listed Stable, described, nothing may change.
        assert admin.run("list") == [f"group {GROUP} Share Stable"]
        described = admin.run(f"describe {GROUP}")
        assert len(described) == 1 and described[0].startswith(f"described {GROUP} Stable ")
        assert described[0].split()[-2:] == ["1", "first"]
        (refused,) = admin.run(f"alter {GROUP} {TOPIC}:0=0")
        assert refused.startswith(f"alter-failed {TOPIC} 0") and NOT_EMPTY in refused, refused
        (refused,) = admin.run(f"delete-offsets {GROUP} {TOPIC}")
        assert refused.startswith("delete-offsets-failed") and NOT_EMPTY in refused, refused
        (refused,) = admin.run(f"delete {GROUP}")
        assert refused.startswith("delete-failed") and NOT_EMPTY in refused, refused
        first.finish()
        wait_until(
            lambda: admin.run("list") == [f"group {GROUP} Share Empty"], 30, "the group empty"
        )

        # Back to offset 150: the next consumer gets the last 50 records again, afresh.
        failed, done = sorted(admin.run(f"alter {GROUP} {TOPIC}:0=150 {TOPIC}:5=0"))
        assert done == f"altered {TOPIC} 0"
        assert failed.startswith(f"alter-failed {TOPIC} 5 "), failed
        assert "UnknownTopicOrPartitionException" in failed, failed
        (offset,) = admin.run(f"offsets {GROUP}")
        assert offset.split()[3::2] == ["150", "50"], offset  # start offset, lag
        second = ShareMember("second", bootstrap, classpath, "accept")
        members.append(second)
        wait_until(
            lambda: accepted(second) == set(range(150, RECORDS)),
            90,
            f"the records past 150 again ({len(accepted(second))}; {second.output[-5:]})",
        )
        assert {delivery for _, delivery, _ in second.snapshot()} == {1}
        second.finish()
        wait_until(
            lambda: admin.run("list") == [f"group {GROUP} Share Empty"], 30, "the group empty"
        )

        # Deleting the topic's offsets, then the group.
        assert admin.run(f"delete-offsets {GROUP} {TOPIC}") == [f"deleted-offsets {TOPIC}"]
        assert admin.run(f"offsets {GROUP}") == []
        assert admin.run(f"offsets {GROUP} {TOPIC}:0") == [f"offset {TOPIC} 0 none"]
        assert admin.run(f"delete {GROUP}") == [f"deleted {GROUP}"]
        assert admin.run("list") == []
        (missing,) = admin.run(f"describe {GROUP}")
        assert "GroupIdNotFoundException" in missing, missing
        (missing,) = admin.run(f"delete {GROUP}")
        assert "GroupIdNotFoundException" in missing, missing
        admin.finish()
    finally:
        for member in members:
            member.kill()
        admin.kill()
