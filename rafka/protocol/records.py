"""Kafka record batches (magic v2): the header view used on the hot path (records stay opaque),
and, where semantics need them, decoding and building of whole batches and control batches.

Layout of the 61-byte header (all big-endian):
    baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
    attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
    producerId i64 | producerEpoch i16 | baseSequence i32 | recordsCount i32
The CRC32C covers everything from `attributes` to the end of the batch, so the broker can patch
`baseOffset` and `partitionLeaderEpoch` without recomputing it. The records section that follows
the header is compressed as a whole per `attributes` (see compression) and holds `recordsCount`
records (see record_codec).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import IntEnum
from typing import TypeVar

from msgspec import Struct
from msgspec.structs import replace

from rafka.protocol import record_codec
from rafka.protocol.checksum import crc32c
from rafka.protocol.compression import Compression, CorruptRecordError, compress, decompress
from rafka.protocol.frames import write_uvarint

HEADER_SIZE = 61
# baseOffset + batchLength: the part of the header not counted in batchLength.
LOG_OVERHEAD = 12
MAGIC_V2 = 2
CRC_START = 21  # offset of `attributes`
CRC_OFFSET = 17
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1

ATTR_COMPRESSION_MASK = 0x07
ATTR_TIMESTAMP_TYPE = 0x08  # set: LogAppendTime
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
ATTR_DELETE_HORIZON = 0x40

_HEADER = struct.Struct(">qiibIhiqqqhii")
_OFFSET_AND_EPOCH_HEAD = struct.Struct(">q")
_EPOCH = struct.Struct(">i")
_LENGTH_AND_MAGIC = struct.Struct(">qiib")


class UnsupportedMagicError(CorruptRecordError):
    """A batch in an old message format (magic 0 or 1), which this broker does not accept."""


class BatchHeader(Struct, frozen=True):
    """The fixed 61-byte header of a record batch (magic 2), as stored and sent."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def compression(self) -> Compression:
        return Compression(self.attributes & ATTR_COMPRESSION_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & ATTR_TIMESTAMP_TYPE)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id >= 0

    @property
    def last_sequence(self) -> int:
        if self.base_sequence < 0:
            return NO_SEQUENCE
        # Sequences wrap at i32 max, as Kafka's DefaultRecordBatch.incrementSequence does.
        return (self.base_sequence + self.last_offset_delta) % 0x80000000


def read_batch_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the header of the batch starting at `pos`; validates size fields, not the CRC."""
    if len(buf) - pos < HEADER_SIZE:
        # Old formats (magic 0/1) can be shorter than our header; report the format if we can.
        if len(buf) - pos >= 17:
            magic = buf[pos + 16]
            if magic in (0, 1):
                raise UnsupportedMagicError(f"message format v{magic} is not supported")
        raise CorruptRecordError("record batch shorter than its header")
    header = BatchHeader(*_HEADER.unpack_from(buf, pos))
    if header.magic != MAGIC_V2:
        if header.magic in (0, 1):
            raise UnsupportedMagicError(f"message format v{header.magic} is not supported")
        raise CorruptRecordError(f"unknown record batch magic {header.magic}")
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise CorruptRecordError(f"record batch length {header.batch_length} is too small")
    if header.records_count < 0 or header.last_offset_delta < 0:
        raise CorruptRecordError("record batch has a negative record count or offset delta")
    return header


def crc_ok(buf: bytes | bytearray | memoryview, pos: int, header: BatchHeader) -> bool:
    view = memoryview(buf)[pos + CRC_START : pos + header.size]
    return crc32c(view) == header.crc


def compute_crc(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    return crc32c(memoryview(buf)[pos + CRC_START : pos + size])


def iter_batch_headers(
    buf: bytes | bytearray | memoryview,
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield (position, header) for each complete batch; raise on a truncated or bad one."""
    pos = 0
    end = len(buf)
    while pos < end:
        header = read_batch_header(buf, pos)
        if pos + header.size > end:
            raise CorruptRecordError("record batch extends past the end of the record set")
        yield pos, header
        pos += header.size


