"""A partition's log: the segments of one `<topic>-<partition>/` directory.

Thread model: `append`, truncation, retention and config changes run on the event-loop thread.
`flush` may run on a worker thread concurrently with `append` (it claims only the end offset read
before syncing) and is serialised by a lock, which truncation, `close` and `delete` also take.
Reads (`read`, `iter_batches`, timestamp lookups) may run on any thread: they work from a snapshot
of the segment list and end offset, and a segment dropped meanwhile keeps its descriptor open until
the last reader lets go of it.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path

from rafka.protocol.records import LOG_OVERHEAD, BatchHeader
from rafka.storage.config import LogConfig
from rafka.storage.files import (
    delete_directory,
    fsync_dir,
    read_offset_mark,
    write_offset_mark,
)
from rafka.storage.index import MAX_RELATIVE_OFFSET
from rafka.storage.leader_epoch import LeaderEpochCache
from rafka.storage.log_loader import load_segments
from rafka.storage.segment import LogSegment
from rafka.storage.segment_swap import swap_in

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">i")
_BASE_LENGTH_EPOCH = struct.Struct(">qii")
# The end offset of the last completed fsync, rewritten after each one: recovery compares it
# with what it finds to notice that storage lost data it had acknowledged as durable.
DURABLE_END_FILE = "durable-end-offset"


class OffsetOutOfRangeError(ValueError):
    """The offset is below the log start offset or beyond the log end offset."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(f"offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class PartitionLog:
    """Use `PartitionLog.open`."""

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        segments: list[LogSegment],
        epochs: LeaderEpochCache,
    ) -> None:
        self.directory = directory
        self.config = config
        # (base offsets, segments), replaced whole so readers on other threads see a consistent
        # pair.
        self._view: tuple[list[int], list[LogSegment]] = (
            [segment.base_offset for segment in segments],
            segments,
        )
        self._active = segments[-1]
        self._log_start_offset = segments[0].base_offset
        self._log_end_offset = self._active.next_offset
        self._recovery_point = self._log_end_offset
        self._durable_mark = -1  # the offset last written to DURABLE_END_FILE
        # How far this log was fsynced before the last stop, when recovery found less: the
        # replica must not vote as if it still held that range (0: nothing lost).
        self.lost_end_offset = 0
        self._epochs = epochs
        self._flush_lock = threading.Lock()
        self._flush_error: OSError | None = None
        self._dir_dirty = False
        self._closed = False
        # Truncations so far: a copy of the directory (a move between log dirs) that saw one
        # while it ran copies the segments again rather than their tails.
        self.truncations = 0

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        *,
        recovery_point: int = 0,
        clean_shutdown: bool = False,
        now_ms: int,
        log_start_offset: int = 0,
    ) -> PartitionLog:
        """Load (and after an unclean shutdown, recover) the log in `directory`, creating it if
        needed. Segments from the one holding `recovery_point` on are CRC-scanned; the log is cut
        at the first bad batch and later segments are deleted. `log_start_offset` is the value
        from the log-start-offset checkpoint (raised to the first segment's base)."""
        try:  # one system call for the usual case, where it exists (mkdir's exist_ok: three)
            os.mkdir(directory)
        except FileExistsError:
            pass
        except FileNotFoundError:
            directory.mkdir(parents=True, exist_ok=True)
        durable_mark = read_offset_mark(directory / DURABLE_END_FILE)
        loaded = load_segments(
            directory, config, recovery_point=recovery_point, clean_shutdown=clean_shutdown
        )
        epochs = loaded.epochs
        if not loaded.segments:
            start = max(log_start_offset, 0)
            segment = LogSegment.create(directory, start, config, now_ms)
            instance = cls(directory, config, [segment], epochs)
            instance._dir_dirty = True
            epochs.clear()
            if durable_mark is not None:  # segments gone but not the marker: all was lost
                instance._note_lost_data(durable_mark)
            return instance

        instance = cls(directory, config, loaded.segments, epochs)
        instance._dir_dirty = loaded.needs_dir_sync
        instance._log_start_offset = max(log_start_offset, loaded.segments[0].base_offset)
        if instance._log_start_offset > instance._log_end_offset:
            instance._truncate_fully_locked(instance._log_start_offset, now_ms)
        end = instance._log_end_offset
        epochs.truncate_from_end(end)
        epochs.truncate_from_start(instance._log_start_offset)
        instance._recovery_point = end if clean_shutdown else min(recovery_point, end)
        instance._durable_mark = durable_mark if durable_mark is not None else -1
        # The marker is exact; the recovery-point checkpoint (periodic, not lowered on disk
        # by a truncation) only stands in for logs written before the marker existed.
        instance._note_lost_data(recovery_point if durable_mark is None else durable_mark)
        return instance

    def _note_lost_data(self, durable_before: int) -> None:
        if durable_before > self._log_end_offset:
            self.lost_end_offset = durable_before
            log.error(
                "%s: the log ends at %d but had been fsynced up to %d: storage lost data",
                self.directory,
                self._log_end_offset,
                durable_before,
            )

    # -- properties ----------------------------------------------------------------------------
    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        """The offset the next appended record gets."""
        return self._log_end_offset

    @property
    def recovery_point(self) -> int:
        """Every offset below it is fsynced."""
        return self._recovery_point

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._view[1])

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        return tuple(self._view[1])

    @property
    def active_segment(self) -> LogSegment:
        return self._active

    @property
    def leader_epochs(self) -> LeaderEpochCache:
        return self._epochs

    # -- append --------------------------------------------------------------------------------
    def append(
        self,
        data: bytes | bytearray | memoryview,
        first_offset: int,
        last_offset: int,
        max_timestamp: int,
        offset_of_max_timestamp: int,
        leader_epoch: int,
        now_ms: int,
    ) -> int:
        """Append whole batches already carrying their offsets (and partitionLeaderEpoch).

        `offset_of_max_timestamp` should be the last offset of the batch holding `max_timestamp`
        (Kafka's convention, which kafka-dump-log checks), and `leader_epoch` the epoch of the last
        batch. Rolls to a new segment first when Kafka would. No fsync. Returns the file position
        of the first byte.
        """
        if first_offset != self._log_end_offset:
            raise ValueError(
                f"append at offset {first_offset}, expected log end offset {self._log_end_offset}"
            )
        if last_offset < first_offset or last_offset - first_offset > MAX_RELATIVE_OFFSET:
            raise ValueError(f"invalid offset range {first_offset}..{last_offset}")
        size = len(data)
        if size < LOG_OVERHEAD:
            raise ValueError("no record batch to append")
        segment = self._active
        if segment.should_roll(self.config, size, last_offset, max_timestamp, now_ms):
            segment = self._roll(now_ms)
        position = segment.append(data, last_offset, max_timestamp, offset_of_max_timestamp)
        if leader_epoch > self._epochs.latest_epoch:
            self._assign_epochs(data, first_offset, leader_epoch)
        self._log_end_offset = last_offset + 1
        return position

    def _assign_epochs(
        self, data: bytes | bytearray | memoryview, first_offset: int, leader_epoch: int
    ) -> None:
        if _LENGTH.unpack_from(data, 8)[0] + LOG_OVERHEAD == len(data):
            self._epochs.assign(leader_epoch, first_offset)
            return
        # Several batches (a follower's append) may span epoch changes.
        pos = 0
        while pos + _BASE_LENGTH_EPOCH.size <= len(data):
            base, length, epoch = _BASE_LENGTH_EPOCH.unpack_from(data, pos)
            if epoch > self._epochs.latest_epoch:
                self._epochs.assign(epoch, base)
            pos += length + LOG_OVERHEAD

    def roll(self, now_ms: int) -> LogSegment:
        """Start a new segment at the log end offset (no-op if the active one is empty)."""
        if self._active.size == 0:
            return self._active
        return self._roll(now_ms)

    def _roll(self, now_ms: int) -> LogSegment:
        self._active.seal()
        segment = LogSegment.create(self.directory, self._log_end_offset, self.config, now_ms)
        bases, segments = self._view
        self._view = ([*bases, segment.base_offset], [*segments, segment])
        self._active = segment
        self._dir_dirty = True
        return segment

    # -- durability ----------------------------------------------------------------------------
    def flush(self) -> int:
        """fsync everything appended so far; returns the end offset the sync covers. Safe on a
        worker thread while `append` runs on the event loop. OSError propagates (fatal for the
        partition), and every later flush fails too."""
        with self._flush_lock:
            if self._flush_error is not None:
                # After a failed fsync the kernel may have dropped the dirty pages and cleared
                # the error: a later fsync "succeeding" proves nothing.
                raise OSError(
                    self._flush_error.errno, f"log flush failed earlier: {self._flush_error}"
                )
            end = self._log_end_offset
            try:
                for segment in self._view[1]:
                    if segment.needs_sync:
                        segment.flush()
                if self._dir_dirty:
                    self._dir_dirty = False
                    fsync_dir(self.directory)
                self._epochs.flush()
                if end != self._durable_mark:
                    write_offset_mark(self.directory / DURABLE_END_FILE, end)
                    self._durable_mark = end
            except OSError as exc:
                self._flush_error = exc
                raise
            if end > self._recovery_point:
                self._recovery_point = end
            return end

    def synced_to(self, end: int) -> None:
        """A syncfs made the log durable up to `end` (the log end when it began): recovery
        after a crash starts from there. On the event loop; a flush racing on a worker can only
        move the point further, to its own later end."""
        if end > self._recovery_point:
            self._recovery_point = end

    def _lower_durable_mark(self, offset: int) -> None:
        """Before data is removed from the end: a crash in between must not look like a loss."""
        if self._durable_mark > offset:
            write_offset_mark(self.directory / DURABLE_END_FILE, offset)
            self._durable_mark = offset

    # -- reads ---------------------------------------------------------------------------------
    def read(
        self,
        offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_batch: bool = True,
    ) -> bytes:
        """Whole batches from the one containing `offset`, none whose base offset is >=
        `max_offset` (exclusive bound, e.g. the high watermark), within `max_bytes` except that
        with `min_one_batch` the first batch comes whole even if larger (KIP-74). Crosses
        segments. b"" at the end; OffsetOutOfRangeError outside [log start, log end]."""
        end = self._log_end_offset
        bases, segments = self._view
        start = self._log_start_offset
        if offset < start or offset > end:
            raise OffsetOutOfRangeError(offset, start, end)
        if max_offset is None or max_offset > end:
            max_offset = end
        if offset >= max_offset:
            return b""
        index = max(bisect_right(bases, offset) - 1, 0)
        chunks: list[bytes] = []
        remaining = max_bytes
        for segment in segments[index:]:
            if segment.base_offset >= max_offset:
                break
            data, reached_end = segment.read(
                offset, remaining, max_offset, min_one_batch and not chunks
            )
            if data:
                chunks.append(data)
                remaining -= len(data)
            if not reached_end or remaining <= 0:
                break
            offset = segment.next_offset
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def iter_batches(self, from_offset: int) -> Iterator[tuple[BatchHeader, bytes]]:
        """Every batch from the one containing `from_offset` (raised to the log start) up to the
        log end offset at the time of the call."""
        end = self._log_end_offset
        bases, segments = self._view
        from_offset = max(from_offset, self._log_start_offset)
        if from_offset >= end:
            return
        index = max(bisect_right(bases, from_offset) - 1, 0)
        for i, segment in enumerate(segments[index:]):
            position = segment.translate_offset(from_offset) if i == 0 else 0
            size = segment.size
            for header, data in segment.iter_batches(position, size):
                if header.base_offset >= end:
                    return
                yield header, data

    def first_batch_with_timestamp_at_least(self, timestamp: int) -> tuple[int, bytes] | None:
        """(base offset, bytes) of the first batch whose max timestamp is >= `timestamp`, for
        ListOffsets by time; the caller picks the record inside."""
        start = self._log_start_offset
        bases, segments = self._view
        end = self._log_end_offset
        index = max(bisect_right(bases, start) - 1, 0)
        for segment in segments[index:]:
            if segment.base_offset >= end:
                break
            if segment.max_timestamp >= timestamp:
                found = segment.find_batch_by_timestamp(timestamp, start)
                if found is not None and found[0] < end:
                    return found
        return None

    def max_timestamp_batch(self) -> tuple[int, bytes] | None:
        """(base offset, bytes) of the batch holding the largest timestamp in the log."""
        best: LogSegment | None = None
        best_timestamp = -1
        end = self._log_end_offset
        for segment in self._view[1]:
            timestamp = segment.max_timestamp
            if timestamp > best_timestamp and segment.base_offset < end:
                best, best_timestamp = segment, timestamp
        if best is None:
            return None
        _, offset = best.max_timestamp_and_offset
        position = best.translate_offset(offset)
        if position >= best.size:
            return None
        return best.read_batch_at(position)

    # -- truncation ----------------------------------------------------------------------------
    def truncate_to(self, offset: int, now_ms: int | None = None) -> bool:
        """Remove every batch holding an offset >= `offset` (Raft divergence). Returns whether
        anything was removed. A batch straddling `offset` is removed whole."""
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        with self._flush_lock:
            if offset >= self._log_end_offset:
                return False
            bases, segments = self._view
            if offset < bases[0]:
                self._truncate_fully_locked(offset, now_ms)
                return True
            self._lower_durable_mark(offset)
            self.truncations += 1
            index = bisect_right(bases, offset) - 1
            keep = segments[index]
            doomed = segments[index + 1 :]
            new_end = keep.truncate_to(offset, now_ms)
            self._view = (bases[: index + 1], segments[: index + 1])
            self._active = keep
            for segment in doomed:
                segment.delete()
            self._log_end_offset = new_end
            self._recovery_point = min(self._recovery_point, new_end)
            self._log_start_offset = min(self._log_start_offset, new_end)
            self._epochs.truncate_from_end(new_end)
            self._dir_dirty = True
            return True

    def truncate_fully_and_start_at(self, offset: int, now_ms: int | None = None) -> None:
        """Delete everything; the log restarts empty at `offset` (start = end = offset)."""
        if offset < 0:
            raise ValueError(f"cannot start a log at negative offset {offset}")
        with self._flush_lock:
            self._truncate_fully_locked(offset, now_ms)

    def _truncate_fully_locked(self, offset: int, now_ms: int | None) -> None:
        self._lower_durable_mark(offset)
        self.truncations += 1
        for segment in self._view[1]:
            segment.delete()
        segment = LogSegment.create(
            self.directory, offset, self.config, now_ms if now_ms is not None else _now_ms()
        )
        self._view = ([offset], [segment])
        self._active = segment
        self._log_start_offset = self._log_end_offset = self._recovery_point = offset
        self._epochs.clear()
        # Written now, as Kafka does: stale entries below `offset` would otherwise survive a crash.
        self._epochs.flush(force=True)
        self._dir_dirty = True

    # -- retention -----------------------------------------------------------------------------
    def apply_retention(self, now_ms: int, max_deletable_offset: int) -> int:
        """Delete the oldest segments that lie wholly below `max_deletable_offset` (the high
        watermark) and are past the log start offset, older than retention.ms (by their largest
        timestamp) or beyond retention.bytes, as Kafka's cleaner does. An active segment past
        retention is rolled so the next run can delete it. Returns the bytes deleted."""
        config = self.config
        bases, segments = self._view
        end = self._log_end_offset
        delete = config.delete_enabled
        excess = self.size_bytes - config.retention_bytes if config.retention_bytes >= 0 else None
        count = 0
        roll_active = False
        for i, segment in enumerate(segments):
            is_active = i == len(segments) - 1
            upper = end if is_active else bases[i + 1]
            if upper > max_deletable_offset or (is_active and segment.size == 0):
                break
            breached = not is_active and bases[i + 1] <= self._log_start_offset
            if delete and not breached:
                if config.retention_ms >= 0:
                    breached = now_ms - segment.largest_timestamp > config.retention_ms
                if not breached and excess is not None and excess - segment.size >= 0:
                    breached = True
            if not breached:
                break
            if is_active:
                roll_active = True
                break
            if excess is not None:
                excess -= segment.size
            count += 1
        if roll_active:
            self._roll(now_ms)
        if not count:
            return 0
        return self._delete_oldest(count)

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to `offset` and delete the segments wholly
        below it. Returns the bytes deleted."""
        if offset > self._log_end_offset:
            raise OffsetOutOfRangeError(offset, self._log_start_offset, self._log_end_offset)
        if offset <= self._log_start_offset:
            return 0
        self._log_start_offset = offset
        self._epochs.truncate_from_start(offset)
        bases = self._view[0]
        count = 0
        while count + 1 < len(bases) and bases[count + 1] <= offset:
            count += 1
        return self._delete_oldest(count) if count else 0

    def _delete_oldest(self, count: int) -> int:
        bases, segments = self._view
        doomed = segments[:count]
        self._view = (bases[count:], segments[count:])
        deleted = 0
        for segment in doomed:
            deleted += segment.size
            segment.delete()
        new_start = bases[count]
        if new_start > self._log_start_offset:
            self._log_start_offset = new_start
            self._epochs.truncate_from_start(new_start)
        self._dir_dirty = True
        return deleted

    # -- compaction ----------------------------------------------------------------------------
    def replace_segments(self, old: list[LogSegment], cleaned_dir: Path) -> bool:
        """Swap in the cleaned copy of `old` (consecutive sealed segments), whose files are
        complete and fsynced in `cleaned_dir` under old[0]'s base offset (see storage.cleaner).

        Crash-safe: the new files are renamed in with a `.swap` suffix, the old segments are
        deleted, then the suffix is dropped; `open` completes an interrupted swap. Readers
        holding the old segments keep reading the old files. Returns False, changing nothing,
        if `old` is no longer part of the log (retention or truncation ran meanwhile)."""
        with self._flush_lock:
            bases, segments = self._view
            start = next((i for i, s in enumerate(segments) if s is old[0]), -1)
            stop = start + len(old)
            if start < 0 or stop >= len(segments):  # gone, or would include the active one
                return False
            if any(a is not b for a, b in zip(segments[start:stop], old, strict=True)):
                return False
            base = old[0].base_offset
            swap_in(self.directory, cleaned_dir, base, old)
            new = LogSegment.open(
                self.directory, base, self.config, active=False, next_offset_bound=bases[stop]
            )
            self._view = (
                [*bases[:start], base, *bases[stop:]],
                [*segments[:start], new, *segments[stop:]],
            )
            return True

    # -- configuration and lifetime ------------------------------------------------------------
    def update_config(self, config: LogConfig) -> None:
        self.config = config
        self._active.update_config(config)

    def close(self) -> None:
        """Flush everything (index files included) and close the files; the files are closed
        even if the flush fails (the error propagates)."""
        if self._closed:
            return
        try:
            self._active.add_final_time_index_entry()
            self.flush()
            with self._flush_lock:
                self._active.flush(sync_indexes=True)
        finally:
            with self._flush_lock:
                for segment in self._view[1]:
                    segment.close()
                self._closed = True

    def write_files_for_copy(self) -> None:
        """Bring the index files (written, not fsynced) and the leader-epoch checkpoint (an
        atomic, fsynced replacement when it changed) up to date with memory: a copy of the
        directory taken now opens as after a clean shutdown."""
        with self._flush_lock:
            for segment in self._view[1]:
                segment.write_index_files()
            self._epochs.flush()

    def release(self) -> None:
        """Close the files without flushing them: the log moved to another directory, whose
        copy is durable (a move between log dirs)."""
        with self._flush_lock:
            for segment in self._view[1]:
                segment.close()
            self._closed = True

    def delete(self) -> None:
        """Close and remove the partition directory."""
        with self._flush_lock:
            for segment in self._view[1]:
                segment.close()
            self._closed = True
        delete_directory(self.directory)

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.directory.name}, start={self._log_start_offset}, "
            f"end={self._log_end_offset}, segments={len(self._view[1])})"
        )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
