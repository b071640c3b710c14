"""Moving a replica to another log dir of this broker while it stays online (AlterReplicaLogDirs).

The replica's directory is copied into `<topic>-<n>.<uuid>-future` in the target dir, pass after
pass in the I/O pool while appends go on (storage.dir_copy), until a pass finds little left.
Then, on the event loop and without yielding it (so no append, fetch or truncation comes in
between), once no fsync of the log runs: the files are brought up to date with memory, the rest
is copied and fsynced, the old directory is renamed `-delete`, the future one takes the
partition's name, and the partition continues on the new files (its Raft state, waiters and
listeners unchanged). The old directory is removed afterwards, off the loop.

A crash at any step loses nothing: before the old directory is renamed, the future one is
incomplete and a restart discards it (the move is not resumed: issue it again); after, it is
complete and fsynced, and a restart gives it the partition's name (settle_future_dir).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import structlog

from rafka.broker.flusher import GroupCommitFlusher
from rafka.broker.partition.recovery import recover_replica
from rafka.broker.partition.replica import Partition
from rafka.storage.dir_copy import DirectoryCopy
from rafka.storage.files import DELETE_DIR_SUFFIX, delete_directory, fsync_dir
from rafka.storage.log_dir import LogDirectory, future_dir_name, partition_dir_name

log = structlog.get_logger(__name__)

Key = tuple[str, int]
# A pass that copied less than this leaves a delta small enough to copy with appends held.
CAUGHT_UP_BYTES = 1 << 20
# How long the final step waits for a running fsync of the log before trying again.
FLUSH_WAIT_SECONDS = 5.0


class MoveHost(Protocol):
    """What a move needs of the broker."""

    node_id: int
    pool: ThreadPoolExecutor
    flusher: GroupCommitFlusher
    placement: dict[Key, LogDirectory]

    def partition(self, topic: str, index: int) -> Partition | None: ...

    def replica_moved(self, key: Key, target: LogDirectory) -> None: ...

    def write_checkpoints(self) -> None: ...


def settle_future_dir(
    placement: dict[Key, LogDirectory], directory: LogDirectory, topic: str, index: int, path: Path
) -> None:
    """At startup, a `-future` dir a crash left: discarded if the replica is still where it
    was (the swap had not begun: the copy may be incomplete); else the swap had renamed the old
    directory away, so this complete copy takes the partition's name."""
    key = (topic, index)
    if key in placement:
        log.warning("unfinished replica move discarded", path=str(path))
        delete_directory(path)
        return
    final = directory.path / partition_dir_name(topic, index)
    os.rename(path, final)
    fsync_dir(directory.path)
    placement[key] = directory
    log.warning("replica move completed at startup", path=str(final))


