"""The group coordinator around the rebalance protocol, driven in-process against a real broker
and log: committed offsets, persistence across restarts, deleting groups and expiring offsets,
and the coordinator's availability. The rebalance protocol itself is test_group_membership.py's.

Each test starts a Broker on a temporary directory (so `__consumer_offsets` is a real Raft
partition with fsyncs and a high watermark) and calls the coordinator as the request handlers
do. Restart tests start a second Broker on the same directory, which must rebuild every group
from the log alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_group_support import (
    NONE,
    TOPIC,
    eventually,
    group_of,
    heartbeat,
    join,
    join_request,
    join_task,
    stable_group,
    start_broker,
)

from rafka.broker.broker import Broker
from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.coordinator.groups.group import GroupState
from rafka.broker.coordinator.groups.offset_store import OffsetCommit
from rafka.broker.coordinator.groups.records import GroupKey, OffsetKey, decode_key, decode_value
from rafka.broker.coordinator.groups.shard import ShardState
from rafka.broker.coordinator.internal_topic import OFFSETS_TOPIC
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import decode_batch

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


# -- committing offsets ----------------------------------------------------------------------------


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
