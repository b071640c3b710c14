"""Transactional offset commits (TxnOffsetCommit) of one `__consumer_offsets` partition that
wait for their transaction's marker.

The offsets are written to the partition as a transactional batch of the producer; they become
the group's committed offsets only when a COMMIT marker of that producer follows, and vanish
with an ABORT marker, both on the live path and when a shard replays its partition. Meanwhile
OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for those partitions (KIP-447).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from rafka.broker.coordinator.groups.records import (
    OffsetKey,
    OffsetValue,
    RecordFormatError,
    decode_key,
    decode_value,
)
from rafka.protocol.records import Record
from rafka.storage.producer_state import ControlType
from rafka.storage.txn_index import read_txn_marker

log = structlog.get_logger(__name__)

GroupOffsets = dict[str, dict[tuple[str, int], OffsetValue]]


class PendingTxnOffsets:
    def __init__(self) -> None:
        self._by_producer: dict[int, dict[OffsetKey, OffsetValue]] = {}

    def __len__(self) -> int:
        return len(self._by_producer)

    def add(self, producer_id: int, offsets: Iterable[tuple[OffsetKey, OffsetValue]]) -> None:
        pending = self._by_producer.setdefault(producer_id, {})
        for key, value in offsets:
            pending[key] = value

    def take(self, producer_id: int) -> dict[OffsetKey, OffsetValue]:
        return self._by_producer.pop(producer_id, {})

    def has_pending(self, group_id: str, topic: str, partition: int) -> bool:
        key = OffsetKey(group_id, topic, partition)
        return any(key in pending for pending in self._by_producer.values())

    def has_group(self, group_id: str) -> bool:
        return any(
            key.group == group_id for pending in self._by_producer.values() for key in pending
        )

    # -- replay (a shard loading its partition) ---------------------------------------------

    def replay_records(self, producer_id: int, records: Iterable[Record], end: int) -> None:
        """A transactional batch: its offset commits wait for the producer's marker."""
        for record in records:
            if record.offset >= end or record.key is None:
                continue
            try:
                key = decode_key(record.key)
                if not isinstance(key, OffsetKey):
                    continue
                value = decode_value(key, record.value)
            except RecordFormatError as exc:
                log.error("unreadable transactional offset record", error=str(exc))
                continue
            if isinstance(value, OffsetValue):
                self.add(producer_id, [(key, value)])

    def replay_marker(self, producer_id: int, batch: bytes, offsets: GroupOffsets) -> None:
        """A control batch: a COMMIT makes the producer's pending offsets committed ones."""
        marker = read_txn_marker(batch)
        if marker is None:
            return
        taken = self.take(producer_id)
        if marker.control_type == ControlType.COMMIT:
            for key, value in taken.items():
                offsets.setdefault(key.group, {})[(key.topic, key.partition)] = value
