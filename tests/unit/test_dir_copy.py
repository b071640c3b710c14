"""Several log dirs: `-future` names, and copying a partition directory while it grows."""

from __future__ import annotations

import os
from pathlib import Path

from rafka.storage.dir_copy import DirectoryCopy
from rafka.storage.log_dir import (
    LogDirectory,
    future_dir_name,
    parse_future_dir_name,
    parse_partition_dir_name,
)


def test_future_dir_names() -> None:
    name = future_dir_name("my-topic", 3)
    assert name.startswith("my-topic-3.") and name.endswith("-future")
    assert parse_future_dir_name(name) == ("my-topic", 3)
    assert parse_partition_dir_name(name) is None  # never taken for a partition
    assert parse_future_dir_name("my-topic-3") is None
    assert parse_future_dir_name("my-topic-3.abc-future") is None


def test_future_dirs_listed(tmp_path: Path) -> None:
    log_dir = LogDirectory(tmp_path)
    (tmp_path / future_dir_name("t", 0)).mkdir()
    (tmp_path / "t-1").mkdir()
    assert [(t, p) for t, p, _ in log_dir.future_dirs()] == [("t", 0)]
    assert [(t, p) for t, p, _ in log_dir.partition_dirs()] == [("t", 1)]


def test_copy_follows_appends_rewrites_and_deletions(tmp_path: Path) -> None:
    source, target = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    segment = source / f"{0:020d}.log"
    segment.write_bytes(b"a" * 1000)
    (source / "quorum-state").write_text("one")
    copy = DirectoryCopy(source, target)
    assert copy.copy_pass(0) == 1000 + 3
    assert copy.copy_pass(0) == 0  # nothing changed
    with open(segment, "ab") as f:
        f.write(b"b" * 10)
    assert copy.copy_pass(0) == 10  # the tail only
    assert (target / segment.name).read_bytes() == b"a" * 1000 + b"b" * 10
    # A truncation (then regrowth to the same size) is seen through the log's count.
    with open(segment, "r+b") as f:
        f.truncate(500)
        f.seek(500)
        f.write(b"c" * 510)
    copy.copy_pass(1)
    assert (target / segment.name).read_bytes() == segment.read_bytes()
    # A file replaced (atomic rename) is copied whole; a deleted one goes.
    tmp = source / "quorum-state.tmp"
    tmp.write_text("two!")
    os.replace(tmp, source / "quorum-state")
    second = source / f"{2000:020d}.log"
    second.write_bytes(b"d")
    segment.unlink()
    copy.copy_pass(1)
    assert sorted(os.listdir(target)) == sorted(os.listdir(source))
    assert (target / "quorum-state").read_text() == "two!"
    # The final pass recopies the files rewritten in place even if they look unchanged.
    assert copy.copy_pass(1, final=True) == 4
