"""A consumer-protocol group (KIP-848) across a three-node cluster survives its coordinator's node
being killed (issue 19, "done when" 1: the coordinator failover). Two confluent-kafka consumers
with `group.protocol=consumer` consume a 4-partition RF=3 topic while an idempotent producer
writes a numbered sequence; each commits synchronously after every batch it processed (and in
its revocation callback). The node leading the group's `__consumer_offsets` partition is killed
(SIGKILL); a third member joins under the new coordinator and the first one leaves.

What is asserted, with every consumption and every acknowledged commit in one journal order:

* Every acknowledged record is consumed.
* A record is consumed more than once only where a commit could not have covered it: a repeat
  happens in an ownership of its partition (from an assignment to the next revocation or loss)
  that began at or above every commit acknowledged for the partition before it began, so the
  records read again are exactly those the previous owner read after its last acknowledged
  commit (the batch in flight at a handover or at the crash). Within one ownership offsets only
  increase.
* Acknowledged commits never go back, nor do the committed offsets the coordinator reports
  (sampled throughout, across the failover); at the end they equal the partitions' end offsets.
* Once the killed node is back, ConsumerGroupDescribe still shows a consumer-protocol group with
  the two remaining members owning the four partitions between them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from cluster import FAST_FAILOVER, Cluster, wait_until
from cluster_fixtures import (
    CLIENT_LOG_LEVEL,
    TRANSIENT_CONSUMER_ERRORS,
    CommitWatcher,
    SequencedProducer,
    committed_offsets,
    create_topic,
    high_watermarks,
    offsets_reader,
    retrying,
    running_cluster,
)
from confluent_kafka import Consumer, ConsumerGroupType, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from rafka.broker.coordinator.placement import partition_for

TOPIC = "orders"
PARTITIONS = 4
GROUP = "next-gen-failover"
OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_PARTITIONS = 3
OVERRIDES = {
    **FAST_FAILOVER,
    "offsets.topic.num.partitions": str(OFFSETS_PARTITIONS),
    "offsets.topic.replication.factor": "3",
    "group.consumer.heartbeat.interval.ms": "300",
    "group.consumer.min.heartbeat.interval.ms": "100",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "1000",
}
BATCH = 200
PHASE_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Consumption:
    seq: int
    member: str
    ownership: int  # which ownership of the partition (journal-wide number) it was read in
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    seq: int
    member: str
    partition: int
    offset: int


class Journal:
    """Every member's consumptions, acknowledged commits and ownerships, in one order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self.consumed: list[Consumption] = []
        self.commits: list[Commit] = []
        self.ownerships: dict[int, tuple[str, int]] = {}  # number -> (member, partition)

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def own(self, member: str, partition: int) -> int:
        with self._lock:
            number = self._next()
            self.ownerships[number] = (member, partition)
            return number

    def record(self, member: str, rows: list[tuple[int, int, int, bytes]]) -> None:
        with self._lock:
            for ownership, partition, offset, value in rows:
                self.consumed.append(
                    Consumption(self._next(), member, ownership, partition, offset, value)
                )

    def acknowledged(self, member: str, offsets: list[tuple[int, int]]) -> None:
        with self._lock:
            for partition, offset in offsets:
                self.commits.append(Commit(self._next(), member, partition, offset))

    def snapshot(self) -> tuple[list[Consumption], list[Commit]]:
        with self._lock:
            return list(self.consumed), list(self.commits)

    def consumed_values(self) -> set[bytes]:
        with self._lock:
            return {c.value for c in self.consumed}

    def highest_commits(self) -> dict[int, int]:
        with self._lock:
            highest: dict[int, int] = {}
            for commit in self.commits:
                highest[commit.partition] = max(highest.get(commit.partition, -1), commit.offset)
            return highest


