"""Who waits on a partition: produce requests for an offset to be reached (acks=1 on the local
fsync, acks=all on the high watermark) and long-polling fetches for the next high-watermark
advance. Each is a future the partition resolves, or fails when the wait can no longer end well.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from rafka.broker.partition.append import AppendError
from rafka.protocol.errors import ErrorCode


class OffsetWaiters:
    """Futures resolved, in offset order, once an offset they wait for is reached."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def wait(self, current: int, target: int, offline: ErrorCode | None) -> asyncio.Future[None]:
        """Resolves once `target` is reached; at once if `current` already has, failed at once
        if the partition is offline."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if offline is not None:
            future.set_exception(AppendError(offline, "partition is offline"))
        elif current >= target:
            future.set_result(None)
        else:
            heapq.heappush(self._heap, (target, next(self._seq), future))
        return future

    def release(self, reached: int) -> None:
        waiters = self._heap
        while waiters and waiters[0][0] <= reached:
            _, _, future = heapq.heappop(waiters)
            if not future.done():
                future.set_result(True)

    def fail(self, code: ErrorCode, message: str) -> None:
        """Fail every waiter with an AppendError: what it waits for may never come."""
        for _, _, future in self._heap:
            if not future.done():
                future.set_exception(AppendError(code, message))
        self._heap.clear()


class DataListeners:
    """Long-polling fetches waiting for the next high-watermark advance."""

    def __init__(self) -> None:
        # Made at the first listener: most partitions never have one (an empty set is 216 B).
        self._futures: set[asyncio.Future[bool]] | None = None

    def listen(self, future: asyncio.Future[bool] | None = None) -> asyncio.Future[bool]:
        """A future resolved (True) at the next advance: `future` (one a fetch of several
        partitions gives each of them), else a new one."""
        if future is None:
            future = asyncio.get_running_loop().create_future()
        if self._futures is None:
            self._futures = set()
        self._futures.add(future)
        return future

    def discard(self, future: asyncio.Future[bool]) -> None:
        if self._futures is not None:
            self._futures.discard(future)

    def wake(self) -> None:
        listeners, self._futures = self._futures, None
        for future in listeners or ():
            if not future.done():
                future.set_result(True)
