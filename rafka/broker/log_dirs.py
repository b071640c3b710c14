"""The broker's log directories (`log.dirs`, JBOD, and `metadata.log.dir`): which one holds each
replica, where a new replica goes, whether each was shut down cleanly, and the offset
checkpoints read from them at start and written back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from rafka.broker.cluster.cluster_metadata import METADATA_TOPIC
from rafka.broker.partition.replica import Partition
from rafka.broker.replica_moves import settle_future_dir
from rafka.storage.log_dir import LogDirectory

Key = tuple[str, int]


class LogDirs:
    def __init__(self, log_dirs: Iterable[str | Path], metadata_log_dir: str | Path) -> None:
        # The partitions are spread over `data_dirs`; the metadata log lives in metadata.log.dir
        # (by default the first of them); the cleaner's checkpoint is in the first.
        self.data_dirs = [LogDirectory(path) for path in log_dirs]
        metadata_path = os.path.abspath(metadata_log_dir)
        self.metadata_dir = next(
            (d for d in self.data_dirs if os.path.abspath(d.path) == metadata_path),
            None,
        ) or LogDirectory(metadata_log_dir)
        self.all_dirs = [*self.data_dirs]
        if self.metadata_dir not in self.data_dirs:
            self.all_dirs.append(self.metadata_dir)
        self.first = self.data_dirs[0]
        # Which log dir holds each replica (found at start, or chosen for a new one).
        self.placement: dict[Key, LogDirectory] = {}
        self.clean_start = False
        self._unclean: set[Path] = set()
        self.recovery_points: dict[Key, int] = {}
        self.log_start_offsets: dict[Key, int] = {}
        self.high_watermarks: dict[Key, int] = {}

    def load(self) -> None:
        """Find every replica in whichever log dir holds it (in two: an error, as in Kafka),
        settle the moves a crash interrupted, and read each dir's checkpoints."""
        for directory in self.all_dirs:
            directory.remove_leftover_deletions()
            for topic, index, _path in directory.partition_dirs():
                other = self.placement.get((topic, index))
                if other is not None:
                    raise RuntimeError(
                        f"partition {topic}-{index} is in two log dirs: {other.path} and "
                        f"{directory.path}; remove the stale copy"
                    )
                self.placement[(topic, index)] = directory
        for directory in self.all_dirs:
            for topic, index, path in directory.future_dirs():
                settle_future_dir(self.placement, directory, topic, index, path)
        held = self.placement.get((METADATA_TOPIC, 0))
        if held is not None and held is not self.metadata_dir:
            raise RuntimeError(
                f"the metadata log is in {held.path}, not in metadata.log.dir "
                f"{self.metadata_dir.path}"
            )
        for directory in self.all_dirs:
            if not directory.had_clean_shutdown():
                self._unclean.add(directory.path)
            directory.clear_clean_shutdown()
            checkpoints = (
                (self.recovery_points, directory.read_recovery_points()),
                (self.log_start_offsets, directory.read_log_start_offsets()),
                (self.high_watermarks, directory.read_high_watermarks()),
            )
            for merged, offsets in checkpoints:
                for key, offset in offsets.items():
                    if self.placement.get(key) is directory:
                        merged[key] = offset
        # A dir holding no replica (a disk just added) has no marker and nothing to recover.
        self._unclean = {
            path for path in self._unclean if any(d.path == path for d in self.placement.values())
        }
        self.clean_start = not self._unclean

    def dir_for(
        self,
        key: Key,
        preferred: Callable[[Key], LogDirectory | None],
        moving_into: Iterable[LogDirectory],
    ) -> LogDirectory:
        """The log dir holding this replica; for a new one, the dir AlterReplicaLogDirs named
        for it (`preferred`), else the data dir with the fewest partitions (moves into a dir
        count there), first in log.dirs on a tie (Kafka's rule)."""
        found = self.placement.get(key)
        if found is not None:
            return found
        if key[0] == METADATA_TOPIC:
            found = self.metadata_dir
        else:
            found = preferred(key)
            if found is None and len(self.data_dirs) == 1:
                found = self.first  # no count to make: it scans every replica held
            elif found is None:
                counts = {id(d): 0 for d in self.data_dirs}
                held = [d for k, d in self.placement.items() if k[0] != METADATA_TOPIC]
                for directory in [*held, *moving_into]:
                    if id(directory) in counts:
                        counts[id(directory)] += 1
                found = min(self.data_dirs, key=lambda d: counts[id(d)])
        self.placement[key] = found
        return found

    def is_clean(self, key: Key) -> bool:
        directory = self.placement.get(key)
        return directory is None or directory.path not in self._unclean

    def forget_checkpoints(self, key: Key) -> None:
        """A new, moved or dropped replica: checkpoints naming it are of another one."""
        for offsets in (self.recovery_points, self.log_start_offsets, self.high_watermarks):
            offsets.pop(key, None)

    def moved(self, key: Key, target: LogDirectory) -> None:
        """A move between log dirs swapped the replica into `target`."""
        self.placement[key] = target
        self.forget_checkpoints(key)

    def delete_replica_dir(self, key: Key) -> None:
        directory = self.placement.pop(key, None)
        if directory is not None:
            directory.delete_partition_dir(*key)

    def write_checkpoints(self, partitions: Iterable[Partition]) -> None:
        """Recovery points bound the CRC scan after a crash; log start offsets keep retention;
        high watermarks let a restarted leader see that its log is committed (it then appends
        no LEADER_CHANGE batch)."""
        by_dir: dict[LogDirectory, list[Partition]] = {d: [] for d in self.all_dirs}
        for partition in partitions:
            directory = self.placement.get((partition.topic, partition.index))
            if directory is not None:
                by_dir[directory].append(partition)
        for directory, held in by_dir.items():
            directory.write_recovery_points(
                {(p.topic, p.index): p.log.recovery_point for p in held}
            )
            directory.write_log_start_offsets(
                {(p.topic, p.index): p.log_start_offset for p in held}
            )
            directory.write_high_watermarks(
                {(p.topic, p.index): p.durable_high_watermark for p in held}
            )
