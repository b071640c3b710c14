"""A follower's durable end offset across a truncation that lands while an fsync runs.

Found by tests/integration/test_cluster_producer_ids.py (intermittently): a paused metadata leader
resumed as a follower, truncated its uncommitted tail while a group-commit fsync of the old tail
was still running, and that fsync's end offset then claimed the records fetched after the cut
as durable. Their real fsync was ignored as "not beyond the flushed offset", the Raft replica's
durable end never reached its log end, and a follower only fetches from its durable end: it
never fetched again and campaigned every fetch timeout.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_storage_support import make_batch

from rafka.broker.flusher import GroupCommitFlusher
from rafka.broker.partition.replica import Partition
from rafka.replication.actions import AppendRecords, TruncateLog
from rafka.storage.config import LogConfig


def three_batches() -> bytes:
    """Offsets 0, 1 and 2 of epoch 1, one batch each (a truncation cuts between batches)."""
    return b"".join(make_batch(offset, 1, epoch=1) for offset in range(3))


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[Partition]:
    pool = ThreadPoolExecutor(max_workers=1)
    # The flusher is never started: the test runs each fsync itself, at the moment it chooses.
    partition = Partition.open(
        "topic", 0, uuid.uuid4(), tmp_path / "topic-0", LogConfig(),
        node_id=2, voters=frozenset({1, 2, 3}), flusher=GroupCommitFlusher(pool),
    )  # fmt: skip
    yield partition
    partition.log.close()
    pool.shutdown()


async def test_an_fsync_that_ran_across_a_truncation_claims_nothing_past_the_cut(
    follower: Partition,
) -> None:
    follower.apply([AppendRecords(three_batches())])
    stale = follower.flush_blocking()  # an fsync of offsets 0-2 starts...
    follower.apply([TruncateLog(1)])  # ...the leader of a newer epoch cuts the tail...
    follower.apply([AppendRecords(make_batch(1, 1, epoch=2))])  # ...and sends offset 1 anew
    assert (stale, follower.log_end_offset) == (3, 2)

    follower.on_flushed(stale)  # the old fsync reports back
    assert follower.flushed_offset == 1  # offset 1 now holds a record it did not cover
    assert follower.raft.flushed_end_offset == 1

    follower.on_flushed(follower.flush_blocking())  # the real fsync of offset 1
    assert follower.flushed_offset == 2
    assert follower.raft.flushed_end_offset == follower.log_end_offset == 2  # it may fetch


async def test_an_fsync_after_the_truncation_counts_in_full(follower: Partition) -> None:
    follower.apply([AppendRecords(three_batches())])
    follower.apply([TruncateLog(1)])
    follower.apply([AppendRecords(make_batch(1, 1, epoch=2) + make_batch(2, 1, epoch=2))])
    follower.on_flushed(follower.flush_blocking())
    assert follower.flushed_offset == follower.raft.flushed_end_offset == 3
