"""Kafka's sparse segment indexes, `.index` and `.timeindex`.

`.index` entries are (u32 offset relative to the segment base, u32 file position) and map the last
offset of a batch to the batch's position; `.timeindex` entries are (i64 timestamp, u32 relative
offset): the largest timestamp seen so far in the segment and the offset where it was reached.
Both are big-endian and append-only.

Entries live in memory (`array`) for lookups; the file is brought up to date by `write_pending`
(called from the log's flush, off the hot path). Entries of sealed segments are loaded lazily.
Thread model: one writer thread appends; lookups may run on other threads. Appends fill the
searched array last so a concurrent reader never sees a half-added entry; truncation replaces the
arrays instead of shrinking them in place.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from itertools import pairwise
from pathlib import Path

from rafka.storage.open_files import OPEN_FILES, LazyFile

# Index entries hold offsets relative to the segment base as (non-negative) Java ints.
MAX_RELATIVE_OFFSET = 2**31 - 1

_OFFSET_ENTRY = struct.Struct(">II")
_TIME_ENTRY = struct.Struct(">qI")
_LITTLE_ENDIAN = sys.byteorder == "little"
assert array("I").itemsize == 4 and array("q").itemsize == 8


class CorruptIndexError(ValueError):
    """An index file fails its sanity check; the segment's indexes must be rebuilt."""


