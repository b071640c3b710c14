"""Consumer groups across a three-node rafka cluster survive their coordinator's node being killed
(issue 6, "done when" 5): the group coordinator is the leader of the group's `__consumer_offsets`
partition; when its node dies another node takes over with every acknowledged commit, and the
group goes on consuming until it has seen every produced message."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

import pytest
from cluster import FAST_FAILOVER, Cluster, wait_until
from cluster_fixtures import (
    CLIENT_LOG_LEVEL,
    TRANSIENT_CONSUMER_ERRORS,
    SequencedProducer,
    create_topic,
    running_cluster,
)
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka.admin import AdminClient

from rafka.broker.coordinator.placement import partition_for

TOPIC = "orders"
PARTITIONS = 6
GROUP = "order-processors"
MEMBERS = 3
OFFSETS_PARTITIONS = 3
OFFSETS_TOPIC = "__consumer_offsets"
T = TypeVar("T")
OVERRIDES = {
    **FAST_FAILOVER,
    "offsets.topic.num.partitions": str(OFFSETS_PARTITIONS),
    "offsets.topic.replication.factor": "3",
}


class Progress:
    """What the group's members consumed and which commits the coordinator acknowledged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.consumed: list[tuple[int, int, bytes]] = []
        self.acked_commits: dict[int, int] = {}  # partition -> highest acknowledged offset
        self.commit_failures: list[str] = []
        self.errors: list[str] = []

    def consumed_values(self) -> set[bytes]:
        with self.lock:
            return {value for _, _, value in self.consumed}

    def count(self) -> int:
        with self.lock:
            return len(self.consumed)

    def commits(self) -> dict[int, int]:
        with self.lock:
            return dict(self.acked_commits)


class GroupMember:
    """A subscribed confluent-kafka consumer in a thread: consume a batch, commit it
    synchronously, repeat; at-least-once processing."""

    def __init__(self, bootstrap: str, name: str, progress: Progress) -> None:
        self.progress = progress
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": GROUP,
                "client.id": name,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 200,
                "log_level": CLIENT_LOG_LEVEL,
            }
        )
        self.consumer.subscribe([TOPIC])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> GroupMember:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = self.consumer.consume(500, 0.1)
            data = []
            for message in messages:
                error = message.error()
                if error is None:
                    data.append((message.partition(), message.offset(), message.value()))
                elif error.code() not in TRANSIENT_CONSUMER_ERRORS:
                    with self.progress.lock:
                        self.progress.errors.append(str(error))
            if not data:
                continue
            with self.progress.lock:
                self.progress.consumed.extend(data)
            self._commit()

    def _commit(self) -> None:
        try:
            committed = self.consumer.commit(asynchronous=False)
        except KafkaException as exc:  # coordinator moving, rebalance: at-least-once allows it
            with self.progress.lock:
                self.progress.commit_failures.append(str(exc))
            return
        with self.progress.lock:
            for tp in committed or ():
                if tp.error is None and tp.offset >= 0:
                    previous = self.progress.acked_commits.get(tp.partition, -1)
                    self.progress.acked_commits[tp.partition] = max(previous, tp.offset)


class CommitWatcher:
    """A thread sampling the group's committed offsets from its coordinator, noting any that
    went backwards (an acknowledged commit the coordinator later forgot)."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": CLIENT_LOG_LEVEL})
        self.highest: dict[int, int] = {}
        self.regressions: list[tuple[int, int, int]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watcher", daemon=True)

    def start(self) -> CommitWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            try:
                offsets = committed_offsets(self.admin)
            except KafkaException:
                continue  # no coordinator at the moment
            self.samples += 1
            for partition, offset in offsets.items():
                highest = self.highest.get(partition, -1)
                if offset < highest:
                    self.regressions.append((partition, highest, offset))
                self.highest[partition] = max(highest, offset)


def coordinator_of(admin: AdminClient) -> int:
    description = admin.describe_consumer_groups([GROUP], request_timeout=10)[GROUP].result(30)
    return description.coordinator.id


def committed_offsets(admin: AdminClient) -> dict[int, int]:
    """The group's committed offsets as its coordinator reports them."""
    request = [ConsumerGroupTopicPartitions(GROUP)]
    result = admin.list_consumer_group_offsets(request, request_timeout=10)[GROUP].result(30)
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def retrying(call: Callable[[], T], what: str, timeout: float = 30) -> T:
    """The result of `call`, retried while the admin client reports an error."""
    results: list[T] = []

    def attempt() -> bool:
        try:
            results.append(call())
        except KafkaException:
            return False
        return True

    wait_until(attempt, timeout, what)
    return results[-1]