class Member(threading.Thread):
    """A confluent-kafka consumer with group.protocol=consumer: consume a batch, journal it,
    commit it synchronously; commit what it read in the revocation callback too."""

    def __init__(self, name: str, bootstrap: str, journal: Journal) -> None:
        super().__init__(name=name, daemon=True)
        self.bootstrap = bootstrap
        self.journal = journal
        self.partitions: set[int] = set()
        self.lost = 0  # partitions given up without a revocation (the member was fenced)
        self.commit_failures: list[KafkaError] = []
        self.errors: list[KafkaError] = []
        self.failure: BaseException | None = None
        self._ownership: dict[int, int] = {}
        self._stopping = threading.Event()

    def finish(self) -> None:
        """Leave the group (close: member epoch -1) and check the thread ended cleanly."""
        self._stopping.set()
        self.join(30)
        assert not self.is_alive(), f"{self.name} did not stop"
        assert self.failure is None, f"{self.name}: {self.failure!r}"

    def run(self) -> None:
        try:
            self._consume()
        except BaseException as exc:  # reported by finish()
            self.failure = exc

    def _consume(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": GROUP,
                "group.protocol": "consumer",
                "client.id": self.name,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 200,
                "log_level": CLIENT_LOG_LEVEL,
            }
        )
        dirty = False

        def commit() -> bool:
            """Commit what was consumed; whether it is still to be committed."""
            try:
                committed = consumer.commit(asynchronous=False)
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError._NO_OFFSET:
                    return False
                self.commit_failures.append(error)  # coordinator moving: retried next round
                return True
            acknowledged = [
                (tp.partition, tp.offset)
                for tp in committed or ()
                if tp.error is None and tp.offset >= 0  # -1001: nothing consumed there yet
            ]
            self.journal.acknowledged(self.name, acknowledged)
            return False

        def on_assign(_consumer, partitions) -> None:
            for tp in partitions:
                self._ownership[tp.partition] = self.journal.own(self.name, tp.partition)
                self.partitions.add(tp.partition)

        def on_revoke(_consumer, partitions) -> None:
            nonlocal dirty
            if dirty:
                dirty = commit()
            self.partitions -= {tp.partition for tp in partitions}

        def on_lost(_consumer, partitions) -> None:
            self.lost += len(partitions)
            self.partitions -= {tp.partition for tp in partitions}

        consumer.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        try:
            while not self._stopping.is_set():
                rows = []
                for message in consumer.consume(BATCH, 0.1):
                    error = message.error()
                    if error is not None:
                        if error.code() not in TRANSIENT_CONSUMER_ERRORS:
                            self.errors.append(error)
                        continue
                    partition = message.partition()
                    rows.append(
                        (self._ownership[partition], partition, message.offset(), message.value())
                    )
                if rows:
                    self.journal.record(self.name, rows)
                    dirty = True
                if dirty:
                    dirty = commit()
        finally:
            consumer.close()  # leaves the group


def coordinator_node(cluster: Cluster) -> int:
    """The group's coordinator: the leader of its __consumer_offsets partition."""
    return cluster.wait_for_leader(OFFSETS_TOPIC, partition_for(GROUP, OFFSETS_PARTITIONS))


def coordinator_of(admin: AdminClient) -> int | None:
    """The group's coordinator as FindCoordinator names it (None while none answers)."""
    try:
        described = admin.describe_consumer_groups([GROUP], request_timeout=10)[GROUP].result(15)
    except KafkaException:
        return None
    return described.coordinator.id


def duplicates_beyond_uncommitted_tails(
    consumed: list[Consumption], commits: list[Commit]
) -> list[str]:
    """The consumptions the rule of the module docstring does not allow."""
    starts: dict[int, int] = {}  # ownership -> journal position of its first consumption
    for c in consumed:
        starts.setdefault(c.ownership, c.seq)
    seen: set[tuple[int, int]] = set()
    last_in_ownership: dict[int, int] = {}
    violations: list[str] = []
    for c in consumed:
        previous = last_in_ownership.get(c.ownership, -1)
        if c.offset <= previous:
            violations.append(
                f"{c.member} went back in partition {c.partition}: {previous} -> {c.offset}"
            )
        last_in_ownership[c.ownership] = c.offset
        key = (c.partition, c.offset)
        if key in seen:
            began = starts[c.ownership]
            acked = max(
                (m.offset for m in commits if m.partition == c.partition and m.seq < began),
                default=-1,
            )
            if c.offset < acked:
                violations.append(
                    f"{c.member} read {c.partition}@{c.offset} again although offset {acked} "
                    f"was committed before its ownership began"
                )
        seen.add(key)
    return violations


