"""A rolling restart of a 3-node cluster under load (issue 18, "done when" 4): each node in turn
is stopped with SIGTERM, as an operator upgrading it would, started again, and the next one is
stopped only once every partition has all its replicas in sync again. Meanwhile an idempotent
acks=all producer writes numbered records and a group consumer reads and commits them (its
coordinator moves with the leadership of its `__consumer_offsets` partition). Afterwards every
acknowledged record is stored once at its acknowledged offset, no client saw an error it could
not retry, the group read everything and its committed offsets never went backwards.

The roll is run with SIGTERM (the done-when) and with SIGKILL. It does not trust a full ISR
alone before stopping the next node: the second test checks that signal, and fails today. After
a SIGTERM, rafka lists the stopped node as an in-sync, online replica until the controller fences
it (broker.session.timeout.ms, 9 s), and a restarted node is listed in sync as soon as it has
registered, before it has fetched what it missed (a leader counts a voter in sync while it was
last caught up within replica.lag.time.max.ms, and a new leader counts every voter as caught up
at its election). So the roll also waits until the restarted node's files hold everything
committed while it was down, and reports on how many partitions a full ISR came before that.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from cluster import Cluster, wait_until
from cluster_fixtures import (
    TRANSIENT_CONSUMER_ERRORS,
    CommitWatcher,
    GroupMember,
    GroupProgress,
    SequencedProducer,
    assert_acked_exactly_once_in_order,
    committed_offsets,
    consume_all,
    create_topic,
    high_watermarks,
    offsets_reader,
    retrying,
    running_cluster,
)
from confluent_kafka import Consumer, KafkaError

from rafka.broker.coordinator.placement import partition_for
from rafka.protocol.records import read_batch_header

TOPIC = "rolling"
PARTITIONS = 6
GROUP = "rolling-readers"
OFFSETS_TOPIC = "__consumer_offsets"
# Kafka's default timers (no FAST_FAILOVER): a graceful handover must not depend on them.
OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}
TOPIC_CONFIGS = {"min.insync.replicas": "2"}
# Acknowledgements wanted before the roll, while each node is down and after it is back.
ACKS_BEFORE = 1000
ACKS_PER_PHASE = 2000
PHASE_TIMEOUT = 60.0
# A record not acknowledged within this fails delivery, and the test with it.
DELIVERY_TIMEOUT_MS = 60_000
# Kafka's RetriableException errors a roll may cause (clients retry them themselves), and the
# connection-level ones librdkafka reports while a node is down.
RETRIABLE = TRANSIENT_CONSUMER_ERRORS | {
    KafkaError.NOT_LEADER_FOR_PARTITION,  # NOT_LEADER_OR_FOLLOWER
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.FENCED_LEADER_EPOCH,
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError._WAIT_COORD,
}
# Kafka's controller takes a broker in controlled shutdown out of every ISR before it exits.
# Allow the leaders' ISR reports (sent within a second of a change) time to reach every node,
# well under broker.session.timeout.ms (9 s), after which a silent broker is fenced anyway.
ISR_REPORT_S = 3.0


@dataclass(frozen=True, slots=True)
class Restart:
    node: int
    coordinator: int | None  # the group's coordinator when the node was stopped
    stop_s: float  # SIGTERM to exit
    start_s: float  # start to "broker ready"
    in_sync_s: float  # ready to every partition's full ISR in every node's Metadata
    caught_up_s: float  # ready to its replicas holding what was committed while it was down
    # Partitions whose replica on the node still lacked records committed while it was down
    # when every node's Metadata already listed it in sync.
    behind_at_full_isr: tuple[tuple[str, int], ...]


def not_retriable(errors: Iterable[KafkaError]) -> list[KafkaError]:
    """Errors a client could not have retried: fatal ones, and any that neither librdkafka nor
    Kafka's protocol calls retriable (librdkafka leaves the flag off many it hands back, e.g. a
    commit's COORDINATOR_LOAD_IN_PROGRESS). Losing group membership is not retriable here."""
    return [e for e in errors if e.fatal() or not (e.retriable() or e.code() in RETRIABLE)]


def error_names(errors: Iterable[KafkaError]) -> dict[str, int]:
    return dict(Counter(e.name() for e in errors))


def topic_partitions(cluster: Cluster, topic: str) -> list[int]:
    """The partitions of `topic` that the live nodes report."""
    views = cluster.metadata_views()
    return sorted({p for view in views for (t, p) in view.partitions if t == topic})


def replica_end(cluster: Cluster, node: int, topic: str, partition: int) -> int:
    """The offset after the last whole batch in the node's files for the partition."""
    batches = cluster.replica_batches(node, topic, partition)
    return read_batch_header(batches[-1]).last_offset + 1 if batches else 0