class _IndexFile:
    """The on-disk side of an index: pending entries are appended in `write_pending`."""

    entry_size: int

    def __init__(self, path: Path | str, base_offset: int, max_index_bytes: int) -> None:
        # A string, not a Path: tens of thousands of indexes, and a Path costs several times more.
        self.file_name = os.fspath(path)
        self.base_offset = base_offset
        self.max_entries = max(max_index_bytes // self.entry_size, 1)
        self._persisted = 0  # leading entries the file holds, equal to those in memory
        self._stale_tail = False  # the file may hold entries past `_persisted`
        self._unsynced = False
        self._file: LazyFile | None = None  # opened at the first write, within the budget
        self._loaded = False

    @property
    def path(self) -> Path:
        return Path(self.file_name)

    # -- subclass hooks ------------------------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def _encode(self, start: int, stop: int) -> bytes:
        raise NotImplementedError

    def _set_entries(self, raw: bytes) -> None:
        raise NotImplementedError

    def _truncate_entries(self, count: int) -> None:
        raise NotImplementedError

    def _check(self, log_size: int) -> None:
        raise NotImplementedError

    # -- common ----------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def is_full(self) -> bool:
        return len(self) >= self.max_entries

    def file_size_ok(self) -> bool:
        """Cheap open-time check: the file exists and holds whole entries."""
        try:
            size = os.stat(self.file_name).st_size
        except FileNotFoundError:
            return False
        return size % self.entry_size == 0

    def read_last_entry_bytes(self) -> bytes:
        """The last entry in the file without loading the rest (empty if none)."""
        try:
            with open(self.file_name, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < self.entry_size:
                    return b""
                file.seek(size - size % self.entry_size - self.entry_size)
                return file.read(self.entry_size)
        except FileNotFoundError:
            return b""

    def load(self, log_size: int) -> None:
        """Read every entry from the file; raise CorruptIndexError if it fails the sanity check."""
        try:
            with open(self.file_name, "rb") as file:
                raw = file.read()
        except FileNotFoundError:
            raise CorruptIndexError(f"{self.path} is missing") from None
        if len(raw) % self.entry_size:
            raise CorruptIndexError(f"{self.path} size {len(raw)} is not a multiple of entries")
        self._set_entries(raw)
        self._check(log_size)
        self._persisted = len(self)
        self._loaded = True

    def start_empty(self) -> None:
        """Use an empty in-memory index (a new segment whose file is created empty)."""
        self._truncate_entries(0)
        self._loaded = True

    def reset(self) -> None:
        """Drop every entry before a rebuild; the file is cut at the next `write_pending`."""
        self.start_empty()
        self._persisted = 0
        self._stale_tail = True

    def _note_truncated(self, count: int) -> None:
        if self._persisted > count:
            self._persisted = count
            self._stale_tail = True

    def _open(self, truncate: bool = False) -> LazyFile:
        file = self._file
        if file is None or file.closed or truncate:
            if file is not None:
                file.close()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            file = LazyFile(
                OPEN_FILES,
                self.file_name,
                flags | (os.O_TRUNC if truncate else 0),
                flags,
                open_now=truncate,
            )
            self._file = file
        return file

    def create_file(self, truncate: bool = False) -> None:
        self._open(truncate)

    def pin_file(self) -> None:
        """The file is about to be renamed away: a write in flight keeps the old one."""
        if self._file is not None:
            self._file.pin()

    def write_pending(self, sync: bool) -> None:
        """Bring the file up to date with memory (cut stale entries, append new ones); fsync it
        if `sync`. File I/O for indexes happens only here, under the log's flush lock."""
        if self._stale_tail:
            self._stale_tail = False
            with self._open() as fd:
                os.ftruncate(fd, self._persisted * self.entry_size)
            self._unsynced = True
        count = len(self)
        if count > self._persisted:
            data = self._encode(self._persisted, count)
            view = memoryview(data)
            with self._open() as fd:
                while view:
                    view = view[os.write(fd, view) :]
            self._persisted = count
            self._unsynced = True
        if sync and self._unsynced:
            with self._open() as fd:
                os.fsync(fd)
            self._unsynced = False

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class OffsetIndex(_IndexFile):
    entry_size = _OFFSET_ENTRY.size

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int) -> None:
        super().__init__(path, base_offset, max_index_bytes)
        self._entries = (array("I"), array("I"))  # (relative offsets, positions)

    def __len__(self) -> int:
        return len(self._entries[0])

    def append(self, offset: int, position: int) -> None:
        """Record that the batch at `position` ends at `offset`.

        An entry not after the last one is skipped: the data is already written by then, and a
        missing sparse entry only costs a longer scan.
        """
        relative_offsets, positions = self._entries
        relative = offset - self.base_offset
        if relative_offsets and relative <= relative_offsets[-1]:
            return
        positions.append(position)
        relative_offsets.append(relative)

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the largest entry whose offset <= `offset`; (base, 0) if none."""
        relative_offsets, positions = self._entries
        slot = bisect_right(relative_offsets, offset - self.base_offset) - 1
        if slot < 0:
            return self.base_offset, 0
        return self.base_offset + relative_offsets[slot], positions[slot]

    def floor_position(self, position: int) -> int:
        """The largest indexed batch position <= `position` (a batch boundary), else 0."""
        positions = self._entries[1]
        slot = bisect_right(positions, position) - 1
        return positions[slot] if slot >= 0 else 0

    def last_entry(self) -> tuple[int, int]:
        relative_offsets, positions = self._entries
        if not relative_offsets:
            return self.base_offset, 0
        return self.base_offset + relative_offsets[-1], positions[len(relative_offsets) - 1]

    def last_entry_from_file(self) -> tuple[int, int]:
        raw = self.read_last_entry_bytes()
        if not raw:
            return self.base_offset, 0
        relative, position = _OFFSET_ENTRY.unpack(raw)
        return self.base_offset + relative, position

    def truncate_to(self, offset: int) -> None:
        """Remove the entries whose offset >= `offset`."""
        count = bisect_left(self._entries[0], offset - self.base_offset)
        if count < len(self):
            self._truncate_entries(count)
        self._note_truncated(count)

    def _truncate_entries(self, count: int) -> None:
        relative_offsets, positions = self._entries
        self._entries = (relative_offsets[:count], positions[:count])

    def _encode(self, start: int, stop: int) -> bytes:
        relative_offsets, positions = self._entries
        pack = _OFFSET_ENTRY.pack
        return b"".join(pack(relative_offsets[i], positions[i]) for i in range(start, stop))

    def _set_entries(self, raw: bytes) -> None:
        words = array("I")
        words.frombytes(raw)
        if _LITTLE_ENDIAN:
            words.byteswap()
        self._entries = (words[0::2], words[1::2])

    def _check(self, log_size: int) -> None:
        relative_offsets, positions = self._entries
        if any(a >= b for a, b in pairwise(relative_offsets)):
            raise CorruptIndexError(f"{self.path}: offsets are not increasing")
        if any(a >= b for a, b in pairwise(positions)):
            raise CorruptIndexError(f"{self.path}: positions are not increasing")
        if positions and positions[-1] >= log_size:
            raise CorruptIndexError(f"{self.path}: position {positions[-1]} is past the log end")


class TimeIndex(_IndexFile):
    entry_size = _TIME_ENTRY.size

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int) -> None:
        super().__init__(path, base_offset, max_index_bytes)
        self._entries = (array("q"), array("I"))  # (timestamps, relative offsets)

    def __len__(self) -> int:
        return len(self._entries[0])

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add (timestamp, offset) if the timestamp beats the last entry's (Kafka's rule)."""
        timestamps, relative_offsets = self._entries
        if timestamps and timestamp <= timestamps[-1]:
            return
        if timestamp < 0:
            return
        relative = offset - self.base_offset
        if relative_offsets and relative < relative_offsets[-1]:
            return
        relative_offsets.append(relative)
        timestamps.append(timestamp)

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """(timestamp, offset) of the last entry with timestamp <= `timestamp`, else (-1, base)."""
        timestamps, relative_offsets = self._entries
        slot = bisect_right(timestamps, timestamp) - 1
        if slot < 0:
            return -1, self.base_offset
        return timestamps[slot], self.base_offset + relative_offsets[slot]

    def last_entry(self) -> tuple[int, int]:
        timestamps, relative_offsets = self._entries
        count = len(timestamps)
        if not count:
            return -1, self.base_offset
        return timestamps[count - 1], self.base_offset + relative_offsets[count - 1]

    def last_entry_from_file(self) -> tuple[int, int]:
        raw = self.read_last_entry_bytes()
        if not raw:
            return -1, self.base_offset
        timestamp, relative = _TIME_ENTRY.unpack(raw)
        return timestamp, self.base_offset + relative

    def truncate_to(self, offset: int) -> None:
        """Remove the entries whose offset >= `offset`."""
        count = bisect_left(self._entries[1], offset - self.base_offset)
        if count < len(self):
            self._truncate_entries(count)
        self._note_truncated(count)

    def _truncate_entries(self, count: int) -> None:
        timestamps, relative_offsets = self._entries
        self._entries = (timestamps[:count], relative_offsets[:count])

    def _encode(self, start: int, stop: int) -> bytes:
        timestamps, relative_offsets = self._entries
        pack = _TIME_ENTRY.pack
        return b"".join(pack(timestamps[i], relative_offsets[i]) for i in range(start, stop))

    def _set_entries(self, raw: bytes) -> None:
        timestamps = array("q")
        relative_offsets = array("I")
        for timestamp, relative in _TIME_ENTRY.iter_unpack(raw):
            timestamps.append(timestamp)
            relative_offsets.append(relative)
        self._entries = (timestamps, relative_offsets)

    def _check(self, log_size: int) -> None:
        timestamps, relative_offsets = self._entries
        if any(a >= b for a, b in pairwise(timestamps)):
            raise CorruptIndexError(f"{self.path}: timestamps are not increasing")
        if any(a > b for a, b in pairwise(relative_offsets)):
            raise CorruptIndexError(f"{self.path}: offsets go backwards")
