"""Deleting a topic deletes its share-group state (KIP-932, as Kafka's coordinators do on the
topic's deletion): the share partitions' states in `__share_group_state` (tombstones, so also
after a restart) and the groups' initialized partitions of that topic. A topic created again
under the same name has another id, and a share group starts it by share.auto.offset.reset."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.read_share_group_state_summary.v1 import request as summary_req
from kio.schema.read_share_group_state_summary.v1.response import (
    ReadShareGroupStateSummaryResponse,
)
from raw_client import RawClient
from test_share_admin_raw import (
    TOPIC,
    acquired,
    describe_offsets,
    find_coordinator,
    heartbeat,
    offsets_of,
    produce,
    set_group_config,
    share_fetch,
)

from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(180)

GROUP = "readers"
NO_STATE = -1


def summary(client: RawClient, topic_id: uuid.UUID) -> Any:
    """The share coordinator's summary of (GROUP, topic_id, 0)."""
    response = client.request(
        summary_req.ReadShareGroupStateSummaryRequest(
            group_id=GROUP,
            topics=(
                summary_req.ReadStateSummaryData(
                    topic_id=topic_id,
                    partitions=(summary_req.PartitionData(partition=0, leader_epoch=-1),),
                ),
            ),
        ),
        ReadShareGroupStateSummaryResponse,
    )
    return response.results[0].partitions[0]


def read_topic(client: RawClient, member: str) -> tuple[uuid.UUID, list[tuple[int, int, int]]]:
    """A member joins, takes partition 0's records and accepts them: (topic id, acquired)."""
    joined = heartbeat(client, GROUP, member, 0, (TOPIC,))
    assert joined.error_code == ErrorCode.none, joined
    topic_id = joined.assignment.topic_partitions[0].topic_id
    got = acquired(share_fetch(client, GROUP, member, 0, topic_id, wait_ms=5000))
    acks = tuple((first, last) for first, last, _ in got)
    acked = share_fetch(client, GROUP, member, 1, topic_id, acks=acks)
    assert [p.acknowledge_error_code for t in acked.responses for p in t.partitions] == [0]
    assert heartbeat(client, GROUP, member, -1).error_code == ErrorCode.none
    return topic_id, got


def test_deleted_topic_takes_its_share_state(broker_factory) -> None:
    broker: BrokerProcess = broker_factory().start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    produce(broker.bootstrap, {0: 5})
    with RawClient(broker.bootstrap) as client:
        reset = set_group_config(client, GROUP, "share.auto.offset.reset", "earliest")
        assert reset.error_code == ErrorCode.none
        find_coordinator(client, GROUP)
        old_id, got = read_topic(client, "m1")
        assert got == [(0, 4, 1)]
        assert offsets_of(describe_offsets(client, GROUP))[(TOPIC, 0)][::2] == (5, 0)
        assert summary(client, old_id).start_offset == 5

        admin.delete_topics([TOPIC])[TOPIC].result(30)
        wait_until(lambda: TOPIC not in admin.list_topics(timeout=10).topics, 30, "deleted")
        wait_until(
            lambda: summary(client, old_id).start_offset == NO_STATE, 30, "the state deleted"
        )
        assert offsets_of(describe_offsets(client, GROUP)) == {}

        # The same name again: a new topic, started by share.auto.offset.reset (earliest).
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
        produce(broker.bootstrap, {0: 3})
        new_id, got = read_topic(client, "m2")
        assert new_id != old_id
        assert got == [(0, 2, 1)]
        (topic,) = describe_offsets(client, GROUP).topics
        assert (topic.topic_name, topic.topic_id) == (TOPIC, new_id)
        assert offsets_of(describe_offsets(client, GROUP))[(TOPIC, 0)][::2] == (3, 0)

    # The old topic's state stays deleted after a restart (replayed from its tombstone).
    broker.stop()
    broker.start()
    with RawClient(broker.bootstrap) as client:

        def old_state() -> Any:
            found = summary(client, old_id)
            return found if found.error_code == ErrorCode.none else None

        wait_until(old_state, 30, "the share coordinator loaded")
        assert old_state().start_offset == NO_STATE
        assert summary(client, new_id).start_offset == 3


def test_topic_deleted_first_thing_after_a_restart(broker_factory) -> None:
    """A restarted broker builds its share coordinator at the first share request; a topic
    deleted before any such request still has its share state removed here."""
    broker: BrokerProcess = broker_factory().start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    produce(broker.bootstrap, {0: 4})
    with RawClient(broker.bootstrap) as client:
        reset = set_group_config(client, GROUP, "share.auto.offset.reset", "earliest")
        assert reset.error_code == ErrorCode.none
        find_coordinator(client, GROUP)
        topic_id, got = read_topic(client, "m1")
        assert got == [(0, 3, 1)]
        assert summary(client, topic_id).start_offset == 4

    broker.stop()
    broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics([TOPIC])[TOPIC].result(30)
    wait_until(lambda: TOPIC not in admin.list_topics(timeout=10).topics, 30, "deleted")
    with RawClient(broker.bootstrap) as client:

        def state() -> Any:
            found = summary(client, topic_id)
            return found if found.error_code == ErrorCode.none else None

        wait_until(state, 30, "the share coordinator loaded")
        wait_until(lambda: summary(client, topic_id).start_offset == NO_STATE, 30, "deleted")
