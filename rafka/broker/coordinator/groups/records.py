"""Records of `__consumer_offsets` in Kafka's own format, so Kafka's tools can read our log.

A record key starts with an i16 that says what the record is: 0 or 1 an offset commit
(OffsetCommitKey: group, topic, partition), 2 the group's metadata (GroupMetadataKey: group).
Higher numbers are KIP-848 consumer-group records, which the classic coordinator skips. The value
starts with its own i16 schema version; a null value is a tombstone that deletes the key.

Value versions (Kafka's OffsetCommitValue.json and GroupMetadataValue.json):
    OffsetCommitValue  v0 offset, metadata, commitTimestamp; v1 adds expireTimestamp; v2 drops it;
                       v3 adds leaderEpoch after offset; v4 is v3 in the flexible encoding.
    GroupMetadataValue protocolType, generation, protocol?, leader?, [v2+] currentStateTimestamp,
                       members[memberId, [v3+] groupInstanceId?, clientId, clientHost,
                       [v1+] rebalanceTimeout, sessionTimeout, subscription, assignment];
                       v4 is v3 in the flexible encoding.
Like Kafka we write offset key v1, OffsetCommitValue v3 (v1 when the commit carries its own
expiry) and GroupMetadataValue v3, and read every version.
"""

from __future__ import annotations

import struct

from msgspec import Struct

from rafka.protocol.field_reader import FieldReader

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
OFFSET_VALUE_VERSION_WITH_EXPIRY = 1
GROUP_VALUE_VERSION = 3
MAX_OFFSET_VALUE_VERSION = 4
MAX_GROUP_VALUE_VERSION = 4
FIRST_FLEXIBLE_VERSION = 4

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class RecordFormatError(ValueError):
    """A `__consumer_offsets` record this codec cannot read."""


class OffsetKey(Struct, frozen=True):
    group: str
    topic: str
    partition: int


class GroupKey(Struct, frozen=True):
    group: str


class OffsetValue(Struct, frozen=True):
    offset: int
    metadata: str
    commit_timestamp: int
    leader_epoch: int = -1
    expire_timestamp: int = -1  # only stored by OffsetCommit v2-v4 with an explicit retention


class MemberValue(Struct, frozen=True):
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout: int
    session_timeout: int
    subscription: bytes
    assignment: bytes


class GroupValue(Struct, frozen=True):
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int
    members: tuple[MemberValue, ...] = ()


RecordKey = OffsetKey | GroupKey
RecordValue = OffsetValue | GroupValue


# -- encoding --------------------------------------------------------------------------------------


class _Writer:
    def __init__(self, flexible: bool = False) -> None:
        self.out = bytearray()
        self.flexible = flexible

    def i16(self, value: int) -> None:
        self.out += _I16.pack(value)

    def i32(self, value: int) -> None:
        self.out += _I32.pack(value)

    def i64(self, value: int) -> None:
        self.out += _I64.pack(value)

    def uvarint(self, value: int) -> None:
        while value > 0x7F:
            self.out.append((value & 0x7F) | 0x80)
            value >>= 7
        self.out.append(value)

    def string(self, value: str | None) -> None:
        if value is None:
            if self.flexible:
                self.uvarint(0)
            else:
                self.i16(-1)
            return
        raw = value.encode()
        if self.flexible:
            self.uvarint(len(raw) + 1)
        else:
            self.i16(len(raw))
        self.out += raw

    def bytes_(self, value: bytes) -> None:
        if self.flexible:
            self.uvarint(len(value) + 1)
        else:
            self.i32(len(value))
        self.out += value

    def array_length(self, count: int) -> None:
        if self.flexible:
            self.uvarint(count + 1)
        else:
            self.i32(count)

    def no_tags(self) -> None:
        if self.flexible:
            self.uvarint(0)

    def one_tag(self, tag: int, field: _Writer) -> None:
        """The tagged-fields section holding one field, written by `field`."""
        self.uvarint(1)
        self.uvarint(tag)
        self.uvarint(len(field.out))
        self.out += field.out


def encode_offset_key(key: OffsetKey) -> bytes:
    w = _Writer()
    w.i16(OFFSET_COMMIT_KEY_VERSION)
    w.string(key.group)
    w.string(key.topic)
    w.i32(key.partition)
    return bytes(w.out)


def encode_group_key(key: GroupKey) -> bytes:
    w = _Writer()
    w.i16(GROUP_METADATA_KEY_VERSION)
    w.string(key.group)
    return bytes(w.out)


def encode_key(key: RecordKey) -> bytes:
    return encode_offset_key(key) if isinstance(key, OffsetKey) else encode_group_key(key)


def encode_offset_value(value: OffsetValue, version: int | None = None) -> bytes:
    if version is None:
        has_expiry = value.expire_timestamp >= 0
        version = OFFSET_VALUE_VERSION_WITH_EXPIRY if has_expiry else OFFSET_VALUE_VERSION
    if not 0 <= version <= MAX_OFFSET_VALUE_VERSION:
        raise ValueError(f"unknown OffsetCommitValue version {version}")
    w = _Writer(flexible=version >= FIRST_FLEXIBLE_VERSION)
    w.i16(version)
    w.i64(value.offset)
    if version >= 3:
        w.i32(value.leader_epoch)
    w.string(value.metadata)
    w.i64(value.commit_timestamp)
    if version == 1:
        w.i64(value.expire_timestamp)
    w.no_tags()
    return bytes(w.out)


