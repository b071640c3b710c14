"""One `__transaction_state` partition led by this broker: the transactional ids it holds.

As with the group coordinator's shards: a write appends one batch, waits until the high
watermark passes it and only then is its effect applied, so the in-memory state is always the
replay of committed records plus writes in flight. A new leader replays the partition before it
serves (COORDINATOR_LOAD_IN_PROGRESS meanwhile). The partition's leader epoch at load is the
coordinator epoch stamped on every transaction marker this shard writes, which fences markers
of an older coordinator of the same transactions.
"""

from __future__ import annotations

import structlog

from rafka.broker.coordinator.internal_topic import (
    InternalShard,
    ShardState,
    coordinator_error_for_write,
)
from rafka.broker.coordinator.txn.metadata import TxnMetadata
from rafka.broker.coordinator.txn.records import (
    TxnRecordError,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from rafka.broker.partition.append import AppendError
from rafka.broker.partition.clock import now_ms
from rafka.broker.partition.replica import Partition
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import build_batch

log = structlog.get_logger(__name__)


class TxnShard(InternalShard):
    def __init__(self, index: int, partition: Partition) -> None:
        super().__init__(index, partition)
        self.txns: dict[str, TxnMetadata] = {}

    @property
    def coordinator_epoch(self) -> int:
        """Stamped on the transaction markers this shard writes: the leader epoch at load."""
        return self.leader_epoch

    # -- loading --------------------------------------------------------------------------------

    async def load(self) -> None:
        partition = self.partition
        started = now_ms()
        high_watermark = await self.replay_point()
        values: dict[str, TxnMetadata | None] = {}
        async for record in self.records_below(high_watermark, "transaction log"):
            try:
                transactional_id = decode_key(record.key)
                if record.value is None:
                    values[transactional_id] = None
                else:
                    values[transactional_id] = TxnMetadata.from_value(
                        transactional_id, decode_value(record.value)
                    )
            except TxnRecordError as exc:
                log.error(
                    "unreadable transaction record", partition=partition.name, error=str(exc)
                )
        if self.state is ShardState.CLOSED:
            return
        self.txns = {tid: txn for tid, txn in values.items() if txn is not None}
        self.state = ShardState.ACTIVE
        log.info(
            "transaction coordinator loaded",
            partition=partition.name,
            transactional_ids=len(self.txns),
            coordinator_epoch=self.coordinator_epoch,
            load_ms=now_ms() - started,
        )

    # -- writing --------------------------------------------------------------------------------

    async def write(self, txn: TxnMetadata, target: TxnMetadata | None) -> ErrorCode:
        """Persist `target` as the new state of `txn` (None: a tombstone) and, once committed,
        apply it. `txn.pending` is held meanwhile; the outcome is the error clients see."""
        txn.pending = True
        try:
            code = await self._append(
                txn.transactional_id, None if target is None else encode_value(target.to_value())
            )
            if code is ErrorCode.none and self.state is ShardState.CLOSED:
                code = ErrorCode.not_coordinator  # the next leader replays it instead
            if code is ErrorCode.none:
                if target is None:
                    if self.txns.get(txn.transactional_id) is txn:
                        del self.txns[txn.transactional_id]
                else:
                    txn.apply(target)
            return coordinator_error_for_write(code, for_offsets=False)
        finally:
            txn.pending = False

    async def _append(self, transactional_id: str, value: bytes | None) -> ErrorCode:
        if self.state is not ShardState.ACTIVE or not self.still_leader():
            return ErrorCode.not_coordinator
        batch = build_batch([(encode_key(transactional_id), value, (), now_ms())])
        try:
            result = self.partition.append_records(
                batch,
                max_message_bytes=self.partition.log.config.max_message_bytes,
                log_append_time=False,
            )
            await self.partition.wait_committed(result.last_offset)
        except AppendError as exc:
            return exc.code
        return ErrorCode.none
