"""The share-partition state machine (KIP-932; issue 20): acquisition, locks on an injected
clock, acknowledgement types, delivery counts and the start offset."""

from __future__ import annotations

import pytest

from rafka.broker.share.partition_state import (
    AckBatch,
    AckError,
    AckType,
    AcquiredRange,
    BatchSpan,
    RecordState,
    SharePartitionState,
)
from rafka.broker.share.sessions import ShareSessions
from rafka.protocol.errors import ErrorCode

LOCK_MS = 30_000
A, B = "member-a", "member-b"


def state(start: int = 0, limit: int = 5, max_in_flight: int = 2000) -> SharePartitionState:
    return SharePartitionState(
        start, lock_duration_ms=LOCK_MS, delivery_limit=limit, max_in_flight=max_in_flight
    )


def batches(*spans: tuple[int, int]) -> list[BatchSpan]:
    return [BatchSpan(first, last) for first, last in spans]


def ack(first: int, last: int, *types: AckType) -> AckBatch:
    return AckBatch(first, last, tuple(int(t) for t in types))


def test_acquire_hands_out_new_records_once_with_delivery_count_one() -> None:
    sp = state()
    got = sp.acquire(A, batches((0, 4), (5, 9)), high_watermark=10, max_records=100, now_ms=0)
    assert got == [AcquiredRange(0, 9, 1)]
    assert sp.end_offset == 10 and sp.start_offset == 0
    assert sp.acquire(B, batches((0, 9)), 10, 100, 1) == []  # all locked to A
    assert sp.acquirable_from(10) is None


def test_acquire_respects_max_records_and_the_high_watermark() -> None:
    sp = state()
    assert sp.acquire(A, batches((0, 9)), 10, 3, 0) == [AcquiredRange(0, 2, 1)]
    assert sp.acquire(B, batches((0, 9), (10, 14)), 12, 100, 0) == [AcquiredRange(3, 11, 1)]
    assert sp.acquirable_from(12) is None and sp.acquirable_from(15) == 12


def test_accept_advances_the_start_offset_past_a_settled_prefix() -> None:
    sp = state()
    sp.acquire(A, batches((0, 9)), 10, 100, 0)
    sp.acknowledge(A, [ack(2, 4, AckType.ACCEPT)], 1)
    assert sp.start_offset == 0  # 0 and 1 still acquired
    sp.acknowledge(A, [ack(0, 1, AckType.ACCEPT, AckType.REJECT)], 2)
    assert sp.start_offset == 5
    assert sp.state_of(5) is RecordState.ACQUIRED and sp.state_of(1) is None


def test_release_makes_records_available_and_redelivery_raises_the_count() -> None:
    sp = state()
    sp.acquire(A, batches((0, 4)), 5, 100, 0)
    sp.acknowledge(A, [ack(0, 4, AckType.ACCEPT, AckType.RELEASE, AckType.ACCEPT,
                           AckType.RELEASE, AckType.ACCEPT)], 1)  # fmt: skip
    assert sp.state_of(1) is RecordState.AVAILABLE and sp.delivery_count(1) == 1
    assert sp.start_offset == 1 and sp.acquirable_from(5) == 1
    got = sp.acquire(B, batches((0, 4)), 5, 100, 2)
    assert got == [AcquiredRange(1, 1, 2), AcquiredRange(3, 3, 2)]
    assert sp.state_of(2) is RecordState.ACKNOWLEDGED


def test_reject_archives_at_once() -> None:
    sp = state()
    sp.acquire(A, batches((0, 1)), 2, 100, 0)
    sp.acknowledge(A, [ack(1, 1, AckType.REJECT)], 1)
    assert sp.state_of(1) is RecordState.ARCHIVED
    sp.acknowledge(A, [ack(0, 0, AckType.ACCEPT)], 1)
    assert sp.start_offset == 2 and sp.records == {}


def test_lock_expiry_on_the_injected_clock_keeps_the_delivery_count() -> None:
    sp = state()
    sp.acquire(A, batches((0, 2)), 3, 100, now_ms=1_000)
    assert sp.next_deadline() == 1_000 + LOCK_MS
    assert not sp.expire(1_000 + LOCK_MS - 1)
    assert sp.state_of(0) is RecordState.ACQUIRED
    assert sp.expire(1_000 + LOCK_MS)
    assert sp.state_of(0) is RecordState.AVAILABLE and sp.delivery_count(0) == 1
    assert sp.next_deadline() is None
    # The expired holder may no longer acknowledge; the next one gets delivery count 2.
    with pytest.raises(AckError) as refused:
        sp.acknowledge(A, [ack(0, 2, AckType.ACCEPT)], 1_000 + LOCK_MS)
    assert refused.value.code == ErrorCode.invalid_record_state
    assert sp.acquire(B, batches((0, 2)), 3, 100, 40_000) == [AcquiredRange(0, 2, 2)]


def test_acquire_and_acknowledge_expire_overdue_locks_first() -> None:
    sp = state()
    sp.acquire(A, batches((0, 0)), 1, 100, 0)
    assert sp.acquire(B, batches((0, 0)), 1, 100, LOCK_MS) == [AcquiredRange(0, 0, 2)]


