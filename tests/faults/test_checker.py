"""The checker on synthetic histories: a consistent one passes, and each anomaly is reported."""

from __future__ import annotations

import pytest
from checker import (
    ABORTED_READ,
    COMMIT_BACKWARDS,
    DIVERGED,
    DUPLICATE,
    DUPLICATE_PRODUCER_ID,
    LOST_WRITE,
    PHANTOM_OFFSET,
    REORDERED,
    STALE_OFFSET_FETCH,
    TWO_VALUES,
    UNKNOWN_VALUE,
    VANISHED,
    History,
    OffsetCommit,
    OffsetFetch,
    Read,
    Txn,
    Write,
    check,
    resent_after_epoch_bump,
    summarize,
)

Q = ("queue", 0)
T = ("txn", 0)


def consistent() -> History:
    """Three acknowledged idempotent writes, one plain write retried into a duplicate, a
    committed and an aborted transaction, reads, group commits and producer ids: all fine."""
    writes = [
        Write("idem", True, Q, b"a", 0.0, offset=0, acked_at=0.1),
        Write("idem", True, Q, b"b", 0.1, offset=1, acked_at=0.2),
        Write("plain", False, Q, b"p", 0.1, offset=2, acked_at=0.3),
        Write("idem", True, Q, b"c", 0.2, offset=4, acked_at=0.4),
        Write("idem", True, Q, b"unacked", 0.3),
    ]
    # Offsets 1 and 3 of the transactional partition hold the COMMIT and ABORT markers.
    final = {
        Q: [(0, b"a"), (1, b"b"), (2, b"p"), (3, b"p"), (4, b"c")],
        T: [(0, b"t1"), (2, b"t2")],
    }
    txns = [
        Txn("t-1", "committed", ((T, b"t1"),)),
        Txn("t-2", "aborted", ((T, b"t2"),)),
        Txn("t-3", "unknown", ((T, b"t3"),)),
    ]
    return History(
        writes=writes,
        txns=txns,
        reads=[
            Read("tail", Q, 0, b"a", False, 1.0),
            Read("tail", Q, 3, b"p", False, 1.0),
            Read("committed", T, 0, b"t1", True, 1.0),
            Read("uncommitted", T, 2, b"t2", False, 1.0),
        ],
        commits=[
            OffsetCommit("g", Q, 1, True, 0.0, 0.1),
            OffsetCommit("g", Q, 2, False, 0.2, 0.3),  # unknown: may or may not have landed
            OffsetCommit("g", Q, 3, True, 0.4, 0.5),
        ],
        fetches=[
            OffsetFetch("g", Q, 1, 0.15, 0.16),
            OffsetFetch("g", Q, 2, 0.35, 0.36),
            OffsetFetch("g", Q, 1, 0.34, 0.45),  # concurrent with the read of 2: may be older
            OffsetFetch("g", Q, 3, 0.6, 0.7),
            OffsetFetch("other", Q, -1, 0.6, 0.7),
        ],
        producer_ids=[(1, 1000), (2, 2000), (1, 1001)],
        final=final,
        final_committed={T: [(0, b"t1")]},
        replicas={
            "1": {Q: list(final[Q]), T: list(final[T])},
            "2": {Q: list(final[Q]), T: list(final[T])},
        },
    )


def kinds(history: History) -> set[str]:
    return set(summarize(check(history)))


def test_a_consistent_history_has_no_anomalies() -> None:
    assert check(consistent()) == []


def test_acknowledged_write_missing_at_the_end_is_lost() -> None:
    history = consistent()
    history.final[Q] = [row for row in history.final[Q] if row[1] != b"b"]
    history.replicas = {}
    assert LOST_WRITE in kinds(history)


def test_acknowledged_write_stored_elsewhere_is_lost_at_its_offset() -> None:
    history = consistent()
    history.writes[0] = Write("idem", True, Q, b"a", 0.0, offset=7, acked_at=0.1)
    anomalies = [a for a in check(history) if a.kind == LOST_WRITE]
    assert len(anomalies) == 1 and "stored at" in anomalies[0].detail


def test_committed_transaction_missing_from_read_committed_is_lost() -> None:
    history = consistent()
    history.final_committed[T] = []
    assert kinds(history) == {LOST_WRITE}


