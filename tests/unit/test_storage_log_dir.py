from __future__ import annotations

import json
from pathlib import Path

import pytest

from rafka.storage.files import CorruptCheckpointError
from rafka.storage.log_dir import LogDirectory, parse_partition_dir_name


def test_clean_shutdown_marker(tmp_path: Path) -> None:
    directory = LogDirectory(tmp_path / "logs")
    assert directory.path.is_dir()
    assert not directory.had_clean_shutdown()
    directory.mark_clean_shutdown(broker_epoch=7)
    assert directory.had_clean_shutdown()
    content = json.loads((tmp_path / "logs" / ".kafka_cleanshutdown").read_text())
    assert content == {"version": 0, "brokerEpoch": 7}
    directory.clear_clean_shutdown()
    assert not directory.had_clean_shutdown()
    directory.clear_clean_shutdown()  # idempotent


def test_offset_checkpoints_use_kafkas_format(tmp_path: Path) -> None:
    directory = LogDirectory(tmp_path)
    assert directory.read_recovery_points() == {}
    directory.write_recovery_points({("orders", 0): 42, ("my-topic-x", 3): 7})
    text = (tmp_path / "recovery-point-offset-checkpoint").read_text()
    assert text == "0\n2\norders 0 42\nmy-topic-x 3 7\n"
    assert directory.read_recovery_points() == {("orders", 0): 42, ("my-topic-x", 3): 7}
    directory.write_log_start_offsets({("orders", 1): 5})
    assert (tmp_path / "log-start-offset-checkpoint").read_text() == "0\n1\norders 1 5\n"
    assert directory.read_log_start_offsets() == {("orders", 1): 5}


def test_corrupt_offset_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "recovery-point-offset-checkpoint").write_text("0\n1\norders x 1\n")
    with pytest.raises(CorruptCheckpointError):
        LogDirectory(tmp_path).read_recovery_points()


def test_partition_dirs(tmp_path: Path) -> None:
    directory = LogDirectory(tmp_path)
    created = directory.create_partition_dir("my-topic", 12)
    assert created == tmp_path / "my-topic-12"
    assert directory.create_partition_dir("my-topic", 12) == created
    directory.create_partition_dir("a.b_c", 0)
    (tmp_path / "orders-3.0123abcd-delete").mkdir()
    (tmp_path / "orders-4-future").mkdir()
    (tmp_path / "not_a_partition").mkdir()
    (tmp_path / "file-1").write_text("")
    assert directory.partition_dirs() == [
        ("a.b_c", 0, tmp_path / "a.b_c-0"),
        ("my-topic", 12, tmp_path / "my-topic-12"),
    ]


def test_delete_partition_dir(tmp_path: Path) -> None:
    directory = LogDirectory(tmp_path)
    path = directory.create_partition_dir("t", 1)
    (path / "00000000000000000000.log").write_bytes(b"data")
    directory.delete_partition_dir("t", 1)
    assert list(tmp_path.iterdir()) == []


def test_leftover_deletions_are_removed(tmp_path: Path) -> None:
    directory = LogDirectory(tmp_path)
    leftover = tmp_path / "t-1.0123456789abcdef0123456789abcdef-delete"
    leftover.mkdir()
    (leftover / "x").write_text("")
    directory.create_partition_dir("t", 2)
    directory.remove_leftover_deletions()
    assert [p.name for p in tmp_path.iterdir()] == ["t-2"]


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("t-0", ("t", 0)),
        ("a-b-c-10", ("a-b-c", 10)),
        ("-1", None),
        ("t-", None),
        ("t-x", None),
        ("t-1.abc-delete", None),
        (".hidden-1", None),
        ("t-١", None),  # non-ASCII digit
    ],
)
def test_parse_partition_dir_name(name: str, parsed: tuple[str, int] | None) -> None:
    assert parse_partition_dir_name(name) == parsed
