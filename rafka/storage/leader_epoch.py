"""The leader epoch cache: where each leader epoch (Raft term) starts in a partition's log.

Persisted as Kafka's `leader-epoch-checkpoint` ("0\\n<count>\\n<epoch> <startOffset>\\n...").
Changes are made in memory and written by `flush()`, which the log calls from its own flush after
the data is fsynced: an epoch's start is then never recorded as durable before its batches are,
and recovery rebuilds entries for the unflushed tail from the batches themselves.

The entries are an immutable tuple replaced on every change, so a flush on another thread reads
a consistent snapshot while the event-loop thread assigns or truncates.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from rafka.storage.files import CorruptCheckpointError, read_checkpoint, write_checkpoint

LEADER_EPOCH_CHECKPOINT_FILE = "leader-epoch-checkpoint"
CHECKPOINT_VERSION = 0
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int


class LeaderEpochCache:
    def __init__(
        self,
        path: Path,
        entries: tuple[EpochEntry, ...] = (),
        on_disk: tuple[EpochEntry, ...] | None = None,
    ) -> None:
        self.path = path
        self._entries = entries
        self._version = 0
        self._flushed_version = 0
        # What the file holds (None: unknown or no file). A crash recovery truncates and then
        # re-assigns the same entries: thousands of partitions would each rewrite (and fsync)
        # an unchanged checkpoint.
        self._on_disk = on_disk

    @classmethod
    def load(cls, path: Path) -> LeaderEpochCache:
        """Read the checkpoint (missing file: empty cache); CorruptCheckpointError if malformed."""
        rows = read_checkpoint(path, CHECKPOINT_VERSION)
        entries: list[EpochEntry] = []
        for row in rows or ():
            try:
                epoch, start_offset = (int(value) for value in row)
            except ValueError:
                raise CorruptCheckpointError(f"{path}: malformed entry {' '.join(row)!r}") from None
            if entries and (epoch <= entries[-1].epoch or start_offset < entries[-1].start_offset):
                raise CorruptCheckpointError(f"{path}: entries are not increasing")
            entries.append(EpochEntry(epoch, start_offset))
        return cls(path, tuple(entries), None if rows is None else tuple(entries))

    # -- queries -----------------------------------------------------------------------------
    @property
    def entries(self) -> tuple[EpochEntry, ...]:
        return self._entries

    @property
    def latest_epoch(self) -> int:
        """The latest epoch, or UNDEFINED_EPOCH (-1) when the cache is empty."""
        entries = self._entries
        return entries[-1].epoch if entries else UNDEFINED_EPOCH

    @property
    def latest_entry(self) -> EpochEntry | None:
        entries = self._entries
        return entries[-1] if entries else None

    @property
    def earliest_entry(self) -> EpochEntry | None:
        entries = self._entries
        return entries[0] if entries else None

    def end_offset_for(
        self, requested_epoch: int, log_end_offset: int, leader_epoch: int = UNDEFINED_EPOCH
    ) -> tuple[int, int]:
        """OffsetForLeaderEpoch (KIP-101/279): the largest epoch <= `requested_epoch` and where it
        ends, i.e. the start offset of the next larger epoch, or `log_end_offset` if the requested
        epoch is the latest. (-1, -1) if the epoch is undefined or later than any known.

        A requested epoch older than every entry answers (requested, first entry's start offset),
        as Kafka does: that history was removed from the log.

        `leader_epoch` is the epoch this replica leads, if any. Kafka records it in the cache at
        election; rafka only with the epoch's first batch (Raft's last epoch is that of the last
        record), so an epoch that has no batch yet counts as starting at the log end.
        """
        entries = self._entries
        if leader_epoch > (entries[-1].epoch if entries else UNDEFINED_EPOCH):
            entries = (*entries, EpochEntry(leader_epoch, log_end_offset))
        if requested_epoch == UNDEFINED_EPOCH or not entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if entries[-1].epoch == requested_epoch:
            return requested_epoch, log_end_offset
        floor: EpochEntry | None = None
        for entry in entries:
            if entry.epoch > requested_epoch:
                if floor is None:
                    return requested_epoch, entry.start_offset
                return floor.epoch, entry.start_offset
            floor = entry
        return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch of the entry covering `offset`, or None if it is before every entry."""
        found: int | None = None
        for entry in self._entries:
            if entry.start_offset > offset:
                break
            found = entry.epoch
        return found

    # -- changes -----------------------------------------------------------------------------
    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset`. Epochs not above the latest are ignored
        (as Kafka's append path does); entries starting at or after `start_offset` are dropped so
        start offsets stay monotonic. Returns whether the cache changed."""
        if epoch < 0:
            return False
        if start_offset < 0:
            raise ValueError(f"negative start offset {start_offset} for epoch {epoch}")
        entries = self._entries
        if entries and epoch <= entries[-1].epoch:
            return False
        kept = len(entries)
        while kept and entries[kept - 1].start_offset >= start_offset:
            kept -= 1
        self._replace((*entries[:kept], EpochEntry(epoch, start_offset)))
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """Remove the entries starting at or after `end_offset` (the log was truncated there)."""
        entries = self._entries
        if end_offset < 0 or not entries or entries[-1].start_offset < end_offset:
            return
        kept = len(entries)
        while kept and entries[kept - 1].start_offset >= end_offset:
            kept -= 1
        self._replace(entries[:kept])

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop the entries wholly before `start_offset`; the latest of those starting at or
        before it is kept, moved to start at `start_offset` (Kafka's rule: truncating from
        start 6 keeps an entry at 6)."""
        entries = self._entries
        removed = 0
        while removed < len(entries) and entries[removed].start_offset <= start_offset:
            removed += 1
        if not removed:
            return
        moved = EpochEntry(entries[removed - 1].epoch, start_offset)
        if removed == 1 and entries[0] == moved:
            return
        self._replace((moved, *entries[removed:]))

    def clear(self) -> None:
        if self._entries:
            self._replace(())

    def _replace(self, entries: tuple[EpochEntry, ...]) -> None:
        self._entries = entries
        self._version += 1

    # -- persistence ---------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self._version != self._flushed_version

    def flush(self, *, force: bool = False) -> None:
        """Write the checkpoint atomically if anything changed since the last write."""
        version, entries = self._version, self._entries
        if version == self._flushed_version and not force:
            return
        if entries != self._on_disk or force:
            write_checkpoint(
                self.path,
                CHECKPOINT_VERSION,
                (f"{entry.epoch} {entry.start_offset}" for entry in entries),
            )
            self._on_disk = entries
        self._flushed_version = version
