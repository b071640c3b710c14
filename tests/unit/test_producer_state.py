"""Producer state: Kafka's idempotence rules, error codes, and saving and reloading the state
through snapshot files (their byte format: test_producer_snapshot.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rafka.protocol.records import (
    ATTR_CONTROL,
    ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL,
    BatchHeader,
)
from rafka.storage.producer_snapshot import snapshot_file_name
from rafka.storage.producer_state import (
    INVALID_PRODUCER_EPOCH,
    INVALID_RECORD,
    INVALID_TXN_STATE,
    MAX_SEQUENCE,
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    TRANSACTION_COORDINATOR_FENCED,
    CompletedTxn,
    ControlType,
    ProducerStateManager,
    TxnMarker,
)

PID = 1000
T0 = 1_700_000_000_000


def batch(
    seq: int,
    count: int = 1,
    *,
    pid: int = PID,
    epoch: int = 0,
    base_offset: int = 0,
    timestamp: int = T0,
    attributes: int = 0,
) -> BatchHeader:
    return BatchHeader(
        base_offset=base_offset, batch_length=100, partition_leader_epoch=0, magic=2, crc=0,
        attributes=attributes, last_offset_delta=count - 1, base_timestamp=timestamp,
        max_timestamp=timestamp, producer_id=pid, producer_epoch=epoch, base_sequence=seq,
        records_count=count,
    )


def marker_batch(*, pid: int = PID, epoch: int = 0, base_offset: int = 0,
                 timestamp: int = T0) -> BatchHeader:
    return batch(-1, 1, pid=pid, epoch=epoch, base_offset=base_offset, timestamp=timestamp,
                 attributes=ATTR_CONTROL | ATTR_TRANSACTIONAL)


class Leader:
    """Drives check/update the way a leader's produce path does, assigning offsets."""

    def __init__(self, state: ProducerStateManager, next_offset: int = 0) -> None:
        self.state = state
        self.next_offset = next_offset

    def produce(self, header: BatchHeader, now_ms: int = T0):
        result = self.state.check(header)
        if result.accepted:
            first = self.next_offset
            last = first + header.last_offset_delta
            self.state.update(header, first, last, now_ms)
            self.next_offset = last + 1
            return result, first
        return result, None


@pytest.fixture
def state(tmp_path: Path) -> ProducerStateManager:
    return ProducerStateManager(tmp_path)


@pytest.fixture
def leader(state: ProducerStateManager) -> Leader:
    return Leader(state)


# --- sequence and epoch validation -------------------------------------------------------------


def test_in_order_batches_are_accepted_and_tracked(leader: Leader) -> None:
    assert leader.produce(batch(0, 3))[0].accepted
    assert leader.produce(batch(3, 2))[0].accepted
    info = leader.state.producer(PID)
    assert info is not None
    assert (info.producer_epoch, info.last_sequence, info.last_timestamp) == (0, 4, T0)
    assert [(b.first_offset, b.last_offset) for b in info.batches] == [(0, 2), (3, 4)]


def test_producer_id_below_zero_is_always_accepted(state: ProducerStateManager) -> None:
    header = batch(-1, 5, pid=-1, epoch=-1)
    assert state.check(header).accepted
    state.update(header, 10, 14, T0)
    assert state.producers == {}
    assert state.end_offset == 15


def test_check_does_not_mutate(state: ProducerStateManager) -> None:
    state.check(batch(0))
    assert state.producers == {}
    state.update(batch(0), 0, 0, T0)
    before = state.producers
    for header in (batch(1), batch(7), batch(0, epoch=1), batch(0)):
        state.check(header)
    assert state.producers == before


@pytest.mark.parametrize("which", range(5))
def test_duplicate_of_each_of_the_last_five_batches_returns_original_offsets(
    leader: Leader, which: int
) -> None:
    seq = 0
    originals = []
    for i in range(7):  # batches 0 and 1 fall out of the cache
        header = batch(seq, 2, timestamp=T0 + i)
        _, first = leader.produce(header)
        originals.append((header, first))
        seq += 2
    header, first = originals[2 + which]
    result = leader.state.check(header)
    assert result.is_duplicate and not result.accepted
    assert result.error_code == 0
    assert result.duplicate_of is not None
    assert result.duplicate_of.first_offset == first
    assert result.duplicate_of.last_offset == first + 1
    assert result.duplicate_of.timestamp == T0 + 2 + which


