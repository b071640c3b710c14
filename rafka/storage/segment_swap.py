"""Replacing consecutive segments with their cleaned copy crash-safely, through Kafka's `.swap`
files: the swap itself (the cleaner's install) and its completion when a log is opened after a
crash interrupted it.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

from rafka.protocol.records import LOG_OVERHEAD
from rafka.storage.files import fsync_dir
from rafka.storage.segment import (
    LOG_SUFFIX,
    SEGMENT_SUFFIXES,
    LogSegment,
    parse_segment_file_name,
    segment_file_name,
)

log = logging.getLogger(__name__)

SWAP_SUFFIX = ".swap"
_BASE_LENGTH_DELTA = struct.Struct(">qi11xi")


def swap_in(directory: Path, cleaned_dir: Path, base: int, old: list[LogSegment]) -> None:
    """Replace `old` by the complete, fsynced segment files under `base` in `cleaned_dir`: the
    new files are renamed in with a `.swap` suffix, the old segments are deleted, then the suffix
    is dropped."""
    names = [segment_file_name(base, suffix) for suffix in SEGMENT_SUFFIXES]
    for name in names:
        os.replace(cleaned_dir / name, directory / (name + SWAP_SUFFIX))
    fsync_dir(directory)
    for segment in old:
        segment.delete()
    for name in names:
        os.replace(directory / (name + SWAP_SUFFIX), directory / name)
    fsync_dir(directory)


def complete_swaps(directory: Path, swaps: list[str], bases: list[int]) -> list[int]:
    """Finish compaction swaps a crash interrupted: a `<base>.log.swap` is a complete cleaned
    segment (fsynced before the rename), replacing the old segments its offsets cover."""
    names = set(swaps)
    for name in sorted(names):
        stem = name[: -len(SWAP_SUFFIX)]
        base = parse_segment_file_name(stem)
        if base is None:
            if stem[:20] + LOG_SUFFIX + SWAP_SUFFIX not in names:
                os.unlink(directory / name)  # an index swap without its log
            continue
        last = _last_offset(directory / name, base)
        for old in [b for b in bases if base <= b <= last]:
            for suffix in SEGMENT_SUFFIXES:
                (directory / segment_file_name(old, suffix)).unlink(missing_ok=True)
            bases.remove(old)
        for suffix in SEGMENT_SUFFIXES:
            swapped = directory / (segment_file_name(base, suffix) + SWAP_SUFFIX)
            if swapped.exists():
                os.replace(swapped, directory / segment_file_name(base, suffix))
            elif suffix != LOG_SUFFIX:
                # Rebuilt on open: a missing index fails the segment's sanity check.
                (directory / segment_file_name(base, suffix)).unlink(missing_ok=True)
        bases.append(base)
        log.warning("%s: completed an interrupted compaction swap", directory / stem)
    fsync_dir(directory)
    return bases


def _last_offset(path: Path, base: int) -> int:
    """The last offset held by a segment file, walking batch headers (`base` if empty)."""
    last = base
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        position = 0
        while position + _BASE_LENGTH_DELTA.size <= size:
            header = os.pread(file.fileno(), _BASE_LENGTH_DELTA.size, position)
            batch_base, length, delta = _BASE_LENGTH_DELTA.unpack(header)
            if length <= 0:
                break
            last = batch_base + delta
            position += length + LOG_OVERHEAD
    return last