def test_idempotent_value_stored_twice_is_a_duplicate() -> None:
    history = consistent()
    history.final[Q].append((5, b"c"))
    history.replicas = {}
    assert kinds(history) == {DUPLICATE}


def test_a_value_stored_once_per_producer_epoch_is_a_client_resend() -> None:
    history = consistent()
    history.final[Q].append((5, b"c"))
    history.replicas = {}
    history.producer_sessions[Q] = {4: (7, 0), 5: (7, 1)}
    assert kinds(history) == set()
    assert resent_after_epoch_bump(history) == ["b'c' at [(('queue', 0), 4), (('queue', 0), 5)]"]
    history.producer_sessions[Q] = {4: (7, 1), 5: (7, 1)}  # one session: the broker's fault
    assert kinds(history) == {DUPLICATE}


def test_plain_producer_duplicate_is_allowed() -> None:
    assert DUPLICATE not in kinds(consistent())


def test_one_offset_with_two_values() -> None:
    history = consistent()
    history.reads.append(Read("tail", Q, 1, b"x", False, 1.0))
    found = kinds(history)
    assert TWO_VALUES in found
    assert VANISHED not in found or UNKNOWN_VALUE in found


def test_node_copy_holding_another_value_is_two_values_and_divergence() -> None:
    history = consistent()
    history.replicas["2"][Q][1] = (1, b"c")
    assert {TWO_VALUES, DIVERGED} <= kinds(history)


def test_node_copy_shorter_than_the_answer_diverges() -> None:
    history = consistent()
    history.replicas["1"][Q].pop()
    assert kinds(history) == {DIVERGED}


def test_value_read_then_gone_vanished() -> None:
    history = consistent()
    history.writes.append(Write("idem", True, Q, b"d", 0.5))
    history.reads.append(Read("tail", Q, 5, b"d", False, 1.0))
    assert kinds(history) == {VANISHED}


def test_value_nobody_wrote() -> None:
    history = consistent()
    history.reads.append(Read("tail", Q, 9, b"zzz", False, 1.0))
    assert UNKNOWN_VALUE in kinds(history)


def test_idempotent_values_out_of_send_order() -> None:
    history = consistent()
    history.final[Q] = [(0, b"b"), (1, b"a"), (2, b"p"), (3, b"p"), (4, b"c")]
    history.writes[0] = Write("idem", True, Q, b"a", 0.0, offset=1, acked_at=0.1)
    history.writes[1] = Write("idem", True, Q, b"b", 0.1, offset=0, acked_at=0.2)
    history.replicas = {}
    history.reads = []
    assert kinds(history) == {REORDERED}


@pytest.mark.parametrize("where", ["live", "final"])
def test_read_committed_returning_an_aborted_record(where: str) -> None:
    history = consistent()
    if where == "live":
        history.reads.append(Read("committed", T, 2, b"t2", True, 1.0))
    else:
        history.final_committed[T].append((2, b"t2"))
    assert ABORTED_READ in kinds(history)


def test_offset_fetch_older_than_an_acknowledged_commit_is_stale() -> None:
    history = consistent()
    history.fetches.append(OffsetFetch("g", Q, 1, 0.8, 0.9))
    assert STALE_OFFSET_FETCH in kinds(history)


def test_committed_offset_read_lower_than_an_earlier_read_moved_backwards() -> None:
    history = consistent()
    # 2 was read at 0.36 (its commit never acknowledged); 1 read afterwards is a step back.
    history.fetches.append(OffsetFetch("g", Q, 1, 0.37, 0.38))
    assert kinds(history) == {COMMIT_BACKWARDS}


def test_offset_fetch_answering_an_offset_never_committed() -> None:
    history = consistent()
    history.fetches.append(OffsetFetch("g", Q, 42, 0.8, 0.9))
    assert kinds(history) == {PHANTOM_OFFSET}


def test_producer_id_handed_out_twice() -> None:
    history = consistent()
    history.producer_ids.append((3, 1000))
    anomalies = check(history)
    assert [a.kind for a in anomalies] == [DUPLICATE_PRODUCER_ID]
    assert "nodes [1, 3]" in anomalies[0].detail