def test_duplicate_older_than_the_cache_is_out_of_order(leader: Leader) -> None:
    for seq in range(6):
        leader.produce(batch(seq))
    result = leader.state.check(batch(0))  # sequence 0 left the 5-batch cache
    assert result.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert not result.is_duplicate


def test_partial_overlap_with_a_cached_batch_is_out_of_order(leader: Leader) -> None:
    leader.produce(batch(0, 5))
    assert leader.state.check(batch(0, 3)).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_duplicate_needs_the_same_epoch(leader: Leader) -> None:
    leader.produce(batch(0, epoch=3))
    assert leader.state.check(batch(0, epoch=3)).is_duplicate
    assert leader.state.check(batch(0, epoch=4)).accepted  # a new epoch starting at 0
    assert leader.state.check(batch(0, epoch=2)).error_code == INVALID_PRODUCER_EPOCH


def test_sequence_gap_is_out_of_order(leader: Leader) -> None:
    leader.produce(batch(0, 2))
    result = leader.state.check(batch(3))
    assert result.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert "3" in result.message


def test_old_epoch_is_invalid_producer_epoch(leader: Leader) -> None:
    leader.produce(batch(0, epoch=5))
    assert leader.state.check(batch(1, epoch=4)).error_code == INVALID_PRODUCER_EPOCH
    # The epoch is checked before the sequence.
    assert leader.state.check(batch(9, epoch=4)).error_code == INVALID_PRODUCER_EPOCH


def test_new_epoch_must_start_at_sequence_zero(leader: Leader) -> None:
    leader.produce(batch(0, 10, epoch=0))
    assert leader.state.check(batch(10, epoch=1)).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
    result, _ = leader.produce(batch(0, epoch=1))
    assert result.accepted
    info = leader.state.producer(PID)
    assert info is not None
    assert (info.producer_epoch, info.last_sequence, len(info.batches)) == (1, 0, 1)
    # The old epoch's batches no longer count as duplicates, and the old epoch is fenced.
    assert leader.state.check(batch(0, 10, epoch=0)).error_code == INVALID_PRODUCER_EPOCH


def test_unknown_producer_may_start_at_any_sequence(leader: Leader) -> None:
    # KIP-360 (Kafka >= 2.5): no UNKNOWN_PRODUCER_ID, e.g. after retention removed its batches.
    result, _ = leader.produce(batch(42, 3, epoch=7))
    assert result.accepted
    assert leader.state.check(batch(45, epoch=7)).accepted
    assert leader.state.check(batch(46, epoch=7)).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_sequence_wraps_around_at_int_max(leader: Leader) -> None:
    leader.state.replay(batch(MAX_SEQUENCE - 1, 2, base_offset=0), T0)
    leader.next_offset = 2
    assert leader.state.check(batch(1)).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
    result, first = leader.produce(batch(0, 3))
    assert result.accepted and first == 2
    assert leader.state.producer(PID).last_sequence == 2  # type: ignore[union-attr]


def test_batch_spanning_the_wrap_around(leader: Leader) -> None:
    leader.state.replay(batch(MAX_SEQUENCE - 10, 1, base_offset=0), T0)
    leader.next_offset = 1
    spanning = batch(MAX_SEQUENCE - 9, 20)  # sequences MAX-9 .. MAX, 0 .. 9
    assert spanning.last_sequence == 9
    result, first = leader.produce(spanning)
    assert result.accepted
    info = leader.state.producer(PID)
    assert info is not None and info.last_sequence == 9
    assert info.batches[-1].first_sequence == MAX_SEQUENCE - 9
    dup = leader.state.check(spanning)
    assert dup.is_duplicate and dup.duplicate_of.first_offset == first  # type: ignore[union-attr]
    assert leader.state.check(batch(10)).accepted


def test_negative_sequence_with_producer_id_is_invalid_record(state: ProducerStateManager) -> None:
    assert state.check(batch(-1)).error_code == INVALID_RECORD


def test_batches_of_one_request_check_against_the_previous_ones(leader: Leader) -> None:
    leader.produce(batch(0))
    # One produce request carrying three batches of the same producer.
    results = [leader.produce(batch(seq))[0] for seq in (1, 2, 3)]
    assert all(r.accepted for r in results)
    assert leader.state.check(batch(2)).is_duplicate
    assert leader.state.check(batch(5)).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_producers_are_independent(leader: Leader) -> None:
    leader.produce(batch(0, pid=1))
    leader.produce(batch(0, pid=2))
    leader.produce(batch(1, pid=1))
    assert leader.state.check(batch(1, pid=2)).accepted
    assert leader.state.check(batch(2, pid=1)).accepted
    assert set(leader.state.producers) == {1, 2}


