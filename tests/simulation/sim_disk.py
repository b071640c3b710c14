"""A node's disk in the simulator: what survives a crash.

The log lives in the page cache (`MemoryLog`) and reaches the platter only through fsync. Every
change since the last completed fsync is kept as an ordered write (append or truncate); a flush
makes the writes it started with durable. A crash keeps the durable log plus some prefix of the
pending writes, the last of which may be torn (a partial batch, which recovery's CRC scan cuts
off at an entry boundary). The quorum state is written atomically (temp file, fsync, rename), so
it is either the old or the new one, and the simulator applies it before going on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from rafka.replication.state import QuorumState

Entry = tuple[int, Any]


@dataclass(slots=True)
class Disk:
    durable: list[Entry] = field(default_factory=list)
    # Writes not yet covered by an fsync: ("append", entries) or ("truncate", end_offset).
    pending: list[tuple[str, Any]] = field(default_factory=list)
    quorum_state: QuorumState = field(default_factory=QuorumState)
    # The high watermark last checkpointed along with a flush (Kafka's replication checkpoint).
    hw_checkpoint: int = 0
    # The durable end offset as last recorded after a flush, lowered before a truncation (the
    # broker's durable-end-offset marker): more than the durable log holds means a lost tail.
    durable_mark: int = 0

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        self.pending.append(("append", tuple(entries)))

    def truncate(self, end_offset: int) -> None:
        self.durable_mark = min(self.durable_mark, end_offset)
        self.pending.append(("truncate", end_offset))

    def complete_flush(self, writes: int, hw_checkpoint: int) -> None:
        """The fsync that started when `writes` writes were pending has finished."""
        _apply(self.durable, self.pending[:writes])
        del self.pending[:writes]
        if hw_checkpoint > self.hw_checkpoint:
            self.hw_checkpoint = hw_checkpoint
        self.durable_mark = self.synced_end()

    def synced_end(self) -> int:
        """How much of the current (page cache) log is durable: the durable log is its prefix
        up to the lowest truncation still pending."""
        end = len(self.durable)
        for kind, value in self.pending:
            if kind == "truncate" and value < end:
                end = value
        return end

    def crash(self, rng: random.Random) -> list[Entry]:
        """Lose the page cache: some prefix of the pending writes made it, the last maybe torn."""
        survived = rng.randint(0, len(self.pending))
        _apply(self.durable, self.pending[:survived])
        if survived < len(self.pending) and rng.random() < 0.5:
            kind, value = self.pending[survived]
            if kind == "append" and len(value) > 1:
                self.durable.extend(value[: rng.randrange(1, len(value))])
        self.pending.clear()
        return list(self.durable)

    def lose_tail(self, rng: random.Random) -> int:
        """The disk lied (or recovery cut a corrupt tail that had been fsynced): up to five
        durable entries vanish. Returns how many."""
        lost = rng.randint(1, min(5, len(self.durable))) if self.durable else 0
        del self.durable[len(self.durable) - lost :]
        return lost

    @property
    def lost_end_offset(self) -> int:
        """What recovery tells the replica: how far it had fsynced, if it finds less."""
        return self.durable_mark if self.durable_mark > len(self.durable) else 0

    def wipe(self) -> None:
        self.durable.clear()
        self.pending.clear()
        self.quorum_state = QuorumState()
        self.hw_checkpoint = 0
        self.durable_mark = 0


def _apply(log: list[Entry], writes: list[tuple[str, Any]]) -> None:
    for kind, value in writes:
        if kind == "append":
            log.extend(value)
        else:
            del log[value:]
