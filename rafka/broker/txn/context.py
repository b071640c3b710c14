"""The door through which the transaction coordinator and its marker writer reach the node: a
coordinator node that also hosts the group coordinator, whose `__consumer_offsets` partitions
receive transactional offsets and their markers. Transactions depend on groups, never the other
way round."""

from __future__ import annotations

from typing import Protocol

from rafka.broker.groups.coordinator import GroupCoordinator
from rafka.broker.node import CoordinatorNode


class TxnNode(CoordinatorNode, Protocol):
    groups: GroupCoordinator
