"""Share groups' records in __consumer_offsets (types 10, 11, 12, 14 and 15, Kafka's layout):
what is written reads back, and a replay keeps the last state of each group and member until
their tombstones."""

from __future__ import annotations

import uuid

from rafka.broker.coordinator.groups.share_records import (
    SHARE_CURRENT_ASSIGNMENT,
    SHARE_GROUP_METADATA,
    SHARE_MEMBER_METADATA,
    SHARE_STATE_PARTITION_METADATA,
    SHARE_TARGET_METADATA,
    InitializedTopicsValue,
    PersistedShareGroup,
    PersistedShareMember,
    ShareAssignmentEpochValue,
    ShareGroupEpochValue,
    ShareGroupKey,
    ShareMemberAssignmentValue,
    ShareMemberValue,
    decode_share_key,
    decode_share_value,
    encode_share_key,
    encode_share_value,
    replay_share_record,
)

TOPIC = uuid.uuid4()


def test_keys_and_values_read_back() -> None:
    for record_type in (SHARE_GROUP_METADATA, SHARE_STATE_PARTITION_METADATA,
                        SHARE_TARGET_METADATA):
        key = ShareGroupKey(record_type, "grüppe")
        assert decode_share_key(encode_share_key(key)) == key
    for record_type in (SHARE_MEMBER_METADATA, SHARE_CURRENT_ASSIGNMENT):
        key = ShareGroupKey(record_type, "grüppe", "mémber")
        assert decode_share_key(encode_share_key(key)) == key
    member_key = ShareGroupKey(SHARE_MEMBER_METADATA, "g", "m")
    for member in (ShareMemberValue(None, "c", "/127.0.0.1", ("a", "b")),
                   ShareMemberValue("rack", "", "h", ())):
        assert decode_share_value(member_key, encode_share_value(member)) == member
    current_key = ShareGroupKey(SHARE_CURRENT_ASSIGNMENT, "g", "m")
    current = ShareMemberAssignmentValue(9, {TOPIC: frozenset({1, 3})})
    assert decode_share_value(current_key, encode_share_value(current)) == current
    target_key = ShareGroupKey(SHARE_TARGET_METADATA, "g")
    assert decode_share_value(target_key, encode_share_value(ShareAssignmentEpochValue(4))) == (
        ShareAssignmentEpochValue(4))
    epoch_key = ShareGroupKey(SHARE_GROUP_METADATA, "g")
    assert decode_share_value(epoch_key, encode_share_value(ShareGroupEpochValue(7))) == (
        ShareGroupEpochValue(7)
    )
    topics = InitializedTopicsValue(
        {TOPIC: ("t", frozenset({0, 2})), uuid.uuid4(): ("", frozenset())}
    )
    state_key = ShareGroupKey(SHARE_STATE_PARTITION_METADATA, "g")
    assert decode_share_value(state_key, encode_share_value(topics)) == topics
    assert decode_share_value(state_key, None) is None


def test_other_record_types_are_not_share_keys() -> None:
    # 0-2 classic offsets and group metadata, 3-8 the consumer protocol's, 13 Kafka's target
    # assignment per share member (not written: the simple assignor's is what members hold)
    for record_type in (0, 1, 2, 3, 8, 13, 16):
        key = record_type.to_bytes(2, "big") + b"\x00\x01g"
        assert decode_share_key(key) is None


def test_replay_keeps_the_last_state_until_the_tombstones() -> None:
    groups: dict[str, PersistedShareGroup] = {}
    epoch_key = ShareGroupKey(SHARE_GROUP_METADATA, "g")
    state_key = ShareGroupKey(SHARE_STATE_PARTITION_METADATA, "g")
    replay_share_record(groups, epoch_key, ShareGroupEpochValue(1))
    replay_share_record(groups, state_key, InitializedTopicsValue({TOPIC: ("t", frozenset({0}))}))
    replay_share_record(groups, epoch_key, ShareGroupEpochValue(2))
    assert groups == {"g": PersistedShareGroup(2, {TOPIC: ("t", frozenset({0}))})}
    replay_share_record(groups, state_key, None)
    assert groups == {"g": PersistedShareGroup(2, {})}
    replay_share_record(groups, epoch_key, None)
    assert groups == {}


def test_replay_of_members_until_their_tombstones() -> None:
    groups: dict[str, PersistedShareGroup] = {}
    meta = ShareMemberValue(None, "c", "h", ("t",))
    current = ShareMemberAssignmentValue(3, {TOPIC: frozenset({0})})
    # A member's assignment may come before its metadata: both are kept.
    replay_share_record(groups, ShareGroupKey(SHARE_CURRENT_ASSIGNMENT, "g", "m"), current)
    replay_share_record(groups, ShareGroupKey(SHARE_MEMBER_METADATA, "g", "m"), meta)
    replay_share_record(groups, ShareGroupKey(SHARE_MEMBER_METADATA, "g", "n"), meta)
    replay_share_record(groups, ShareGroupKey(SHARE_TARGET_METADATA, "g"),
                        ShareAssignmentEpochValue(3))
    group = groups["g"]
    assert group.assignment_epoch == 3
    assert group.members == {"m": PersistedShareMember(meta, current),
                             "n": PersistedShareMember(meta, None)}
    replay_share_record(groups, ShareGroupKey(SHARE_CURRENT_ASSIGNMENT, "g", "m"), None)
    assert group.members["m"] == PersistedShareMember(meta, None)
    replay_share_record(groups, ShareGroupKey(SHARE_MEMBER_METADATA, "g", "m"), None)
    assert list(group.members) == ["n"]
    replay_share_record(groups, ShareGroupKey(SHARE_TARGET_METADATA, "g"), None)
    assert group.assignment_epoch is None