def patch_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    _OFFSET_AND_EPOCH_HEAD.pack_into(buf, pos, base_offset)


def patch_leader_epoch(buf: bytearray | memoryview, pos: int, leader_epoch: int) -> None:
    _EPOCH.pack_into(buf, pos + 12, leader_epoch)


# -- records inside a batch -----------------------------------------------------------------------

# Bound on a batch's decompressed records unless the caller passes its own.
DEFAULT_MAX_UNCOMPRESSED = 64 * 1024 * 1024
NO_TIMESTAMP = -1

_ATTRIBUTES = struct.Struct(">h")
_MAX_TIMESTAMP = struct.Struct(">q")
_CRC = struct.Struct(">I")
_ATTRIBUTES_OFFSET = 21
_MAX_TIMESTAMP_OFFSET = 35
_INT32_MAX = (1 << 31) - 1
_MAX_CODEC = max(Compression)

Header = tuple[str, bytes | None]
_T = TypeVar("_T")


def is_transactional_batch(records: bytes | None) -> bool:
    """Whether a record set's first batch is transactional, from its header alone (the records
    are not decoded): the low byte of the attributes (an i16 at 21) is at 22."""
    return bool(
        records
        and len(records) >= HEADER_SIZE
        and records[_ATTRIBUTES_OFFSET + 1] & ATTR_TRANSACTIONAL
    )


