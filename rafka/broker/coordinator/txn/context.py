"""What the transaction coordinator's parts share with it, and the doors they reach through.

`TxnNode` is the node as the coordinator and its marker writer see it: a coordinator node that
also hosts the group coordinator, whose `__consumer_offsets` partitions receive transactional
offsets and their markers. The transaction coordinator sees only the two things it needs of the
group coordinator, so the two import nothing of each other. `TxnContext` is the coordinator as
its completion sees it (the coordinator builds it and imports it), and `TxnConfig` its settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from msgspec import Struct

from rafka.broker.coordinator.txn.shard import TxnShard
from rafka.broker.node import CoordinatorNode

if TYPE_CHECKING:
    from rafka.broker.config import BrokerConfig


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


class TxnConfig(Struct, frozen=True):
    state_partitions: int = 8
    replication_factor: int = 1
    min_isr: int = 1
    segment_bytes: int = 104857600
    max_timeout_ms: int = 900000
    id_expiration_ms: int = 604800000
    abort_interval_ms: int = 10000
    remove_interval_ms: int = 3600000

    @classmethod
    def from_broker_config(cls, config: BrokerConfig) -> TxnConfig:
        return cls(
            state_partitions=config.get_int("transaction.state.log.num.partitions"),
            replication_factor=config.get_int("transaction.state.log.replication.factor"),
            min_isr=config.get_int("transaction.state.log.min.isr"),
            segment_bytes=config.get_int("transaction.state.log.segment.bytes"),
            max_timeout_ms=config.get_int("transaction.max.timeout.ms"),
            id_expiration_ms=config.get_int("transactional.id.expiration.ms"),
            abort_interval_ms=config.get_int(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms"
            ),
            remove_interval_ms=config.get_int(
                "transaction.remove.expired.transaction.cleanup.interval.ms"
            ),
        )


class TxnContext(Protocol):
    """The transaction coordinator as its completion sees it."""

    broker: TxnNode
    config: TxnConfig
    shards: dict[int, TxnShard]
    wall_clock: Callable[[], int]

    @property
    def running(self) -> bool:
        """False once the coordinator stops: background work then gives up."""
        ...
