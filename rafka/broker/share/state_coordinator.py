"""The share coordinator: share-partition state in `__share_group_state` (KIP-932).

As `__consumer_offsets` and `__transaction_state`: the topic is created on first need, a
share partition (group, topic id, partition) maps to one of its partitions by Java's
String.hashCode of "group:topic_id:partition" (Kafka's key), and the leader of that partition
keeps the state in memory, replayed from the log when it loads (COORDINATOR_LOAD_IN_PROGRESS
meanwhile). A write is one ShareUpdate record (the changed state batches and the start
offset), or every `snapshot_every` updates of a key a ShareSnapshot of the merged state, so a
replay reads few records per key past its last snapshot; it counts once the high watermark
passes it. Writes of a leader epoch older than the stored one are fenced (FENCED_LEADER_EPOCH):
a former leader of the share partition cannot overwrite its successor's state. Writes of a state
epoch older than the stored one are fenced too (FENCED_STATE_EPOCH): altering the offsets
replaces the state in a new state epoch, and a leader still holding the old one in memory must
not write over it (it drops its copy and reads the new state). Records for a key without state
(deleted since its leader read it) are INVALID_REQUEST, as with Kafka; a leader creates a new
share partition's state with a write of its start offset alone.

The topic is `cleanup.policy=delete` with no retention limit: compaction would keep only the
last update of a key, which holds only the batches that changed. Instead, as Kafka, the leader
prunes it (share.coordinator.state.topic.prune.interval.ms): the records below every live key's
latest snapshot are redundant, so the log start offset moves there (DeleteRecords). A key that
is no longer written would hold that point back forever, so each key not written for
share.coordinator.cold.partition.snapshot.interval.ms while others were gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from rafka.broker.coordinator.internal_topic import (
    SHARE_STATE_TOPIC,
    InternalShard,
    InternalTopicCoordinator,
    ShardState,
    coordinator_error_for_write,
)
from rafka.broker.partition.append import AppendError
from rafka.broker.partition.clock import now_ms
from rafka.broker.partition.replica import Partition
from rafka.broker.share.state_records import (
    CREATE_STATE_EPOCH,
    SNAPSHOT,
    UPDATE,
    PersistedShareState,
    ShareKey,
    ShareRecordError,
    ShareStateValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    to_batches,
)
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import build_batch

if TYPE_CHECKING:
    from rafka.broker.node import CoordinatorNode

log = structlog.get_logger(__name__)

# How long a read or write waits for the key's shard to finish loading.
LOAD_WAIT_S = 10.0


class ShareStateError(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


def key_string(key: ShareKey) -> str:
    group_id, topic_id, partition = key
    return f"{group_id}:{topic_id}:{partition}"


class ShareStateShard(InternalShard):
    def __init__(self, index: int, partition: Partition, snapshot_every: int) -> None:
        super().__init__(index, partition)
        self.snapshot_every = snapshot_every
        self.states: dict[ShareKey, PersistedShareState] = {}
        self.updates_since_snapshot: dict[ShareKey, int] = {}
        # Each live key's latest snapshot record (its offset, set as soon as it is appended):
        # what a replay starts from, so the records below all of them are redundant.
        self.snapshot_offsets: dict[ShareKey, int] = {}
        # The keys written since the last cold-snapshot pass, and the offset of the last record
        # written for a client (not a cold snapshot).
        self.written: set[ShareKey] = set()
        self.last_write = -1
        # The state epoch of each key's deleted state (as far as this shard has seen it): a
        # state made for the key again starts past it, so a leader still holding the deleted
        # one is fenced (FENCED_STATE_EPOCH) instead of writing into the new one.
        self.retired: dict[ShareKey, int] = {}

    def appended(
        self, key: ShareKey, offset: int, snapshot: bool | None, cold: bool = False
    ) -> None:
        """Note a record of `key` at `offset`: a snapshot, an update (False) or a tombstone
        (None)."""
        self.written.add(key)
        if not cold:
            self.last_write = max(self.last_write, offset)
        if snapshot is None:
            self.snapshot_offsets.pop(key, None)
        elif snapshot:
            self.snapshot_offsets[key] = offset

    def retire(self, key: ShareKey, *, remember: bool = True) -> bool:
        """Drop `key`'s state (its tombstone is to follow), remembering its epoch unless the
        key can never have a state again (its topic deleted); False if it had none."""
        state = self.states.pop(key, None)
        self.updates_since_snapshot.pop(key, None)
        if state is None:
            return False
        if remember:
            self.retired[key] = state.state_epoch
        return True

    def next_state_epoch(self, key: ShareKey) -> int:
        """The epoch of a state made for `key` where it has none: past any deleted one's."""
        return self.retired.get(key, -1) + 1

    def redundant_below(self) -> int:
        """The offset the log may start at: every live key's latest snapshot at or above it,
        and nothing uncommitted below it."""
        high_watermark = self.partition.high_watermark
        return min(min(self.snapshot_offsets.values(), default=high_watermark), high_watermark)

    async def load(self) -> None:
        partition = self.partition
        started = now_ms()
        high_watermark = await self.replay_point()
        states: dict[ShareKey, PersistedShareState] = {}
        updates: dict[ShareKey, int] = {}
        snapshots: dict[ShareKey, int] = {}
        retired: dict[ShareKey, int] = {}
        async for record in self.records_below(high_watermark, "share state log"):
            try:
                record_type, key = decode_key(record.key)
                if record.value is None:
                    gone = states.pop(key, None)
                    if gone is not None:
                        retired[key] = gone.state_epoch
                    updates.pop(key, None)
                    snapshots.pop(key, None)
                    continue
                value = decode_value(record_type, record.value)
            except ShareRecordError as exc:
                log.error("unreadable share state record", partition=partition.name,
                          error=str(exc))  # fmt: skip
                continue
            replay(states, updates, key, value)
            if value.snapshot:
                snapshots[key] = record.offset
        if self.state is ShardState.CLOSED:
            return
        self.states, self.updates_since_snapshot = states, updates
        self.retired = retired
        self.snapshot_offsets = {key: snapshots[key] for key in states if key in snapshots}
        self.state = ShardState.ACTIVE
        log.info(
            "share coordinator loaded",
            partition=partition.name,
            share_partitions=len(states),
            load_ms=now_ms() - started,
        )

    async def write(
        self,
        key: ShareKey,
        leader_epoch: int,
        start_offset: int,
        changes: dict[int, tuple[int, int]],
        *,
        state_epoch: int,
    ) -> ErrorCode:
        """Persist a share partition's changed records and start offset, written by the leader
        of `leader_epoch` from the state of `state_epoch` (a new state is created in it); NONE
        once committed. The in-memory view is updated before the append, in call order, so
        concurrent writes are replayed as they were applied; a failed append closes the shard
        (its next leader, or this broker again, replays the log)."""
        if self.state is not ShardState.ACTIVE or not self.still_leader():
            return ErrorCode.not_coordinator
        state = self.states.get(key)
        if state is None and changes:
            # As Kafka (INVALID_REQUEST): records of a state that does not exist, i.e. deleted
            # since its leader read it; the leader drops it and reads again. A leader creates
            # a new state with a write of its start offset alone, in CREATE_STATE_EPOCH.
            return ErrorCode.invalid_request
        if state is None and state_epoch != CREATE_STATE_EPOCH:
            if key in self.retired and state_epoch <= self.retired[key]:
                return ErrorCode.fenced_state_epoch  # a leader of the deleted state
            state_epoch = max(state_epoch, self.next_state_epoch(key))
        elif state is None:
            state_epoch = self.next_state_epoch(key)
        # -1 (no leader epoch, or CREATE_STATE_EPOCH on a state made meanwhile): not checked,
        # as Kafka's maybeGetWriteStateError.
        if state is not None and leader_epoch != -1 and leader_epoch < state.leader_epoch:
            return ErrorCode.fenced_leader_epoch
        if state is not None and state_epoch != -1 and state_epoch < state.state_epoch:
            return ErrorCode.fenced_state_epoch
        update = ShareStateValue(
            snapshot=False,
            snapshot_epoch=0 if state is None else state.snapshot_epoch,
            leader_epoch=leader_epoch,
            start_offset=start_offset,
            batches=to_batches(changes),
        )
        if state is None:
            state = PersistedShareState(start_offset, state_epoch, leader_epoch)
            state.apply_update(update)
            self.states[key] = state
            value = state.to_snapshot(now_ms())
        else:
            state.apply_update(update)
            count = self.updates_since_snapshot.get(key, 0) + 1
            if count >= self.snapshot_every:
                state.snapshot_epoch += 1
                value = state.to_snapshot(now_ms())
            else:
                value = ShareStateValue(
                    False, state.snapshot_epoch, leader_epoch, start_offset, update.batches
                )
        if value.snapshot:
            self.updates_since_snapshot[key] = 0
        else:
            self.updates_since_snapshot[key] = self.updates_since_snapshot.get(key, 0) + 1
        return await self._append(key, value)

    async def snapshot(self, key: ShareKey) -> ErrorCode:
        """Write `key`'s state again as a snapshot (a cold share partition's, for pruning)."""
        state = self.states.get(key)
        if state is None or self.state is not ShardState.ACTIVE or not self.still_leader():
            return ErrorCode.none
        state.snapshot_epoch += 1
        self.updates_since_snapshot[key] = 0
        return await self._append(key, state.to_snapshot(now_ms()), cold=True)

    async def _append(self, key: ShareKey, value: ShareStateValue, cold: bool = False) -> ErrorCode:
        record_type = SNAPSHOT if value.snapshot else UPDATE
        batch = build_batch([(encode_key(record_type, key), encode_value(value), (), now_ms())])
        try:
            result = self.partition.append_records(
                batch,
                max_message_bytes=self.partition.log.config.max_message_bytes,
                log_append_time=False,
            )
            self.appended(key, result.last_offset, value.snapshot, cold)
            await self.partition.wait_committed(result.last_offset)
        except AppendError as exc:
            self.close()
            return coordinator_error_for_write(exc.code, for_offsets=False)
        if self.state is ShardState.CLOSED:
            return ErrorCode.not_coordinator
        return ErrorCode.none


