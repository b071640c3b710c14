"""The fetch session cache's rules (KIP-227, as Kafka 4.3's FetchSession): which partitions an
incremental answer carries, session order, epochs, and which session makes room for another."""

from __future__ import annotations

from rafka.broker.fetch_sessions import (
    EVICTION_MS,
    FINAL_EPOCH,
    INVALID_SESSION_ID,
    CachedPartition,
    FetchSessionCache,
    next_epoch,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _partitions(count: int) -> dict:
    return {("t", i): CachedPartition(0, 1 << 20, -1) for i in range(count)}


def test_epochs_count_up_and_wrap_past_int32() -> None:
    assert next_epoch(0) == 1
    assert next_epoch(41) == 42
    assert next_epoch(0x7FFFFFFF) == 1
    assert next_epoch(FINAL_EPOCH) == FINAL_EPOCH


def test_a_partition_is_answered_only_with_news() -> None:
    cached = CachedPartition(5, 1 << 20, -1, high_watermark=10, log_start_offset=0)
    assert not cached.must_answer(0, 0, 10, 0)
    assert cached.must_answer(0, 100, 10, 0)  # records, same watermarks
    assert cached.must_answer(0, 0, 11, 0)  # a new high watermark, remembered
    assert not cached.must_answer(0, 0, 11, 0)
    assert cached.must_answer(0, 0, 11, 3)  # a new log start offset
    assert cached.must_answer(6, 0, -1, -1)  # an error, every time
    assert cached.must_answer(6, 0, -1, -1)
    # After an error the next good answer goes out even with the watermarks seen before it.
    cached = CachedPartition(5, 1 << 20, -1, high_watermark=10, log_start_offset=0)
    cached.must_answer(6, 0, 10, 0)
    assert cached.must_answer(0, 0, 10, 0)


def test_updates_forget_and_the_served_go_last() -> None:
    cache = FetchSessionCache(10)
    session = cache.get(cache.create(_partitions(3), uses_topic_ids=False))
    assert session is not None and session.epoch == 1
    session.update([(("t", 1), 7, 100, 2), (("u", 0), 0, 100, -1)], [("t", 0)])
    assert list(session.partitions) == [("t", 1), ("t", 2), ("u", 0)]
    assert (session.partitions[("t", 1)].fetch_offset, session.partitions[("t", 1)].max_bytes,
            session.partitions[("t", 1)].leader_epoch) == (7, 100, 2)
    session.move_to_end([("t", 1), ("gone", 9)])
    assert list(session.partitions) == [("t", 2), ("u", 0), ("t", 1)]


def test_a_full_cache_evicts_an_idle_session_first_then_a_smaller_old_one() -> None:
    clock = Clock()
    cache = FetchSessionCache(2, clock=clock)
    small = cache.create(_partitions(1), False)
    big = cache.create(_partitions(5), False)
    # Both live and young: no room, the fetch goes on without a session.
    assert cache.create(_partitions(9), False) == INVALID_SESSION_ID
    clock.now = EVICTION_MS + 1
    cache.touch(cache.sessions[small])  # small is in use, big idle since creation
    clock.now = EVICTION_MS + 2
    third = cache.create(_partitions(1), False)
    assert third != INVALID_SESSION_ID and set(cache.sessions) == {small, third}
    assert big not in cache.sessions
    assert cache.evictions == 1
    # Nothing idle: a bigger session displaces the smallest one old enough; a same-sized not.
    clock.now = 2 * EVICTION_MS + 3
    cache.touch(cache.sessions[small])
    cache.touch(cache.sessions[third])
    assert cache.create(_partitions(1), False) == INVALID_SESSION_ID
    fourth = cache.create(_partitions(2), False)
    assert fourth != INVALID_SESSION_ID and len(cache.sessions) == 2
    assert fourth in cache.sessions and cache.evictions == 2


def test_sessions_hold_a_bounded_number_of_partitions() -> None:
    cache = FetchSessionCache(10, max_partitions=5)
    assert cache.create(_partitions(3), False) != INVALID_SESSION_ID
    assert cache.create(_partitions(3), False) == INVALID_SESSION_ID
    assert cache.has_room(2) and not cache.has_room(3)
    assert cache.partition_count == 3
