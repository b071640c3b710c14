"""The log cleaner: compacts the partitions whose cleanup.policy includes compact.

Every log.cleaner.backoff.ms it looks at each compacted partition and cleans the ones that are
dirty enough (min.cleanable.dirty.ratio), overdue (max.compaction.lag.ms) or holding tombstones
past their delete horizon. One partition at a time (log.cleaner.threads = 1): the reading and
writing run in the broker's thread pool, the swap of the cleaned segments on the event loop,
where appends, rolls and retention also change the segment list. Where each partition's dirty
section starts is kept in Kafka's `cleaner-offset-checkpoint`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import uuid
from typing import TYPE_CHECKING

import structlog

from rafka.broker.partition.clock import now_ms
from rafka.broker.partition.replica import Partition
from rafka.broker.topic_admin import broker_configs
from rafka.protocol.records import CorruptRecordError
from rafka.storage.cleaner import (
    CleaningAborted,
    CleanResult,
    clean,
    cleanable_range,
    discard,
    install,
    read_cleaner_checkpoint,
    should_clean,
    write_cleaner_checkpoint,
)
from rafka.storage.files import CorruptCheckpointError

if TYPE_CHECKING:
    from rafka.broker.node import StorageNode

log = structlog.get_logger(__name__)

PartitionKey = tuple[str, int]


class LogCleanerService:
    def __init__(self, broker: StorageNode) -> None:
        self._broker = broker
        self._task: asyncio.Task[None] | None = None
        self._pass: concurrent.futures.Future[CleanResult] | None = None  # the pool job
        self._stopping = threading.Event()
        self._wakeup = asyncio.Event()
        # Per partition: (topic id, first dirty offset); the id tells a re-created topic apart.
        self._first_dirty: dict[PartitionKey, tuple[uuid.UUID | None, int]] = {}
        self._delete_horizons: dict[PartitionKey, int] = {}

    def start(self) -> None:
        if not self._broker.config.get_bool("log.cleaner.enable"):
            return
        try:
            stored = read_cleaner_checkpoint(self._broker.log_dir.path)
        except (CorruptCheckpointError, OSError) as exc:
            log.warning("cleaner checkpoint unreadable; cleaning from the start", error=str(exc))
            stored = {}
        self._first_dirty = {key: (None, offset) for key, offset in stored.items()}
        self._task = asyncio.create_task(self._run(), name="log-cleaner")

    async def stop(self) -> None:
        self._stopping.set()
        running = self._pass
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if running is not None and not running.done():
            # The pool job polls _stopping and ends soon; the logs must not close under it.
            # (Cancelling the task above cannot stop a job already running in the pool.)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wrap_future(running)

    def wake(self) -> None:
        """Run a pass now rather than after the backoff (e.g. a topic became compacted)."""
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            backoff = self._backoff_seconds()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("log cleaner pass failed")

    def _backoff_seconds(self) -> float:
        try:  # a dynamic broker config: read each time
            return broker_configs(self._broker).effective.get_int("log.cleaner.backoff.ms") / 1000
        except ValueError:
            return self._broker.config.get_int("log.cleaner.backoff.ms") / 1000

    async def run_once(self) -> int:
        """One look at every compacted partition; returns how many were cleaned."""
        cleaned = 0
        for key, partition in list(self._broker.partitions.items()):
            if self._stopping.is_set():
                break
            if partition.offline is None and partition.log.config.compact_enabled:
                if await self._clean_partition(key, partition):
                    cleaned += 1
        self._prune()
        if cleaned:
            await self._write_checkpoint()
        return cleaned

    async def _clean_partition(self, key: PartitionKey, partition: Partition) -> bool:
        topic_id, first_dirty = self._first_dirty.get(key, (None, 0))
        if (topic_id is not None and topic_id != partition.topic_id) or (
            first_dirty > partition.log_end_offset
        ):
            first_dirty = 0  # a different topic of the same name
        now = now_ms()
        config = partition.log.config
        # Up to the last stable offset: undecided transactional records must not replace others.
        cleanable = cleanable_range(partition.log, first_dirty, partition.last_stable_offset, now)
        if cleanable is None or not should_clean(
            cleanable, config, now, self._delete_horizons.get(key)
        ):
            return False
        self._pass = self._broker.pool.submit(
            clean,
            partition.log,
            cleanable,
            now,
            self._stopping.is_set,
            partition.txn_index.aborted_batches(),
        )
        try:
            result = await asyncio.wrap_future(self._pass)
        except CleaningAborted:
            return False
        except (OSError, CorruptRecordError, ValueError) as exc:
            log.error("log compaction failed", partition=partition.name, error=str(exc))
            return False
        finally:
            self._pass = None
        if self._broker.partitions.get(key) is not partition or partition.offline is not None:
            discard(result)  # deleted or failed meanwhile
            return False
        installed = install(partition.log, result)
        self._first_dirty[key] = (partition.topic_id, result.end)
        if result.next_delete_horizon is None:
            self._delete_horizons.pop(key, None)
        else:
            self._delete_horizons[key] = result.next_delete_horizon
        log.info(
            "log compacted",
            partition=partition.name,
            segments=installed,
            records_read=result.records_read,
            records_kept=result.records_kept,
            bytes_before=result.bytes_before,
            bytes_after=result.bytes_after,
            first_dirty=result.end,
        )
        return True

    def _prune(self) -> None:
        live = self._broker.partitions
        for key in [k for k in self._first_dirty if k not in live]:
            del self._first_dirty[key]
            self._delete_horizons.pop(key, None)

    async def _write_checkpoint(self) -> None:
        offsets = {key: offset for key, (_, offset) in self._first_dirty.items()}
        path = self._broker.log_dir.path
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._broker.pool, write_cleaner_checkpoint, path, offsets)
        except OSError as exc:
            log.error("cleaner checkpoint write failed", error=str(exc))
