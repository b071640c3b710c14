"""The aborted-transaction index of a partition, in Kafka's `.txnindex` format, and the replay
that rebuilds producer state and this index from the log.

A read_committed consumer gets data up to the last stable offset plus the list of aborted
transactions overlapping it, (producer id, first offset) pairs; it then drops those producers'
batches from the first offset up to their ABORT marker. The index answers that question.

Like Kafka, an entry goes into the `.txnindex` file of the segment that holds the ABORT marker:
`<20-digit base offset>.txnindex`, a sequence of 34-byte entries, big-endian:
    version i16 (= 0) | producer_id i64 | first_offset i64 | last_offset i64 |
    last_stable_offset i64
`last_stable_offset` is the partition's first undecided offset right after the abort (or the
marker's offset + 1 when nothing was undecided). It bounds lookups: once an entry's last stable
offset reaches the fetch's upper bound, no later abort can concern the fetched range.

Entries are appended in marker order (ascending last offset), fsynced at once and kept in
memory. After a crash the log is the truth: the replay from the producer-state snapshot re-adds
aborts a file lacks, and entries past the recovered log end are dropped.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from msgspec import Struct

from rafka.protocol.records import BatchHeader, CorruptRecordError, decode_batch
from rafka.storage.files import fsync_dir, list_files, read_small_file
from rafka.storage.producer_state import ControlType, ProducerStateManager, TxnMarker

if TYPE_CHECKING:
    from rafka.storage.log import PartitionLog

TXN_INDEX_SUFFIX = ".txnindex"
TXN_INDEX_VERSION = 0
_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size  # 34
_CONTROL_KEY = struct.Struct(">hh")
_END_TXN_MARKER = struct.Struct(">hi")


class AbortedTxn(Struct, frozen=True):
    """One aborted transaction of the index: Kafka's AbortedTxn entry."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def txn_index_file_name(base_offset: int) -> str:
    return f"{base_offset:020d}{TXN_INDEX_SUFFIX}"


def encode_entry(entry: AbortedTxn) -> bytes:
    return _ENTRY.pack(
        TXN_INDEX_VERSION,
        entry.producer_id,
        entry.first_offset,
        entry.last_offset,
        entry.last_stable_offset,
    )


def decode_entries(data: bytes) -> list[AbortedTxn]:
    """Entries of one file; a torn tail (a crash mid-write) or an unknown version ends it."""
    out = []
    for pos in range(0, len(data) - ENTRY_SIZE + 1, ENTRY_SIZE):
        version, pid, first, last, lso = _ENTRY.unpack_from(data, pos)
        if version != TXN_INDEX_VERSION:
            break
        out.append(AbortedTxn(pid, first, last, lso))
    return out


def read_txn_marker(batch: bytes | bytearray | memoryview) -> TxnMarker | None:
    """The COMMIT/ABORT marker held by a control batch, or None for other control records."""
    try:
        _, records = decode_batch(batch)
    except CorruptRecordError:
        return None
    if not records or records[0].key is None or len(records[0].key) < _CONTROL_KEY.size:
        return None
    _, kind = _CONTROL_KEY.unpack_from(records[0].key)
    if kind not in (ControlType.ABORT, ControlType.COMMIT):
        return None
    value = records[0].value
    coordinator_epoch = 0
    if value is not None and len(value) >= _END_TXN_MARKER.size:
        _, coordinator_epoch = _END_TXN_MARKER.unpack_from(value)
    return TxnMarker(ControlType(kind), coordinator_epoch)


