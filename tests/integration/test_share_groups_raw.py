"""Share groups (KIP-932, issue 20's first slice) request by request against a real broker:
ApiVersions, ShareGroupHeartbeat and ShareGroupDescribe, ShareFetch and ShareAcknowledge with
share-session epochs, acknowledgement types, redelivery and acquisition-lock expiry."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from broker_process import BrokerProcess
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from kio.schema.share_group_describe.v1.request import ShareGroupDescribeRequest
from kio.schema.share_group_describe.v1.response import ShareGroupDescribeResponse
from raw_client import RawClient
from share_support import (
    ACCEPT,
    REJECT,
    RELEASE,
    acknowledge,
    acquired,
    find_coordinator,
    heartbeat,
    partition_of,
    share_fetch,
)

from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(120)

TOPIC = "queue"
GROUP = "share-raw"
LOCK_MS = 1000


def test_share_group_apis_request_by_request(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(
        **{"group.share.record.lock.duration.ms": str(LOCK_MS)}
    ).start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    with RawClient(broker.bootstrap) as client:
        versions = client.request(
            ApiVersionsRequest(client_software_name="t", client_software_version="1"),
            ApiVersionsResponse,
        )
        served = {k.api_key: (k.min_version, k.max_version) for k in versions.api_keys}
        assert [served.get(key) for key in (76, 77, 78, 79)] == [(1, 1), (1, 1), (1, 2), (1, 2)]
        finalized = {f.name: f.max_version_level for f in versions.finalized_features}
        assert finalized.get("share.version") == 1
        find_coordinator(client, GROUP)

        # Membership: join, epochs, fencing, describe.
        # A new group starts at epoch 1, as in Kafka 4.3: its first member gets epoch 2.
        first = heartbeat(client, GROUP, "m-1", 0, (TOPIC,))
        assert first.error_code == ErrorCode.none and first.member_epoch == 2
        assert first.heartbeat_interval == timedelta(milliseconds=5000)
        (assigned,) = first.assignment.topic_partitions
        topic_id = assigned.topic_id
        assert list(assigned.partitions) == [0]
        second = heartbeat(client, GROUP, "m-2", 0, (TOPIC,))
        assert second.member_epoch == 3 and second.assignment is not None
        again = heartbeat(client, GROUP, "m-1", 2)
        assert again.member_epoch == 3 and list(
            again.assignment.topic_partitions[0].partitions
        ) == [0]
        assert heartbeat(client, GROUP, "m-1", 3).assignment is None  # unchanged
        assert heartbeat(client, GROUP, "m-1", 2).error_code == ErrorCode.fenced_member_epoch
        assert heartbeat(client, GROUP, "nobody", 4).error_code == ErrorCode.unknown_member_id
        described = client.request(
            ShareGroupDescribeRequest(
                group_ids=(GROUP, "none"), include_authorized_operations=False
            ),
            ShareGroupDescribeResponse,
        )
        group, missing = described.groups
        assert (group.group_state, group.group_epoch, group.assignor_name) == (
            "Stable",
            3,
            "simple",
        )
        assert sorted(m.member_id for m in group.members) == ["m-1", "m-2"]
        assert group.members[0].assignment.topic_partitions[0].topic_name == TOPIC
        assert missing.error_code == ErrorCode.group_id_not_found

        # The first fetch opens m-1's share session and sets the start offset (latest: 0).
        assert acquired(share_fetch(client, GROUP, "m-1", 0, topic_id)) == []
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50})
        for value in range(10):
            producer.produce(TOPIC, str(value).encode(), partition=0)
        assert producer.flush(30) == 0
        fetched = share_fetch(client, GROUP, "m-1", 1, topic_id, wait_ms=5000)
        assert acquired(fetched) == [(0, 9, 1)]
        assert fetched.acquisition_lock_timeout == timedelta(milliseconds=LOCK_MS)
        assert partition_of(fetched).records
        assert (
            acquired(share_fetch(client, GROUP, "m-2", 0, topic_id, wait_ms=100)) == []
        )  # all locked

        # Acknowledgements: accept 0-4, release 5, reject 6 (ShareAcknowledge); 7-9 stay held.
        acked = acknowledge(
            client, GROUP, "m-1", 2, topic_id,
            [(0, 4, (ACCEPT,)), (5, 6, (RELEASE, REJECT))],
        )  # fmt: skip
        assert acked.error_code == ErrorCode.none
        assert partition_of(acked).error_code == ErrorCode.none
        assert acquired(share_fetch(client, GROUP, "m-2", 1, topic_id, wait_ms=1000)) == [(5, 5, 2)]

        # m-1's lock on 7-9 expires: a waiting fetch is woken and gets them, delivery count 2.
        began = time.monotonic()
        redelivered = share_fetch(client, GROUP, "m-2", 2, topic_id, acks=((5, 5),), wait_ms=10_000)
        assert acquired(redelivered) == [(7, 9, 2)]
        assert partition_of(redelivered).acknowledge_error_code == ErrorCode.none
        assert time.monotonic() - began < 5
        late = acknowledge(client, GROUP, "m-1", 3, topic_id, [(7, 7, (ACCEPT,))])
        assert partition_of(late).error_code == ErrorCode.invalid_record_state

        # Share-session epochs.
        assert share_fetch(client, GROUP, "m-1", 9, topic_id).error_code == (
            ErrorCode.invalid_share_session_epoch
        )
        assert share_fetch(client, GROUP, "m-3", 1, topic_id).error_code == (
            ErrorCode.share_session_not_found
        )
        assert acknowledge(client, GROUP, "m-1", 0, topic_id, []).error_code == (
            ErrorCode.invalid_share_session_epoch
        )
        initial_with_acks = share_fetch(client, GROUP, "m-3", 0, topic_id, acks=((7, 7),))
        assert initial_with_acks.error_code == ErrorCode.invalid_request

        # m-2 accepts and closes its session; m-1 leaves the group.
        closing = acknowledge(client, GROUP, "m-2", -1, topic_id, [(7, 9, (ACCEPT,))])
        assert partition_of(closing).error_code == ErrorCode.none
        assert acknowledge(client, GROUP, "m-2", 3, topic_id, []).error_code == (
            ErrorCode.share_session_not_found
        )
        assert heartbeat(client, GROUP, "m-1", -1).member_epoch == -1
        described = client.request(
            ShareGroupDescribeRequest(group_ids=(GROUP,), include_authorized_operations=False),
            ShareGroupDescribeResponse,
        )
        assert [m.member_id for m in described.groups[0].members] == ["m-2"]
        assert described.groups[0].group_epoch == 4
        # Everything was accepted or archived: nothing more to deliver.
        assert acquired(share_fetch(client, GROUP, "m-2", 0, topic_id, wait_ms=100)) == []

        # A record released at every delivery is archived after the 5th (the default limit).
        producer.produce(TOPIC, b"10", partition=0)
        assert producer.flush(30) == 0
        epoch = 1
        for delivery in range(1, 6):
            got = share_fetch(client, GROUP, "m-2", epoch, topic_id, wait_ms=5000)
            assert acquired(got) == [(10, 10, delivery)]
            released = acknowledge(
                client, GROUP, "m-2", epoch + 1, topic_id, [(10, 10, (RELEASE,))]
            )
            assert partition_of(released).error_code == ErrorCode.none
            epoch += 2
        assert acquired(share_fetch(client, GROUP, "m-2", epoch, topic_id, wait_ms=200)) == []
