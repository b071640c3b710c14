"""Loading a partition's log directory, as Kafka's LogLoader: leftovers of interrupted deletions,
writes and compaction swaps are cleared away, the segments opened and, after an unclean shutdown,
recovered from the one holding the recovery point on; a lost leader-epoch checkpoint is rebuilt
from the batches. `PartitionLog.open` then settles the log's offsets.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right
from pathlib import Path

from msgspec import Struct

from rafka.storage.config import LogConfig
from rafka.storage.files import TEMP_SUFFIX, CorruptCheckpointError
from rafka.storage.leader_epoch import LEADER_EPOCH_CHECKPOINT_FILE, LeaderEpochCache
from rafka.storage.segment import (
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
    parse_segment_file_name,
)
from rafka.storage.segment_recovery import assign_epochs
from rafka.storage.segment_swap import SWAP_SUFFIX, complete_swaps

log = logging.getLogger(__name__)

_TEMP_FILES = frozenset(
    {LEADER_EPOCH_CHECKPOINT_FILE + TEMP_SUFFIX, "partition.metadata" + TEMP_SUFFIX}
)


class LoadedSegments(Struct):
    """The segments found in a directory (none: a new log) and their leader epochs."""

    segments: list[LogSegment]
    epochs: LeaderEpochCache
    # Files were recovered, created or rewritten: the directory needs an fsync.
    needs_dir_sync: bool


def load_segments(
    directory: Path, config: LogConfig, *, recovery_point: int, clean_shutdown: bool
) -> LoadedSegments:
    """Open the segments in `directory`. Unless the shutdown was clean, segments from the one
    holding `recovery_point` on are CRC-scanned, as is any that fails its cheap open-time check;
    the log is cut at the first bad batch and later segments are deleted."""
    bases = _scan_directory(directory)
    epoch_path = directory / LEADER_EPOCH_CHECKPOINT_FILE
    try:
        epochs = LeaderEpochCache.load(epoch_path)
        epochs_lost = False
    except CorruptCheckpointError as exc:
        log.warning("%s; rebuilding it from the log", exc)
        epochs, epochs_lost = LeaderEpochCache(epoch_path), True
    if not bases:
        return LoadedSegments([], epochs, needs_dir_sync=True)

    last = len(bases) - 1
    first_to_recover = len(bases)
    if not clean_shutdown:
        first_to_recover = max(bisect_right(bases, recovery_point) - 1, 0)
        # The data is the truth for the unflushed tail: rebuild those epochs from batches.
        epochs.truncate_from_end(bases[first_to_recover])
    segments = [
        LogSegment.open(
            directory,
            base,
            config,
            # Segments about to be recovered need not be loaded first.
            active=i == last and clean_shutdown,
            next_offset_bound=bases[i + 1] if i < last else None,
            # After a clean shutdown the checkpointed recovery point is the log end.
            trusted_next_offset=recovery_point if i == last and clean_shutdown else None,
        )
        for i, base in enumerate(bases)
    ]
    for i, segment in enumerate(segments):
        if i < first_to_recover and not segment.needs_recovery:
            continue
        truncated = segment.recover(epochs)
        if truncated:
            log.warning(
                "%s: truncated %d bytes of invalid data at offset %d",
                segment.log_path,
                truncated,
                segment.next_offset,
            )
        if truncated and i + 1 < len(segments):
            for doomed in segments[i + 1 :]:
                log.warning("%s: deleting segment after corruption", doomed.log_path)
                doomed.delete()
            del segments[i + 1 :]
            break
    segments[-1].sealed = False
    if epochs_lost:
        epochs.clear()
        for segment in segments:
            assign_epochs(segment.iter_batches(0), epochs)
    needs_dir_sync = first_to_recover < len(segments) or any(s.needs_sync for s in segments)
    return LoadedSegments(segments, epochs, needs_dir_sync)


def _scan_directory(directory: Path) -> list[int]:
    """Base offsets of the segments, after removing leftovers of interrupted deletions and
    writes and index files without a log."""
    bases: list[int] = []
    index_files: list[tuple[int, Path]] = []
    swaps: list[str] = []
    for entry in os.scandir(directory):
        name = entry.name
        if name.endswith(DELETED_SUFFIX) or name in _TEMP_FILES:
            os.unlink(entry.path)
            continue
        if name.endswith(SWAP_SUFFIX):
            swaps.append(name)
            continue
        base = parse_segment_file_name(name)
        if base is not None:
            bases.append(base)
            continue
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            stem = name[: -len(suffix)]
            if name.endswith(suffix) and len(stem) == 20 and stem.isdigit():
                index_files.append((int(stem), Path(entry.path)))
    if swaps:
        bases = complete_swaps(directory, swaps, bases)
    known = set(bases)
    for base, path in index_files:
        if base not in known:
            path.unlink(missing_ok=True)
    bases.sort()
    return bases
