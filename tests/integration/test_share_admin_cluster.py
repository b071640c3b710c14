"""Share-group administration across a 3-node cluster: the group coordinator reaches share
partitions led by other brokers and share-partition states kept by other brokers' share
coordinators (ReadShareGroupStateSummary, InitializeShareGroupState and DeleteShareGroupState
between brokers, ListOffsets to the leaders for the lag), and partition leaders fetch from the
offsets it altered."""

from __future__ import annotations

import pytest
from cluster import wait_until
from cluster_fixtures import create_topic, running_cluster
from confluent_kafka import Producer
from raw_client import RawClient
from share_support import (
    acquired,
    alter_offsets,
    altered,
    coordinator_of,
    delete_groups,
    delete_offsets,
    describe_offsets,
    heartbeat,
    offsets_of,
    share_fetch,
    topic_metadata,
)

from rafka.broker.coordinator.placement import partition_for
from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(240)

TOPIC = "spread"
PARTITIONS = 6
RECORDS = 10
GROUP = "far"
SHARE_STATE_TOPIC = "__share_group_state"


def metadata(client: RawClient, topic: str) -> tuple[str, dict[int, int]]:
    """(topic id, partition -> leader)."""
    found = topic_metadata(client, topic)
    assert found.error_code == ErrorCode.none, found
    return found.topic_id, {p.partition_index: p.leader_id for p in found.partitions}


def test_share_admin_across_brokers(tmp_path) -> None:
    with running_cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS, 1)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "log_level": 2})
        for partition in range(PARTITIONS):
            for value in range(RECORDS):
                producer.produce(TOPIC, str(value).encode(), partition=partition)
        assert producer.flush(30) == 0
        with RawClient(cluster.address(1)) as any_node:
            wait_until(lambda: coordinator_of(any_node, GROUP) > 0, 30, "the group coordinator")
            coordinator = coordinator_of(any_node, GROUP)
            topic_id, leaders = metadata(any_node, TOPIC)
        with RawClient(cluster.address(coordinator)) as client:
            # Offsets altered before any member: the group is created, empty.
            starts = {p: 4 for p in range(PARTITIONS)}
            result = altered(alter_offsets(client, GROUP, TOPIC, starts))
            assert set(result.values()) == {ErrorCode.none}, result
            assert offsets_of(describe_offsets(client, GROUP)) == {
                (TOPIC, p): (4, 0, RECORDS - 4) for p in range(PARTITIONS)
            }
            # The share coordinators of some of these states are other brokers.
            with RawClient(cluster.address(coordinator)) as probe:
                _, state_leaders = metadata(probe, SHARE_STATE_TOPIC)
            keepers = {
                state_leaders[partition_for(f"{GROUP}:{topic_id}:{p}", len(state_leaders))]
                for p in range(PARTITIONS)
            }
            assert keepers - {coordinator}, (coordinator, keepers)
            assert set(leaders.values()) - {coordinator}, (coordinator, leaders)

            # A member takes every partition's records past 4 from its leader, and accepts them.
            joined = heartbeat(client, GROUP, "m", 0, (TOPIC,))
            assert joined.error_code == ErrorCode.none
            for partition, leader in sorted(leaders.items()):
                with RawClient(cluster.address(leader)) as at_leader:
                    got = share_fetch(at_leader, GROUP, "m", 0, topic_id, partition, wait_ms=5000)
                    assert acquired(got) == [(4, RECORDS - 1, 1)], (partition, leader)
                    acked = share_fetch(
                        at_leader, GROUP, "m", 1, topic_id, partition, acks=((4, RECORDS - 1),)
                    )
                    assert acquired(acked) == []
            assert heartbeat(client, GROUP, "m", -1).error_code == ErrorCode.none
            described = offsets_of(describe_offsets(client, GROUP))
            assert {tp: (start, lag) for tp, (start, _, lag) in described.items()} == {
                (TOPIC, p): (RECORDS, 0) for p in range(PARTITIONS)
            }

            # Deleting the topic's offsets removes every state, wherever it is kept.
            deleted = delete_offsets(client, GROUP, TOPIC)
            assert [t.error_code for t in deleted.responses] == [ErrorCode.none]
            assert offsets_of(describe_offsets(client, GROUP)) == {}
            everything = {TOPIC: tuple(range(PARTITIONS))}
            assert set(offsets_of(describe_offsets(client, GROUP, everything)).values()) == {
                (-1, 0, -1)
            }
            assert delete_groups(client, GROUP) == {GROUP: ErrorCode.none}
