"""Helpers for the Raft state machine tests (test_raft_elections.py, test_raft_replication.py):
a replica on a MemoryLog with short timers, the messages its actions send, a vote request, and
a leader elected with its leader-change batch fsynced."""

from __future__ import annotations

import random
from typing import Any

from rafka.replication.actions import (
    Action,
    SendMessage,
)
from rafka.replication.log import MemoryLog
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
