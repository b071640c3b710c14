"""Log compaction: keep the latest record of every key, drop tombstones after their horizon.

As Kafka's log cleaner does:
- Only sealed segments wholly below the first uncleanable offset are touched: the active
  segment, anything at or above the high watermark and segments holding records younger than
  min.compaction.lag.ms are never rewritten.
- An offset map (key -> latest offset) is built from the dirty section (from the first dirty
  offset, where the previous pass stopped, to the uncleanable offset); the cleanable segments are
  then rewritten keeping a record only if no later record of its key exists. The clean section
  was deduplicated by earlier passes, so keys absent from the map are kept.
- Offsets never change: a rewritten batch keeps its base offset and last offset (and producer
  fields, leader epoch, codec); a batch left without records is dropped.
- Tombstones (null values) survive a first pass with a delete horizon of now +
  delete.retention.ms stamped on their batch (KIP-534); a pass after the horizon removes them,
  so consumers have delete.retention.ms to see a deletion. Records without a key are dropped.
- Consecutive segments are merged while their original sizes fit segment.bytes.

`clean` does the reading and writing (run it on a worker thread): the cleaned segments are
written, indexed and fsynced under `<partition>/.cleaner/`. `PartitionLog.replace_segments`
(on the log's owning thread) then swaps them in, so readers holding the old segments finish on
the old files. The dirty ratio (dirty bytes / cleanable bytes) decides when a pass is worth it.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from msgspec import Struct, field

from rafka.protocol.records import (
    ATTR_DELETE_HORIZON,
    BatchHeader,
    Record,
    build_batch,
    decode_batch,
    read_batch_header,
)
from rafka.storage.config import LogConfig
from rafka.storage.files import fsync_dir, read_checkpoint, write_checkpoint
from rafka.storage.index import MAX_RELATIVE_OFFSET
from rafka.storage.log import PartitionLog
from rafka.storage.segment import LogSegment

log = logging.getLogger(__name__)

CLEANER_DIR = ".cleaner"
CLEANER_CHECKPOINT_FILE = "cleaner-offset-checkpoint"
CHECKPOINT_VERSION = 0
# Bounds the offset map (Kafka's dedupe buffer): a larger dirty section is cleaned in parts.
MAX_MAP_KEYS = 500_000
_WRITE_CHUNK = 1024 * 1024


class CleanableRange(Struct):
    """Sealed segments a pass may rewrite, and how dirty they are."""

    segments: list[LogSegment]
    first_dirty: int  # offsets from here on were not yet compacted
    end: int  # first uncleanable offset: the base of the first segment not included
    dirty_bytes: int
    total_bytes: int
    oldest_dirty_timestamp: int  # largest timestamp of the first dirty segment (-1: none)

    @property
    def dirty_ratio(self) -> float:
        return self.dirty_bytes / self.total_bytes if self.total_bytes else 0.0


class CleanedGroup(Struct):
    """A cleaned copy of consecutive segments, complete in the scratch directory."""

    old: list[LogSegment]
    base_offset: int
    size: int


class CleanResult(Struct):
    """What one cleaning pass wrote, for the caller to swap in."""

    groups: list[CleanedGroup]
    scratch: Path
    end: int  # the next pass's first dirty offset
    next_delete_horizon: int | None  # earliest horizon of a retained tombstone batch
    records_read: int = 0
    records_kept: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


class _Output(Struct):
    """A cleaned segment being written, and the batch chunk not yet flushed to it."""

    segment: LogSegment
    chunk: bytearray = field(default_factory=bytearray)
    chunk_last: int = -1
    chunk_max_ts: int = -1
    chunk_offset_of_max: int = -1

    def add(self, data: bytes, header: BatchHeader) -> None:
        self.chunk += data
        self.chunk_last = header.last_offset
        if header.max_timestamp > self.chunk_max_ts:
            self.chunk_max_ts, self.chunk_offset_of_max = header.max_timestamp, header.last_offset
        if len(self.chunk) >= _WRITE_CHUNK:
            self.drain()

    def drain(self) -> None:
        if self.chunk:
            self.segment.append(
                self.chunk, self.chunk_last, self.chunk_max_ts, self.chunk_offset_of_max
            )
            self.chunk = bytearray()
            self.chunk_max_ts = self.chunk_offset_of_max = -1


def cleanable_range(
    partition_log: PartitionLog, first_dirty: int, high_watermark: int, now_ms: int
) -> CleanableRange | None:
    """The sealed segments wholly below the first uncleanable offset, or None if there are none."""
    config = partition_log.config
    segments = list(partition_log.segments)
    chosen: list[LogSegment] = []
    end = segments[-1].base_offset
    for i, segment in enumerate(segments[:-1]):  # never the active segment
        upper = segments[i + 1].base_offset
        if upper > high_watermark:
            end = segment.base_offset
            break
        if config.min_compaction_lag_ms > 0:
            if segment.largest_timestamp > now_ms - config.min_compaction_lag_ms:
                end = segment.base_offset
                break
        chosen.append(segment)
    else:
        end = segments[-1].base_offset
    if not chosen:
        return None
    first_dirty = max(first_dirty, chosen[0].base_offset)
    dirty = [s for s in chosen if s.base_offset >= first_dirty]
    oldest = dirty[0].largest_timestamp if dirty else -1
    return CleanableRange(
        chosen,
        first_dirty,
        end,
        sum(s.size for s in dirty),
        sum(s.size for s in chosen),
        oldest,
    )


def should_clean(
    cleanable: CleanableRange, config: LogConfig, now_ms: int, delete_horizon: int | None
) -> bool:
    if cleanable.dirty_bytes and cleanable.dirty_ratio >= config.min_cleanable_dirty_ratio:
        return True
    if delete_horizon is not None and now_ms >= delete_horizon:
        return True  # tombstones are due for removal
    lag = config.max_compaction_lag_ms
    oldest = cleanable.oldest_dirty_timestamp
    return bool(cleanable.dirty_bytes) and oldest >= 0 and now_ms - oldest > lag


def _never(header: BatchHeader) -> bool:
    return False


def build_offset_map(
    segments: list[LogSegment],
    first_dirty: int,
    is_aborted: Callable[[BatchHeader], bool] = _never,
) -> tuple[dict[bytes, int], int]:
    """key -> latest offset over the dirty segments, and the offset the map covers up to (a
    segment base: the map may stop early when it grows past MAX_MAP_KEYS). Records of aborted
    transactions do not count: they must not shadow the records they would have replaced."""
    offsets: dict[bytes, int] = {}
    covered = first_dirty
    for i, segment in enumerate(segments):
        end = segments[i + 1].base_offset if i + 1 < len(segments) else segment.next_offset
        if end <= first_dirty:
            continue  # wholly in the clean section
        if len(offsets) >= MAX_MAP_KEYS:
            break
        for header, data in segment.iter_batches(0):
            if header.is_control or header.records_count == 0 or is_aborted(header):
                continue
            _, records = decode_batch(data)
            for record in records:
                if record.key is not None:
                    offsets[bytes(record.key)] = record.offset
        covered = end
    return offsets, covered


class CleaningAborted(Exception):
    """The pass was asked to stop (the broker is shutting down)."""


def clean(
    partition_log: PartitionLog,
    cleanable: CleanableRange,
    now_ms: int,
    aborted: Callable[[], bool] = lambda: False,
    is_aborted_txn: Callable[[BatchHeader], bool] = _never,
) -> CleanResult:
    """Write cleaned copies of the cleanable segments into the scratch directory (worker thread).

    `aborted` is polled between segments; when it returns True the pass stops with
    CleaningAborted and leaves the log as it was. Batches `is_aborted_txn` names (aborted
    transactions, see storage.txn_index) are removed, as Kafka's cleaner does."""
    end_bound = cleanable.end
    config = partition_log.config
    scratch = partition_log.directory / CLEANER_DIR
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    segments = cleanable.segments
    offsets, covered = build_offset_map(segments, cleanable.first_dirty, is_aborted_txn)
    # Only segments the map covers can be judged; later ones wait for the next pass.
    segments = [s for s in segments if s.base_offset < covered]
    log_start = partition_log.log_start_offset
    result = CleanResult([], scratch, min(covered, end_bound), None)
    for group in _group_segments(segments, config, covered):
        if aborted():
            raise CleaningAborted(partition_log.directory.name)
        cleaned = _clean_group(
            group, offsets, log_start, config, now_ms, scratch, result, is_aborted_txn
        )
        if cleaned is not None:
            result.groups.append(cleaned)
    fsync_dir(scratch)
    return result


