"""The file-descriptor budget: segment and index files are opened on first use and kept in one
bounded, least-recently-used set per process; idle ones are closed when it is full.

Kafka keeps every segment's files open and asks for a large `ulimit -n`. With tens of thousands
of partitions that exhausts the limit (three files per partition), so here a file is a path plus
the flags to reopen it, and holds a descriptor only while it is in the set. A descriptor in use
(`with file as fd:`, on any thread) is never closed under its user; a file about to be renamed
or unlinked is pinned (kept open until closed or collected) so readers still holding it read the
old bytes, never a new file that took its name.

Closing a descriptor with unsynced writes is safe: fsync through a later descriptor of the same
file flushes them, and Linux reports a writeback error not yet seen to a descriptor opened after it.
"""

from __future__ import annotations

import errno
import os
import resource
import threading
import weakref
from collections import OrderedDict

import structlog

log = structlog.get_logger(__name__)

# Descriptors left to sockets, checkpoints, snapshots and the rest when the budget is derived
# from RLIMIT_NOFILE: a quarter of the limit, at least this many.
MIN_RESERVED = 512
MIN_CAPACITY = 64


class OpenFiles:
    """The process's set of open log and index files (see the module docstring)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, MIN_CAPACITY)
        self.lock = threading.Lock()
        self._open: OrderedDict[LazyFile, None] = OrderedDict()  # oldest use first
        self.evictions = 0
        self._warned_full = False

    def __len__(self) -> int:
        return len(self._open)

    def resize(self, capacity: int) -> None:
        with self.lock:
            self.capacity = max(capacity, MIN_CAPACITY)
            self._make_room()

    # -- called with `lock` held -----------------------------------------------------------------
    def _opened(self, file: LazyFile) -> None:
        self._open[file] = None
        if len(self._open) > self.capacity:
            self._make_room()

    def _used(self, file: LazyFile) -> None:
        self._open.move_to_end(file)

    def _forget(self, file: LazyFile) -> None:
        self._open.pop(file, None)

    def _make_room(self, target: int | None = None) -> int:
        """Close idle files, oldest use first, down to `target` (the capacity); how many."""
        target = self.capacity if target is None else target
        excess = len(self._open) - target
        if excess <= 0:
            return 0
        victims: list[LazyFile] = []
        for file in self._open:  # oldest use first; usually the first one will do
            if file._users == 0:
                victims.append(file)
                if len(victims) >= excess:
                    break
        for file in victims:
            del self._open[file]
            file._close_fd()
        closed = len(victims)
        self.evictions += closed
        if closed < excess and not self._warned_full:
            self._warned_full = True
            log.warning(
                "more log files in use at once than the file budget allows",
                budget=self.capacity,
                open=len(self._open),
            )
        return closed

    def _open_fd(self, path: str, flags: int) -> int:
        try:
            return os.open(path, flags | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            # Something else holds more descriptors than foreseen: give back half of ours.
            if not self._make_room(len(self._open) // 2):
                raise
            return os.open(path, flags | os.O_CLOEXEC, 0o644)


_NOT_OPEN = -1


class LazyFile:
    """A file opened on first use; its descriptor lives in an `OpenFiles` set.

    `with file as fd:` lends the descriptor (reopening the file if the set closed it); nested
    and concurrent uses are counted. `flags` open it the first time (e.g. O_CREAT|O_TRUNC),
    `reopen_flags` every later time.
    """

    __slots__ = (
        *("path", "_flags", "_reopen_flags", "_fd", "_users", "_files", "_pinned", "_closed"),
        "__weakref__",
    )

    def __init__(
        self, files: OpenFiles, path: str, flags: int, reopen_flags: int, *, open_now: bool
    ) -> None:
        self.path = path
        self._files = files
        self._flags = flags
        self._reopen_flags = reopen_flags
        self._fd = _NOT_OPEN
        self._users = 0
        self._pinned = False
        self._closed = False
        if open_now:
            with self:
                pass

    def __enter__(self) -> int:
        files = self._files
        with files.lock:
            fd = self._fd
            if fd == _NOT_OPEN:
                if self._closed:
                    raise OSError(errno.EBADF, f"{self.path} is closed")
                fd = self._fd = files._open_fd(self.path, self._flags)
                self._flags = self._reopen_flags
                self._users += 1
                if not self._pinned:
                    files._opened(self)
            else:
                self._users += 1
                if not self._pinned:
                    files._used(self)
        return fd

    def __exit__(self, *_: object) -> None:
        with self._files.lock:
            self._users -= 1

    @property
    def is_open(self) -> bool:
        return self._fd != _NOT_OPEN

    @property
    def closed(self) -> bool:
        return self._closed

    def pin(self) -> None:
        """Keep the descriptor (opening the file now if needed) until `close` or collection:
        the path is about to be renamed or unlinked. A file already gone stays closed."""
        if self._pinned or self._closed:
            return
        try:
            with self:
                pass
        except FileNotFoundError:
            return
        with self._files.lock:
            if self._fd == _NOT_OPEN:
                return
            self._pinned = True
            self._files._forget(self)
            weakref.finalize(self, _close_quietly, self._fd)

    def close(self) -> None:
        """Close for good: later uses raise EBADF. A user on another thread keeps a pinned
        descriptor until it is collected, as before the budget existed."""
        with self._files.lock:
            self._closed = True
            if self._fd == _NOT_OPEN or self._pinned:
                return
            self._files._forget(self)
            if self._users == 0:
                self._close_fd()
            else:
                # In use on another thread: leave the descriptor to the collector.
                weakref.finalize(self, _close_quietly, self._fd)
                self._pinned = True

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, _NOT_OPEN
        _close_quietly(fd)

    def __repr__(self) -> str:
        return f"LazyFile({os.path.basename(self.path)}, fd={self._fd})"


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def budget_from_limit(soft_limit: int) -> int:
    """How many log and index files to keep open under a RLIMIT_NOFILE soft limit."""
    if soft_limit == resource.RLIM_INFINITY:
        soft_limit = 1 << 20
    reserved = max(soft_limit // 4, MIN_RESERVED)
    return max(soft_limit - reserved, MIN_CAPACITY)


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (Kafka asks the operator for a high
    `ulimit -n`; a process may do it itself). Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, hard
    return soft, soft


# The process-wide set; the broker sizes it at start (`configure`), tests and tools use the default.
OPEN_FILES = OpenFiles(budget_from_limit(resource.getrlimit(resource.RLIMIT_NOFILE)[0]))


def configure_budget() -> dict[str, int]:
    """At broker start: raise the descriptor limit and size the set to it; what was decided."""
    before, after = raise_descriptor_limit()
    capacity = budget_from_limit(after)
    OPEN_FILES.resize(capacity)
    return {"soft_limit_before": before, "soft_limit": after, "log_file_budget": capacity}
