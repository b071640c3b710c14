"""The classic group coordinator, driven in-process against a real broker and log.

Each test starts a Broker on a temporary directory (so `__consumer_offsets` is a real Raft
partition with fsyncs and a high watermark) and calls the coordinator as the request handlers
do. Restart tests start a second Broker on the same directory, which must rebuild every group
from the log alone.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from rafka.broker.broker import Broker
from rafka.broker.config import BrokerConfig
from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.coordinator.groups.group import GroupState
from rafka.broker.coordinator.groups.membership import JoinRequest
from rafka.broker.coordinator.groups.offset_store import OffsetCommit
from rafka.broker.coordinator.groups.records import GroupKey, OffsetKey, decode_key, decode_value
from rafka.broker.coordinator.groups.shard import ShardState
from rafka.broker.coordinator.internal_topic import OFFSETS_TOPIC
from rafka.broker.node import BrokerEndpoint
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import decode_batch

pytestmark = pytest.mark.timeout(60)

NONE = ErrorCode.none
TOPIC = "orders"


def subscription(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0: version, [topic], null user data."""
    out = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        out += struct.pack(">h", len(topic)) + topic.encode()
    return out + struct.pack(">i", -1)


SUB = subscription(TOPIC)


def config(path: Path, **overrides: Any) -> BrokerConfig:
    values = {
        "log.dirs": str(path),
        "group.min.session.timeout.ms": 10,
        "group.initial.rebalance.delay.ms": 0,
        **overrides,
    }
    return BrokerConfig.from_dict(values)


async def start_broker(path: Path, **overrides: Any) -> Broker:
    broker = Broker(config(path, **overrides))
    await broker.start()
    await broker.join(BrokerEndpoint(broker.node_id, "localhost", 9092))
    await broker.groups.ensure_offsets_topic()
    await broker.groups.wait_loaded()
    return broker


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


def join_request(
    group: str = "g",
    member_id: str = "",
    instance: str | None = None,
    protocols: tuple[tuple[str, bytes], ...] = (("range", SUB),),
    session: int = 30000,
    rebalance: int = 30000,
    version: int = 9,
    client_id: str = "client",
) -> JoinRequest:
    return JoinRequest(
        group_id=group,
        member_id=member_id,
        group_instance_id=instance,
        client_id=client_id,
        client_host="/127.0.0.1",
        session_timeout_ms=session,
        rebalance_timeout_ms=rebalance,
        protocol_type="consumer",
        protocols=list(protocols),
        require_known_member_id=version >= 4,
        supports_skip_assignment=version >= 9,
    )


async def join(broker: Broker, **kw: Any) -> dict[str, Any]:
    return await asyncio.wait_for(broker.groups.membership.join_group(join_request(**kw)), 10)


def join_task(broker: Broker, **kw: Any) -> asyncio.Task[dict[str, Any]]:
    return asyncio.ensure_future(broker.groups.membership.join_group(join_request(**kw)))


async def join_new(broker: Broker, **kw: Any) -> dict[str, Any]:
    """JoinGroup v4+ as clients do it: learn the member id, then join with it."""
    first = await join(broker, **kw)
    assert first["error_code"] == ErrorCode.member_id_required
    return await join(broker, member_id=first["member_id"], **kw)


