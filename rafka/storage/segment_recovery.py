"""Rebuilding what is derived from the batches in a segment's `.log` file: its indexes, on recovery
after an unclean shutdown (validating every batch to find where the valid data ends) and when a
sealed segment's index files fail their sanity check; and the leader epochs of a lost checkpoint.

The CRC covers neither a batch's base offset nor its leader epoch, so recovery checks those
against their neighbours: offsets follow on without a gap (unless the log is compacted, where the
cleaner leaves gaps) and leader epochs never decrease. A flipped base offset accepted here would
let a later truncation leave a hole below the log end.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from msgspec import Struct

from rafka.protocol.records import (
    HEADER_SIZE,
    BatchHeader,
    CorruptRecordError,
    crc_ok,
    read_batch_header,
)
from rafka.storage.file_records import BULK_CHUNK, FileRecords
from rafka.storage.index import MAX_RELATIVE_OFFSET, OffsetIndex, TimeIndex

if TYPE_CHECKING:
    from rafka.storage.leader_epoch import LeaderEpochCache

log = logging.getLogger(__name__)


class ScannedSegment(Struct, frozen=True):
    """What a scan learnt of a segment: the valid prefix and the state its appends resume from."""

    valid_size: int
    next_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    bytes_since_index: int


def scan_and_index(
    records: FileRecords,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    *,
    base_offset: int,
    index_interval: int,
    compacted: bool,
    validate: bool,
    epochs: LeaderEpochCache | None,
    size: int,
) -> ScannedSegment:
    """Rebuild the indexes (and end, max timestamp) from the batches in the file, stopping at the
    first invalid or torn one. With `validate`, CRCs and offset order are checked too. Leader
    epochs found in the batches are assigned to `epochs`."""
    offset_index.reset()
    time_index.reset()
    path = records.path
    expected = base_offset
    max_ts, offset_of_max = -1, base_offset
    # The cleaner leaves gaps between batches; nothing else does.
    contiguous = not compacted
    last_epoch = -1
    since = 0
    pos = 0
    buffer = b""
    buffer_start = 0
    while pos < size:
        rel = pos - buffer_start
        if rel + HEADER_SIZE > len(buffer):
            buffer = records.read(pos, min(BULK_CHUNK, size - pos))
            buffer_start, rel = pos, 0
        try:
            header = read_batch_header(buffer, rel)
        except CorruptRecordError as exc:
            log.warning("%s: invalid batch at position %d: %s", path, pos, exc)
            break
        batch_size = header.size
        if pos + batch_size > size:
            log.warning("%s: torn batch at position %d", path, pos)
            break
        if header.base_offset < expected or (
            header.last_offset - base_offset > MAX_RELATIVE_OFFSET
        ):
            log.warning("%s: out-of-order offset at position %d", path, pos)
            break
        if validate:
            if contiguous and header.base_offset != expected:
                log.warning(
                    "%s: offset gap at position %d (%d after %d)",
                    path,
                    pos,
                    header.base_offset,
                    expected,
                )
                break
            if header.partition_leader_epoch < last_epoch:
                log.warning(
                    "%s: leader epoch %d after %d at position %d",
                    path,
                    header.partition_leader_epoch,
                    last_epoch,
                    pos,
                )
                break
            last_epoch = header.partition_leader_epoch
            if rel + batch_size > len(buffer):
                buffer = records.read(pos, max(batch_size, min(BULK_CHUNK, size - pos)))
                buffer_start, rel = pos, 0
            if not crc_ok(buffer, rel, header):
                log.warning("%s: CRC mismatch at position %d", path, pos)
                break
        last = header.last_offset
        if header.max_timestamp > max_ts:
            max_ts, offset_of_max = header.max_timestamp, last
        if since > index_interval:
            offset_index.append(last, pos)
            time_index.maybe_append(max_ts, offset_of_max)
            since = 0
        since += batch_size
        if epochs is not None:
            epoch = header.partition_leader_epoch
            if epoch >= 0 and epoch > epochs.latest_epoch:
                epochs.assign(epoch, header.base_offset)
        expected = last + 1
        pos += batch_size
    # As after a roll: the last time index entry holds the segment's max timestamp.
    time_index.maybe_append(max_ts, offset_of_max)
    return ScannedSegment(
        valid_size=pos,
        next_offset=expected if pos else base_offset,
        max_timestamp=max_ts,
        offset_of_max_timestamp=offset_of_max,
        bytes_since_index=since,
    )


def assign_epochs(batches: Iterable[tuple[BatchHeader, bytes]], epochs: LeaderEpochCache) -> None:
    """Feed the leader epoch of every batch to `epochs` (rebuilding a lost checkpoint)."""
    try:
        for header, _ in batches:
            epoch = header.partition_leader_epoch
            if epoch >= 0 and epoch > epochs.latest_epoch:
                epochs.assign(epoch, header.base_offset)
    except CorruptRecordError:
        pass
