"""Share group membership (KIP-932; issue 20): epochs, the simple assignor, leave, timeouts."""

from __future__ import annotations

import uuid

import pytest

from rafka.broker.share.group import ShareGroupError, ShareGroups
from rafka.protocol.errors import ErrorCode

T1, T2 = uuid.uuid4(), uuid.uuid4()
TOPICS = {"t1": (T1, 2), "t2": (T2, 1)}


def beat(groups: ShareGroups, member: str, epoch: int, names=None, now: int = 0, topics=TOPICS):
    return groups.heartbeat(
        group_id="g",
        member_id=member,
        member_epoch=epoch,
        rack_id=None,
        subscribed_topic_names=names,
        client_id=member,
        client_host="/127.0.0.1",
        lookup=topics.get,
        now_ms=now,
    )


def test_every_member_gets_every_partition_and_the_group_epoch() -> None:
    groups = ShareGroups(session_timeout_ms=45_000, heartbeat_interval_ms=5_000, max_size=10)
    # A new group starts at epoch 1, as in Kafka 4.3: its first member gets epoch 2.
    a = beat(groups, "a", 0, ("t1",))
    assert (a.member_epoch, a.assignment) == (2, {T1: frozenset({0, 1})})
    b = beat(groups, "b", 0, ("t1", "t2"))
    assert (b.member_epoch, b.assignment) == (3, {T1: frozenset({0, 1}), T2: frozenset({0})})
    again = beat(groups, "a", 2)
    assert again.member_epoch == 3 and again.assignment == {T1: frozenset({0, 1})}
    assert beat(groups, "a", 3).assignment is None
    grown = beat(groups, "a", 3, topics={**TOPICS, "t1": (T1, 3)})  # partitions added
    assert grown.member_epoch == 4 and grown.assignment == {T1: frozenset({0, 1, 2})}


def test_errors_fencing_and_leaving() -> None:
    groups = ShareGroups(session_timeout_ms=45_000, heartbeat_interval_ms=5_000, max_size=1)
    for call, code in (
        (lambda: beat(groups, "a", 0), ErrorCode.invalid_request),  # no subscription
        (lambda: beat(groups, "", 0, ("t1",)), ErrorCode.invalid_request),
        (lambda: beat(groups, "a", 3), ErrorCode.group_id_not_found),  # as Kafka 4.3.1
    ):
        with pytest.raises(ShareGroupError) as refused:
            call()
        assert refused.value.code == code
    beat(groups, "a", 0, ("t1",))
    with pytest.raises(ShareGroupError) as refused:
        beat(groups, "a", 5)
    assert refused.value.code == ErrorCode.fenced_member_epoch
    with pytest.raises(ShareGroupError) as refused:
        beat(groups, "b", 0, ("t1",))
    assert refused.value.code == ErrorCode.group_max_size_reached
    assert beat(groups, "a", -1).member_epoch == -1
    group = groups.describe("g")
    assert group.state == "Empty" and group.group_epoch == 3


def test_session_timeout_removes_the_member() -> None:
    groups = ShareGroups(session_timeout_ms=1_000, heartbeat_interval_ms=100, max_size=10)
    beat(groups, "a", 0, ("t1",), now=0)
    beat(groups, "b", 0, ("t1",), now=500)
    assert groups.next_deadline() == 1_000
    assert groups.expire(999) == []
    assert groups.expire(1_000) == [("g", "a")]
    assert list(groups.describe("g").members) == ["b"]


def test_a_departure_is_assigned_at_the_next_heartbeat() -> None:
    """As Kafka: a member leaving bumps the group epoch, and the assignment of that epoch waits
    for a remaining member's next heartbeat, which brings that member to it."""
    groups = ShareGroups(session_timeout_ms=45_000, heartbeat_interval_ms=5_000, max_size=10)
    beat(groups, "a", 0, ("t1",))
    b = beat(groups, "b", 0, ("t1",))
    a = beat(groups, "a", b.member_epoch - 1)
    group = groups.describe("g")
    epoch = group.group_epoch
    assert a.member_epoch == epoch == group.assignment_epoch
    assert beat(groups, "b", -1).member_epoch == -1
    assert (group.group_epoch, group.assignment_epoch) == (epoch + 1, epoch)
    again = beat(groups, "a", epoch)
    assert again.member_epoch == epoch + 1 == group.assignment_epoch
    assert again.assignment == {T1: frozenset({0, 1})}
