"""The persisted quorum state of one Raft group and the roles a replica moves through."""

from __future__ import annotations

from enum import Enum

from msgspec import Struct


class Role(Enum):
    UNATTACHED = "unattached"  # no leader known in this epoch (may have voted: KIP-595's "voted")
    PROSPECTIVE = "prospective"  # asking for pre-votes before bumping the epoch (KIP-996)
    CANDIDATE = "candidate"
    LEADER = "leader"
    FOLLOWER = "follower"
    RESIGNED = "resigned"  # was the leader of this epoch, no longer accepts writes


class QuorumState(Struct, frozen=True):
    """What must survive a restart: the epoch, whom this node voted for in it, and its leader."""

    epoch: int = 0
    voted_for: int | None = None
    leader_id: int | None = None
