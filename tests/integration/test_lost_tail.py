"""Protocol-aware recovery (issue 13, safety bug 4): a node whose storage lost records it had
fsynced must not vote as if it still had them.

Leader L and follower A hold acknowledged records that follower B (paused) lacks. L is killed and
its newest segment loses that tail; A is paused and B resumes. L restarts with a log as short as
B's: were it to vote, B would lead and A would later truncate acknowledged records. L's
durable-end marker shows it lost what it had fsynced, so it abstains until it has fetched the
range back; when A resumes, every acknowledged record is still there on every replica.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from cluster import FAST_FAILOVER, Cluster, wait_until
from cluster_fixtures import consume_all, create_topic, high_watermark, running_cluster
from confluent_kafka import KafkaException, Producer

from rafka.protocol.records import iter_batch_headers

TOPIC = "lied"
BEFORE = 20  # records every replica holds
LOST = 300  # records only L and A hold, acknowledged with acks=all


def produce(bootstrap: str, first: int, count: int) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 3}
    )
    failures: list[object] = []
    for number in range(first, first + count):
        producer.produce(
            TOPIC,
            str(number).encode(),
            partition=0,
            on_delivery=lambda err, _msg: err is not None and failures.append(err),
        )
    assert producer.flush(60) == 0 and not failures, failures


def cut_tail_from(segment_dir: Path, offset: int) -> int:
    """Truncate the newest segment at the batch holding `offset`; the bytes removed."""
    newest = max(segment_dir.glob("*.log"), key=lambda path: int(path.stem))
    data = newest.read_bytes()
    for position, header in iter_batch_headers(data):
        if header.last_offset >= offset:
            os.truncate(newest, position)
            return len(data) - position
    raise AssertionError(f"no batch at or after {offset} in {newest}")


def committed_all(cluster: Cluster) -> bool:
    try:
        return high_watermark(cluster, TOPIC, 0) >= BEFORE + LOST
    except KafkaException:  # no leader known yet
        return False


def new_leaders(cluster: Cluster, nodes: tuple[int, int], epoch: int) -> set[tuple[int, int]]:
    """(leader, epoch) pairs past `epoch` that `nodes` report for the partition."""
    found = set()
    for node_id in nodes:
        view = cluster.metadata(node_id).partitions.get((TOPIC, 0))
        if view is not None and view.leader >= 0 and view.leader_epoch > epoch:
            found.add((view.leader, view.leader_epoch))
    return found


def pause(cluster: Cluster, node_id: int, sig: signal.Signals) -> None:
    process = cluster.nodes[node_id].process
    assert process is not None
    os.kill(process.pid, sig)


@pytest.mark.timeout(180)
def test_a_node_that_lost_fsynced_records_does_not_elect_a_leader_without_them(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path, 3, **FAST_FAILOVER) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        produce(cluster.bootstrap, 0, BEFORE)
        cluster.wait_for_replicas_to_reach(TOPIC, 0, BEFORE)
        leader = cluster.wait_for_leader(TOPIC, 0)
        view = cluster.partition_view(TOPIC, 0)
        assert view is not None
        a, b = (i for i in cluster.node_ids if i != leader)
        paused = {b}
        try:
            pause(cluster, b, signal.SIGSTOP)
            produce(cluster.bootstrap, BEFORE, LOST)  # acknowledged by the leader and A
            cluster.kill(leader)
            assert cut_tail_from(cluster.partition_dir(leader, TOPIC, 0), BEFORE) > 0
            pause(cluster, a, signal.SIGSTOP)
            paused = {a}
            pause(cluster, b, signal.SIGCONT)
            cluster.nodes[leader].start()  # not restart(): it would ask paused A too
            assert any(
                "storage lost acknowledged records" in line for line in cluster.log_lines(leader)
            ), cluster.log_tail()
            # L and B alone must not make a leader of B's (or L's) short log: for several
            # election timeouts neither takes a new epoch (without the fix one does at once).
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                assert not new_leaders(cluster, (leader, b), view.leader_epoch)
                time.sleep(0.1)
            # Once A is back, the group elects a replica holding everything.
            pause(cluster, a, signal.SIGCONT)
            paused = set()
            wait_until(
                lambda: committed_all(cluster),
                60,
                "the acknowledged records to be committed again",
            )
        finally:
            for node_id in paused:
                pause(cluster, node_id, signal.SIGCONT)
        records = consume_all(cluster.bootstrap, TOPIC, 1)[0]
        assert [(offset, int(value)) for offset, value in records] == [
            (n, n) for n in range(BEFORE + LOST)
        ]
        cluster.wait_for_replicas_to_reach(TOPIC, 0, BEFORE + LOST)
        cluster.assert_replicas_identical(TOPIC, 0, BEFORE + LOST)


def flip_last_epoch(segment_dir: Path) -> int:
    """Flip a byte of the newest batch's partitionLeaderEpoch (no CRC covers it); the epoch
    it now claims."""
    newest = max(segment_dir.glob("*.log"), key=lambda path: int(path.stem))
    data = bytearray(newest.read_bytes())
    position = list(iter_batch_headers(bytes(data)))[-1][0]
    data[position + 13] ^= 0xFF
    newest.write_bytes(data)
    return int.from_bytes(data[position + 12 : position + 16], "big", signed=True)


@pytest.mark.timeout(180)
def test_a_flipped_leader_epoch_does_not_win_an_election(tmp_path: Path) -> None:
    # B lags (paused) while L and A acknowledge LOST records; B is killed and a byte of its last
    # batch's leader epoch flips, so its short log claims an epoch far above everyone's. L is
    # killed. Were B to believe that epoch, A would vote for it and truncate acknowledged records.
    with running_cluster(tmp_path, 3, **FAST_FAILOVER) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        produce(cluster.bootstrap, 0, BEFORE)
        cluster.wait_for_replicas_to_reach(TOPIC, 0, BEFORE)
        leader = cluster.wait_for_leader(TOPIC, 0)
        a, b = (i for i in cluster.node_ids if i != leader)
        pause(cluster, b, signal.SIGSTOP)
        produce(cluster.bootstrap, BEFORE, LOST)
        cluster.kill(b)
        assert flip_last_epoch(cluster.partition_dir(b, TOPIC, 0)) > 1000
        cluster.kill(leader)
        cluster.nodes[b].start()
        assert any(
            "leader epoch above the quorum state" in line for line in cluster.log_lines(b)
        ), cluster.log_tail()
        cluster.nodes[leader].start()
        wait_until(
            lambda: committed_all(cluster), 60, "the acknowledged records to be committed again"
        )
        records = consume_all(cluster.bootstrap, TOPIC, 1)[0]
        assert [(offset, int(value)) for offset, value in records] == [
            (n, n) for n in range(BEFORE + LOST)
        ]
        cluster.wait_for_replicas_to_reach(TOPIC, 0, BEFORE + LOST)
        cluster.assert_replicas_identical(TOPIC, 0, BEFORE + LOST)
