"""Share-group offsets altered while a partition leader elsewhere holds the share partition's
state in memory (KIP-932), on 3 nodes, for a partition whose leader is neither the group's
coordinator nor the share coordinator keeping the state (so neither of those drops it):

* a Java share consumer stops (closing its share sessions), the offsets are altered, and the
  next consumer gets the records from the new offset: the leader forgot the group's states
  when its last share session there closed (Kafka's onGroupEmpty);
* a member leaves without closing its share session at the leader, the offsets are altered,
  and the next member's first fetch still gets records from the leader's old position (Kafka's
  leader does the same); their acknowledgement is FENCED_STATE_EPOCH (the write carries the
  state epoch the leader read, older than the altered state's), the leader drops its state,
  and the same fetch reads the new one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from cluster import Cluster, wait_until
from cluster_fixtures import create_topic, running_cluster
from confluent_kafka import Producer
from raw_client import RawClient
from share_support import JAVA_TOPIC as TOPIC
from share_support import (
    ShareMember,
    acquired,
    alter_offsets,
    altered,
    coordinator_of,
    describe_offsets,
    heartbeat,
    offsets_of,
    share_classpath,
    share_fetch,
    state_summary,
    topic_metadata,
)

from rafka.broker.coordinator.placement import partition_for
from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(300)

PARTITIONS = 6
STATE_TOPIC = "__share_group_state"


@dataclass(frozen=True)
class Placement:
    group: str
    partition: int
    coordinator: int  # of the group
    leader: int  # of the topic partition
    keeper: int  # the share coordinator of (group, topic, partition)


def leaders_of(client: RawClient, topic: str) -> tuple[uuid.UUID, dict[int, int]] | None:
    """(topic id, partition -> leader) once every partition has a leader."""
    found = topic_metadata(client, topic)
    leaders = {p.partition_index: p.leader_id for p in found.partitions}
    if found.error_code != ErrorCode.none or not leaders or min(leaders.values()) < 0:
        return None
    return found.topic_id, leaders


def far_partition(client: RawClient, prefix: str) -> tuple[uuid.UUID, Placement]:
    """A group and a partition of TOPIC led by neither the group's coordinator nor the share
    coordinator of that share partition."""
    wait_until(lambda: leaders_of(client, TOPIC), 30, "the partitions' leaders")
    located = leaders_of(client, TOPIC)
    assert located is not None
    topic_id, leaders = located
    # The share coordinator's topic is created on first need: a summary asks for it.
    state_summary(client, prefix, topic_id)
    wait_until(lambda: leaders_of(client, STATE_TOPIC), 30, "the share coordinators")
    state = leaders_of(client, STATE_TOPIC)
    assert state is not None
    keepers = state[1]
    for i in range(50):
        group = f"{prefix}-{i}"
        wait_until(lambda g=group: coordinator_of(client, g) > 0, 30, "the group coordinator")
        coordinator = coordinator_of(client, group)
        for partition, leader in sorted(leaders.items()):
            keeper = keepers[partition_for(f"{group}:{topic_id}:{partition}", len(keepers))]
            if leader not in (coordinator, keeper):
                return topic_id, Placement(group, partition, coordinator, leader, keeper)
    raise AssertionError(f"no partition led away from its coordinators: {leaders} {keepers}")


def produce(cluster: Cluster, partition: int, values: range) -> None:
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 5, "log_level": 2})
    for value in values:
        producer.produce(TOPIC, str(value).encode(), partition=partition)
    assert producer.flush(30) == 0


def ack_errors(response: Any) -> list[ErrorCode]:
    return [ErrorCode(p.acknowledge_error_code) for t in response.responses for p in t.partitions]


def accepted(member: ShareMember) -> set[int]:
    return {value for value, _, how in member.snapshot() if how == "A"}


def test_consumer_restarts_from_altered_offsets(tmp_path) -> None:
    classpath = share_classpath()
    with running_cluster(tmp_path, 3, **{"group.share.heartbeat.interval.ms": "500"}) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS, 1)
        with RawClient(cluster.address(1)) as any_node:
            _, at = far_partition(any_node, "java")
        group, partition = at.group, at.partition
        produce(cluster, partition, range(100))
        members: list[ShareMember] = []
        with RawClient(cluster.address(at.coordinator)) as coordinator:
            try:
                start = {(TOPIC, partition): ErrorCode.none}
                assert altered(alter_offsets(coordinator, group, TOPIC, {partition: 0})) == start
                first = ShareMember("first", cluster.bootstrap, classpath, "accept", group=group)
                members.append(first)
                wait_until(
                    lambda: accepted(first) == set(range(100)),
                    90,
                    f"every record accepted ({len(accepted(first))}; {first.output[-5:]})",
                )
                first.finish()

                def back_to_40() -> bool:  # once the group is empty (NON_EMPTY_GROUP before)
                    response = alter_offsets(coordinator, group, TOPIC, {partition: 40})
                    return response.error_code == ErrorCode.none and altered(response) == start

                wait_until(back_to_40, 30, "the offsets altered")
                described = offsets_of(describe_offsets(coordinator, group))
                assert described[(TOPIC, partition)][::2] == (40, 60), described
                second = ShareMember("second", cluster.bootstrap, classpath, "accept", group=group)
                members.append(second)
                wait_until(
                    lambda: accepted(second) == set(range(40, 100)),
                    60,
                    f"the records past 40 again ({len(accepted(second))}; {second.output[-5:]})",
                )
                assert {delivery for _, delivery, _ in second.snapshot()} == {1}
                second.finish()
            finally:
                for member in members:
                    member.kill()


def test_altered_offsets_fence_a_leader_still_holding_the_state(tmp_path) -> None:
    with running_cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS, 1)
        with RawClient(cluster.address(1)) as any_node:
            topic_id, at = far_partition(any_node, "raw")
        group, partition = at.group, at.partition
        produce(cluster, partition, range(10))
        with (
            RawClient(cluster.address(at.coordinator)) as coordinator,
            RawClient(cluster.address(at.leader)) as leader,
        ):
            start = {(TOPIC, partition): ErrorCode.none}
            assert altered(alter_offsets(coordinator, group, TOPIC, {partition: 0})) == start
            assert heartbeat(coordinator, group, "m1", 0, (TOPIC,)).error_code == ErrorCode.none
            got = share_fetch(leader, group, "m1", 0, topic_id, partition, wait_ms=5000)
            assert acquired(got) == [(0, 9, 1)]
            acked = share_fetch(leader, group, "m1", 1, topic_id, partition, acks=((0, 9),))
            assert ack_errors(acked) == [ErrorCode.none]
            # m1 leaves the group but never closes its share session at the leader, which so
            # keeps the share partition's state (start offset 10) in memory.
            assert heartbeat(coordinator, group, "m1", -1).error_code == ErrorCode.none
            assert offsets_of(describe_offsets(coordinator, group))[(TOPIC, partition)][0] == 10
            assert altered(alter_offsets(coordinator, group, TOPIC, {partition: 3})) == start
            produce(cluster, partition, range(10, 15))

            assert heartbeat(coordinator, group, "m2", 0, (TOPIC,)).error_code == ErrorCode.none
            epoch, pending = 0, ()
            fenced = False
            after_fence: dict[int, int] = {}  # offset -> delivery count
            deadline = time.monotonic() + 30
            while set(range(3, 15)) - set(after_fence) and time.monotonic() < deadline:
                response = share_fetch(
                    leader, group, "m2", epoch, topic_id, partition, acks=pending, wait_ms=1000
                )
                if ErrorCode.fenced_state_epoch in ack_errors(response):
                    fenced = True
                ranges = acquired(response)
                if fenced:
                    for first, last, delivery in ranges:
                        after_fence.update(dict.fromkeys(range(first, last + 1), delivery))
                pending = tuple((first, last) for first, last, _ in ranges)
                epoch += 1
            assert fenced, "the leader's write of its old state was not fenced"
            assert after_fence == dict.fromkeys(range(3, 15), 1), after_fence
            assert ack_errors(
                share_fetch(leader, group, "m2", epoch, topic_id, partition, acks=pending)
            ) == [ErrorCode.none]
            assert heartbeat(coordinator, group, "m2", -1).error_code == ErrorCode.none
            described = offsets_of(describe_offsets(coordinator, group))
            assert described[(TOPIC, partition)][::2] == (15, 0), described
