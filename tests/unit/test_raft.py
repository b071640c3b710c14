"""The rules of the Raft state machine (rafka.replication.raft), one event at a time."""

from __future__ import annotations

import random
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest

from rafka.protocol.errors import ErrorCode
from rafka.replication.actions import (
    Action,
    AppendLeaderChange,
    AppendRecords,
    HighWatermarkAdvanced,
    PersistQuorumState,
    RoleChanged,
    SendMessage,
    TruncateLog,
)
from rafka.replication.log import MemoryLog, PartitionLogView
from rafka.replication.messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    DivergingEpoch,
    EndQuorumEpochRequest,
    FetchRequest,
    FetchResponse,
    VoteRequest,
    VoteResponse,
)
from rafka.replication.raft import RaftConfig, RaftReplica, RaftSafetyError
from rafka.replication.state import QuorumState, Role
from rafka.storage.leader_epoch import EpochEntry, LeaderEpochCache

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


# -- the single-voter path the broker uses --------------------------------------------------------


def test_single_voter_elects_itself_and_persists_before_leading() -> None:
    raft = RaftReplica(1, frozenset({1}), QuorumState(3, None, None), 10)
    actions = raft.start_election()
    persisted = only(actions, PersistQuorumState)
    assert persisted[0].state == QuorumState(4, 1, None)
    assert persisted[-1].state == QuorumState(4, 1, 1)
    # A lone voter's fsync is the majority: no entry of its own epoch is needed to commit the
    # tail, so the epoch burns no offset.
    assert only(actions, AppendLeaderChange) == []
    assert raft.is_leader and raft.epoch == 4 and raft.leader_id == 1
    assert raft.epoch_start_offset == 10


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


def test_restarted_leader_never_leads_its_old_epoch_again() -> None:
    raft = RaftReplica(1, frozenset({1}), QuorumState(2, 1, 1), 5)
    assert raft.role is Role.RESIGNED and not raft.is_leader
    raft.start_election()
    assert raft.is_leader and raft.epoch == 3


# -- votes ---------------------------------------------------------------------------------------


def test_vote_granted_is_persisted_before_the_response() -> None:
    raft = replica(entries=[(1, "a")], state=QuorumState(1))
    actions = raft.on_message(2, vote(2, last_epoch=1, end=1), 0)
    persist = only(actions, PersistQuorumState)
    assert persist[-1].state == QuorumState(2, 2, None)
    responses = sent(actions, VoteResponse)
    assert responses == [(2, VoteResponse(2, None, True))]
    assert actions.index(persist[-1]) < next(
        i for i, a in enumerate(actions) if isinstance(a, SendMessage)
    )


def test_vote_refused_when_last_epoch_is_not_below_candidate_epoch() -> None:
    raft = replica(state=QuorumState(1))
    actions = raft.on_message(2, vote(2, last_epoch=2, end=5), 0)
    assert sent(actions) == [(2, VoteResponse(1, None, False, error=ErrorCode.invalid_request))]
    assert raft.state == QuorumState(1)


def test_vote_refused_for_an_older_epoch_with_our_epoch_in_the_answer() -> None:
    raft = replica(state=QuorumState(5, None, 3))
    [(_, response)] = sent(raft.on_message(2, vote(4, last_epoch=1, end=9), 0))
    assert response == VoteResponse(5, 3, False, error=ErrorCode.fenced_leader_epoch)


@pytest.mark.parametrize(
    ("last_epoch", "end", "granted"),
    [(2, 3, True), (2, 9, True), (2, 2, False), (1, 50, False), (3, 1, True)],
)
def test_vote_compares_last_epoch_then_end_offset(last_epoch: int, end: int, granted: bool) -> None:
    raft = replica(state=QuorumState(3), entries=[(1, "a"), (2, "b"), (2, "c")])
    [(_, response)] = sent(raft.on_message(2, vote(4, last_epoch=last_epoch, end=end), 0))
    assert response.granted is granted
    # A higher epoch is adopted (and persisted) whether or not the vote is granted.
    assert raft.epoch == 4
    assert raft.state.voted_for == (2 if granted else None)


