"""The aborted-transaction index (Kafka's .txnindex) and its rebuild from the log."""

from __future__ import annotations

import struct
from pathlib import Path

from rafka.protocol.records import build_batch, build_control_batch, decode_batch
from rafka.storage.config import LogConfig
from rafka.storage.log import PartitionLog
from rafka.storage.producer_state import ControlType, ProducerStateManager, TxnMarker
from rafka.storage.txn_index import (
    ENTRY_SIZE,
    AbortedTxn,
    TransactionIndex,
    read_txn_marker,
    replay_into,
    txn_index_file_name,
)


def test_entries_use_kafkas_34_byte_layout(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path)
    index.append(AbortedTxn(7, 10, 20, 21), segment_base=0)
    data = (tmp_path / txn_index_file_name(0)).read_bytes()
    assert ENTRY_SIZE == 34
    assert data == struct.pack(">hqqqq", 0, 7, 10, 20, 21)


def test_collect_returns_overlapping_aborts_and_stops_at_the_stable_bound(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path)
    index.append(AbortedTxn(1, 0, 5, 6), 0)
    index.append(AbortedTxn(2, 3, 9, 10), 0)
    index.append(AbortedTxn(3, 12, 15, 16), 0)
    index.append(AbortedTxn(4, 20, 30, 31), 0)
    assert [e.producer_id for e in index.collect(0, 100)] == [1, 2, 3, 4]
    # Ended before the fetch offset: not needed.
    assert [e.producer_id for e in index.collect(6, 100)] == [2, 3, 4]
    # Started at or after the upper bound: not needed, and the scan stops once an entry's
    # last stable offset reaches the bound.
    assert [e.producer_id for e in index.collect(0, 12)] == [1, 2]
    assert [e.producer_id for e in index.collect(10, 13)] == [3]
    assert index.collect(31, 100) == []


def test_load_drops_retained_files_past_end_entries_and_torn_tails(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path)
    index.append(AbortedTxn(1, 0, 5, 6), 0)
    index.append(AbortedTxn(2, 101, 105, 106), 100)
    index.append(AbortedTxn(3, 106, 110, 111), 100)
    with open(tmp_path / txn_index_file_name(100), "ab") as f:
        f.write(b"\x00\x00\x01")  # a torn write
    loaded = TransactionIndex.load(tmp_path, first_segment_base=100, log_end_offset=108)
    assert [e.producer_id for e in loaded.entries] == [2]
    assert not (tmp_path / txn_index_file_name(0)).exists()
    assert (tmp_path / txn_index_file_name(100)).stat().st_size == ENTRY_SIZE


def test_truncate_and_delete_below(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path)
    index.append(AbortedTxn(1, 0, 5, 6), 0)
    index.append(AbortedTxn(2, 8, 12, 13), 10)
    index.append(AbortedTxn(3, 13, 14, 15), 10)
    index.truncate_to(14)
    assert [e.producer_id for e in index.entries] == [1, 2]
    assert TransactionIndex.load(tmp_path, 0, 100).entries == index.entries
    index.delete_below(10)
    assert [e.producer_id for e in index.entries] == [2]
    assert not (tmp_path / txn_index_file_name(0)).exists()


def _log_with_transactions(directory: Path) -> PartitionLog:
    """pid 1 aborts [1, 2], pid 2 commits [3], pid 3 stays open at 6."""
    log = PartitionLog.open(directory, LogConfig(), now_ms=0)

    def append(batch: bytes) -> None:
        base = log.log_end_offset
        data = bytearray(batch)
        struct.pack_into(">q", data, 0, base)
        count = struct.unpack_from(">i", data, 23)[0]
        log.append(data, base, base + count, 0, base + count, 0, 0)

    def data(pid: int, seq: int, n: int = 1) -> bytes:
        return build_batch(
            [(None, b"v", (), 0)] * n, producer_id=pid, producer_epoch=0, base_sequence=seq,
            is_transactional=True,
        )

    def marker(pid: int, kind: ControlType) -> bytes:
        return build_control_batch(kind, timestamp=0, producer_id=pid, producer_epoch=0,
                                   coordinator_epoch=4)

    append(build_batch([(None, b"plain", (), 0)]))  # 0
    append(data(1, 0, 2))  # 1-2
    append(data(2, 0))  # 3
    append(marker(1, ControlType.ABORT))  # 4
    append(marker(2, ControlType.COMMIT))  # 5
    append(data(3, 0))  # 6
    return log


def test_read_txn_marker() -> None:
    batch = build_control_batch(ControlType.COMMIT, timestamp=0, producer_id=1,
                                coordinator_epoch=9)
    assert read_txn_marker(batch) == TxnMarker(ControlType.COMMIT, 9)
    leader_change = build_control_batch(2, timestamp=0, leader_id=1, voters=[1])
    assert read_txn_marker(leader_change) is None


def test_replay_rebuilds_producer_state_and_lost_index_entries(tmp_path: Path) -> None:
    log = _log_with_transactions(tmp_path)
    producers = ProducerStateManager(tmp_path)
    index = TransactionIndex(tmp_path)  # as if the .txnindex file never reached the disk
    replay_into(log, producers, index, 0)
    # At the abort, pid 2 still had [3] undecided: that bounds the entry.
    assert index.entries == (AbortedTxn(1, 1, 4, 3),)
    assert producers.first_undecided_offset == 6
    assert producers.ongoing_transactions == {3: 6}
    assert producers.producer(2).coordinator_epoch == 4
    # Replaying again (a second crash) does not duplicate the entry.
    replay_into(log, ProducerStateManager(tmp_path), index, 0)
    assert len(index) == 1
    loaded = TransactionIndex.load(tmp_path, 0, log.log_end_offset)
    assert loaded.entries == index.entries
    log.close()


def test_cleaner_drops_aborted_batches_without_letting_them_shadow_older_records(
    tmp_path: Path,
) -> None:
    from rafka.storage.cleaner import clean, cleanable_range, install

    config = LogConfig(segment_bytes=2048, cleanup_policy="compact", min_cleanable_dirty_ratio=0.0)
    log = PartitionLog.open(tmp_path / "offsets-0", config, now_ms=0)

    def append(batch: bytes) -> int:
        base = log.log_end_offset
        header_count = struct.unpack_from(">i", batch, 23)[0]
        data = bytearray(batch)
        struct.pack_into(">q", data, 0, base)
        log.append(data, base, base + header_count, 1000, base + header_count, 0, 1000)
        return base

    append(build_batch([(b"k", b"committed", (), 1000)]))
    aborted_at = append(build_batch([(b"k", b"aborted", (), 1000)], producer_id=5,
                                    producer_epoch=0, base_sequence=0, is_transactional=True))
    marker_at = append(build_control_batch(ControlType.ABORT, timestamp=1000, producer_id=5,
                                           producer_epoch=0))
    append(build_batch([(b"other", b"x", (), 1000)]))
    log.roll(1000)
    index = TransactionIndex(tmp_path / "offsets-0")
    index.append(AbortedTxn(5, aborted_at, marker_at, marker_at + 1), 0)

    cleanable = cleanable_range(log, 0, log.log_end_offset, 10_000)
    assert cleanable is not None
    install(log, clean(log, cleanable, 10_000, is_aborted_txn=index.aborted_batches()))
    values = []
    for header, batch in log.iter_batches(0):
        if not header.is_control:
            values += [(r.key, r.value) for r in decode_batch(batch)[1]]
    assert values == [(b"k", b"committed"), (b"other", b"x")]
    log.close()
