"""Quorum-state writes off the event loop (rafka.broker.cluster.quorum_state_writes): what a
partition sends after a state change waits until that state is on disk, writes land in order,
and a failed write lets nothing through."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rafka.broker.cluster.quorum_state_writes import QuorumStateWrites
from rafka.replication.state import QuorumState


class FakePartition:
    """Records the states written; each write blocks until the test releases it."""

    name = "t-0"

    def __init__(self, fail: bool = False) -> None:
        self.written: list[QuorumState] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail = fail
        self.failed: OSError | None = None

    def write_quorum_state(self, state: QuorumState) -> None:
        self.started.set()
        self.release.wait(5)
        if self.fail:
            raise OSError("disk gone")
        self.written.append(state)

    def on_flush_failed(self, error: OSError) -> None:
        self.failed = error


async def _until(predicate, what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def test_messages_wait_for_the_state_and_writes_land_in_order() -> None:
    async def scenario() -> None:
        writes = QuorumStateWrites()
        partition = FakePartition()
        sent: list[str] = []
        writes.after_durable(partition, lambda: sent.append("before"))  # nothing pending
        assert sent == ["before"]
        writes.persist(partition, QuorumState(1, 1, None))
        writes.after_durable(partition, lambda: sent.append("vote"))
        writes.persist(partition, QuorumState(2, None, None))
        writes.persist(partition, QuorumState(2, 3, None))
        writes.after_durable(partition, lambda: sent.append("vote 2"))
        durable = writes.durable(partition)
        await asyncio.sleep(0.05)
        assert sent == ["before"], "sent before its quorum state was on disk"
        partition.release.set()
        await _until(lambda: len(sent) == 3, "held messages released")
        assert sent == ["before", "vote", "vote 2"]
        assert durable is not None
        await durable
        # The first write, then the newest state; the one in between was superseded.
        assert partition.written == [QuorumState(1, 1, None), QuorumState(2, 3, None)]
        assert writes.durable(partition) is None
        await writes.close()

    asyncio.run(scenario())


def test_a_failed_write_lets_nothing_through() -> None:
    async def scenario() -> None:
        writes = QuorumStateWrites()
        partition = FakePartition(fail=True)
        sent: list[str] = []
        writes.persist(partition, QuorumState(1, 1, None))
        writes.after_durable(partition, lambda: sent.append("vote"))
        durable = writes.durable(partition)
        assert durable is not None
        partition.release.set()
        with pytest.raises(OSError):
            await durable
        assert sent == [] and isinstance(partition.failed, OSError)
        await writes.close()

    asyncio.run(scenario())


def test_close_finishes_the_running_write_and_drops_the_rest() -> None:
    async def scenario() -> None:
        writes = QuorumStateWrites()
        running, queued = FakePartition(), FakePartition()
        queued.name = "t-1"
        sent: list[str] = []
        writes.persist(running, QuorumState(1, 1, None))
        writes.persist(running, QuorumState(2, 2, None))  # asked while the first one runs
        # More partitions than writers: the last one's write waits in the pool's queue.
        others = [FakePartition() for _ in range(8)]
        for other in others:
            writes.persist(other, QuorumState(1, None, None))
        writes.persist(queued, QuorumState(1, 3, None))
        writes.after_durable(queued, lambda: sent.append("vote"))
        durable = writes.durable(queued)
        assert durable is not None
        await _until(lambda: running.started.is_set(), "the first write running")
        # close() waits for the running writes with the loop blocked: release them from a timer
        # thread, everything at once (a queued write that was not dropped would land too).
        timer = threading.Timer(
            0.1, lambda: [p.release.set() for p in (running, queued, *others)]
        )
        timer.start()
        await writes.close()
        timer.join()
        # The running write landed; the state asked for after it, and the queued partition's,
        # never did, and nothing that waited on them went out.
        assert running.written == [QuorumState(1, 1, None)]
        assert queued.written == [] and sent == []
        with pytest.raises(OSError):
            await durable
        writes.persist(running, QuorumState(3, None, None))  # after close: dropped
        assert not writes.pending(running)

    asyncio.run(scenario())