def _group_segments(
    segments: list[LogSegment], config: LogConfig, covered: int
) -> list[list[LogSegment]]:
    groups: list[list[LogSegment]] = []
    for i, segment in enumerate(segments):
        upper = segments[i + 1].base_offset if i + 1 < len(segments) else covered
        if groups:
            group = groups[-1]
            size = sum(s.size for s in group) + segment.size
            if size <= config.segment_bytes and upper - 1 - group[0].base_offset <= (
                MAX_RELATIVE_OFFSET
            ):
                group.append(segment)
                continue
        groups.append([segment])
    return groups


def _clean_group(
    group: list[LogSegment],
    offsets: dict[bytes, int],
    log_start: int,
    config: LogConfig,
    now_ms: int,
    scratch: Path,
    result: CleanResult,
    is_aborted_txn: Callable[[BatchHeader], bool] = _never,
) -> CleanedGroup | None:
    base = group[0].base_offset
    output = _Output(LogSegment.create(scratch, base, config, now_ms))
    changed = len(group) > 1
    try:
        for segment in group:
            result.bytes_before += segment.size
            for header, data in segment.iter_batches(0):
                kept = (
                    None
                    if is_aborted_txn(header)
                    else _clean_batch(header, data, offsets, log_start, config, now_ms, result)
                )
                if kept is not data:
                    changed = True
                if kept is None:
                    continue
                output.add(kept, header if kept is data else read_batch_header(kept, 0))
        output.drain()
        segment = output.segment
        if not changed:
            segment.close()
            _remove_segment_files(scratch, base)
            return None
        segment.seal()
        segment.flush(sync_indexes=True)
        size = segment.size
        segment.close()
    except BaseException:
        output.segment.close()
        raise
    result.bytes_after += size
    return CleanedGroup(group, base, size)