def test_log_append_time_is_remembered_for_log_append_time_batches(
    state: ProducerStateManager,
) -> None:
    state.update(batch(0, timestamp=5, attributes=ATTR_TIMESTAMP_TYPE), 0, 0, T0 + 99)
    assert state.producer(PID).last_timestamp == T0 + 99  # type: ignore[union-attr]
    state.update(batch(1, timestamp=T0 + 5), 1, 1, T0 + 99)
    assert state.producer(PID).last_timestamp == T0 + 5  # type: ignore[union-attr]


def test_update_rejects_offsets_that_do_not_match_the_batch(state: ProducerStateManager) -> None:
    with pytest.raises(ValueError):
        state.update(batch(0, 3), 10, 11, T0)


# --- transactions ------------------------------------------------------------------------------


def test_transaction_tracks_first_offset_and_completes_on_marker(leader: Leader) -> None:
    leader.produce(batch(0, 2, attributes=ATTR_TRANSACTIONAL))
    leader.produce(batch(2, 2, attributes=ATTR_TRANSACTIONAL))
    state = leader.state
    assert state.producer(PID).current_txn_start_offset == 0  # type: ignore[union-attr]
    assert state.first_undecided_offset == 0
    # A non-transactional write while the transaction is open is refused.
    assert state.check(batch(4)).error_code == INVALID_TXN_STATE

    marker = TxnMarker(ControlType.COMMIT, coordinator_epoch=3)
    assert state.check(marker_batch(), marker).accepted
    completed = state.update(marker_batch(), 4, 4, T0, marker)
    assert completed == CompletedTxn(PID, first_offset=0, last_offset=4, is_aborted=False)
    info = state.producer(PID)
    assert info is not None
    assert (info.current_txn_start_offset, info.coordinator_epoch) == (-1, 3)
    assert state.first_undecided_offset is None
    # Same epoch after a TV0/1 marker: the sequence continues.
    assert state.check(batch(4)).accepted


def test_marker_epoch_bump_resets_sequences(state: ProducerStateManager) -> None:
    state.replay(batch(0, 3, attributes=ATTR_TRANSACTIONAL), T0)
    completed = state.replay(marker_batch(epoch=1, base_offset=3),
                             T0, TxnMarker(ControlType.ABORT, 0))
    assert completed == CompletedTxn(PID, 0, 3, is_aborted=True)
    info = state.producer(PID)
    assert info is not None and info.producer_epoch == 1 and info.last_sequence == -1
    assert state.check(batch(3, epoch=1)).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert state.check(batch(0, epoch=0)).error_code == INVALID_PRODUCER_EPOCH
    assert state.check(batch(0, epoch=1)).accepted


def test_marker_only_state_with_same_epoch_needs_sequence_zero(
    state: ProducerStateManager,
) -> None:
    state.replay(marker_batch(epoch=2, base_offset=27), T0, TxnMarker(ControlType.COMMIT, 0))
    assert state.check(batch(17, epoch=2)).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert state.check(batch(0, epoch=2)).accepted


def test_marker_checks_epoch_and_coordinator_epoch(state: ProducerStateManager) -> None:
    state.replay(batch(0, epoch=5, attributes=ATTR_TRANSACTIONAL), T0)
    state.replay(marker_batch(epoch=5, base_offset=1), T0, TxnMarker(ControlType.COMMIT, 4))
    ok = TxnMarker(ControlType.COMMIT, 4)
    assert state.check(marker_batch(epoch=4), ok).error_code == INVALID_PRODUCER_EPOCH
    # The transaction already ended here: the same marker again ends nothing.
    assert state.check(marker_batch(epoch=5), ok).redundant
    assert state.check(marker_batch(epoch=5), TxnMarker(ControlType.COMMIT, 5)).accepted
    assert state.check(marker_batch(epoch=6), ok).accepted
    fenced = state.check(marker_batch(epoch=5), TxnMarker(ControlType.COMMIT, 3))
    assert fenced.error_code == TRANSACTION_COORDINATOR_FENCED
    # TV2 markers must bump the epoch; an equal epoch only passes as a retry of a finished txn.
    assert state.check(marker_batch(epoch=5), ok, transaction_version=2).redundant
    state.replay(batch(0, epoch=6, base_offset=2, attributes=ATTR_TRANSACTIONAL), T0)
    assert state.check(marker_batch(epoch=6), ok, transaction_version=2).error_code == (
        INVALID_PRODUCER_EPOCH)
    assert state.check(marker_batch(epoch=7), ok, transaction_version=2).accepted


