"""One log segment: `<base offset>.log` holding record batches exactly as on the wire, with its
sparse `.index` and `.timeindex` (Kafka's on-disk format). The segment keeps the offsets, timestamps
and index entries in step with the file; reading the file by position is `file_records`, and
rebuilding the indexes from the batches on recovery is `segment_recovery`.

Thread model: appends, truncation and sealing run on one thread (the event loop); reads and
lookups may run on any thread; `flush` runs under the owning log's flush lock. State read by other
threads is published in single attribute assignments (`_end` is a (size, next offset) pair).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rafka.protocol.records import HEADER_SIZE, LOG_OVERHEAD, BatchHeader, CorruptRecordError
from rafka.storage.config import LogConfig
from rafka.storage.file_records import (
    BATCH_LENGTH,
    MAX_TIMESTAMP,
    MAX_TIMESTAMP_AT,
    MIN_BATCH_LENGTH,
    SCAN_HEADER,
    FileRecords,
)
from rafka.storage.index import MAX_RELATIVE_OFFSET, CorruptIndexError, OffsetIndex, TimeIndex
from rafka.storage.segment_recovery import scan_and_index

if TYPE_CHECKING:
    from rafka.storage.leader_epoch import LeaderEpochCache

log = logging.getLogger(__name__)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
DELETED_SUFFIX = ".deleted"
SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)
_MAX_HINTS = 32


def segment_file_name(base_offset: int, suffix: str = LOG_SUFFIX) -> str:
    return f"{base_offset:020d}{suffix}"


def parse_segment_file_name(name: str) -> int | None:
    """The base offset of a `<20 digits>.log` file name, else None."""
    stem, dot, suffix = name.partition(".")
    if dot and "." + suffix == LOG_SUFFIX and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class LogSegment:
    """A `.log` file with its indexes. Create with `create` (new) or `open` (existing)."""

    def __init__(self, directory: Path, base_offset: int, config: LogConfig) -> None:
        self.directory = directory
        self.base_offset = base_offset
        # File names as strings (see _IndexFile): one set per segment, tens of thousands of them.
        folder = os.fspath(directory)
        self._log_name = os.path.join(folder, segment_file_name(base_offset, LOG_SUFFIX))
        self.offset_index = OffsetIndex(
            os.path.join(folder, segment_file_name(base_offset, INDEX_SUFFIX)),
            base_offset,
            config.segment_index_bytes,
        )
        self.time_index = TimeIndex(
            os.path.join(folder, segment_file_name(base_offset, TIME_INDEX_SUFFIX)),
            base_offset,
            config.segment_index_bytes,
        )
        self._index_interval = config.index_interval_bytes
        self._compacted = config.compact_enabled
        self._log: FileRecords = None  # type: ignore[assignment]  # set by create/open
        self._end = (0, base_offset)  # (size in bytes, next offset)
        self._max_ts: int | None = -1  # None: not loaded yet (sealed segment opened lazily)
        self._offset_of_max_ts = base_offset
        self._rolling_ts: int | None = None  # max timestamp of the first batch
        self.created_ms = 0
        self._roll_jitter_ms = config.random_segment_jitter()
        self._bytes_since_index = 0
        self.index_full = False
        # next offset -> position of the batch after an append: exact batch boundaries.
        self._hints: dict[int, int] = {}
        self._write_seq = 0
        self._synced_seq = 0
        self._indexes_ready = False
        self._load_lock = threading.Lock()
        self.sealed = False
        self.deleted = False
        self.needs_recovery = False
        # Active after a clean shutdown: the next offset came from the checkpoint, and the rest
        # of the tail state (indexes, max timestamp, bytes since the last index entry) is read
        # at first use, so a start reads no data (`_ensure_tail_state`).
        self._tail_pending = False

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def create(
        cls, directory: Path, base_offset: int, config: LogConfig, now_ms: int
    ) -> LogSegment:
        """A new empty segment; stale files of the same name are truncated."""
        segment = cls(directory, base_offset, config)
        segment._log = FileRecords(segment._log_name, create=True)
        for index in (segment.offset_index, segment.time_index):
            index.start_empty()
            index.create_file(truncate=True)
        segment._indexes_ready = True
        segment.created_ms = now_ms
        segment._write_seq = 1  # new directory entries and files to sync
        return segment

    @classmethod
    def open(
        cls,
        directory: Path,
        base_offset: int,
        config: LogConfig,
        *,
        active: bool,
        next_offset_bound: int | None = None,
        trusted_next_offset: int | None = None,
    ) -> LogSegment:
        """An existing segment. The active one is loaded now (indexes, next offset, max timestamp)
        unless `trusted_next_offset` is given (a clean shutdown's checkpoint: then at first
        use); a sealed one lazily, with `next_offset_bound` (the next segment's base) as its
        end offset. Sets `needs_recovery` when a cheap sanity check fails."""
        segment = cls(directory, base_offset, config)
        # No descriptor yet: a sealed segment's file is opened when first read.
        segment._log = FileRecords(segment._log_name)
        stat = os.stat(segment._log_name)
        size = stat.st_size
        segment.created_ms = stat.st_mtime_ns // 1_000_000
        segment._end = (size, next_offset_bound if next_offset_bound is not None else base_offset)
        if not (segment.offset_index.file_size_ok() and segment.time_index.file_size_ok()):
            segment.needs_recovery = True
            return segment
        if (
            active
            and trusted_next_offset is not None
            and (size == 0) == (trusted_next_offset == base_offset)
            and trusted_next_offset >= base_offset
        ):
            segment._end = (size, trusted_next_offset)
            segment._max_ts = None
            segment._tail_pending = True
        elif active:
            try:
                segment._load_active_state()
            except (CorruptIndexError, CorruptRecordError) as exc:
                log.warning("segment %s needs recovery: %s", segment.log_path, exc)
                segment.needs_recovery = True
        else:
            segment.sealed = True
            segment._max_ts = None
        return segment

    def _load_active_state(self) -> None:
        size = self._end[0]
        self.offset_index.load(size)
        self.time_index.load(size)
        self._indexes_ready = True
        self.index_full = self.offset_index.is_full or self.time_index.is_full
        self._max_ts, self._offset_of_max_ts = self.time_index.last_entry()
        self._refresh_tail_state(size)

    def _ensure_tail_state(self) -> None:
        """Load what appends and roll checks need of a lazily opened active segment."""
        if not self._tail_pending:
            return
        self._tail_pending = False
        self._ensure_indexes()
        size = self._end[0]
        _, last_entry_position = self.offset_index.last_entry()
        self._bytes_since_index = size - last_entry_position
        self.index_full = self.offset_index.is_full or self.time_index.is_full
        self._rolling_ts = self._log.first_batch_max_timestamp() if size else None

    def _refresh_tail_state(self, size: int) -> None:
        """Derive next offset, max timestamp and bytes since the last index entry by scanning from
        the last index entry to `size`; raise CorruptRecordError if the tail does not parse."""
        _, last_entry_position = self.offset_index.last_entry()
        next_offset = self.base_offset
        max_ts = self._max_ts if self._max_ts is not None else -1
        offset_of_max = self._offset_of_max_ts
        for _, base, _, last, batch_max_ts in self._log.scan_headers(last_entry_position, size):
            next_offset = last + 1
            if base < self.base_offset:
                raise CorruptRecordError(f"batch offset {base} below segment base")
            if batch_max_ts > max_ts:
                max_ts, offset_of_max = batch_max_ts, last
        self._max_ts, self._offset_of_max_ts = max_ts, offset_of_max
        self._bytes_since_index = size - last_entry_position
        self._rolling_ts = self._log.first_batch_max_timestamp() if size else None
        self._end = (size, next_offset)

    def _ensure_indexes(self) -> None:
        """Load a sealed segment's indexes on first use; rebuild them if they fail the check."""
        if self._indexes_ready:
            return
        with self._load_lock:
            if self._indexes_ready:
                return
            size = self._end[0]
            try:
                self.offset_index.load(size)
                self.time_index.load(size)
            except CorruptIndexError as exc:
                log.warning("rebuilding indexes of %s: %s", self.log_path, exc)
                self._scan_and_index(validate=False, epochs=None, size=size)
                self._write_seq += 1
            if self._max_ts is None:
                self._max_ts, self._offset_of_max_ts = self.time_index.last_entry()
            self._indexes_ready = True

    # -- properties ----------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return Path(self._log_name)

    @property
    def size(self) -> int:
        return self._end[0]

    @property
    def next_offset(self) -> int:
        """One past the last offset (for a sealed segment opened lazily: the next segment's
        base, an upper bound)."""
        return self._end[1]

    @property
    def needs_sync(self) -> bool:
        return self._write_seq != self._synced_seq

    @property
    def max_timestamp_and_offset(self) -> tuple[int, int]:
        """The largest batch max timestamp in the segment and the offset recorded with it
        ((-1, base) if none)."""
        if self._max_ts is None:
            if self._indexes_ready:
                self._max_ts, self._offset_of_max_ts = self.time_index.last_entry()
            else:
                timestamp, offset = self.time_index.last_entry_from_file()
                if not self.base_offset <= offset < max(self._end[1], self.base_offset + 1):
                    self._ensure_indexes()  # implausible entry: load (and rebuild) properly
                    return self.max_timestamp_and_offset
                self._max_ts, self._offset_of_max_ts = timestamp, offset
        return self._max_ts, self._offset_of_max_ts

    @property
    def max_timestamp(self) -> int:
        return self.max_timestamp_and_offset[0]

    @property
    def largest_timestamp(self) -> int:
        """For time retention: the max timestamp, or the file's mtime when no batch has one."""
        timestamp = self.max_timestamp
        if timestamp >= 0:
            return timestamp
        try:
            return os.stat(self._log_name).st_mtime_ns // 1_000_000
        except FileNotFoundError:
            return self.created_ms

    def update_config(self, config: LogConfig) -> None:
        self._index_interval = config.index_interval_bytes
        for index in (self.offset_index, self.time_index):
            index.max_entries = max(config.segment_index_bytes // index.entry_size, 1)
        if self._indexes_ready:
            self.index_full = self.offset_index.is_full or self.time_index.is_full

    # -- append --------------------------------------------------------------------------------
    def should_roll(
        self, config: LogConfig, size: int, last_offset: int, max_timestamp: int, now_ms: int
    ) -> bool:
        """Kafka's LogSegment.shouldRoll for an append of `size` bytes."""
        self._ensure_tail_state()
        current = self._end[0]
        if current == 0:
            return False
        if current > config.segment_bytes - size or self.index_full:
            return True
        if last_offset - self.base_offset > MAX_RELATIVE_OFFSET:
            return True
        rolling_ts = self._rolling_ts
        if rolling_ts is not None and rolling_ts >= 0:
            waited = max_timestamp - rolling_ts
        else:
            waited = now_ms - self.created_ms
        return waited > config.segment_ms - self._roll_jitter_ms

    def append(
        self,
        data: bytes | bytearray | memoryview,
        last_offset: int,
        max_timestamp: int,
        offset_of_max_timestamp: int,
    ) -> int:
        """Write whole batches at the end; returns the position of the first byte."""
        self._ensure_tail_state()
        position = self._end[0]
        size = len(data)
        self._log.append(data, position)
        if position == 0:
            self._rolling_ts = MAX_TIMESTAMP.unpack_from(data, MAX_TIMESTAMP_AT)[0]
        elif self._rolling_ts is None or self._rolling_ts < 0:
            # The first batch with a timestamp dates the segment for segment.ms (a Raft
            # leader-change batch, which opens many segments, carries none).
            self._rolling_ts = max_timestamp
        since = self._bytes_since_index
        # An index entry is due before a batch once more than the interval has been written.
        interval = self._index_interval
        if since + size - HEADER_SIZE <= interval:
            since += size
        elif BATCH_LENGTH.unpack_from(data, 8)[0] + LOG_OVERHEAD == size:  # a single batch
            if since > interval:
                max_ts = self._max_ts
                if max_timestamp > max_ts:  # type: ignore[operator]
                    self.time_index.maybe_append(max_timestamp, offset_of_max_timestamp)
                else:
                    self.time_index.maybe_append(max_ts, self._offset_of_max_ts)  # type: ignore[arg-type]
                self.offset_index.append(last_offset, position)
                self.index_full = self.offset_index.is_full or self.time_index.is_full
                since = 0
            since += size
        else:
            since = self._index_batches(data, position, since)
        self._bytes_since_index = since
        if max_timestamp > self._max_ts:  # type: ignore[operator]  # active: always loaded
            self._max_ts = max_timestamp
            self._offset_of_max_ts = offset_of_max_timestamp
        end = position + size
        next_offset = last_offset + 1
        self._end = (end, next_offset)
        hints = self._hints
        hints[next_offset] = end
        if len(hints) > _MAX_HINTS:
            del hints[next(iter(hints))]
        self._write_seq += 1
        return position

    def _index_batches(
        self, data: bytes | bytearray | memoryview, position: int, since: int
    ) -> int:
        """Walk the appended batches, adding index entries as Kafka does; returns the new count
        of bytes since the last entry."""
        interval = self._index_interval
        max_ts = self._max_ts if self._max_ts is not None else -1
        offset_of_max = self._offset_of_max_ts
        end = len(data)
        pos = 0
        while pos + SCAN_HEADER.size <= end:
            base, length, delta, batch_max_ts = SCAN_HEADER.unpack_from(data, pos)
            if length < MIN_BATCH_LENGTH:
                break
            last = base + delta
            if batch_max_ts > max_ts:
                max_ts, offset_of_max = batch_max_ts, last
            if since > interval:
                self.offset_index.append(last, position + pos)
                self.time_index.maybe_append(max_ts, offset_of_max)
                since = 0
                self.index_full = self.offset_index.is_full or self.time_index.is_full
            size = length + LOG_OVERHEAD
            since += size
            pos += size
        return since

    def seal(self) -> None:
        """The segment stops being active: record its max timestamp as the last time index entry
        (as Kafka does on roll) so it survives without rescanning."""
        self._ensure_tail_state()
        self._ensure_indexes()
        max_ts, offset = self.max_timestamp_and_offset
        self.time_index.maybe_append(max_ts, offset)
        self._hints = {}
        self.sealed = True
        self._write_seq += 1

    # -- lookups -------------------------------------------------------------------------------
    def translate_offset(self, offset: int) -> int:
        """Position of the batch containing `offset`: the first batch whose last offset is
        >= `offset`; the segment size if there is none (yet)."""
        hint = self._hints.get(offset)
        if hint is not None:
            return hint
        size = self._end[0]
        self._ensure_indexes()
        _, position = self.offset_index.lookup(offset)
        return self._log.search_for_offset(position, offset, size)

    def _start_of_batches_from(self, offset: int, size: int) -> int:
        """Position of the first batch whose base offset >= `offset` (or `size`)."""
        hint = self._hints.get(offset)
        if hint is not None:
            return hint
        position = self.translate_offset(offset)
        if position >= size:
            return size
        base, length = self._log.base_offset_and_length_at(position)
        return position if base >= offset else position + length + LOG_OVERHEAD

    def read(
        self, offset: int, max_bytes: int, max_offset: int, min_one_batch: bool
    ) -> tuple[bytes, bool]:
        """Whole batches from the one containing `offset`, none with base offset >= `max_offset`,
        at most `max_bytes` unless the first batch alone is larger and `min_one_batch` is set.
        Returns the bytes and whether the read reached the end of the segment."""
        records = self._log
        size, next_offset = self._end
        if offset >= next_offset:
            return b"", True
        start = self.translate_offset(offset)
        if start >= size:
            return b"", True
        limit = size
        if max_offset < next_offset:
            limit = self._start_of_batches_from(max_offset, size)
            if limit <= start:
                return b"", False
        wanted = limit - start
        if wanted > max_bytes:
            budget = max_bytes
            if min_one_batch:
                budget = max(budget, records.batch_length_at(start))
            if budget < wanted:
                cut = self._last_boundary_within(start, start + budget, size)
                if cut <= start:
                    return b"", False
                return records.read(start, cut - start), False
        return records.read(start, wanted), limit == size

    def _last_boundary_within(self, start: int, limit: int, size: int) -> int:
        """The end of the last whole batch that starts at or after `start` (a batch position) and
        ends by `limit`; `start` if none fits. Walks headers only from the last indexed batch
        boundary before `limit`, so the data itself is read once, by the caller."""
        self._ensure_indexes()
        pos = max(self.offset_index.floor_position(limit), start)
        return self._log.last_boundary_within(pos, limit, size)

    def read_batch_at(self, position: int) -> tuple[int, bytes]:
        """(base offset, bytes) of the batch at `position`."""
        return self._log.read_batch_at(position)

    def iter_batches(
        self, start: int, end: int | None = None
    ) -> Iterator[tuple[BatchHeader, bytes]]:
        """Each batch from `start` (a batch position) to `end` (default: the current size)."""
        yield from self._log.iter_batches(start, self._end[0] if end is None else end)

    def find_batch_by_timestamp(
        self, timestamp: int, starting_offset: int
    ) -> tuple[int, bytes] | None:
        """The first batch (at or after the one holding `starting_offset`) whose max timestamp is
        >= `timestamp`, as (base offset, bytes)."""
        size = self._end[0]
        self._ensure_indexes()
        _, indexed_offset = self.time_index.lookup(timestamp)
        _, position = self.offset_index.lookup(max(indexed_offset, starting_offset))
        return self._log.search_for_timestamp(position, size, timestamp, starting_offset)

    # -- recovery ------------------------------------------------------------------------------
    def recover(self, epochs: LeaderEpochCache | None = None) -> int:
        """Validate every batch from the start, truncate the file at the first invalid or torn
        one, rebuild both indexes and assign leader epochs found in the batches. Returns the
        number of bytes truncated. What counts as valid: see `segment_recovery`."""
        size = self._log.file_size()
        valid = self._scan_and_index(validate=True, epochs=epochs, size=size)
        truncated = size - valid
        if truncated:
            self._log.truncate_to(valid)
        self._rolling_ts = self._log.first_batch_max_timestamp() if valid else None
        self._indexes_ready = True
        self.needs_recovery = False
        self._write_seq += 1
        return truncated

    def _scan_and_index(self, validate: bool, epochs: LeaderEpochCache | None, size: int) -> int:
        """Rebuild the indexes (and end, max timestamp) from the batches in the file; returns the
        length of the valid prefix. With `validate`, CRCs and offset order are checked too."""
        scanned = scan_and_index(
            self._log,
            self.offset_index,
            self.time_index,
            base_offset=self.base_offset,
            index_interval=self._index_interval,
            compacted=self._compacted,
            validate=validate,
            epochs=epochs,
            size=size,
        )
        self._max_ts = scanned.max_timestamp
        self._offset_of_max_ts = scanned.offset_of_max_timestamp
        self._bytes_since_index = scanned.bytes_since_index
        self.index_full = self.offset_index.is_full or self.time_index.is_full
        self._hints = {}
        self._end = (scanned.valid_size, scanned.next_offset)
        return scanned.valid_size

    # -- truncation ----------------------------------------------------------------------------
    def truncate_to(self, offset: int, now_ms: int | None = None) -> int:
        """Remove every batch holding an offset >= `offset` (a batch straddling it goes whole).
        The segment becomes active again. Returns the new next offset: `offset`, the base of a
        removed straddling batch, or, when the first removed batch starts after `offset` (a gap),
        the end of the last batch kept: never an end offset above missing records."""
        self._ensure_tail_state()
        self._ensure_indexes()
        size, next_offset = self._end
        position = self.translate_offset(offset)
        if position < size:
            base, _ = self._log.base_offset_and_length_at(position)
            new_next = min(offset, base)
            if base > offset:
                new_next = self._end_of_batches_before(position)
            self._log.truncate_to(position)
        else:
            new_next = min(offset, next_offset)
            position = size
        self.offset_index.truncate_to(new_next)
        self.time_index.truncate_to(new_next)
        self._hints = {}
        self._max_ts, self._offset_of_max_ts = self.time_index.last_entry()
        self.sealed = False
        self._refresh_tail_state(position)
        self._end = (position, new_next)
        if position == 0:
            self.created_ms = now_ms if now_ms is not None else _now_ms()
        self.index_full = self.offset_index.is_full or self.time_index.is_full
        self._write_seq += 1
        return new_next

    def _end_of_batches_before(self, position: int) -> int:
        """The next offset after the last batch that ends at or before `position` (a batch
        boundary); the segment's base offset if there is none."""
        start = self.offset_index.floor_position(position - 1)
        return self._log.next_offset_after(start, position, self.base_offset)

    # -- durability and lifetime ---------------------------------------------------------------
    def flush(self, *, sync_indexes: bool = False) -> None:
        """fsync the data, then bring the index files up to date. Index files are fsynced only
        for sealed segments (an active segment is always recovered after a crash) or when asked;
        a sealed segment's index files are then closed for good."""
        sequence = self._write_seq
        if sequence == self._synced_seq and not sync_indexes:
            return
        if self.deleted:
            self._synced_seq = sequence
            return
        sealed = self.sealed
        self._log.sync()
        for index in (self.offset_index, self.time_index):
            index.write_pending(sync=sealed or sync_indexes)
            if sealed:
                index.close_file()
        self._synced_seq = sequence

    def write_index_files(self) -> None:
        """The index files as in memory, not fsynced (a copy of the directory follows)."""
        if self.deleted:
            return
        for index in (self.offset_index, self.time_index):
            index.write_pending(sync=False)

    def add_final_time_index_entry(self) -> None:
        """Kafka appends the max timestamp on close too, so a reopened segment knows it."""
        if self._indexes_ready:
            timestamp, offset = self.max_timestamp_and_offset
            if timestamp > self.time_index.last_entry()[0]:
                self.time_index.maybe_append(timestamp, offset)
                self._write_seq += 1

    def close(self) -> None:
        self._log.close()
        self.offset_index.close_file()
        self.time_index.close_file()

    def delete(self) -> None:
        """Remove the files (rename to `.deleted`, then unlink). Descriptors stay usable by
        readers still holding the segment and close when it is collected."""
        self.deleted = True
        # Readers and a flush still holding the segment keep the old files, not new ones that
        # take these names (a compaction swap).
        self._log.pin()
        self.offset_index.pin_file()
        self.time_index.pin_file()
        for path in (self._log_name, self.offset_index.file_name, self.time_index.file_name):
            doomed = path + DELETED_SUFFIX
            try:
                os.rename(path, doomed)
            except FileNotFoundError:
                continue
            try:
                os.unlink(doomed)
            except FileNotFoundError:
                pass

    def __repr__(self) -> str:
        size, next_offset = self._end
        return f"LogSegment(base={self.base_offset}, next={next_offset}, size={size})"
