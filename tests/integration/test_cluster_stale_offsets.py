"""No coordinator answers OffsetFetch with an offset older than an acknowledged commit (issue 13,
bug 2), on a three-node cluster of real processes.

The coordinator of a group is the Raft leader of the group's `__consumer_offsets` partition
(`partition_for`: Java's String.hashCode, as Kafka); FindCoordinator on any node names it.

* A coordinator paused (SIGSTOP) after a commit is replaced, and the new one acknowledges a
  newer commit. An OffsetFetch written to the old one's socket while it is stopped is the first
  thing it reads when it resumes, before its Raft timers find that it lost its majority: it must
  answer NOT_COORDINATOR (its read lease has lapsed), never the old offset.
* A coordinator killed right after acknowledging commits: the node that takes over answers
  COORDINATOR_LOAD_IN_PROGRESS until it has replayed its partition up to the high watermark of
  its own epoch, then the last acknowledged offset, never an older one.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from cluster import FAST_FAILOVER, Cluster
from cluster_fixtures import create_topic, running_cluster
from raw_client import RawClient, encode, framed, request_header

from rafka.broker.coordinator.placement import partition_for
from rafka.protocol.errors import ErrorCode
from rafka.protocol.messages import build, request_class, response_class

TOPIC = "positions"
OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_PARTITIONS = 3
OVERRIDES = {
    **FAST_FAILOVER,
    "offsets.topic.num.partitions": str(OFFSETS_PARTITIONS),
    "offsets.topic.replication.factor": "3",
}
# The pause test. The followers elect a new leader one fetch timeout (4 s) after the last
# answer they had from the stopped coordinator; its own check-quorum timer deposes it one and a
# half fetch timeouts after the last follower fetch: 2 s after that election. It resumes
# RESUME_AFTER_S after its successor acknowledged a commit, inside that window, so only what it
# reads deposes it. The broker session outlasts the pause: a node cut off from the controller
# resigns its leaderships too.
PAUSE_OVERRIDES = {
    **OVERRIDES,
    "controller.quorum.fetch.timeout.ms": "4000",
    "broker.session.timeout.ms": "15000",
}
RESUME_AFTER_S = 0.7
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 8, 9, 10
COMMIT_VERSION, FETCH_VERSION, FIND_VERSION = 8, 7, 3
# What a client retries on: the coordinator moved, is being elected or is loading.
RETRIABLE = frozenset(
    {
        ErrorCode.coordinator_load_in_progress,
        ErrorCode.coordinator_not_available,
        ErrorCode.not_coordinator,
    }
)
DEADLINE_S = 30.0
KILL_AFTER_COMMITS = 50

pytestmark = pytest.mark.timeout(180)


def request(api_key: int, version: int, data: dict[str, Any]) -> Any:
    cls = request_class(api_key, version)
    assert cls is not None
    return build(cls, data)


def commit(client: RawClient, group: str, offset: int) -> ErrorCode:
    """Commit `offset` for TOPIC-0 as an admin tool does (generation -1: the group has no
    members, so no rebalance is involved)."""
    partition = {
        "partition_index": 0,
        "committed_offset": offset,
        "committed_leader_epoch": -1,
        "committed_metadata": "",
    }
    data = {
        "group_id": group,
        "generation_id_or_member_epoch": -1,
        "member_id": "",
        "group_instance_id": None,
        "topics": [{"name": TOPIC, "partitions": [partition]}],
    }
    response = client.request(
        request(OFFSET_COMMIT, COMMIT_VERSION, data),
        response_class(OFFSET_COMMIT, COMMIT_VERSION),
    )
    return ErrorCode(response.topics[0].partitions[0].error_code)


def fetch_frame(client: RawClient, group: str) -> tuple[int, bytes]:
    """(correlation id, whole frame) of an OffsetFetch of TOPIC-0."""
    data = {
        "group_id": group,
        "topics": [{"name": TOPIC, "partition_indexes": [0]}],
        "require_stable": False,
    }
    body = encode(request(OFFSET_FETCH, FETCH_VERSION, data))
    correlation_id = client.correlation_id()
    header = request_header(OFFSET_FETCH, FETCH_VERSION, correlation_id, flexible=True)
    return correlation_id, framed(header + body)


def send_fetch(client: RawClient, group: str) -> int:
    """Write an OffsetFetch without waiting for the answer; its correlation id."""
    correlation_id, frame = fetch_frame(client, group)
    client.send_raw(frame)
    return correlation_id


def read_fetch(client: RawClient, correlation_id: int) -> tuple[ErrorCode, int]:
    """(error, committed offset of TOPIC-0) from an OffsetFetch answer."""
    response = client.decode_response(correlation_id, response_class(OFFSET_FETCH, FETCH_VERSION))
    if response.error_code != ErrorCode.none:
        return ErrorCode(response.error_code), -1
    part = response.topics[0].partitions[0]
    return ErrorCode(part.error_code), part.committed_offset


def fetch(client: RawClient, group: str) -> tuple[ErrorCode, int]:
    return read_fetch(client, send_fetch(client, group))


def find_coordinator(cluster: Cluster, group: str, via: int) -> int:
    """The coordinator node `via` names for `group`; -1 while it knows none."""
    with RawClient(cluster.address(via)) as client:
        response = client.request(
            request(FIND_COORDINATOR, FIND_VERSION, {"key": group, "key_type": 0}),
            response_class(FIND_COORDINATOR, FIND_VERSION),
        )
    return response.node_id if response.error_code == ErrorCode.none else -1


def commit_acknowledged(cluster: Cluster, group: str, offset: int, nodes: list[int]) -> int:
    """Commit `offset` through whichever of `nodes` they name as coordinator, retrying while
    the coordinator moves or loads; the node that acknowledged it."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert time.monotonic() < deadline, f"no coordinator among {nodes} took commit {offset}"
        for via in nodes:
            try:
                coordinator = find_coordinator(cluster, group, via)
                if coordinator not in nodes:
                    continue
                with RawClient(cluster.address(coordinator)) as client:
                    code = commit(client, group, offset)
            except OSError:
                continue  # a node's socket timed out or was reset mid-failover
            if code is ErrorCode.none:
                return coordinator
            assert code in RETRIABLE, f"commit {offset} at node {coordinator}: {code.name}"
        time.sleep(0.05)  # polling for an election: nothing to await from outside the nodes


