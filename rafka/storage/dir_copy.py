"""Copying a partition directory into another log directory while its log keeps growing (a
replica moving between disks, AlterReplicaLogDirs).

Each pass brings the copy up to date with the source: a segment `.log` that only grew (same
inode, larger, and no truncation of the log since the last pass) gets its new tail; any other
file that changed (inode, size or modification time) is copied whole; files gone from the
source are removed from the copy. Passes run in a worker thread while appends go on; the last
one runs with appends held, and also recopies the files rewritten in place whose changes the
modification time may miss (the active segment's indexes, the small state files).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from msgspec import Struct

from rafka.storage.files import TEMP_SUFFIX, fsync_dir

_SEGMENT_FILE = re.compile(r"^(\d{20})\.(log|index|timeindex|txnindex)$")
_SKIPPED_SUFFIXES = (TEMP_SUFFIX, ".deleted", ".cleaned")
_CHUNK = 1 << 20


class _Seen(Struct, frozen=True):
    """A file's identity and size when it was last copied."""

    inode: int
    size: int
    mtime_ns: int


class DirectoryCopy:
    def __init__(self, source: Path, target: Path) -> None:
        self.source = source
        self.target = target
        self._seen: dict[str, _Seen] = {}
        self._truncations = 0

    def copy_pass(self, truncations: int, *, final: bool = False, sync: bool = True) -> int:
        """Bring the copy up to date; returns the bytes copied. `truncations` is the log's
        truncation count, read before the pass: a change since the last pass copies every
        segment whole. `final` (appends held) also recopies the files rewritten in place."""
        if truncations != self._truncations:
            self._truncations = truncations
            self._seen.clear()
        self.target.mkdir(exist_ok=True)
        names: list[str] = []
        for entry in os.scandir(self.source):
            if entry.is_file(follow_symlinks=False) and not entry.name.endswith(_SKIPPED_SUFFIXES):
                names.append(entry.name)
        last_base = max(
            (m.group(1) for m in map(_SEGMENT_FILE.match, names) if m is not None), default=None
        )
        copied = 0
        written: list[Path] = []
        for name in names:
            match = _SEGMENT_FILE.match(name)
            rewritten_in_place = match is None or (
                match.group(2) != "log" and match.group(1) == last_base
            )
            moved = self._copy_file(name, always=final and rewritten_in_place)
            if moved is not None:
                copied += moved
                written.append(self.target / name)
        present = set(names)
        for stale in set(os.listdir(self.target)) - present:
            os.unlink(self.target / stale)
            self._seen.pop(stale, None)
            written.append(self.target)
        if sync:
            for path in written:
                if path != self.target:
                    _fsync_file(path)
            fsync_dir(self.target)
        return copied

    def _copy_file(self, name: str, *, always: bool) -> int | None:
        """Bytes copied, or None if the file was already up to date (or vanished)."""
        try:
            fd = os.open(self.source / name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            now = _Seen(st.st_ino, st.st_size, st.st_mtime_ns)
            before = self._seen.get(name)
            if before == now and not always:
                return None
            start = 0
            if (
                before is not None
                and name.endswith(".log")
                and before.inode == now.inode
                and now.size >= before.size
            ):
                start = before.size  # append-only between truncations: copy the new tail
            flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (0 if start else os.O_TRUNC)
            out = os.open(self.target / name, flags, 0o644)
            try:
                position = start
                while position < now.size:
                    chunk = os.pread(fd, min(_CHUNK, now.size - position), position)
                    if not chunk:
                        break
                    view, at = memoryview(chunk), position
                    while view:
                        written = os.pwrite(out, view, at)
                        view, at = view[written:], at + written
                    position += len(chunk)
                os.ftruncate(out, position)
            finally:
                os.close(out)
            self._seen[name] = _Seen(now.inode, position, now.mtime_ns)
            return position - start
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
