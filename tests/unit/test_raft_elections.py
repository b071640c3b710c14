"""The Raft state machine (rafka.replication.raft), one event at a time: who leads. Votes and
pre-votes, elections, voter keys and impaired replicas, contact with the leader, resignation.
The replication side is in test_raft_replication.py; shared helpers in test_raft_support.py."""

from __future__ import annotations

import pytest
from test_raft_support import CONFIG, MiniCluster, leader_of, only, replica, sent, vote

from rafka.protocol.errors import ErrorCode
from rafka.replication.actions import (
    AppendLeaderChange,
    PersistQuorumState,
    SendMessage,
)
from rafka.replication.log import MemoryLog
from rafka.replication.messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    EndQuorumEpochRequest,
    FetchRequest,
    FetchResponse,
    VoteRequest,
    VoteResponse,
)
from rafka.replication.raft import RaftReplica, RaftSafetyError
from rafka.replication.state import QuorumState, Role

# -- the single-voter path the broker uses ---------------------------------------------------------


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


def test_restarted_leader_never_leads_its_old_epoch_again() -> None:
    raft = RaftReplica(1, frozenset({1}), QuorumState(2, 1, 1), 5)
    assert raft.role is Role.RESIGNED and not raft.is_leader
    raft.start_election()
    assert raft.is_leader and raft.epoch == 3


# -- votes -----------------------------------------------------------------------------------------


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


def test_a_leaving_replica_neither_stands_nor_votes() -> None:
    # Its broker shuts down and handed over: a vote of its could elect a second leader over the
    # one it handed over to. Nor does regaining eligibility (self-fencing) let it stand again.
    raft = replica(state=QuorumState(2, None, 2))
    raft.leaving = True
    assert raft.start_election() == []
    actions = raft.tick(1 + CONFIG.fetch_timeout_ms)  # the leader went silent
    assert raft.role is Role.FOLLOWER and sent(actions, VoteRequest) == []
    now = 2 + CONFIG.fetch_timeout_ms
    for pre_vote in (True, False):
        request = vote(3, candidate=3, last_epoch=0, end=0, pre_vote=pre_vote)
        [(_, response)] = sent(raft.on_message(3, request, now), VoteResponse)
        assert not response.granted
    assert raft.state.voted_for is None
    raft.eligible = True
    assert sent(raft.tick(10_000), VoteRequest) == []


# -- contact with the leader -----------------------------------------------------------------------


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


# -- pre-vote and elections ------------------------------------------------------------------------


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


# -- the leader steps down: check-quorum, resignation, a higher epoch ------------------------------


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


def test_leaders_elected_apart_resend_begin_quorum_epoch_on_few_ticks() -> None:
    # A node leads thousands of groups elected a few ms apart; their resends to a silent voter
    # must fall on few ticks for the broker to carry them in few requests.
    def first_resend(leader: RaftReplica) -> int:
        for now in range(CONFIG.request_timeout_ms * 3):
            if sent(leader.tick(now), BeginQuorumEpochRequest):
                return now
        raise AssertionError("no resend")

    starts = range(0, CONFIG.request_timeout_ms // 2, 2)  # 20 leaders over half a timeout
    times = {start: first_resend(leader_of(1, now_ms=start)) for start in starts}
    assert len(set(times.values())) <= 3
    for start, when in times.items():
        assert CONFIG.request_timeout_ms <= when - start <= CONFIG.request_timeout_ms * 5 // 4


def test_a_new_leader_counts_its_silent_predecessor_in_sync_only_once_caught_up() -> None:
    """The ISR the new leader reports names the silent leader only once it fetched all: records
    committed without it must not be credited to it (tests/integration/test_rolling_restart.py
    saw a killed leader listed in sync after its restart, from the election's report)."""
    cluster = MiniCluster(3)
    cluster.run_until(lambda: cluster.leader() is not None)
    old = cluster.leader()
    assert old is not None
    cluster.isolated = {old.node_id}
    cluster.run_until(lambda: (new := cluster.leader()) is not None and new is not old)
    new = cluster.leader()
    assert new is not None
    others = sorted(set(cluster.nodes) - {old.node_id})
    assert new.in_sync_voters(cluster.now, 30_000, 2_000) == others
    cluster.write(["committed without the old leader"])
    cluster.isolated = set()
    cluster.run_until(
        lambda: old.leader_id == new.node_id and old.log.end_offset == new.log.end_offset
    )
    cluster.run_for(CONFIG.fetch_max_wait_ms + 10)
    assert new.in_sync_voters(cluster.now, 30_000, 2_000) == sorted(cluster.nodes)


def test_a_restarted_leader_learns_the_new_one_from_its_resignation() -> None:
    # Restarted after leading epoch 1 while 2 and 3 elected 3 in epoch 2: its first tick tells
    # them it resigned, and 3's answer names the leader, long before an election timeout.
    restarted = replica(1, state=QuorumState(1, 1, 1), now_ms=0)
    assert restarted.role is Role.RESIGNED and restarted.next_deadline() == 0
    requests = sent(restarted.tick(0), EndQuorumEpochRequest)
    assert requests == [(2, EndQuorumEpochRequest(1, 1, ())), (3, EndQuorumEpochRequest(1, 1, ()))]
    new_leader = leader_of(2, node_id=3)
    [(_, answer)] = sent(new_leader.on_message(1, requests[1][1], 5))
    restarted.on_message(3, answer, 5)
    assert restarted.role is Role.FOLLOWER and (restarted.epoch, restarted.leader_id) == (2, 3)


def test_a_restarted_leader_resends_its_resignation_until_answered() -> None:
    restarted = replica(1, state=QuorumState(1, 1, 1), now_ms=0)
    requests = sent(restarted.tick(0), EndQuorumEpochRequest)
    follower = replica(2, state=QuorumState(1, None, 1))
    [(_, answer)] = sent(follower.on_message(1, requests[0][1], 1))
    restarted.on_message(2, answer, 1)
    resend_at = restarted.next_deadline()  # a request timeout later, on its resend grid
    assert resend_at is not None and 0 < resend_at < CONFIG.election_timeout_ms
    assert sent(restarted.tick(resend_at), EndQuorumEpochRequest) == [
        (3, EndQuorumEpochRequest(1, 1, ()))
    ]
    # The follower still waiting for it elects another after a backoff, not a fetch timeout.
    backoff_end = 1 + CONFIG.election_backoff_max_ms
    assert backoff_end < CONFIG.fetch_timeout_ms
    follower.tick(backoff_end)
    assert follower.role is Role.PROSPECTIVE


def test_a_prospective_stays_one_when_its_silent_leader_says_it_resigned() -> None:
    voter = replica(2, state=QuorumState(1, None, 1))
    voter.tick(CONFIG.fetch_timeout_ms)  # the leader went silent
    assert voter.role is Role.PROSPECTIVE
    now = CONFIG.fetch_timeout_ms + 1
    actions = voter.on_message(1, EndQuorumEpochRequest(1, 1, ()), now)
    assert voter.role is Role.PROSPECTIVE
    [(_, answer)] = sent(actions)
    assert answer.error is ErrorCode.none
