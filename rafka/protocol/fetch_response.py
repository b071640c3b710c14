"""Hand-written Fetch response encoder (v4–v16): the hot path of every consumer.

The response is produced as a list of buffers so that record bytes read from the log go to the
socket without being copied into a response buffer (`transport.writelines`). Only fields at their
non-default values are written as tagged fields, like kio does; the encoding is tested
byte-for-byte against kio's.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence

from msgspec import Struct, field

from rafka.protocol.field_reader import FieldReader
from rafka.protocol.frames import write_uvarint

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_PARTITION_HEAD = struct.Struct(">ihqq")  # index, error, high watermark, last stable offset
_I64 = struct.Struct(">q")
_PRODUCER_AND_OFFSET = struct.Struct(">qq")
_TOP_V7 = struct.Struct(">ihi")  # throttle, error, session id
_EPOCH_END = struct.Struct(">iqB")  # epoch, end offset, no tagged fields
_LEADER = struct.Struct(">iiB")  # leader id, leader epoch, no tagged fields
_EPOCH_END_FIELDS = struct.Struct(">iq")
_LEADER_FIELDS = struct.Struct(">ii")
_UNKNOWN = (-1, -1)


class FetchedPartition(Struct):
    """One partition of a Fetch response, its records still on disk."""

    partition_index: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    records: bytes | memoryview | None
    aborted_transactions: Sequence[tuple[int, int]] | None = None  # (producer id, first offset)
    preferred_read_replica: int = -1
    # Tagged fields (v12+), for a follower's fetch: (epoch, end offset) where its log diverges
    # from the leader's, and (leader id, leader epoch); None or -1s: not written.
    diverging_epoch: tuple[int, int] | None = None
    current_leader: tuple[int, int] | None = None


class FetchedTopic(Struct):
    """One topic of a Fetch response."""

    name: str | None  # v4–v12
    topic_id: uuid.UUID | None  # v13+
    partitions: list[FetchedPartition] = field(default_factory=list)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    write_uvarint(out, value)
    return bytes(out)


def encode_fetch_response(
    version: int,
    topics: Sequence[FetchedTopic],
    *,
    error_code: int = 0,
    session_id: int = 0,
    throttle_time_ms: int = 0,
) -> list[bytes | memoryview]:
    """The response body (no size prefix or response header) as buffers to write in order."""
    flexible = version >= 12
    parts: list[bytes | memoryview] = []
    head = bytearray()
    if version >= 7:
        head += _TOP_V7.pack(throttle_time_ms, error_code, session_id)
    else:
        head += _I32.pack(throttle_time_ms)
    head += _uvarint(len(topics) + 1) if flexible else _I32.pack(len(topics))
    for topic in topics:
        if version >= 13:
            head += (topic.topic_id or uuid.UUID(int=0)).bytes
        else:
            name = (topic.name or "").encode()
            head += _uvarint(len(name) + 1) + name if flexible else _I16.pack(len(name)) + name
        partitions = topic.partitions
        head += _uvarint(len(partitions) + 1) if flexible else _I32.pack(len(partitions))
        for p in partitions:
            head += _PARTITION_HEAD.pack(
                p.partition_index, p.error_code, p.high_watermark, p.last_stable_offset
            )
            if version >= 5:
                head += _I64.pack(p.log_start_offset)
            aborted = p.aborted_transactions
            if aborted is None:
                head += b"\x00" if flexible else _I32.pack(-1)
            else:
                head += _uvarint(len(aborted) + 1) if flexible else _I32.pack(len(aborted))
                for producer_id, first_offset in aborted:
                    head += _PRODUCER_AND_OFFSET.pack(producer_id, first_offset)
                    if flexible:
                        head += b"\x00"
            if version >= 11:
                head += _I32.pack(p.preferred_read_replica)
            records = p.records
            if records is None:
                head += b"\x00" if flexible else _I32.pack(-1)
            else:
                head += _uvarint(len(records) + 1) if flexible else _I32.pack(len(records))
                if len(records):
                    parts.append(bytes(head))
                    parts.append(records)
                    head = bytearray()
            if flexible:
                _partition_tags(head, p)
        if flexible:
            head += b"\x00"  # topic tagged fields
    if flexible:
        head += b"\x00"  # response tagged fields
    parts.append(bytes(head))
    return parts


def _partition_tags(head: bytearray, p: FetchedPartition) -> None:
    """A partition's tagged fields, in tag order, each only if not at its default."""
    tags: list[tuple[int, bytes]] = []
    if p.diverging_epoch is not None and tuple(p.diverging_epoch) != _UNKNOWN:
        tags.append((0, _EPOCH_END.pack(*p.diverging_epoch, 0)))
    if p.current_leader is not None and tuple(p.current_leader) != _UNKNOWN:
        tags.append((1, _LEADER.pack(*p.current_leader, 0)))
    write_uvarint(head, len(tags))
    for tag, payload in tags:
        write_uvarint(head, tag)
        write_uvarint(head, len(payload))
        head += payload


class FetchResponseBody(Struct):
    """A decoded Fetch response (decode_replica_fetch_response)."""

    throttle_time_ms: int
    error_code: int
    session_id: int
    topics: list[FetchedTopic]


def decode_replica_fetch_response(frame: bytes | memoryview, offset: int) -> FetchResponseBody:
    """A v12 Fetch response body from `offset` (after the response header): what a follower
    reads from its leaders all the time. Records are views of `frame`, not copies. A
    truncated or malformed body raises ValueError."""
    r = FieldReader(frame)
    r.pos = offset
    throttle, error, session = r.unpack(_TOP_V7)
    topics = []
    for _ in range(_compact_count(r)):
        name = _compact_string(r)
        partitions = []
        for _ in range(_compact_count(r)):
            index, code, high_watermark, last_stable = r.unpack(_PARTITION_HEAD)
            log_start = r.i64()
            aborted = None
            count = r.uvarint() - 1
            if count >= 0:
                aborted = []
                for _ in range(count):
                    aborted.append(r.unpack(_PRODUCER_AND_OFFSET))
                    r.tags()
            preferred = r.i32()
            size = r.uvarint() - 1
            records = r.take(size) if size >= 0 else None
            tags = r.tags()
            partitions.append(
                FetchedPartition(
                    index,
                    code,
                    high_watermark,
                    last_stable,
                    log_start,
                    records,
                    aborted,
                    preferred,
                    diverging_epoch=_tagged(tags, 0, _EPOCH_END_FIELDS),
                    current_leader=_tagged(tags, 1, _LEADER_FIELDS),
                )
            )
        r.tags()
        topics.append(FetchedTopic(name, None, partitions))
    r.tags()
    return FetchResponseBody(throttle, error, session, topics)


def _compact_count(r: FieldReader) -> int:
    count = r.uvarint() - 1
    if count < 0:
        raise ValueError("null array where one is required")
    return count


def _compact_string(r: FieldReader) -> str:
    size = r.uvarint() - 1
    if size < 0:
        raise ValueError("null string where one is required")
    return str(r.take(size), "utf-8")


def _tagged(tags: dict[int, memoryview], tag: int, layout: struct.Struct) -> tuple[int, int] | None:
    """A two-field struct sent as tagged field `tag` (its own tagged fields ignored)."""
    data = tags.get(tag)
    if data is None:
        return None
    if len(data) < layout.size:
        raise ValueError(f"tagged field {tag} truncated")
    first, second = layout.unpack_from(data, 0)
    return first, second
