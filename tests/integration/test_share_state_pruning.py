"""__share_group_state is pruned (KIP-932, as Kafka's share coordinator): the records below every
share partition's latest snapshot go (share.coordinator.state.topic.prune.interval.ms), and a
share partition no longer written gets a fresh snapshot
(share.coordinator.cold.partition.snapshot.interval.ms), so that it does not hold the pruning
back. After the restart, the states replayed from what is left are the ones written."""

from __future__ import annotations

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
from raw_client import RawClient
from share_support import ADMIN_TOPIC as TOPIC
from share_support import (
    acquired,
    describe_offsets,
    find_coordinator,
    heartbeat,
    produce,
    set_group_config,
    share_fetch,
)

from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(180)

STATE = TopicPartition("__share_group_state", 0)
RECORDS = 40
OVERRIDES = {
    "share.coordinator.state.topic.num.partitions": "1",  # every state in one log
    "share.coordinator.snapshot.update.records.per.snapshot": "2",
    "share.coordinator.state.topic.prune.interval.ms": "300",
    "share.coordinator.cold.partition.snapshot.interval.ms": "300",
}


def state_log_offset(admin: AdminClient, spec: OffsetSpec) -> int:
    return admin.list_offsets({STATE: spec})[STATE].result(30).offset


def start_offset(client: RawClient, group: str) -> int | None:
    """The group's share-partition start offset of partition 0 (None: not answered yet)."""
    described = describe_offsets(client, group, {TOPIC: (0,)})
    if described.error_code != ErrorCode.none:
        return None
    (partition,) = described.topics[0].partitions
    return partition.start_offset if partition.error_code == ErrorCode.none else None


def accept_all(client: RawClient, group: str, one_by_one: bool) -> None:
    """A member takes every record and accepts them, in one acknowledgement or one each (a
    state update each), then leaves."""
    reset = set_group_config(client, group, "share.auto.offset.reset", "earliest")
    assert reset.error_code == ErrorCode.none
    find_coordinator(client, group)
    joined = heartbeat(client, group, "member", 0, (TOPIC,))
    assert joined.error_code == ErrorCode.none, joined
    topic_id = joined.assignment.topic_partitions[0].topic_id
    got = acquired(share_fetch(client, group, "member", 0, topic_id, wait_ms=5000))
    assert got == [(0, RECORDS - 1, 1)]
    spans = [(i, i) for i in range(RECORDS)] if one_by_one else [(0, RECORDS - 1)]
    for epoch, span in enumerate(spans, start=1):
        acked = share_fetch(client, group, "member", epoch, topic_id, acks=(span,))
        assert [p.acknowledge_error_code for t in acked.responses for p in t.partitions] == [0]
    assert heartbeat(client, group, "member", -1).error_code == ErrorCode.none


def test_share_state_log_is_pruned_below_the_snapshots(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(**OVERRIDES).start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    produce(broker.bootstrap, {0: RECORDS})
    with RawClient(broker.bootstrap) as client:
        accept_all(client, "cold", one_by_one=False)
        cold_written = state_log_offset(admin, OffsetSpec.latest())
        accept_all(client, "hot", one_by_one=True)
    assert state_log_offset(admin, OffsetSpec.latest()) > cold_written + RECORDS
    # Only a fresh snapshot of the cold group's state lets the log start pass its records.
    wait_until(
        lambda: state_log_offset(admin, OffsetSpec.earliest()) > cold_written,
        30,
        "__share_group_state pruned past the cold state",
    )

    broker.stop()
    broker.start()
    with RawClient(broker.bootstrap) as client:
        for group in ("cold", "hot"):
            find_coordinator(client, group)
            wait_until(lambda g=group: start_offset(client, g) is not None, 30, "state loaded")
            assert start_offset(client, group) == RECORDS