@pytest.mark.timeout(300)
def test_consumer_group_survives_coordinator_failover(tmp_path) -> None:
    with running_cluster(tmp_path, 3, **OVERRIDES) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS, 3)
        bootstrap = cluster.bootstrap
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": CLIENT_LOG_LEVEL})
        journal = Journal()
        producer = SequencedProducer(bootstrap, TOPIC, PARTITIONS).start()
        watcher: CommitWatcher | None = None
        reader = offsets_reader(bootstrap, GROUP)
        first, second, third = (Member(f"m{i}", bootstrap, journal) for i in (1, 2, 3))
        members = [first, second, third]
        try:
            first.start()
            second.start()
            wait_until(
                lambda: len(first.partitions) == len(second.partitions) == 2,
                PHASE_TIMEOUT,
                "the two members to split the four partitions",
            )
            assert first.partitions | second.partitions == set(range(PARTITIONS))
            wait_until(
                lambda: len(journal.highest_commits()) == PARTITIONS,
                PHASE_TIMEOUT,
                "a commit acknowledged on every partition",
            )
            watcher = CommitWatcher(bootstrap, GROUP, TOPIC, PARTITIONS).start()

            coordinator = coordinator_node(cluster)
            # FindCoordinator agrees (as the admin client's describe reports it).
            wait_until(
                lambda: coordinator_of(admin) == coordinator,
                PHASE_TIMEOUT,
                f"FindCoordinator to name node {coordinator}",
            )
            before_kill = journal.highest_commits()
            cluster.kill(coordinator)
            new_coordinator = cluster.wait_for_leader(
                OFFSETS_TOPIC, partition_for(GROUP, OFFSETS_PARTITIONS), exclude=[coordinator]
            )
            # Every commit acknowledged before the crash is still there.
            after_kill = retrying(
                lambda: committed_offsets(reader, TOPIC, PARTITIONS), "the committed offsets"
            )
            lost = {
                p: (offset, after_kill.get(p))
                for p, offset in before_kill.items()
                if after_kill.get(p, -1) < offset
            }
            assert not lost, f"acknowledged commits went backwards (before, after): {lost}"
            # The group goes on under the new coordinator: new commits on every partition.
            wait_until(
                lambda: all(
                    journal.highest_commits().get(p, -1) > before_kill[p] for p in before_kill
                ),
                PHASE_TIMEOUT,
                "new commits on every partition under the new coordinator",
            )
            assert first.partitions | second.partitions == set(range(PARTITIONS))

            third.start()
            wait_until(lambda: third.partitions, PHASE_TIMEOUT, "the third member's partitions")
            first.finish()  # leaves: its partitions move to the others
            wait_until(
                lambda: second.partitions | third.partitions == set(range(PARTITIONS)),
                PHASE_TIMEOUT,
                "the first member's partitions taken over",
            )
            assert not second.partitions & third.partitions

            producer.finish()
            assert not producer.failed, f"delivery failures: {producer.failed[:5]}"
            produced = {ack.value for ack in producer.acked}
            wait_until(
                lambda: produced <= journal.consumed_values(),
                PHASE_TIMEOUT,
                "the group to consume every acknowledged record",
            )
            ends = high_watermarks(cluster, [(TOPIC, p) for p in range(PARTITIONS)])
            wait_until(
                lambda: committed_offsets(reader, TOPIC, PARTITIONS)
                == {p: ends[(TOPIC, p)] for p in range(PARTITIONS)},
                PHASE_TIMEOUT,
                "the committed offsets to reach the end offsets",
            )

            # The killed node comes back; the group is described as before.
            cluster.restart(coordinator)
            wait_until(
                lambda: described_members(admin) == ({"m2", "m3"}, list(range(PARTITIONS))),
                PHASE_TIMEOUT,
                "ConsumerGroupDescribe to show m2 and m3 owning the four partitions",
            )
        finally:
            producer.close()
            if watcher is not None:
                watcher.stop()
            reader.close()
            for member in members:
                if member.is_alive():
                    member.finish()

        consumed, commits = journal.snapshot()
        violations = duplicates_beyond_uncommitted_tails(consumed, commits)
        assert not violations, violations[:10]
        for partition in range(PARTITIONS):
            acked = [c.offset for c in commits if c.partition == partition]
            assert acked == sorted(acked), f"acknowledged commits went back on {partition}"
        assert watcher is not None and watcher.samples > 0
        assert not watcher.regressions, (
            f"committed offsets went backwards (partition, before, after): {watcher.regressions}"
        )
        for member in members:
            assert member.lost == 0, f"{member.name} was fenced and lost partitions"
            assert not member.errors, f"{member.name}: consumer errors {member.errors[:5]}"
        repeats = len(consumed) - len({(c.partition, c.offset) for c in consumed})
        print(
            f"coordinator {coordinator} -> {new_coordinator}; {len(produced)} produced, "
            f"{len(consumed)} consumed ({repeats} read again after an uncommitted handover); "
            f"{len(commits)} acknowledged commits, "
            f"{sum(len(m.commit_failures) for m in members)} failed; "
            f"{watcher.samples} offset samples"
        )


def described_members(admin: AdminClient) -> tuple[set[str], list[int]] | None:
    """(client ids, partitions owned) of the group as ConsumerGroupDescribe shows it, if it is a
    Stable consumer-protocol group; None while it is not (or no coordinator answers)."""
    try:
        described = admin.describe_consumer_groups([GROUP], request_timeout=10)[GROUP].result(15)
    except KafkaException:
        return None
    if described.type != ConsumerGroupType.CONSUMER or described.state.name != "STABLE":
        return None
    owned = sorted(tp.partition for m in described.members for tp in m.assignment.topic_partitions)
    return {m.client_id for m in described.members}, owned
