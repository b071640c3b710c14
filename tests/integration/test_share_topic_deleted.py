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
from raw_client import RawClient
from share_support import ADMIN_TOPIC as TOPIC
from share_support import (
    create_topic,
    describe_offsets,
    find_coordinator,
    offsets_of,
    produce,
    read_and_accept,
    set_group_config,
    state_summary,
)

from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(180)

GROUP = "readers"
NO_STATE = -1


def summary(client: RawClient, topic_id: uuid.UUID) -> Any:
    """The share coordinator's summary of (GROUP, topic_id, 0)."""
    return state_summary(client, GROUP, topic_id).results[0].partitions[0]


def started(broker_factory, records: int) -> BrokerProcess:
    """A broker with TOPIC, one partition holding `records` records."""
    broker: BrokerProcess = broker_factory().start()
    create_topic(broker.bootstrap, TOPIC)
    produce(broker.bootstrap, {0: records})
    return broker


def read_from_earliest(client: RawClient) -> tuple[uuid.UUID, list[tuple[int, int, int]]]:
    """GROUP starts at the earliest offset (share.auto.offset.reset), and a member "m1" reads
    the topic (read_and_accept): (topic id, acquired)."""
    reset = set_group_config(client, GROUP, "share.auto.offset.reset", "earliest")
    assert reset.error_code == ErrorCode.none
    find_coordinator(client, GROUP)
    return read_and_accept(client, GROUP, "m1", TOPIC)


def test_deleted_topic_takes_its_share_state(broker_factory) -> None:
    broker = started(broker_factory, 5)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    with RawClient(broker.bootstrap) as client:
        old_id, got = read_from_earliest(client)
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
        new_id, got = read_and_accept(client, GROUP, "m2", TOPIC)
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
    broker = started(broker_factory, 4)
    with RawClient(broker.bootstrap) as client:
        topic_id, got = read_from_earliest(client)
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
