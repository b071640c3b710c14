"""Share groups' records in __consumer_offsets (types 11 and 15, Kafka's layout): what is
written reads back, and a replay keeps the last state of each group until its tombstones."""

from __future__ import annotations

import uuid

from rafka.broker.coordinator.groups.share_records import (
    SHARE_GROUP_METADATA,
    SHARE_STATE_PARTITION_METADATA,
    InitializedTopicsValue,
    PersistedShareGroup,
    ShareGroupEpochValue,
    ShareGroupKey,
    decode_share_key,
    decode_share_value,
    encode_share_key,
    encode_share_value,
    replay_share_record,
)

TOPIC = uuid.uuid4()


def test_keys_and_values_read_back() -> None:
    for record_type in (SHARE_GROUP_METADATA, SHARE_STATE_PARTITION_METADATA):
        key = ShareGroupKey(record_type, "grüppe")
        assert decode_share_key(encode_share_key(key)) == key
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
    # 0-2 classic offsets and group metadata, 3-8 the consumer protocol's, 10 member metadata
    for record_type in (0, 1, 2, 3, 8, 10, 16):
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
