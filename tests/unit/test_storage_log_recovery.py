"""Opening a log after an unclean shutdown: CRC scan from the recovery point, truncation at the
first bad batch, index rebuild."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_storage_support import append_batch

from rafka.storage.config import LogConfig
from rafka.storage.leader_epoch import EpochEntry
from rafka.storage.log import PartitionLog

CONFIG = LogConfig(segment_bytes=1024, index_interval_bytes=100)


def open_log(path: Path, **kwargs: object) -> PartitionLog:
    kwargs.setdefault("now_ms", 0)
    return PartitionLog.open(path / "t-0", CONFIG, **kwargs)  # type: ignore[arg-type]


def written_log(path: Path, batches: int = 40, **kwargs: object) -> list[bytes]:
    log = open_log(path)
    out = [
        append_batch(log, 3, timestamp=1000 + i, **kwargs)  # type: ignore[arg-type]
        for i in range(batches)
    ]
    log.close()
    return out


def segment_file(path: Path, base: int, suffix: str = ".log") -> Path:
    return path / "t-0" / f"{base:020d}{suffix}"


def segment_bases(path: Path) -> list[int]:
    return sorted(int(p.name[:20]) for p in (path / "t-0").glob("*.log"))


def test_torn_tail_is_truncated(tmp_path: Path) -> None:
    batches = written_log(tmp_path)
    last_base = segment_bases(tmp_path)[-1]
    tail = segment_file(tmp_path, last_base)
    size = tail.stat().st_size
    os.truncate(tail, size - len(batches[-1]) // 2)
    log = open_log(tmp_path, recovery_point=0)
    assert log.log_end_offset == 117
    assert log.read(0, 1_000_000) == b"".join(batches[:-1])
    assert tail.stat().st_size == size - len(batches[-1])
    assert log.recovery_point == 0
    # Appends continue where the valid data ends, and the result survives a clean reopen.
    again = append_batch(log, 3, timestamp=5000)
    assert log.flush() == 120
    log.close()
    reopened = open_log(tmp_path, clean_shutdown=True)
    assert reopened.read(0, 1_000_000) == b"".join(batches[:-1]) + again


def test_corrupt_middle_batch_cuts_the_log_there(tmp_path: Path) -> None:
    batches = written_log(tmp_path)
    bases = segment_bases(tmp_path)
    assert len(bases) >= 4
    victim_segment = bases[1]
    per_segment = bases[1] // 3
    victim = per_segment + 2  # third batch of the second segment
    path = segment_file(tmp_path, victim_segment)
    raw = bytearray(path.read_bytes())
    raw[2 * len(batches[0]) + 65] ^= 0x01  # a record byte: covered by the CRC
    path.write_bytes(raw)

    log = open_log(tmp_path, recovery_point=0)
    assert log.log_end_offset == victim * 3
    assert [s.base_offset for s in log.segments] == bases[:2]
    assert segment_bases(tmp_path) == bases[:2]
    assert not list((tmp_path / "t-0").glob(f"{bases[2]:020d}.*"))
    assert log.read(0, 1_000_000) == b"".join(batches[:victim])
    # Rebuilt indexes give the right answers for every offset.
    for offset in range(victim * 3):
        assert log.read(offset, 1) == batches[offset // 3]
    found = log.first_batch_with_timestamp_at_least(1000 + victim + 1)  # batch i: max 1002+i
    assert found == ((victim - 1) * 3, batches[victim - 1])
    assert log.max_timestamp_batch() == ((victim - 1) * 3, batches[victim - 1])


def test_recovery_starts_at_the_recovery_point(tmp_path: Path) -> None:
    batches = written_log(tmp_path)
    bases = segment_bases(tmp_path)
    # Damage the first segment: below the recovery point it is trusted and not scanned.
    path = segment_file(tmp_path, 0)
    raw = bytearray(path.read_bytes())
    raw[len(batches[0]) + 65] ^= 0x01
    path.write_bytes(raw)
    log = open_log(tmp_path, recovery_point=bases[2] + 1)
    assert log.log_end_offset == 120
    assert log.recovery_point == bases[2] + 1
    log.close()
    log = open_log(tmp_path, recovery_point=0)
    assert log.log_end_offset == 3
    assert segment_bases(tmp_path) == [0]


def test_unflushed_recovered_segments_are_synced_by_the_next_flush(tmp_path: Path) -> None:
    written_log(tmp_path)
    log = open_log(tmp_path, recovery_point=50)
    assert log.recovery_point == 50
    assert any(segment.needs_sync for segment in log.segments)
    assert log.flush() == 120
    assert log.recovery_point == 120
    assert not any(segment.needs_sync for segment in log.segments)


def test_garbage_after_the_last_batch(tmp_path: Path) -> None:
    batches = written_log(tmp_path, batches=5)
    path = segment_file(tmp_path, 0)
    with open(path, "ab") as file:
        file.write(b"\x00" * 100)  # e.g. preallocated space after a crash
    log = open_log(tmp_path)
    assert log.log_end_offset == 15
    assert log.read(0, 10_000) == b"".join(batches)


def test_batch_with_out_of_order_offset_ends_the_log(tmp_path: Path) -> None:
    batches = written_log(tmp_path, batches=5)
    path = segment_file(tmp_path, 0)
    raw = bytearray(path.read_bytes())
    # baseOffset is not covered by the CRC: set batch 3's to batch 1's.
    position = 3 * len(batches[0])
    raw[position : position + 8] = (3).to_bytes(8, "big")
    path.write_bytes(raw)
    log = open_log(tmp_path)
    assert log.log_end_offset == 9


def _flip(path: Path, position: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[position] ^= 0xFF
    path.write_bytes(raw)


def test_flipped_base_offset_leaving_a_gap_ends_the_log(tmp_path: Path) -> None:
    # The fault suite's case: a byte of the last batch's baseOffset flipped (no CRC covers it)
    # made the batch start far beyond the log end; recovery took it, a later truncation left a
    # hole. Without compaction nothing leaves gaps, so the batch is invalid.
    batches = written_log(tmp_path, batches=5)
    _flip(segment_file(tmp_path, 0), 4 * len(batches[0]) + 5)
    log = open_log(tmp_path)
    assert log.log_end_offset == 12
    assert log.read(0, 10_000) == b"".join(batches[:4])


def test_a_compacted_log_keeps_its_gaps(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=1024, index_interval_bytes=100, cleanup_policy="compact")
    log = PartitionLog.open(tmp_path / "t-0", config, now_ms=0)
    for _ in range(3):
        append_batch(log, 3)
    log.close()
    batches_len = segment_file(tmp_path, 0).stat().st_size // 3
    _flip(segment_file(tmp_path, 0), 2 * batches_len + 6)  # as the cleaner might leave: a gap
    reopened = PartitionLog.open(tmp_path / "t-0", config, now_ms=0)
    assert reopened.log_end_offset > 9


def test_decreasing_leader_epoch_ends_the_log(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    sizes = [len(append_batch(log, 3, epoch=3)) for _ in range(4)]
    log.close()
    # Epoch 3 -> 3 ^ 0xFF... in the low byte of the second batch: 252, then 3 again after it.
    _flip(segment_file(tmp_path, 0), sizes[0] + 15)
    reopened = open_log(tmp_path)
    assert reopened.log_end_offset == 6
    assert reopened.leader_epochs.entries == (EpochEntry(3, 0), EpochEntry(252, 3))


def test_truncation_past_a_gap_ends_at_the_last_kept_batch(tmp_path: Path) -> None:
    # A compacted log with a gap (6..8 removed by the cleaner, say): truncating inside the gap
    # must not claim offsets the log does not hold.
    config = LogConfig(segment_bytes=1024, index_interval_bytes=100, cleanup_policy="compact")
    log = PartitionLog.open(tmp_path / "t-0", config, now_ms=0)
    append_batch(log, 3)
    append_batch(log, 3)
    log.close()
    size = segment_file(tmp_path, 0).stat().st_size
    raw = bytearray(segment_file(tmp_path, 0).read_bytes())
    raw[size // 2 : size // 2 + 8] = (9).to_bytes(8, "big")  # second batch: 9..11
    segment_file(tmp_path, 0).write_bytes(raw)
    log = PartitionLog.open(tmp_path / "t-0", config, now_ms=0)
    assert log.log_end_offset == 12
    assert log.truncate_to(7)
    assert log.log_end_offset == 3
    append_batch(log, 2)
    assert log.log_end_offset == 5


def test_leader_epochs_are_rebuilt_from_recovered_batches(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for i in range(40):
        append_batch(log, 3, epoch=i // 10)
    log.close()
    # A stale checkpoint that claims an epoch the data does not have.
    (tmp_path / "t-0" / "leader-epoch-checkpoint").write_text("0\n2\n0 0\n9 60\n")
    reopened = open_log(tmp_path, recovery_point=0)
    assert reopened.leader_epochs.entries == (
        EpochEntry(0, 0),
        EpochEntry(1, 30),
        EpochEntry(2, 60),
        EpochEntry(3, 90),
    )


@pytest.mark.parametrize("clean", [True, False])
def test_corrupt_epoch_checkpoint_is_rebuilt_from_the_log(tmp_path: Path, clean: bool) -> None:
    log = open_log(tmp_path)
    for i in range(40):
        append_batch(log, 3, epoch=2 * (i // 10))
    log.close()
    (tmp_path / "t-0" / "leader-epoch-checkpoint").write_text("0\n5\nnonsense\n")
    reopened = open_log(tmp_path, clean_shutdown=clean, recovery_point=100)
    assert reopened.leader_epochs.entries == (
        EpochEntry(0, 0),
        EpochEntry(2, 30),
        EpochEntry(4, 60),
        EpochEntry(6, 90),
    )


def test_epoch_cache_is_cut_to_the_log(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    append_batch(log, 3, epoch=1)
    log.close()
    (tmp_path / "t-0" / "leader-epoch-checkpoint").write_text("0\n2\n1 0\n4 3\n")
    reopened = open_log(tmp_path, clean_shutdown=True)
    assert reopened.leader_epochs.entries == (EpochEntry(1, 0),)


def test_leftovers_are_cleaned(tmp_path: Path) -> None:
    written_log(tmp_path, batches=3)
    directory = tmp_path / "t-0"
    (directory / f"{500:020d}.log.deleted").write_bytes(b"x")
    (directory / f"{900:020d}.index").write_bytes(b"")
    (directory / "leader-epoch-checkpoint.tmp").write_bytes(b"x")
    (directory / f"{0:020d}.snapshot").write_bytes(b"producer state: not ours")
    log = open_log(tmp_path, clean_shutdown=True)
    assert log.log_end_offset == 9
    names = sorted(p.name for p in directory.iterdir())
    assert names == [
        f"{0:020d}.index",
        f"{0:020d}.log",
        f"{0:020d}.snapshot",
        f"{0:020d}.timeindex",
        "durable-end-offset",
        "leader-epoch-checkpoint",
    ]


def test_log_start_offset_from_checkpoint(tmp_path: Path) -> None:
    batches = written_log(tmp_path)
    log = open_log(tmp_path, clean_shutdown=True, log_start_offset=10)
    assert log.log_start_offset == 10
    assert log.read(10, 1) == batches[3]


# -- storage that lost what it had fsynced (protocol-aware recovery) ------------------------------


def test_torn_tail_of_unflushed_data_is_no_loss(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for i in range(10):
        append_batch(log, 3, timestamp=1000 + i)
    assert log.flush() == 30
    torn = append_batch(log, 3, timestamp=2000)  # appended, never fsynced
    tail = segment_file(tmp_path, segment_bases(tmp_path)[-1])
    os.truncate(tail, tail.stat().st_size - len(torn) // 2)  # the crash tore it
    reopened = open_log(tmp_path, recovery_point=0)
    assert reopened.log_end_offset == 30
    assert reopened.lost_end_offset == 0


def test_fsynced_tail_that_vanished_is_reported(tmp_path: Path) -> None:
    batches = written_log(tmp_path)  # closed: fsynced up to 120
    tail = segment_file(tmp_path, segment_bases(tmp_path)[-1])
    os.truncate(tail, tail.stat().st_size - len(batches[-1]) - 5)  # the disk lied
    log = open_log(tmp_path, recovery_point=0)
    assert log.log_end_offset == 114
    assert log.lost_end_offset == 120
    append_batch(log, 3)  # a replica fetches the range back; the next open finds no loss
    append_batch(log, 3)
    log.close()
    assert open_log(tmp_path, recovery_point=0).lost_end_offset == 0


def test_truncation_lowers_the_durable_end_first(tmp_path: Path) -> None:
    written_log(tmp_path)
    log = open_log(tmp_path, clean_shutdown=True)
    assert log.truncate_to(60)  # Raft's divergence: not a loss, even if we crash right after
    reopened = open_log(tmp_path, recovery_point=120)
    assert reopened.log_end_offset == 60
    assert reopened.lost_end_offset == 0


def test_a_missing_marker_falls_back_to_the_recovery_point_checkpoint(tmp_path: Path) -> None:
    written_log(tmp_path)
    (tmp_path / "t-0" / "durable-end-offset").unlink()  # a log from before the marker
    tail = segment_file(tmp_path, segment_bases(tmp_path)[-1])
    os.truncate(tail, 0)
    log = open_log(tmp_path, recovery_point=120)
    assert log.log_end_offset < 120 and log.lost_end_offset == 120