def test_marker_ends_only_an_undecided_transaction(state: ProducerStateManager) -> None:
    """Transaction version 1: consecutive transactions share the producer and coordinator
    epochs, so a marker is only appended when it has a transaction to end (or a newer epoch
    to record); a retried or delayed copy of the last one is answered without an append."""
    commit, abort = TxnMarker(ControlType.COMMIT, 2), TxnMarker(ControlType.ABORT, 2)
    assert state.check(marker_batch(epoch=3), commit).accepted  # no state: as Kafka
    state.replay(batch(0, epoch=3, attributes=ATTR_TRANSACTIONAL), T0)
    assert state.check(marker_batch(epoch=3), commit).accepted
    state.replay(marker_batch(epoch=3, base_offset=1), T0, commit)
    for marker in (commit, abort):
        check = state.check(marker_batch(epoch=3), marker)
        assert check.redundant and check.error_code == 0 and not check.accepted
    state.replay(batch(1, epoch=3, base_offset=2, attributes=ATTR_TRANSACTIONAL), T0)
    assert state.check(marker_batch(epoch=3), abort).accepted


def test_duplicate_of_a_batch_whose_transaction_ended_is_refused(leader: Leader) -> None:
    """A transactional batch that repeats the sequence numbers of one already ended by a marker
    is no retry (the client reused an aborted batch's numbers): out of order, never a duplicate
    answered with the aborted batch's offsets."""
    state = leader.state
    first, offset = leader.produce(batch(0, 3, epoch=2, attributes=ATTR_TRANSACTIONAL))
    assert first.accepted and offset == 0
    retry = state.check(batch(0, 3, epoch=2, attributes=ATTR_TRANSACTIONAL))
    assert retry.duplicate_of is not None and retry.duplicate_of.first_offset == 0
    abort = TxnMarker(ControlType.ABORT, 0)
    state.update(marker_batch(epoch=2), 3, 3, T0, abort)
    leader.next_offset = 4
    reused = state.check(batch(0, 3, epoch=2, attributes=ATTR_TRANSACTIONAL))
    assert reused.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER and reused.duplicate_of is None
    # The next transaction's own batches are still recognised when retried.
    nxt, offset = leader.produce(batch(3, 2, epoch=2, attributes=ATTR_TRANSACTIONAL))
    assert nxt.accepted and offset == 4
    again = state.check(batch(3, 2, epoch=2, attributes=ATTR_TRANSACTIONAL))
    assert again.duplicate_of is not None and again.duplicate_of.first_offset == 4
    old = state.check(batch(0, 3, epoch=2, attributes=ATTR_TRANSACTIONAL))
    assert old.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_control_batch_without_marker_is_a_caller_error(state: ProducerStateManager) -> None:
    with pytest.raises(ValueError):
        state.replay(marker_batch(), T0)
    empty = BatchHeader(0, 49, 0, 2, 0, ATTR_CONTROL | ATTR_TRANSACTIONAL, 0, T0, T0, PID, 0,
                        -1, 0)
    assert state.replay(empty, T0) is None  # a cleaned-out marker batch is skipped


# --- expiration --------------------------------------------------------------------------------


def test_idle_producers_expire_but_not_during_a_transaction(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path, max_producer_id_expiration_ms=1000)
    state.replay(batch(0, pid=1, base_offset=0, timestamp=T0), T0)
    state.replay(batch(0, pid=2, base_offset=1, timestamp=T0 + 500), T0)
    state.replay(batch(0, pid=3, base_offset=2, timestamp=T0, attributes=ATTR_TRANSACTIONAL), T0)
    state.remove_expired_producers(T0 + 999)
    assert set(state.producers) == {1, 2, 3}
    state.remove_expired_producers(T0 + 1000)
    assert set(state.producers) == {2, 3}
    state.remove_expired_producers(T0 + 10_000)
    assert set(state.producers) == {3}
    # An expired producer is unknown again: any sequence is accepted.
    assert state.check(batch(5, pid=1)).accepted


