"""Quorum-state writes off the event loop, with what depends on them held back.

A replica persists its quorum state (epoch, vote, leader) at every election step, and the write
is two fsyncs (the file, its directory): a few milliseconds. Thousands of partitions electing at
once (a node restarts, or one that led a third of them dies) made that seconds of a blocked event
loop, so fetches went unanswered past the fetch timeout and timers fired late: more elections.

So the writes go to a thread pool, and Raft's rule is kept as etcd keeps it: the state machine
moves on in memory, but no message a partition sends after a state change leaves this node before
that state is on disk (a vote is announced only once persisted; a new follower fetches, so appends
in its new epoch, only once the epoch is stored). Each partition has at most one write in flight,
so writes land in order; a state asked for meanwhile replaces any not yet started (only the newest
needs to be on disk). Its local actions still run at once: a leader's first append is of an epoch
its candidacy stored before any vote for it was asked, and a follower appends only what it fetched.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import structlog
from msgspec import Struct, field

from rafka.broker.partition.replica import Partition
from rafka.replication.state import QuorumState

log = structlog.get_logger(__name__)

# Small files, each its own fsyncs: parallel writers let ext4 and XFS commit them together.
WRITERS = 8


class _Writes(Struct):
    """One partition's quorum-state writes: generations asked for and on disk."""

    asked: int = 0
    durable: int = 0
    newest: QuorumState | None = None
    writing: bool = False
    held: deque[tuple[int, Callable[[], None]]] = field(default_factory=deque)
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)


class QuorumStateWrites:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="raft-state")
        self._partitions: dict[Partition, _Writes] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def persist(self, partition: Partition, state: QuorumState) -> None:
        if self._closed:
            return  # never written, so never told to anyone (see close)
        writes = self._partitions.setdefault(partition, _Writes())
        writes.asked += 1
        writes.newest = state
        if not writes.writing:
            self._start(partition, writes)

    def pending(self, partition: Partition) -> bool:
        """Whether a state of the partition is still to be written."""
        return partition in self._partitions

    def after_durable(self, partition: Partition, action: Callable[[], None]) -> None:
        """Run `action` once every state asked for so far is on disk: now if nothing waits."""
        writes = self._partitions.get(partition)
        if writes is None:
            action()
        else:
            writes.held.append((writes.asked, action))

    def durable(self, partition: Partition) -> asyncio.Future[None] | None:
        """Resolves once every state asked for so far is on disk (fails if a write failed);
        None if it is already."""
        writes = self._partitions.get(partition)
        if writes is None:
            return None
        future = asyncio.get_running_loop().create_future()
        writes.waiters.append((writes.asked, future))
        return future

    async def close(self) -> None:
        """Stop the writers once replication has stopped: the writes running now finish, and
        those not started yet are dropped with what waits on them. Nothing that depends on a
        state leaves this node before that state is on disk, so a state never written was told
        to no one, and the next start goes on from the one before, as after a crash. (Waiting
        for them all made a node that handed over a thousand leaderships on a busy machine
        take longer than the 30 s a clean shutdown is given.)"""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._pool.shutdown(wait=True)
        for writes in self._partitions.values():
            for _, future in writes.waiters:
                if not future.done():  # an answer waiting on it says not stored
                    future.set_exception(OSError("shut down before the quorum state was written"))
        self._partitions.clear()

    def _start(self, partition: Partition, writes: _Writes) -> None:
        assert writes.newest is not None
        writes.writing = True
        task = asyncio.ensure_future(self._write(partition, writes, writes.asked, writes.newest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(
        self, partition: Partition, writes: _Writes, generation: int, state: QuorumState
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._pool, partition.write_quorum_state, state)
        except OSError as exc:
            self._failed(partition, writes, exc)
            return
        writes.writing = False
        writes.durable = generation
        while writes.held and writes.held[0][0] <= generation:
            _, action = writes.held.popleft()
            action()
        waiting = []
        for asked, future in writes.waiters:
            if asked > generation:
                waiting.append((asked, future))
            elif not future.done():
                future.set_result(None)
        writes.waiters = waiting
        if writes.asked > generation:
            self._start(partition, writes)
        else:
            del self._partitions[partition]

    def _failed(self, partition: Partition, writes: _Writes, error: OSError) -> None:
        """Nothing that waited on the write may go out: the partition goes offline, as after a
        failed log fsync."""
        log.error("quorum state write failed", partition=partition.name, error=str(error))
        del self._partitions[partition]
        for _, future in writes.waiters:
            if not future.done():
                future.set_exception(error)
        partition.on_flush_failed(error)
