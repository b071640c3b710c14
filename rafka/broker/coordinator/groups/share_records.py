"""Share groups' records in `__consumer_offsets`, in Kafka's coordinator-record format (a key
is an i16 record type then the group id; a value an i16 version (0) then flexible fields):

    11 ShareGroupMetadata               value: group epoch, metadata hash (written as 0)
    15 ShareGroupStatePartitionMetadata value: initializing, initialized and deleting topics

Only what outlives the members is kept: that the group exists, its epoch, and its initialized
share partitions (what DescribeShareGroupOffsets lists and DeleteGroups deletes the state of).
Members join again after the coordinator moves or restarts, as they do after a session timeout.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from rafka.broker.coordinator.groups.records import RecordFormatError, _Reader, _Writer

SHARE_GROUP_METADATA = 11
SHARE_STATE_PARTITION_METADATA = 15
VALUE_VERSION = 0


@dataclass(frozen=True, slots=True)
class ShareGroupKey:
    record_type: int
    group: str


@dataclass(frozen=True, slots=True)
class ShareGroupEpochValue:  # 11
    epoch: int


@dataclass(frozen=True, slots=True)
class InitializedTopicsValue:  # 15
    # topic id -> (topic name, partitions)
    topics: dict[uuid.UUID, tuple[str, frozenset[int]]] = field(default_factory=dict)


ShareGroupValue = ShareGroupEpochValue | InitializedTopicsValue


@dataclass(slots=True)
class PersistedShareGroup:
    """What a coordinator's replay knows of a share group."""

    epoch: int = 0
    initialized: dict[uuid.UUID, tuple[str, frozenset[int]]] = field(default_factory=dict)


def encode_share_key(key: ShareGroupKey) -> bytes:
    w = _Writer()
    w.i16(key.record_type)
    w.string(key.group)
    return bytes(w.out)


def decode_share_key(data: bytes | memoryview) -> ShareGroupKey | None:
    """The key if it is one of the two share-group records kept here, else None."""
    r = _Reader(data)
    record_type = r.i16()
    if record_type not in (SHARE_GROUP_METADATA, SHARE_STATE_PARTITION_METADATA):
        return None
    return ShareGroupKey(record_type, r.string())


def encode_share_value(value: ShareGroupValue) -> bytes:
    w = _Writer(flexible=True)
    w.i16(VALUE_VERSION)
    if isinstance(value, ShareGroupEpochValue):
        w.i32(value.epoch)
        w.i64(0)  # MetadataHash: rafka recomputes the assignment from the image
    else:
        w.array_length(0)  # InitializingTopics: a state is made by the partition leader
        w.array_length(len(value.topics))
        for topic_id in sorted(value.topics, key=str):
            name, partitions = value.topics[topic_id]
            w.out += topic_id.bytes
            w.string(name)
            w.array_length(len(partitions))
            for partition in sorted(partitions):
                w.i32(partition)
            w.i64(-1)  # CreateTimestamp
            w.no_tags()
        w.array_length(0)  # DeletingTopics: a deletion is done before it is written
    w.no_tags()
    return bytes(w.out)


def decode_share_value(
    key: ShareGroupKey, data: bytes | memoryview | None
) -> ShareGroupValue | None:
    """The value for `key`, or None for a tombstone."""
    if data is None:
        return None
    r = _Reader(data, flexible=True)
    version = r.i16()
    if version < 0:
        raise RecordFormatError(f"bad share group record version {version}")
    if key.record_type == SHARE_GROUP_METADATA:
        return ShareGroupEpochValue(r.i32())
    _skip_topics(r)  # initializing
    topics: dict[uuid.UUID, tuple[str, frozenset[int]]] = {}
    for _ in range(r.array_length()):
        topic_id = r.uuid()
        name = r.string()
        partitions = frozenset(r.i32() for _ in range(r.array_length()))
        r.i64()
        r.skip_tags()
        topics[topic_id] = (name, partitions)
    return InitializedTopicsValue(topics)


def _skip_topics(r: _Reader) -> None:
    for _ in range(r.array_length()):
        r.take(16)
        r.string()
        for _ in range(r.array_length()):
            r.i32()
        r.i64()
        r.skip_tags()


def replay_share_record(
    groups: dict[str, PersistedShareGroup], key: ShareGroupKey, value: ShareGroupValue | None
) -> None:
    """Apply one record: the group's epoch or initialized partitions; a tombstone of the
    metadata record removes the group."""
    if value is None:
        if key.record_type == SHARE_GROUP_METADATA:
            groups.pop(key.group, None)
        elif key.group in groups:
            groups[key.group].initialized = {}
        return
    group = groups.setdefault(key.group, PersistedShareGroup())
    if isinstance(value, ShareGroupEpochValue):
        group.epoch = value.epoch
    else:
        group.initialized = dict(value.topics)
