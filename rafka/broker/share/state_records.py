"""Records of `__share_group_state` in the format of Kafka's share coordinator (KIP-932), and
their replay.

A share partition (group id, topic id, partition) is one key; its state is a ShareSnapshot
(key type 0, the whole state) followed by ShareUpdates (key type 1, the state batches that
changed and the start offset). Replay: a snapshot replaces the state, an update merges into it.

    key     type i16 (0 snapshot, 1 update) | group_id string (i16 length) | topic_id uuid |
            partition i32
    value   version i16 (= 0), then, in the flexible encoding:
            snapshot: snapshot_epoch i32 | state_epoch i32 | leader_epoch i32 |
                      start_offset i64 | create_timestamp i64 | write_timestamp i64 |
                      state_batches compact array | tagged fields
            update:   snapshot_epoch i32 | leader_epoch i32 | start_offset i64 |
                      state_batches compact array | tagged fields
            state batch: first_offset i64 | last_offset i64 | delivery_state i8 |
                         delivery_count i16 | tagged fields
            tag 0 (both): delivery_complete_count i32, written only when not -1 (Kafka 4.2).
Delivery states: 0 available, 2 acknowledged, 4 archived (Kafka's RecordState ids).
"""

from __future__ import annotations

import struct
import uuid

from msgspec import Struct, field

from rafka.protocol.field_reader import FieldReader
from rafka.protocol.frames import write_uvarint

ShareKey = tuple[str, uuid.UUID, int]  # group id, topic id, partition index

SNAPSHOT = 0
UPDATE = 1
VALUE_VERSION = 0

AVAILABLE = 0
ACKNOWLEDGED = 2
ARCHIVED = 4
_STATES = frozenset({AVAILABLE, ACKNOWLEDGED, ARCHIVED})

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_SNAPSHOT_HEAD = struct.Struct(">hiiiqqq")  # version, snapshot/state/leader epochs, start, ts x2
_UPDATE_HEAD = struct.Struct(">hiiq")  # version, snapshot epoch, leader epoch, start
_BATCH = struct.Struct(">qqbh")
_TAG_DELIVERY_COMPLETE_COUNT = 0


class ShareRecordError(ValueError):
    """A `__share_group_state` record this codec cannot read."""


class StateBatch(Struct, frozen=True):
    first_offset: int
    last_offset: int
    delivery_state: int
    delivery_count: int


class ShareStateValue(Struct, frozen=True):
    """A ShareSnapshotValue (`snapshot`) or ShareUpdateValue; the snapshot-only fields are
    ignored for an update."""

    snapshot: bool
    snapshot_epoch: int
    leader_epoch: int
    start_offset: int
    batches: tuple[StateBatch, ...]
    state_epoch: int = 0
    create_timestamp: int = 0
    write_timestamp: int = 0
    delivery_complete_count: int = -1


# -- encoding --------------------------------------------------------------------------------


def encode_key(record_type: int, key: ShareKey) -> bytes:
    group_id, topic_id, partition = key
    raw = group_id.encode()
    head = _I16.pack(record_type) + _I16.pack(len(raw)) + raw
    return head + topic_id.bytes + _I32.pack(partition)


def encode_value(value: ShareStateValue) -> bytes:
    if value.snapshot:
        out = bytearray(
            _SNAPSHOT_HEAD.pack(
                VALUE_VERSION,
                value.snapshot_epoch,
                value.state_epoch,
                value.leader_epoch,
                value.start_offset,
                value.create_timestamp,
                value.write_timestamp,
            )
        )
    else:
        out = bytearray(
            _UPDATE_HEAD.pack(
                VALUE_VERSION, value.snapshot_epoch, value.leader_epoch, value.start_offset
            )
        )
    write_uvarint(out, len(value.batches) + 1)
    for b in value.batches:
        out += _BATCH.pack(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count)
        out += b"\x00"
    if value.delivery_complete_count != -1:
        out.append(1)  # one tagged field
        write_uvarint(out, _TAG_DELIVERY_COMPLETE_COUNT)
        write_uvarint(out, 4)
        out += _I32.pack(value.delivery_complete_count)
    else:
        out += b"\x00"
    return bytes(out)


# -- decoding --------------------------------------------------------------------------------


class _Reader(FieldReader):
    def __init__(self, data: bytes | memoryview) -> None:
        super().__init__(data, ShareRecordError)


