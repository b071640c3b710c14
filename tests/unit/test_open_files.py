"""The descriptor budget (rafka.storage.open_files): lazily opened files, a bounded set of open
descriptors, never one closed under its user, and pinned files that outlive a rename."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from rafka.storage.open_files import MIN_CAPACITY, LazyFile, OpenFiles, budget_from_limit

READ_WRITE = os.O_RDWR | os.O_APPEND


def make_files(directory: Path, files: OpenFiles, count: int) -> list[LazyFile]:
    directory.mkdir(exist_ok=True)
    made = []
    for i in range(count):
        path = directory / f"{i:04d}.log"
        path.write_bytes(f"file {i}".encode())
        made.append(LazyFile(files, str(path), READ_WRITE, READ_WRITE, open_now=False))
    return made


def read_all(file: LazyFile) -> bytes:
    with file as fd:
        return os.pread(fd, 100, 0)


def test_files_open_on_first_use_and_stay_within_the_budget(tmp_path: Path) -> None:
    files = OpenFiles(MIN_CAPACITY)
    made = make_files(tmp_path, files, MIN_CAPACITY * 3)
    assert len(files) == 0  # nothing opened yet
    for round_ in range(2):
        for i, file in enumerate(made):
            assert read_all(file) == f"file {i}".encode(), round_
            assert len(files) <= MIN_CAPACITY
    assert files.evictions >= MIN_CAPACITY * 5  # every file was closed and reopened


def test_a_file_in_use_is_never_closed_under_its_user(tmp_path: Path) -> None:
    files = OpenFiles(MIN_CAPACITY)
    made = make_files(tmp_path, files, MIN_CAPACITY * 2)
    held = made[0]
    with held as fd:
        for file in made[1:]:
            read_all(file)  # pushes the budget past what is free
        assert held.is_open
        assert os.pread(fd, 100, 0) == b"file 0"
    # Released, it is the oldest use: the next open closes it.
    read_all(make_files(tmp_path / "more", files, 1)[0])
    assert not held.is_open
    assert read_all(held) == b"file 0"  # and it reopens transparently


def test_writes_reopen_with_the_later_flags(tmp_path: Path) -> None:
    files = OpenFiles(MIN_CAPACITY)
    path = tmp_path / "new.log"
    path.write_bytes(b"stale")
    create = READ_WRITE | os.O_CREAT | os.O_TRUNC
    file = LazyFile(files, str(path), create, READ_WRITE, open_now=True)
    with file as fd:
        os.write(fd, b"one")
    others = make_files(tmp_path / "others", files, MIN_CAPACITY + 1)
    for other in others:
        read_all(other)
    assert not file.is_open
    with file as fd:  # reopened without O_TRUNC: the first write survives
        os.write(fd, b"two")
    assert path.read_bytes() == b"onetwo"


def test_a_pinned_file_keeps_its_bytes_after_another_takes_its_name(tmp_path: Path) -> None:
    files = OpenFiles(MIN_CAPACITY)
    (old,) = make_files(tmp_path, files, 1)
    old.pin()
    os.rename(old.path, old.path + ".deleted")
    Path(old.path).write_bytes(b"a new file")  # a compaction swap puts its successor there
    for other in make_files(tmp_path / "others", files, MIN_CAPACITY * 2):
        read_all(other)
    assert read_all(old) == b"file 0"  # never evicted, never reopened by name


def test_closed_files_refuse_use(tmp_path: Path) -> None:
    files = OpenFiles(MIN_CAPACITY)
    (file,) = make_files(tmp_path, files, 1)
    read_all(file)
    file.close()
    assert len(files) == 0
    with pytest.raises(OSError) as raised:
        read_all(file)
    assert raised.value.errno == errno.EBADF


def test_concurrent_users_never_see_a_closed_descriptor(tmp_path: Path) -> None:
    files = OpenFiles(MIN_CAPACITY)
    made = make_files(tmp_path, files, MIN_CAPACITY * 4)
    errors: list[BaseException] = []

    def reader(offset: int) -> None:
        try:
            for round_ in range(20):
                for i in range(offset, len(made), 3):
                    assert read_all(made[i]) == f"file {i}".encode(), round_
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(files) <= MIN_CAPACITY


def test_the_budget_leaves_room_for_sockets_and_the_rest() -> None:
    assert budget_from_limit(20_000) == 15_000
    assert budget_from_limit(1024) == 512
    assert budget_from_limit(100) == MIN_CAPACITY
