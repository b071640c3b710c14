"""The Raft state machine (rafka.replication.raft), one event at a time: what is committed and
read. The high watermark, the leader's answers to fetches, read leases and barriers, the
follower's fetch, append and truncation, and the log views Raft reads. Elections are in
test_raft_elections.py; shared helpers in test_raft_support.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from test_raft_support import CONFIG, leader_of, only, replica, sent

from rafka.protocol.errors import ErrorCode
from rafka.replication.actions import (
    AppendLeaderChange,
    AppendRecords,
    HighWatermarkAdvanced,
    PersistQuorumState,
    RoleChanged,
    TruncateLog,
)
from rafka.replication.log import MemoryLog, PartitionLogView
from rafka.replication.messages import (
    DivergingEpoch,
    FetchRequest,
    FetchResponse,
    VoteResponse,
)
from rafka.replication.raft import RaftReplica, RaftSafetyError
from rafka.replication.state import QuorumState, Role
from rafka.storage.leader_epoch import EpochEntry, LeaderEpochCache

# -- the high watermark ----------------------------------------------------------------------------


def test_single_voter_high_watermark_is_what_it_fsynced() -> None:
    raft = RaftReplica(1, frozenset({1}), QuorumState(), 10)
    raft.start_election()
    assert raft.high_watermark == 0
    assert raft.on_local_append(15) == []  # appended, not fsynced: does not count
    assert raft.on_flushed(1, 10) == [HighWatermarkAdvanced(10)]  # the recovered tail
    assert raft.on_flushed(1, 15) == [HighWatermarkAdvanced(15)]
    assert raft.on_flushed(1, 12) == []
    assert raft.high_watermark == 15


def test_leader_of_a_committed_log_starts_its_epoch_at_the_log_end() -> None:
    entries = [(1, "a"), (1, "b")]
    node = replica(1, state=QuorumState(1), entries=entries, high_watermark=2)
    actions = node.start_election()
    actions += node.on_message(2, VoteResponse(2, None, True), 0)
    assert node.is_leader and only(actions, AppendLeaderChange) == []
    assert node.epoch_start_offset == 2
    log = node.log
    assert isinstance(log, MemoryLog)
    log.append([(2, "c")])  # the epoch's first record gets the offset Kafka would give it
    node.on_local_append(3)
    node.on_flushed(1, 3)
    assert node.high_watermark == 2
    actions = node.on_message(2, FetchRequest(2, 2, 3, 2, 0, request_id=1), 1)
    assert only(actions, HighWatermarkAdvanced) == [HighWatermarkAdvanced(3)]


def test_leader_commits_an_earlier_epochs_tail_only_through_its_own_entry() -> None:
    # Raft's Figure 8: offset 1 (epoch 1) is past the high watermark; a majority holding it
    # does not make it committed until an entry of the new epoch is.
    entries = [(1, "a"), (1, "b")]
    node = replica(1, state=QuorumState(1), entries=entries, high_watermark=1)
    actions = node.start_election()
    actions += node.on_message(2, VoteResponse(2, None, True), 0)
    assert node.is_leader
    assert only(actions, AppendLeaderChange) == [AppendLeaderChange(2, 1, (1, 2, 3))]
    assert node.epoch_start_offset == 2
    log = node.log
    assert isinstance(log, MemoryLog)
    log.append([(2, "leader-change")])
    node.on_local_append(3)
    node.on_flushed(1, 3)
    actions = node.on_message(2, FetchRequest(2, 2, 2, 1, 0, request_id=1), 1)
    assert only(actions, HighWatermarkAdvanced) == [] and node.high_watermark == 1
    actions = node.on_message(2, FetchRequest(2, 2, 3, 2, 0, request_id=2), 2)
    assert only(actions, HighWatermarkAdvanced) == [HighWatermarkAdvanced(3)]


def test_high_watermark_is_the_majority_fsynced_offset_after_the_epoch_start() -> None:
    leader = leader_of(2, entries=[(1, "a"), (1, "b")])
    assert leader.epoch_start_offset == 2
    log = leader.log
    assert isinstance(log, MemoryLog)
    log.append([(2, "c"), (2, "d")])
    leader.on_local_append(5)
    leader.on_flushed(1, 5)
    # A follower at the old epoch's end does not commit anything: the epoch start must be in.
    actions = leader.on_message(2, FetchRequest(2, 2, 2, 1, 0, 1), 0)
    assert only(actions, HighWatermarkAdvanced) == []
    actions = leader.on_message(2, FetchRequest(2, 2, 4, 2, 0, 2), 0)
    assert only(actions, HighWatermarkAdvanced) == [HighWatermarkAdvanced(4)]
    [(_, response)] = sent(actions, FetchResponse)
    assert response.high_watermark == 4 and response.records == ((2, "d"),)
    # A fetch from an earlier offset never moves the high watermark back.
    leader.on_message(3, FetchRequest(2, 3, 3, 2, 0, 3), 0)
    assert leader.high_watermark == 4


def test_leader_does_not_count_its_own_unsynced_records() -> None:
    leader = leader_of(1)
    log = leader.log
    assert isinstance(log, MemoryLog)
    log.append([(1, "x")])
    leader.on_local_append(2)
    actions = leader.on_message(2, FetchRequest(1, 2, 2, 1, 0, 1), 0)
    # Follower 2 has 2 fsynced, the leader only 1: the majority-fsynced offset is 1.
    assert leader.high_watermark == 1
    assert only(actions, HighWatermarkAdvanced) == [HighWatermarkAdvanced(1)]
    assert leader.on_flushed(1, 2)[0] == HighWatermarkAdvanced(2)


# -- the leader: fetches ---------------------------------------------------------------------------


def test_diverging_fetch_gets_the_end_of_the_largest_epoch_not_above_its_own() -> None:
    leader = leader_of(4, entries=[(1, "a"), (1, "b"), (3, "c")])  # epoch 4 starts at 3
    [(_, response)] = sent(leader.on_message(2, FetchRequest(4, 2, 4, 2, 0, 9), 0))
    assert response.diverging_epoch == DivergingEpoch(1, 2)
    assert response.records == ()
    [(_, response)] = sent(leader.on_message(2, FetchRequest(4, 2, 5, 3, 0, 10), 0))
    assert response.diverging_epoch == DivergingEpoch(3, 3)
    [(_, response)] = sent(leader.on_message(2, FetchRequest(4, 2, 3, 3, 0, 11), 0))
    assert response.diverging_epoch is None and response.records == ((4, "leader-change"),)


def test_a_fetch_is_answered_within_the_size_it_asks_for() -> None:
    """replica.fetch.max.bytes travels in the follower's request and bounds the leader's answer;
    a request that names no size gets the leader's own fetch limit."""
    leader = leader_of(2, entries=[(1, "a"), (1, "b")])  # then its leader-change record
    [(_, small)] = sent(leader.on_message(2, FetchRequest(2, 2, 0, 0, 0, 1, max_bytes=1), 0))
    assert small.records == ((1, "a"),)
    [(_, unsized)] = sent(leader.on_message(3, FetchRequest(2, 3, 0, 0, 0, 2), 0))
    assert unsized.records == ((1, "a"), (1, "b"), (2, "leader-change"))
    follower = replica(2, state=QuorumState(2, None, 1), entries=[(1, "a")])
    [(_, request)] = sent(follower.tick(0), FetchRequest)
    assert request.max_bytes == CONFIG.fetch_limit