def test_one_vote_per_epoch_and_the_same_candidate_again_is_idempotent() -> None:
    raft = replica(state=QuorumState(1))
    raft.on_message(2, vote(2), 0)
    [(_, other)] = sent(raft.on_message(3, vote(2, candidate=3), 0))
    assert not other.granted
    again = raft.on_message(2, vote(2), 0)
    assert only(again, PersistQuorumState) == []
    assert sent(again) == [(2, VoteResponse(2, None, True))]


def test_no_vote_in_an_epoch_with_a_known_leader() -> None:
    raft = replica(state=QuorumState(2, None, 3))
    [(_, response)] = sent(raft.on_message(2, vote(2, last_epoch=1, end=100), 0))
    assert not response.granted and response.leader_id == 3


def test_voter_keys_guard_against_a_wiped_disk() -> None:
    voters = {1: "dir-1", 2: "dir-2", 3: "dir-3"}
    raft = replica(voters=voters, directory_id="dir-1")
    stale = vote(1, candidate_directory_id="dir-2", voter_directory_id="dir-1")
    assert sent(raft.on_message(2, stale, 0))[0][1].granted
    # A candidate whose disk was wiped has another directory id: no longer that voter.
    wiped_candidate = vote(2, candidate=3, candidate_directory_id="new")
    [(_, refused)] = sent(raft.on_message(3, wiped_candidate, 0))
    assert refused.error is ErrorCode.inconsistent_voter_set
    # A replica whose own disk was wiped is an observer: it neither votes nor campaigns.
    wiped = replica(voters=voters, directory_id="fresh")
    assert not wiped.is_voter
    request = vote(1, candidate_directory_id="dir-2", voter_directory_id="dir-1")
    assert not sent(wiped.on_message(2, request, 0))[0][1].granted
    assert wiped.start_election() == []
    assert sent(wiped.tick(10_000), VoteRequest) == []


def test_replica_that_lost_fsynced_records_neither_votes_nor_campaigns_until_caught_up() -> None:
    # Protocol-aware recovery: it had fsynced up to 4, storage kept 2. With its short log it
    # would grant a vote to a candidate missing committed records (issue 13's lost writes).
    raft = replica(state=QuorumState(3), entries=[(1, "a"), (2, "b")], lost_end_offset=4)
    assert raft.impaired and not raft.is_voter
    for pre_vote in (True, False):
        request = vote(4, candidate=2, last_epoch=2, end=2, pre_vote=pre_vote)
        assert not sent(raft.on_message(2, request, 0), VoteResponse)[0][1].granted
    assert raft.start_election() == []
    actions = raft.tick(10_000)  # its election timer: it looks for a leader instead
    assert sent(actions, VoteRequest) == []
    assert [type(m) for _, m in sent(actions)] == [FetchRequest]
    # Back from the leader: a voter again.
    raft.on_message(3, BeginQuorumEpochRequest(5, 3), 10_001)
    log = raft.log
    assert isinstance(log, MemoryLog)
    log.append([(3, "c"), (3, "d")])
    raft.on_local_append(4)
    assert not raft.impaired and raft.is_voter
    log.truncate(3)  # a later truncation is Raft's own business
    raft.on_truncated(3)
    assert raft.is_voter


def test_a_lone_voter_is_never_impaired() -> None:
    raft = replica(voters=(1,), entries=[(1, "a")], lost_end_offset=4)
    assert not raft.impaired
    raft.start_election()
    assert raft.is_leader


def test_a_fetch_that_failed_in_transport_is_no_contact_from_the_leader() -> None:
    raft = replica(state=QuorumState(2, None, 2))  # follows 2 in epoch 2
    [(_, fetch)] = sent(raft.tick(1), FetchRequest)
    assert raft.on_fetch_failed(fetch.request_id, 5) == []
    assert raft.role is Role.FOLLOWER and raft.next_deadline() == 5 + CONFIG.retry_backoff_ms
    [(_, again)] = sent(raft.tick(5 + CONFIG.retry_backoff_ms), FetchRequest)
    # The leader stays silent past the fetch timeout: a pre-vote starts...
    actions = raft.tick(1 + CONFIG.fetch_timeout_ms)
    assert raft.role is Role.PROSPECTIVE and sent(actions, VoteRequest)
    # ...and the transport's late report of the lost fetch does not abandon it.
    assert raft.on_fetch_failed(again.request_id, 2 + CONFIG.fetch_timeout_ms) == []
    assert raft.role is Role.PROSPECTIVE


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


