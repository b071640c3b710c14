"""Small durable files: atomic replacement, directory fsync, Kafka's checkpoint text files and
`partition.metadata`."""

from __future__ import annotations

import base64
import ctypes
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

PARTITION_METADATA_FILE = "partition.metadata"
TEMP_SUFFIX = ".tmp"
DELETE_DIR_SUFFIX = "-delete"


class CorruptCheckpointError(ValueError):
    """A checkpoint or metadata file does not have the expected format."""


def fsync_dir(path: Path | str) -> None:
    """Make a directory's entries (created, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path: Path | str) -> bool:
    """syncfs(2): write back every dirty page and inode of the filesystem holding `path` in one
    call (Linux). False where it is not available (the caller then fsyncs file by file);
    OSError if the kernel reports a write-back error (since Linux 5.8)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)
    return True


def atomic_write(path: Path | str, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new content."""
    path = Path(path)
    temp = path.with_name(path.name + TEMP_SUFFIX)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    fsync_dir(path.parent)


_OFFSET_MARK_WIDTH = 20


def write_offset_mark(path: Path | str, offset: int) -> None:
    """Overwrite a one-offset marker file in place, without fsync: a crash of the process
    keeps it (page cache), a power loss may keep an older value. Either way it never claims more
    than was true when written, which is all a loss detector needs."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, f"{offset:0{_OFFSET_MARK_WIDTH}d}\n".encode(), 0)
    finally:
        os.close(fd)


def read_small_file(path: Path | str) -> bytes:
    """A small file's bytes in four system calls. Path.read_bytes also asks whether the file is
    a terminal, where its offset is and its size, twice: nine calls, and a 10,000-partition
    start reads several files per partition."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def list_files(directory: Path | str) -> frozenset[str]:
    """Names of the regular files in `directory`, from one listing (the kernel's entry types,
    no stat per file), none if it does not exist: a partition's start lists it once for its
    snapshot and index files."""
    try:
        with os.scandir(directory) as entries:
            return frozenset(e.name for e in entries if e.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()


def read_offset_mark(path: Path | str) -> int | None:
    """The offset in a marker file; None if it is missing or unreadable (torn, garbage)."""
    try:
        text = read_small_file(path)[: _OFFSET_MARK_WIDTH + 1]
    except FileNotFoundError:
        return None
    try:
        return int(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None


def write_checkpoint(path: Path | str, version: int, entries: Iterable[str]) -> None:
    """Kafka's CheckpointFile layout: version line, entry count line, one entry per line."""
    lines = list(entries)
    text = f"{version}\n{len(lines)}\n" + "".join(f"{line}\n" for line in lines)
    atomic_write(path, text.encode())


def read_checkpoint(path: Path | str, version: int) -> list[list[str]] | None:
    """The entries of a checkpoint file split on whitespace, or None if the file is missing.

    An empty file counts as no entries (Kafka creates checkpoint files empty).
    """
    try:
        text = read_small_file(path).decode("utf-8")
    except FileNotFoundError:
        return None
    lines = text.splitlines()
    if not lines:
        return []
    try:
        found_version = int(lines[0].strip())
        count = int(lines[1].strip())
    except (IndexError, ValueError):
        raise CorruptCheckpointError(f"{path}: malformed header") from None
    if found_version != version:
        raise CorruptCheckpointError(f"{path}: unsupported version {found_version}")
    entries = [line.split() for line in lines[2:] if line.strip()]
    if len(entries) != count:
        raise CorruptCheckpointError(f"{path}: expected {count} entries, found {len(entries)}")
    return entries


def topic_id_to_string(topic_id: uuid.UUID) -> str:
    """Kafka's Uuid.toString: URL-safe base64 of the 16 bytes, without padding."""
    return base64.urlsafe_b64encode(topic_id.bytes).rstrip(b"=").decode("ascii")


def topic_id_from_string(text: str) -> uuid.UUID:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 16:
        raise ValueError(f"not a Kafka topic id: {text!r}")
    return uuid.UUID(bytes=raw)


def write_partition_metadata(
    partition_dir: Path, topic_id: uuid.UUID, *, durable: bool = True
) -> None:
    """`durable=False` leaves the fsyncs to the caller (see `sync_new_partition_dirs`)."""
    text = f"version: 0\ntopic_id: {topic_id_to_string(topic_id)}\n"
    path = partition_dir / PARTITION_METADATA_FILE
    if durable:
        atomic_write(path, text.encode())
    else:
        temp = path.with_name(path.name + TEMP_SUFFIX)
        temp.write_bytes(text.encode())
        os.replace(temp, path)


def sync_new_partition_dirs(log_dir: Path, partition_dirs: Iterable[Path]) -> None:
    """Make new partition directories durable with their `partition.metadata`, together: one
    syncfs where Linux has it, else an fsync of each file and directory. A topic's hundreds
    of replicas then cost one call, not three fsyncs each."""
    if sync_filesystem(log_dir):
        return
    for directory in partition_dirs:
        fd = os.open(directory / PARTITION_METADATA_FILE, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(directory)
    fsync_dir(log_dir)


def sync_filesystems(paths: Iterable[Path]) -> bool:
    """syncfs once per filesystem among `paths` (several log dirs may share one); False where
    syncfs is not available."""
    seen: set[int] = set()
    for path in paths:
        device = os.stat(path).st_dev
        if device in seen:
            continue
        if not sync_filesystem(path):
            return False
        seen.add(device)
    return True


def sync_new_partition_dirs_in(new_dirs: Mapping[Path, Iterable[Path]]) -> None:
    """`sync_new_partition_dirs` for new partition directories spread over several log dirs
    (log dir -> its new partition dirs): one syncfs per filesystem."""
    if sync_filesystems(new_dirs):
        return
    for log_dir, partition_dirs in new_dirs.items():
        sync_new_partition_dirs(log_dir, partition_dirs)


def read_partition_metadata(partition_dir: Path) -> uuid.UUID | None:
    """The topic id recorded in `partition.metadata`, or None if the file does not exist."""
    path = partition_dir / PARTITION_METADATA_FILE
    try:
        text = read_small_file(path).decode("utf-8")
    except FileNotFoundError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    if fields.get("version") != "0" or "topic_id" not in fields:
        raise CorruptCheckpointError(f"{path}: malformed partition metadata")
    try:
        return topic_id_from_string(fields["topic_id"])
    except ValueError as exc:
        raise CorruptCheckpointError(f"{path}: {exc}") from None


def delete_directory(directory: Path) -> None:
    """Rename to `<name>.<uuid hex>-delete` (so a crash mid-way is recognisable), then remove."""
    if not directory.exists():
        return
    doomed = directory.with_name(f"{directory.name}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}")
    os.rename(directory, doomed)
    fsync_dir(directory.parent)
    shutil.rmtree(doomed, ignore_errors=True)
