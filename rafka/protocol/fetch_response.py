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

from rafka.protocol.frames import write_uvarint

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_PARTITION_HEAD = struct.Struct(">ihqq")  # index, error, high watermark, last stable offset
_I64 = struct.Struct(">q")
_PRODUCER_AND_OFFSET = struct.Struct(">qq")
_TOP_V7 = struct.Struct(">ihi")  # throttle, error, session id


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
                head += b"\x00"  # partition tagged fields: none (all at their defaults)
        if flexible:
            head += b"\x00"  # topic tagged fields
    if flexible:
        head += b"\x00"  # response tagged fields
    parts.append(bytes(head))
    return parts