def test_idle_fetches_are_held_at_most_half_a_fetch_timeout() -> None:
    leader = leader_of(2)
    end = leader.log.end_offset
    leader.on_message(2, FetchRequest(2, 2, end, 2, 0, request_id=1), 1)  # commits: answered
    assert leader.on_message(2, FetchRequest(2, 2, end, 2, 10_000, request_id=2), 5) == []
    held_until = 5 + CONFIG.fetch_timeout_ms // 2
    assert sent(leader.tick(held_until - 1), FetchResponse) == []
    assert [d for d, _ in sent(leader.tick(held_until), FetchResponse)] == [2]


def test_an_ineligible_replica_votes_but_stands_for_no_election() -> None:
    # Its broker is cut off from the controller: clients could not be told it leads.
    raft = replica(state=QuorumState(2, None, 2))
    raft.eligible = False
    assert raft.start_election() == []
    actions = raft.tick(1 + CONFIG.fetch_timeout_ms)  # the leader went silent
    assert raft.role is Role.FOLLOWER and sent(actions, VoteRequest) == []
    request = vote(3, candidate=3, last_epoch=0, end=0)
    assert sent(raft.on_message(3, request, 2 + CONFIG.fetch_timeout_ms))[0][1].granted
    raft.eligible = True
    actions = raft.tick(10_000)
    assert raft.role is Role.PROSPECTIVE and sent(actions, VoteRequest)


def test_heard_from_leader_within_a_window() -> None:
    raft = replica(state=QuorumState(2, None, 2))
    assert not raft.heard_from_leader_within(CONFIG.fetch_timeout_ms, 0)  # not heard from yet
    [(_, fetch)] = sent(raft.tick(1), FetchRequest)
    raft.on_message(2, FetchResponse(2, 2, fetch.request_id, 0, high_watermark=0), 10)
    assert raft.heard_from_leader_within(1_000, 1_009)
    assert not raft.heard_from_leader_within(1_000, 1_010)
    assert leader_of(2).heard_from_leader_within(1, 10**9)


def test_an_election_is_no_loss_of_touch_until_the_window_passes() -> None:
    # The broker's self-fencing asks with broker.session.timeout.ms: a metadata replica that
    # lost its leader a moment ago and stands for election has not been cut off for that long.
    raft = replica(state=QuorumState(2, None, 2))
    [(_, fetch)] = sent(raft.tick(1), FetchRequest)
    raft.on_message(2, FetchResponse(2, 2, fetch.request_id, 0, high_watermark=0), 10)
    raft.tick(10 + 2 * CONFIG.fetch_timeout_ms)
    assert raft.role is not Role.FOLLOWER
    assert raft.heard_from_leader_within(15_000, 10 + 2 * CONFIG.fetch_timeout_ms)
    assert not raft.heard_from_leader_within(15_000, 15_010)
    # A leader that steps down was in touch until then.
    leader = leader_of(2)
    at = CONFIG.check_quorum_timeout_ms - 1
    leader.tick(at)
    leader.resign()
    assert leader.role is Role.RESIGNED
    assert leader.heard_from_leader_within(1_000, at + 999)
    assert not leader.heard_from_leader_within(1_000, at + 1_000)


# -- pre-vote and elections -----------------------------------------------------------------------


def test_election_timeout_starts_a_pre_vote_without_touching_the_epoch() -> None:
    raft = replica(state=QuorumState(4), entries=[(3, "x")])
    deadline = raft.next_deadline()
    assert deadline is not None and CONFIG.election_timeout_ms <= deadline
    assert deadline < 2 * CONFIG.election_timeout_ms
    actions = raft.tick(deadline)
    assert raft.role is Role.PROSPECTIVE and raft.epoch == 4
    assert only(actions, PersistQuorumState) == []
    requests = sent(actions, VoteRequest)
    assert [d for d, _ in requests] == [2, 3]
    assert all(
        r.pre_vote and r.epoch == 5 and (r.last_epoch, r.end_offset) == (3, 1) for _, r in requests
    )


