"""What the Raft state machine needs to know about its log, and two logs that provide it.

The state machine only reads the log through `RaftLog`; every change (append, truncate) leaves it as
an action that the caller applies. `MemoryLog` is the simulator's log, `PartitionLogView` adapts a
storage `PartitionLog` (its leader-epoch cache answers the epoch lookups) and `EndOffsetLog` keeps
the single-voter broker working while it only reports its log end offset.

Epochs start at 1 (the first election); epoch 0 is "before any leader", so an empty log's last
epoch is 0 and every log's epoch 0 ends at its start offset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any, Protocol

from msgspec import Struct

if TYPE_CHECKING:
    from rafka.storage.log import PartitionLog
    from rafka.storage.voter_sets import VoterSetHistory


# {node id: directory id or None}: a group's voters (KIP-853's voter keys).
VoterKeys = Mapping[int, str | None]


class VotersEntry(Struct, frozen=True):
    """A MemoryLog entry's value that changes the group's voters (a KRaft VOTERS record)."""

    voters: tuple[tuple[int, str | None], ...]


class RaftLog(Protocol):
    @property
    def start_offset(self) -> int:
        """The first offset the log holds (retention deletes below it, only committed data)."""
        ...

    @property
    def end_offset(self) -> int:
        """The offset the next appended record gets."""
        ...

    @property
    def last_epoch(self) -> int:
        """The epoch of the last record, 0 if the log is empty."""
        ...

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """(largest epoch <= `epoch` present in the log, the offset where it ends): the start of
        the next epoch, or the log end if it is the last. (0, log start) if there is none."""
        ...

    def read(self, offset: int, limit: int, end: int | None = None) -> Sized:
        """Records from `offset` (a size hint `limit`), none at or past `end` if given, for a
        follower's Fetch; empty at the end."""
        ...

    def latest_voters(self) -> tuple[int, VoterKeys] | None:
        """(offset, voters) of the last voters record in the log, committed or not (KIP-853: a
        replica uses the newest voter set it holds); None if the log holds none."""
        ...


class MemoryLog:
    """A log of `(epoch, value)` entries in memory, one entry per offset, starting at 0."""

    def __init__(self, entries: Sequence[tuple[int, Any]] = (), start_offset: int = 0) -> None:
        # entries[i] is offset start_offset + i: a log whose head retention deleted starts later.
        self.start_offset = start_offset
        self.entries: list[tuple[int, Any]] = []
        # (epoch, start offset) per epoch present, ascending: the leader epoch cache.
        self._epochs: list[tuple[int, int]] = []
        # (offset, voters) per VotersEntry, ascending.
        self._voters: list[tuple[int, dict[int, str | None]]] = []
        self.append(entries)

    @property
    def end_offset(self) -> int:
        return self.start_offset + len(self.entries)

    @property
    def last_epoch(self) -> int:
        return self._epochs[-1][0] if self._epochs else 0

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        epochs = self._epochs
        for index in range(len(epochs) - 1, -1, -1):
            found, _ = epochs[index]
            if found <= epoch:
                end = epochs[index + 1][1] if index + 1 < len(epochs) else self.end_offset
                return found, end
        return 0, self.start_offset

    def read(self, offset: int, limit: int, end: int | None = None) -> tuple[tuple[int, Any], ...]:
        first = offset - self.start_offset
        last = first + limit if end is None else min(first + limit, end - self.start_offset)
        return tuple(self.entries[first:last])

    def latest_voters(self) -> tuple[int, VoterKeys] | None:
        return self._voters[-1] if self._voters else None

    def append(self, entries: Sequence[tuple[int, Any]]) -> None:
        for entry in entries:
            epoch = entry[0]
            last = self.last_epoch
            if epoch < last:
                raise ValueError(f"entry of epoch {epoch} after epoch {last}")
            if epoch > last:
                self._epochs.append((epoch, self.end_offset))
            if isinstance(entry[1], VotersEntry):
                self._voters.append((self.end_offset, dict(entry[1].voters)))
            self.entries.append(entry)

    def truncate(self, end_offset: int) -> None:
        del self.entries[end_offset - self.start_offset :]
        while self._epochs and self._epochs[-1][1] >= end_offset:
            self._epochs.pop()
        while self._voters and self._voters[-1][0] >= end_offset:
            self._voters.pop()

    def reset(self, start_offset: int) -> None:
        """Empty, starting at `start_offset` (voter sets kept: they were in force there)."""
        self.entries = []
        self._epochs = []
        self.start_offset = start_offset

    def delete_before(self, offset: int) -> None:
        """Retention: drop the entries below `offset`."""
        offset = min(offset, self.end_offset)
        del self.entries[: offset - self.start_offset]
        self.start_offset = offset


class PartitionLogView:
    """A storage `PartitionLog` seen as a `RaftLog` (records read as raw batch bytes); its
    voters records are tracked by a VoterSetHistory."""

    def __init__(self, log: PartitionLog, voter_sets: VoterSetHistory | None = None) -> None:
        self._log = log
        self._voter_sets = voter_sets

    @property
    def start_offset(self) -> int:
        return self._log.log_start_offset

    @property
    def end_offset(self) -> int:
        return self._log.log_end_offset

    @property
    def last_epoch(self) -> int:
        return max(self._log.leader_epochs.latest_epoch, 0)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        found, end = self._log.leader_epochs.end_offset_for(epoch, self._log.log_end_offset)
        if found < 0:
            return 0, self._log.log_start_offset
        return found, end

    def read(self, offset: int, limit: int, end: int | None = None) -> bytes:
        return self._log.read(offset, limit, max_offset=end)

    def latest_voters(self) -> tuple[int, VoterKeys] | None:
        return None if self._voter_sets is None else self._voter_sets.latest()


class EndOffsetLog:
    """Only the log end offset and last epoch, as reported by the caller: enough for a group whose
    only voter is this node (it never votes for others nor serves follower fetches)."""

    def __init__(self, end_offset: int, last_epoch: int = 0) -> None:
        self._end_offset = end_offset
        self._last_epoch = last_epoch

    @property
    def start_offset(self) -> int:
        return 0

    @property
    def end_offset(self) -> int:
        return self._end_offset

    @property
    def last_epoch(self) -> int:
        return self._last_epoch

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        if epoch >= self._last_epoch:
            return self._last_epoch, self._end_offset
        return 0, 0

    def read(self, offset: int, limit: int, end: int | None = None) -> Sized:
        raise NotImplementedError("EndOffsetLog cannot serve fetches; pass a real RaftLog")

    def latest_voters(self) -> tuple[int, VoterKeys] | None:
        return None  # a lone voter's group never changes its voters

    def update(self, end_offset: int, last_epoch: int) -> None:
        self._end_offset = end_offset
        self._last_epoch = max(self._last_epoch, last_epoch)
