"""Helpers for the storage tests: valid v2 record batches built by hand (header via struct,
records with varints, CRC32C), and appending them to a log."""

from __future__ import annotations

import struct

from crc32c import crc32c

from rafka.protocol.records import read_batch_header
from rafka.storage.log import PartitionLog

_HEADER_AFTER_CRC = struct.Struct(">hiqqqhii")


def _varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _record(offset_delta: int, timestamp_delta: int, value: bytes) -> bytes:
    body = (
        b"\x00"
        + _varint(timestamp_delta)
        + _varint(offset_delta)
        + _varint(-1)
        + _varint(len(value))
        + value
        + _varint(0)
    )
    return _varint(len(body)) + body


def make_batch(
    base_offset: int,
    count: int = 1,
    *,
    timestamp: int = 1_000,
    value_size: int = 10,
    epoch: int = 0,
    max_timestamp: int | None = None,
    timestamps: list[int] | None = None,
) -> bytes:
    """A valid magic-2 batch of `count` records. Record i has timestamp `timestamp + i` (or
    `timestamps[i]`), so the batch's max timestamp is the largest of those."""
    if timestamps is None:
        timestamps = [timestamp + i for i in range(count)]
    base_timestamp = timestamps[0]
    records = b"".join(
        _record(i, ts - base_timestamp, bytes([65 + (base_offset + i) % 26]) * value_size)
        for i, ts in enumerate(timestamps)
    )
    if max_timestamp is None:
        max_timestamp = max(timestamps)
    after_crc = (
        _HEADER_AFTER_CRC.pack(0, count - 1, base_timestamp, max_timestamp, -1, -1, -1, count)
        + records
    )
    crc = crc32c(after_crc)
    batch_length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", base_offset, batch_length, epoch, 2, crc) + after_crc


def append_batch(
    log: PartitionLog,
    count: int = 1,
    *,
    now_ms: int = 0,
    timestamp: int | None = None,
    value_size: int = 10,
    epoch: int = 0,
    timestamps: list[int] | None = None,
) -> bytes:
    """Append one batch at the log end; returns its bytes."""
    first = log.log_end_offset
    batch = make_batch(
        first,
        count,
        timestamp=now_ms if timestamp is None else timestamp,
        value_size=value_size,
        epoch=epoch,
        timestamps=timestamps,
    )
    header = read_batch_header(batch)
    log.append(
        batch,
        first,
        header.last_offset,
        header.max_timestamp,
        header.last_offset,
        epoch,
        now_ms,
    )
    return batch


def split_batches(data: bytes) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(data):
        size = read_batch_header(data, pos).size
        out.append(data[pos : pos + size])
        pos += size
    assert pos == len(data), "data ends inside a batch"
    return out


def base_offsets(data: bytes) -> list[int]:
    return [read_batch_header(batch).base_offset for batch in split_batches(data)]
