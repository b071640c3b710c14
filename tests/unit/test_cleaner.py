"""Log compaction (rafka.storage.cleaner) on a real PartitionLog in a temporary directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rafka.protocol.records import (
    ATTR_DELETE_HORIZON,
    Compression,
    build_batch,
    decode_batch,
    read_batch_header,
)
from rafka.storage.cleaner import (
    CLEANER_DIR,
    CleaningAborted,
    clean,
    cleanable_range,
    install,
    read_cleaner_checkpoint,
    should_clean,
    write_cleaner_checkpoint,
)
from rafka.storage.config import LogConfig
from rafka.storage.log import PartitionLog
from rafka.storage.segment_swap import SWAP_SUFFIX

NOW = 10_000_000
COMPACT = LogConfig(
    segment_bytes=2048,
    index_interval_bytes=256,
    cleanup_policy="compact",
    delete_retention_ms=1000,
    min_cleanable_dirty_ratio=0.0,
)


def open_log(path: Path, config: LogConfig = COMPACT, **kwargs: object) -> PartitionLog:
    kwargs.setdefault("now_ms", 0)
    return PartitionLog.open(path / "compacted-0", config, **kwargs)  # type: ignore[arg-type]


def append(
    log: PartitionLog,
    records: list[tuple[bytes | None, bytes | None]],
    *,
    timestamp: int = 1000,
    compression: Compression = Compression.NONE,
) -> None:
    base = log.log_end_offset
    batch = build_batch(
        [(key, value, (), timestamp + i) for i, (key, value) in enumerate(records)],
        base_offset=base,
        partition_leader_epoch=0,
        compression=compression,
        producer_id=7,
        producer_epoch=0,
        base_sequence=base,
    )
    header = read_batch_header(batch)
    log.append(batch, base, header.last_offset, header.max_timestamp, header.last_offset, 0, 0)


def contents(log: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    out = []
    for _, data in log.iter_batches(log.log_start_offset):
        _, records = decode_batch(data)
        out.extend((r.offset, r.key, r.value) for r in records)
    return out


def run_pass(log: PartitionLog, now: int = NOW, first_dirty: int = 0, hw: int | None = None):
    cleanable = cleanable_range(log, first_dirty, log.log_end_offset if hw is None else hw, now)
    assert cleanable is not None
    result = clean(log, cleanable, now)
    install(log, result)
    return result


def write_history(log: PartitionLog, keys: int = 10, rounds: int = 20) -> dict[bytes, tuple]:
    """`rounds` values for each key, 5 records a batch; returns key -> (offset, value) of the
    latest, as compaction must keep it."""
    latest: dict[bytes, tuple] = {}
    pending: list[tuple[bytes | None, bytes | None]] = []
    for r in range(rounds):
        for k in range(keys):
            key, value = b"key-%d" % k, b"value-%d-%d" % (k, r)
            pending.append((key, value))
            if len(pending) == 5:
                first = log.log_end_offset
                append(log, pending)
                for i, (pk, pv) in enumerate(pending):
                    latest[pk] = (first + i, pv)
                pending = []
    return latest


def test_keeps_the_latest_record_per_key_at_its_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    latest = write_history(log)
    log.roll(0)  # everything sealed
    end, size_before = log.log_end_offset, log.size_bytes
    result = run_pass(log)
    assert result.records_kept == 10
    assert sorted(contents(log)) == sorted((o, k, v) for k, (o, v) in latest.items())
    assert log.log_end_offset == end and log.size_bytes < size_before
    # Groups are sized by the segments' sizes before cleaning, as Kafka's are, so the small
    # cleaned segments are merged by the next pass.
    run_pass(log)
    assert len(log.segments) == 2
    assert sorted(contents(log)) == sorted((o, k, v) for k, (o, v) in latest.items())
    # A read at a removed offset returns the next batch still there.
    first_kept = min(o for o, _ in latest.values())
    data = log.read(3, 10_000)
    assert read_batch_header(data).base_offset <= first_kept <= read_batch_header(data).last_offset


def test_batches_keep_their_offsets_and_producer_fields(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    append(log, [(b"a", b"1"), (b"b", b"1"), (b"a", b"2")], compression=Compression.ZSTD)
    append(log, [(b"c", b"1")])
    log.roll(0)
    run_pass(log)
    batches = [read_batch_header(data) for _, data in log.iter_batches(0)]
    first = batches[0]
    assert (first.base_offset, first.last_offset, first.records_count) == (0, 2, 2)
    assert first.compression == Compression.ZSTD
    assert (first.producer_id, first.base_sequence, first.partition_leader_epoch) == (7, 0, 0)
    assert contents(log) == [(1, b"b", b"1"), (2, b"a", b"2"), (3, b"c", b"1")]


def test_tombstones_survive_one_horizon_then_go(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    append(log, [(b"a", b"1"), (b"b", b"1")])
    append(log, [(b"a", None), (b"c", b"1")])
    log.roll(0)
    result = run_pass(log)
    assert contents(log) == [(1, b"b", b"1"), (2, b"a", None), (3, b"c", b"1")]
    assert result.next_delete_horizon == NOW + 1000
    tombstone_batch = [read_batch_header(d) for _, d in log.iter_batches(0)][1]
    assert tombstone_batch.attributes & ATTR_DELETE_HORIZON
    assert tombstone_batch.base_timestamp == NOW + 1000
    # Before the horizon the tombstone stays; record timestamps are unchanged by the horizon.
    run_pass(log, now=NOW + 999)
    assert (2, b"a", None) in contents(log)
    _, records = decode_batch(next(d for h, d in log.iter_batches(2) if h.base_offset == 2))
    assert [r.timestamp for r in records] == [1000, 1001]
    assert should_clean(cleanable_range(log, 4, 4, NOW + 1000), COMPACT, NOW + 1000, NOW + 1000)
    result = run_pass(log, now=NOW + 1000, first_dirty=4)
    assert contents(log) == [(1, b"b", b"1"), (3, b"c", b"1")]
    assert result.next_delete_horizon is None


def test_active_segment_and_offsets_above_the_high_watermark_stay(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    write_history(log, rounds=30)
    assert len(log.segments) > 3
    active = log.active_segment
    active_bytes = active.log_path.read_bytes()
    bases = [s.base_offset for s in log.segments]
    hw = bases[2]  # only the first two segments are below the high watermark
    cleanable = cleanable_range(log, 0, hw, NOW)
    assert cleanable is not None and [s.base_offset for s in cleanable.segments] == bases[:2]
    assert cleanable.end == bases[2]
    untouched = [entry for entry in contents(log) if entry[0] >= bases[2]]
    install(log, clean(log, cleanable, NOW))
    assert log.active_segment is active and active.log_path.read_bytes() == active_bytes
    assert [s.base_offset for s in log.segments] == bases
    assert [entry for entry in contents(log) if entry[0] >= bases[2]] == untouched
    assert len([entry for entry in contents(log) if entry[0] < bases[2]]) <= 10


def test_min_compaction_lag_keeps_young_segments(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=2048, cleanup_policy="compact", min_compaction_lag_ms=5000)
    log = open_log(tmp_path, config)
    for i in range(30):
        append(log, [(b"k", b"v" * 100)], timestamp=1000 * i)
    log.roll(0)
    bases = [s.base_offset for s in log.segments]
    young = cleanable_range(log, 0, log.log_end_offset, 0 + 5000 + 1000 * 10)
    assert young is not None
    # Segments holding records newer than now - lag are not cleanable.
    assert all(s.largest_timestamp <= 10_000 for s in young.segments)
    assert young.end in bases and young.end < bases[-1]


def test_incremental_pass_uses_new_dirty_data_against_the_clean_section(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    write_history(log, keys=5, rounds=10)
    log.roll(0)
    result = run_pass(log)
    first_dirty = result.end
    assert first_dirty == log.segments[-1].base_offset
    append(log, [(b"key-0", b"newest"), (b"key-9", b"new key")])
    log.roll(0)
    cleanable = cleanable_range(log, first_dirty, log.log_end_offset, NOW)
    assert cleanable is not None and 0 < cleanable.dirty_ratio < 1
    install(log, clean(log, cleanable, NOW))
    values = {k: v for _, k, v in contents(log)}
    assert values[b"key-0"] == b"newest" and values[b"key-9"] == b"new key"
    assert [k for _, k, _ in contents(log)].count(b"key-0") == 1


def test_reader_holding_old_segments_finishes_on_old_files(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    write_history(log)
    log.roll(0)
    before = contents(log)
    reader = log.iter_batches(0)
    first = next(reader)
    run_pass(log)
    rest = [first, *reader]
    old_view = []
    for _, data in rest:
        _, records = decode_batch(data)
        old_view.extend((r.offset, r.key, r.value) for r in records)
    assert old_view == before  # the uncompacted data, complete and valid
    assert len(contents(log)) == 10


def test_retention_meanwhile_discards_the_cleaned_copy(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    write_history(log)
    log.roll(0)
    cleanable = cleanable_range(log, 0, log.log_end_offset, NOW)
    assert cleanable is not None
    result = clean(log, cleanable, NOW)
    log.delete_records_before(log.segments[1].base_offset)  # drops the first segment
    assert install(log, result) < len(result.groups)
    assert not (log.directory / CLEANER_DIR).exists()
    offsets = [o for o, _, _ in contents(log)]
    assert offsets == sorted(offsets)


def test_abort_leaves_the_log_alone(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    write_history(log)
    log.roll(0)
    before = contents(log)
    cleanable = cleanable_range(log, 0, log.log_end_offset, NOW)
    assert cleanable is not None
    with pytest.raises(CleaningAborted):
        clean(log, cleanable, NOW, aborted=lambda: True)
    assert contents(log) == before


def test_interrupted_swap_is_completed_on_open(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    latest = write_history(log)
    log.roll(0)
    cleanable = cleanable_range(log, 0, log.log_end_offset, NOW)
    assert cleanable is not None
    result = clean(log, cleanable, NOW)
    # Crash after the cleaned files were renamed in with .swap, before the old ones went.
    group = result.groups[0]
    for path in result.scratch.iterdir():
        if path.name.startswith(f"{group.base_offset:020d}"):
            os.replace(path, log.directory / (path.name + SWAP_SUFFIX))
    log.close()
    shutil.rmtree(result.scratch)
    reopened = open_log(tmp_path, clean_shutdown=False)
    assert not list(reopened.directory.glob("*" + SWAP_SUFFIX))
    kept = [(o, k, v) for o, k, v in contents(reopened) if o < group.old[-1].next_offset]
    assert all((o, v) == latest[k] for o, k, v in kept)
    offsets = [o for o, _, _ in contents(reopened)]
    assert offsets == sorted(offsets)
    assert reopened.log_end_offset == log.log_end_offset


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    write_cleaner_checkpoint(tmp_path, {("a", 0): 10, ("b-c", 3): 7})
    assert read_cleaner_checkpoint(tmp_path) == {("a", 0): 10, ("b-c", 3): 7}
    assert read_cleaner_checkpoint(tmp_path / "missing") == {}
