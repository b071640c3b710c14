"""The group coordinator: which groups this broker coordinates, and the group-wide operations.

A group belongs to one `__consumer_offsets` partition (see placement); the leader of that
partition coordinates it. For each partition this broker leads there is a CoordinatorShard that
replays the partition before serving. Leadership is read from the partitions themselves, so
when the Raft layer moves a leader, the next request (or `sync_leadership()`) unloads or loads
the shard; meanwhile clients get NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS and look the
coordinator up again, as with Kafka.

The classic protocol's requests live in membership.py, its rebalance state machine in
classic_rebalance.py and committed offsets in offset_store.py; this module holds what they
share: configuration, shards, timers, and group listing and deletion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from rafka.broker.coordinator.groups.classic_rebalance import ClassicRebalance
from rafka.broker.coordinator.groups.consumer_classic import ClassicMembers
from rafka.broker.coordinator.groups.consumer_group import GROUP_TYPE as CONSUMER_GROUP_TYPE
from rafka.broker.coordinator.groups.consumer_group import PROTOCOL_TYPE as CONSUMER_PROTOCOL
from rafka.broker.coordinator.groups.consumer_group import ConsumerGroup
from rafka.broker.coordinator.groups.consumer_heartbeat import (
    ConsumerGroupHeartbeats,
    group_tombstones,
)
from rafka.broker.coordinator.groups.context import (
    KEY_TYPE_GROUP,
    KEY_TYPE_TRANSACTION,
    CoordinatorError,
    GroupConfig,
)
from rafka.broker.coordinator.groups.group import (
    GROUP_TYPE,
    ClassicGroup,
    CommittedOffset,
    GroupState,
)
from rafka.broker.coordinator.groups.membership import Membership
from rafka.broker.coordinator.groups.offset_store import OffsetStore
from rafka.broker.coordinator.groups.records import GroupKey, OffsetKey
from rafka.broker.coordinator.groups.shard import (
    CoordinatorShard,
    Record,
    ShardState,
)
from rafka.broker.coordinator.groups.timers import Timers
from rafka.broker.coordinator.internal_topic import (
    OFFSETS_TOPIC,
    CoordinatorLocation,
    InternalTopicCoordinator,
    coordinator_error_for_write,
)
from rafka.broker.partition.clock import now_ms
from rafka.broker.partition.replica import Partition
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.node import CoordinatorNode

log = structlog.get_logger(__name__)

_EXPIRY_TIMER = ("offsets-expiry",)


class GroupCoordinator(InternalTopicCoordinator[CoordinatorShard]):
    topic = OFFSETS_TOPIC
    kind = "group"
    error_type = CoordinatorError

    def __init__(
        self,
        broker: CoordinatorNode,
        config: GroupConfig | None = None,
        wall_clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__(broker)
        self.config = config or GroupConfig.from_broker_config(broker.config)
        self.wall_clock = wall_clock
        self.timers = Timers()
        self.rebalance = ClassicRebalance(self)
        self.membership = Membership(self, self.rebalance)
        self.offsets = OffsetStore(self)
        self.consumer = ConsumerGroupHeartbeats(self)
        # KIP-848's online upgrade: classic members in consumer groups, and the conversions.
        mixed = ClassicMembers(self.consumer, self.rebalance)
        self.consumer.classic_members = mixed
        self.membership.mixed = mixed

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load the shards of the partitions this broker leads; start the offset-expiry sweep."""
        self._running = True
        self.sync_leadership()
        self._schedule_expiry()

    async def stop(self) -> None:
        self._running = False
        for shard in list(self.shards.values()):
            self._unload(shard)
        self.timers.close()

    def _new_shard(self, index: int, partition: Partition) -> CoordinatorShard:
        return CoordinatorShard(index, partition)

    def _on_loaded(self, shard: CoordinatorShard) -> None:
        if shard.state is ShardState.ACTIVE:
            self.rebalance.on_loaded(shard)
            self.consumer.on_loaded(shard)
            if self.broker.share_groups_loaded is not None:
                self.broker.share_groups_loaded(shard)

    def loaded_shards(self) -> list[CoordinatorShard]:
        return [s for s in self.shards.values() if s.state is ShardState.ACTIVE]

    def _on_unloaded(self, shard: CoordinatorShard) -> None:
        for group in list(shard.groups.values()):
            self.rebalance.on_unloaded(group)
            group.state = GroupState.DEAD
        shard.groups.clear()
        self.consumer.on_unloaded(shard)

    # -- placement ----------------------------------------------------------------------------

    def _default_partitions(self) -> int:
        return self.config.offsets_topic_partitions

    def _topic_settings(self) -> tuple[int, int, dict[str, str]]:
        return (
            self.config.offsets_topic_partitions,
            self.config.offsets_topic_replication_factor,
            {
                "cleanup.policy": "compact",
                "compression.type": "producer",
                "segment.bytes": str(self.config.offsets_topic_segment_bytes),
            },
        )

    async def ensure_offsets_topic(self) -> None:
        await self._ensure_topic()

    async def find_coordinator(self, key_type: int, key: str) -> CoordinatorLocation:
        if key_type == KEY_TYPE_TRANSACTION:
            return CoordinatorLocation(
                ErrorCode.coordinator_not_available, "transactions are not supported yet"
            )
        if key_type != KEY_TYPE_GROUP:
            return CoordinatorLocation(ErrorCode.invalid_request, f"unknown key type {key_type}")
        return await self._locate(key, "offsets topic")

    def shard_for(self, key: str) -> CoordinatorShard:
        """The loaded shard coordinating `key`, if this broker may still answer for it."""
        shard = super().shard_for(key)
        # A leader paused or cut off from its majority keeps its role until it notices, while
        # the others may have elected a leader that took newer commits: its memory may be stale.
        if not shard.partition.has_read_lease():
            raise CoordinatorError(ErrorCode.not_coordinator)
        return shard

    # -- shared helpers -----------------------------------------------------------------------

    def is_current(self, shard: CoordinatorShard, group: ClassicGroup) -> bool:
        """Whether `group` is still the live object for its id (not deleted, not unloaded)."""
        return (
            shard.state is ShardState.ACTIVE
            and group.state is not GroupState.DEAD
            and shard.groups.get(group.group_id) is group
        )

    def touch_member(self, shard: CoordinatorShard, group: ClassicGroup, member_id: str) -> None:
        self.rebalance.touch(shard, group, member_id)

    async def await_write(self, future: asyncio.Future[ErrorCode], for_offsets: bool) -> ErrorCode:
        """A write's outcome as clients see it, giving up after offsets.commit.timeout.ms."""
        timeout = self.config.offsets_commit_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout):
                code = await asyncio.shield(future)
        except TimeoutError:
            code = ErrorCode.request_timed_out
        return coordinator_error_for_write(code, for_offsets)

    async def complete_txn_offsets(
        self, partition_index: int, producer_id: int, commit: bool
    ) -> None:
        """A marker of `producer_id` was committed on `__consumer_offsets-<partition_index>`:
        apply (commit) or drop (abort) its pending offsets in the shard this broker leads."""
        shard = self.shards.get(partition_index)
        if shard is None:
            return  # not led here: whoever leads replays the marker
        if shard.state is ShardState.LOADING and shard.load_task is not None:
            await asyncio.wait([shard.load_task])
        if shard.state is not ShardState.ACTIVE or self.shards.get(partition_index) is not shard:
            return
        taken = shard.pending_txn_offsets.take(producer_id)
        if not commit or not taken:
            return
        now = self.wall_clock()
        for key, value in taken.items():
            group = shard.groups.get(key.group)
            if group is None or group.state is GroupState.DEAD:
                group = shard.groups[key.group] = ClassicGroup(key.group, state_timestamp=now)
            group.offsets[(key.topic, key.partition)] = CommittedOffset.from_value(value)

    # -- listing, describing, deleting --------------------------------------------------------

    def list_groups(
        self, states_filter: set[str], types_filter: set[str]
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        self.sync_leadership()
        if self.any_loading():
            return ErrorCode.coordinator_load_in_progress, []
        states = {s.lower() for s in states_filter}
        types = {t.lower() for t in types_filter}
        listed = []
        for shard in self.shards.values():
            if not shard.partition.has_read_lease():
                continue  # maybe deposed (see shard_for): its groups may be another's now
            if not types or CONSUMER_GROUP_TYPE in types:
                for consumer_group in shard.consumer_groups.values():
                    state = consumer_group.state.value
                    if not states or state.lower() in states:
                        listed.append(
                            {
                                "group_id": consumer_group.group_id,
                                "protocol_type": CONSUMER_PROTOCOL,
                                "group_state": state,
                                "group_type": CONSUMER_GROUP_TYPE,
                            }
                        )
            if types and GROUP_TYPE not in types:
                continue
            for group in shard.groups.values():
                if group.state is GroupState.DEAD or group.group_id in shard.consumer_groups:
                    continue  # dead, or only the offsets of a consumer group
                if states and group.state.value.lower() not in states:
                    continue
                listed.append(
                    {
                        "group_id": group.group_id,
                        "protocol_type": group.protocol_type or "",
                        "group_state": group.state.value,
                        "group_type": GROUP_TYPE,
                    }
                )
        return ErrorCode.none, listed

    def describe_group(self, group_id: str) -> ClassicGroup | None:
        """The live group (raises CoordinatorError if not coordinated here); None if unknown."""
        shard = self.shard_for(group_id)
        group = shard.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD or group_id in shard.consumer_groups:
            return None  # a consumer group is not a classic group (Kafka: GROUP_ID_NOT_FOUND)
        return group

    async def delete_groups(self, group_ids: list[str]) -> list[tuple[str, ErrorCode]]:
        results: list[tuple[str, ErrorCode | asyncio.Future[ErrorCode]]] = []
        for group_id in group_ids:
            try:
                shard = self.shard_for(group_id)
            except CoordinatorError as exc:
                results.append((group_id, exc.code))
                continue
            group = shard.groups.get(group_id)
            consumer_group = shard.consumer_groups.get(group_id)
            if consumer_group is not None:
                results.append((group_id, self._delete_consumer_group(shard, consumer_group)))
            elif group is None or group.state is GroupState.DEAD:
                results.append((group_id, ErrorCode.group_id_not_found))
            elif group.state is not GroupState.EMPTY:
                results.append((group_id, ErrorCode.non_empty_group))
            else:
                results.append((group_id, self.remove_group(shard, group)))
        out = []
        for group_id, outcome in results:
            if isinstance(outcome, asyncio.Future):
                outcome = await self.await_write(outcome, for_offsets=False)
            out.append((group_id, outcome))
        return out

    def _delete_consumer_group(
        self, shard: CoordinatorShard, group: ConsumerGroup
    ) -> ErrorCode | asyncio.Future[ErrorCode]:
        if group.members:
            return ErrorCode.non_empty_group
        del shard.consumer_groups[group.group_id]
        group.dead = True
        tombstones = group_tombstones(group)
        offsets = shard.groups.get(group.group_id)
        if offsets is not None and offsets.state is not GroupState.DEAD:
            return self.remove_group(shard, offsets, tombstones)
        return shard.write(tombstones, lambda _code: None)

    def remove_group(
        self, shard: CoordinatorShard, group: ClassicGroup, extra: list[Record] | None = None
    ) -> asyncio.Future[ErrorCode]:
        """Mark an empty group Dead and write tombstones for it and all its offsets."""
        group.transition(GroupState.DEAD, self.wall_clock())
        self.rebalance.on_unloaded(group)
        records: list[Record] = list(extra or [])
        records += [(OffsetKey(group.group_id, t, p), None) for t, p in group.offsets]
        records.append((GroupKey(group.group_id), None))

        def on_done(code: ErrorCode) -> None:
            # Dropped from memory even if the write failed: the log then still holds the group,
            # and the partition's next leader (maybe us, after a reload) replays it.
            if shard.groups.get(group.group_id) is group:
                del shard.groups[group.group_id]
            if code is ErrorCode.none:
                log.info("group removed", group=group.group_id)

        return shard.write(records, on_done)

    # -- offset expiry ------------------------------------------------------------------------

    def _schedule_expiry(self) -> None:
        interval = self.config.offsets_retention_check_interval_ms / 1000
        self.timers.schedule(_EXPIRY_TIMER, interval, self._run_expiry)

    def _run_expiry(self) -> None:
        try:
            self.expire_offsets()
        finally:
            self._schedule_expiry()

    def expire_offsets(self) -> int:
        """One offsets.retention sweep over every loaded shard; returns offsets expired."""
        now = self.wall_clock()
        expired_total = 0
        for shard in list(self.shards.values()):
            if shard.state is ShardState.ACTIVE:
                for group in list(shard.groups.values()):
                    expired_total += self.offsets.expire(shard, group, now)
        return expired_total
