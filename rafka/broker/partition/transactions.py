"""The transactional side of a partition: what read_committed consumers may read (the last
stable offset, the aborted transactions to filter out) and the batches the coordinators write as
the partition's leader (WriteTxnMarkers' COMMIT and ABORT markers, TxnOffsetCommit's offsets),
kept in step with the producer state and the aborted-transaction index.

The replica checks that it may write and drives Raft; this holds no Raft state of its own.
"""

from __future__ import annotations

from rafka.broker.partition.append import AppendError
from rafka.broker.partition.clock import now_ms
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import (
    BatchHeader,
    build_control_batch,
    patch_base_offset,
    patch_leader_epoch,
    read_batch_header,
)
from rafka.storage.log import PartitionLog
from rafka.storage.producer_state import ControlType, ProducerStateManager, TxnMarker
from rafka.storage.txn_index import AbortedTxn, TransactionIndex


class Transactions:
    def __init__(
        self, log: PartitionLog, producers: ProducerStateManager, txn_index: TransactionIndex
    ) -> None:
        self._log = log
        self._producers = producers
        self._txn_index = txn_index

    def last_stable_offset(self, high_watermark: int) -> int:
        """The first offset of the oldest undecided transaction, capped by the high watermark:
        read_committed consumers read below it."""
        undecided = self._producers.first_undecided_offset
        return high_watermark if undecided is None else min(undecided, high_watermark)

    def aborted_transactions(self, fetch_offset: int, upper_bound: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions a read_committed fetch of
        [fetch_offset, upper_bound) must filter out."""
        return [
            (e.producer_id, e.first_offset)
            for e in self._txn_index.collect(fetch_offset, upper_bound)
        ]

    def marker_batch(
        self,
        producer_id: int,
        producer_epoch: int,
        coordinator_epoch: int,
        commit: bool,
        *,
        leader_epoch: int,
        transaction_version: int,
    ) -> tuple[bytearray, BatchHeader, int, TxnMarker] | None:
        """A COMMIT or ABORT control batch for a producer, with its header, timestamp and
        marker, once the producer state accepts it; None when the producer has no transaction
        here for it to end and the marker carries no newer epoch (nothing to append)."""
        control = ControlType.COMMIT if commit else ControlType.ABORT
        timestamp = now_ms()
        buf = bytearray(
            build_control_batch(
                int(control),
                timestamp=timestamp,
                base_offset=self._log.log_end_offset,
                partition_leader_epoch=leader_epoch,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                coordinator_epoch=coordinator_epoch,
            )
        )
        header = read_batch_header(buf)
        marker = TxnMarker(control, coordinator_epoch)
        check = self._producers.check(header, marker, transaction_version=transaction_version)
        if check.redundant:
            return None
        if not check.accepted:
            raise AppendError(ErrorCode(check.error_code), check.message)
        return buf, header, timestamp, marker

    def coordinator_batch(self, records: bytes) -> tuple[bytearray, BatchHeader]:
        """A batch a coordinator built (TxnOffsetCommit's transactional offsets): trusted bytes,
        no sequence numbers, but a fenced producer epoch is refused."""
        buf = bytearray(records)
        header = read_batch_header(buf)
        if header.producer_id >= 0:
            known = self._producers.producer(header.producer_id)
            if known is not None and header.producer_epoch < known.producer_epoch:
                raise AppendError(
                    ErrorCode.invalid_producer_epoch,
                    f"epoch {header.producer_epoch} of producer {header.producer_id} is older "
                    f"than {known.producer_epoch}",
                )
        return buf, header

    def append(
        self,
        buf: bytearray,
        header: BatchHeader,
        timestamp: int,
        marker: TxnMarker | None,
        leader_epoch: int,
    ) -> tuple[int, int]:
        """Append a coordinator's batch at the log end, returning its first and last offsets;
        an ABORT marker that ends a transaction enters the aborted-transaction index."""
        log = self._log
        base = log.log_end_offset
        last = base + header.last_offset_delta
        patch_base_offset(buf, 0, base)
        patch_leader_epoch(buf, 0, leader_epoch)
        segment_before = log.active_segment
        log.append(buf, base, last, header.max_timestamp, last, leader_epoch, timestamp)
        if log.active_segment is not segment_before:
            self._producers.take_snapshot(base)
        completed = self._producers.update(header, base, last, timestamp, marker)
        if completed is not None and completed.is_aborted:
            undecided = self._producers.first_undecided_offset
            self._txn_index.delete_below(log.segments[0].base_offset)
            self._txn_index.append(
                AbortedTxn(
                    completed.producer_id,
                    completed.first_offset,
                    completed.last_offset,
                    last + 1 if undecided is None else undecided,
                ),
                log.active_segment.base_offset,
            )
        return base, last