def test_pre_vote_majority_makes_a_candidate_then_votes_make_a_leader() -> None:
    raft = replica(state=QuorumState(4))
    raft.tick(1000)
    actions = raft.on_message(2, VoteResponse(4, None, True, pre_vote=True), 1000)
    assert raft.role is Role.CANDIDATE and raft.epoch == 5
    assert only(actions, PersistQuorumState)[0].state == QuorumState(5, 1, None)
    assert all(not r.pre_vote and r.epoch == 5 for _, r in sent(actions, VoteRequest))
    actions = raft.on_message(3, VoteResponse(5, None, True), 1001)
    assert raft.is_leader
    kinds = [type(a) for a in actions]
    assert kinds.index(PersistQuorumState) < kinds.index(SendMessage)
    assert [d for d, _ in sent(actions, BeginQuorumEpochRequest)] == [2, 3]


def test_pre_vote_never_changes_the_voters_state() -> None:
    raft = replica(state=QuorumState(2))
    actions = raft.on_message(3, vote(5, candidate=3, pre_vote=True), 0)
    assert sent(actions) == [(3, VoteResponse(2, None, True, pre_vote=True))]
    assert only(actions, PersistQuorumState) == [] and raft.state == QuorumState(2)


def test_a_follower_of_a_live_leader_refuses_pre_votes() -> None:
    follower = replica(2, state=QuorumState(3, None, 1))
    [(_, request)] = sent(follower.tick(0), FetchRequest)
    follower.on_message(1, FetchResponse(3, 1, request.request_id, 0, 0), 5)
    pre_vote = vote(4, candidate=3, last_epoch=0, end=0, pre_vote=True)
    [(_, refused)] = sent(follower.on_message(3, pre_vote, 10))
    assert not refused.granted and refused.leader_id == 1
    # Once the leader has been silent for the fetch timeout the pre-vote is granted.
    [(_, granted)] = sent(follower.on_message(3, pre_vote, 5 + CONFIG.fetch_timeout_ms))
    assert granted.granted