def replay(
    states: dict[ShareKey, PersistedShareState],
    updates: dict[ShareKey, int],
    key: ShareKey,
    value: ShareStateValue,
) -> None:
    """Apply one record to the replayed states: a snapshot replaces, an update merges."""
    if value.snapshot:
        states[key] = PersistedShareState.from_snapshot(value)
        updates[key] = 0
        return
    state = states.get(key)
    if state is None:
        return  # an update without its snapshot (pruned, or written by a newer format)
    state.apply_update(value)
    updates[key] = updates.get(key, 0) + 1


class ShareStateCoordinator(InternalTopicCoordinator[ShareStateShard]):
    topic = SHARE_STATE_TOPIC
    kind = "share"
    error_type = ShareStateError

    def __init__(
        self,
        broker: CoordinatorNode,
        *,
        partitions: int,
        replication_factor: int,
        min_isr: int,
        snapshot_every: int,
        prune_interval_ms: int = 300_000,
        cold_snapshot_interval_ms: int = 300_000,
    ) -> None:
        super().__init__(broker)
        self.num_partitions = partitions
        self.replication_factor = replication_factor
        self.min_isr = min_isr
        self.snapshot_every = snapshot_every
        self.prune_interval_ms = prune_interval_ms
        self.cold_snapshot_interval_ms = cold_snapshot_interval_ms
        self._housekeeping: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Shards load on first need (a read or write) and with leadership checks there."""
        self._running = True
        self._housekeeping = asyncio.get_running_loop().create_task(
            self._keep_house(), name="share-state-housekeeping"
        )

    async def stop(self) -> None:
        self._running = False
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            await asyncio.gather(self._housekeeping, return_exceptions=True)

    # -- pruning -------------------------------------------------------------------------------

    async def _keep_house(self) -> None:
        loop = asyncio.get_running_loop()
        next_prune = loop.time() + self.prune_interval_ms / 1000
        next_cold = loop.time() + self.cold_snapshot_interval_ms / 1000
        while self._running:
            await asyncio.sleep(max(min(next_prune, next_cold) - loop.time(), 0))
            try:
                if loop.time() >= next_cold:
                    next_cold = loop.time() + self.cold_snapshot_interval_ms / 1000
                    await self.snapshot_cold_partitions()
                if loop.time() >= next_prune:
                    next_prune = loop.time() + self.prune_interval_ms / 1000
                    await self.prune()
            except Exception:
                log.exception("share state housekeeping failed")

    async def snapshot_cold_partitions(self) -> None:
        """A fresh snapshot of each key not written since the last pass whose latest snapshot
        is older than the last write for a client: it holds the pruning back. An idle shard
        gets none (each key's snapshot is then past every client write)."""
        for shard in list(self.shards.values()):
            written, shard.written = shard.written, set()
            if shard.state is not ShardState.ACTIVE:
                continue
            cold = [
                key
                for key in shard.states
                if key not in written and shard.snapshot_offsets.get(key, -1) < shard.last_write
            ]
            for key in cold:
                code = await shard.snapshot(key)
                if code is not ErrorCode.none:
                    break

    async def prune(self) -> None:
        """Move each led shard's log start offset up to its redundant prefix."""
        for shard in list(self.shards.values()):
            if shard.state is not ShardState.ACTIVE or not shard.still_leader():
                continue
            offset = shard.redundant_below()
            if offset > shard.partition.log_start_offset:
                await self.broker.delete_records(shard.partition, offset)
                log.info(
                    "share state pruned", partition=shard.partition.name, log_start_offset=offset
                )

    def _new_shard(self, index: int, partition: Partition) -> ShareStateShard:
        return ShareStateShard(index, partition, self.snapshot_every)

    def _default_partitions(self) -> int:
        return self.num_partitions

    def _topic_settings(self) -> tuple[int, int, dict[str, str]]:
        return (
            self.num_partitions,
            self.replication_factor,
            {
                "cleanup.policy": "delete",
                "retention.ms": "-1",
                "retention.bytes": "-1",
                "compression.type": "uncompressed",
                "min.insync.replicas": str(self.min_isr),
            },
        )

    def leader_of(self, key: ShareKey) -> int:
        """The node leading the key's partition (-1 unknown)."""
        topic = self.broker.topic(self.topic)
        if topic is None:
            return -1
        leader, _, _ = self.broker.leadership(topic, self.partition_for(key_string(key)))
        return leader

    async def local_shard(self, key: ShareKey) -> ShareStateShard:
        """The loaded shard of `key` on this broker, waiting (bounded) for it to load;
        ShareStateError NOT_COORDINATOR if another broker leads it."""
        await self._ensure_topic()
        name = key_string(key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOAD_WAIT_S
        while True:
            shard = self.shards.get(self.partition_for(name))
            if shard is not None and shard.state is ShardState.CLOSED:
                self._unload(shard)
            try:
                return self.shard_for(name)
            except ShareStateError as exc:
                if exc.code is not ErrorCode.coordinator_load_in_progress:
                    raise
            shard = self.shards.get(self.partition_for(name))
            remaining = deadline - loop.time()
            if shard is None or shard.load_task is None or remaining <= 0:
                raise ShareStateError(ErrorCode.coordinator_load_in_progress)
            await asyncio.wait([shard.load_task], timeout=remaining)

    async def read(
        self, key: ShareKey, leader_epoch: int | None = None
    ) -> PersistedShareState | None:
        """The state of `key` (None: it has none). A share-partition leader reads it with its
        leader epoch, which the state then records (Kafka's readStateAndMaybeUpdateLeaderEpoch):
        from then on a former leader's writes are fenced even before the new one writes, and
        a read of an older epoch is FENCED_LEADER_EPOCH, -1 included once a leader has read
        or written it, as Kafka (None: this broker's own look, never fenced)."""
        shard = await self.local_shard(key)
        state = shard.states.get(key)
        if state is None or leader_epoch is None:
            return _copy(state)
        if leader_epoch < state.leader_epoch:
            raise ShareStateError(ErrorCode.fenced_leader_epoch)
        if leader_epoch > state.leader_epoch:
            code = await shard.write(
                key, leader_epoch, state.start_offset, {}, state_epoch=state.state_epoch
            )
            if code is not ErrorCode.none:
                raise ShareStateError(code)
        return _copy(state)

    async def write(
        self,
        key: ShareKey,
        leader_epoch: int,
        start_offset: int,
        changes: dict[int, tuple[int, int]],
        *,
        state_epoch: int,
    ) -> ErrorCode:
        try:
            shard = await self.local_shard(key)
        except ShareStateError as exc:
            return exc.code
        return await shard.write(key, leader_epoch, start_offset, changes, state_epoch=state_epoch)


def _copy(state: PersistedShareState | None) -> PersistedShareState | None:
    if state is None:
        return None
    copy = PersistedShareState(
        state.start_offset, state.state_epoch, state.leader_epoch, state.snapshot_epoch
    )
    copy.records = dict(state.records)
    return copy