def group_away_from_controller(cluster: Cluster) -> str:
    """A group whose coordinator is not the metadata leader: pausing or killing it then moves
    one Raft group only, and the paused node is idle (no broker heartbeats to serve) when it
    stops, so it resumes inside its event loop's wait for I/O."""
    find_coordinator(cluster, "probe", cluster.node_ids[0])  # creates __consumer_offsets
    for index in range(OFFSETS_PARTITIONS):
        cluster.wait_for_leader(OFFSETS_TOPIC, index)
    cluster.wait_for_full_isr(OFFSETS_TOPIC, range(OFFSETS_PARTITIONS))
    views = cluster.metadata_views()
    controllers = {v.controller_id for v in views}
    assert len(controllers) == 1, controllers
    for n in range(100):
        group = f"stale-offsets-{n}"
        index = partition_for(group, OFFSETS_PARTITIONS)
        if cluster.leader_of(OFFSETS_TOPIC, index) not in controllers:
            return group
    raise AssertionError(f"the controller {controllers} leads every {OFFSETS_TOPIC} partition")


def unloaded(cluster: Cluster, node_id: int, group: str) -> bool:
    """Whether the node logged that it no longer coordinates the group's partition."""
    partition = f'"{OFFSETS_TOPIC}-{partition_for(group, OFFSETS_PARTITIONS)}"'
    return any(
        "group coordinator unloaded" in line and partition in line
        for line in cluster.log_lines(node_id)
    )


