"""New replicas' directories, made durable off the event loop before the replicas open.

A new replica's directory and `partition.metadata` each made durable on its own cost three
fsyncs, milliseconds on the event loop: a topic of a few hundred partitions held the loop for
seconds, past the metadata quorum's fetch timeout, so its leader was lost and, cut off from
the controller, every broker resigned its leaderships (3,000 RF=3 partitions could not be
created). So a topic's new directories are written at once without fsync, synced together in
the thread pool, and only then opened: nothing a replica does (vote, fetch, append) can come
before its directory is on disk. With several log dirs, each new replica goes where `place`
says (the dir with the fewest partitions) and the sync is one syncfs per filesystem.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rafka.storage.files import sync_new_partition_dirs_in
from rafka.storage.log_dir import LogDirectory


class NewReplicaDirs:
    def __init__(
        self, place: Callable[[str, int], LogDirectory], pool: ThreadPoolExecutor
    ) -> None:
        self._place = place  # the log dir for a new replica (which then counts as placed)
        self._pool = pool
        self._pending: dict[tuple[str, int], asyncio.Future[None]] = {}

    def pending(self, key: tuple[str, int]) -> bool:
        return key in self._pending

    def pending_keys(self) -> set[tuple[str, int]]:
        return set(self._pending)

    def create(self, topic: str, topic_id: uuid.UUID, indexes: list[int]) -> asyncio.Future[None]:
        """Write the directories now; the future resolves once they are durable, or fails
        with the OSError that kept them from being written (a full disk): those replicas stay
        offline until a restart creates them."""
        dirs: dict[Path, list[Path]] = {}
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None]
        try:
            for i in indexes:
                log_dir = self._place(topic, i)
                dirs.setdefault(log_dir.path, []).append(
                    log_dir.prepare_partition_dir(topic, i, topic_id)
                )
        except OSError as error:
            future = loop.create_future()
            future.set_exception(error)
        else:
            future = loop.run_in_executor(self._pool, sync_new_partition_dirs_in, dirs)
        keys = [(topic, i) for i in indexes]
        for key in keys:
            self._pending[key] = future

        def settled(_: asyncio.Future[None]) -> None:
            for key in keys:
                if self._pending.get(key) is future:
                    del self._pending[key]

        future.add_done_callback(settled)
        return future

    async def wait(self, keys: Iterable[tuple[str, int]]) -> None:
        """Until the named replicas being created (if any) are durable, or failed to be."""
        futures = {self._pending[key] for key in keys if key in self._pending}
        if futures:
            await asyncio.wait(futures)