def counted_in_sync(
    cluster: Cluster, node: int, partitions: Iterable[tuple[str, int]]
) -> set[tuple[str, int]]:
    """The partitions some live node's Metadata lists `node` for as an in-sync, online replica."""
    wanted = set(partitions)
    return {
        key
        for view in cluster.metadata_views()
        for key, state in view.partitions.items()
        if key in wanted and node in state.isr and node not in state.offline
    }


def roll(
    cluster: Cluster,
    producer: SequencedProducer,
    progress: GroupProgress,
    reader: Consumer,
    how: str,
) -> list[Restart]:
    """Restart every node once, in id order, under the running load; `how` it stops."""
    restarts = []
    offsets_partitions = topic_partitions(cluster, OFFSETS_TOPIC)
    group_partition = partition_for(GROUP, len(offsets_partitions))
    watched = [(TOPIC, p) for p in range(PARTITIONS)]
    watched += [(OFFSETS_TOPIC, p) for p in offsets_partitions]
    for node in cluster.node_ids:
        what = f"node {node}"
        coordinator = cluster.leader_of(OFFSETS_TOPIC, group_partition)
        acked_commits = progress.commits()
        began = time.monotonic()
        if how == "sigterm":
            assert cluster.stop(node) == 0, f"{what} did not exit cleanly on SIGTERM"
        else:
            cluster.kill(node)
        stopped = time.monotonic()
        # Two of three replicas are a majority and meet min.insync.replicas=2: writes go on.
        producer.wait_for_acks(ACKS_PER_PHASE, PHASE_TIMEOUT, f"while {what} is down")
        consumed = progress.count()
        wait_until(
            lambda c=consumed: progress.count() > c, PHASE_TIMEOUT, f"reads while {what} is down"
        )
        # Committed while the node was down: it must fetch these to be in sync again.
        missed = retrying(lambda: high_watermarks(cluster, watched), "high watermarks")
        started = time.monotonic()
        cluster.restart(node)
        ready = time.monotonic()
        cluster.wait_for_full_isr(TOPIC, range(PARTITIONS), PHASE_TIMEOUT)
        cluster.wait_for_full_isr(OFFSETS_TOPIC, offsets_partitions, PHASE_TIMEOUT)
        in_sync = time.monotonic()
        behind = tuple(
            key for key, offset in missed.items() if replica_end(cluster, node, *key) < offset
        )
        # A full ISR alone does not prove that yet (test below): wait for the files too.
        for key, offset in missed.items():
            cluster.wait_for_replicas_to_reach(*key, offset, PHASE_TIMEOUT)
        caught_up = time.monotonic()
        restarts.append(
            Restart(
                node,
                coordinator,
                stopped - began,
                ready - started,
                in_sync - ready,
                caught_up - ready,
                behind,
            )
        )
        # Every commit acknowledged before the stop is still there, wherever the coordinator is.
        now = retrying(lambda: committed_offsets(reader, TOPIC, PARTITIONS), "the commits")
        lost = {p: (o, now.get(p)) for p, o in acked_commits.items() if now.get(p, -1) < o}
        assert not lost, f"commits went backwards across {what}'s restart: {lost}"
        producer.wait_for_acks(ACKS_PER_PHASE, PHASE_TIMEOUT, f"after {what} is back")
    return restarts


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_rolling_restart_under_load(tmp_path, how):
    with running_cluster(tmp_path, 3, **OVERRIDES) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS, 3, **TOPIC_CONFIGS)
        cluster.wait_for_full_isr(TOPIC, range(PARTITIONS))
        reader = offsets_reader(cluster.bootstrap, GROUP)
        delivery = {"delivery.timeout.ms": DELIVERY_TIMEOUT_MS}
        producer = SequencedProducer(cluster.bootstrap, TOPIC, PARTITIONS, config=delivery).start()
        progress = GroupProgress()
        member = GroupMember(cluster.bootstrap, TOPIC, GROUP, "rolling-reader", progress).start()
        watcher = CommitWatcher(cluster.bootstrap, GROUP, TOPIC, PARTITIONS).start()
        try:
            producer.wait_for_acks(ACKS_BEFORE, PHASE_TIMEOUT, "before the roll")
            wait_until(
                lambda: len(progress.commits()) == PARTITIONS,
                PHASE_TIMEOUT,
                "a commit acknowledged on every partition",
            )
            began = time.monotonic()
            restarts = roll(cluster, producer, progress, reader, how)
            rolled_s = time.monotonic() - began
            producer.finish()

            produced = {ack.value for ack in producer.acked}
            wait_until(
                lambda: produced <= progress.consumed_values(),
                PHASE_TIMEOUT,
                "the group to read every acknowledged record",
            )
            ends = {p: 0 for p in range(PARTITIONS)}
            for ack in producer.acked:
                if ack.offset is not None:  # else implicitly acked: a later one has an offset
                    ends[ack.partition] = max(ends[ack.partition], ack.offset + 1)
            wait_until(
                lambda: all(progress.commits().get(p, -1) >= e for p, e in ends.items()),
                PHASE_TIMEOUT,
                "commits up to the end of every partition",
            )
            final = retrying(lambda: committed_offsets(reader, TOPIC, PARTITIONS), "the commits")
        finally:
            producer.close()
            watcher.stop()
            member.stop()
            reader.close()

        print(
            f"rolling restart ({how}): {len(producer.acked)} acked, roll {rolled_s:.1f}s, "
            f"longest ack gap {producer.longest_ack_gap():.2f}s; "
            + "; ".join(
                f"node {r.node} (coordinator {r.coordinator}): stop {r.stop_s:.1f}s, start "
                f"{r.start_s:.1f}s, full ISR +{r.in_sync_s:.1f}s, caught up "
                f"+{r.caught_up_s:.1f}s, {len(r.behind_at_full_isr)} behind at full ISR"
                for r in restarts
            )
            + f"; group read {progress.count()}, {len(progress.commit_failures)} failed commits "
            f"{error_names(progress.commit_failures)}, {watcher.samples} offset samples; "
            f"producer client errors {error_names(producer.client_errors)}"
        )
        # (partition, value, error, retriable, fatal)
        failed = [(p, v, e, e.retriable(), e.fatal()) for p, v, e in producer.failed]
        assert not failed, f"failed deliveries: {failed}"
        assert not not_retriable(producer.client_errors), producer.client_errors
        assert not progress.errors, f"consumer errors: {progress.errors}"
        assert not not_retriable(progress.commit_failures), progress.commit_failures

        records = consume_all(cluster.bootstrap, TOPIC, PARTITIONS)
        assert_acked_exactly_once_in_order(producer.acked, records, producer.sent)
        assert not watcher.regressions, (
            f"committed offsets went backwards (partition, before, after): {watcher.regressions}"
        )
        assert watcher.samples > 0
        assert all(final.get(p, -1) >= e for p, e in ends.items()), (final, ends)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restarted_node_is_in_sync_only_once_caught_up(tmp_path, how):
    """Kafka's controller takes a broker in controlled shutdown out of every ISR, and a broker
    that restarts rejoins an ISR only once it has caught up: waiting for a full ISR between two
    restarts means the previous node is back in full."""
    node = 2
    keys = [(TOPIC, p) for p in range(PARTITIONS)]
    with running_cluster(tmp_path, 3, **OVERRIDES) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS, 3, **TOPIC_CONFIGS)
        cluster.wait_for_full_isr(TOPIC, range(PARTITIONS))
        left_isr_s = 0.0
        if how == "sigterm":
            assert cluster.stop(node) == 0
            stopped = time.monotonic()
            wait_until(
                lambda: not counted_in_sync(cluster, node, keys),
                PHASE_TIMEOUT,
                f"node {node} out of the ISR or offline after its SIGTERM",
            )
            left_isr_s = time.monotonic() - stopped
        else:
            cluster.kill(node)  # a crash: it stays in the ISR until fenced, as on Kafka

        producer = SequencedProducer(cluster.bootstrap, TOPIC, PARTITIONS).start()
        try:
            producer.wait_for_acks(ACKS_PER_PHASE * 5, PHASE_TIMEOUT, f"while node {node} is down")
            producer.finish()
        finally:
            producer.close()
        missed = retrying(lambda: high_watermarks(cluster, keys), "high watermarks")
        cluster.restart(node)
        # Sampled until it holds everything: no node may count it in sync before then. (In sync
        # first, lacking after: its files only grow, so it lacked them when counted in sync.)
        early: set[tuple[str, int]] = set()

        def caught_up() -> bool:
            in_sync = counted_in_sync(cluster, node, keys)
            lacking = {key for key in keys if replica_end(cluster, node, *key) < missed[key]}
            early.update(in_sync & lacking)
            return not lacking and in_sync == set(keys)

        wait_until(caught_up, PHASE_TIMEOUT, f"node {node} caught up and in sync")
        print(
            f"{how}: node {node} out of the ISR {left_isr_s:.1f}s after it stopped; counted in "
            f"sync while behind on {len(early)} of {PARTITIONS} partitions after its restart"
        )
        assert left_isr_s <= ISR_REPORT_S, (
            f"node {node} was still listed as an in-sync, online replica {left_isr_s:.1f}s after "
            "its SIGTERM: a rolling restart that waits for a full ISR cannot tell it is down"
        )
        assert not early, (
            f"node {node} was listed in sync after its restart while it lacked records "
            f"committed when it was down: {sorted(early)}"
        )