def test_delivery_limit_archives_after_the_last_delivery() -> None:
    sp = state(limit=3)
    now = 0
    for delivery in (1, 2, 3):
        assert sp.acquire(A, batches((0, 1)), 2, 100, now) == [AcquiredRange(0, 1, delivery)]
        if delivery < 3:
            sp.acknowledge(A, [ack(0, 0, AckType.RELEASE)], now)  # released
            now += LOCK_MS  # 1 times out
    sp.acknowledge(A, [ack(0, 0, AckType.RELEASE)], now)  # a 4th delivery would be over
    assert sp.start_offset == 1  # 0 archived, 1 still acquired
    assert sp.expire(now + LOCK_MS)  # 1 times out a third time: archived too
    assert sp.start_offset == 2 and sp.records == {} and sp.acquirable_from(2) is None


def test_acknowledgements_are_all_or_nothing_and_checked() -> None:
    sp = state()
    sp.acquire(A, batches((0, 3)), 4, 100, 0)
    sp.acquire(B, batches((4, 5)), 6, 100, 0)
    with pytest.raises(AckError) as refused:  # 4 is B's
        sp.acknowledge(A, [ack(0, 1, AckType.ACCEPT), ack(3, 4, AckType.ACCEPT)], 1)
    assert refused.value.code == ErrorCode.invalid_record_state
    assert sp.state_of(0) is RecordState.ACQUIRED  # nothing applied
    for bad in (
        [ack(0, 1, AckType.ACCEPT, AckType.ACCEPT, AckType.ACCEPT)],  # types do not match
        [ack(2, 3, AckType.ACCEPT), ack(0, 1, AckType.ACCEPT)],  # out of order
        [AckBatch(0, 0, (9,))],  # unknown type
    ):
        with pytest.raises(AckError) as refused:
            sp.acknowledge(A, bad, 1)
        assert refused.value.code == ErrorCode.invalid_request


def test_renew_restarts_the_lock() -> None:
    sp = state()
    sp.acquire(A, batches((0, 0)), 1, 100, 0)
    sp.acknowledge(A, [ack(0, 0, AckType.RENEW)], 20_000)
    assert not sp.expire(LOCK_MS) and sp.next_deadline() == 20_000 + LOCK_MS


def test_a_member_leaving_releases_what_it_holds() -> None:
    sp = state()
    sp.acquire(A, batches((0, 1)), 2, 100, 0)
    sp.acquire(B, batches((2, 3)), 4, 100, 0)
    assert sp.release_member(A)
    assert sp.state_of(0) is RecordState.AVAILABLE and sp.state_of(2) is RecordState.ACQUIRED


def test_control_records_and_gaps_are_never_delivered() -> None:
    sp = state()
    spans = [BatchSpan(0, 1), BatchSpan(2, 2, is_control=True), BatchSpan(5, 6)]  # 3-4 gone
    assert sp.acquire(A, spans, 7, 100, 0) == [AcquiredRange(0, 1, 1), AcquiredRange(5, 6, 1)]
    sp.acknowledge(A, [ack(0, 1, AckType.ACCEPT)], 1)
    assert sp.start_offset == 5


def test_in_flight_records_are_capped() -> None:
    sp = state(max_in_flight=4)
    assert sp.acquire(A, batches((0, 9)), 10, 100, 0) == [AcquiredRange(0, 3, 1)]
    assert sp.acquirable_from(10) is None
    sp.acknowledge(A, [ack(0, 1, AckType.ACCEPT)], 1)
    assert sp.acquire(B, batches((0, 9)), 10, 100, 1) == [AcquiredRange(4, 5, 1)]


def test_start_offset_follows_the_log_start() -> None:
    sp = state(start=0)
    sp.acquire(A, batches((0, 4)), 5, 100, 0)
    sp.move_start(3)
    assert sp.start_offset == 3 and sp.state_of(2) is None and sp.state_of(3) is not None


def test_share_session_epochs() -> None:
    sessions = ShareSessions(max_sessions=10)
    with pytest.raises(AckError) as refused:
        sessions.for_fetch("g", "m", 1)
    assert refused.value.code == ErrorCode.share_session_not_found
    session = sessions.for_fetch("g", "m", 0)
    assert session.epoch == 1
    with pytest.raises(AckError) as refused:
        sessions.for_fetch("g", "m", 2)
    assert refused.value.code == ErrorCode.invalid_share_session_epoch
    assert sessions.for_fetch("g", "m", 1) is session and session.epoch == 2
    assert sessions.for_acknowledge("g", "m", 2) is session and session.epoch == 3
    with pytest.raises(AckError) as refused:
        sessions.for_acknowledge("g", "m", 0)
    assert refused.value.code == ErrorCode.invalid_share_session_epoch
    assert sessions.for_fetch("g", "m", -1) is session
    assert sessions.close("g", "m") is session
    with pytest.raises(AckError):
        sessions.for_acknowledge("g", "m", -1)
