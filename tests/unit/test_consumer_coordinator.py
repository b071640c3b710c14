"""ConsumerGroupHeartbeat against a real coordinator (a Broker on a temporary directory): the
error codes Kafka gives, offset commits at the member epoch, and the replay after a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from msgspec.structs import replace
from test_group_support import TOPIC, join_request, start_broker

from rafka.broker.broker import Broker
from rafka.broker.coordinator.groups.consumer_group import LEAVE_EPOCH, ConsumerGroupState
from rafka.broker.coordinator.groups.consumer_heartbeat import HeartbeatRequest, HeartbeatResult
from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.coordinator.groups.offset_store import OffsetCommit
from rafka.protocol.errors import ErrorCode

NONE = ErrorCode.none


@pytest.fixture
def broker_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def broker(broker_dir: Path) -> AsyncIterator[Broker]:
    b = await start_broker(broker_dir)
    await b.create_topic(TOPIC, 4, 1)
    yield b
    await b.stop()


async def beat(
    broker: Broker,
    member: str,
    epoch: int,
    owned: dict | None = None,
    topics: tuple[str, ...] | None = (TOPIC,),
    group: str = "cg",
    instance: str | None = None,
    regex: str | None = None,
) -> HeartbeatResult:
    return await broker.groups.consumer.heartbeat(
        HeartbeatRequest(
            group_id=group,
            member_id=member,
            member_epoch=epoch,
            instance_id=instance,
            rack_id=None,
            rebalance_timeout_ms=30000 if epoch == 0 else -1,
            subscribed_topic_names=topics,
            subscribed_topic_regex=regex,
            server_assignor=None,
            owned=owned if owned is not None or epoch != 0 else {},
            client_id="c",
            client_host="/127.0.0.1",
            api_version=1,
        )
    )


def count(assignment: dict | None) -> int:
    return sum(len(ps) for ps in (assignment or {}).values())


async def test_join_heartbeat_and_errors(broker: Broker) -> None:
    # A new group starts at epoch 1, as in Kafka 4.3: its first member gets epoch 2.
    a = await beat(broker, "a", 0)
    assert (a.error, a.member_epoch, count(a.assignment)) == (NONE, 2, 4)
    assert a.heartbeat_interval_ms == 5000
    b = await beat(broker, "b", 0)
    assert (b.error, b.member_epoch, count(b.assignment)) == (NONE, 3, 0)  # a still owns them
    # a is told to give two up, at its old epoch.
    a2 = await beat(broker, "a", 2, owned=a.assignment)
    assert (a2.member_epoch, count(a2.assignment)) == (2, 2)
    a3 = await beat(broker, "a", 2, owned=a2.assignment)
    assert a3.member_epoch == 3
    b2 = await beat(broker, "b", 3, owned={})
    assert count(b2.assignment) == 2

    assert (await beat(broker, "b", 6, owned=b2.assignment)).error is ErrorCode.fenced_member_epoch
    assert (await beat(broker, "zz", 3, owned={})).error is ErrorCode.unknown_member_id
    assert (await beat(broker, "x", 4, group="nope")).error is ErrorCode.group_id_not_found

    # Offsets: committed at the member's epoch; at an older one (KIP-1251) only for partitions
    # the member has held since, so not for a partition that came later or went to b.
    [held] = a3.assignment.values()
    [elsewhere] = b2.assignment.values()
    commit = [OffsetCommit(TOPIC, p, 5, -1, None) for p in held]
    assert await broker.groups.offsets.commit("cg", 3, "a", None, commit) == [NONE, NONE]
    assert await broker.groups.offsets.commit("cg", 2, "a", None, commit) == [NONE, NONE]
    for epoch, partitions in ((4, held), (2, [*held, *elsewhere]), (1, held)):
        stale_commit = [OffsetCommit(TOPIC, p, 5, -1, None) for p in partitions]
        with pytest.raises(CoordinatorError) as stale:
            await broker.groups.offsets.commit("cg", epoch, "a", None, stale_commit)
        assert stale.value.code is ErrorCode.stale_member_epoch
    with pytest.raises(CoordinatorError) as unknown:
        await broker.groups.offsets.commit("cg", 3, "zz", None, commit)
    assert unknown.value.code is ErrorCode.unknown_member_id

    # Leaving hands the partitions back to the other member.
    assert (await beat(broker, "a", -1)).member_epoch == -1
    b3 = await beat(broker, "b", 3, owned=b2.assignment)
    assert (b3.member_epoch, count(b3.assignment)) == (4, 4)


async def test_a_classic_group_of_other_clients_is_not_a_consumer_group(broker: Broker) -> None:
    request = replace(join_request(group="classic", version=3), protocol_type="connect")
    await broker.groups.membership.join_group(request)  # v3: joins at once
    result = await beat(broker, "m", 0, group="classic")
    assert result.error is ErrorCode.group_id_not_found  # only consumers upgrade (KIP-848)


async def test_the_group_is_replayed_after_a_restart(broker_dir: Path) -> None:
    broker = await start_broker(broker_dir)
    await broker.create_topic(TOPIC, 4, 1)
    a = await beat(broker, "a", 0)
    commit = [OffsetCommit(TOPIC, 1, 7, -1, None)]
    await broker.groups.offsets.commit("cg", a.member_epoch, "a", None, commit)
    await broker.stop()
    again = await start_broker(broker_dir)
    try:
        group = again.groups.consumer.describe("cg")
        assert (group.group_epoch, group.assignment_epoch) == (2, 2)
        member = group.members["a"]
        assert (member.member_epoch, count(member.assigned)) == (2, 4)
        # The member heartbeats on at its epoch, as if nothing happened.
        result = await beat(again, "a", 2, owned=a.assignment)
        assert (result.error, result.member_epoch) == (NONE, 2)
        [(_, _, committed)] = await again.groups.offsets.fetch("cg", [(TOPIC, 1)])
        assert committed is not None and committed.offset == 7
    finally:
        await again.stop()


async def test_a_static_member_comes_back_without_a_rebalance(broker: Broker) -> None:
    a = await beat(broker, "a1", 0, instance="i")
    group = broker.groups.consumer.describe("cg")
    epoch = group.group_epoch
    left = await beat(broker, "a1", -2, instance="i")
    assert (left.error, left.member_epoch) == (NONE, -2)
    # Another process may not take the instance id while the member is still in the group...
    b = await beat(broker, "b1", 0, instance="j")
    assert count(b.assignment) == 0  # ...and its partitions stay reserved for it
    # The restarted instance rejoins under a new member id: it holds what it held, at its
    # epoch, and then gives b its share (b's join moved the target while it was away).
    back = await beat(broker, "a2", 0, instance="i")
    assert (back.error, back.member_epoch, count(back.assignment)) == (NONE, epoch, 2)
    assert group.members["a2"].pending_revocation
    assert count(a.assignment) == 4
    assert set(group.members) == {"a2", "b1"}
    assert group.group_epoch == epoch + 1  # only b's join moved it
    # A second process with the live instance id is refused.
    clash = await beat(broker, "a3", 0, instance="i")
    assert clash.error is ErrorCode.unreleased_instance_id


async def test_a_regex_subscription_follows_new_topics(broker: Broker) -> None:
    bad = await beat(broker, "r", 0, topics=None, regex="orders(")
    assert bad.error is ErrorCode.invalid_regular_expression
    first = await beat(broker, "r", 0, topics=None, regex="ord.*")
    assert count(first.assignment) == 4
    assert (await beat(broker, "r", 0, topics=None, regex="ord", group="cg2")).assignment == {}
    await broker.create_topic("ordinals", 2, 1)
    later = await beat(broker, "r", first.member_epoch, owned=first.assignment, topics=None)
    assert (later.member_epoch, count(later.assignment)) == (first.member_epoch + 1, 6)


async def test_a_departure_leaves_the_group_assigning_until_the_next_heartbeat(
    broker: Broker,
) -> None:
    """As Kafka: a member that leaves (or is fenced) bumps the group epoch, and the target
    assignment of that epoch is computed at the next heartbeat of a member that remains."""
    a = await beat(broker, "a", 0)
    b = await beat(broker, "b", 0)
    a = await beat(broker, "a", a.member_epoch, owned=a.assignment)  # told to revoke two
    a = await beat(broker, "a", a.member_epoch, owned=a.assignment)
    b = await beat(broker, "b", b.member_epoch, owned={})
    group = broker.groups.consumer.describe("cg")
    epoch = group.group_epoch
    assert group.state is ConsumerGroupState.STABLE and a.member_epoch == epoch
    assert (await beat(broker, "b", LEAVE_EPOCH)).error is NONE
    assert group.state is ConsumerGroupState.ASSIGNING
    assert (group.group_epoch, group.assignment_epoch) == (epoch + 1, epoch)
    a = await beat(broker, "a", a.member_epoch, owned=a.assignment)
    assert (a.member_epoch, count(a.assignment)) == (epoch + 1, 4)
    assert group.assignment_epoch == epoch + 1 and group.state is ConsumerGroupState.STABLE


async def test_a_rejoin_with_the_same_subscription_keeps_the_group_epoch(broker: Broker) -> None:
    """As Kafka: a member heartbeating at epoch 0 under its id starts over at the target
    assignment; only a changed subscription bumps the group epoch."""
    a = await beat(broker, "a", 0)
    group = broker.groups.consumer.describe("cg")
    epoch = group.group_epoch
    again = await beat(broker, "a", 0)
    assert (again.error, again.member_epoch, count(again.assignment)) == (NONE, epoch, 4)
    assert group.group_epoch == epoch == a.member_epoch
    other = await beat(broker, "a", 0, topics=(TOPIC, "other-topic"))
    assert other.member_epoch == epoch + 1 and group.group_epoch == epoch + 1
