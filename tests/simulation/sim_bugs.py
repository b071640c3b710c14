"""Deliberately broken replicas: the simulator must catch each of them within a few seeds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim_producer_ids import ProducerIdController

from rafka.replication.actions import Action, PersistQuorumState
from rafka.replication.messages import VoteRequest
from rafka.replication.raft import RaftReplica

if TYPE_CHECKING:
    from sim_model import SimNode


class LeaderCountsUnsyncedOffsets(RaftReplica):
    """The leader counts its own appended but not yet fsynced records toward the HW."""

    def _own_durable_end(self) -> int:
        return self.log.end_offset


class FollowerFetchesBeforeFsync(RaftReplica):
    """A follower fetches (reporting its end offset as durable) before its fsync completes."""

    def _can_fetch(self) -> bool:
        flushed, self._flushed_end = self._flushed_end, self.log.end_offset
        try:
            return super()._can_fetch()
        finally:
            self._flushed_end = flushed


class VotesWithoutLogCheck(RaftReplica):
    """Grants (pre-)votes without comparing the candidate's log with its own."""

    def _log_is_up_to_date(self, last_epoch: int, end_offset: int) -> bool:
        return True


class AnswersVoteBeforePersisting(RaftReplica):
    """Sends its vote before the quorum state recording it is durable."""

    def _on_vote_request(self, source: int, request: VoteRequest) -> list[Action]:
        actions = super()._on_vote_request(source, request)
        persists = [a for a in actions if isinstance(a, PersistQuorumState)]
        return [a for a in actions if not isinstance(a, PersistQuorumState)] + persists


class VotesAfterLosingFsyncedRecords(RaftReplica):
    """Votes and campaigns with a log that storage shortened below what it had fsynced."""

    @property
    def impaired(self) -> bool:
        return False


class ReservesFromALaggingImage(ProducerIdController):
    """A new controller reserves producer ids from an image that lags what its predecessor
    committed (its high watermark still below its epoch start): issue 13's bug 1."""

    def can_reserve(self, node: SimNode) -> bool:
        return True


class ConfirmsReadsByLease(RaftReplica):
    """Confirms a read barrier by the time-based read lease (majority fetch arrivals within 3/4
    of the fetch timeout), as the group coordinator first did: a fetch a follower sends after
    its previous answer was lost proves nothing of when it last heard from the leader, and by
    then it may grant another candidate's pre-vote (issue 13, stale OffsetFetch)."""

    def read_confirmed(self, barrier: int) -> bool:
        return barrier >= 0 and self.has_read_lease(self._now)
