"""A segment's `.log` file, Kafka's FileRecords: record batches exactly as on the wire, addressed
by byte position. It knows the batch framing (the header fields scans need) but not the indexes
nor which offsets its segment holds; the segment translates offsets to positions.

Thread model: as the owning segment's. Writes (append, truncate) run on one thread; positional
reads may run on any.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from rafka.protocol.records import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    CorruptRecordError,
    read_batch_header,
)
from rafka.storage.open_files import OPEN_FILES, LazyFile

# baseOffset, batchLength, lastOffsetDelta, maxTimestamp: what scans need from a header.
SCAN_HEADER = struct.Struct(">qi11xi8xq")
BATCH_LENGTH = struct.Struct(">i")  # at position 8 of a batch
MAX_TIMESTAMP = struct.Struct(">q")
MAX_TIMESTAMP_AT = 35
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
_BASE_AND_LENGTH = struct.Struct(">qi")
_SCAN_CHUNK = 16 * 1024  # header walks between sparse index entries
BULK_CHUNK = 4 * 1024 * 1024  # recovery and full iteration

_datasync = getattr(os, "fdatasync", os.fsync)


def pread_exact(fd: int, size: int, position: int) -> bytes:
    data = os.pread(fd, size, position)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, position + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


_REOPEN_FLAGS = os.O_RDWR | os.O_APPEND


class FileRecords(LazyFile):
    """The `.log` file, opened on first use and kept within the descriptor budget
    (`open_files`); `create` makes a new empty file at once."""

    __slots__ = ()

    def __init__(self, path: str, *, create: bool = False) -> None:
        flags = _REOPEN_FLAGS | (os.O_CREAT | os.O_TRUNC if create else 0)
        super().__init__(OPEN_FILES, path, flags, _REOPEN_FLAGS, open_now=create)

    # -- writes --------------------------------------------------------------------------------
    def append(self, data: bytes | bytearray | memoryview, position: int) -> None:
        """Write whole batches at the end of the file, which is `position` bytes long."""
        with self as fd:
            written = os.write(fd, data)
            if written != len(data):
                self._write_rest(fd, data, written, position)

    def _write_rest(
        self, fd: int, data: bytes | bytearray | memoryview, written: int, position: int
    ) -> None:
        view = memoryview(data)
        try:
            while written < len(view):
                written += os.write(fd, view[written:])
        except OSError:
            # Leave no torn batch behind the log's end offset.
            try:
                os.ftruncate(fd, position)
            except OSError:
                pass
            raise

    def truncate_to(self, position: int) -> None:
        with self as fd:
            os.ftruncate(fd, position)

    def sync(self) -> None:
        """fsync the data (not the metadata a read does not need)."""
        with self as fd:
            _datasync(fd)

    # -- positional reads ----------------------------------------------------------------------
    def file_size(self) -> int:
        with self as fd:
            return os.fstat(fd).st_size

    def read(self, position: int, size: int) -> bytes:
        with self as fd:
            return pread_exact(fd, size, position)

    def batch_length_at(self, position: int) -> int:
        """The whole size (length field plus LOG_OVERHEAD) of the batch at `position`."""
        with self as fd:
            return BATCH_LENGTH.unpack(os.pread(fd, 4, position + 8))[0] + LOG_OVERHEAD

    def base_offset_and_length_at(self, position: int) -> tuple[int, int]:
        """(base offset, length field) of the batch at `position`."""
        with self as fd:
            return _BASE_AND_LENGTH.unpack(os.pread(fd, 12, position))

    def read_batch_at(self, position: int) -> tuple[int, bytes]:
        """(base offset, bytes) of the batch at `position`."""
        with self as fd:
            base, length = _BASE_AND_LENGTH.unpack(os.pread(fd, 12, position))
            return base, pread_exact(fd, length + LOG_OVERHEAD, position)

    def first_batch_max_timestamp(self) -> int | None:
        with self as fd:
            head = os.pread(fd, MAX_TIMESTAMP_AT + 8, 0)
        if len(head) < MAX_TIMESTAMP_AT + 8:
            return None
        return MAX_TIMESTAMP.unpack_from(head, MAX_TIMESTAMP_AT)[0]

    def scan_headers(
        self, start: int, end: int, chunk: int = _SCAN_CHUNK
    ) -> Iterator[tuple[int, int, int, int, int]]:
        """(position, base offset, size, last offset, max timestamp) of the batches in
        [start, end); raises CorruptRecordError on a header that does not parse."""
        with self as fd:
            yield from self._scan_headers(fd, start, end, chunk)

    @staticmethod
    def _scan_headers(
        fd: int, start: int, end: int, chunk: int
    ) -> Iterator[tuple[int, int, int, int, int]]:
        buffer = b""
        buffer_start = start
        pos = start
        while pos < end:
            rel = pos - buffer_start
            if rel + SCAN_HEADER.size > len(buffer):
                buffer = os.pread(fd, max(chunk, SCAN_HEADER.size), pos)
                buffer_start = pos
                rel = 0
                if len(buffer) < SCAN_HEADER.size:
                    raise CorruptRecordError(f"torn batch header at position {pos}")
            base, length, delta, max_ts = SCAN_HEADER.unpack_from(buffer, rel)
            size = length + LOG_OVERHEAD
            if length < MIN_BATCH_LENGTH or pos + size > end:
                raise CorruptRecordError(f"bad batch length {length} at position {pos}")
            yield pos, base, size, base + delta, max_ts
            pos += size

    def iter_batches(self, start: int, end: int) -> Iterator[tuple[BatchHeader, bytes]]:
        """Each batch from `start` (a batch position) to `end`."""
        with self as fd:
            yield from self._iter_batches(fd, start, end)

    @staticmethod
    def _iter_batches(fd: int, start: int, end: int) -> Iterator[tuple[BatchHeader, bytes]]:
        pos = start
        while pos < end:
            buffer = pread_exact(fd, min(BULK_CHUNK, end - pos), pos)
            used = 0
            while used + HEADER_SIZE <= len(buffer):
                header = read_batch_header(buffer, used)
                if used + header.size > len(buffer):
                    break
                yield header, buffer[used : used + header.size]
                used += header.size
            if used == 0:  # one batch larger than the chunk
                header = read_batch_header(buffer, 0)
                if pos + header.size > end:
                    raise CorruptRecordError(f"batch at {pos} extends past the segment end")
                yield header, pread_exact(fd, header.size, pos)
                used = header.size
            pos += used

    # -- searches (Kafka's searchForOffsetWithSize, searchForTimestamp) --------------------------
    def search_for_offset(self, start: int, offset: int, size: int) -> int:
        """Position of the first batch from `start` whose last offset is >= `offset`; `size` if
        there is none or the headers stop parsing."""
        try:
            for pos, _, _, last, _ in self.scan_headers(start, size):
                if last >= offset:
                    return pos
        except CorruptRecordError:
            pass
        return size

    def search_for_timestamp(
        self, start: int, size: int, timestamp: int, starting_offset: int
    ) -> tuple[int, bytes] | None:
        """The first batch from `start` holding offsets >= `starting_offset` whose max timestamp
        is >= `timestamp`, as (base offset, bytes)."""
        for pos, base, batch_size, last, max_ts in self.scan_headers(start, size):
            if last >= starting_offset and max_ts >= timestamp:
                return base, self.read(pos, batch_size)
        return None

    def last_boundary_within(self, start: int, limit: int, size: int) -> int:
        """The end of the last whole batch from `start` (a batch position) that ends by `limit`;
        `start` if none fits."""
        pos = start
        try:
            for batch_pos, _, batch_size, _, _ in self.scan_headers(pos, size):
                if batch_pos + batch_size > limit:
                    return batch_pos
                pos = batch_pos + batch_size
        except CorruptRecordError:
            pass
        return pos

    def next_offset_after(self, start: int, end: int, default: int) -> int:
        """One past the last offset of the batches in [start, end) (`default` if none)."""
        for _, _, _, last, _ in self.scan_headers(start, end):
            default = last + 1
        return default