def wait_for_offsets_leader(cluster: Cluster, partition: int, coordinator: int) -> None:
    wait_until(
        lambda: cluster.leader_of(OFFSETS_TOPIC, partition) == coordinator,
        10,
        f"node {coordinator}, the group coordinator, to lead {OFFSETS_TOPIC}-{partition}",
    )


def wait_for_coordinator(cluster: Cluster, admin: AdminClient, exclude: int | None) -> int:
    found: list[int] = []

    def available() -> bool:
        try:
            node = coordinator_of(admin)
        except KafkaException:
            return False
        found.append(node)
        return node != exclude and cluster.is_alive(node)

    wait_until(available, 30, f"a group coordinator other than node {exclude}")
    return found[-1]


@pytest.mark.timeout(180)
def test_group_survives_coordinator_crash(tmp_path):
    with running_cluster(tmp_path, 3, **OVERRIDES) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS, 3)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": CLIENT_LOG_LEVEL})
        producer = SequencedProducer(cluster.bootstrap, TOPIC, PARTITIONS).start()
        progress = Progress()
        watcher = CommitWatcher(cluster.bootstrap).start()
        members = [GroupMember(cluster.bootstrap, f"member{i}", progress) for i in range(MEMBERS)]
        try:
            for member in members:
                member.start()
            wait_until(
                lambda: len(progress.commits()) == PARTITIONS,
                60,
                "a commit acknowledged on every partition",
            )

            # The coordinator is the leader of the group's __consumer_offsets partition.
            coordinator = wait_for_coordinator(cluster, admin, exclude=None)
            offsets_partition = partition_for(GROUP, OFFSETS_PARTITIONS)
            replicas = cluster.partition_replicas(OFFSETS_TOPIC, offsets_partition)
            assert sorted(replicas) == [1, 2, 3], replicas
            wait_for_offsets_leader(cluster, offsets_partition, coordinator)

            before_kill = progress.commits()
            cluster.kill(coordinator)
            consumed_at_kill = progress.count()
            new_coordinator = wait_for_coordinator(cluster, admin, exclude=coordinator)
            wait_for_offsets_leader(cluster, offsets_partition, new_coordinator)
            # Every commit acknowledged before the crash survived it.
            after_kill = retrying(lambda: committed_offsets(admin), "the committed offsets")
            lost = {
                p: (offset, after_kill.get(p))
                for p, offset in before_kill.items()
                if after_kill.get(p, -1) < offset
            }
            assert not lost, f"acknowledged commits went backwards (before, after): {lost}"

            # The group goes on: more is consumed, and committed on every partition.
            wait_until(
                lambda: progress.count() > consumed_at_kill + 500,
                60,
                "the group to consume after its coordinator died",
            )
            commits_after = progress.commits()
            wait_until(
                lambda: all(
                    progress.commits().get(p, -1) > commits_after.get(p, -1)
                    for p in range(PARTITIONS)
                ),
                60,
                "new commits on every partition under the new coordinator",
            )

            producer.finish()
            assert not producer.failed, f"delivery failures: {producer.failed[:5]}"
            produced = {ack.value for ack in producer.acked}
            wait_until(
                lambda: produced <= progress.consumed_values(),
                60,
                "the group to consume every produced message",
            )
            # Once everything is consumed and committed, the committed offsets are the ends.
            ends = defaultdict(int)
            for ack in producer.acked:
                ends[ack.partition] = max(ends[ack.partition], ack.offset + 1)
            wait_until(
                lambda: all(progress.commits().get(p, -1) >= ends[p] for p in range(PARTITIONS)),
                60,
                "commits up to the end of every partition",
            )
            final = retrying(lambda: committed_offsets(admin), "the committed offsets")
            assert all(final.get(p, -1) >= ends[p] for p in range(PARTITIONS)), (final, ends)
        finally:
            producer.close()
            watcher.stop()
            for member in members:
                member.stop()
        assert not watcher.regressions, (
            f"committed offsets went backwards (partition, before, after): {watcher.regressions}"
        )
        assert watcher.samples > 0
        print(
            f"coordinator {coordinator} -> {new_coordinator}; {progress.count()} consumed, "
            f"{len(produced)} produced; {len(progress.commit_failures)} failed commits; "
            f"{watcher.samples} offset samples"
        )
        assert not progress.errors, f"consumer errors: {progress.errors[:5]}"