def decode_key(data: bytes | memoryview) -> tuple[int, ShareKey]:
    """(record type, key)."""
    r = _Reader(data)
    (record_type,) = r.unpack(_I16)
    if record_type not in (SNAPSHOT, UPDATE):
        raise ShareRecordError(f"unknown share state record type {record_type}")
    (length,) = r.unpack(_I16)
    if length < 0:
        raise ShareRecordError("null group id")
    try:
        group_id = bytes(r.take(length)).decode()
    except UnicodeDecodeError as exc:
        raise ShareRecordError(f"bad group id: {exc}") from None
    topic_id = r.uuid()
    (partition,) = r.unpack(_I32)
    return record_type, (group_id, topic_id, partition)


def decode_value(record_type: int, data: bytes | memoryview) -> ShareStateValue:
    r = _Reader(data)
    snapshot = record_type == SNAPSHOT
    state_epoch = create = write = 0
    if snapshot:
        version, snapshot_epoch, state_epoch, leader_epoch, start, create, write = r.unpack(
            _SNAPSHOT_HEAD
        )
    else:
        version, snapshot_epoch, leader_epoch, start = r.unpack(_UPDATE_HEAD)
    if version != VALUE_VERSION:
        raise ShareRecordError(f"unknown share state value version {version}")
    count = r.uvarint() - 1
    if count < 0 or count * _BATCH.size > len(r.view) - r.pos:
        raise ShareRecordError("bad state batch count")
    batches = []
    for _ in range(count):
        first, last, state, delivered = r.unpack(_BATCH)
        r.tags()
        if state not in _STATES or last < first:
            raise ShareRecordError(f"bad state batch {first}-{last} state {state}")
        batches.append(StateBatch(first, last, state, delivered))
    complete = -1
    tagged = r.tags().get(_TAG_DELIVERY_COMPLETE_COUNT)
    if tagged is not None and len(tagged) == 4:
        (complete,) = _I32.unpack(tagged)
    return ShareStateValue(
        snapshot, snapshot_epoch, leader_epoch, start, tuple(batches),
        state_epoch, create, write, complete,
    )  # fmt: skip


# -- replay ----------------------------------------------------------------------------------


# The state epoch a share-partition leader writes to make a state for a partition that has
# none: its share coordinator picks the epoch (past any deleted state's), which the leader
# then reads back.
CREATE_STATE_EPOCH = -1


class PersistedShareState(Struct):
    """The durable state of one share partition: its start offset and, per offset at or past
    it that has one, (delivery state, delivery count). Offsets past it without an entry have
    never been delivered (or were only acquired, which is not persisted)."""

    start_offset: int
    state_epoch: int = 0
    leader_epoch: int = -1
    snapshot_epoch: int = 0
    records: dict[int, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_snapshot(cls, value: ShareStateValue) -> PersistedShareState:
        state = cls(value.start_offset, value.state_epoch, value.leader_epoch, value.snapshot_epoch)
        state._merge(value.batches)
        return state

    def apply_update(self, value: ShareStateValue) -> None:
        if value.leader_epoch >= 0:
            self.leader_epoch = max(self.leader_epoch, value.leader_epoch)
        if value.start_offset >= 0 and value.start_offset > self.start_offset:
            self.start_offset = value.start_offset
            self.records = {o: r for o, r in self.records.items() if o >= value.start_offset}
        self._merge(value.batches)

    def _merge(self, batches: tuple[StateBatch, ...]) -> None:
        start = self.start_offset
        for b in batches:
            for offset in range(max(b.first_offset, start), b.last_offset + 1):
                self.records[offset] = (b.delivery_state, b.delivery_count)

    def batches(self) -> tuple[StateBatch, ...]:
        return to_batches(self.records)

    def to_snapshot(self, write_timestamp: int) -> ShareStateValue:
        return ShareStateValue(
            snapshot=True,
            snapshot_epoch=self.snapshot_epoch,
            leader_epoch=self.leader_epoch,
            start_offset=self.start_offset,
            batches=self.batches(),
            state_epoch=self.state_epoch,
            create_timestamp=write_timestamp,
            write_timestamp=write_timestamp,
        )


def to_batches(records: dict[int, tuple[int, int]]) -> tuple[StateBatch, ...]:
    """Runs of consecutive offsets with one state and delivery count."""
    out: list[StateBatch] = []
    for offset in sorted(records):
        state, count = records[offset]
        last = out[-1] if out else None
        if (
            last is not None
            and last.last_offset == offset - 1
            and last.delivery_state == state
            and last.delivery_count == count
        ):
            out[-1] = StateBatch(last.first_offset, offset, state, count)
        else:
            out.append(StateBatch(offset, offset, state, count))
    return tuple(out)
