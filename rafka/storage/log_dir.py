"""One `log.dirs` directory: its partition directories, the clean-shutdown marker and the
per-directory offset checkpoints, in Kafka's formats. (`meta.properties` belongs to the broker.)
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path

from rafka.storage.files import (
    DELETE_DIR_SUFFIX,
    CorruptCheckpointError,
    atomic_write,
    delete_directory,
    fsync_dir,
    read_checkpoint,
    write_checkpoint,
    write_partition_metadata,
)

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
RECOVERY_POINT_CHECKPOINT_FILE = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT_FILE = "log-start-offset-checkpoint"
HIGH_WATERMARK_CHECKPOINT_FILE = "replication-offset-checkpoint"
CHECKPOINT_VERSION = 0
FUTURE_DIR_SUFFIX = "-future"
# Directories Kafka leaves for other purposes (future replicas, strays); never partition logs.
_IGNORED_DIR_SUFFIXES = (DELETE_DIR_SUFFIX, "-future", "-stray")

TopicPartition = tuple[str, int]


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def future_dir_name(topic: str, partition: int) -> str:
    """Kafka's name for a replica being moved into a log dir: `<topic>-<n>.<uuid hex>-future`."""
    return f"{partition_dir_name(topic, partition)}.{uuid.uuid4().hex}{FUTURE_DIR_SUFFIX}"


def parse_future_dir_name(name: str) -> TopicPartition | None:
    if not name.endswith(FUTURE_DIR_SUFFIX):
        return None
    stem, dot, unique = name[: -len(FUTURE_DIR_SUFFIX)].rpartition(".")
    if not dot or len(unique) != 32:
        return None
    return parse_partition_dir_name(stem)


def parse_partition_dir_name(name: str) -> TopicPartition | None:
    """`<topic>-<partition>` -> (topic, partition); None for anything else. Topic names may
    contain '-', so the partition is what follows the last one."""
    if name.startswith(".") or name.endswith(_IGNORED_DIR_SUFFIXES):
        return None
    topic, dash, number = name.rpartition("-")
    if not dash or not topic or not number.isdigit() or not number.isascii():
        return None
    return topic, int(number)


class LogDirectory:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.directory_id: uuid.UUID | None = None  # meta.properties' directory.id

    def future_dirs(self) -> list[tuple[str, int, Path]]:
        """(topic, partition, path) of every `-future` directory (a move into this dir)."""
        found: list[tuple[str, int, Path]] = []
        for entry in os.scandir(self.path):
            parsed = parse_future_dir_name(entry.name)
            if parsed is not None and entry.is_dir(follow_symlinks=False):
                found.append((parsed[0], parsed[1], Path(entry.path)))
        found.sort()
        return found

    # -- clean shutdown marker -----------------------------------------------------------------
    @property
    def clean_shutdown_file(self) -> Path:
        return self.path / CLEAN_SHUTDOWN_FILE

    def had_clean_shutdown(self) -> bool:
        return self.clean_shutdown_file.exists()

    def mark_clean_shutdown(self, broker_epoch: int = -1) -> None:
        """Written last on shutdown, after every log is flushed and checkpointed (Kafka writes
        the same JSON)."""
        body = json.dumps({"version": 0, "brokerEpoch": broker_epoch}, separators=(",", ":"))
        atomic_write(self.clean_shutdown_file, body.encode())

    def clear_clean_shutdown(self) -> None:
        """Removed at startup, before any log is written, so a crash is noticed next time."""
        try:
            os.unlink(self.clean_shutdown_file)
        except FileNotFoundError:
            return
        fsync_dir(self.path)

    # -- offset checkpoints --------------------------------------------------------------------
    def read_recovery_points(self) -> dict[TopicPartition, int]:
        return self._read_offsets(RECOVERY_POINT_CHECKPOINT_FILE)

    def write_recovery_points(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._write_offsets(RECOVERY_POINT_CHECKPOINT_FILE, offsets)

    def read_log_start_offsets(self) -> dict[TopicPartition, int]:
        return self._read_offsets(LOG_START_OFFSET_CHECKPOINT_FILE)

    def write_log_start_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._write_offsets(LOG_START_OFFSET_CHECKPOINT_FILE, offsets)

    def read_high_watermarks(self) -> dict[TopicPartition, int]:
        return self._read_offsets(HIGH_WATERMARK_CHECKPOINT_FILE)

    def write_high_watermarks(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._write_offsets(HIGH_WATERMARK_CHECKPOINT_FILE, offsets)

    def _read_offsets(self, name: str) -> dict[TopicPartition, int]:
        path = self.path / name
        rows = read_checkpoint(path, CHECKPOINT_VERSION)
        offsets: dict[TopicPartition, int] = {}
        for row in rows or ():
            if len(row) != 3:
                raise CorruptCheckpointError(f"{path}: malformed entry {' '.join(row)!r}")
            topic, partition, offset = row
            try:
                offsets[(topic, int(partition))] = int(offset)
            except ValueError:
                raise CorruptCheckpointError(f"{path}: malformed entry {' '.join(row)!r}") from None
        return offsets

    def _write_offsets(self, name: str, offsets: Mapping[TopicPartition, int]) -> None:
        write_checkpoint(
            self.path / name,
            CHECKPOINT_VERSION,
            (f"{topic} {partition} {offset}" for (topic, partition), offset in offsets.items()),
        )

    # -- partition directories -----------------------------------------------------------------
    def partition_dirs(self) -> list[tuple[str, int, Path]]:
        """(topic, partition, path) of every partition directory, sorted."""
        found: list[tuple[str, int, Path]] = []
        for entry in os.scandir(self.path):
            if not entry.is_dir(follow_symlinks=False):
                continue
            parsed = parse_partition_dir_name(entry.name)
            if parsed is not None:
                found.append((parsed[0], parsed[1], Path(entry.path)))
        found.sort()
        return found

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.path / partition_dir_name(topic, partition)

    def create_partition_dir(self, topic: str, partition: int) -> Path:
        path = self.partition_dir(topic, partition)
        if not path.is_dir():
            path.mkdir()
            fsync_dir(self.path)
        return path

    def prepare_partition_dir(self, topic: str, partition: int, topic_id: uuid.UUID) -> Path:
        """A new replica's directory and `partition.metadata`, not yet durable: the caller
        syncs a batch of them (files.sync_new_partition_dirs) before the replicas are used."""
        path = self.partition_dir(topic, partition)
        path.mkdir(exist_ok=True)
        write_partition_metadata(path, topic_id, durable=False)
        return path

    def set_aside_strays(self, known: Collection[tuple[str, int]]) -> list[Path]:
        """Rename the partition directories not in `known` (a delete interrupted by a crash) to
        `<name>.<uuid hex>-stray`; returns the new paths. Like Kafka's stray logs they are kept,
        not deleted: a damaged metadata log must never cost data, and a topic created later
        under the same name must not inherit them."""
        strays = []
        for topic, index, path in self.partition_dirs():
            if (topic, index) not in known:
                stray = path.with_name(f"{path.name}.{uuid.uuid4().hex}-stray")
                os.rename(path, stray)
                strays.append(stray)
        return strays

    def delete_partition_dir(self, topic: str, partition: int) -> None:
        """Rename to `<topic>-<partition>.<uuid hex>-delete`, then remove it."""
        delete_directory(self.partition_dir(topic, partition))

    def remove_leftover_deletions(self) -> None:
        """Finish deletions a crash interrupted (directories named `...-delete`)."""
        for entry in os.scandir(self.path):
            if entry.name.endswith(DELETE_DIR_SUFFIX) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
