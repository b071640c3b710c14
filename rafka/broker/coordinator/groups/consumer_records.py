"""The consumer group protocol's records in `__consumer_offsets`, in Kafka's coordinator-record
format: a key is an i16 record type (3-8) then the group id (and the member id); a value is an
i16 version (0) then the fields in the flexible encoding, ending in tagged fields (only the member
metadata's ClassicMemberMetadata and the current assignment's AssignmentEpochs, both tag 0, are
written and read; the others are skipped).

    3 ConsumerGroupMetadata             value: group epoch
    4 ConsumerGroupPartitionMetadata    value: the subscribed topics' ids, names, partitions
    5 ConsumerGroupMemberMetadata       value: the member's subscription and client details
    6 ConsumerGroupTargetAssignmentMetadata  value: the target assignment's epoch
    7 ConsumerGroupTargetAssignmentMember    value: the member's target partitions
    8 ConsumerGroupCurrentMemberAssignment   value: epochs, state, owned and revoking partitions
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field, replace

from rafka.broker.coordinator.groups.consumer_assignors import Assignment
from rafka.broker.coordinator.groups.records import RecordFormatError, _Reader, _Writer

GROUP_METADATA = 3
PARTITION_METADATA = 4
MEMBER_METADATA = 5
TARGET_METADATA = 6
TARGET_MEMBER = 7
CURRENT_ASSIGNMENT = 8
_MEMBER_KEYS = (MEMBER_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT)
VALUE_VERSION = 0

_I8 = struct.Struct(">b")

PartitionEpochs = dict[tuple[uuid.UUID, int], int]  # (topic id, partition) -> epoch


@dataclass(frozen=True, slots=True)
class ConsumerKey:
    record_type: int
    group: str
    member_id: str | None = None  # for the member records (5, 7, 8)


@dataclass(frozen=True, slots=True)
class GroupEpochValue:  # 3
    epoch: int


@dataclass(frozen=True, slots=True)
class PartitionMetadataValue:  # 4
    topics: tuple[tuple[uuid.UUID, str, int], ...]  # (id, name, partitions)


@dataclass(frozen=True, slots=True)
class MemberMetadataValue:  # 5
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]
    subscribed_topic_regex: str | None
    rebalance_timeout_ms: int
    server_assignor: str | None
    # A member still on the classic protocol (KIP-848's online upgrade): its session timeout
    # and JoinGroup protocols (name, metadata); None for consumer-protocol members.
    classic: ClassicMemberMetadata | None = None


@dataclass(frozen=True, slots=True)
class ClassicMemberMetadata:
    session_timeout_ms: int
    protocols: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class TargetEpochValue:  # 6
    assignment_epoch: int


@dataclass(frozen=True, slots=True)
class TargetMemberValue:  # 7
    partitions: Assignment


@dataclass(frozen=True, slots=True)
class CurrentAssignmentValue:  # 8
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned: Assignment
    pending_revocation: Assignment
    # When each partition above came to the member (Kafka 4.3's AssignmentEpochs, KIP-1251);
    # a partition left out came at `member_epoch`, as in records Kafka 4.2 and older wrote.
    epochs: PartitionEpochs = field(default_factory=dict)


ConsumerValue = (
    GroupEpochValue
    | PartitionMetadataValue
    | MemberMetadataValue
    | TargetEpochValue
    | TargetMemberValue
    | CurrentAssignmentValue
)
_VALUE_TYPES: dict[type, int] = {
    GroupEpochValue: GROUP_METADATA,
    PartitionMetadataValue: PARTITION_METADATA,
    MemberMetadataValue: MEMBER_METADATA,
    TargetEpochValue: TARGET_METADATA,
    TargetMemberValue: TARGET_MEMBER,
    CurrentAssignmentValue: CURRENT_ASSIGNMENT,
}


# -- keys ------------------------------------------------------------------------------------------


def encode_consumer_key(key: ConsumerKey) -> bytes:
    w = _Writer()
    w.i16(key.record_type)
    w.string(key.group)
    if key.record_type in _MEMBER_KEYS:
        w.string(key.member_id or "")
    return bytes(w.out)


def decode_consumer_key(data: bytes | memoryview) -> ConsumerKey | None:
    """The key if it is one of the consumer group records, else None."""
    r = _Reader(data)
    record_type = r.i16()
    if not GROUP_METADATA <= record_type <= CURRENT_ASSIGNMENT:
        return None
    group = r.string()
    member_id = r.string() if record_type in _MEMBER_KEYS else None
    return ConsumerKey(record_type, group, member_id)


# -- values ----------------------------------------------------------------------------------------


def write_partitions(
    w: _Writer, assignment: Assignment, epochs: PartitionEpochs | None = None, default: int = 0
) -> None:
    """TopicPartitions; with `epochs`, each topic's AssignmentEpochs (tag 0) as well, a missing
    partition's epoch being `default`."""
    w.array_length(len(assignment))
    for topic_id in sorted(assignment, key=str):
        w.out += topic_id.bytes
        partitions = sorted(assignment[topic_id])
        w.array_length(len(partitions))
        for p in partitions:
            w.i32(p)
        if epochs is None:
            w.no_tags()
            continue
        tag = _Writer(flexible=True)
        tag.array_length(len(partitions))
        for p in partitions:
            tag.i32(epochs.get((topic_id, p), default))
        w.one_tag(0, tag)


