from __future__ import annotations

import struct
from pathlib import Path

import pytest

from rafka.storage.index import CorruptIndexError, OffsetIndex, TimeIndex


def test_offset_index_lookup_is_floor(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "0.index", 100, 1024)
    index.start_empty()
    index.append(110, 400)
    index.append(120, 800)
    assert index.lookup(99) == (100, 0)
    assert index.lookup(109) == (100, 0)
    assert index.lookup(110) == (110, 400)
    assert index.lookup(119) == (110, 400)
    assert index.lookup(1000) == (120, 800)
    assert index.floor_position(799) == 400
    assert index.floor_position(800) == 800
    assert index.floor_position(10) == 0


def test_offset_index_file_format_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "0.index"
    index = OffsetIndex(path, 100, 1024)
    index.start_empty()
    index.append(110, 400)
    index.append(120, 800)
    index.append(120, 900)  # not after the last entry: skipped
    index.write_pending(sync=True)
    assert path.read_bytes() == struct.pack(">IIII", 10, 400, 20, 800)
    reloaded = OffsetIndex(path, 100, 1024)
    reloaded.load(log_size=1000)
    assert len(reloaded) == 2
    assert reloaded.lookup(125) == (120, 800)


def test_offset_index_truncate_to(tmp_path: Path) -> None:
    path = tmp_path / "0.index"
    index = OffsetIndex(path, 0, 1024)
    index.start_empty()
    for i in range(1, 5):
        index.append(i * 10, i * 100)
    index.write_pending(sync=False)
    index.truncate_to(30)  # removes 30 and 40
    assert index.last_entry() == (20, 200)
    index.write_pending(sync=False)
    assert path.stat().st_size == 16
    index.append(25, 250)
    index.write_pending(sync=False)
    assert path.read_bytes()[-8:] == struct.pack(">II", 25, 250)


def test_index_full(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "0.index", 0, 16)
    index.start_empty()
    index.append(1, 10)
    assert not index.is_full
    index.append(2, 20)
    assert index.is_full
    time_index = TimeIndex(tmp_path / "0.timeindex", 0, 24)
    time_index.start_empty()
    time_index.maybe_append(5, 1)
    time_index.maybe_append(6, 2)
    assert time_index.is_full


@pytest.mark.parametrize(
    "raw",
    [
        struct.pack(">II", 1, 10) + b"\x00",  # partial entry
        struct.pack(">IIII", 5, 10, 4, 20),  # offsets decrease
        struct.pack(">IIII", 4, 20, 5, 10),  # positions decrease
        struct.pack(">II", 4, 5000),  # past the log end
    ],
)
def test_offset_index_sanity_check(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "0.index"
    path.write_bytes(raw)
    with pytest.raises(CorruptIndexError):
        OffsetIndex(path, 0, 1024).load(log_size=1000)


def test_time_index_keeps_only_increasing_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "0.timeindex"
    index = TimeIndex(path, 50, 1024)
    index.start_empty()
    index.maybe_append(-1, 50)  # no timestamp: never indexed
    index.maybe_append(1000, 55)
    index.maybe_append(1000, 57)  # not larger: skipped
    index.maybe_append(900, 58)  # smaller: skipped
    index.maybe_append(2000, 60)
    assert len(index) == 2
    assert index.lookup(999) == (-1, 50)
    assert index.lookup(1500) == (1000, 55)
    assert index.lookup(5000) == (2000, 60)
    index.write_pending(sync=True)
    assert path.read_bytes() == struct.pack(">qIqI", 1000, 5, 2000, 10)
    reloaded = TimeIndex(path, 50, 1024)
    assert reloaded.last_entry_from_file() == (2000, 60)
    reloaded.load(log_size=0)
    assert reloaded.last_entry() == (2000, 60)
    reloaded.truncate_to(60)
    assert reloaded.last_entry() == (1000, 55)


def test_time_index_sanity_check(tmp_path: Path) -> None:
    path = tmp_path / "0.timeindex"
    path.write_bytes(struct.pack(">qIqI", 2000, 5, 1000, 10))
    with pytest.raises(CorruptIndexError):
        TimeIndex(path, 0, 1024).load(log_size=100)
