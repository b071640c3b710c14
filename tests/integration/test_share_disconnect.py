"""A share session ends with the connection that opened it (KIP-932; Kafka's ShareSessionCache
does this on a disconnect): the member's acquired records go back at once, not when their
acquisition locks expire (group.share.record.lock.duration.ms, 30 s), and the next member gets
them with the delivery count raised."""

from __future__ import annotations

import pytest
from broker_process import BrokerProcess
from confluent_kafka.admin import AdminClient, NewTopic
from raw_client import RawClient
from share_support import ADMIN_TOPIC as TOPIC
from share_support import (
    acquired,
    find_coordinator,
    heartbeat,
    produce,
    set_group_config,
    share_fetch,
)

from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(120)

GROUP = "queue"
WAIT_MS = 10_000  # a third of the lock duration: only a release can deliver within it


def test_a_closed_connection_releases_its_sessions_records(broker_factory) -> None:
    broker: BrokerProcess = broker_factory().start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    produce(broker.bootstrap, {0: 5})
    with RawClient(broker.bootstrap) as client:
        reset = set_group_config(client, GROUP, "share.auto.offset.reset", "earliest")
        assert reset.error_code == ErrorCode.none
        find_coordinator(client, GROUP)

    first = RawClient(broker.bootstrap)
    joined = heartbeat(first, GROUP, "m1", 0, (TOPIC,))
    assert joined.error_code == ErrorCode.none, joined
    topic_id = joined.assignment.topic_partitions[0].topic_id
    assert acquired(share_fetch(first, GROUP, "m1", 0, topic_id, wait_ms=WAIT_MS)) == [(0, 4, 1)]
    # m1 stays a member (its heartbeats are not due yet); only its connection goes.
    first.close()

    with RawClient(broker.bootstrap) as second:
        assert heartbeat(second, GROUP, "m2", 0, (TOPIC,)).error_code == ErrorCode.none
        got = acquired(share_fetch(second, GROUP, "m2", 0, topic_id, wait_ms=WAIT_MS))
        assert got == [(0, 4, 2)]
