"""The door through which the transaction coordinator and its marker writer reach the node: a
coordinator node that also hosts the group coordinator, whose `__consumer_offsets` partitions
receive transactional offsets and their markers. The transaction coordinator sees only the two
things it needs of the group coordinator, so the two import nothing of each other."""

from __future__ import annotations

from typing import Protocol

from rafka.broker.node import CoordinatorNode


class TxnOffsetsCoordinator(Protocol):
    """The group coordinator as transactions see it."""

    def partition_for(self, key: str) -> int:
        """The `__consumer_offsets` partition of a group id."""
        ...

    async def complete_txn_offsets(
        self, partition_index: int, producer_id: int, commit: bool
    ) -> None:
        """A marker of `producer_id` committed on that partition: apply or drop its offsets."""
        ...


class TxnNode(CoordinatorNode, Protocol):
    groups: TxnOffsetsCoordinator
