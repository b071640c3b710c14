"""Group commit: one fsync covers all appends since the previous one; failures are reported."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rafka.broker.flusher import GroupCommitFlusher


class FakeLog:
    """A log whose fsync blocks until the test releases it, counting how often it ran."""

    def __init__(self) -> None:
        self.end = 0
        self.flushes = 0
        self.flushed: list[int] = []
        self.failures: list[OSError] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_with: OSError | None = None

    def append(self, n: int = 1) -> None:
        self.end += n

    def flush_blocking(self) -> int:
        covered = self.end  # read before the fsync: later appends are not claimed
        self.entered.set()
        self.gate.wait(5)
        self.flushes += 1
        if self.fail_with is not None:
            raise self.fail_with
        return covered

    def on_flushed(self, end_offset: int) -> None:
        self.flushed.append(end_offset)

    def on_flush_failed(self, error: OSError) -> None:
        self.failures.append(error)


async def _until(predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


@pytest.fixture
async def flusher():
    pool = ThreadPoolExecutor(max_workers=2)
    flusher = GroupCommitFlusher(pool)
    flusher.start()
    yield flusher
    await flusher.close()
    pool.shutdown()


async def test_many_appends_share_one_fsync(flusher: GroupCommitFlusher) -> None:
    log = FakeLog()
    for _ in range(100):
        log.append()
        flusher.request(log)  # same log requested again: still one entry in the round
    await _until(lambda: log.flushed)
    assert log.flushes == 1
    assert log.flushed == [100]


async def test_appends_during_an_fsync_ride_the_next_round(flusher: GroupCommitFlusher) -> None:
    log = FakeLog()
    log.gate.clear()
    log.append(10)
    flusher.request(log)
    await asyncio.get_running_loop().run_in_executor(None, log.entered.wait, 5)
    log.append(5)  # lands while the first fsync is in progress
    flusher.request(log)
    log.gate.set()
    await _until(lambda: log.flushed[-1:] == [15])
    assert log.flushed == [10, 15]
    assert log.flushes == 2


async def test_fsync_failure_is_reported_not_swallowed(flusher: GroupCommitFlusher) -> None:
    log = FakeLog()
    log.fail_with = OSError(5, "Input/output error")
    log.append()
    flusher.request(log)
    await _until(lambda: log.failures)
    assert log.flushed == []
    assert log.failures[0].errno == 5


async def test_close_drains_pending_flushes() -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    flusher = GroupCommitFlusher(pool)
    flusher.start()
    logs = [FakeLog() for _ in range(3)]
    for log in logs:
        log.append(3)
        flusher.request(log)
    await flusher.close()
    pool.shutdown()
    assert [log.flushed for log in logs] == [[3], [3], [3]]