class TransactionIndex:
    """Aborted transactions of one partition directory (use `load`).

    Every method runs on the event loop (the partition's owner).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._entries: list[AbortedTxn] = []  # ascending last_offset
        self._last_offsets: list[int] = []
        self._file_of: list[int] = []  # per entry, the base offset of the file holding it

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        directory: Path,
        first_segment_base: int,
        log_end_offset: int,
        names: Collection[str] | None = None,
    ) -> TransactionIndex:
        """Read the index files; drop those wholly below the log (retention deleted their
        segments) and entries at or past the log end (recovery cut the log). `names`: the
        directory's files if the caller has listed them already."""
        index = cls(directory)
        found: list[tuple[int, Path]] = []
        for name in list_files(directory) if names is None else names:
            stem = name[: -len(TXN_INDEX_SUFFIX)]
            if name.endswith(TXN_INDEX_SUFFIX) and len(stem) == 20 and stem.isdigit():
                found.append((int(stem), Path(directory, name)))
        rewrite: list[int] = []
        for base, path in sorted(found):
            if base < first_segment_base:
                path.unlink(missing_ok=True)
                continue
            entries = decode_entries(read_small_file(path))
            kept = [e for e in entries if e.last_offset < log_end_offset]
            if len(kept) != len(entries) or path.stat().st_size != len(entries) * ENTRY_SIZE:
                rewrite.append(base)
            for entry in kept:
                index._insert(entry, base)
        for base in rewrite:
            index._rewrite(base)
        return index

    # -- views -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> Sequence[AbortedTxn]:
        return tuple(self._entries)

    def contains(self, producer_id: int, last_offset: int) -> bool:
        i = bisect_left(self._last_offsets, last_offset)
        while i < len(self._entries) and self._last_offsets[i] == last_offset:
            if self._entries[i].producer_id == producer_id:
                return True
            i += 1
        return False

    def collect(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper_bound): last offset at or
        after the fetch offset, first offset before the bound (Kafka's collectAbortedTxns)."""
        out = []
        for i in range(bisect_left(self._last_offsets, fetch_offset), len(self._entries)):
            entry = self._entries[i]
            if entry.first_offset < upper_bound:
                out.append(entry)
            if entry.last_stable_offset >= upper_bound:
                break
        return out

    def aborted_batches(self) -> Callable[[BatchHeader], bool]:
        """A predicate telling the batches of aborted transactions (for the log cleaner, which
        must neither keep them nor let them shadow older records). It works on a copy, so it
        may run on a worker thread while the index changes."""
        ranges: dict[int, list[tuple[int, int]]] = {}
        for entry in self._entries:
            ranges.setdefault(entry.producer_id, []).append(
                (entry.first_offset, entry.last_offset)
            )

        def is_aborted(header: BatchHeader) -> bool:
            if not header.is_transactional or header.is_control:
                return False
            return any(
                first <= header.base_offset <= last
                for first, last in ranges.get(header.producer_id, ())
            )

        return is_aborted

    # -- changes ---------------------------------------------------------------------------------

    def append(self, entry: AbortedTxn, segment_base: int) -> None:
        """Record an abort whose marker was appended to the segment at `segment_base`.

        The entry is fsynced at once: aborts are rare, and a producer-state snapshot taken
        later (at the next roll) would stop recovery from finding a lost entry again.
        """
        if self._last_offsets and entry.last_offset < self._last_offsets[-1]:
            raise ValueError(
                f"aborted txn ending at {entry.last_offset} is older than the last indexed "
                f"one ({self._last_offsets[-1]})"
            )
        self._write(segment_base, encode_entry(entry))
        self._insert(entry, segment_base)

    def add_recovered(self, entry: AbortedTxn, segment_base: int) -> None:
        """An abort found by replaying the log; kept once, wherever it sorts."""
        if self.contains(entry.producer_id, entry.last_offset):
            return
        if self._last_offsets and entry.last_offset < self._last_offsets[-1]:
            self._insert(entry, segment_base)
            self._rewrite(segment_base)
            return
        self.append(entry, segment_base)

    def truncate_to(self, offset: int) -> None:
        """Forget aborts whose marker is at or after `offset` (the log was cut there)."""
        keep = bisect_left(self._last_offsets, offset)
        if keep == len(self._entries):
            return
        touched = set(self._file_of[keep:])
        del self._entries[keep:], self._last_offsets[keep:], self._file_of[keep:]
        for base in touched:
            self._rewrite(base)

    def delete_below(self, first_segment_base: int) -> None:
        """Drop the files of segments retention deleted (their aborts end below the log)."""
        doomed = {b for b in self._file_of if b < first_segment_base}
        if not doomed:
            return
        keep = [i for i, b in enumerate(self._file_of) if b not in doomed]
        self._entries = [self._entries[i] for i in keep]
        self._last_offsets = [self._last_offsets[i] for i in keep]
        self._file_of = [self._file_of[i] for i in keep]
        for base in doomed:
            (self.directory / txn_index_file_name(base)).unlink(missing_ok=True)

    # -- internals -------------------------------------------------------------------------------

    def _insert(self, entry: AbortedTxn, base: int) -> None:
        i = bisect_right(self._last_offsets, entry.last_offset)
        self._entries.insert(i, entry)
        self._last_offsets.insert(i, entry.last_offset)
        self._file_of.insert(i, base)

    def _write(self, base: int, data: bytes) -> None:
        path = self.directory / txn_index_file_name(base)
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.directory)

    def _rewrite(self, base: int) -> None:
        """Replace one file with the entries memory holds for it (temp file, fsync, rename)."""
        path = self.directory / txn_index_file_name(base)
        data = b"".join(
            encode_entry(e) for e, b in zip(self._entries, self._file_of, strict=True) if b == base
        )
        if not data:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(self.directory)


def segment_base_for(segment_bases: Sequence[int], offset: int) -> int:
    return segment_bases[max(bisect_right(segment_bases, offset) - 1, 0)]


def replay_into(
    log: PartitionLog,
    producers: ProducerStateManager,
    index: TransactionIndex,
    from_offset: int,
) -> None:
    """Apply the log from `from_offset` to the producer state, decoding transaction markers,
    and put back into the index every abort it lacks (lost with an unflushed file)."""
    bases = [segment.base_offset for segment in log.segments]
    for header, batch in log.iter_batches(from_offset):
        replay_batch(header, batch, producers, index, segment_base_for(bases, header.last_offset))


def replay_batch(
    header: BatchHeader,
    batch: bytes | memoryview,
    producers: ProducerStateManager,
    index: TransactionIndex,
    segment_base: int,
) -> None:
    """Apply one batch already in the log (recovery, or a follower's append) to the producer
    state; an abort marker also goes into the index of the segment at `segment_base`."""
    marker = None
    if header.is_control and header.producer_id >= 0 and header.records_count > 0:
        marker = read_txn_marker(batch)
        if marker is None:
            return  # a control record of another kind: no producer state
    completed = producers.replay(header, header.max_timestamp, marker)
    if completed is not None and completed.is_aborted:
        undecided = producers.first_undecided_offset
        entry = AbortedTxn(
            completed.producer_id,
            completed.first_offset,
            completed.last_offset,
            completed.last_offset + 1 if undecided is None else undecided,
        )
        index.add_recovered(entry, segment_base)
