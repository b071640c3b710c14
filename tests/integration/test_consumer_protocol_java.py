"""The consumer group protocol (KIP-848) with a Java kafka-clients 4.x member and confluent-kafka
members in one group (issue 19, "done when" 1, both clients together): the Java member and a
confluent-kafka member split four partitions, a second confluent-kafka member joins, the first
leaves, and every record is consumed exactly once; ConsumerGroupDescribe shows the Java member
and the remaining confluent-kafka member owning the partitions between them.

The Java member is compat-tests/java/src/test-only/ConsumerProtocolMember.java, run as a single
source file on the jars of compat-tests/java's kafka-4 profile (built with Maven if missing).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka import ConsumerGroupType
from group_support import Ledger
from java_process import JavaProcess
from test_consumer_protocol import (
    BROKER_OVERRIDES,
    GROUP,
    PARTITIONS,
    TOPIC,
    Member,
    all_committed,
    create_topic,
    describe,
    produce,
)

pytestmark = pytest.mark.timeout(240)

JAVA_DIR = Path(__file__).resolve().parents[2] / "compat-tests" / "java"
SOURCE = JAVA_DIR / "src" / "test-only" / "ConsumerProtocolMember.java"
LIB = JAVA_DIR / "target" / "kafka-4" / "lib"


def java_classpath() -> str:
    """The kafka-clients 4.x jars (built by Maven's kafka-4 profile if not yet there)."""
    if shutil.which("java") is None:
        pytest.skip("Java member skipped: java not installed")
    if not any(LIB.glob("kafka-clients-4*.jar")):
        if shutil.which("mvn") is None:
            pytest.skip("Java member skipped: mvn not installed (kafka-clients 4.x not built)")
        subprocess.run(
            ["mvn", "-B", "-q", "-Dstyle.color=never", "-P", "kafka-4", "process-classes"],
            cwd=JAVA_DIR,
            check=True,
            timeout=600,
        )
    return f"{LIB}/*"


class JavaMember(JavaProcess):
    """The Java member in its own process; its report lines kept the way `Member` keeps its
    state: partitions it owns, partitions it lost, values it consumed (into the ledger)."""

    def __init__(self, name: str, bootstrap: str, ledger: Ledger, classpath: str) -> None:
        self.ledger = ledger
        self.partitions: set[int] = set()
        self.lost = 0
        super().__init__(name, classpath, SOURCE, bootstrap, GROUP, TOPIC, name)

    def on_line(self, kind: str, rest: str) -> bool:
        if kind == "records":
            self.ledger.add([int(value) for value in rest.split()])
            return True
        if kind not in ("assigned", "revoked", "lost"):
            return False  # "commit-failed ...", "closed": kept in `output`
        named = {int(p) for p in rest.split(",") if p}
        if kind == "assigned":
            self.partitions |= named
        elif kind == "revoked":
            self.partitions -= named
        elif kind == "lost":
            self.lost += len(named)
            self.partitions -= named
        return False

    def finish(self, timeout: float = 30) -> None:
        super().finish(timeout)


def test_a_java_member_and_confluent_kafka_members_share_a_group(broker_factory) -> None:
    classpath = java_classpath()
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    bootstrap = broker.bootstrap
    create_topic(bootstrap)
    produce(bootstrap, range(4000))
    ledger = Ledger()
    java = JavaMember("java-1", bootstrap, ledger, classpath)
    first, second = Member("m1", bootstrap, ledger), Member("m2", bootstrap, ledger)
    try:
        first.start()
        wait_until(
            lambda: len(java.partitions) == len(first.partitions) == 2,
            60,
            f"the Java member and m1 to split the partitions ({java.output[-5:]})",
        )
        assert java.partitions | first.partitions == set(range(PARTITIONS))
        second.start()
        wait_until(lambda: second.partitions, 30, "the second confluent-kafka member's partitions")
        produce(bootstrap, range(4000, 8000))
        first.finish()  # leaves: its partitions move to the others
        wait_until(
            lambda: java.partitions | second.partitions == set(range(PARTITIONS)),
            30,
            "m1's partitions taken over",
        )
        assert not java.partitions & second.partitions
        produce(bootstrap, range(8000, 12000))
        wait_until(all_committed(bootstrap, ledger, 12000), 60, "everything committed")
        # Stable once every member acknowledged its assignment on a heartbeat (the Java
        # client's callback may run before that heartbeat; librdkafka shows Reconciling as
        # UNKNOWN).
        states: list[str] = []

        def stable():
            described = describe(bootstrap)
            states.append(described.state.name)
            return described if states[-1] == "STABLE" else None

        wait_until(stable, 10, "the group to be Stable")
        described = stable()
        assert described is not None
        assert described.type == ConsumerGroupType.CONSUMER
        assert {m.client_id for m in described.members} == {"java-1", "m2"}
        owned = [tp.partition for m in described.members for tp in m.assignment.topic_partitions]
        assert sorted(owned) == list(range(PARTITIONS))
        java.finish()
    finally:
        java.kill()
        for member in (first, second):
            if member.is_alive():
                member.finish()
    counts = ledger.snapshot()
    assert set(counts) == set(range(12000))
    assert [v for v, n in counts.items() if n != 1] == []
    assert java.lost == first.lost == second.lost == 0
    assert not [line for line in java.output if line.startswith("commit-failed")]
