"""Producer state snapshot files: Kafka's file name and byte layout, and corruption detection."""

from __future__ import annotations

import struct

import pytest
from crc32c import crc32c

from rafka.storage.producer_snapshot import (
    CorruptSnapshotError,
    SnapshotEntry,
    decode_snapshot,
    encode_snapshot,
    snapshot_file_name,
)

T0 = 1_700_000_000_000


def test_snapshot_file_name_is_twenty_digit_offset() -> None:
    assert snapshot_file_name(0) == "00000000000000000000.snapshot"
    assert snapshot_file_name(1234) == "00000000000000001234.snapshot"


def test_snapshot_bytes_follow_kafkas_layout() -> None:
    entry = SnapshotEntry(7, 2, 41, 99, 4, T0, 3, -1)
    data = encode_snapshot([entry])
    body = struct.pack(">i", 1) + struct.pack(">qhiqiqiq", 7, 2, 41, 99, 4, T0, 3, -1)
    assert data == struct.pack(">hI", 1, crc32c(body)) + body
    assert decode_snapshot(data) == [entry]
    assert decode_snapshot(encode_snapshot([])) == []


@pytest.mark.parametrize("flip_at", [0, 3, 6, 20, -1])
def test_corrupt_snapshot_is_detected(flip_at: int) -> None:
    data = bytearray(encode_snapshot([SnapshotEntry(7, 2, 41, 99, 4, T0, 3, -1)]))
    data[flip_at] ^= 0x01
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(bytes(data))


def test_truncated_snapshot_is_detected() -> None:
    data = encode_snapshot([SnapshotEntry(7, 2, 41, 99, 4, T0, 3, -1)])
    for cut in (0, 5, len(data) - 1):
        with pytest.raises(CorruptSnapshotError):
            decode_snapshot(data[:cut])
