"""A share group's members outlive a restart of their coordinator (Kafka keeps them in
ShareGroupMemberMetadata and ShareGroupCurrentMemberAssignment records): after a clean stop or
kill -9, each member heartbeats on at its epoch, one that had not caught up with the group's
epoch is brought to it, and a member that left stays gone."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.share_group_describe.v1.request import ShareGroupDescribeRequest
from kio.schema.share_group_describe.v1.response import ShareGroupDescribeResponse
from raw_client import RawClient
from share_support import find_coordinator, heartbeat

from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(120)

TOPIC = "members"
GROUP = "kept-members"
NOT_YET = (ErrorCode.coordinator_load_in_progress, ErrorCode.not_coordinator,
           ErrorCode.coordinator_not_available)


def _partitions(response) -> list[int] | None:
    if response.assignment is None:
        return None
    return sorted(p for t in response.assignment.topic_partitions for p in t.partitions)


def _heartbeat_once_loaded(client: RawClient, member: str, epoch: int):
    deadline = time.monotonic() + 30
    while True:
        answer = heartbeat(client, GROUP, member, epoch)
        if answer.error_code not in NOT_YET:
            return answer
        assert time.monotonic() < deadline, f"coordinator not loaded: {answer.error_code}"
        time.sleep(0.1)


@pytest.mark.parametrize("stop", ["SIGTERM", "kill -9"])
def test_share_members_heartbeat_on_after_a_restart(broker_factory, stop: str) -> None:
    broker = broker_factory().start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(30)
    with RawClient(broker.bootstrap) as client:
        find_coordinator(client, GROUP)
        assert heartbeat(client, GROUP, "m-1", 0, (TOPIC,)).member_epoch == 2
        assert heartbeat(client, GROUP, "m-2", 0, (TOPIC,)).member_epoch == 3
        assert heartbeat(client, GROUP, "m-1", 2).member_epoch == 3
        assert heartbeat(client, GROUP, "m-3", 0, (TOPIC,)).member_epoch == 4
        assert heartbeat(client, GROUP, "m-3", -1).member_epoch == -1
        caught_up = heartbeat(client, GROUP, "m-1", 3)
        assert caught_up.member_epoch == 5 and _partitions(caught_up) == [0, 1]
        # m-2 has not heard of epochs 4 and 5.
    if stop == "SIGTERM":
        broker.stop()
    else:
        broker.kill()
    broker.start()

    with RawClient(broker.bootstrap) as client:
        find_coordinator(client, GROUP)
        first = _heartbeat_once_loaded(client, "m-1", 5)
        assert (first.error_code, first.member_epoch, _partitions(first)) == (
            ErrorCode.none, 5, None)  # nothing new to tell it
        second = heartbeat(client, GROUP, "m-2", 3)
        assert (second.error_code, second.member_epoch, _partitions(second)) == (
            ErrorCode.none, 5, [0, 1])
        assert heartbeat(client, GROUP, "m-3", 4).error_code == ErrorCode.unknown_member_id
        (group,) = client.request(
            ShareGroupDescribeRequest(group_ids=(GROUP,), include_authorized_operations=False),
            ShareGroupDescribeResponse,
        ).groups
        assert (group.error_code, group.group_state, group.group_epoch,
                group.assignment_epoch) == (ErrorCode.none, "Stable", 5, 5)
        assert sorted((m.member_id, m.member_epoch) for m in group.members) == [
            ("m-1", 5), ("m-2", 5)]
