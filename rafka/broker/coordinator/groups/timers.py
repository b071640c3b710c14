"""Every deadline of the group coordinator in one heap, driven by one event-loop handle.

Session expirations, rebalance and sync timeouts and the offset-expiry sweep are entries keyed by
a hashable name; scheduling a key again replaces its entry. Only the earliest deadline holds a
`loop.call_at` handle, so thousands of members cost one heap, not thousands of asyncio timers,
and nothing polls. Replaced or cancelled entries stay in the heap until they surface (lazy
deletion); the heap is rebuilt when they outnumber the live ones.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)

# call_at may run a handle up to the clock resolution early; entries due within it fire.
_EARLY = 0.001


@dataclass(order=True, slots=True)
class _Entry:
    deadline: float
    seq: int
    key: Hashable = field(compare=False)
    callback: Callable[[], None] | None = field(compare=False)


class Timers:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._heap: list[_Entry] = []
        self._live: dict[Hashable, _Entry] = {}
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        """Seconds on the loop's monotonic clock, the time base of every deadline."""
        return self.loop.time()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    def deadline(self, key: Hashable) -> float | None:
        entry = self._live.get(key)
        return entry.deadline if entry is not None else None

    def schedule_at(self, key: Hashable, deadline: float, callback: Callable[[], None]) -> None:
        if self._closed:
            return
        old = self._live.get(key)
        if old is not None:
            old.callback = None
        entry = _Entry(deadline, next(self._seq), key, callback)
        self._live[key] = entry
        heapq.heappush(self._heap, entry)
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._heap = [e for e in self._heap if e.callback is not None]
            heapq.heapify(self._heap)
        self._arm()

    def schedule(self, key: Hashable, delay: float, callback: Callable[[], None]) -> None:
        self.schedule_at(key, self.now() + max(delay, 0.0), callback)

    def cancel(self, key: Hashable) -> None:
        entry = self._live.pop(key, None)
        if entry is not None:
            entry.callback = None

    def cancel_where(self, predicate: Callable[[Hashable], bool]) -> None:
        for key in [k for k in self._live if predicate(k)]:
            self.cancel(key)

    def close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for entry in self._live.values():
            entry.callback = None
        self._live.clear()
        self._heap.clear()

    def _arm(self) -> None:
        while self._heap and self._heap[0].callback is None:
            heapq.heappop(self._heap)
        if not self._heap:
            return
        first = self._heap[0].deadline
        if self._armed_at is not None and self._armed_at <= first:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = first
        self._handle = self.loop.call_at(first, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = None
        due_by = self.now() + _EARLY
        due: list[_Entry] = []
        while self._heap and self._heap[0].deadline <= due_by:
            entry = heapq.heappop(self._heap)
            if entry.callback is not None:
                due.append(entry)
        for entry in due:
            callback = entry.callback
            if callback is None:  # cancelled by an earlier callback of this round
                continue
            entry.callback = None
            if self._live.get(entry.key) is entry:
                del self._live[entry.key]
            try:
                callback()
            except Exception:  # one faulty callback must not stop every other deadline
                log.exception("timer callback failed", key=entry.key)
        if not self._closed:
            self._arm()