async def sync(
    broker: Broker,
    result: dict[str, Any],
    group: str = "g",
    assignments: dict[str, bytes] | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    return await asyncio.wait_for(
        broker.groups.membership.sync_group(
            group,
            result["generation_id"],
            result["member_id"],
            instance,
            "consumer",
            result["protocol_name"],
            assignments or {},
        ),
        10,
    )


def heartbeat(broker: Broker, result: dict[str, Any], group: str = "g", **kw: Any) -> ErrorCode:
    return broker.groups.membership.heartbeat(
        group,
        kw.get("generation", result["generation_id"]),
        kw.get("member_id", result["member_id"]),
        kw.get("instance"),
    )


def group_of(broker: Broker, group_id: str = "g"):
    return broker.groups.shard_for(group_id).groups.get(group_id)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """For outcomes of the coordinator's own timers, which no request awaits."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def stable_group(broker: Broker, count: int, group: str = "g", **kw: Any) -> list[dict]:
    """`count` members joined and synced into one generation; the leader assigns partitions."""
    first = await join_new(broker, group=group, **kw)
    results = [first]
    for _ in range(count - 1):
        pending = join_task(broker, group=group, **kw)
        member_id = (await pending)["member_id"]
        tasks = [join_task(broker, group=group, member_id=member_id, **kw)]
        tasks += [join_task(broker, group=group, member_id=r["member_id"], **kw) for r in results]
        results = list(await asyncio.wait_for(asyncio.gather(*tasks), 10))
    leader = next(r for r in results if r["leader"] == r["member_id"])
    assignments = {r["member_id"]: f"assignment-{r['member_id']}".encode() for r in results}
    syncs = [
        asyncio.ensure_future(sync(broker, r, group, assignments if r is leader else None))
        for r in results
    ]
    for s in await asyncio.gather(*syncs):
        assert s["error_code"] == NONE
    assert group_of(broker, group).state is GroupState.STABLE
    return results


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


async def test_commit_fencing_and_rebalance_in_progress(broker: Broker) -> None:
    offsets = broker.groups.offsets
    (member,) = await stable_group(broker, 1)
    commit = [OffsetCommit(TOPIC, 0, 5, -1, "m")]
    ok = await offsets.commit("g", member["generation_id"], member["member_id"], None, commit)
    assert ok == [NONE]
    with pytest.raises(CoordinatorError) as bad_generation:
        await offsets.commit("g", 99, member["member_id"], None, commit)
    assert bad_generation.value.code == ErrorCode.illegal_generation
    with pytest.raises(CoordinatorError) as unknown:
        await offsets.commit("g", member["generation_id"], "stranger", None, commit)
    assert unknown.value.code == ErrorCode.unknown_member_id
    with pytest.raises(CoordinatorError) as not_empty:
        await offsets.commit("g", -1, "", None, commit)  # admin commit to an active group
    assert not_empty.value.code == ErrorCode.unknown_member_id

    # A new member's rejoin completes a rebalance; until the leader syncs, commits must wait.
    newcomer = (await join(broker))["member_id"]
    tasks = [
        join_task(broker, member_id=newcomer),
        join_task(broker, member_id=member["member_id"]),
    ]
    joined = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert group_of(broker).state is GroupState.COMPLETING_REBALANCE
    with pytest.raises(CoordinatorError) as completing:
        await offsets.commit("g", joined[1]["generation_id"], joined[1]["member_id"], None, commit)
    assert completing.value.code == ErrorCode.rebalance_in_progress


async def test_commit_to_missing_group_with_a_generation(broker: Broker) -> None:
    commit = [OffsetCommit(TOPIC, 0, 1, -1, None)]
    with pytest.raises(CoordinatorError) as v9:
        await broker.groups.offsets.commit("missing", 3, "m", None, commit, api_version=9)
    assert v9.value.code == ErrorCode.group_id_not_found
    with pytest.raises(CoordinatorError) as v8:
        await broker.groups.offsets.commit("missing", 3, "m", None, commit, api_version=8)
    assert v8.value.code == ErrorCode.illegal_generation


async def test_commit_checks_topics_and_metadata_size(broker: Broker) -> None:
    commits = [
        OffsetCommit(TOPIC, 0, 10, 3, "kept \u00e9 verbatim"),
        OffsetCommit("nope", 0, 1, -1, None),
        OffsetCommit(TOPIC, 9, 1, -1, None),
        OffsetCommit(TOPIC, 1, 1, -1, "x" * 5000),
    ]
    codes = await broker.groups.offsets.commit("simple", -1, "", None, commits)
    assert codes == [
        NONE,
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.offset_metadata_too_large,
    ]
    [(topic, partition, committed)] = await broker.groups.offsets.fetch("simple", None)
    assert (topic, partition, committed.offset) == (TOPIC, 0, 10)
    assert committed.metadata == "kept \u00e9 verbatim"
    assert committed.leader_epoch == 3
    asked = await broker.groups.offsets.fetch("simple", [(TOPIC, 0), (TOPIC, 2)])
    assert asked[1] == (TOPIC, 2, None)


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


# -- persistence -----------------------------------------------------------------------------------


async def test_group_and_offsets_survive_a_restart(broker_dir: Path) -> None:
    broker = await start_broker(broker_dir)
    await broker.create_topic(TOPIC, 3, 1)
    members = await stable_group(broker, 2)
    member = members[0]
    commit = [OffsetCommit(TOPIC, p, 100 + p, 1, f"meta-{p}") for p in range(3)]
    await broker.groups.offsets.commit(
        "g", member["generation_id"], member["member_id"], None, commit
    )
    before = group_of(broker)
    assignments = {m: before.members[m].assignment for m in before.members}
    await broker.stop()

    again = await start_broker(broker_dir)
    try:
        group = group_of(again)
        assert group.state is GroupState.STABLE
        assert group.generation == member["generation_id"]
        assert group.leader_id == before.leader_id
        assert {m: group.members[m].assignment for m in group.members} == assignments
        assert heartbeat(again, member) == NONE  # the member carries on
        fetched = await again.groups.offsets.fetch("g", None)
        assert [(t, p, c.offset, c.metadata) for t, p, c in fetched] == [
            (TOPIC, p, 100 + p, f"meta-{p}") for p in range(3)
        ]
    finally:
        await again.stop()


async def test_restored_members_expire_if_they_do_not_come_back(broker_dir: Path) -> None:
    broker = await start_broker(broker_dir)
    await broker.create_topic(TOPIC, 1, 1)
    await stable_group(broker, 1, session=100)
    await broker.stop()
    again = await start_broker(broker_dir)
    try:
        group = group_of(again)
        assert group.state is GroupState.STABLE
        await eventually(lambda: group.state is GroupState.EMPTY)
    finally:
        await again.stop()


async def test_records_in_the_log_are_kafkas(broker: Broker) -> None:
    (member,) = await stable_group(broker, 1)
    await broker.groups.offsets.commit(
        "g", member["generation_id"], member["member_id"], None, [OffsetCommit(TOPIC, 1, 9, 2, "")]
    )
    shard = broker.groups.shard_for("g")
    decoded = []
    for header, batch in shard.partition.log.iter_batches(0):
        if not header.is_control:
            for record in decode_batch(batch)[1]:
                key = decode_key(record.key)
                decoded.append((key, decode_value(key, record.value)))
    group_records = [v for k, v in decoded if isinstance(k, GroupKey)]
    offset_records = [v for k, v in decoded if isinstance(k, OffsetKey)]
    assert group_records[-1].generation == member["generation_id"]
    assert group_records[-1].protocol == "range"
    assert group_records[-1].members[0].assignment == b"assignment-" + member["member_id"].encode()
    assert offset_records[-1].offset == 9 and offset_records[-1].leader_epoch == 2
    assert shard.partition.log.config.compact_enabled


# -- deleting and expiring -------------------------------------------------------------------------


async def test_delete_groups(broker_dir: Path) -> None:
    broker = await start_broker(broker_dir)
    await broker.create_topic(TOPIC, 1, 1)
    await broker.groups.offsets.commit("idle", -1, "", None, [OffsetCommit(TOPIC, 0, 3, -1, "")])
    await stable_group(broker, 1, group="busy")
    results = dict(await broker.groups.delete_groups(["idle", "busy", "never"]))
    assert results == {
        "idle": NONE,
        "busy": ErrorCode.non_empty_group,
        "never": ErrorCode.group_id_not_found,
    }
    assert await broker.groups.offsets.fetch("idle", None) == []
    await broker.stop()
    again = await start_broker(broker_dir)
    try:
        assert again.groups.shard_for("idle").groups.get("idle") is None
        assert again.groups.shard_for("busy").groups.get("busy") is not None
    finally:
        await again.stop()


async def test_offset_delete_respects_subscriptions(broker: Broker) -> None:
    await broker.create_topic("other", 1, 1)
    (member,) = await stable_group(broker, 1)
    commits = [OffsetCommit(TOPIC, 0, 1, -1, ""), OffsetCommit("other", 0, 2, -1, "")]
    await broker.groups.offsets.commit(
        "g", member["generation_id"], member["member_id"], None, commits
    )
    code, codes = await broker.groups.offsets.delete("g", [(TOPIC, 0), ("other", 0)])
    assert code == NONE
    assert codes == [ErrorCode.group_subscribed_to_topic, NONE]
    assert [t for t, _, _ in await broker.groups.offsets.fetch("g", None)] == [TOPIC]
    code, _ = await broker.groups.offsets.delete("nobody", [(TOPIC, 0)])
    assert code == ErrorCode.group_id_not_found


@pytest.mark.parametrize("broker", [{"offsets.retention.minutes": 1}], indirect=True)
async def test_offsets_of_empty_groups_expire_after_retention(broker: Broker) -> None:
    clock = [1_000_000]
    broker.groups.wall_clock = lambda: clock[0]
    await broker.groups.offsets.commit("old", -1, "", None, [OffsetCommit(TOPIC, 0, 5, -1, "")])
    (member,) = await stable_group(broker, 1, group="live")
    await broker.groups.offsets.commit(
        "live",
        member["generation_id"],
        member["member_id"],
        None,
        [OffsetCommit(TOPIC, 0, 6, -1, "")],
    )
    clock[0] += 59_000
    assert broker.groups.expire_offsets() == 0
    clock[0] += 1_000
    # The simple group's offset aged out; the live group's subscribed topic never does.
    assert broker.groups.expire_offsets() == 1
    await eventually(lambda: broker.groups.shard_for("old").groups.get("old") is None)
    assert (await broker.groups.offsets.fetch("live", None))[0][2].offset == 6


# -- coordinator availability ----------------------------------------------------------------------


async def test_loading_shard_answers_load_in_progress(broker: Broker) -> None:
    shard = broker.groups.shard_for("g")
    shard.state = ShardState.LOADING
    with pytest.raises(CoordinatorError) as loading:
        await broker.groups.membership.join_group(join_request())
    assert loading.value.code == ErrorCode.coordinator_load_in_progress
    shard.state = ShardState.ACTIVE


async def test_losing_the_partition_unloads_the_shard(broker: Broker) -> None:
    pending = join_task(broker, version=3, rebalance=60000)
    await eventually(lambda: group_of(broker) is not None)
    # A second member keeps the rebalance open, then the partition goes away (fsync failure).
    second = join_task(broker, version=3, rebalance=60000)
    first = await asyncio.wait_for(pending, 5)
    assert first["error_code"] == NONE
    await eventually(lambda: group_of(broker).size() == 2)
    index = broker.groups.partition_for("g")
    broker.partition(OFFSETS_TOPIC, index).offline = ErrorCode.kafka_storage_error
    with pytest.raises(CoordinatorError) as moved:
        broker.groups.shard_for("g")
    assert moved.value.code == ErrorCode.not_coordinator
    result = await asyncio.wait_for(second, 5)
    assert result["error_code"] == ErrorCode.not_coordinator  # told to find the new one


async def test_find_coordinator(broker: Broker) -> None:
    found = await broker.groups.find_coordinator(0, "any-group")
    assert (found.error, found.node_id, found.host, found.port) == (NONE, 1, "localhost", 9092)
    txn = await broker.groups.find_coordinator(1, "txn")
    assert txn.error == ErrorCode.coordinator_not_available
    assert (await broker.groups.find_coordinator(7, "x")).error == ErrorCode.invalid_request
