"""A broker cut off from the controller steps down from its leaderships.

The controller fences a broker it has not heard from for `broker.session.timeout.ms`, and
Metadata then shows that broker's partitions without a leader (clients get
LEADER_NOT_AVAILABLE). A partition's Raft group knows nothing of that: a leader that the other
replicas still follow (a bridge partition: they reach it and the controller, it reaches only them)
would keep its leadership for the whole fault. So a broker that has not heard from the metadata
leader for the session timeout, or sees itself fenced, resigns the leaderships it holds and
stands for no election until it is in touch again; a replica that reaches the controller takes
over, and clients are told of it.

Clients can often still reach a broker that its peers cannot (a network partition between
brokers only). Such a broker knows no partition's leader, and a client that asks it for
Metadata is told none exists, again and again: librdkafka asks the broker it is connected to.
So while cut off, the broker turns clients away (their connections are closed; other brokers'
replica fetches still come in) and clients ask the brokers that can answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog

from rafka.broker.cluster.cluster_metadata import ClusterMetadata
from rafka.broker.cluster.peers import PEER_CLIENT_ID_PREFIX
from rafka.broker.partition.clock import raft_clock_ms
from rafka.broker.partition.replica import Partition

log = structlog.get_logger(__name__)


def is_cut_off(metadata: ClusterMetadata, node_id: int, session_ms: int, now_ms: int) -> bool:
    registration = metadata.image.brokers.get(node_id)
    fenced = registration is not None and registration.fenced
    return fenced or not metadata.partition.raft.heard_from_leader_within(session_ms, now_ms)


def apply_cut_off(partitions: Iterable[Partition], cut_off: bool) -> int:
    """Set every replica's eligibility; resign the leaderships of replicated partitions when cut
    off. Returns how many it resigned."""
    resigned = 0
    for partition in partitions:
        raft = partition.raft
        raft.eligible = not cut_off
        if cut_off and raft.is_leader and len(raft.voters) > 1:
            partition.apply(raft.resign())
            resigned += 1
    return resigned


class CutOff:
    """Whether this broker is cut off from the controller, for the request dispatcher."""

    def __init__(self) -> None:
        self.cut_off = False

    def turns_away(self, client_id: str | None) -> bool:
        """A client's request is refused while cut off; another broker's never is."""
        return self.cut_off and not (client_id or "").startswith(PEER_CLIENT_ID_PREFIX)


async def step_down_while_cut_off(
    metadata: ClusterMetadata,
    node_id: int,
    partitions: Callable[[], Iterable[Partition]],
    state: CutOff,
    *,
    interval_ms: int,
    session_ms: int,
) -> None:
    """Run for the broker's life: check every `interval_ms` (a heartbeat interval)."""
    if len(metadata.partition.raft.voters) == 1:
        return  # a lone node is its own controller
    cut_off = False
    while True:
        await asyncio.sleep(interval_ms / 1000)
        now = is_cut_off(metadata, node_id, session_ms, raft_clock_ms())
        if now != cut_off:
            cut_off = state.cut_off = now
            if cut_off:
                log.warning(
                    "cut off from the controller: resigning partition leaderships and "
                    "turning clients away",
                    session_timeout_ms=session_ms,
                )
            else:
                log.info("in touch with the controller again: standing for elections")
        resigned = apply_cut_off(list(partitions()), cut_off)
        if resigned:
            log.info("partition leaderships resigned", partitions=resigned)