def test_fetch_for_another_epoch_or_from_a_non_leader_is_refused_with_the_leader() -> None:
    leader = leader_of(3)
    [(_, old)] = sent(leader.on_message(2, FetchRequest(2, 2, 0, 0, 0, 1), 0))
    assert (old.error, old.epoch, old.leader_id) == (ErrorCode.fenced_leader_epoch, 3, 1)
    follower = replica(2, state=QuorumState(3, None, 1))
    [(_, refused)] = sent(follower.on_message(3, FetchRequest(3, 3, 0, 0, 0, 1), 0))
    assert (refused.error, refused.leader_id) == (ErrorCode.not_leader_or_follower, 1)


def test_a_fetch_without_new_records_waits_for_an_append_or_max_wait() -> None:
    leader = leader_of(1)
    leader.on_message(2, FetchRequest(1, 2, 1, 1, 0, 6), 5)  # commits the leader-change batch
    assert leader.on_message(2, FetchRequest(1, 2, 1, 1, 50, 7), 10) == []
    log = leader.log
    assert isinstance(log, MemoryLog)
    log.append([(1, "x")])
    [(_, response)] = sent(leader.on_local_append(2))
    assert response.request_id == 7 and response.records == ((1, "x"),)
    assert leader.on_message(3, FetchRequest(1, 3, 2, 1, 50, 8), 20) == []
    assert leader.next_deadline() == 70
    [(_, expired)] = sent(leader.tick(70), FetchResponse)
    assert expired.request_id == 8 and expired.records == ()


