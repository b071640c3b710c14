"""The voter sets a partition's log holds: where each KRAFT_VOTERS control record sits and the
voters it names (KIP-853: a replica's Raft group uses the newest one in its log, committed or
not).

Persisted as `voters-checkpoint` ("0\\n<count>\\n<offset> <id>[:<directory>],...\\n") next to
the segments, and written (fsync, rename) *before* the record is appended: the log never holds
a voters record its checkpoint does not name, so a start needs no scan of the log. Entries at
or past the log end after a crash (the record did not survive) are dropped at open, and so is an
entry whose offset holds no voters record (a truncation that a crash undid on disk but not in
the checkpoint); truncation rewrites the file at once. Voter changes are rare (a reassignment's
steps), so a synchronous write each is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from rafka.storage.files import CorruptCheckpointError, read_checkpoint, write_checkpoint

VOTERS_CHECKPOINT_FILE = "voters-checkpoint"
CHECKPOINT_VERSION = 0

Voters = tuple[tuple[int, str | None], ...]


class VoterSetHistory:
    def __init__(self, path: Path, entries: list[tuple[int, Voters]] | None = None) -> None:
        self.path = path
        self._entries: list[tuple[int, Voters]] = entries or []
        self._latest: tuple[int, Mapping[int, str | None]] | None = None
        self._refresh_latest()

    @classmethod
    def load(
        cls,
        directory: Path,
        log_end_offset: int,
        holds_voters: Callable[[int], bool],
        scan: Callable[[], list[tuple[int, Voters]]],
    ) -> VoterSetHistory:
        """The history of `directory`, without entries the log does not hold: at or past
        `log_end_offset`, or where `holds_voters(offset)` says the log has no voters record. A
        file that does not parse (written atomically, so not by us) is rebuilt by `scan`, which
        reads the whole log."""
        path = directory / VOTERS_CHECKPOINT_FILE
        try:
            rows = read_checkpoint(path, CHECKPOINT_VERSION)
            entries = [] if rows is None else [_parse(row) for row in rows]
        except CorruptCheckpointError:
            entries = scan()
            history = cls(path, entries)
            history._write()
            return history
        kept = [e for e in entries if e[0] < log_end_offset and holds_voters(e[0])]
        history = cls(path, kept)
        if kept != entries:
            history._write()
        return history

    @property
    def entries(self) -> tuple[tuple[int, Voters], ...]:
        return tuple(self._entries)

    def latest(self) -> tuple[int, Mapping[int, str | None]] | None:
        """Asked after every append (Raft's voters follow the log): kept, not rebuilt."""
        return self._latest

    def _refresh_latest(self) -> None:
        if self._entries:
            offset, voters = self._entries[-1]
            self._latest = offset, MappingProxyType(dict(voters))
        else:
            self._latest = None

    def record(self, offset: int, voters: Voters) -> None:
        """A voters record is about to be appended at `offset` (the log end): durable first."""
        while self._entries and self._entries[-1][0] >= offset:
            self._entries.pop()  # cannot be in the log: it ends at `offset`
        self._entries.append((offset, tuple(sorted(voters))))
        self._refresh_latest()
        self._write()

    def truncate_from(self, end_offset: int) -> None:
        """The log was truncated to `end_offset`: forget the records past it, durably."""
        if self._entries and self._entries[-1][0] >= end_offset:
            self._entries = [e for e in self._entries if e[0] < end_offset]
            self._refresh_latest()
            self._write()

    def _write(self) -> None:
        write_checkpoint(
            self.path,
            CHECKPOINT_VERSION,
            (f"{offset} {_format(voters)}" for offset, voters in self._entries),
        )


def _format(voters: Voters) -> str:
    return ",".join(str(v) if d is None else f"{v}:{d}" for v, d in voters)


def _parse(row: list[str]) -> tuple[int, Voters]:
    if len(row) != 2:
        raise CorruptCheckpointError(f"bad voters checkpoint entry {row!r}")
    try:
        voters = []
        for item in row[1].split(","):
            node, _, directory = item.partition(":")
            voters.append((int(node), directory or None))
        return int(row[0]), tuple(voters)
    except ValueError as exc:
        raise CorruptCheckpointError(f"bad voters checkpoint entry {row!r}") from exc