def test_a_rejoining_node_cannot_disrupt_a_healthy_leader() -> None:
    cluster = MiniCluster(3)
    cluster.run_until(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None
    epoch = leader.epoch
    loner = next(n for n in cluster.nodes.values() if n is not leader)
    cluster.isolated = {loner.node_id}
    cluster.run_for(2000)  # the isolated node times out, again and again
    cluster.isolated = set()
    cluster.run_for(1000)
    assert cluster.leader() is leader and leader.epoch == epoch
    assert loner.role is Role.FOLLOWER and loner.leader_id == leader.node_id


def test_a_candidate_that_lost_goes_back_to_pre_vote() -> None:
    raft = replica(state=QuorumState(4))
    raft.start_election()
    raft.on_message(2, VoteResponse(5, None, False), 0)
    raft.on_message(3, VoteResponse(5, None, False), 0)
    deadline = raft.next_deadline()
    assert deadline is not None and deadline <= CONFIG.election_backoff_max_ms
    raft.tick(deadline)
    assert raft.role is Role.PROSPECTIVE and raft.epoch == 5


def test_begin_quorum_epoch_makes_a_follower_that_fetches() -> None:
    raft = replica(2, state=QuorumState(1, 3, None), entries=[(1, "a")])
    actions = raft.on_message(3, BeginQuorumEpochRequest(1, 3), 0)
    assert raft.role is Role.FOLLOWER and raft.state == QuorumState(1, 3, 3)
    [(_, fetch)] = sent(actions, FetchRequest)
    assert (fetch.epoch, fetch.fetch_offset, fetch.last_fetched_epoch) == (1, 1, 1)
    assert sent(actions, BeginQuorumEpochResponse) == [(3, BeginQuorumEpochResponse(1, 3))]


def test_two_leaders_in_one_epoch_is_refused_loudly() -> None:
    raft = replica(2, state=QuorumState(1, None, 3))
    with pytest.raises(RaftSafetyError):
        raft.on_message(1, BeginQuorumEpochRequest(1, 1), 0)


# -- the leader: high watermark, fetches, check-quorum, resignation --------------------------------


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


def test_diverging_fetch_gets_the_end_of_the_largest_epoch_not_above_its_own() -> None:
    leader = leader_of(4, entries=[(1, "a"), (1, "b"), (3, "c")])  # epoch 4 starts at 3
    [(_, response)] = sent(leader.on_message(2, FetchRequest(4, 2, 4, 2, 0, 9), 0))
    assert response.diverging_epoch == DivergingEpoch(1, 2)
    assert response.records == ()
    [(_, response)] = sent(leader.on_message(2, FetchRequest(4, 2, 5, 3, 0, 10), 0))
    assert response.diverging_epoch == DivergingEpoch(3, 3)
    [(_, response)] = sent(leader.on_message(2, FetchRequest(4, 2, 3, 3, 0, 11), 0))
    assert response.diverging_epoch is None and response.records == ((4, "leader-change"),)


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


def test_leader_resigns_when_a_majority_stops_fetching() -> None:
    leader = leader_of(1, voters=(1, 2, 3, 4, 5))
    window = CONFIG.check_quorum_timeout_ms
    for voter in (2, 3):
        leader.on_message(voter, FetchRequest(1, voter, 1, 1, 0, 1), window - 10)
    leader.tick(window)
    assert leader.is_leader  # itself and two others heard within the window: three of five
    leader.tick(2 * window - 11)
    assert leader.is_leader
    actions = leader.tick(2 * window - 10)
    assert leader.role is Role.RESIGNED
    assert len(sent(actions, EndQuorumEpochRequest)) == 4


def test_graceful_resignation_hands_over_to_the_most_caught_up_voter() -> None:
    leader = leader_of(1)
    log = leader.log
    assert isinstance(log, MemoryLog)
    log.append([(1, "x")])
    leader.on_local_append(2)
    leader.on_message(3, FetchRequest(1, 3, 2, 1, 0, 1), 0)
    leader.on_message(2, FetchRequest(1, 2, 1, 1, 0, 1), 0)
    actions = leader.resign()
    assert leader.role is Role.RESIGNED and not leader.is_leader
    requests = sent(actions, EndQuorumEpochRequest)
    assert {d for d, _ in requests} == {2, 3}
    assert requests[0][1].preferred_successors == (3, 2)
    successor = replica(3, state=QuorumState(1, None, 1))
    successor.on_message(1, requests[0][1], 100)
    assert successor.next_deadline() == 100
    successor.tick(100)
    assert successor.role is Role.PROSPECTIVE


def test_a_leader_steps_down_for_a_voter_stuck_in_a_higher_epoch() -> None:
    leader = leader_of(2)
    silent = CONFIG.fetch_timeout_ms + CONFIG.request_timeout_ms
    leader.on_message(2, FetchRequest(2, 2, 1, 2, 0, 1), silent)
    [(voter, begin)] = sent(leader.tick(silent), BeginQuorumEpochRequest)
    assert voter == 3
    stuck = replica(3, state=QuorumState(3, 3, None))
    [(_, answer)] = sent(stuck.on_message(1, begin, silent))
    leader.on_message(3, answer, silent)
    assert leader.role is Role.UNATTACHED and leader.epoch == 3


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


# -- logs ----------------------------------------------------------------------------------------


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
        read=lambda offset, limit: b"batches",
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


# -- a tiny synchronous cluster ------------------------------------------------------------------


class MiniCluster:
    """Instant delivery, instant fsync, a clock advanced by hand: enough for liveness rules."""

    def __init__(self, size: int) -> None:
        voters = tuple(range(1, size + 1))
        self.nodes = {n: replica(n, voters=voters) for n in voters}
        self.now = 0
        self.isolated: set[int] = set()

    def leader(self) -> RaftReplica | None:
        leaders = [n for n in self.nodes.values() if n.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    def run_for(self, duration_ms: int) -> None:
        end = self.now + duration_ms
        self.run_until(lambda: self.now >= end)

    def run_until(self, done: Any, limit_ms: int = 10_000) -> None:
        stop = self.now + limit_ms
        while not done() and self.now < stop:
            self.now += 1
            for node in self.nodes.values():
                self._apply(node, node.tick(self.now))

    def _apply(self, node: RaftReplica, actions: list[Action]) -> None:
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
            elif isinstance(action, AppendLeaderChange):
                log.append([(action.epoch, "leader-change")])
                more = owner.on_local_append(log.end_offset)
                more += owner.on_flushed(owner.node_id, log.end_offset)
            elif isinstance(action, AppendRecords):
                log.append(action.records)  # type: ignore[arg-type]
                more = owner.on_local_append(log.end_offset)
                more += owner.on_flushed(owner.node_id, log.end_offset)
            elif isinstance(action, TruncateLog):
                log.truncate(action.end_offset)
                more = owner.on_truncated(log.end_offset)
            todo.extend((owner, a) for a in more)