def test_idle_fetches_are_held_at_most_half_a_fetch_timeout() -> None:
    leader = leader_of(2)
    end = leader.log.end_offset
    leader.on_message(2, FetchRequest(2, 2, end, 2, 0, request_id=1), 1)  # commits: answered
    assert leader.on_message(2, FetchRequest(2, 2, end, 2, 10_000, request_id=2), 5) == []
    held_until = 5 + CONFIG.fetch_timeout_ms // 2
    assert sent(leader.tick(held_until - 1), FetchResponse) == []
    assert [d for d, _ in sent(leader.tick(held_until), FetchResponse)] == [2]


# -- reads from the leader's state: lease and barrier ----------------------------------------------


def test_read_lease_needs_a_majority_heard_within_three_quarters_of_the_fetch_timeout() -> None:
    lone = replica(voters=(1,))
    assert not lone.has_read_lease(0)
    lone.start_election()
    assert lone.has_read_lease(10**9)  # nobody else can lead
    leader = leader_of(2)  # elected at 0 by a majority's votes
    window = CONFIG.fetch_timeout_ms * 3 // 4
    assert leader.has_read_lease(window - 1)
    assert not leader.has_read_lease(window)  # no voter has fetched since: maybe deposed
    end = leader.log.end_offset
    leader.on_message(3, FetchRequest(2, 3, end, 2, 0, request_id=1), window + 1)
    assert leader.has_read_lease(window + 1)
    assert not leader.has_read_lease(2 * window + 1)
    follower = replica(2, state=QuorumState(2, None, 1))
    assert not follower.has_read_lease(0)


def test_a_read_barrier_needs_a_majority_that_followed_after_it() -> None:
    lone = replica(voters=(1,))
    lone.start_election()
    barrier, _ = lone.read_barrier(5)
    assert lone.read_confirmed(barrier)  # nobody else can lead
    leader = leader_of(2)
    end = leader.log.end_offset
    leader.on_message(2, FetchRequest(2, 2, end, 2, 0, request_id=1), 1)  # commits
    # Voter 2's fetch is held (nothing new); the barrier answers it at once.
    assert leader.on_message(2, FetchRequest(2, 2, end, 2, 10_000, request_id=2), 5) == []
    barrier, actions = leader.read_barrier(10)
    assert barrier == 10 and not leader.read_confirmed(barrier)
    [(_, answer)] = sent(actions, FetchResponse)
    assert answer.sent_at == 10
    # A fetch that arrives now but was sent before the replica had that answer proves nothing
    # (it may have been delayed while another leader was elected); it is answered, not held.
    late = FetchRequest(2, 3, end, 2, 10_000, request_id=7, acknowledged_at=4)
    assert sent(leader.on_message(3, late, 11), FetchResponse)
    assert not leader.read_confirmed(barrier)
    again = FetchRequest(2, 2, end, 2, 10_000, request_id=3, acknowledged_at=answer.sent_at)
    leader.on_message(2, again, 12)
    assert leader.read_confirmed(barrier)
    # Without a barrier waiting, idle fetches are held again.
    after = FetchRequest(2, 3, end, 2, 10_000, request_id=8, acknowledged_at=11)
    assert leader.on_message(3, after, 13) == []
    follower = replica(2, state=QuorumState(2, None, 1))
    assert follower.read_barrier(0) == (-1, []) and not follower.read_confirmed(0)