class Record(Struct, frozen=True):
    """One record with its absolute offset and timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
    attributes: int = 0


def decode_batch(
    buf: bytes | bytearray | memoryview,
    pos: int = 0,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
) -> tuple[BatchHeader, list[Record]]:
    """Validate (size, CRC) and decode the batch at `pos`; CorruptRecordError if malformed.

    With LogAppendTime every record takes the batch's maxTimestamp, as Kafka's consumers do.
    """
    header = _checked_header(buf, pos)
    if not crc_ok(buf, pos, header):
        raise CorruptRecordError("record batch CRC mismatch")
    decoded = _decode_section(buf, pos, header, max_uncompressed, record_codec.decode_records)
    base_offset = header.base_offset
    if header.is_log_append_time:
        append_time = header.max_timestamp
        records = [
            Record(base_offset + delta, append_time, key, value, headers, attributes)
            for attributes, _, delta, key, value, headers in decoded
        ]
    else:
        base_timestamp = header.base_timestamp
        records = [
            Record(base_offset + delta, base_timestamp + ts_delta, key, value, headers, attributes)
            for attributes, ts_delta, delta, key, value, headers in decoded
        ]
    return header, records


def record_timestamps_and_offsets(
    buf: bytes | bytearray | memoryview,
    pos: int = 0,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
) -> list[tuple[int, int]]:
    """(offset, timestamp) of every record of the batch at `pos`, building no keys or values.

    For ListOffsets by timestamp. The CRC is not checked: stored batches were checked on append
    and on recovery. Malformed records still raise CorruptRecordError.
    """
    header = _checked_header(buf, pos)
    deltas = _decode_section(buf, pos, header, max_uncompressed, record_codec.decode_record_deltas)
    base_offset = header.base_offset
    if header.is_log_append_time:
        append_time = header.max_timestamp
        return [(base_offset + delta, append_time) for delta, _ in deltas]
    base_timestamp = header.base_timestamp
    return [(base_offset + delta, base_timestamp + ts_delta) for delta, ts_delta in deltas]


def build_batch(
    records: Sequence[object],
    *,
    base_offset: int = 0,
    compression: Compression = Compression.NONE,
    compression_level: int | None = None,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    is_transactional: bool = False,
    is_control: bool = False,
    log_append_time: bool = False,
    base_timestamp: int | None = None,
    max_timestamp: int | None = None,
    last_offset_delta: int | None = None,
    delete_horizon_ms: int | None = None,
) -> bytes:
    """A complete, CRC-correct v2 batch.

    `records` holds (key, value, headers, timestamp) tuples, or objects with `key`, `value`,
    `headers`, `timestamp` and optionally `offset` (absolute; the tuple form and objects without
    it take consecutive offsets) and `attributes`. By default baseTimestamp is the first record's
    timestamp and maxTimestamp the largest one. `last_offset_delta` overrides the header field
    (compaction keeps a batch's last offset when it drops its last records, as Kafka does);
    `delete_horizon_ms` sets the delete-horizon attribute and stores the horizon as
    baseTimestamp (KIP-534).
    """
    entries = _record_entries(records, base_offset)
    timestamps = [timestamp for _, timestamp, _ in entries]
    if delete_horizon_ms is not None:
        base_timestamp = delete_horizon_ms
    elif base_timestamp is None:
        base_timestamp = timestamps[0] if timestamps else NO_TIMESTAMP
    if max_timestamp is None:
        max_timestamp = max(timestamps) if timestamps else NO_TIMESTAMP
    if last_offset_delta is None:
        last_offset_delta = entries[-1][0] if entries else 0
    elif entries and last_offset_delta < entries[-1][0]:
        raise ValueError("last_offset_delta is below the last record's offset delta")
    body = record_codec.encode_records(
        [
            (attributes, timestamp - base_timestamp, delta, key, value, headers)
            for delta, timestamp, (attributes, key, value, headers) in entries
        ]
    )
    if compression != Compression.NONE:
        body = compress(compression, body, compression_level)
    attributes = int(compression) & ATTR_COMPRESSION_MASK
    if log_append_time:
        attributes |= ATTR_TIMESTAMP_TYPE
    if is_transactional:
        attributes |= ATTR_TRANSACTIONAL
    if is_control:
        attributes |= ATTR_CONTROL
    if delete_horizon_ms is not None:
        attributes |= ATTR_DELETE_HORIZON
    size = HEADER_SIZE + len(body)
    out = bytearray(size)
    _HEADER.pack_into(
        out,
        0,
        base_offset,
        size - LOG_OVERHEAD,
        partition_leader_epoch,
        MAGIC_V2,
        0,  # CRC, computed below over everything from `attributes` on
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(entries),
    )
    out[HEADER_SIZE:] = body
    _CRC.pack_into(out, CRC_OFFSET, compute_crc(out, 0, size))
    return bytes(out)


def set_log_append_time(
    buf: bytearray | memoryview, pos: int, header: BatchHeader, timestamp_ms: int
) -> BatchHeader:
    """Mark the batch at `pos` as LogAppendTime at `timestamp_ms`, in place.

    As Kafka's broker does: set the timestamp-type attribute and maxTimestamp, recompute the
    CRC, and leave baseTimestamp and the records alone (consumers then use maxTimestamp for
    every record). Returns the updated header.
    """
    attributes = header.attributes | ATTR_TIMESTAMP_TYPE
    if attributes == header.attributes and header.max_timestamp == timestamp_ms:
        return header
    _ATTRIBUTES.pack_into(buf, pos + _ATTRIBUTES_OFFSET, attributes)
    _MAX_TIMESTAMP.pack_into(buf, pos + _MAX_TIMESTAMP_OFFSET, timestamp_ms)
    crc = compute_crc(buf, pos, header.size)
    _CRC.pack_into(buf, pos + CRC_OFFSET, crc)
    return replace(header, attributes=attributes, max_timestamp=timestamp_ms, crc=crc)


def _checked_header(buf: bytes | bytearray | memoryview, pos: int) -> BatchHeader:
    header = read_batch_header(buf, pos)
    if pos + header.size > len(buf):
        raise CorruptRecordError("record batch extends past the end of the buffer")
    return header


def _decode_section(
    buf: bytes | bytearray | memoryview,
    pos: int,
    header: BatchHeader,
    max_uncompressed: int,
    decoder: Callable[[bytes | bytearray | memoryview, int], list[_T]],
) -> list[_T]:
    """Run `decoder` over the batch's (decompressed) records section."""
    codec = header.attributes & ATTR_COMPRESSION_MASK
    if codec > _MAX_CODEC:
        raise CorruptRecordError(f"unknown compression codec {codec}")
    section = memoryview(buf)[pos + HEADER_SIZE : pos + header.size]
    try:
        if codec != Compression.NONE:
            section = decompress(Compression(codec), section, max_uncompressed)
        return decoder(section, header.records_count)
    except CorruptRecordError:
        raise
    except ValueError as exc:
        raise CorruptRecordError(f"malformed records: {exc}") from None
    finally:
        if isinstance(section, memoryview):
            # Let the caller resize its bytearray even if an exception keeps this frame alive.
            section.release()


_MISSING = object()


def _record_entries(
    records: Iterable[object], base_offset: int
) -> list[tuple[int, int, tuple[int, bytes | None, bytes | None, object]]]:
    """(offset_delta, timestamp, (attributes, key, value, headers)) per record, validated."""
    entries: list[tuple[int, int, tuple[int, bytes | None, bytes | None, object]]] = []
    delta = -1
    for record in records:
        key = getattr(record, "key", _MISSING)
        if key is _MISSING:
            key, value, headers, timestamp = record  # type: ignore[misc]
            delta += 1
            attributes = 0
        else:
            value = record.value  # type: ignore[attr-defined]
            headers = record.headers  # type: ignore[attr-defined]
            timestamp = record.timestamp  # type: ignore[attr-defined]
            attributes = getattr(record, "attributes", 0)
            offset = getattr(record, "offset", None)
            next_delta = delta + 1 if offset is None else offset - base_offset
            if next_delta <= delta:
                raise ValueError("record offsets must increase")
            delta = next_delta
        if delta > _INT32_MAX:
            raise ValueError("record offset too far from the batch's base offset")
        entries.append((delta, timestamp, (attributes, key, value, headers)))
    return entries


# -- control batches ------------------------------------------------------------------------------


class ControlRecordType(IntEnum):
    """The `type` of a control record's key (version i16 = 0, type i16), as in Kafka."""

    ABORT = 0
    COMMIT = 1
    LEADER_CHANGE = 2  # KIP-595
    SNAPSHOT_HEADER = 3
    SNAPSHOT_FOOTER = 4
    KRAFT_VERSION = 5
    KRAFT_VOTERS = 6


CONTROL_KEY_VERSION = 0
END_TXN_MARKER_VERSION = 0
LEADER_CHANGE_VERSION = 0

_CONTROL_KEY = struct.Struct(">hh")
_END_TXN_MARKER = struct.Struct(">hi")  # version, coordinatorEpoch
_LEADER_CHANGE_HEAD = struct.Struct(">hi")  # Version, LeaderId
_VOTER_ID = struct.Struct(">i")


class LeaderChange(Struct, frozen=True):
    """The value of a LEADER_CHANGE control record (Kafka's LeaderChangeMessage)."""

    leader_id: int
    voters: tuple[int, ...]
    granting_voters: tuple[int, ...]


def build_control_batch(
    kind: ControlRecordType | int,
    *,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    coordinator_epoch: int = 0,
    leader_id: int = -1,
    voters: Iterable[int] = (),
    granting_voters: Iterable[int] = (),
    value: bytes | None = None,
) -> bytes:
    """A control batch holding one control record of `kind`.

    ABORT/COMMIT (transaction markers) are transactional batches whose value is Kafka's
    EndTxnMarker (version i16 = 0, coordinatorEpoch i32). LEADER_CHANGE is not transactional;
    its value is a LeaderChangeMessage (see encode_leader_change_message). Other kinds need
    `value`.
    """
    kind = ControlRecordType(kind)
    if value is None:
        if kind in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
            value = _END_TXN_MARKER.pack(END_TXN_MARKER_VERSION, coordinator_epoch)
        elif kind == ControlRecordType.LEADER_CHANGE:
            value = encode_leader_change_message(leader_id, voters, granting_voters)
        else:
            raise ValueError(f"a {kind.name} control record needs an explicit value")
    key = _CONTROL_KEY.pack(CONTROL_KEY_VERSION, kind)
    return build_batch(
        [(key, value, (), timestamp)],
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        is_transactional=kind in (ControlRecordType.ABORT, ControlRecordType.COMMIT),
        is_control=True,
    )


def parse_control_record_type(buf: bytes | bytearray | memoryview, pos: int = 0) -> int:
    """The control type (ControlRecordType value, or an unknown int) of the batch at `pos`."""
    header, records = decode_batch(buf, pos)
    if not header.is_control:
        raise CorruptRecordError("not a control batch")
    if not records:
        raise CorruptRecordError("control batch without records")
    key = records[0].key
    if key is None or len(key) < _CONTROL_KEY.size:
        raise CorruptRecordError("control record key too short")
    version, kind = _CONTROL_KEY.unpack_from(key)
    if version != CONTROL_KEY_VERSION:
        raise CorruptRecordError(f"unknown control record key version {version}")
    return kind


def encode_leader_change_message(
    leader_id: int, voters: Iterable[int], granting_voters: Iterable[int] = ()
) -> bytes:
    """Kafka's LeaderChangeMessage at version 0, which is a flexible version:

        Version i16 (= 0) | LeaderId i32 |
        Voters: compact array (unsigned varint N+1) of {VoterId i32 | tagged fields (0x00)} |
        GrantingVoters: the same | tagged fields (0x00)
    """
    out = bytearray(_LEADER_CHANGE_HEAD.pack(LEADER_CHANGE_VERSION, leader_id))
    for ids in (tuple(voters), tuple(granting_voters)):
        write_uvarint(out, len(ids) + 1)
        for voter_id in ids:
            out += _VOTER_ID.pack(voter_id)
            out.append(0)  # no tagged fields
    out.append(0)  # no tagged fields
    return bytes(out)


def parse_leader_change_message(value: bytes | bytearray | memoryview) -> LeaderChange:
    """Decode a LeaderChangeMessage, skipping any tagged fields; CorruptRecordError if bad."""
    view = memoryview(value)
    if len(view) < _LEADER_CHANGE_HEAD.size:
        raise CorruptRecordError("leader change message too short")
    _, leader_id = _LEADER_CHANGE_HEAD.unpack_from(view)
    pos = _LEADER_CHANGE_HEAD.size
    voter_lists = []
    for _ in range(2):
        length, pos = _read_unsigned_varint(view, pos)
        ids = []
        # Compact arrays store N+1; 0 is null, read as empty. Each voter takes >= 5 bytes.
        if length - 1 > (len(view) - pos) // (_VOTER_ID.size + 1):
            raise CorruptRecordError("leader change voter array longer than the message")
        for _ in range(length - 1):
            if len(view) - pos < _VOTER_ID.size:
                raise CorruptRecordError("leader change message truncated")
            ids.append(_VOTER_ID.unpack_from(view, pos)[0])
            pos = _skip_tagged_fields(view, pos + _VOTER_ID.size)
        voter_lists.append(tuple(ids))
    pos = _skip_tagged_fields(view, pos)
    if pos != len(view):
        raise CorruptRecordError("trailing bytes after leader change message")
    return LeaderChange(leader_id, voter_lists[0], voter_lists[1])


def _read_unsigned_varint(view: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 35, 7):
        if pos >= len(view):
            raise CorruptRecordError("truncated varint")
        byte = view[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if result > 0xFFFFFFFF:
                raise CorruptRecordError("varint overflow")
            return result, pos
    raise CorruptRecordError("varint too long")


def _skip_tagged_fields(view: memoryview, pos: int) -> int:
    count, pos = _read_unsigned_varint(view, pos)
    for _ in range(count):
        _, pos = _read_unsigned_varint(view, pos)  # tag
        size, pos = _read_unsigned_varint(view, pos)
        if size > len(view) - pos:
            raise CorruptRecordError("tagged field longer than the message")
        pos += size
    return pos
