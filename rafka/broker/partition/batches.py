"""Settling thousands of partitions at a clean shutdown, side by side: a producer snapshot and
a last fsync each. In turn, 10,000 partitions took a minute; from a pool, the file system
commits them together.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import structlog

from rafka.broker.partition.replica import Partition

log = structlog.get_logger(__name__)

PARALLEL_FILE_WRITERS = 16


def settle_for_shutdown(partitions: Iterable[Partition]) -> None:
    """Every partition's producer snapshot at its log end (a clean start then replays nothing),
    then its last fsync and close."""
    with ThreadPoolExecutor(PARALLEL_FILE_WRITERS, "rafka-close") as closers:
        list(closers.map(_settle, partitions))


def _settle(partition: Partition) -> None:
    try:
        partition.snapshot_producers()
    except OSError as exc:  # only costs the next start a replay
        log.error("producer snapshot failed", partition=partition.name, error=str(exc))
    partition.close()  # flushes everything, index files included
