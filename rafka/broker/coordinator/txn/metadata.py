"""The state of one transactional id, as the coordinator holds it (Kafka's TransactionMetadata).

Every change is prepared as a copy (`evolve`), written to `__transaction_state`, and applied to
the live object only once the write is committed; while a write is in flight `pending` is set
and other requests for the id get CONCURRENT_TRANSACTIONS. `last_producer_epoch` is memory only
(as in Kafka): it recognises the retry of a request whose answer was lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rafka.broker.coordinator.txn.records import TxnLogValue, TxnState

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
MAX_PRODUCER_EPOCH = 32767  # Short.MAX_VALUE
# Kafka moves to a new producer id one below the maximum, so a bump can always be answered.
EPOCH_EXHAUSTED_AT = MAX_PRODUCER_EPOCH - 1

TopicPartition = tuple[str, int]

# States in which a transaction may begin again (after InitProducerId or an EndTxn).
COMPLETED = frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT})
PREPARED = frozenset({TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT})


@dataclass(slots=True)
class TxnMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: set[TopicPartition] = field(default_factory=set)
    start_timestamp: int = -1
    last_update_timestamp: int = -1
    previous_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID
    client_transaction_version: int = 0
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    pending: bool = False

    def evolve(self, **changes: object) -> TxnMetadata:
        """A copy with `changes`, never pending, sharing nothing mutable with self."""
        copy = replace(self, partitions=set(self.partitions), pending=False)
        for name, value in changes.items():
            setattr(copy, name, value)
        return copy

    def apply(self, target: TxnMetadata) -> None:
        """Take over a committed target's fields (the object stays the one in the shard)."""
        for name in (
            "producer_id",
            "producer_epoch",
            "timeout_ms",
            "state",
            "start_timestamp",
            "last_update_timestamp",
            "previous_producer_id",
            "next_producer_id",
            "client_transaction_version",
            "last_producer_epoch",
        ):
            setattr(self, name, getattr(target, name))
        self.partitions = set(target.partitions)

    @property
    def epoch_exhausted(self) -> bool:
        return self.producer_epoch >= EPOCH_EXHAUSTED_AT

    @property
    def is_tv2(self) -> bool:
        return self.client_transaction_version >= 2

    def to_value(self) -> TxnLogValue:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in self.partitions:
            by_topic.setdefault(topic, []).append(partition)
        return TxnLogValue(
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            timeout_ms=self.timeout_ms,
            state=self.state,
            partitions=tuple((t, tuple(sorted(ps))) for t, ps in sorted(by_topic.items())),
            last_update_timestamp=self.last_update_timestamp,
            start_timestamp=self.start_timestamp,
            previous_producer_id=self.previous_producer_id,
            next_producer_id=self.next_producer_id,
            client_transaction_version=self.client_transaction_version,
        )

    @classmethod
    def from_value(cls, transactional_id: str, value: TxnLogValue) -> TxnMetadata:
        return cls(
            transactional_id=transactional_id,
            producer_id=value.producer_id,
            producer_epoch=value.producer_epoch,
            timeout_ms=value.timeout_ms,
            state=value.state,
            partitions={(t, p) for t, ps in value.partitions for p in ps},
            start_timestamp=value.start_timestamp,
            last_update_timestamp=value.last_update_timestamp,
            previous_producer_id=value.previous_producer_id,
            next_producer_id=value.next_producer_id,
            client_transaction_version=value.client_transaction_version,
        )
