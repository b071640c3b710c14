"""Share groups' records in `__consumer_offsets`, in Kafka's coordinator-record format (a key
is an i16 record type then the group id, and the member id for a member's records; a value an
i16 version (0) then flexible fields):

    10 ShareGroupMemberMetadata           value: rack, client id and host, subscribed topics
    11 ShareGroupMetadata                 value: group epoch, metadata hash (written as 0)
    12 ShareGroupTargetAssignmentMetadata value: the assignment's epoch
    14 ShareGroupCurrentMemberAssignment  value: member epoch, previous epoch, state, partitions
    15 ShareGroupStatePartitionMetadata   value: initializing, initialized and deleting topics

So after the coordinator restarts or moves, a share group is listed, described and deleted as
before, its initialized share partitions (its offsets) are known, and its members heartbeat on
at their epochs, as with Kafka. Kafka's target assignment per member (13) is not written: the
`simple` assignor's target is what each member is assigned, recomputed from the subscriptions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from rafka.broker.coordinator.groups.consumer_records import read_partitions, write_partitions
from rafka.broker.coordinator.groups.records import RecordFormatError, _Reader, _Writer

SHARE_MEMBER_METADATA = 10
SHARE_GROUP_METADATA = 11
SHARE_TARGET_METADATA = 12
SHARE_CURRENT_ASSIGNMENT = 14
SHARE_STATE_PARTITION_METADATA = 15
_MEMBER_KEYS = (SHARE_MEMBER_METADATA, SHARE_CURRENT_ASSIGNMENT)
_KEYS = (*_MEMBER_KEYS, SHARE_GROUP_METADATA, SHARE_TARGET_METADATA,
         SHARE_STATE_PARTITION_METADATA)
VALUE_VERSION = 0
STABLE = 0  # a share member's state: nothing is ever revoked, so always Kafka's STABLE


@dataclass(frozen=True, slots=True)
class ShareGroupKey:
    record_type: int
    group: str
    member_id: str | None = None


@dataclass(frozen=True, slots=True)
class ShareGroupEpochValue:  # 11
    epoch: int


@dataclass(frozen=True, slots=True)
class InitializedTopicsValue:  # 15
    # topic id -> (topic name, partitions)
    topics: dict[uuid.UUID, tuple[str, frozenset[int]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShareMemberValue:  # 10
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ShareAssignmentEpochValue:  # 12
    epoch: int


@dataclass(frozen=True, slots=True)
class ShareMemberAssignmentValue:  # 14
    member_epoch: int
    assignment: dict[uuid.UUID, frozenset[int]]


ShareGroupValue = (
    ShareGroupEpochValue | InitializedTopicsValue | ShareMemberValue | ShareAssignmentEpochValue
    | ShareMemberAssignmentValue
)


@dataclass(slots=True)
class PersistedShareMember:
    metadata: ShareMemberValue | None = None
    current: ShareMemberAssignmentValue | None = None


@dataclass(slots=True)
class PersistedShareGroup:
    """What a coordinator's replay knows of a share group."""

    epoch: int = 0
    initialized: dict[uuid.UUID, tuple[str, frozenset[int]]] = field(default_factory=dict)
    assignment_epoch: int | None = None  # None: from before rafka wrote it (the group epoch)
    members: dict[str, PersistedShareMember] = field(default_factory=dict)


def encode_share_key(key: ShareGroupKey) -> bytes:
    w = _Writer()
    w.i16(key.record_type)
    w.string(key.group)
    if key.record_type in _MEMBER_KEYS:
        w.string(key.member_id or "")
    return bytes(w.out)


def decode_share_key(data: bytes | memoryview) -> ShareGroupKey | None:
    """The key if it is one of the share-group records kept here, else None."""
    r = _Reader(data)
    record_type = r.i16()
    if record_type not in _KEYS:
        return None
    group = r.string()
    member_id = r.string() if record_type in _MEMBER_KEYS else None
    return ShareGroupKey(record_type, group, member_id)


def encode_share_value(value: ShareGroupValue) -> bytes:
    w = _Writer(flexible=True)
    w.i16(VALUE_VERSION)
    if isinstance(value, ShareGroupEpochValue):
        w.i32(value.epoch)
        w.i64(0)  # MetadataHash: rafka recomputes the assignment from the image
    elif isinstance(value, ShareMemberValue):
        w.string(value.rack_id)
        w.string(value.client_id)
        w.string(value.client_host)
        w.array_length(len(value.subscribed_topic_names))
        for name in value.subscribed_topic_names:
            w.string(name)
    elif isinstance(value, ShareAssignmentEpochValue):
        w.i32(value.epoch)  # AssignmentTimestamp (a tagged field) left out
    elif isinstance(value, ShareMemberAssignmentValue):
        w.i32(value.member_epoch)
        w.i32(value.member_epoch)  # PreviousMemberEpoch: a share member never lags behind
        w.out.append(STABLE)
        write_partitions(w, value.assignment)
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
    if key.record_type == SHARE_MEMBER_METADATA:
        rack, client_id, host = r.nullable_string(), r.string(), r.string()
        topics = tuple(r.string() for _ in range(r.array_length()))
        return ShareMemberValue(rack, client_id, host, topics)
    if key.record_type == SHARE_TARGET_METADATA:
        return ShareAssignmentEpochValue(r.i32())
    if key.record_type == SHARE_CURRENT_ASSIGNMENT:
        epoch = r.i32()
        r.i32()  # previous epoch
        r.take(1)  # state
        return ShareMemberAssignmentValue(epoch, read_partitions(r))
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
    """Apply one record: the group's epoch, assignment epoch or initialized partitions, or a
    member's metadata or assignment. A tombstone of the group's metadata removes the group, of
    a member's metadata the member."""
    if value is None:
        group_or_none = groups.get(key.group)
        if key.record_type == SHARE_GROUP_METADATA:
            groups.pop(key.group, None)
        elif group_or_none is None:
            pass
        elif key.record_type == SHARE_MEMBER_METADATA:
            group_or_none.members.pop(key.member_id or "", None)
        elif key.record_type == SHARE_CURRENT_ASSIGNMENT:
            if (member := group_or_none.members.get(key.member_id or "")) is not None:
                member.current = None
        elif key.record_type == SHARE_TARGET_METADATA:
            group_or_none.assignment_epoch = None
        else:
            group_or_none.initialized = {}
        return
    group = groups.setdefault(key.group, PersistedShareGroup())
    if isinstance(value, ShareGroupEpochValue):
        group.epoch = value.epoch
    elif isinstance(value, InitializedTopicsValue):
        group.initialized = dict(value.topics)
    elif isinstance(value, ShareAssignmentEpochValue):
        group.assignment_epoch = value.epoch
    elif isinstance(value, ShareMemberValue):
        group.members.setdefault(key.member_id or "", PersistedShareMember()).metadata = value
    else:
        group.members.setdefault(key.member_id or "", PersistedShareMember()).current = value