# --- snapshots ---------------------------------------------------------------------------------


def test_snapshot_round_trip(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    leader = Leader(state)
    leader.produce(batch(0, 3, pid=1, epoch=2, timestamp=T0 + 1))
    leader.produce(batch(3, 2, pid=1, epoch=2, timestamp=T0 + 2))
    leader.produce(batch(0, 1, pid=2, attributes=ATTR_TRANSACTIONAL, timestamp=T0 + 3))
    state.replay(marker_batch(pid=3, epoch=4, base_offset=6), T0, TxnMarker(ControlType.ABORT, 9))
    path = state.take_snapshot(7)
    assert path == tmp_path / "00000000000000000007.snapshot"
    assert not list(tmp_path.glob("*.tmp"))

    reloaded = ProducerStateManager(tmp_path)
    assert reloaded.load_latest_snapshot(0, 7) == 7
    assert reloaded.end_offset == 7
    original = state.producers
    loaded = reloaded.producers
    assert set(loaded) == {1, 2, 3}
    for pid in (1, 2, 3):
        a, b = original[pid], loaded[pid]
        assert (a.producer_epoch, a.last_sequence, a.last_timestamp, a.coordinator_epoch,
                a.current_txn_start_offset) == (b.producer_epoch, b.last_sequence,
                                                b.last_timestamp, b.coordinator_epoch,
                                                b.current_txn_start_offset)
    # Every cached batch comes back (Kafka's snapshot keeps only the last one).
    assert loaded[1].batches == original[1].batches
    assert loaded[3].batches == ()
    assert loaded[2].current_txn_start_offset == 5
    assert loaded[3].coordinator_epoch == 9
    # The reloaded state recognises the last batch as a duplicate and continues the sequence.
    dup = reloaded.check(batch(3, 2, pid=1, epoch=2))
    assert dup.is_duplicate and dup.duplicate_of.first_offset == 3  # type: ignore[union-attr]
    assert reloaded.check(batch(5, pid=1, epoch=2)).accepted


def test_take_snapshot_below_applied_state_is_refused(state: ProducerStateManager) -> None:
    state.replay(batch(0, 5, base_offset=10), T0)
    with pytest.raises(ValueError):
        state.take_snapshot(14)
    state.take_snapshot(15)


def _state_with_snapshots(tmp_path: Path, offsets: list[int]) -> ProducerStateManager:
    state = ProducerStateManager(tmp_path)
    for i, offset in enumerate(offsets):
        state.replay(batch(i, pid=PID, base_offset=offset - 1), T0)
        state.take_snapshot(offset)
    return state


def test_load_latest_snapshot_picks_newest_at_or_below_log_end(tmp_path: Path) -> None:
    _state_with_snapshots(tmp_path, [10, 20, 30])
    state = ProducerStateManager(tmp_path)
    assert state.load_latest_snapshot(0, 25) == 20
    assert state.producer(PID).last_sequence == 1  # type: ignore[union-attr]
    assert state.snapshot_offsets() == [10, 20]  # the one beyond the log end is gone


def test_load_latest_snapshot_skips_and_deletes_corrupt_files(tmp_path: Path) -> None:
    _state_with_snapshots(tmp_path, [10, 20])
    newest = tmp_path / snapshot_file_name(20)
    raw = bytearray(newest.read_bytes())
    raw[-1] ^= 0xFF
    newest.write_bytes(bytes(raw))
    (tmp_path / (snapshot_file_name(30) + ".tmp")).write_bytes(b"partial")
    (tmp_path / "00000000000000000000.log").write_bytes(b"")
    state = ProducerStateManager(tmp_path)
    assert state.load_latest_snapshot(0, 100) == 10
    assert state.producer(PID).last_sequence == 0  # type: ignore[union-attr]
    assert state.snapshot_offsets() == [10]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000000000000000000.log", snapshot_file_name(10)]


def test_load_without_snapshot_replays_from_log_start(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    assert state.load_latest_snapshot(40, 100) == 40
    assert state.producers == {}
    _state_with_snapshots(tmp_path, [10])
    # A snapshot below the log start still carries producers; replay starts at the log start.
    assert state.load_latest_snapshot(40, 100) == 40
    assert set(state.producers) == {PID}


def test_delete_snapshots_before_keeps_state(tmp_path: Path) -> None:
    state = _state_with_snapshots(tmp_path, [10, 20, 30])
    before = state.producers
    state.delete_snapshots_before(20)
    assert state.snapshot_offsets() == [20, 30]
    assert state.producers == before


def _log(num_batches: int) -> list[tuple[BatchHeader, TxnMarker | None]]:
    """Batches of three producers: 2 bumps its epoch halfway, 3 writes transactions."""
    entries: list[tuple[BatchHeader, TxnMarker | None]] = []
    seqs = {1: 0, 2: 0, 3: 0}
    epochs = {1: 0, 2: 0, 3: 0}
    offset = 0
    for i in range(num_batches):
        pid = 1 + i % 3
        if pid == 2 and i >= num_batches // 2 and epochs[2] == 0:
            epochs[2], seqs[2] = 1, 0
        if pid == 3 and i % 12 == 11:  # end the open transaction
            marker = TxnMarker(ControlType.COMMIT, coordinator_epoch=i)
            entries.append((marker_batch(pid=3, base_offset=offset, timestamp=T0 + i), marker))
            offset += 1
            continue
        attrs = ATTR_TRANSACTIONAL if pid == 3 else 0
        header = batch(seqs[pid], 2, pid=pid, epoch=epochs[pid], base_offset=offset,
                       timestamp=T0 + i, attributes=attrs)
        entries.append((header, None))
        seqs[pid] += 2
        offset += 2
    return entries


def test_truncate_then_replay_matches_a_fresh_replay(tmp_path: Path) -> None:
    log = _log(60)
    (tmp_path / "a").mkdir()
    state = ProducerStateManager(tmp_path / "a")
    for i, (header, marker) in enumerate(log):
        state.replay(header, T0, marker)
        if i % 10 == 9:
            state.take_snapshot(header.last_offset + 1)
    snapshot_offsets = state.snapshot_offsets()
    assert len(snapshot_offsets) == 6

    truncate_at = log[45][0].base_offset  # the log keeps the batches below it
    replay_from = state.truncate_to(truncate_at, log_start_offset=0)
    assert replay_from == max(o for o in snapshot_offsets if o <= truncate_at)
    assert state.snapshot_offsets() == [o for o in snapshot_offsets if o <= truncate_at]
    for header, marker in log:
        if replay_from <= header.base_offset < truncate_at:
            state.replay(header, T0, marker)

    fresh = ProducerStateManager(tmp_path / "b")
    for header, marker in log:
        if header.base_offset < truncate_at:
            fresh.replay(header, T0, marker)

    assert state.end_offset == fresh.end_offset == truncate_at
    got, want = state.producers, fresh.producers
    assert set(got) == set(want) == {1, 2, 3}
    assert want[2].producer_epoch == 1
    for pid in want:
        assert got[pid].batches == want[pid].batches
        assert (got[pid].producer_epoch, got[pid].last_sequence, got[pid].last_timestamp,
                got[pid].coordinator_epoch, got[pid].current_txn_start_offset) == (
            want[pid].producer_epoch, want[pid].last_sequence, want[pid].last_timestamp,
            want[pid].coordinator_epoch, want[pid].current_txn_start_offset)
    # Validation of each producer's next batch agrees.
    for pid, info in want.items():
        nxt = batch(info.last_sequence + 1, pid=pid, epoch=info.producer_epoch,
                    attributes=ATTR_TRANSACTIONAL if pid == 3 else 0)
        assert state.check(nxt) == fresh.check(nxt)
        assert state.check(nxt).accepted


def test_truncate_forgets_batches_at_and_above_the_offset(state: ProducerStateManager) -> None:
    for seq in range(4):
        state.replay(batch(seq, base_offset=seq), T0)
    assert state.truncate_to(2, log_start_offset=0) == 0  # no snapshot: replay from the start
    assert state.producers == {}
    for seq in range(2):
        state.replay(batch(seq, base_offset=seq), T0)
    assert state.check(batch(2)).accepted
    assert state.check(batch(3)).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER


def test_truncate_at_or_beyond_the_end_keeps_state(state: ProducerStateManager) -> None:
    state.replay(batch(0, 5, base_offset=0), T0)
    before = state.producers
    assert state.truncate_to(5, log_start_offset=0) == 5
    assert state.producers == before
