from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from rafka.storage.files import (
    CorruptCheckpointError,
    atomic_write,
    delete_directory,
    read_checkpoint,
    read_partition_metadata,
    topic_id_from_string,
    topic_id_to_string,
    write_checkpoint,
    write_partition_metadata,
)


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "file"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_checkpoint_format(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    write_checkpoint(path, 0, ["a 1 2", "b 3 4"])
    assert path.read_text() == "0\n2\na 1 2\nb 3 4\n"
    assert read_checkpoint(path, 0) == [["a", "1", "2"], ["b", "3", "4"]]


def test_checkpoint_missing_and_empty(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path / "missing", 0) is None
    (tmp_path / "empty").write_text("")
    assert read_checkpoint(tmp_path / "empty", 0) == []


@pytest.mark.parametrize("text", ["1\n0\n", "0\n2\na 1\n", "x\n", "0\n"])
def test_checkpoint_corruption_is_reported(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cp"
    path.write_text(text)
    with pytest.raises(CorruptCheckpointError):
        read_checkpoint(path, 0)


def test_topic_id_uses_kafkas_base64_form() -> None:
    topic_id = uuid.UUID("3f1c1f2e-8a52-4c6e-9d3b-0a1b2c3d4e5f")
    text = topic_id_to_string(topic_id)
    assert len(text) == 22 and "=" not in text
    assert text == "PxwfLopSTG6dOwobLD1OXw"
    assert topic_id_from_string(text) == topic_id


def test_partition_metadata_round_trip(tmp_path: Path) -> None:
    topic_id = uuid.uuid4()
    assert read_partition_metadata(tmp_path) is None
    write_partition_metadata(tmp_path, topic_id)
    text = (tmp_path / "partition.metadata").read_text()
    assert text == f"version: 0\ntopic_id: {topic_id_to_string(topic_id)}\n"
    assert read_partition_metadata(tmp_path) == topic_id


def test_partition_metadata_corrupt(tmp_path: Path) -> None:
    (tmp_path / "partition.metadata").write_text("version: 1\ntopic_id: x\n")
    with pytest.raises(CorruptCheckpointError):
        read_partition_metadata(tmp_path)


def test_delete_directory(tmp_path: Path) -> None:
    doomed = tmp_path / "t-0"
    doomed.mkdir()
    (doomed / "f").write_bytes(b"x")
    delete_directory(doomed)
    assert list(tmp_path.iterdir()) == []
