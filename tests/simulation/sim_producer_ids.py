"""The metadata log's producer-id blocks on the simulated Raft log (issue 13, bug 1).

Some client writes at a leader are reservations of the next producer-id block, as the controller
makes them in rafka/broker/cluster/cluster_metadata.py: `("pid", block)` entries. A reservation
is read from the leader's applied state (the blocks in its log below its high watermark,
replayed per process from its own log, as a broker's image is), at most one at a time per leader
(the controller's lock), and the block is handed out to a broker only once its entry is committed
(the write's acknowledgement). The invariant (sim_invariants.ProducerIdBlocks): no block is handed
out twice, across any leader changes, crashes and restarts.

The correct controller reserves only once it holds everything committed before its epoch: its high
watermark has reached its epoch start offset (and its image applied that far). The reservation
decisions draw on their own random stream, so the Raft history of a seed does not change.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim_model import SimNode

RESERVATION = "pid"
RESERVE_CHANCE = 0.3  # of a client write at a leader


def reserved_block(value: Any) -> int | None:
    """The block a log value reserves, or None for an ordinary write."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == RESERVATION:
        return value[1]
    return None


class ProducerIdController:
    """The controller's side: what it reserves, and from which view of the log."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed ^ 0x91D)
        # Per process (node id, incarnation): (applied offset, next block), like the image a
        # broker replays from its own log after each start.
        self._images: dict[tuple[int, int], tuple[int, int]] = {}

    def can_reserve(self, node: SimNode) -> bool:
        """The leader holds everything committed before its epoch."""
        raft = node.raft
        start = raft.epoch_start_offset
        return start is not None and raft.high_watermark >= start

    def reservation(self, node: SimNode) -> tuple[str, int] | None:
        """The value of a reservation this leader makes now, or None (an ordinary write)."""
        if self.rng.random() >= RESERVE_CHANCE:
            return None
        if any(reserved_block(value) is not None for _, _, value in node.pending):
            return None  # one reservation at a time (the controller's lock)
        if not self.can_reserve(node):
            return None  # the controller waits; the sim's client writes something else
        return (RESERVATION, self._next_block(node))

    def _next_block(self, node: SimNode) -> int:
        """The image's next block: replay the log below the high watermark from where this
        process last stopped (nothing below a high watermark is ever rewritten)."""
        key = (node.id, node.incarnation)
        applied, next_block = self._images.get(key, (0, 0))
        high_watermark = node.raft.high_watermark
        for _, value in node.log.entries[applied:high_watermark]:
            block = reserved_block(value)
            if block is not None:
                next_block = max(next_block, block + 1)
        self._images[key] = (max(applied, high_watermark), next_block)
        return next_block