def test_a_follower_acknowledges_the_latest_answer_it_received() -> None:
    raft = replica(state=QuorumState(2, None, 2))
    [(_, first)] = sent(raft.tick(1), FetchRequest)
    assert first.acknowledged_at == -1
    actions = raft.on_message(
        2, FetchResponse(2, 2, first.request_id, 0, high_watermark=0, sent_at=40), 10
    )
    [(_, second)] = sent(actions, FetchRequest)
    assert second.acknowledged_at == 40


# -- the follower: fetch, append, truncate ---------------------------------------------------------


def test_follower_fetches_only_what_it_has_fsynced() -> None:
    follower = replica(2, state=QuorumState(1, None, 1))
    [(_, first)] = sent(follower.tick(0), FetchRequest)
    records = ((1, "leader-change"), (1, "a"))
    response = FetchResponse(1, 1, first.request_id, 0, high_watermark=2, records=records)
    assert follower.on_message(1, response, 1) == [AppendRecords(records)]
    log = follower.log
    assert isinstance(log, MemoryLog)
    log.append(records)
    actions = follower.on_local_append(2)
    # HW = min(leader's, own end), and no fetch until the appended records are fsynced.
    assert actions == [HighWatermarkAdvanced(2)]
    assert sent(follower.tick(2), FetchRequest) == []
    [(_, second)] = sent(follower.on_flushed(2, 2), FetchRequest)
    assert (second.fetch_offset, second.last_fetched_epoch) == (2, 1)


def test_follower_high_watermark_is_capped_by_its_own_log() -> None:
    follower = replica(2, state=QuorumState(1, None, 1), entries=[(1, "a")])
    [(_, request)] = sent(follower.tick(0), FetchRequest)
    response = FetchResponse(1, 1, request.request_id, 1, high_watermark=9)
    assert only(follower.on_message(1, response, 1), HighWatermarkAdvanced) == [
        HighWatermarkAdvanced(1)
    ]


def test_follower_truncates_to_the_common_point_and_fetches_again() -> None:
    entries = [(1, "a"), (2, "b"), (2, "c"), (2, "d")]
    follower = replica(2, state=QuorumState(3, None, 1), entries=entries, high_watermark=1)
    [(_, request)] = sent(follower.tick(0), FetchRequest)
    assert (request.fetch_offset, request.last_fetched_epoch) == (4, 2)
    diverging = FetchResponse(3, 1, request.request_id, 4, diverging_epoch=DivergingEpoch(2, 3))
    assert follower.on_message(1, diverging, 1) == [TruncateLog(3)]
    log = follower.log
    assert isinstance(log, MemoryLog)
    log.truncate(3)
    [(_, again)] = sent(follower.on_truncated(3), FetchRequest)
    assert (again.fetch_offset, again.last_fetched_epoch) == (3, 2)


def test_follower_never_truncates_below_its_high_watermark() -> None:
    entries = [(1, "a"), (1, "b"), (1, "c")]
    follower = replica(2, state=QuorumState(3, None, 1), entries=entries, high_watermark=3)
    [(_, request)] = sent(follower.tick(0), FetchRequest)
    diverging = FetchResponse(3, 1, request.request_id, 3, diverging_epoch=DivergingEpoch(1, 2))
    with pytest.raises(RaftSafetyError):
        follower.on_message(1, diverging, 1)