def _clean_batch(
    header: BatchHeader,
    data: bytes,
    offsets: dict[bytes, int],
    log_start: int,
    config: LogConfig,
    now_ms: int,
    result: CleanResult,
) -> bytes | None:
    """The batch to keep: `data` itself if unchanged, a rebuilt batch, or None to drop it."""
    if header.last_offset < log_start:
        return None  # below the log start offset (DeleteRecords): never readable again
    if header.is_control:
        return data
    _, records = decode_batch(data)
    result.records_read += len(records)
    has_horizon = bool(header.attributes & ATTR_DELETE_HORIZON)
    horizon = header.base_timestamp if has_horizon else None
    kept: list[Record] = []
    stamp_horizon = False
    for record in records:
        if record.key is None:
            continue  # Kafka's cleaner drops keyless records
        latest = offsets.get(bytes(record.key))
        if latest is not None and latest > record.offset:
            continue
        if record.value is None:
            if horizon is not None and now_ms >= horizon:
                continue
            if horizon is None:
                stamp_horizon = True
        kept.append(record)
    result.records_kept += len(kept)
    if not kept:
        return None
    if stamp_horizon:
        horizon = now_ms + config.delete_retention_ms
    if horizon is not None and any(record.value is None for record in kept):
        # The next pass after this horizon removes the tombstones kept here.
        due = result.next_delete_horizon
        result.next_delete_horizon = horizon if due is None else min(due, horizon)
    if len(kept) == len(records) and not stamp_horizon:
        return data
    return build_batch(
        kept,
        base_offset=header.base_offset,
        compression=header.compression,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        partition_leader_epoch=header.partition_leader_epoch,
        is_transactional=header.is_transactional,
        log_append_time=header.is_log_append_time,
        base_timestamp=None if horizon is not None else header.base_timestamp,
        max_timestamp=header.max_timestamp if header.is_log_append_time else None,
        last_offset_delta=header.last_offset_delta,
        delete_horizon_ms=horizon,
    )


def _remove_segment_files(directory: Path, base: int) -> None:
    for suffix in (".log", ".index", ".timeindex"):
        try:
            os.unlink(directory / f"{base:020d}{suffix}")
        except FileNotFoundError:
            pass


def discard(result: CleanResult) -> None:
    shutil.rmtree(result.scratch, ignore_errors=True)


def install(partition_log: PartitionLog, result: CleanResult) -> int:
    """Swap the cleaned groups into the log (on the log's owning thread); returns how many were
    installed. A group whose segments left the log meanwhile (retention) is discarded."""
    installed = 0
    for group in result.groups:
        if partition_log.replace_segments(group.old, result.scratch):
            installed += 1
    discard(result)
    return installed


# -- first dirty offsets, per log directory (Kafka's cleaner-offset-checkpoint) ------------------


def read_cleaner_checkpoint(log_dir: Path) -> dict[tuple[str, int], int]:
    rows = read_checkpoint(log_dir / CLEANER_CHECKPOINT_FILE, CHECKPOINT_VERSION) or []
    offsets: dict[tuple[str, int], int] = {}
    for row in rows:
        if len(row) == 3 and row[1].isdigit():
            try:
                offsets[(row[0], int(row[1]))] = int(row[2])
            except ValueError:
                continue
    return offsets


def write_cleaner_checkpoint(log_dir: Path, offsets: dict[tuple[str, int], int]) -> None:
    write_checkpoint(
        log_dir / CLEANER_CHECKPOINT_FILE,
        CHECKPOINT_VERSION,
        (f"{topic} {partition} {offset}" for (topic, partition), offset in sorted(offsets.items())),
    )
