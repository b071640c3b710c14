from __future__ import annotations

from pathlib import Path

import pytest

from rafka.storage.files import CorruptCheckpointError
from rafka.storage.leader_epoch import EpochEntry, LeaderEpochCache


def cache_with(tmp_path: Path, *entries: tuple[int, int]) -> LeaderEpochCache:
    cache = LeaderEpochCache(tmp_path / "leader-epoch-checkpoint")
    for epoch, start in entries:
        assert cache.assign(epoch, start)
    return cache


def test_assign_ignores_epochs_not_above_latest(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (1, 0), (3, 10))
    assert not cache.assign(3, 20)
    assert not cache.assign(2, 30)
    assert not cache.assign(-1, 40)
    assert cache.entries == (EpochEntry(1, 0), EpochEntry(3, 10))
    assert cache.latest_epoch == 3


def test_assign_drops_entries_that_would_not_be_monotonic(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (1, 0), (3, 10), (4, 20))
    assert cache.assign(5, 10)
    assert cache.entries == (EpochEntry(1, 0), EpochEntry(5, 10))


def test_end_offset_for_follows_kafka(tmp_path: Path) -> None:
    # Kafka's LeaderEpochFileCacheTest cases: epochs 2@6, 4@11, 6@16 (and more).
    cache = cache_with(tmp_path, (2, 6), (4, 11), (6, 16))
    log_end = 20
    assert cache.end_offset_for(-1, log_end) == (-1, -1)  # undefined epoch
    assert cache.end_offset_for(6, log_end) == (6, 20)  # latest: the log end
    assert cache.end_offset_for(4, log_end) == (4, 16)  # start of the next epoch
    assert cache.end_offset_for(5, log_end) == (4, 16)  # unknown: the largest below
    assert cache.end_offset_for(3, log_end) == (2, 11)
    assert cache.end_offset_for(1, log_end) == (1, 6)  # before all: the first start offset
    assert cache.end_offset_for(7, log_end) == (-1, -1)  # after all
    empty = LeaderEpochCache(tmp_path / "other")
    assert empty.end_offset_for(0, 5) == (-1, -1)


def test_epoch_for_offset(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (2, 6), (4, 11))
    assert cache.epoch_for_offset(5) is None
    assert cache.epoch_for_offset(6) == 2
    assert cache.epoch_for_offset(10) == 2
    assert cache.epoch_for_offset(11) == 4
    assert cache.epoch_for_offset(100) == 4


def test_truncate_from_end(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (2, 6), (4, 11), (6, 16))
    cache.truncate_from_end(17)
    assert cache.latest_epoch == 6
    cache.truncate_from_end(11)
    assert cache.entries == (EpochEntry(2, 6),)
    cache.truncate_from_end(0)
    assert cache.entries == ()


def test_truncate_from_start_keeps_the_covering_epoch(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (2, 6), (4, 11), (6, 16))
    cache.truncate_from_start(5)
    assert cache.entries[0] == EpochEntry(2, 6)
    cache.truncate_from_start(12)
    assert cache.entries == (EpochEntry(4, 12), EpochEntry(6, 16))
    cache.truncate_from_start(16)
    assert cache.entries == (EpochEntry(6, 16),)
    cache.truncate_from_start(30)
    assert cache.entries == (EpochEntry(6, 30),)


def test_checkpoint_file_format_and_reload(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (2, 6), (4, 11))
    assert cache.dirty
    cache.flush()
    assert not cache.dirty
    assert cache.path.read_text() == "0\n2\n2 6\n4 11\n"
    reloaded = LeaderEpochCache.load(cache.path)
    assert reloaded.entries == cache.entries
    assert LeaderEpochCache.load(tmp_path / "missing").entries == ()


def test_flush_writes_only_when_changed(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (1, 0))
    cache.flush()
    cache.path.write_text("garbage")
    cache.flush()
    assert cache.path.read_text() == "garbage"
    cache.truncate_from_end(0)
    cache.flush()
    assert cache.path.read_text() == "0\n0\n"


@pytest.mark.parametrize("text", ["0\n2\n1 5\n", "0\n2\n3 5\n2 6\n", "0\n1\nx y\n"])
def test_corrupt_checkpoint(tmp_path: Path, text: str) -> None:
    path = tmp_path / "leader-epoch-checkpoint"
    path.write_text(text)
    with pytest.raises(CorruptCheckpointError):
        LeaderEpochCache.load(path)