def encode_group_value(value: GroupValue, version: int = GROUP_VALUE_VERSION) -> bytes:
    if not 0 <= version <= MAX_GROUP_VALUE_VERSION:
        raise ValueError(f"unknown GroupMetadataValue version {version}")
    w = _Writer(flexible=version >= FIRST_FLEXIBLE_VERSION)
    w.i16(version)
    w.string(value.protocol_type)
    w.i32(value.generation)
    w.string(value.protocol)
    w.string(value.leader)
    if version >= 2:
        w.i64(value.current_state_timestamp)
    w.array_length(len(value.members))
    for member in value.members:
        w.string(member.member_id)
        if version >= 3:
            w.string(member.group_instance_id)
        w.string(member.client_id)
        w.string(member.client_host)
        if version >= 1:
            w.i32(member.rebalance_timeout)
        w.i32(member.session_timeout)
        w.bytes_(member.subscription)
        w.bytes_(member.assignment)
        w.no_tags()
    w.no_tags()
    return bytes(w.out)


def encode_value(value: RecordValue) -> bytes:
    if isinstance(value, OffsetValue):
        return encode_offset_value(value)
    return encode_group_value(value)


# -- decoding --------------------------------------------------------------------------------------


class _Reader(FieldReader):
    def __init__(self, data: bytes | memoryview, flexible: bool = False) -> None:
        super().__init__(data, RecordFormatError)
        self.flexible = flexible

    def nullable_string(self) -> str | None:
        length = self.uvarint() - 1 if self.flexible else self.i16()
        if length < 0:
            return None
        try:
            return bytes(self.take(length)).decode()
        except UnicodeDecodeError as exc:
            raise RecordFormatError(f"bad string: {exc}") from None

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise RecordFormatError("null where a string is required")
        return value

    def bytes_(self) -> bytes:
        length = self.uvarint() - 1 if self.flexible else self.i32()
        if length < 0:
            return b""
        return bytes(self.take(length))

    def array_length(self) -> int:
        count = self.uvarint() - 1 if self.flexible else self.i32()
        if count > len(self.view) - self.pos:
            raise RecordFormatError("array longer than the record")
        return max(count, 0)

    def skip_tags(self) -> None:
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())


def decode_key(data: bytes | memoryview) -> RecordKey | None:
    """The key, or None for record types the classic coordinator does not use."""
    r = _Reader(data)
    version = r.i16()
    if version in (0, 1):
        return OffsetKey(r.string(), r.string(), r.i32())
    if version == GROUP_METADATA_KEY_VERSION:
        return GroupKey(r.string())
    return None


def decode_offset_value(data: bytes | memoryview) -> OffsetValue:
    version = _Reader(data).i16()
    if not 0 <= version <= MAX_OFFSET_VALUE_VERSION:
        raise RecordFormatError(f"unknown OffsetCommitValue version {version}")
    r = _Reader(data, flexible=version >= FIRST_FLEXIBLE_VERSION)
    r.i16()
    offset = r.i64()
    leader_epoch = r.i32() if version >= 3 else -1
    metadata = r.string()
    commit_timestamp = r.i64()
    expire_timestamp = r.i64() if version == 1 else -1
    r.skip_tags()
    return OffsetValue(offset, metadata, commit_timestamp, leader_epoch, expire_timestamp)


def decode_group_value(data: bytes | memoryview) -> GroupValue:
    version = _Reader(data).i16()
    if not 0 <= version <= MAX_GROUP_VALUE_VERSION:
        raise RecordFormatError(f"unknown GroupMetadataValue version {version}")
    r = _Reader(data, flexible=version >= FIRST_FLEXIBLE_VERSION)
    r.i16()
    protocol_type = r.string()
    generation = r.i32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    current_state_timestamp = r.i64() if version >= 2 else -1
    members = []
    for _ in range(r.array_length()):
        member_id = r.string()
        instance_id = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance_timeout = r.i32() if version >= 1 else -1
        session_timeout = r.i32()
        if rebalance_timeout < 0:
            rebalance_timeout = session_timeout  # v0 had one timeout for both
        subscription = r.bytes_()
        assignment = r.bytes_()
        r.skip_tags()
        members.append(
            MemberValue(
                member_id,
                instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            )
        )
    r.skip_tags()
    return GroupValue(
        protocol_type, generation, protocol, leader, current_state_timestamp, tuple(members)
    )


def decode_value(key: RecordKey, data: bytes | memoryview | None) -> RecordValue | None:
    """The value for `key`, or None for a tombstone."""
    if data is None:
        return None
    if isinstance(key, OffsetKey):
        return decode_offset_value(data)
    return decode_group_value(data)
