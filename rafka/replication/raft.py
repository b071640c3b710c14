"""The Raft state of one replicated log (a partition, or the cluster-metadata log), sans I/O.

Events go in as method calls; what must happen comes out as actions for the caller to carry out:
persist the quorum state (before acting on a vote or leadership), append the leader-change control
batch that opens an epoch, and publish a new high watermark. Time is passed in, never read.

KIP-595 rules implemented here: a candidate bumps the epoch and votes for itself; a leader is
elected by a majority of voters; a new leader's high watermark may only advance once an entry of its
own epoch (the leader-change batch at the epoch start offset) is committed; the high watermark is
the largest offset a majority of voters have fsynced, and never decreases. A single node is a
one-voter quorum that wins its own election: the same path, not a special case. Vote, fetch and
BeginQuorumEpoch handling for several voters extends this class (issue: Raft replication).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(Enum):
    UNATTACHED = "unattached"
    CANDIDATE = "candidate"
    LEADER = "leader"
    FOLLOWER = "follower"


@dataclass(slots=True, frozen=True)
class QuorumState:
    """What must survive a restart: the epoch, and whom this node voted for in it."""

    epoch: int = 0
    voted_for: int | None = None
    leader_id: int | None = None


@dataclass(slots=True, frozen=True)
class PersistQuorumState:
    state: QuorumState


@dataclass(slots=True, frozen=True)
class AppendLeaderChange:
    """Append a LEADER_CHANGE control batch at the log end in `epoch` (the epoch start offset)."""

    epoch: int
    leader_id: int
    voters: tuple[int, ...]


@dataclass(slots=True, frozen=True)
class HighWatermarkAdvanced:
    high_watermark: int


Action = PersistQuorumState | AppendLeaderChange | HighWatermarkAdvanced


class RaftReplica:
    def __init__(
        self,
        node_id: int,
        voters: frozenset[int],
        state: QuorumState,
        log_end_offset: int,
        high_watermark: int = 0,
    ) -> None:
        if not voters:
            raise ValueError("a Raft group needs at least one voter")
        self.node_id = node_id
        self.voters = voters
        self.state = state
        self.role = Role.UNATTACHED
        self.high_watermark = high_watermark
        self.epoch_start_offset: int | None = None
        self._votes: set[int] = set()
        # Largest offset known to be fsynced, per voter (the leader's own included).
        self._flushed: dict[int, int] = {}
        self._log_end_offset = log_end_offset

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def leader_id(self) -> int | None:
        return self.state.leader_id

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    def start_election(self) -> list[Action]:
        """Become a candidate in the next epoch and vote for ourselves (after persisting it)."""
        self.role = Role.CANDIDATE
        self.state = QuorumState(epoch=self.epoch + 1, voted_for=self.node_id, leader_id=None)
        self._votes = {self.node_id}
        actions: list[Action] = [PersistQuorumState(self.state)]
        if self._has_majority(self._votes):
            actions += self._become_leader()
        return actions

    def on_vote_granted(self, voter_id: int, epoch: int) -> list[Action]:
        if self.role is not Role.CANDIDATE or epoch != self.epoch or voter_id not in self.voters:
            return []
        self._votes.add(voter_id)
        return self._become_leader() if self._has_majority(self._votes) else []

    def _become_leader(self) -> list[Action]:
        self.role = Role.LEADER
        self.state = QuorumState(
            epoch=self.epoch, voted_for=self.state.voted_for, leader_id=self.node_id
        )
        self.epoch_start_offset = self._log_end_offset
        self._flushed = {}
        return [
            PersistQuorumState(self.state),
            AppendLeaderChange(self.epoch, self.node_id, tuple(sorted(self.voters))),
        ]

    def on_local_append(self, log_end_offset: int) -> None:
        self._log_end_offset = log_end_offset

    def on_flushed(self, voter_id: int, flushed_end_offset: int) -> list[Action]:
        """A voter has fsynced its log up to (excluding) `flushed_end_offset`."""
        if self.role is not Role.LEADER or voter_id not in self.voters:
            return []
        if flushed_end_offset <= self._flushed.get(voter_id, -1):
            return []
        self._flushed[voter_id] = flushed_end_offset
        return self._maybe_advance_high_watermark()

    def _maybe_advance_high_watermark(self) -> list[Action]:
        offsets = sorted((self._flushed.get(v, 0) for v in self.voters), reverse=True)
        majority_flushed = offsets[len(self.voters) // 2]
        # An entry of the leader's own epoch must be committed before anything else counts.
        assert self.epoch_start_offset is not None
        if majority_flushed <= self.epoch_start_offset:
            return []
        if majority_flushed <= self.high_watermark:
            return []
        self.high_watermark = majority_flushed
        return [HighWatermarkAdvanced(majority_flushed)]

    def _has_majority(self, nodes: set[int]) -> bool:
        return len(nodes & self.voters) * 2 > len(self.voters)