def test_stale_or_duplicated_fetch_responses_are_ignored() -> None:
    follower = replica(2, state=QuorumState(1, None, 1))
    [(_, request)] = sent(follower.tick(0), FetchRequest)
    records = ((1, "a"),)
    response = FetchResponse(1, 1, request.request_id, 0, 0, records)
    assert follower.on_message(1, response, 1) == [AppendRecords(records)]
    assert follower.on_message(1, response, 2) == []
    assert follower.on_message(1, FetchResponse(1, 1, 12345, 0, 0, records), 3) == []


def test_higher_epoch_in_a_response_is_adopted_and_persisted() -> None:
    follower = replica(2, state=QuorumState(1, None, 1))
    [(_, request)] = sent(follower.tick(0), FetchRequest)
    fenced = FetchResponse(4, 3, request.request_id, 0, error=ErrorCode.fenced_leader_epoch)
    actions = follower.on_message(1, fenced, 1)
    assert only(actions, PersistQuorumState) == [PersistQuorumState(QuorumState(4, None, 3))]
    assert RoleChanged(Role.FOLLOWER, 4, 3) in actions
    assert sent(actions, FetchRequest)[0][0] == 3


def test_an_observer_finds_the_leader_through_any_voter() -> None:
    voters = {1: "d1", 2: "d2", 3: "d3"}
    observer = replica(2, voters=voters, directory_id="wiped")
    [(target, discovery)] = sent(observer.tick(10_000), FetchRequest)
    answer = FetchResponse(5, 1, discovery.request_id, 0, error=ErrorCode.not_leader_or_follower)
    actions = observer.on_message(target, answer, 10_001)
    assert observer.role is Role.FOLLOWER and observer.leader_id == 1
    assert sent(actions, FetchRequest)[0][0] == 1
    leader = leader_of(5, voters=voters, directory_id="d1")
    fetch = sent(actions, FetchRequest)[0][1]
    leader.on_message(2, fetch, 0)
    assert leader.voter_progress()[2].end_offset == 0  # an observer's fetch does not count


# -- logs ------------------------------------------------------------------------------------------


def test_memory_log_epoch_lookup() -> None:
    log = MemoryLog([(1, "a"), (1, "b"), (3, "c")])
    assert (log.end_offset, log.last_epoch) == (3, 3)
    assert log.end_offset_for_epoch(1) == (1, 2)
    assert log.end_offset_for_epoch(2) == (1, 2)
    assert log.end_offset_for_epoch(5) == (3, 3)
    assert log.end_offset_for_epoch(0) == (0, 0)
    log.truncate(2)
    assert (log.end_offset, log.last_epoch) == (2, 1)
    assert MemoryLog().last_epoch == 0
    with pytest.raises(ValueError):
        log.append([(0, "older epoch")])


def test_partition_log_view_answers_from_the_leader_epoch_cache(tmp_path: Any) -> None:
    cache = LeaderEpochCache(tmp_path / "cp", (EpochEntry(1, 0), EpochEntry(3, 5)))
    fake = SimpleNamespace(
        leader_epochs=cache,
        log_end_offset=9,
        log_start_offset=0,
        read=lambda offset, limit, max_offset=None: b"batches",
    )
    view = PartitionLogView(fake)  # type: ignore[arg-type]
    assert (view.end_offset, view.last_epoch) == (9, 3)
    assert view.end_offset_for_epoch(2) == (1, 5)
    assert view.end_offset_for_epoch(3) == (3, 9)
    assert view.read(0, 100) == b"batches"
    empty = PartitionLogView(
        SimpleNamespace(
            leader_epochs=LeaderEpochCache(tmp_path / "x"), log_end_offset=0, log_start_offset=0
        )  # type: ignore[arg-type]
    )
    assert (empty.last_epoch, empty.end_offset_for_epoch(4)) == (0, (0, 0))
