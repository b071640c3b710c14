"""Group commit: one fsync covers every append made to a log since its previous fsync.

Appends only mark their log dirty. A single task hands the dirty logs to the thread pool, where
they are fsynced in parallel, and each log's flushed end offset is reported back as soon as its
own fsync returns. Appends arriving while a log's fsync runs mark it dirty again and ride its
next fsync, so throughput does not pay an fsync per message and no log is ever fsynced by two
threads at once. Logs are not held back for each other: when tens of thousands of new partitions
are written at once, the first ones are acknowledged while the others still sync.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import structlog

from rafka.broker.metrics.counters import Histogram
from rafka.storage.files import sync_filesystems

log = structlog.get_logger(__name__)

# How long recovered logs wait for one syncfs before each is fsynced on its own.
SYNCFS_PATIENCE_S = 2.0


class Flushable(Protocol):
    def flush_blocking(self) -> int:
        """fsync the log; runs in a worker thread; returns the end offset now durable."""

    def on_flushed(self, end_offset: int) -> None:
        """Back on the event loop: the log is durable up to `end_offset`."""

    def on_flush_failed(self, error: OSError) -> None: ...


class Recovered(Flushable, Protocol):
    def sync_point(self) -> tuple[int, int]:
        """Before a syncfs: what it will make durable (and a mark to tell whether the log was
        cut meanwhile)."""

    def synced(self, point: tuple[int, int]) -> bool:
        """Back on the event loop after that syncfs: claim what it covered; False if the log
        was cut meanwhile (it must then be flushed the usual way)."""


class GroupCommitFlusher:
    def __init__(self, pool: ThreadPoolExecutor, durations: Histogram | None = None) -> None:
        self._pool = pool
        self._durations = durations  # rafka_log_flush_duration_seconds, when metrics are on
        self._dirty: dict[int, Flushable] = {}  # ready for an fsync
        self._in_flight: dict[int, Flushable] = {}  # their fsync runs in a worker now
        self._again: dict[int, Flushable] = {}  # in flight and dirty again since it started
        self._wakeup = asyncio.Event()
        self._flush_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

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
            self._flush_done.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._flush_done.wait()
            except TimeoutError:
                return False
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    def request(self, target: Flushable) -> None:
        key = id(target)
        if key in self._in_flight:
            self._again[key] = target  # submitted once its running fsync returns
            return
        self._dirty[key] = target
        self._wakeup.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._dirty:
                if self._closing and not self._in_flight:
                    return
                continue
            ready, self._dirty = self._dirty, {}
            for key, target in ready.items():
                self._in_flight[key] = target
                future = loop.run_in_executor(self._pool, target.flush_blocking)
                future.add_done_callback(self._reporter(target, time.perf_counter()))

    def _reporter(self, target: Flushable, started: float) -> Callable[[asyncio.Future[int]], None]:
        def report(future: asyncio.Future[int]) -> None:
            key = id(target)
            del self._in_flight[key]
            if future.cancelled():  # the loop is closing: nothing is known durable
                return
            if self._durations is not None:
                self._durations.observe(time.perf_counter() - started)
            error = future.exception()
            if isinstance(error, OSError):
                log.error("fsync failed", error=str(error))
                target.on_flush_failed(error)
            elif error is not None:
                log.error("flush crashed", error=repr(error))
                target.on_flush_failed(OSError(str(error)))
            else:
                target.on_flushed(future.result())
            again = self._again.pop(key, None)
            if again is not None:
                self._dirty[key] = again
                self._wakeup.set()
            self._flush_done.set()
            if self._closing and not self._in_flight:
                self._wakeup.set()  # let the task see it has drained

        return report

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
    logs: list[Recovered],
) -> None:
    """After a crash, every recovered log must be fsynced before it counts for Raft (a lone
    voter's high watermark, a follower's fetch offset). One syncfs writes all of them back at
    once, and each log then claims what it held when the syncfs began, with no I/O of its own:
    with 10,000 partitions that is one call instead of 10,000 flushes (each also writing the
    quorum state of the epoch the restart began), and consumers see the records again that
    much sooner. Several log dirs: one syncfs per filesystem they are on."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    points = [target.sync_point() for target in logs]
    syncing = loop.run_in_executor(pool, sync_filesystems, log_dirs)
    # A syncfs writes back every dirty page of the filesystem, other processes' too, and
    # until it returns no recovered record counts as durable: the node's high watermarks,
    # hence its coordinators' loads, wait silently. Past a short wait each log is fsynced on
    # its own instead, and the syncfs is left to finish.
    done, _ = await asyncio.wait([syncing], timeout=SYNCFS_PATIENCE_S)
    if not done:
        syncing.add_done_callback(lambda f: f.cancelled() or f.exception())
        log.warning("syncfs after recovery slow: flushing log by log", logs=len(logs))
        for target in logs:
            flusher.request(target)
        return
    try:
        synced = syncing.result()
    except OSError as exc:
        synced = False
        log.error("syncfs after recovery failed: flushing log by log", error=str(exc))
    if synced:
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info("recovered logs synced", logs=len(logs), ms=elapsed_ms)
    for target, point in zip(logs, points, strict=True):
        if not (synced and target.synced(point)):
            flusher.request(target)
