"""The classic rebalance protocol, driven in-process against a real broker and log: JoinGroup,
SyncGroup, Heartbeat and LeaveGroup, static members, and the session and rebalance timeouts.

Each test starts a Broker on a temporary directory (so `__consumer_offsets` is a real Raft
partition with fsyncs and a high watermark) and calls the coordinator as the request handlers
do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_group_support import (
    NONE,
    SUB,
    TOPIC,
    eventually,
    group_of,
    heartbeat,
    join,
    join_new,
    join_request,
    join_task,
    stable_group,
    start_broker,
    sync,
)

from rafka.broker.broker import Broker
from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.coordinator.groups.group import GroupState
from rafka.broker.coordinator.groups.offset_store import OffsetCommit
from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def broker_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def broker(broker_dir: Path, request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    overrides = getattr(request, "param", {})
    b = await start_broker(broker_dir, **overrides)
    if b.topic(TOPIC) is None:
        await b.create_topic(TOPIC, 3, 1)
    yield b
    await b.stop()


# -- joining ---------------------------------------------------------------------------------------


async def test_first_member_needs_a_member_id_then_leads_generation_1(broker: Broker) -> None:
    first = await join(broker)
    assert first["error_code"] == ErrorCode.member_id_required
    assert first["member_id"].startswith("client-")
    joined = await join(broker, member_id=first["member_id"])
    assert joined["error_code"] == NONE
    assert joined["generation_id"] == 1
    assert joined["leader"] == joined["member_id"] == first["member_id"]
    assert joined["protocol_name"] == "range"
    assert joined["members"] == [
        {"member_id": first["member_id"], "group_instance_id": None, "metadata": SUB}
    ]
    assert group_of(broker).state is GroupState.COMPLETING_REBALANCE

    synced = await sync(broker, joined, assignments={joined["member_id"]: b"mine"})
    assert synced["error_code"] == NONE
    assert synced["assignment"] == b"mine"
    assert group_of(broker).state is GroupState.STABLE
    assert heartbeat(broker, joined) == NONE


async def test_old_join_versions_get_a_member_id_at_once(broker: Broker) -> None:
    joined = await join(broker, version=3)
    assert joined["error_code"] == NONE
    assert joined["generation_id"] == 1


async def test_second_member_triggers_a_rebalance_with_one_new_generation(broker: Broker) -> None:
    (first,) = await stable_group(broker, 1)
    second_id = (await join(broker))["member_id"]
    second = join_task(broker, member_id=second_id)
    await eventually(lambda: group_of(broker).state is GroupState.PREPARING_REBALANCE)
    assert heartbeat(broker, first) == ErrorCode.rebalance_in_progress
    rejoined = await join(broker, member_id=first["member_id"])
    other = await asyncio.wait_for(second, 5)
    assert rejoined["generation_id"] == other["generation_id"] == 2
    leader, follower = (rejoined, other) if rejoined["members"] else (other, rejoined)
    assert leader["leader"] == follower["leader"] == leader["member_id"]
    assert {m["member_id"] for m in leader["members"]} == {first["member_id"], second_id}
    assert follower["members"] == []


async def test_protocol_is_chosen_by_vote_among_common_protocols(broker: Broker) -> None:
    both = (("range", SUB), ("roundrobin", SUB))
    reversed_both = (("roundrobin", SUB), ("range", SUB))
    first = await join_new(broker, protocols=both)
    others = [(await join(broker, protocols=reversed_both))["member_id"] for _ in range(2)]
    # The newcomers' joins start the rebalance; the first member's rejoin completes it.
    tasks = [join_task(broker, member_id=i, protocols=reversed_both) for i in others]
    tasks.append(join_task(broker, member_id=first["member_id"], protocols=both))
    answers = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert {a["protocol_name"] for a in answers} == {"roundrobin"}  # two votes against one

    lonely = await join(broker, protocols=(("sticky", SUB),), version=3)
    assert lonely["error_code"] == ErrorCode.inconsistent_group_protocol


async def test_invalid_session_timeout_and_group_id(broker: Broker) -> None:
    assert (await join(broker, session=5))["error_code"] == ErrorCode.invalid_session_timeout
    assert (await join(broker, group=""))["error_code"] == ErrorCode.invalid_group_id


async def test_a_refused_first_join_leaves_the_new_group_empty(broker: Broker) -> None:
    """As Kafka: a new member's join creates the group before its protocols are checked, so a
    refused one leaves an Empty group (until the offsets.retention sweep removes it); checks
    made before the coordinator is asked (session timeout) create nothing."""
    assert (await join(broker, group="strict", session=5))["error_code"] == (
        ErrorCode.invalid_session_timeout
    )
    assert broker.groups.shard_for("strict").groups.get("strict") is None
    refused = await join(broker, group="strict", protocols=())
    assert refused["error_code"] == ErrorCode.inconsistent_group_protocol
    group = broker.groups.shard_for("strict").groups["strict"]
    assert group.state is GroupState.EMPTY and not group.members
    broker.groups.expire_offsets()  # its removal is written, then dropped from memory
    await eventually(lambda: broker.groups.shard_for("strict").groups.get("strict") is None)


async def test_unknown_member_of_unknown_group(broker: Broker) -> None:
    result = await join(broker, group="nobody", member_id="ghost")
    assert result["error_code"] == ErrorCode.unknown_member_id
    assert broker.groups.shard_for("nobody").groups.get("nobody") is None


# -- fencing ---------------------------------------------------------------------------------------


async def test_heartbeat_and_sync_fencing(broker: Broker) -> None:
    (member,) = await stable_group(broker, 1)
    assert heartbeat(broker, member, generation=0) == ErrorCode.illegal_generation
    assert heartbeat(broker, member, member_id="stranger") == ErrorCode.unknown_member_id
    assert heartbeat(broker, member, group="nobody") == ErrorCode.unknown_member_id
    stale = await sync(broker, {**member, "generation_id": 7})
    assert stale["error_code"] == ErrorCode.illegal_generation


@pytest.mark.parametrize("broker", [{"group.max.size": 1}], indirect=True)
async def test_group_max_size(broker: Broker) -> None:
    (member,) = await stable_group(broker, 1)
    refused = await join(broker)
    assert refused["error_code"] == ErrorCode.group_max_size_reached
    assert heartbeat(broker, member) == NONE  # the group did not rebalance


# -- static membership -----------------------------------------------------------------------------


async def test_static_member_rejoins_stable_group_without_rebalance(broker: Broker) -> None:
    members = await stable_group(broker, 2, instance=None)
    static = await join_new_static(broker, "instance-a", members)
    generation = static["generation_id"]
    group = group_of(broker)
    assert group.state is GroupState.STABLE

    # The instance restarts: a JoinGroup without member id, same instance id and metadata.
    again = await join(broker, instance="instance-a")
    assert again["error_code"] == NONE
    assert again["generation_id"] == generation
    assert again["member_id"] != static["member_id"]
    assert group.state is GroupState.STABLE
    synced = await sync(broker, again, instance="instance-a")
    assert synced["assignment"] == group.members[again["member_id"]].assignment != b""
    # The replaced member id is fenced; other members carry on in the same generation.
    fenced = heartbeat(broker, static, instance="instance-a")
    assert fenced == ErrorCode.fenced_instance_id
    for m in members:
        assert heartbeat(broker, m) == NONE
    # A request naming an instance id no member holds is from an unknown member, as Kafka's
    # validateMember has it, even from a member of the group.
    assert heartbeat(broker, members[0], instance="instance-z") == ErrorCode.unknown_member_id


async def join_new_static(broker: Broker, instance: str, others: list[dict]) -> dict:
    """Add a static member to a stable group and bring everyone to the next generation."""
    pending = join_task(broker, instance=instance)
    await eventually(lambda: group_of(broker).state is GroupState.PREPARING_REBALANCE)
    rejoins = [join_task(broker, member_id=m["member_id"]) for m in others]
    results = await asyncio.wait_for(asyncio.gather(pending, *rejoins), 5)
    leader = next(r for r in results if r["members"])
    assignments = {r["member_id"]: b"part-" + r["member_id"].encode() for r in results}
    syncs = [
        sync(
            broker,
            r,
            assignments=assignments if r is leader else None,
            instance=instance if r is results[0] else None,
        )
        for r in results
    ]
    await asyncio.gather(*syncs)
    for m, r in zip(others, results[1:], strict=True):
        m.update(r)
    return results[0]


async def test_static_leader_rejoin_and_skip_assignment(broker: Broker) -> None:
    leader = await join(broker, instance="lead")
    await sync(broker, leader, assignments={leader["member_id"]: b"a"}, instance="lead")
    modern = await join(broker, instance="lead", version=9)
    assert modern["skip_assignment"] is True
    assert modern["leader"] == modern["member_id"]
    assert [m["member_id"] for m in modern["members"]] == [modern["member_id"]]
    legacy = await join(broker, instance="lead", version=8)
    assert legacy["skip_assignment"] is False
    assert legacy["leader"] == modern["member_id"]  # the previous leader id: do not assign
    assert legacy["members"] == []
    assert legacy["generation_id"] == modern["generation_id"] == leader["generation_id"]


async def test_static_member_with_changed_protocol_rebalances(broker: Broker) -> None:
    first = await join(broker, instance="a")
    await sync(broker, first, assignments={first["member_id"]: b"x"}, instance="a")
    # It now prefers roundrobin (still supporting range): the vote changes, so it rebalances.
    changed = await join(broker, instance="a", protocols=(("roundrobin", SUB), ("range", SUB)))
    assert changed["generation_id"] == first["generation_id"] + 1
    assert changed["protocol_name"] == "roundrobin"


async def test_leave_group_batched_and_by_instance_id(broker: Broker) -> None:
    static = await join(broker, instance="s1")
    await sync(broker, static, assignments={static["member_id"]: b"x"}, instance="s1")
    code, per_member = broker.groups.membership.leave_group(
        "g", [("ghost", None), ("", "s1"), ("", "unknown-instance")]
    )
    assert code == NONE
    assert per_member == [ErrorCode.unknown_member_id, NONE, ErrorCode.unknown_member_id]
    group = group_of(broker)
    assert group.state is GroupState.EMPTY
    assert group.generation == static["generation_id"] + 1
    code, _ = broker.groups.membership.leave_group("nobody", [("x", None)])
    assert code == ErrorCode.unknown_member_id


async def test_fenced_static_member_cannot_leave_or_commit(broker: Broker) -> None:
    old = await join(broker, instance="s")
    await sync(broker, old, assignments={old["member_id"]: b"x"}, instance="s")
    await join(broker, instance="s")
    _, codes = broker.groups.membership.leave_group("g", [(old["member_id"], "s")])
    assert codes == [ErrorCode.fenced_instance_id]
    with pytest.raises(CoordinatorError) as fenced:
        await broker.groups.offsets.commit(
            "g", old["generation_id"], old["member_id"], "s", [OffsetCommit(TOPIC, 0, 1, -1, "")]
        )
    assert fenced.value.code == ErrorCode.fenced_instance_id


# -- timeouts --------------------------------------------------------------------------------------


async def test_session_timeout_removes_a_silent_member(broker: Broker) -> None:
    (member,) = await stable_group(broker, 1, session=60)
    group = group_of(broker)
    await eventually(lambda: group.state is GroupState.EMPTY)
    assert not group.members
    assert group.generation == member["generation_id"] + 1
    assert heartbeat(broker, member) == ErrorCode.unknown_member_id


async def test_heartbeats_keep_a_member_alive(broker: Broker) -> None:
    (member,) = await stable_group(broker, 1, session=80)
    for _ in range(8):
        await asyncio.sleep(0.03)  # a client heartbeating every 30 ms
        assert heartbeat(broker, member) == NONE
    assert group_of(broker).state is GroupState.STABLE


async def test_member_that_does_not_rejoin_is_dropped_after_rebalance_timeout(
    broker: Broker,
) -> None:
    quiet, active = await stable_group(broker, 2, rebalance=100, session=30000)
    rejoined = await asyncio.wait_for(
        broker.groups.membership.join_group(
            join_request(member_id=active["member_id"], rebalance=100)
        ),
        5,
    )
    assert rejoined["generation_id"] == active["generation_id"] + 1
    assert [m["member_id"] for m in rejoined["members"]] == [active["member_id"]]
    assert quiet["member_id"] not in group_of(broker).members


async def test_member_that_never_syncs_is_dropped(broker: Broker) -> None:
    first = await join_new(broker, rebalance=100)
    assert group_of(broker).state is GroupState.COMPLETING_REBALANCE
    await eventually(lambda: group_of(broker).state is GroupState.EMPTY)
    assert first["member_id"] not in group_of(broker).members


async def test_pending_member_that_never_joins_expires(broker: Broker) -> None:
    pending = await join(broker, session=50)
    assert pending["error_code"] == ErrorCode.member_id_required
    await eventually(lambda: broker.groups.shard_for("g").groups.get("g") is None)


@pytest.mark.parametrize("broker", [{"group.initial.rebalance.delay.ms": 100}], indirect=True)
async def test_initial_rebalance_delay_gathers_members_into_one_generation(broker: Broker) -> None:
    first = join_task(broker, version=3)
    await eventually(lambda: group_of(broker) is not None)
    second = join_task(broker, version=3)
    answers = await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert [a["generation_id"] for a in answers] == [1, 1]