class ReplicaMoves:
    def __init__(self, host: MoveHost) -> None:
        self._host = host
        self._moves: dict[Key, tuple[LogDirectory, asyncio.Task[None]]] = {}
        self._copies: dict[Key, DirectoryCopy] = {}
        self._copied: dict[Key, int] = {}  # bytes in the future dir so far
        self._caught_up: set[Key] = set()
        # Dirs named for replicas this broker does not host yet (Kafka's preferred log dir).
        self.preferred: dict[Key, LogDirectory] = {}

    def take_preferred(self, key: Key) -> LogDirectory | None:
        """The dir named for a replica this broker did not host yet, now that it gets one."""
        return self.preferred.pop(key, None)

    def targets(self) -> list[LogDirectory]:
        return [target for target, _ in self._moves.values()]

    def future(self, key: Key) -> tuple[LogDirectory, int, bool] | None:
        """(target dir, bytes copied, caught up) of a move in progress."""
        move = self._moves.get(key)
        if move is None:
            return None
        return move[0], self._copied.get(key, 0), key in self._caught_up

    def start(self, key: Key, target: LogDirectory) -> None:
        """Move the replica into `target` (no-op if it is there or already moving there; a
        move elsewhere is replaced, as Kafka does)."""
        running = self._moves.get(key)
        if running is not None:
            if running[0] is target:
                return
            self.cancel(key)
        if self._host.placement.get(key) is target:
            return
        task = asyncio.get_running_loop().create_task(
            self._run(key, target), name=f"move-{key[0]}-{key[1]}"
        )
        self._moves[key] = (target, task)

    def cancel(self, key: Key) -> None:
        move = self._moves.pop(key, None)
        if move is not None:
            move[1].cancel()

    async def stop(self) -> None:
        tasks = [task for _, task in self._moves.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, key: Key, target: LogDirectory) -> None:
        host = self._host
        partition = host.partition(*key)
        source = host.placement.get(key)
        if partition is None or source is None:
            self._moves.pop(key, None)
            return
        future = target.path / future_dir_name(*key)
        copy = DirectoryCopy(partition.directory, future)
        self._copies[key] = copy
        loop = asyncio.get_running_loop()
        swapped = False
        try:
            await loop.run_in_executor(host.pool, _create_dir, future)
            while True:
                self._check(key, partition)
                copied = await loop.run_in_executor(
                    host.pool, copy.copy_pass, partition.log.truncations
                )
                self._copied[key] = _dir_size(future)
                if copied < CAUGHT_UP_BYTES:
                    break
            self._caught_up.add(key)
            while True:
                if not await host.flusher.idle_for(partition, FLUSH_WAIT_SECONDS):
                    continue
                self._check(key, partition)
                # From here to the swap nothing yields the event loop: appends are held.
                doomed = self._swap(key, partition, source, target, copy, future)
                swapped = True
                break
            host.write_checkpoints()
            await loop.run_in_executor(host.pool, shutil.rmtree, doomed, True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an I/O error: the replica stays where it was
            log.error("replica move failed", partition=partition.name, error=repr(exc))
        finally:
            if self._moves.get(key, (None,))[0] is target:
                del self._moves[key]
            self._copies.pop(key, None)
            self._copied.pop(key, None)
            self._caught_up.discard(key)
            if not swapped:
                await loop.run_in_executor(host.pool, shutil.rmtree, future, True)

    def _check(self, key: Key, partition: Partition) -> None:
        if self._host.partition(*key) is not partition or partition.offline is not None:
            raise asyncio.CancelledError  # deleted or offline meanwhile: give up the move

    def _swap(
        self,
        key: Key,
        partition: Partition,
        source: LogDirectory,
        target: LogDirectory,
        copy: DirectoryCopy,
        future: Path,
    ) -> Path:
        """Runs on the event loop without yielding it. Returns the old dir, to be removed."""
        started = time.perf_counter()
        partition.prepare_final_copy()
        copy.copy_pass(partition.log.truncations, final=True, sync=True)
        fsync_dir(target.path)
        old = partition.directory
        doomed = old.with_name(f"{old.name}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}")
        os.rename(old, doomed)
        fsync_dir(source.path)
        final = target.path / partition_dir_name(*key)
        try:
            os.rename(future, final)
            fsync_dir(target.path)
            moved = recover_replica(
                partition.name,
                final,
                partition.log.config,
                node_id=self._host.node_id,
                voters=frozenset(partition.raft.voters),
                recovery_point=partition.log_end_offset,
                log_start_offset=partition.log_start_offset,
                high_watermark=partition.high_watermark,
                clean_shutdown=True,
                producer_id_expiration_ms=partition.producers.max_producer_id_expiration_ms,
                raft_config=None,
            )
        except Exception:
            # Put the old directory back: the partition never left its files.
            if final.exists():
                os.rename(final, future)
            os.rename(doomed, old)
            fsync_dir(source.path)
            raise
        partition.replace_storage(final, moved).release()
        self._host.replica_moved(key, target)
        log.info(
            "replica moved",
            partition=partition.name,
            log_dir=str(target.path),
            appends_held_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return doomed


def _create_dir(path: Path) -> None:
    path.mkdir()
    fsync_dir(path.parent)


def _dir_size(path: Path) -> int:
    total = 0
    try:
        for entry in os.scandir(path):
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        return 0
    return total
