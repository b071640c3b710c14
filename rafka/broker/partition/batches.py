"""What thousands of partitions do at once, side by side: single-replica partitions taking
leadership (at a start, or when a topic is created) and settling at a clean shutdown.

Each involves an fsync pair or two per partition. In turn, 10,000 partitions took ~40 s to
elect and a minute to shut down; written from a pool, the file system commits them together.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import structlog

from rafka.broker.partition.replica import Partition

log = structlog.get_logger(__name__)

# Below this many partitions at once, their elections write in turn.
LONE_ELECTION_BATCH = 8
PARALLEL_FILE_WRITERS = 16


def elect_lone_voters(partitions: list[Partition]) -> None:
    """Single-replica partitions lead at once. The quorum states their elections will write are
    written first, in parallel, so that `lead_alone` finds nothing left to write (and one that
    led its epoch before a restart writes nothing at all)."""
    if len(partitions) >= LONE_ELECTION_BATCH:
        planned = [(p, p.plan_lone_election()) for p in partitions]
        writes = [(p, state) for p, state in planned if state is not None]
        if writes:
            with ThreadPoolExecutor(PARALLEL_FILE_WRITERS, "quorum-state") as writers:
                list(writers.map(lambda item: item[0].store_quorum_state(item[1]), writes))
    for partition in partitions:
        partition.lead_alone()


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