def test_resumed_coordinator_does_not_serve_offsets_committed_before_its_pause(tmp_path) -> None:
    with running_cluster(tmp_path, 3, **PAUSE_OVERRIDES) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        group = group_away_from_controller(cluster)
        old = commit_acknowledged(cluster, group, 1, cluster.node_ids)
        others = [n for n in cluster.node_ids if n != old]
        process = cluster.nodes[old].process
        assert process is not None
        answers: list[tuple[ErrorCode, int]] = []
        with RawClient(cluster.address(old)) as stale:
            assert fetch(stale, group) == (ErrorCode.none, 1)
            correlation_id, frame = fetch_frame(stale, group)
            os.kill(process.pid, signal.SIGSTOP)
            try:
                # One byte at once: the stopped node's kernel then lists this connection as
                # readable before any peer's news of the new epoch, so the node reads it first
                # when it resumes. The request is whole only once acknowledged commit 2.
                stale.send_raw(frame[:1])
                new = commit_acknowledged(cluster, group, 2, others)
                stale.send_raw(frame[1:])
                time.sleep(RESUME_AFTER_S)  # the fault itself (see PAUSE_OVERRIDES)
            finally:
                os.kill(process.pid, signal.SIGCONT)
            answers.append(read_fetch(stale, correlation_id))
            # Nothing it answers may be stale until it has stepped down.
            deadline = time.monotonic() + DEADLINE_S
            while not unloaded(cluster, old, group):
                assert time.monotonic() < deadline, f"node {old} still coordinates: {answers[-5:]}"
                answers.append(fetch(stale, group))
            answers.append(fetch(stale, group))
        stale_reads = [a for a in answers if a == (ErrorCode.none, 1)]
        assert not stale_reads, (
            f"node {old} (paused, deposed by node {new}) served the offset committed before "
            f"commit 2 was acknowledged: {[(code.name, offset) for code, offset in answers]}"
        )
        assert answers[0] == (ErrorCode.not_coordinator, -1), answers[0]
        assert answers[-1] == (ErrorCode.not_coordinator, -1), answers[-1]
        assert commit_acknowledged(cluster, group, 3, cluster.node_ids) in cluster.node_ids


def test_new_coordinator_never_serves_an_offset_older_than_acknowledged(tmp_path) -> None:
    with running_cluster(tmp_path, 3, **OVERRIDES) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        group = group_away_from_controller(cluster)
        old = commit_acknowledged(cluster, group, 1, cluster.node_ids)
        with RawClient(cluster.address(old)) as client:
            for offset in range(2, KILL_AFTER_COMMITS + 1):
                assert commit(client, group, offset) is ErrorCode.none, offset
            # At once after the acknowledgement: the followers may not know it is committed.
            cluster.kill(old)
        acknowledged = KILL_AFTER_COMMITS
        survivors = [n for n in cluster.node_ids if n != old]
        clients = {n: RawClient(cluster.address(n)) for n in survivors}
        answers: list[tuple[int, ErrorCode, int]] = []
        try:
            # Ask both survivors without pause from the kill on, so that the first answer the
            # new coordinator gives once it serves is among them.
            served = 0
            deadline = time.monotonic() + DEADLINE_S
            while served < 20:
                assert time.monotonic() < deadline, f"no coordinator took over: {answers[-5:]}"
                for node, client in clients.items():
                    code, offset = fetch(client, group)
                    answers.append((node, code, offset))
                    served += code is ErrorCode.none
        finally:
            for client in clients.values():
                client.close()
        unexpected = [a for a in answers if a[1] not in RETRIABLE and a[1] is not ErrorCode.none]
        assert not unexpected, unexpected
        stale = [a for a in answers if a[1] is ErrorCode.none and a[2] != acknowledged]
        assert not stale, (
            f"commit {acknowledged} was acknowledged before node {old} died; the new coordinator "
            f"answered (node, error, offset): {stale[:5]}"
        )
