from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from test_storage_support import append_batch, base_offsets, make_batch, split_batches

from rafka.protocol.records import read_batch_header
from rafka.storage.config import LogConfig
from rafka.storage.leader_epoch import EpochEntry
from rafka.storage.log import OffsetOutOfRangeError, PartitionLog

SMALL = LogConfig(segment_bytes=1024, index_interval_bytes=128)


def open_log(path: Path, config: LogConfig = SMALL, **kwargs: object) -> PartitionLog:
    kwargs.setdefault("now_ms", 0)
    return PartitionLog.open(path / "topic-0", config, **kwargs)  # type: ignore[arg-type]


def fill(log: PartitionLog, batches: int, count: int = 3, **kwargs: object) -> list[bytes]:
    return [append_batch(log, count, **kwargs) for _ in range(batches)]  # type: ignore[arg-type]


def test_new_log_is_empty(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (0, 0, 0)
    assert log.read(0, 1000) == b""
    assert [p.name for p in sorted((tmp_path / "topic-0").iterdir())] == [
        "00000000000000000000.index",
        "00000000000000000000.log",
        "00000000000000000000.timeindex",
    ]


def test_append_writes_batches_as_given(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig())
    first = make_batch(0, 3)
    second = make_batch(3, 2)
    assert log.append(first, 0, 2, 1002, 2, 0, 0) == 0
    assert log.append(second, 3, 4, 1001, 4, 0, 0) == len(first)
    assert log.log_end_offset == 5
    assert (tmp_path / "topic-0" / "00000000000000000000.log").read_bytes() == first + second
    assert log.read(0, 10_000) == first + second


def test_append_must_continue_at_the_log_end(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    with pytest.raises(ValueError):
        log.append(make_batch(1), 1, 1, 0, 1, 0, 0)


def test_read_from_the_middle_of_a_batch_returns_the_whole_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig(index_interval_bytes=100))
    batches = fill(log, 20, count=5)
    for offset in range(100):
        data = log.read(offset, 1)
        assert data == batches[offset // 5], offset


def test_read_respects_max_bytes_in_whole_batches(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig(index_interval_bytes=100))
    batches = fill(log, 10, count=2)
    size = len(batches[0])
    assert log.read(0, size * 3 + size // 2) == b"".join(batches[:3])
    assert log.read(3, size * 2) == b"".join(batches[1:3])


def test_first_batch_is_returned_whole_even_if_larger_than_max_bytes(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig())
    big = append_batch(log, 2, value_size=500)
    append_batch(log, 2)
    assert log.read(0, 10) == big  # KIP-74
    assert log.read(0, 10, min_one_batch=False) == b""
    assert log.read(0, 0, min_one_batch=False) == b""


def test_read_stops_before_max_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = fill(log, 10, count=3)
    assert log.read(0, 100_000, max_offset=9) == b"".join(batches[:3])
    assert log.read(0, 100_000, max_offset=10) == b"".join(batches[:4])  # 9..11 starts below 10
    assert log.read(9, 100_000, max_offset=9) == b""
    assert log.read(0, 100_000, max_offset=0) == b""
    assert base_offsets(log.read(4, 100_000, max_offset=27)) == [3, 6, 9, 12, 15, 18, 21, 24]


def test_read_crosses_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = fill(log, 40, count=3)
    assert len(log.segments) > 3
    assert log.read(0, 1_000_000) == b"".join(batches)
    boundary = log.segments[1].base_offset
    data = log.read(boundary - 1, 1_000_000, max_offset=boundary + 7)
    assert base_offsets(data)[0] == boundary - 3
    assert base_offsets(data)[-1] == boundary + 6


def test_read_out_of_range(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    fill(log, 2)
    assert log.read(6, 100) == b""
    with pytest.raises(OffsetOutOfRangeError):
        log.read(7, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)


def test_roll_on_segment_bytes(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = fill(log, 30)
    size = len(batches[0])
    per_segment = 1024 // size
    assert all(segment.size <= 1024 for segment in log.segments)
    assert [s.base_offset for s in log.segments][:3] == [0, 3 * per_segment, 6 * per_segment]
    names = sorted(p.name for p in (tmp_path / "topic-0").glob("*.log"))
    assert names[1] == f"{3 * per_segment:020d}.log"


def test_roll_on_segment_ms_by_batch_timestamps(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig(segment_ms=1000))
    append_batch(log, timestamp=5000, now_ms=0)
    append_batch(log, timestamp=6000, now_ms=0)  # 1000 after the first batch: not more
    assert len(log.segments) == 1
    append_batch(log, timestamp=6001, now_ms=0)
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_segment_ms_counts_from_the_first_batch_with_a_timestamp(tmp_path: Path) -> None:
    # A Raft leader-change batch (no timestamp) opens the segment; the data after it dates it.
    log = open_log(tmp_path, LogConfig(segment_ms=1000), now_ms=0)
    append_batch(log, timestamp=-1, now_ms=0)
    append_batch(log, timestamp=500, now_ms=500)
    append_batch(log, timestamp=1500, now_ms=1500)  # 1000 after the first data: not more
    assert len(log.segments) == 1
    append_batch(log, timestamp=1501, now_ms=1501)
    assert [s.base_offset for s in log.segments] == [0, 3]


def test_roll_on_segment_ms_by_creation_time_without_timestamps(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig(segment_ms=1000), now_ms=10_000)
    append_batch(log, timestamp=-1, now_ms=10_000)
    append_batch(log, timestamp=-1, now_ms=11_000)
    assert len(log.segments) == 1
    append_batch(log, timestamp=-1, now_ms=11_001)
    assert len(log.segments) == 2


def test_segment_jitter_rolls_each_segment_up_to_that_much_earlier(tmp_path: Path) -> None:
    """segment.jitter.ms: each segment draws how much before segment.ms it rolls, below
    min(segment.jitter.ms, segment.ms), so logs created together do not roll together."""
    config = LogConfig(segment_ms=1000, segment_jitter_ms=800)
    rolled_after = set()
    for attempt in range(20):
        log = open_log(tmp_path / str(attempt), config, now_ms=0)
        waited = 0
        append_batch(log, timestamp=-1, now_ms=0)
        while len(log.segments) == 1:
            waited += 1
            append_batch(log, timestamp=-1, now_ms=waited)
        rolled_after.add(waited)
    assert all(200 < waited <= 1001 for waited in rolled_after), rolled_after
    assert len(rolled_after) > 10  # drawn per segment, not one fixed early roll
    assert LogConfig(segment_ms=1000).random_segment_jitter() == 0


def test_roll_when_index_is_full(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig(index_interval_bytes=1, segment_index_bytes=24))
    fill(log, 10, count=1)
    # Two 8-byte offset index entries (12-byte time entries fill first) per segment.
    assert len(log.segments) > 2
    for segment in log.segments:
        assert len(segment.offset_index) <= 3


def test_iter_batches(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = fill(log, 20)
    got = list(log.iter_batches(7))
    assert [header.base_offset for header, _ in got] == list(range(6, 60, 3))
    assert [data for _, data in got] == batches[2:]
    assert list(log.iter_batches(60)) == []


def test_timestamp_lookups(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    timestamps = [100, 300, 200, 500, 400, 600, 50]
    batches = [append_batch(log, 2, timestamp=ts) for ts in timestamps * 4]
    # each batch's max timestamp is ts + 1
    found = log.first_batch_with_timestamp_at_least(301)
    assert found is not None and found[0] == 2 and found[1] == batches[1]
    found = log.first_batch_with_timestamp_at_least(502)
    assert found is not None and found[1] == batches[5]
    assert log.first_batch_with_timestamp_at_least(602) is None
    found = log.first_batch_with_timestamp_at_least(0)
    assert found is not None and found[0] == 0
    best = log.max_timestamp_batch()
    assert best == (10, batches[5])
    log.close()
    reopened = open_log(tmp_path, clean_shutdown=True)
    assert reopened.max_timestamp_batch() == (10, batches[5])
    found = reopened.first_batch_with_timestamp_at_least(502)
    assert found is not None and found[1] == batches[5]


def test_timestamp_lookup_across_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = [append_batch(log, 1, timestamp=1000 + 10 * i) for i in range(60)]
    assert len(log.segments) > 2
    for i in range(60):
        found = log.first_batch_with_timestamp_at_least(1000 + 10 * i - 5)
        assert found == (i, batches[i])
    assert log.max_timestamp_batch() == (59, batches[59])


def test_leader_epochs_follow_appends(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    append_batch(log, epoch=0)
    append_batch(log, epoch=0)
    append_batch(log, epoch=2)
    assert log.leader_epochs.entries == (EpochEntry(0, 0), EpochEntry(2, 2))
    # A follower's append of several batches spanning epochs.
    data = make_batch(3, 2, epoch=2) + make_batch(5, 1, epoch=3) + make_batch(6, 1, epoch=5)
    log.append(data, 3, 6, 1000, 6, 5, 0)
    assert log.leader_epochs.entries[-2:] == (EpochEntry(3, 5), EpochEntry(5, 6))
    assert log.leader_epochs.end_offset_for(3, log.log_end_offset) == (3, 6)
    log.flush()
    text = (tmp_path / "topic-0" / "leader-epoch-checkpoint").read_text()
    assert text == "0\n4\n0 0\n2 2\n3 5\n5 6\n"


def test_truncate_to_across_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = [append_batch(log, 3, epoch=i // 10) for i in range(40)]
    assert len(log.segments) > 3
    log.flush()
    assert log.truncate_to(40)  # inside batch 39..41: removed whole
    assert log.log_end_offset == 39
    assert log.read(0, 1_000_000) == b"".join(batches[:13])
    assert log.recovery_point == 39
    assert log.leader_epochs.latest_epoch == 1
    assert all(segment.base_offset < 39 for segment in log.segments)
    assert not log.truncate_to(39)
    # The log continues from there, and survives a reopen.
    new = append_batch(log, 3, epoch=7)
    assert log.read(38, 1000) == batches[12] + new
    log.close()
    reopened = open_log(tmp_path, clean_shutdown=True)
    assert reopened.log_end_offset == 42
    assert reopened.read(0, 1_000_000) == b"".join(batches[:13]) + new
    assert reopened.leader_epochs.entries[-1] == EpochEntry(7, 39)


def test_truncate_to_a_segment_base(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = fill(log, 30)
    second = log.segments[1].base_offset
    log.truncate_to(second)
    assert log.log_end_offset == second
    assert log.segments[-1].size == 0 or log.segments[-1].base_offset < second
    assert log.read(0, 1_000_000) == b"".join(batches[: second // 3])
    append_batch(log)
    assert base_offsets(log.read(second, 1000)) == [second]


def test_truncate_below_the_first_segment_restarts_the_log(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    fill(log, 30)
    log.delete_records_before(log.segments[1].base_offset)
    start = log.log_start_offset
    log.truncate_to(start - 3)
    assert (log.log_start_offset, log.log_end_offset) == (start - 3, start - 3)
    assert log.read(start - 3, 100) == b""
    assert len(list((tmp_path / "topic-0").glob("*.log"))) == 1


def test_truncate_fully_and_start_at(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    fill(log, 30, epoch=3)
    log.truncate_fully_and_start_at(500)
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (500, 500, 0)
    assert log.leader_epochs.entries == ()
    assert (tmp_path / "topic-0" / "leader-epoch-checkpoint").read_text() == "0\n0\n"
    batch = append_batch(log, 2, epoch=4)
    assert log.read(500, 1000) == batch
    assert [p.name for p in (tmp_path / "topic-0").glob("*.log")] == [f"{500:020d}.log"]


def test_clean_reopen_keeps_everything(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = fill(log, 40, epoch=1)
    log.close()
    reopened = open_log(tmp_path, clean_shutdown=True)
    assert reopened.log_end_offset == 120
    assert reopened.recovery_point == 120
    assert reopened.read(0, 1_000_000) == b"".join(batches)
    assert reopened.leader_epochs.entries == (EpochEntry(1, 0),)
    for offset in (0, 50, 119):
        assert reopened.read(offset, 1) == batches[offset // 3]
    append_batch(reopened)
    assert reopened.log_end_offset == 121


def test_clean_reopen_does_not_scan_the_data(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = fill(log, 40)
    log.close()
    # Corrupt a record in the middle of the first segment: only a recovery would notice.
    first_log = tmp_path / "topic-0" / f"{0:020d}.log"
    raw = bytearray(first_log.read_bytes())
    raw[len(batches[0]) + 70] ^= 0xFF
    first_log.write_bytes(raw)
    reopened = open_log(tmp_path, clean_shutdown=True)
    assert reopened.log_end_offset == 120


def test_clean_reopen_at_the_checkpoint_reads_no_file_until_used(tmp_path: Path) -> None:
    """After a clean shutdown the checkpointed recovery point is the log end: the active segment
    opens no descriptor and reads no index until it is used (a 10,000-partition start)."""
    log = open_log(tmp_path)
    batches = [append_batch(log, 3, timestamp=1_000 + i) for i in range(10)]
    end, newest = log.log_end_offset, log.active_segment.max_timestamp_and_offset
    log.close()
    reopened = open_log(tmp_path, clean_shutdown=True, recovery_point=end)
    active = reopened.active_segment
    assert reopened.log_end_offset == end
    assert not active._log.is_open and not active.offset_index.loaded
    assert active.max_timestamp_and_offset == newest  # the time index's final entry
    assert not active._log.is_open
    more = append_batch(reopened, 3, timestamp=5_000)
    assert reopened.log_end_offset == end + 3
    assert reopened.read(0, 1_000_000) == b"".join([*batches, more])
    assert reopened.active_segment.max_timestamp_and_offset == (5_002, end + 2)  # +1 a record
    reopened.close()
    again = open_log(tmp_path, clean_shutdown=False)  # a full recovery agrees
    assert again.log_end_offset == end + 3
    assert again.read(0, 1_000_000) == b"".join([*batches, more])


def test_a_crash_recovery_leaves_an_unchanged_epoch_checkpoint_alone(tmp_path: Path) -> None:
    """Recovery truncates the epochs from the recovery point and re-assigns them from the batches:
    the same entries must not be rewritten (an fsync pair per partition after every crash)."""
    log = open_log(tmp_path)
    fill(log, 10, epoch=3)
    log.flush()
    checkpoint = tmp_path / "topic-0" / "leader-epoch-checkpoint"
    before = checkpoint.stat().st_ino
    recovered = open_log(tmp_path, clean_shutdown=False, recovery_point=0)
    recovered.flush()
    assert recovered.leader_epochs.entries == (EpochEntry(3, 0),)
    assert checkpoint.stat().st_ino == before  # an atomic rewrite would be a new inode
    append_batch(recovered, epoch=4)
    recovered.flush()
    assert checkpoint.stat().st_ino != before
    assert open_log(tmp_path, clean_shutdown=False).leader_epochs.entries == (
        EpochEntry(3, 0),
        EpochEntry(4, 30),
    )


def test_a_checkpoint_that_cannot_be_the_log_end_is_not_trusted(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    fill(log, 5)
    end = log.log_end_offset
    log.close()
    for wrong in (0, -1):  # a missing entry reads as 0
        reopened = open_log(tmp_path, clean_shutdown=True, recovery_point=wrong)
        assert reopened.log_end_offset == end
        reopened.close()


def test_bad_index_file_is_rebuilt_on_open(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig(index_interval_bytes=100))
    batches = fill(log, 40)
    log.close()
    index = tmp_path / "topic-0" / f"{0:020d}.index"
    good = index.read_bytes()
    assert len(good) > 16
    index.write_bytes(good + b"\x01\x02\x03")
    reopened = open_log(tmp_path, LogConfig(index_interval_bytes=100), clean_shutdown=True)
    for offset in range(120):
        assert reopened.read(offset, 1) == batches[offset // 3]
    reopened.flush()
    assert index.read_bytes() == good


def test_non_monotonic_index_of_a_sealed_segment_is_rebuilt_when_used(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = fill(log, 40)
    log.close()
    index = tmp_path / "topic-0" / f"{0:020d}.index"
    good = index.read_bytes()
    assert len(good) >= 16
    index.write_bytes(good[8:16] + good[0:8] + good[16:])  # swap two entries
    reopened = open_log(tmp_path, clean_shutdown=True)
    for offset in range(0, 30):
        assert reopened.read(offset, 1) == batches[offset // 3]
    reopened.close()
    assert index.read_bytes() == good


def test_missing_index_files_are_rebuilt(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    batches = [append_batch(log, 3, timestamp=1000 + i) for i in range(40)]
    log.close()
    for path in (tmp_path / "topic-0").glob("*.timeindex"):
        path.unlink()
    reopened = open_log(tmp_path, clean_shutdown=True)
    assert reopened.read(0, 1_000_000) == b"".join(batches)
    assert reopened.max_timestamp_batch() == (117, batches[-1])


def test_flush_reports_the_synced_end(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert log.flush() == 0
    fill(log, 30)
    assert log.recovery_point == 0
    assert log.flush() == 90
    assert log.recovery_point == 90
    for segment in log.segments:
        assert not segment.needs_sync


def test_flush_from_threads_concurrently_with_appends(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig(segment_bytes=4096, index_interval_bytes=256))
    stop = threading.Event()
    results: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def flusher(out: list[int]) -> None:
        try:
            while not stop.is_set():
                out.append(log.flush())
            out.append(log.flush())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flusher, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    batches = []
    try:
        for _ in range(600):
            batches.append(append_batch(log, 2))
            # A reader thread's view must stay consistent too.
            assert log.read(log.log_end_offset - 1, 1) == batches[-1]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors
    for out in results:
        assert out == sorted(out)
        assert out[-1] == 1200
    assert log.recovery_point == 1200
    assert len(log.segments) > 10
    assert all(not segment.needs_sync for segment in log.segments)
    log.close()
    reopened = open_log(
        tmp_path, LogConfig(segment_bytes=4096, index_interval_bytes=256), recovery_point=0
    )
    assert reopened.read(0, 10_000_000) == b"".join(batches)


def test_flush_error_propagates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log(tmp_path)
    fill(log, 2)

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("rafka.storage.file_records._datasync", failing)
    with pytest.raises(OSError):
        log.flush()
    assert log.recovery_point == 0
    monkeypatch.undo()
    with pytest.raises(OSError, match="failed earlier"):
        log.flush()  # a later fsync succeeding would prove nothing
    assert log.recovery_point == 0


def test_update_config_changes_rolling(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig())
    fill(log, 10)
    assert len(log.segments) == 1
    log.update_config(LogConfig(segment_bytes=200))
    fill(log, 2)
    assert len(log.segments) == 3


def test_delete_removes_the_directory(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    fill(log, 3)
    log.delete()
    assert not (tmp_path / "topic-0").exists()
    assert list(tmp_path.iterdir()) == []


def test_closed_log_releases_descriptors(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    log = open_log(tmp_path)
    fill(log, 40)
    log.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_read_results_parse_as_batches(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    fill(log, 40)
    for offset in range(0, 120, 7):
        data = log.read(offset, 500)
        for batch in split_batches(data):
            assert read_batch_header(batch).records_count == 3


def test_reader_threads_see_consistent_prefixes_while_appending(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig(segment_bytes=2048, index_interval_bytes=200))
    batches: list[bytes] = []
    done = threading.Event()
    failures: list[str] = []

    def reader() -> None:
        while not done.is_set():
            end = log.log_end_offset
            if not end:
                continue
            data = log.read(0, 10_000_000)
            expected = b"".join(batches[: len(split_batches(data))])
            if data != expected:
                failures.append(f"mismatch at end {end}")
            tail = log.read(end - 1, 1)
            if not tail.startswith(batches[(end - 1) // 2][:20]):
                failures.append(f"bad tail read at {end - 1}")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(400):
            batches.append(make_batch(log.log_end_offset, 2))
            first = log.log_end_offset
            log.append(batches[-1], first, first + 1, 1001, first + 1, 0, 0)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert not failures


def test_flush_syncs_rolled_segments_and_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced_dirs: list[Path] = []
    monkeypatch.setattr("rafka.storage.log.fsync_dir", synced_dirs.append)
    log = open_log(tmp_path)
    log.flush()
    assert synced_dirs == [tmp_path / "topic-0"]
    fill(log, 12)
    assert len(log.segments) == 2
    assert all(segment.needs_sync for segment in log.segments)
    assert log.flush() == 36
    assert len(synced_dirs) == 2
    assert not any(segment.needs_sync for segment in log.segments)
    # The sealed segment's index files are complete and durable.
    sealed = log.segments[0]
    raw = sealed.time_index.path.read_bytes()
    assert len(raw) == 12 * len(sealed.time_index)
    log.flush()
    assert len(synced_dirs) == 2  # nothing new to sync


def test_segment_translate_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path, LogConfig(index_interval_bytes=150))
    batches = fill(log, 20, count=4)
    segment = log.segments[0]
    size = len(batches[0])
    for offset in range(80):
        assert segment.translate_offset(offset) == (offset // 4) * size
    assert segment.translate_offset(80) == segment.size
