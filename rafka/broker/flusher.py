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
from pathlib import Path
from typing import Protocol

import structlog

from rafka.broker.metrics.counters import Histogram
from rafka.storage.files import sync_filesystems

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
        self._in_flight: set[int] = set()  # ids of the targets whose fsync runs now
        self._round_done: asyncio.Event = asyncio.Event()

    def flushing(self, target: Flushable) -> bool:
        """Whether an fsync of `target` runs in a worker thread now."""
        return id(target) in self._in_flight

    async def idle_for(self, target: Flushable, timeout: float) -> bool:
        """Until no fsync of `target` runs (bounded); False on timeout. Back on the event loop,
        the caller may then change the log's files until its next await."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.flushing(target):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._round_done.clear()
            try:
                await asyncio.wait_for(self._round_done.wait(), remaining)
            except TimeoutError:
                return False
        return True

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
            self._in_flight = {id(t) for t in batch}
            try:
                results = await asyncio.gather(
                    *(loop.run_in_executor(self._pool, t.flush_blocking) for t in batch),
                    return_exceptions=True,
                )
            finally:
                self._in_flight = set()
                self._round_done.set()
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


async def flush_recovered(
    flusher: GroupCommitFlusher,
    pool: ThreadPoolExecutor,
    log_dirs: list[Path],
    logs: list[Flushable],
) -> None:
    """After a crash, every recovered log must be fsynced before it counts for Raft (a lone
    voter's high watermark, a follower's fetch offset). One syncfs writes all of them back at
    once; the per-log flushes that follow find nothing dirty and only move the recovery
    points. With 10,000 partitions that is one call instead of 10,000 fdatasyncs, and
    consumers see the records again that much sooner. Several log dirs: one syncfs per
    filesystem they are on."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        synced = await loop.run_in_executor(pool, sync_filesystems, log_dirs)
    except OSError as exc:
        synced = False
        log.error("syncfs after recovery failed: flushing log by log", error=str(exc))
    if synced:
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info("recovered logs synced", logs=len(logs), ms=elapsed_ms)
    for target in logs:
        flusher.request(target)
