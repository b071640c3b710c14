"""Voter changes in the Raft state machine (rafka.replication.raft): KIP-853's rules, one voter
at a time, the voter set taken from the newest voters record in the log. The simulator
(tests/simulation) runs them under faults; these are the rules one event at a time."""

from __future__ import annotations

import pytest
from test_raft_support import MiniCluster, leader_of, sent

from rafka.replication.actions import AppendLeaderChange, AppendVoters
from rafka.replication.log import MemoryLog, VotersEntry
from rafka.replication.messages import FetchRequest, FetchResponse
from rafka.replication.raft import RaftReplica
from rafka.replication.state import QuorumState


def keys(*nodes: int) -> dict[int, str | None]:
    return dict.fromkeys(nodes)


def elected(cluster: MiniCluster) -> RaftReplica:
    cluster.run_until(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None
    return leader


def caught_up(cluster: MiniCluster) -> bool:
    leader = cluster.leader()
    return leader is not None and all(
        n.log.end_offset == leader.log.end_offset and n.high_watermark == leader.high_watermark
        for n in cluster.nodes.values()
    )


def change(cluster: MiniCluster, *voters: int) -> None:
    """Propose through whoever leads until the change is committed everywhere (and a removed
    leader has handed over)."""

    def done() -> bool:
        leader = cluster.leader()
        if leader is None:
            return False
        if leader.voters != frozenset(voters):
            if leader.node_id not in voters:  # a leader hands over before it leaves
                successor = min(v for v in voters if v in leader.voters)
                cluster.apply(leader, leader.resign(successor))
                return False
            cluster.apply(leader, leader.propose_voters(keys(*voters)))
        return (
            leader.voters == frozenset(voters) and leader.node_id in voters and caught_up(cluster)
        )

    cluster.run_until(done)
    assert done(), f"voters {sorted(voters)} not committed everywhere"


def test_an_observer_catches_up_then_joins_the_voters() -> None:
    cluster = MiniCluster(4, voters=3)
    leader = elected(cluster)
    cluster.write(["a", "b", "c"])
    cluster.run_until(lambda: caught_up(cluster))
    observer = cluster.nodes[4]
    assert not observer.is_voter and observer.log.end_offset == leader.log.end_offset
    assert leader.observer_progress()[4].end_offset == leader.log.end_offset
    assert 4 not in leader.voter_progress()

    change(cluster, 1, 2, 3, 4)
    assert observer.is_voter and all(n.voters == {1, 2, 3, 4} for n in cluster.nodes.values())
    assert 4 in leader.voter_progress() and 4 not in leader.observer_progress()
    # Three of four are a majority now: with two voters cut off nothing commits.
    cluster.isolated = set(sorted(set(cluster.nodes) - {leader.node_id})[:2])
    before = leader.high_watermark
    cluster.write(["d"])
    cluster.run_for(50)
    assert leader.high_watermark == before


def test_only_one_voter_changes_at_a_time() -> None:
    leader = leader_of(1)
    with pytest.raises(ValueError):
        leader.propose_voters(keys(1, 2, 3, 4, 5))
    with pytest.raises(ValueError):
        leader.propose_voters(keys(1, 4, 5))
    with pytest.raises(ValueError):
        leader.propose_voters({1: None, 2: None, 3: "another-directory"})
    with pytest.raises(ValueError, match="hands over"):
        leader.propose_voters(keys(2, 3))


def test_a_change_waits_for_the_previous_one_to_commit() -> None:
    cluster = MiniCluster(5, voters=3)
    leader = elected(cluster)
    cluster.write(["a"])
    cluster.run_until(lambda: caught_up(cluster))
    cluster.isolated = set(cluster.nodes) - {leader.node_id}  # nothing can commit
    [append] = leader.propose_voters(keys(1, 2, 3, 4))
    assert isinstance(append, AppendVoters)
    cluster.apply(leader, [append])
    assert leader.voters == {1, 2, 3, 4} and not leader.can_change_voters()
    assert leader.propose_voters(keys(1, 2, 3, 4, 5)) == []
    cluster.isolated = set()
    cluster.run_until(lambda: leader.can_change_voters())
    assert leader.propose_voters(keys(1, 2, 3, 4, 5)) != []


def test_a_new_leader_commits_an_entry_of_its_epoch_before_changing_voters() -> None:
    cluster = MiniCluster(4, voters=3)
    leader = elected(cluster)
    assert leader.log.end_offset == leader.epoch_start_offset  # a fresh group: nothing appended
    assert not leader.can_change_voters()
    actions = leader.propose_voters(keys(1, 2, 3, 4))
    assert [type(a) for a in actions] == [AppendLeaderChange]
    cluster.apply(leader, actions)
    cluster.run_until(lambda: leader.can_change_voters())
    assert isinstance(leader.propose_voters(keys(1, 2, 3, 4))[0], AppendVoters)


def test_a_leader_leaving_the_voters_hands_over_first() -> None:
    cluster = MiniCluster(3)
    leader = elected(cluster)
    cluster.write(["a", "b"])
    cluster.run_until(lambda: caught_up(cluster))
    rest = sorted(set(cluster.nodes) - {leader.node_id})
    change(cluster, *rest)
    successor = cluster.leader()
    assert successor is not None and successor.node_id in rest
    assert not leader.is_leader and not leader.is_voter
    cluster.write(["c"])
    cluster.run_until(lambda: caught_up(cluster))
    values = [v for _, v in successor.log.read(0, 100) if isinstance(v, str)]
    assert [v for v in values if v != "leader-change"] == ["a", "b", "c"]
    # The removed node still replicates (an observer) but its vote is not needed or counted.
    assert leader.log.end_offset == successor.log.end_offset


def test_reassignment_from_one_replica_to_two_others() -> None:
    # Kafka's [1] -> [2, 3]: add 2, add 3, remove 1; every step one voter apart.
    cluster = MiniCluster(3, voters=1)
    leader = elected(cluster)
    assert leader.node_id == 1
    cluster.write(["x", "y"])
    change(cluster, 1, 2)
    change(cluster, 1, 2, 3)
    change(cluster, 2, 3)
    new_leader = cluster.leader()
    assert new_leader is not None and new_leader.node_id in (2, 3)
    assert [v for _, v in new_leader.log.read(0, 100) if v in ("x", "y")] == ["x", "y"]


def test_a_truncated_voters_record_gives_back_the_voters_before_it() -> None:
    log = MemoryLog([(1, "a"), (1, VotersEntry(((1, None), (2, None), (3, None), (4, None))))])
    follower = RaftReplica(2, (1, 2, 3), QuorumState(1, None, 1), log, high_watermark=1)
    assert follower.voters == {1, 2, 3, 4}
    log.truncate(1)
    follower.on_truncated(1)
    assert follower.voters == {1, 2, 3}


def test_a_new_replica_behind_the_leaders_log_start_restarts_its_log_there() -> None:
    # Retention deleted the head of the leader's log (committed): an added replica cannot fetch
    # from 0 and starts its log at the leader's start instead, then joins the voters.
    cluster = MiniCluster(4, voters=3)
    leader = elected(cluster)
    cluster.write(["a", "b", "c", "d"])
    cluster.run_until(lambda: caught_up(cluster))
    for node in list(cluster.nodes.values())[:3]:
        log = node.log
        assert isinstance(log, MemoryLog)
        log.delete_before(3)
    observer_log = MemoryLog()
    cluster.nodes[4] = RaftReplica(4, (1, 2, 3), QuorumState(), observer_log, config=leader.config)
    change(cluster, 1, 2, 3, 4)
    assert observer_log.start_offset == 3
    assert observer_log.read(3, 10) == leader.log.read(3, 10)
    assert cluster.nodes[4].high_watermark == leader.high_watermark


def test_a_voters_record_reaches_followers_only_once_the_leader_has_fsynced_it() -> None:
    # Whoever holds a voter set durably, the leader holds it too: else a follower removed from
    # two voters could keep the only copy after the leader crashed, and never vote for it.
    cluster = MiniCluster(2)
    leader = elected(cluster)
    cluster.write(["a"])
    cluster.run_until(lambda: caught_up(cluster))
    [append] = leader.propose_voters(keys(leader.node_id))
    log = leader.log
    assert isinstance(log, MemoryLog) and isinstance(append, AppendVoters)
    log.append([(append.epoch, VotersEntry(append.voters))])  # appended, not yet fsynced
    leader.on_local_append(log.end_offset)
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    fetch = FetchRequest(
        leader.epoch, follower.node_id, log.end_offset - 1, leader.epoch, 50, 7
    )
    assert leader.on_message(follower.node_id, fetch, cluster.now) == []  # held, not served
    released = leader.on_flushed(leader.node_id, log.end_offset)
    [(_, answer)] = sent(released, FetchResponse)
    assert [value for _, value in answer.records] == [VotersEntry(append.voters)]
