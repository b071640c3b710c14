"""One `__consumer_offsets` partition led by this broker: the groups it holds and their log.

The in-memory groups are always the replay of the partition's committed records plus the
effects of writes in flight. A write appends one batch, waits for the high watermark to pass it
(an acknowledged group change is as durable as an acks=all produce) and only then applies its
effect, through a callback that runs in log order. A fresh leader replays the partition from its
log start before it serves: until then every request gets COORDINATOR_LOAD_IN_PROGRESS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog

from rafka.broker.coordinator.groups.consumer_group import ConsumerGroup
from rafka.broker.coordinator.groups.consumer_records import (
    ConsumerKey,
    ConsumerValue,
    decode_consumer_key,
    decode_consumer_value,
    encode_consumer_key,
    encode_consumer_value,
)
from rafka.broker.coordinator.groups.consumer_replay import ConsumerGroupsReplay
from rafka.broker.coordinator.groups.group import ClassicGroup, CommittedOffset
from rafka.broker.coordinator.groups.pending_offsets import PendingTxnOffsets
from rafka.broker.coordinator.groups.records import (
    GroupValue,
    OffsetKey,
    OffsetValue,
    RecordFormatError,
    RecordKey,
    RecordValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from rafka.broker.coordinator.groups.share_records import (
    PersistedShareGroup,
    ShareGroupKey,
    ShareGroupValue,
    decode_share_key,
    decode_share_value,
    encode_share_key,
    encode_share_value,
    replay_share_record,
)
from rafka.broker.coordinator.internal_topic import InternalShard, ShardState
from rafka.broker.partition.append import AppendError
from rafka.broker.partition.clock import now_ms
from rafka.broker.partition.replica import Partition
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import CorruptRecordError, build_batch, decode_batch

log = structlog.get_logger(__name__)

Record = (
    tuple[RecordKey, RecordValue | None]
    | tuple[ConsumerKey, ConsumerValue | None]
    | tuple[ShareGroupKey, ShareGroupValue | None]
)


def _encode(record: Record) -> tuple[bytes, bytes | None]:
    key, value = record
    if isinstance(key, ShareGroupKey):
        assert value is None or isinstance(value, ShareGroupValue)
        return encode_share_key(key), None if value is None else encode_share_value(value)
    if isinstance(key, ConsumerKey):
        assert not isinstance(value, (OffsetValue, GroupValue))
        return encode_consumer_key(key), None if value is None else encode_consumer_value(value)
    assert not isinstance(value, ConsumerValue)
    return encode_key(key), None if value is None else encode_value(value)


class CoordinatorShard(InternalShard):
    def __init__(self, index: int, partition: Partition) -> None:
        super().__init__(index, partition)
        self.groups: dict[str, ClassicGroup] = {}
        # Groups of the consumer protocol (KIP-848); their offsets live in `groups`, in an
        # Empty classic group that holds offsets only.
        self.consumer_groups: dict[str, ConsumerGroup] = {}
        # TxnOffsetCommit offsets waiting for their transaction's marker.
        self.pending_txn_offsets = PendingTxnOffsets()
        # Share groups as their records left them (their members are not kept): the share
        # service takes them over once the shard is loaded (GroupCoordinator.share_groups_loaded).
        self.share_groups: dict[str, PersistedShareGroup] = {}

    # -- loading --------------------------------------------------------------------------------

    async def load(self) -> None:
        """Replay every committed record, then serve."""
        partition = self.partition
        started = now_ms()
        high_watermark = await self.replay_point()
        offsets: dict[str, dict[tuple[str, int], OffsetValue]] = {}
        metadata: dict[str, GroupValue | None] = {}
        consumer = ConsumerGroupsReplay()
        share_groups: dict[str, PersistedShareGroup] = {}
        async for header, batch in self.batches_below(high_watermark):
            if header.is_control:
                if header.producer_id >= 0:  # a transaction marker
                    self.pending_txn_offsets.replay_marker(header.producer_id, batch, offsets)
                continue
            try:
                _, records = decode_batch(batch)
            except CorruptRecordError as exc:
                log.error("bad batch in group log", partition=partition.name, error=str(exc))
                continue
            if header.is_transactional:
                self.pending_txn_offsets.replay_records(header.producer_id, records, high_watermark)
                continue
            for record in records:
                if record.offset >= high_watermark or record.key is None:
                    continue
                self._replay_record(
                    record.key, record.value, offsets, metadata, consumer, share_groups
                )
        if self.state is ShardState.CLOSED:
            return
        self._build_groups(offsets, metadata)
        self.consumer_groups = consumer.build()
        self.share_groups = share_groups
        self.state = ShardState.ACTIVE
        log.info(
            "group coordinator loaded",
            partition=partition.name,
            groups=len(self.groups),
            load_ms=now_ms() - started,
        )

    def _replay_record(
        self,
        key_bytes: bytes,
        value_bytes: bytes | None,
        offsets: dict[str, dict[tuple[str, int], OffsetValue]],
        metadata: dict[str, GroupValue | None],
        consumer: ConsumerGroupsReplay,
        share_groups: dict[str, PersistedShareGroup],
    ) -> None:
        try:
            share_key = decode_share_key(key_bytes)
            if share_key is not None:
                share_value = decode_share_value(share_key, value_bytes)
                replay_share_record(share_groups, share_key, share_value)
                return
            consumer_key = decode_consumer_key(key_bytes)
            if consumer_key is not None:
                consumer.apply(consumer_key, decode_consumer_value(consumer_key, value_bytes))
                return
            key = decode_key(key_bytes)
            if key is None:
                return
            value = decode_value(key, value_bytes)
        except RecordFormatError as exc:
            log.error("unreadable group record", partition=self.partition.name, error=str(exc))
            return
        if isinstance(key, OffsetKey):
            group_offsets = offsets.setdefault(key.group, {})
            if value is None:
                group_offsets.pop((key.topic, key.partition), None)
            else:
                assert isinstance(value, OffsetValue)
                group_offsets[(key.topic, key.partition)] = value
        else:
            assert value is None or isinstance(value, GroupValue)
            metadata[key.group] = value

    def _build_groups(
        self,
        offsets: dict[str, dict[tuple[str, int], OffsetValue]],
        metadata: dict[str, GroupValue | None],
    ) -> None:
        for group_id, value in metadata.items():
            if value is not None:
                self.groups[group_id] = ClassicGroup.from_value(group_id, value)
        for group_id, group_offsets in offsets.items():
            if not group_offsets:
                continue
            group = self.groups.get(group_id)
            if group is None:
                # Offsets without group metadata: a group that only ever committed offsets.
                group = self.groups[group_id] = ClassicGroup(group_id)
            group.offsets = {tp: CommittedOffset.from_value(v) for tp, v in group_offsets.items()}

    # -- writing --------------------------------------------------------------------------------

    def write(
        self,
        records: Iterable[Record],
        on_done: Callable[[ErrorCode], None],
        producer: tuple[int, int] | None = None,
    ) -> asyncio.Future[ErrorCode]:
        """Append `records` as one batch; once committed (or failed) call `on_done` with the
        outcome, in log order with other writes, and resolve the returned future with it.
        With `producer` (id, epoch) the batch is that producer's transactional batch
        (TxnOffsetCommit), which counts only once its transaction commits.

        `on_done` runs even if nobody awaits the future any more: a write that commits after
        its request timed out is part of the log, so its effect must be applied too.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[ErrorCode] = loop.create_future()

        def finish(code: ErrorCode) -> None:
            if self.state is ShardState.CLOSED:
                code = ErrorCode.not_coordinator  # a new leader replays the log instead
            try:
                on_done(code)
            finally:
                if not done.done():
                    done.set_result(code)

        timestamp = now_ms()
        batch = build_batch(
            [(*_encode(record), (), timestamp) for record in records],
            **(
                {}
                if producer is None
                else {
                    "producer_id": producer[0],
                    "producer_epoch": producer[1],
                    "is_transactional": True,
                }
            ),
        )
        try:
            if producer is not None:
                result = self.partition.append_coordinator_batch(batch)
            else:
                result = self.partition.append_records(
                    batch,
                    max_message_bytes=self.partition.log.config.max_message_bytes,
                    log_append_time=False,
                )
        except AppendError as exc:
            loop.call_soon(finish, exc.code)
            return done
        committed = self.partition.wait_committed(result.last_offset)

        def on_committed(future: asyncio.Future[None]) -> None:
            if future.cancelled():
                finish(ErrorCode.request_timed_out)
                return
            exc = future.exception()
            if exc is None:
                finish(ErrorCode.none)
            elif isinstance(exc, AppendError):
                finish(exc.code)
            else:
                log.error("group log write failed", partition=self.partition.name, error=repr(exc))
                finish(ErrorCode.unknown_server_error)

        committed.add_done_callback(on_committed)
        return done