def read_partitions(r: _Reader, epochs: PartitionEpochs | None = None) -> Assignment:
    """TopicPartitions; their AssignmentEpochs go into `epochs` when given."""
    result: Assignment = {}
    for _ in range(r.array_length()):
        topic_id = r.uuid()
        partitions = [r.i32() for _ in range(r.array_length())]
        result[topic_id] = frozenset(partitions)
        for _ in range(r.uvarint()):
            tag, size = r.uvarint(), r.uvarint()
            if tag != 0 or epochs is None:
                r.take(size)
                continue
            assigned_at = [r.i32() for _ in range(r.array_length())]
            if len(assigned_at) == len(partitions):  # else unusable: the member epoch stands
                epochs.update(zip(((topic_id, p) for p in partitions), assigned_at, strict=True))
    return result


def encode_consumer_value(value: ConsumerValue) -> bytes:
    w = _Writer(flexible=True)
    w.i16(VALUE_VERSION)
    if isinstance(value, GroupEpochValue):
        w.i32(value.epoch)
    elif isinstance(value, PartitionMetadataValue):
        w.array_length(len(value.topics))
        for topic_id, name, partitions in value.topics:
            w.out += topic_id.bytes
            w.string(name)
            w.i32(partitions)
            w.array_length(0)  # PartitionMetadata (racks): the assignors read racks from the image
            w.no_tags()
    elif isinstance(value, MemberMetadataValue):
        w.string(value.instance_id)
        w.string(value.rack_id)
        w.string(value.client_id)
        w.string(value.client_host)
        w.array_length(len(value.subscribed_topic_names))
        for name in value.subscribed_topic_names:
            w.string(name)
        w.string(value.subscribed_topic_regex)
        w.i32(value.rebalance_timeout_ms)
        w.string(value.server_assignor)
        if value.classic is not None:  # ClassicMemberMetadata: tagged field 0
            tag = _Writer(flexible=True)
            tag.i32(value.classic.session_timeout_ms)
            tag.array_length(len(value.classic.protocols))
            for name, metadata in value.classic.protocols:
                tag.string(name)
                tag.bytes_(metadata)
                tag.no_tags()
            tag.no_tags()
            w.one_tag(0, tag)
            return bytes(w.out)
    elif isinstance(value, TargetEpochValue):
        w.i32(value.assignment_epoch)
    elif isinstance(value, TargetMemberValue):
        write_partitions(w, value.partitions)
    else:
        w.i32(value.member_epoch)
        w.i32(value.previous_member_epoch)
        w.out += _I8.pack(value.state)
        write_partitions(w, value.assigned, value.epochs, value.member_epoch)
        write_partitions(w, value.pending_revocation, value.epochs, value.member_epoch)
    w.no_tags()
    return bytes(w.out)


def decode_consumer_value(
    key: ConsumerKey, data: bytes | memoryview | None
) -> ConsumerValue | None:
    """The value for `key`, or None for a tombstone."""
    if data is None:
        return None
    r = _Reader(data, flexible=True)
    version = r.i16()
    if version < 0:
        raise RecordFormatError(f"bad consumer group record version {version}")
    kind = key.record_type
    if kind == GROUP_METADATA:
        return GroupEpochValue(r.i32())
    if kind == PARTITION_METADATA:
        topics = []
        for _ in range(r.array_length()):
            topic_id = r.uuid()
            name = r.string()
            partitions = r.i32()
            for _ in range(r.array_length()):
                r.i32()
                for _ in range(r.array_length()):
                    r.string()
                r.skip_tags()
            r.skip_tags()
            topics.append((topic_id, name, partitions))
        return PartitionMetadataValue(tuple(topics))
    if kind == MEMBER_METADATA:
        value = MemberMetadataValue(
            r.nullable_string(),
            r.nullable_string(),
            r.string(),
            r.string(),
            tuple(r.string() for _ in range(r.array_length())),
            r.nullable_string(),
            r.i32(),
            r.nullable_string(),
        )
        classic = None
        for _ in range(r.uvarint()):
            tag, size = r.uvarint(), r.uvarint()
            if tag != 0:
                r.take(size)
                continue
            session_timeout_ms = r.i32()
            protocols = []
            for _ in range(r.array_length()):
                protocols.append((r.string(), r.bytes_()))
                r.skip_tags()
            r.skip_tags()
            classic = ClassicMemberMetadata(session_timeout_ms, tuple(protocols))
        return replace(value, classic=classic) if classic is not None else value
    if kind == TARGET_METADATA:
        return TargetEpochValue(r.i32())
    if kind == TARGET_MEMBER:
        return TargetMemberValue(read_partitions(r))
    member_epoch, previous = r.i32(), r.i32()
    state = _I8.unpack(r.take(1))[0]
    epochs: PartitionEpochs = {}
    assigned = read_partitions(r, epochs)
    pending = read_partitions(r, epochs)
    return CurrentAssignmentValue(member_epoch, previous, state, assigned, pending, epochs)


def value_key_type(value: ConsumerValue) -> int:
    return _VALUE_TYPES[type(value)]
