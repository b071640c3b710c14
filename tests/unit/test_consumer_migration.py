"""KIP-848's online upgrade and downgrade against a real coordinator (a Broker on a temporary
directory): a classic member's partitions carry over into the consumer group, it is reconciled
through JoinGroup/SyncGroup/Heartbeat, committed offsets stay, the mixed group replays after a
restart, and the group turns classic again when its last consumer-protocol member leaves; and
group.consumer.migration.policy: no upgrade or downgrade of a non-empty group it disallows."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_consumer_coordinator import beat, count
from test_group_support import TOPIC, heartbeat, join, start_broker, sync

from rafka.broker.broker import Broker
from rafka.broker.coordinator.groups.consumer_classic import (
    encode_assignment,
    parse_assignment,
    parse_subscription,
)
from rafka.broker.coordinator.groups.consumer_records import (
    MEMBER_METADATA,
    ClassicMemberMetadata,
    ConsumerKey,
    MemberMetadataValue,
    decode_consumer_value,
    encode_consumer_value,
)
from rafka.broker.coordinator.groups.group import GroupState
from rafka.broker.coordinator.groups.offset_store import OffsetCommit
from rafka.protocol.errors import ErrorCode

NONE = ErrorCode.none
GROUP = "g"


@pytest.fixture
def broker_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def broker(broker_dir: Path) -> AsyncIterator[Broker]:
    b = await start_broker(broker_dir)
    await b.create_topic(TOPIC, 4, 1)
    yield b
    await b.stop()


def partitions(assignment: bytes) -> set[int]:
    parsed = parse_assignment(assignment)
    assert parsed is not None
    return parsed.get(TOPIC, set())


async def classic_member(broker: Broker) -> dict:
    """One classic member (JoinGroup v3: no member id round) holding all four partitions."""
    joined = await join(broker, group=GROUP, version=3)
    everything = encode_assignment({TOPIC: [0, 1, 2, 3]})
    synced = await sync(broker, joined, group=GROUP, assignments={joined["member_id"]: everything})
    assert synced["error_code"] == NONE
    return joined


def test_codecs_round_trip() -> None:
    assert parse_assignment(encode_assignment({TOPIC: [2, 0]})) == {TOPIC: {0, 2}}
    v1 = struct.pack(">hi", 1, 1) + struct.pack(">h", 1) + b"t" + struct.pack(">i", -1)
    v1 += struct.pack(">i", 1) + struct.pack(">h", 1) + b"t" + struct.pack(">iii", 2, 3, 5)
    assert parse_subscription(v1) == (["t"], {"t": {3, 5}})
    assert parse_subscription(b"\x00") is None
    value = MemberMetadataValue(
        None, None, "c", "/h", (TOPIC,), None, 3000, None,
        ClassicMemberMetadata(6000, (("range", b"\x00\x01"), ("roundrobin", b""))),
    )  # fmt: skip
    data = encode_consumer_value(value)
    assert decode_consumer_value(ConsumerKey(MEMBER_METADATA, GROUP, "m"), data) == value


async def test_upgrade_reconcile_and_downgrade(broker: Broker, broker_dir: Path) -> None:
    m = await classic_member(broker)
    commit = [OffsetCommit(TOPIC, 1, 7, -1, None)]
    assert await broker.groups.offsets.commit(GROUP, 1, m["member_id"], None, commit) == [NONE]

    # A consumer-protocol member joins: the group converts; m keeps its partitions for now.
    n = await beat(broker, "n", 0, group=GROUP)
    assert (n.error, count(n.assignment)) == (NONE, 0)
    group = broker.groups.consumer.describe(GROUP)
    classic = group.members[m["member_id"]]
    assert classic.classic is not None and classic.member_epoch == 1
    assert count(classic.assigned) == 4
    assert group.group_epoch == 2
    # m commits at its epoch as generation; a wrong generation is ILLEGAL_GENERATION for it.
    assert await broker.groups.offsets.commit(GROUP, 1, m["member_id"], None, commit) == [NONE]
    with pytest.raises(Exception) as wrong:
        await broker.groups.offsets.commit(GROUP, 2, m["member_id"], None, commit, api_version=8)
    assert getattr(wrong.value, "code", None) is ErrorCode.illegal_generation

    # m is told to rejoin, gives up two partitions, and n gets them.
    assert heartbeat(broker, m, group=GROUP) is ErrorCode.rebalance_in_progress
    rejoined = await join(broker, group=GROUP, member_id=m["member_id"], version=3)
    assert rejoined["error_code"] == NONE and rejoined["leader"] == ""
    synced = await sync(broker, rejoined, group=GROUP)
    kept = partitions(synced["assignment"])
    assert len(kept) == 2
    if rejoined["generation_id"] == 1:  # revoking first: rejoin once more once it let go
        assert heartbeat(broker, rejoined, group=GROUP) is ErrorCode.rebalance_in_progress
        rejoined = await join(broker, group=GROUP, member_id=m["member_id"], version=3)
        assert partitions((await sync(broker, rejoined, group=GROUP))["assignment"]) == kept
    assert rejoined["generation_id"] == 2
    assert heartbeat(broker, rejoined, group=GROUP) is NONE
    n = await beat(broker, "n", n.member_epoch, group=GROUP, owned={})
    assert count(n.assignment) == 2

    # The last consumer-protocol member leaves: a classic group again, which m rejoins.
    left = await beat(broker, "n", -1, group=GROUP)
    assert left.error == NONE
    shard = broker.groups.shard_for(GROUP)
    assert GROUP not in shard.consumer_groups
    again = shard.groups[GROUP]
    assert list(again.members) == [m["member_id"]]
    assert again.state is GroupState.PREPARING_REBALANCE
    assert again.generation == 3  # the group epoch (n's leave moved it past m's epoch, 2)
    assert heartbeat(broker, rejoined, group=GROUP) is ErrorCode.illegal_generation  # rejoin
    [(_, _, committed)] = await broker.groups.offsets.fetch(GROUP, [(TOPIC, 1)])
    assert committed is not None and committed.offset == 7


async def test_a_mixed_group_is_replayed(broker_dir: Path) -> None:
    broker = await start_broker(broker_dir)
    await broker.create_topic(TOPIC, 4, 1)
    m = await classic_member(broker)
    await beat(broker, "n", 0, group=GROUP)
    await broker.stop()
    again = await start_broker(broker_dir)
    try:
        group = again.groups.consumer.describe(GROUP)
        member = group.members[m["member_id"]]
        assert member.classic is not None and member.classic.protocols[0][0] == "range"
        assert (member.member_epoch, count(member.assigned)) == (1, 4)
        assert again.groups.describe_group(GROUP) is None  # no classic group left
        assert heartbeat(again, m, group=GROUP) is ErrorCode.rebalance_in_progress
    finally:
        await again.stop()


async def policy_broker(broker_dir: Path, policy: str) -> Broker:
    broker = await start_broker(broker_dir, **{"group.consumer.migration.policy": policy})
    await broker.create_topic(TOPIC, 4, 1)
    return broker


@pytest.mark.parametrize("policy", ["disabled", "downgrade", "DISABLED"])
async def test_no_upgrade_unless_the_policy_allows_it(broker_dir: Path, policy: str) -> None:
    broker = await policy_broker(broker_dir, policy)
    try:
        m = await classic_member(broker)
        # Kafka's answer: the group is not a consumer group (and stays the classic group).
        n = await beat(broker, "n", 0, group=GROUP)
        assert n.error is ErrorCode.group_id_not_found
        assert n.message == f"Group {GROUP} is not a consumer group."
        shard = broker.groups.shard_for(GROUP)
        assert GROUP not in shard.consumer_groups
        assert list(shard.groups[GROUP].members) == [m["member_id"]]
        assert shard.groups[GROUP].state is GroupState.STABLE
        assert heartbeat(broker, m, group=GROUP) is NONE
    finally:
        await broker.stop()


@pytest.mark.parametrize("policy", ["disabled", "upgrade"])
async def test_no_downgrade_unless_the_policy_allows_it(broker_dir: Path, policy: str) -> None:
    broker = await policy_broker(broker_dir, policy)
    try:
        n = await beat(broker, "n", 0, group=GROUP)
        assert n.error == NONE
        # A classic member may join a consumer group whatever the policy.
        m = await join(broker, group=GROUP, version=3)
        assert m["error_code"] == NONE
        left = await beat(broker, "n", -1, group=GROUP)
        assert left.error == NONE
        # Only a classic member is left, and the group stays a consumer group.
        group = broker.groups.consumer.describe(GROUP)
        assert [member.member_id for member in group.members.values()] == [m["member_id"]]
        assert broker.groups.describe_group(GROUP) is None  # no classic group
    finally:
        await broker.stop()


async def test_empty_groups_convert_whatever_the_policy(broker_dir: Path) -> None:
    broker = await policy_broker(broker_dir, "disabled")
    try:
        commit = [OffsetCommit(TOPIC, 1, 7, -1, None)]
        assert await broker.groups.offsets.commit(GROUP, -1, "", None, commit) == [NONE]
        n = await beat(broker, "n", 0, group=GROUP)  # an empty classic group: converts
        assert n.error == NONE
        left = await beat(broker, "n", -1, group=GROUP)
        assert left.error == NONE
        m = await join(broker, group=GROUP, version=3)  # an empty consumer group: converts
        assert m["error_code"] == NONE
        assert GROUP not in broker.groups.shard_for(GROUP).consumer_groups
        [(_, _, committed)] = await broker.groups.offsets.fetch(GROUP, [(TOPIC, 1)])
        assert committed is not None and committed.offset == 7
    finally:
        await broker.stop()
