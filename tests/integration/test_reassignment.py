"""Partition reassignment end to end (issue 18): real brokers, a real producer writing
acks=all throughout, kafka-python's admin client driving AlterPartitionReassignments. New
replicas join the partition's Raft group as observers, become voters one at a time, the old ones
leave, and every acknowledged record is where it was acknowledged on the new replicas alone."""

from __future__ import annotations

import json

import pytest
from cluster import FAST_FAILOVER, Cluster, wait_until
from cluster_fixtures import (
    SequencedProducer,
    assert_acked_exactly_once_in_order,
    consume_all,
    running_cluster,
)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOPIC = "moving"


def _create(cluster: Cluster, assignment: list[list[int]]) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topic = NewTopic(TOPIC, len(assignment), replica_assignment=assignment)
    for future in admin.create_topics([topic], operation_timeout=30).values():
        future.result(timeout=30)
    for partition in range(len(assignment)):
        cluster.wait_for_leader(TOPIC, partition)


def _reassigned(cluster: Cluster, target: list[int]) -> bool:
    views = cluster.partition_views(TOPIC, 0)
    return bool(views) and all(list(view.replicas) == target for view in views.values())


def _move(cluster: Cluster, target: list[int], producer: SequencedProducer) -> None:
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30_000)
    try:
        admin.alter_partition_reassignments({TopicPartition(TOPIC, 0): target})
        # Writes go on while it moves; then the metadata shows the target alone and no
        # reassignment in progress.
        wait_until(
            lambda: not admin.list_partition_reassignments(),
            90,
            f"the reassignment to {target} to complete",
        )
    finally:
        admin.close()
    wait_until(lambda: _reassigned(cluster, target), 30, f"replicas {target} everywhere")
    producer.wait_for_acks(200, 30, f"after the move to {target}")


def test_replicas_move_under_acks_all_load_and_the_old_ones_can_go(tmp_path):
    with running_cluster(tmp_path, 3, **FAST_FAILOVER) as cluster:
        _create(cluster, [[1]])
        producer = SequencedProducer(
            cluster.bootstrap, TOPIC, 1, {"acks": "all", "enable.idempotence": True}
        ).start()
        try:
            producer.wait_for_acks(500, 30, "before moving")
            _move(cluster, [2, 3], producer)
            _move(cluster, [3, 1, 2], producer)
            _move(cluster, [2, 3], producer)
            producer.wait_for_acks(200, 30, "at the end")
        finally:
            producer.finish()
        assert not producer.failed, f"failed deliveries: {producer.failed[:5]}"
        # Node 1 left the partition: with it stopped, everything acknowledged is there.
        cluster.stop(1)
        records = consume_all(cluster.bootstrap, TOPIC, 1)
        assert_acked_exactly_once_in_order(producer.acked, records, producer.sent)
        end = max(offset for offset, _ in records[0]) + 1
        cluster.assert_replicas_identical(TOPIC, 0, end, replicas=[2, 3])
        steps = _voter_changes(cluster)
        # One voter at a time, e.g. [1] -> [1,2] -> [1,2,3] -> [2,3] -> [1,2,3] -> [2,3].
        voters = [{1}] + [set(v) for _, v in steps]
        assert all(len(a ^ b) == 1 for a, b in zip(voters, voters[1:], strict=False)), steps
        assert len(voters) == 6 and voters[3] == voters[5] == {2, 3}, steps
        print(f"{producer.ack_count()} acks, longest gap {producer.longest_ack_gap():.2f} s")


def _voter_changes(cluster: Cluster) -> list[tuple[str, list[int]]]:
    return sorted(
        (entry["timestamp"], entry["voters"])
        for node in cluster.node_ids
        for entry in (json.loads(line) for line in cluster.log_lines(node) if line[:1] == "{")
        if entry.get("event") == "partition voters changed"
        and entry.get("partition") == f"{TOPIC}-0"
    )


def test_a_reassignment_survives_its_leader_killed_midway(tmp_path):
    with running_cluster(tmp_path, 3, **FAST_FAILOVER) as cluster:
        _create(cluster, [[1, 2]])
        producer = SequencedProducer(
            cluster.bootstrap, TOPIC, 1, {"acks": "all", "enable.idempotence": True}
        ).start()
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30_000)
        try:
            producer.wait_for_acks(500, 30, "before moving")
            admin.alter_partition_reassignments({TopicPartition(TOPIC, 0): [2, 3]})
            # Kill whoever leads once node 3 has joined the voters, before node 1 has left.
            wait_until(lambda: len(_voter_changes(cluster)) >= 1, 60, "node 3 to join")
            leader = cluster.wait_for_leader(TOPIC, 0)
            cluster.kill(leader)
            cluster.start_nodes([leader])
            wait_until(
                lambda: not admin.list_partition_reassignments(), 90, "the move to complete"
            )
            wait_until(lambda: _reassigned(cluster, [2, 3]), 30, "replicas [2, 3] everywhere")
            producer.wait_for_acks(200, 30, "after the move")
        finally:
            admin.close()
            producer.finish()
        errors = [e for _, _, e in producer.failed if not e.retriable()]
        assert not errors, f"non-retriable failures: {errors[:5]}"
        cluster.stop(1)
        records = consume_all(cluster.bootstrap, TOPIC, 1)
        assert_acked_exactly_once_in_order(producer.acked, records)
        assert [set(v) for _, v in _voter_changes(cluster)][-1] == {2, 3}
