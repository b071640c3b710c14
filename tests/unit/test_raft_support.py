"""Helpers for the Raft state machine tests (test_raft_elections.py, test_raft_replication.py):
a replica on a MemoryLog with short timers, the messages its actions send, a vote request, and
a leader elected with its leader-change batch fsynced."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from rafka.replication.actions import (
    Action,
    AppendLeaderChange,
    AppendRecords,
    AppendVoters,
    ResetLog,
    SendMessage,
    TruncateLog,
)
from rafka.replication.log import MemoryLog, VotersEntry
from rafka.replication.messages import (
    VoteRequest,
    VoteResponse,
)
from rafka.replication.raft import RaftConfig, RaftReplica
from rafka.replication.state import QuorumState

CONFIG = RaftConfig(
    election_timeout_ms=100,
    election_backoff_max_ms=100,
    fetch_timeout_ms=200,
    request_timeout_ms=80,
    retry_backoff_ms=10,
    fetch_max_wait_ms=50,
    fetch_limit=100,
)


def replica(
    node_id: int = 1,
    voters: Any = (1, 2, 3),
    state: QuorumState | None = None,
    entries: list[tuple[int, Any]] | None = None,
    *,
    high_watermark: int = 0,
    now_ms: int = 0,
    **options: Any,
) -> RaftReplica:
    log = MemoryLog(entries or [])
    options.setdefault("flushed_end_offset", log.end_offset)
    return RaftReplica(
        node_id,
        voters,
        state or QuorumState(),
        log,
        high_watermark,
        config=CONFIG,
        rng=random.Random(node_id),
        now_ms=now_ms,
        **options,
    )


def sent(actions: list[Action], kind: type | None = None) -> list[tuple[int, Any]]:
    return [
        (a.destination, a.message)
        for a in actions
        if isinstance(a, SendMessage) and (kind is None or isinstance(a.message, kind))
    ]


def only(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def vote(epoch: int, candidate: int = 2, last_epoch: int = 0, end: int = 0, **kw: Any):
    return VoteRequest(epoch, candidate, last_epoch, end, **kw)


def leader_of(
    epoch: int = 1, node_id: int = 1, entries: list[tuple[int, Any]] | None = None, **kw: Any
) -> RaftReplica:
    """A leader of `epoch` whose leader-change batch is appended and fsynced."""
    node = replica(node_id, state=QuorumState(epoch - 1), entries=entries, **kw)
    actions = node.start_election()
    for voter in sorted(node.voters - {node_id}):
        actions += node.on_message(voter, VoteResponse(epoch, None, True), 0)
        if node.is_leader:
            break
    assert node.is_leader and node.epoch == epoch
    log = node.log
    assert isinstance(log, MemoryLog)
    log.append([(epoch, "leader-change")])
    node.on_local_append(log.end_offset)
    node.on_flushed(node_id, log.end_offset)
    return node


class MiniCluster:
    """Instant delivery, instant fsync, a clock advanced by hand: enough for liveness rules and
    voter changes. `size` nodes; the first `voters` of them (all by default) start as voters,
    the others as observers that fetch from the leader."""

    def __init__(self, size: int, voters: int | None = None) -> None:
        nodes = tuple(range(1, size + 1))
        initial = nodes[: voters or size]
        self.nodes = {n: replica(n, voters=initial) for n in nodes}
        self.now = 0
        self.isolated: set[int] = set()

    def leader(self) -> RaftReplica | None:
        leaders = [n for n in self.nodes.values() if n.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    def run_for(self, duration_ms: int) -> None:
        end = self.now + duration_ms
        self.run_until(lambda: self.now >= end)

    def run_until(self, done: Callable[[], bool], limit_ms: int = 10_000) -> None:
        stop = self.now + limit_ms
        while not done() and self.now < stop:
            self.now += 1
            for node in self.nodes.values():
                self.apply(node, node.tick(self.now))

    def write(self, values: Iterable[Any]) -> None:
        """The leader appends `values` (fsynced at once)."""
        leader = self.leader()
        assert leader is not None
        log = leader.log
        assert isinstance(log, MemoryLog)
        log.append([(leader.epoch, value) for value in values])
        self.apply(leader, leader.on_local_append(log.end_offset))
        self.apply(leader, leader.on_flushed(leader.node_id, log.end_offset))

    def apply(self, node: RaftReplica, actions: list[Action]) -> None:
        todo: deque[tuple[RaftReplica, Action]] = deque((node, a) for a in actions)
        while todo:
            owner, action = todo.popleft()
            log = owner.log
            assert isinstance(log, MemoryLog)
            more: list[Action] = []
            if isinstance(action, SendMessage):
                target = self.nodes[action.destination]
                if not {owner.node_id, target.node_id} & self.isolated:
                    more_target = target.on_message(owner.node_id, action.message, self.now)
                    todo.extend((target, a) for a in more_target)
            elif isinstance(action, AppendLeaderChange | AppendVoters | AppendRecords):
                if isinstance(action, AppendLeaderChange):
                    log.append([(action.epoch, "leader-change")])
                elif isinstance(action, AppendVoters):
                    log.append([(action.epoch, VotersEntry(action.voters))])
                else:
                    log.append(action.records)  # type: ignore[arg-type]
                more = owner.on_local_append(log.end_offset)
                more += owner.on_flushed(owner.node_id, log.end_offset)
            elif isinstance(action, TruncateLog):
                log.truncate(action.end_offset)
                more = owner.on_truncated(log.end_offset)
            elif isinstance(action, ResetLog):
                log.reset(action.start_offset)
                more = owner.on_log_reset(action.start_offset)
            todo.extend((owner, a) for a in more)
