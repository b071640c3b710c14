from __future__ import annotations

from pathlib import Path

import pytest
from test_storage_support import append_batch

from rafka.storage.config import LogConfig
from rafka.storage.leader_epoch import EpochEntry
from rafka.storage.log import OffsetOutOfRangeError, PartitionLog

DAY = 86_400_000


def make_log(path: Path, **settings: object) -> tuple[PartitionLog, list[bytes]]:
    config = LogConfig(segment_bytes=1024, index_interval_bytes=100, **settings)  # type: ignore[arg-type]
    log = PartitionLog.open(path / "t-0", config, now_ms=0)
    # 40 batches of 3 records, timestamps one hour apart, epochs changing every 10 batches.
    batches = [append_batch(log, 3, timestamp=i * 3_600_000, epoch=i // 10) for i in range(40)]
    return log, batches


def test_retention_by_time(tmp_path: Path) -> None:
    log, batches = make_log(tmp_path, retention_ms=DAY)
    bases = [s.base_offset for s in log.segments]
    per_segment = bases[1] // 3  # batches per segment
    # Segment k holds batches [k*per, (k+1)*per); its largest timestamp is that of its last.
    now = (2 * per_segment - 1) * 3_600_000 + 2 + DAY + 1  # only the first two are expired
    deleted = log.apply_retention(now, max_deletable_offset=log.log_end_offset)
    assert deleted == 2 * per_segment * len(batches[0])
    assert log.log_start_offset == bases[2]
    assert [s.base_offset for s in log.segments] == bases[2:]
    assert not list((tmp_path / "t-0").glob(f"{bases[0]:020d}.*"))
    with pytest.raises(OffsetOutOfRangeError):
        log.read(bases[2] - 1, 100)
    assert log.read(bases[2], 1) == batches[2 * per_segment]
    assert log.leader_epochs.entries[0] == EpochEntry(bases[2] // 30, bases[2])


def test_retention_by_time_only_below_the_high_watermark(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path, retention_ms=DAY)
    bases = [s.base_offset for s in log.segments]
    now = 1000 * DAY
    assert log.apply_retention(now, max_deletable_offset=bases[1] - 1) == 0
    log.apply_retention(now, max_deletable_offset=bases[2])
    assert log.log_start_offset == bases[2]


def test_expired_active_segment_is_rolled_then_deleted(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path, retention_ms=DAY)
    end = log.log_end_offset
    now = 1000 * DAY
    log.apply_retention(now, max_deletable_offset=end)
    assert log.segments[-1].base_offset == end  # rolled
    assert len(log.segments) == 2
    log.apply_retention(now, max_deletable_offset=end)
    assert [s.base_offset for s in log.segments] == [end]
    assert (log.log_start_offset, log.log_end_offset) == (end, end)
    assert log.read(end, 100) == b""
    assert log.apply_retention(now, max_deletable_offset=end) == 0


def test_infinite_retention_keeps_everything(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path, retention_ms=-1)
    assert log.apply_retention(1000 * DAY, max_deletable_offset=log.log_end_offset) == 0


def test_retention_by_size(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path, retention_ms=-1, retention_bytes=2500)
    sizes = [s.size for s in log.segments]
    total = sum(sizes)
    deleted = log.apply_retention(0, max_deletable_offset=log.log_end_offset)
    # Delete oldest segments while what remains stays >= retention.bytes.
    expected, remaining = 0, total
    for size in sizes[:-1]:
        if remaining - size < 2500:
            break
        remaining -= size
        expected += size
    assert deleted == expected > 0
    assert log.size_bytes == total - expected >= 2500


def test_compacted_topic_is_not_deleted_by_time(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path, retention_ms=DAY, cleanup_policy="compact")
    assert log.apply_retention(1000 * DAY, max_deletable_offset=log.log_end_offset) == 0


def test_delete_records_before(tmp_path: Path) -> None:
    log, batches = make_log(tmp_path, retention_ms=-1, cleanup_policy="compact")
    bases = [s.base_offset for s in log.segments]
    target = bases[2] + 4
    deleted = log.delete_records_before(target)
    assert deleted > 0
    assert log.log_start_offset == target
    assert [s.base_offset for s in log.segments] == bases[2:]
    with pytest.raises(OffsetOutOfRangeError):
        log.read(target - 1, 100)
    assert log.read(target, 1) == batches[target // 3]  # the batch containing it
    assert log.leader_epochs.entries[0].start_offset == target
    assert log.delete_records_before(5) == 0  # never backwards
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(log.log_end_offset + 1)
    # Everything: the active segment stays.
    log.delete_records_before(log.log_end_offset)
    assert log.log_start_offset == log.log_end_offset
    assert len(log.segments) == 1


def test_log_start_offset_breach_is_applied_by_retention(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path, retention_ms=-1)
    log.close()
    reopened = PartitionLog.open(
        tmp_path / "t-0",
        LogConfig(segment_bytes=1024, retention_ms=-1),
        clean_shutdown=True,
        now_ms=0,
        log_start_offset=60,
    )
    assert reopened.log_start_offset == 60
    reopened.apply_retention(0, max_deletable_offset=reopened.log_end_offset)
    assert reopened.segments[0].base_offset <= 60 < reopened.segments[0].next_offset
