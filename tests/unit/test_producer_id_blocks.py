"""Producer-id blocks are never reserved twice across metadata leader changes (issue 13, bug 1).

Three real `__cluster_metadata` replicas (Partition over segment files in tmp_path, the group
commit flusher, the Raft state machine) with the ClusterMetadata image on top; their Raft
messages travel through an in-process wire that the test delivers, delays or drops one by one.
That makes the race deterministic: a new controller whose image lags the log its predecessor
committed must not hand out the block the predecessor already handed out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rafka.broker.cluster.cluster_metadata import (
    METADATA_TOPIC,
    PRODUCER_ID_BLOCK_SIZE,
    ClusterMetadata,
)
from rafka.broker.flusher import GroupCommitFlusher
from rafka.broker.partition.replica import Partition, ReplicationHooks
from rafka.replication.actions import SendMessage
from rafka.replication.raft import RaftConfig
from rafka.storage.config import LogConfig

TOPIC_ID = uuid.UUID(int=1)
TIMEOUT = 10.0
# No pre-vote: the test names who stands, and no clock runs to expire the old leader's lease.
RAFT = RaftConfig(pre_vote=False)
YIELDS = 20

Message = tuple[int, int, Any]  # (source, destination, message)


class Wire(ReplicationHooks):
    """Raft messages of every replica, queued until the test delivers them."""

    def __init__(self) -> None:
        self.queue: deque[Message] = deque()

    def send(self, partition: Partition, action: SendMessage) -> None:
        self.queue.append((partition.raft.node_id, action.destination, action.message))


class Quorum:
    def __init__(self, root: Path, flusher: GroupCommitFlusher, voters: frozenset[int]) -> None:
        self.root = root
        self.flusher = flusher
        self.voters = voters
        self.wire = Wire()
        self.partitions: dict[int, Partition] = {}
        self.metadata: dict[int, ClusterMetadata] = {}
        self.down: set[int] = set()

    def open(self, node_id: int, high_watermark: int = 0) -> ClusterMetadata:
        """(Re)open a node's replica from its files, as a broker start does."""
        partition = Partition.open(
            METADATA_TOPIC,
            0,
            TOPIC_ID,
            self.root / f"node{node_id}",
            LogConfig(),
            node_id=node_id,
            voters=self.voters,
            flusher=self.flusher,
            high_watermark=high_watermark,
            raft_config=RAFT,
        )
        partition.hooks = self.wire
        self.partitions[node_id] = partition
        self.metadata[node_id] = ClusterMetadata(partition)
        self.down.discard(node_id)
        return self.metadata[node_id]

    async def settle(self, until: Callable[[], bool] = lambda: False, *, drop=None) -> None:
        """Deliver messages (all but those `drop` refuses, and none to or from a node that is
        down) and let fsyncs complete, until `until` holds or nothing is left to do."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while not until():
            assert loop.time() < deadline, "the quorum did not settle"
            flushing = [
                p.wait_flushed(p.log_end_offset - 1)
                for i, p in self.partitions.items()
                if i not in self.down and p.flushed_offset < p.log_end_offset
            ]
            if flushing:
                await asyncio.gather(*flushing)
                continue
            if not self.wire.queue:
                if not await self._others_ran(until):
                    return
                continue
            source, destination, message = self.wire.queue.popleft()
            if source in self.down or destination in self.down:
                continue
            if drop is not None and drop(source, destination, message):
                continue
            partition = self.partitions[destination]
            partition.apply(partition.raft.on_message(source, message))

    async def _others_ran(self, until: Callable[[], bool]) -> bool:
        """Yield to the tasks waiting on the quorum (a few loop turns: a wakeup passes through
        wait_for); whether they did something (sent, appended) or `until` now holds."""
        for _ in range(YIELDS):
            await asyncio.sleep(0)
            if until() or self.wire.queue or self._flush_pending():
                return True
        return False

    def _flush_pending(self) -> bool:
        return any(
            p.flushed_offset < p.log_end_offset
            for i, p in self.partitions.items()
            if i not in self.down
        )

    def close(self) -> None:
        for partition in self.partitions.values():
            partition.close()


@pytest.fixture
async def flusher() -> AsyncIterator[GroupCommitFlusher]:
    with ThreadPoolExecutor(2) as pool:
        flusher = GroupCommitFlusher(pool)
        flusher.start()
        yield flusher
        await flusher.close()


async def reserve(quorum: Quorum, node_id: int, broker_id: int) -> int:
    """Reserve a block at `node_id` (the controller) while the quorum runs."""
    task = asyncio.ensure_future(quorum.metadata[node_id].reserve_producer_ids(broker_id, TIMEOUT))
    try:
        await quorum.settle(task.done)
        assert task.done(), "the reservation did not complete"
        return task.result()
    finally:
        task.cancel()  # no-op once done; else it must not touch the closed logs


async def test_a_new_controller_lagging_its_predecessors_commit_reserves_a_new_block(
    tmp_path: Path, flusher: GroupCommitFlusher
) -> None:
    quorum = Quorum(tmp_path, flusher, frozenset({1, 2, 3}))
    for node_id in (1, 2, 3):
        quorum.open(node_id)
    try:
        quorum.partitions[1].elect()
        await quorum.settle(lambda: all(p.raft.leader_id == 1 for p in quorum.partitions.values()))
        first = await reserve(quorum, 1, broker_id=2)
        assert first == 0

        # Node 3 gets the next block's record from node 1, but no answer after that: it never
        # learns that node 1 (with node 2) committed it and handed it to broker 2.
        node3 = quorum.partitions[3]
        record_end = quorum.partitions[1].log_end_offset + 1

        def cut_3_once_it_has_the_record(source: int, destination: int, _: Any) -> bool:
            return source == 1 and destination == 3 and node3.log_end_offset >= record_end

        task = asyncio.ensure_future(quorum.metadata[1].reserve_producer_ids(2, TIMEOUT))
        await quorum.settle(task.done, drop=cut_3_once_it_has_the_record)
        second = task.result()
        assert second == PRODUCER_ID_BLOCK_SIZE  # handed to broker 2
        assert node3.log_end_offset == record_end
        assert node3.high_watermark < record_end
        assert quorum.metadata[3].image.next_producer_id_block < 2 * PRODUCER_ID_BLOCK_SIZE

        # Node 1 dies; node 3 wins with node 2's vote. Its image still lacks the record.
        quorum.down.add(1)
        node3.elect()
        await quorum.settle(lambda: node3.is_leader and quorum.partitions[2].raft.leader_id == 3)
        third = await reserve(quorum, 3, broker_id=3)
        assert third == 2 * PRODUCER_ID_BLOCK_SIZE, f"block {third} was reserved twice"
        assert quorum.metadata[2].image.next_producer_id_block == 3 * PRODUCER_ID_BLOCK_SIZE
    finally:
        quorum.close()


async def test_a_restarted_controller_reserves_after_its_checkpointed_log(
    tmp_path: Path, flusher: GroupCommitFlusher
) -> None:
    """A restarted leader whose log is all committed appends no LEADER_CHANGE, so no high
    watermark movement replays its log into the image before the first new record commits."""
    quorum = Quorum(tmp_path, flusher, frozenset({1}))
    quorum.open(1)
    quorum.partitions[1].elect()
    assert await reserve(quorum, 1, broker_id=1) == 0
    high_watermark = quorum.partitions[1].high_watermark
    quorum.close()

    quorum = Quorum(tmp_path, flusher, frozenset({1}))
    quorum.open(1, high_watermark=high_watermark)  # the broker's replication-offset-checkpoint
    try:
        quorum.partitions[1].elect()
        assert quorum.partitions[1].is_leader
        assert quorum.partitions[1].log_end_offset == high_watermark  # no LEADER_CHANGE
        assert await reserve(quorum, 1, broker_id=1) == PRODUCER_ID_BLOCK_SIZE
    finally:
        quorum.close()
