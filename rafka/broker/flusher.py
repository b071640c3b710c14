"""Group commit: one fsync covers every append made to a log since its previous fsync.

Appends only mark their log dirty. A single task takes the dirty set, fsyncs those logs in the
thread pool (in parallel), and reports the flushed end offset back to each. Appends arriving while
an fsync runs mark the log dirty again and ride the next round, so throughput does not pay an fsync
per message and no log is ever fsynced by two threads at once.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import structlog

from rafka.broker.metrics.counters import Histogram

log = structlog.get_logger(__name__)


class Flushable(Protocol):
    def flush_blocking(self) -> int:
        """fsync the log; runs in a worker thread; returns the end offset now durable."""

    def on_flushed(self, end_offset: int) -> None:
        """Back on the event loop: the log is durable up to `end_offset`."""

    def on_flush_failed(self, error: OSError) -> None: ...


class GroupCommitFlusher:
    def __init__(self, pool: ThreadPoolExecutor, durations: Histogram | None = None) -> None:
        self._pool = pool
        self._durations = durations  # rafka_log_flush_duration_seconds, when metrics are on
        self._dirty: dict[int, Flushable] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    def request(self, target: Flushable) -> None:
        self._dirty[id(target)] = target
        self._wakeup.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch = list(self._dirty.values())
            self._dirty.clear()
            if not batch:
                if self._closing:
                    return
                continue
            started = time.perf_counter()
            results = await asyncio.gather(
                *(loop.run_in_executor(self._pool, t.flush_blocking) for t in batch),
                return_exceptions=True,
            )
            if self._durations is not None:
                self._durations.observe(time.perf_counter() - started)
            for target, result in zip(batch, results, strict=True):
                if isinstance(result, OSError):
                    log.error("fsync failed", error=str(result))
                    target.on_flush_failed(result)
                elif isinstance(result, BaseException):
                    log.error("flush crashed", error=repr(result))
                    target.on_flush_failed(OSError(str(result)))
                else:
                    target.on_flushed(result)
            if self._closing:
                self._wakeup.set()  # keep draining until a round finds nothing dirty

    async def close(self) -> None:
        """Finish outstanding flushes, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
