"""Producer state snapshot files: Kafka's own format and file name (`<20-digit offset>.snapshot`),
each holding the state for all batches below that offset. Encoding and decoding, the durable write,
and finding the files in a partition directory; what the entries mean is `producer_state`'s.

Version 1 layout, big-endian:
    version i16 | crc u32 (CRC32C of everything after it) | entries: i32 count, then per entry
    producer_id i64 | epoch i16 | last_sequence i32 | last_offset i64 | offset_delta i32 |
    timestamp i64 | coordinator_epoch i32 | current_txn_first_offset i64
Kafka writes one entry per producer, for its last batch. We write one per batch the producer
state keeps (up to 5, oldest first, the same producer fields on each, the batch's own timestamp on
all but the last): a retry of any of them after a restart is then still answered with its
offsets. A reader that keeps the last entry per producer id, as Kafka's does, gets exactly the
entry Kafka would have written.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Collection, Iterable
from pathlib import Path

from msgspec import Struct

from rafka.protocol.checksum import crc32c
from rafka.storage.files import list_files

SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1
_TMP_SUFFIX = ".tmp"
_SNAPSHOT_NAME = re.compile(r"^(\d+)\.snapshot$")
_SNAPSHOT_HEAD = struct.Struct(">hIi")  # version, crc, entry count
_SNAPSHOT_ENTRY = struct.Struct(">qhiqiqiq")
_CRC_START = 6  # the CRC covers the entry count and the entries


class SnapshotEntry(Struct, frozen=True):
    """One producer as stored in a snapshot file."""

    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_offset: int
    offset_delta: int
    timestamp: int
    coordinator_epoch: int
    current_txn_first_offset: int


class CorruptSnapshotError(ValueError):
    """A snapshot file that cannot be trusted (bad CRC, unknown version, wrong size)."""


def snapshot_file_name(offset: int) -> str:
    return f"{offset:020d}{SNAPSHOT_SUFFIX}"


def encode_snapshot(entries: Iterable[SnapshotEntry]) -> bytes:
    items = list(entries)
    body = bytearray(_SNAPSHOT_HEAD.size + _SNAPSHOT_ENTRY.size * len(items))
    _SNAPSHOT_HEAD.pack_into(body, 0, SNAPSHOT_VERSION, 0, len(items))
    pos = _SNAPSHOT_HEAD.size
    for e in items:
        _SNAPSHOT_ENTRY.pack_into(
            body,
            pos,
            e.producer_id,
            e.producer_epoch,
            e.last_sequence,
            e.last_offset,
            e.offset_delta,
            e.timestamp,
            e.coordinator_epoch,
            e.current_txn_first_offset,
        )
        pos += _SNAPSHOT_ENTRY.size
    struct.pack_into(">I", body, 2, crc32c(memoryview(body)[_CRC_START:]))
    return bytes(body)


def decode_snapshot(data: bytes) -> list[SnapshotEntry]:
    if len(data) < _SNAPSHOT_HEAD.size:
        raise CorruptSnapshotError("snapshot shorter than its header")
    version, crc, count = _SNAPSHOT_HEAD.unpack_from(data, 0)
    if version != SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"unknown snapshot version {version}")
    computed = crc32c(memoryview(data)[_CRC_START:])
    if crc != computed:
        raise CorruptSnapshotError(f"snapshot CRC {crc:#010x} does not match {computed:#010x}")
    if count < 0 or len(data) != _SNAPSHOT_HEAD.size + count * _SNAPSHOT_ENTRY.size:
        raise CorruptSnapshotError(f"snapshot size {len(data)} does not fit {count} entries")
    return [
        SnapshotEntry(*fields)
        for fields in _SNAPSHOT_ENTRY.iter_unpack(memoryview(data)[_SNAPSHOT_HEAD.size :])
    ]


def write_snapshot(directory: Path, offset: int, entries: Iterable[SnapshotEntry]) -> Path:
    """Write the snapshot for `offset` durably (temp file, fsync, rename, fsync dir)."""
    path = directory / snapshot_file_name(offset)
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    data = encode_snapshot(entries)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(directory)
    return path


def delete_partial_snapshots(directory: Path, names: Collection[str] | None = None) -> None:
    """Remove temp files of snapshot writes a crash interrupted. `names`: the directory's
    files if the caller has listed them already (`files.list_files`)."""
    if names is None:
        names = list_files(directory)
    for name in names:
        if name.endswith(SNAPSHOT_SUFFIX + _TMP_SUFFIX):
            (directory / name).unlink(missing_ok=True)


def snapshot_files(directory: Path, names: Collection[str] | None = None) -> dict[int, Path]:
    """Offset -> path of the snapshot files in `directory` (none if it does not exist).
    `names`: the directory's files if the caller has listed them already."""
    if names is None:
        names = list_files(directory)
    files: dict[int, Path] = {}
    for name in names:
        if name.endswith(SNAPSHOT_SUFFIX) and (match := _SNAPSHOT_NAME.match(name)):
            files[int(match.group(1))] = directory / name
    return files


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
