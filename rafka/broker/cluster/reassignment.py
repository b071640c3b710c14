"""Moving a partition's Raft voters to the replicas the metadata wants (reassignment).

The controller records a reassignment's target in the metadata log; every broker listed opens a
replica, the new ones as observers of the partition's Raft group (they fetch, they do not
vote). Here, on the partition's leader, the voters move one step at a time: first each new
replica joins the voters once it has caught up (fetched to the log end within
replica.lag.time.max.ms), then the replicas leaving are removed, the leader itself last, by
handing leadership to a caught-up voter of the target first. Each step is a voters record in the
partition's log that must commit before the next (rafka.replication.raft.propose_voters): any
two majorities of voter sets one apart overlap, so there are never two. Once the voters are
the target and in sync, the leader's ISR report (AlterPartition) tells the controller, which
records the reassignment done; the brokers that left then drop their replica.

The same loop reconciles any led partition whose voters differ from its replicas (a leader
elected mid-reassignment, a completion recorded before the last removal), so every step is
taken again after a failover.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from rafka.broker.cluster.cluster_metadata import TopicImage
from rafka.broker.node import Node
from rafka.broker.partition.clock import raft_clock_ms
from rafka.broker.partition.replica import Partition

log = structlog.get_logger(__name__)

CHECK_INTERVAL_S = 0.2
# The metadata records the brokers act on (Broker._on_reassignment).
REASSIGNMENT_RECORDS = frozenset(
    {"reassign_partitions", "cancel_reassignments", "reassignment_done", "elect_preferred"}
)


def desired_voters(topic: TopicImage, index: int) -> tuple[int, ...]:
    """The voters a partition should have: its reassignment's target, else its replicas."""
    reassignment = topic.reassignments.get(index)
    return reassignment.target if reassignment is not None else tuple(topic.replicas[index])


def configured_voters(topic: TopicImage, index: int) -> frozenset[int]:
    """The voters a replica opens with, before its log says otherwise: the replicas before the
    reassignment in progress (the voters then), else the replicas."""
    reassignment = topic.reassignments.get(index)
    if reassignment is not None:
        return frozenset(reassignment.original)
    return frozenset(topic.replicas[index])


class ReassignmentDriver:
    def __init__(
        self,
        node: Node,
        lag_time_max_ms: int,
        is_live: Callable[[int], bool],
        fetch_timeout_ms: int,
    ) -> None:
        self._node = node
        self._lag_time_max_ms = lag_time_max_ms
        self._is_live = is_live
        self._fetch_timeout_ms = fetch_timeout_ms
        # Partitions this node leads whose voters may differ from the desired ones.
        self._watched: set[tuple[str, int]] = set()
        # Partitions an ElectLeaders asked to move to their preferred replica: tried until it
        # leads or this node no longer does (it may not be caught up at the first try).
        self._preferring: set[tuple[str, int]] = set()
        self._wakeup = asyncio.Event()

    def prefer(self, topic: str, index: int) -> None:
        self._preferring.add((topic, index))
        self._wakeup.set()

    def watch(self, topic: str, index: int) -> None:
        """Check this partition (a reassignment record touched it, or this node took its lead)."""
        self._watched.add((topic, index))
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_INTERVAL_S):
                    await self._wakeup.wait()
            self._wakeup.clear()
            if self._watched:
                self._step_all()
            if self._preferring:
                self._prefer_all()

    def _prefer_all(self) -> None:
        for key in list(self._preferring):
            partition = self._node.partitions.get(key)
            topic = self._node.topic(key[0])
            if (
                partition is None
                or topic is None
                or not partition.is_leader
                or key[1] >= topic.partition_count
                or topic.replicas[key[1]][0] == self._node.node_id
            ):
                self._preferring.discard(key)  # handed over, or not ours to hand over
                continue
            hand_over_to_preferred(
                self._node, [partition], self._is_live, self._fetch_timeout_ms
            )

    def _step_all(self) -> None:
        for key in list(self._watched):
            partition = self._node.partitions.get(key)
            topic = self._node.topic(key[0])
            if partition is None or topic is None or key[1] >= topic.partition_count:
                self._watched.discard(key)
                continue
            if not partition.is_leader or partition.offline is not None:
                self._watched.discard(key)  # its leader's node watches it
                continue
            try:
                if self._step(partition, desired_voters(topic, key[1])):
                    self._watched.discard(key)
            except Exception:
                log.exception("reassignment step failed", partition=partition.name)

    def _step(self, partition: Partition, target: tuple[int, ...]) -> bool:
        """One step toward `target`; True once the voters are the target."""
        raft = partition.raft
        voters = raft.voters
        wanted = set(target)
        if voters == wanted:
            return True
        if not raft.can_change_voters():
            # Nothing of this epoch committed yet (a LEADER_CHANGE is appended if needed), or
            # the previous step still uncommitted: try again on the next check.
            partition.apply(raft.prepare_voter_change())
            return False
        joining = [node for node in target if node not in voters]
        if joining:
            ready = [node for node in joining if self._caught_up(partition, node)]
            if not ready:
                return False
            proposed = voters | {ready[0]}
        else:
            leaving = sorted(voters - wanted)
            others = [node for node in leaving if node != raft.node_id]
            if not others:
                self._hand_over(partition, target)
                return False
            proposed = voters - {others[0]}
        log.info(
            "reassignment step",
            partition=partition.name,
            voters=sorted(voters),
            proposed=sorted(proposed),
            target=list(target),
        )
        partition.apply(raft.propose_voters(dict.fromkeys(proposed)))
        return False

    def _caught_up(self, partition: Partition, node: int) -> bool:
        progress = partition.raft.observer_progress().get(node)
        if progress is None:
            return False
        return progress.caught_up_within(raft_clock_ms(), self._lag_time_max_ms)

    def _hand_over(self, partition: Partition, target: tuple[int, ...]) -> None:
        """This leader leaves the voters: the most caught-up voter of the target leads first,
        then removes it (a leader removing itself works too, but a handover keeps the
        partition writable throughout)."""
        now = raft_clock_ms()
        progress = partition.raft.voter_progress()
        successors = [
            node
            for node in target
            if node in progress
            and progress[node].caught_up_within(now, self._lag_time_max_ms)
        ]
        if successors:
            log.info("reassignment: handing over", partition=partition.name, to=successors[0])
            partition.apply(partition.raft.resign(successors[0]))


def hand_over_to_preferred(
    node: Node,
    led: list[Partition],
    is_live: Callable[[int], bool],
    fetch_timeout_ms: int,
) -> None:
    """Preferred leader election (auto.leader.rebalance.enable, ElectLeaders): each partition
    led here that is not led by its preferred replica (the first listed) hands over to it, if
    that replica is a live voter caught up to the log end and heard from within a fetch
    timeout."""
    now = raft_clock_ms()
    for partition in led:
        topic = node.topic(partition.topic)
        if topic is None or partition.index >= topic.partition_count:
            continue
        preferred = topic.replicas[partition.index][0]
        if preferred == node.node_id or not is_live(preferred):
            continue
        progress = partition.raft.voter_progress().get(preferred)
        if (
            progress is None
            or progress.end_offset < partition.log_end_offset
            or now - progress.last_contact_ms > fetch_timeout_ms
        ):
            continue
        log.info("moving leadership to the preferred replica", partition=partition.name)
        partition.apply(partition.raft.resign(preferred))

