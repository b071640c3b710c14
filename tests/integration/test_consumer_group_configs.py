"""Consumer-group configs applied per group (KIP-848, as Kafka 4.x applies them), shown through
ConsumerGroupHeartbeat against a real broker whose group.consumer.* defaults differ:
consumer.heartbeat.interval.ms is the interval a member is given, consumer.session.timeout.ms
how long a silent member stays, both taken at the member's next heartbeat."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from kio.schema.consumer_group_describe.v1.request import ConsumerGroupDescribeRequest
from kio.schema.consumer_group_describe.v1.response import ConsumerGroupDescribeResponse
from kio.schema.consumer_group_heartbeat.v1.request import ConsumerGroupHeartbeatRequest
from kio.schema.consumer_group_heartbeat.v1.response import ConsumerGroupHeartbeatResponse
from raw_client import RawClient
from share_support import create_topic, find_coordinator, set_group_config

from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(120)

TOPIC = "subscribed"
BROKER = {
    "group.consumer.session.timeout.ms": "60000",  # a silent member stays a minute
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "100",
}


def heartbeat(client: RawClient, group: str, member: str, epoch: int) -> Any:
    joining = epoch == 0
    response = client.request(
        ConsumerGroupHeartbeatRequest(
            group_id=group,
            member_id=member,
            member_epoch=epoch,
            rebalance_timeout=timedelta(seconds=30),
            subscribed_topic_names=(TOPIC,) if joining else None,
            topic_partitions=() if joining else None,
        ),
        ConsumerGroupHeartbeatResponse,
    )
    assert response.error_code == ErrorCode.none, response
    return response


def members_of(client: RawClient, group: str) -> list[str]:
    described = client.request(
        ConsumerGroupDescribeRequest(group_ids=(group,), include_authorized_operations=False),
        ConsumerGroupDescribeResponse,
    )
    return [m.member_id for m in described.groups[0].members]


def test_heartbeat_interval_and_session_timeout_per_group(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(**BROKER).start()
    create_topic(broker.bootstrap, TOPIC)
    with RawClient(broker.bootstrap) as client:
        assert set_group_config(
            client, "short", "consumer.heartbeat.interval.ms", "700"
        ).error_code == (ErrorCode.none)
        find_coordinator(client, "plain")
        plain_id, short_id = str(uuid.uuid4()), str(uuid.uuid4())
        plain = heartbeat(client, "plain", plain_id, 0)
        assert plain.heartbeat_interval == timedelta(milliseconds=5000)  # the broker's
        short = heartbeat(client, "short", short_id, 0)
        assert short.heartbeat_interval == timedelta(milliseconds=700)

        # Set while the member is in the group: its next heartbeat takes the new timeout.
        assert set_group_config(
            client, "short", "consumer.session.timeout.ms", "3000"
        ).error_code == (ErrorCode.none)
        heartbeat(client, "short", short_id, short.member_epoch)
        silent_since = time.monotonic()
        heartbeat(client, "plain", plain_id, plain.member_epoch)

        wait_until(lambda: members_of(client, "short") == [], 30, "the silent member removed")
        elapsed = time.monotonic() - silent_since
        assert 2.5 <= elapsed < 10, elapsed
        assert members_of(client, "plain") == [plain_id]  # the broker's minute


def test_values_outside_the_brokers_bounds_are_refused(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(**BROKER).start()
    with RawClient(broker.bootstrap) as client:
        low = set_group_config(client, "g", "consumer.session.timeout.ms", "999")
        assert low.error_code == ErrorCode.invalid_config
        high = set_group_config(client, "g", "consumer.heartbeat.interval.ms", "15001")
        assert high.error_code == ErrorCode.invalid_config
        # Not applied by rafka yet: refused rather than silently ignored.
        unapplied = set_group_config(client, "g", "consumer.assignment.interval.ms", "500")
        assert unapplied.error_code == ErrorCode.invalid_config
