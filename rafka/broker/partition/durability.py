"""How far a partition's log is durable: the group-commit flusher fsyncs it in a worker thread and
reports the end offset it covered; this turns those reports into the flushed offset that acks=1
waits on and Raft counts as this replica's durable end, never past a truncation made while the
fsync ran.
"""

from __future__ import annotations

import asyncio

from rafka.broker.partition.waiters import OffsetWaiters
from rafka.protocol.errors import ErrorCode
from rafka.storage.log import PartitionLog


class Durability:
    def __init__(self, log: PartitionLog) -> None:
        self._log = log
        # Recovered bytes may sit in the page cache only; the first flush after open claims them.
        self.flushed_offset = 0
        # Truncations, numbered, and where each cut the log: an fsync that ran across a cut
        # proves nothing past it (see flushed).
        self._truncations = 0
        self._cuts: list[tuple[int, int]] = []
        self._flush_generation = 0
        self._waiters = OffsetWaiters()

    def rebind(self, log: PartitionLog) -> None:
        """The log moved to another log dir (same offsets, all of it fsynced there)."""
        self._log = log

    def truncated(self, end_offset: int) -> None:
        """The log was cut at `end_offset`: nothing past it is durable any more."""
        self.flushed_offset = min(self.flushed_offset, end_offset)
        self._truncations += 1
        self._cuts.append((self._truncations, end_offset))

    def flush_blocking(self) -> int:
        # The flusher never runs two flushes of one log at once and reads this attribute only
        # after the flush returns, so the worker thread may write it.
        self._flush_generation = self._truncations
        return self._log.flush()

    def flushed(self, end_offset: int) -> int | None:
        """An fsync reported back with the end offset it covered: the new flushed offset, or
        None if it makes nothing more durable."""
        # A truncation while the fsync ran (a follower meeting a diverging leader) makes its end
        # offset stale: that offset may now hold a record appended after the cut, which this
        # fsync did not cover. Without the clamp, the stale end would mark the new records
        # durable and hide their real fsync (ignored as "not beyond flushed_offset"), and a
        # follower, which fetches only from its durable end, would never fetch again.
        if self._cuts:  # rare: the group commit of every append passes here
            since = [end for number, end in self._cuts if number > self._flush_generation]
            self._cuts.clear()
            end_offset = min([end_offset, *since])
        if end_offset <= self.flushed_offset:
            return None
        self.flushed_offset = end_offset
        self._waiters.release(end_offset)
        return end_offset

    def sync_point(self) -> tuple[int, int]:
        """Before a syncfs of the whole filesystem: the end it will cover, and the truncations
        so far (see synced)."""
        return self._log.log_end_offset, self._truncations

    def synced(self, point: tuple[int, int]) -> int | None:
        """A syncfs that began at `point` returned: the new flushed offset, None if it makes
        nothing more durable, -1 if the log was cut meanwhile (what it covered is unknown)."""
        end, truncations = point
        if truncations != self._truncations:
            return -1
        self._log.synced_to(end)
        if end <= self.flushed_offset:
            return None
        self.flushed_offset = end
        self._waiters.release(end)
        return end

    def wait_flushed(self, offset: int, offline: ErrorCode | None) -> asyncio.Future[None]:
        """Resolves once the local log is fsynced past `offset` (acks=1)."""
        return self._waiters.wait(self.flushed_offset, offset + 1, offline)

    def fail(self, code: ErrorCode, message: str) -> None:
        """The log went offline: no waiter's offset will ever be flushed."""
        self._waiters.fail(code, message)
