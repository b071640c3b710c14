"""Transactional offset commits (TxnOffsetCommit) of one `__consumer_offsets` partition that
wait for their transaction's marker.

The offsets are written to the partition as a transactional batch of the producer; they become
the group's committed offsets only when a COMMIT marker of that producer follows, and vanish
with an ABORT marker, both on the live path and when a shard replays its partition. Meanwhile
OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for those partitions (KIP-447).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog

from rafka.broker.groups.records import (
    OffsetKey,
    OffsetValue,
    RecordFormatError,
    decode_key,
    decode_value,
)
from rafka.protocol.records import Record
from rafka.storage.producer_state import ControlType
from rafka.storage.txn_index import read_txn_marker

if TYPE_CHECKING:
    from rafka.broker.groups.coordinator import GroupCoordinator

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


async def complete_txn_offsets(
    groups: GroupCoordinator, partition_index: int, producer_id: int, commit: bool
) -> None:
    """A marker of `producer_id` was committed on `__consumer_offsets-<partition_index>`:
    apply (commit) or drop (abort) its pending offsets in the shard this broker leads."""
    from rafka.broker.groups.group import ClassicGroup, CommittedOffset, GroupState
    from rafka.broker.groups.shard import ShardState

    shard = groups.shards.get(partition_index)
    if shard is None:
        return  # not led here: whoever leads replays the marker
    if shard.state is ShardState.LOADING and shard.load_task is not None:
        await asyncio.wait([shard.load_task])
    if shard.state is not ShardState.ACTIVE or groups.shards.get(partition_index) is not shard:
        return
    taken = shard.pending_txn_offsets.take(producer_id)
    if not commit or not taken:
        return
    now = groups.wall_clock()
    for key, value in taken.items():
        group = shard.groups.get(key.group)
        if group is None or group.state is GroupState.DEAD:
            group = shard.groups[key.group] = ClassicGroup(key.group, state_timestamp=now)
        group.offsets[(key.topic, key.partition)] = CommittedOffset.from_value(value)
