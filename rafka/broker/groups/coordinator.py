"""The group coordinator: which groups this broker coordinates, and the group-wide operations.

A group belongs to one `__consumer_offsets` partition (see placement); the leader of that
partition coordinates it. For each partition this broker leads there is a CoordinatorShard that
replays the partition before serving. Leadership is read from the partitions themselves, so
when the Raft layer moves a leader, the next request (or `sync_leadership()`) unloads or loads
the shard; meanwhile clients get NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS and look the
coordinator up again, as with Kafka.

The rebalance protocol lives in membership.py and committed offsets in offset_store.py; this
module holds what they share: configuration, shards, timers, and group listing and deletion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from rafka.broker.groups.group import GROUP_TYPE, ClassicGroup, GroupState
from rafka.broker.groups.membership import Membership
from rafka.broker.groups.offset_store import OffsetStore
from rafka.broker.groups.placement import partition_for
from rafka.broker.groups.records import GroupKey, OffsetKey
from rafka.broker.groups.shard import (
    CoordinatorShard,
    Record,
    ShardState,
    coordinator_error_for_write,
)
from rafka.broker.groups.timers import Timers
from rafka.broker.partition import now_ms
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.broker import Broker
    from rafka.broker.config import BrokerConfig

log = structlog.get_logger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1
_EXPIRY_TIMER = ("offsets-expiry",)


class CoordinatorError(Exception):
    """A request-level error: every part of the request gets this code."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class GroupConfig:
    offsets_topic_partitions: int = 8
    offsets_topic_replication_factor: int = 1
    offsets_topic_segment_bytes: int = 104857600
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    max_size: int = 2**31 - 1
    initial_rebalance_delay_ms: int = 3000
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    offsets_retention_check_interval_ms: int = 600000
    offsets_commit_timeout_ms: int = 5000
    offset_metadata_max_bytes: int = 4096

    @classmethod
    def from_broker_config(cls, config: BrokerConfig) -> GroupConfig:
        return cls(
            offsets_topic_partitions=config.get_int("offsets.topic.num.partitions"),
            offsets_topic_replication_factor=config.get_int("offsets.topic.replication.factor"),
            offsets_topic_segment_bytes=config.get_int("offsets.topic.segment.bytes"),
            min_session_timeout_ms=config.get_int("group.min.session.timeout.ms"),
            max_session_timeout_ms=config.get_int("group.max.session.timeout.ms"),
            max_size=config.get_int("group.max.size"),
            initial_rebalance_delay_ms=config.get_int("group.initial.rebalance.delay.ms"),
            offsets_retention_ms=config.offsets_retention_ms,
            offsets_retention_check_interval_ms=config.get_int(
                "offsets.retention.check.interval.ms"
            ),
            offsets_commit_timeout_ms=config.get_int("offsets.commit.timeout.ms"),
            offset_metadata_max_bytes=config.get_int("offset.metadata.max.bytes"),
        )


@dataclass(frozen=True, slots=True)
class CoordinatorLocation:
    error: ErrorCode
    message: str | None = None
    node_id: int = -1
    host: str = ""
    port: int = -1


class GroupCoordinator:
    def __init__(
        self,
        broker: Broker,
        config: GroupConfig | None = None,
        wall_clock: Callable[[], int] = now_ms,
    ) -> None:
        self.broker = broker
        self.config = config or GroupConfig.from_broker_config(broker.config)
        self.wall_clock = wall_clock
        self.timers = Timers()
        self.shards: dict[int, CoordinatorShard] = {}
        self.membership = Membership(self)
        self.offsets = OffsetStore(self)
        self._topic_lock = asyncio.Lock()
        self._running = False

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

    async def wait_loaded(self) -> None:
        """Resolves once every shard this broker leads serves (tests, tools)."""
        tasks = [s.load_task for s in self.shards.values() if s.load_task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def sync_leadership(self) -> None:
        """Load shards for partitions this broker now leads, unload the ones it lost."""
        if not self._running:
            return
        topic = self.broker.topic(OFFSETS_TOPIC)
        count = topic.partition_count if topic is not None else 0
        for index in list(self.shards):
            if index >= count:
                self._unload(self.shards[index])
        for index in range(count):
            partition = self.broker.partition(OFFSETS_TOPIC, index)
            shard = self.shards.get(index)
            if shard is not None and (shard.partition is not partition or not shard.still_leader()):
                self._unload(shard)
                shard = None
            leads = partition is not None and partition.offline is None and partition.is_leader
            if leads and shard is None:
                assert partition is not None
                shard = CoordinatorShard(index, partition)
                self.shards[index] = shard
                shard.load_task = asyncio.create_task(
                    self._load(shard), name=f"load {partition.name}"
                )

    async def _load(self, shard: CoordinatorShard) -> None:
        try:
            await shard.load()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("group coordinator load failed", partition=shard.partition.name)
            if self.shards.get(shard.index) is shard:
                self._unload(shard)
            return
        if shard.state is ShardState.ACTIVE:
            self.membership.on_loaded(shard)

    def _unload(self, shard: CoordinatorShard) -> None:
        shard.close()
        if self.shards.get(shard.index) is shard:
            del self.shards[shard.index]
        for group in list(shard.groups.values()):
            self.membership.on_unloaded(group)
            group.state = GroupState.DEAD
        shard.groups.clear()
        if self._running:  # a leadership change, not a shutdown
            log.info("group coordinator unloaded", partition=shard.partition.name)

    # -- placement ----------------------------------------------------------------------------

    def partition_for(self, group_id: str) -> int:
        topic = self.broker.topic(OFFSETS_TOPIC)
        count = topic.partition_count if topic is not None else self.config.offsets_topic_partitions
        return partition_for(group_id, count)

    def shard_for(self, group_id: str) -> CoordinatorShard:
        """The loaded shard that coordinates `group_id`, or CoordinatorError saying why not."""
        if not self._running:
            raise CoordinatorError(ErrorCode.coordinator_not_available)
        index = self.partition_for(group_id)
        shard = self.shards.get(index)
        if shard is None or not shard.still_leader():
            self.sync_leadership()
            shard = self.shards.get(index)
        if shard is None:
            raise CoordinatorError(ErrorCode.not_coordinator)
        if shard.state is ShardState.LOADING:
            raise CoordinatorError(ErrorCode.coordinator_load_in_progress)
        return shard

    async def ensure_offsets_topic(self) -> None:
        async with self._topic_lock:
            if self.broker.topic(OFFSETS_TOPIC) is not None:
                return
            await self.broker.ensure_internal_topic(
                OFFSETS_TOPIC,
                self.config.offsets_topic_partitions,
                self.config.offsets_topic_replication_factor,
                {
                    "cleanup.policy": "compact",
                    "compression.type": "producer",
                    "segment.bytes": str(self.config.offsets_topic_segment_bytes),
                },
            )
        self.sync_leadership()

    async def find_coordinator(self, key_type: int, key: str) -> CoordinatorLocation:
        if key_type == KEY_TYPE_TRANSACTION:
            return CoordinatorLocation(
                ErrorCode.coordinator_not_available, "transactions are not supported yet"
            )
        if key_type != KEY_TYPE_GROUP:
            return CoordinatorLocation(ErrorCode.invalid_request, f"unknown key type {key_type}")
        if not self._running:
            return CoordinatorLocation(ErrorCode.coordinator_not_available)
        try:
            await self.ensure_offsets_topic()
        except Exception as exc:  # TopicError, or too few brokers for the replication factor
            log.warning("cannot create offsets topic", error=str(exc))
            return CoordinatorLocation(ErrorCode.coordinator_not_available, str(exc))
        partition = self.broker.partition(OFFSETS_TOPIC, self.partition_for(key))
        leader = partition.leader_id if partition is not None else -1
        for endpoint in self.broker.endpoints:
            if endpoint.node_id == leader:
                return CoordinatorLocation(
                    ErrorCode.none, None, endpoint.node_id, endpoint.host, endpoint.port
                )
        return CoordinatorLocation(ErrorCode.coordinator_not_available)

    # -- shared helpers -----------------------------------------------------------------------

    def is_current(self, shard: CoordinatorShard, group: ClassicGroup) -> bool:
        """Whether `group` is still the live object for its id (not deleted, not unloaded)."""
        return (
            shard.state is ShardState.ACTIVE
            and group.state is not GroupState.DEAD
            and shard.groups.get(group.group_id) is group
        )

    async def await_write(self, future: asyncio.Future[ErrorCode], for_offsets: bool) -> ErrorCode:
        """A write's outcome as clients see it, giving up after offsets.commit.timeout.ms."""
        timeout = self.config.offsets_commit_timeout_ms / 1000
        try:
            code = await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            code = ErrorCode.request_timed_out
        return coordinator_error_for_write(code, for_offsets)

    # -- listing, describing, deleting --------------------------------------------------------

    def list_groups(
        self, states_filter: set[str], types_filter: set[str]
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        self.sync_leadership()
        if any(s.state is ShardState.LOADING for s in self.shards.values()):
            return ErrorCode.coordinator_load_in_progress, []
        states = {s.lower() for s in states_filter}
        types = {t.lower() for t in types_filter}
        if types and GROUP_TYPE not in types:
            return ErrorCode.none, []
        listed = []
        for shard in self.shards.values():
            for group in shard.groups.values():
                if group.state is GroupState.DEAD:
                    continue
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
        if group is None or group.state is GroupState.DEAD:
            return None
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
            if group is None or group.state is GroupState.DEAD:
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

    def remove_group(
        self, shard: CoordinatorShard, group: ClassicGroup, extra: list[Record] | None = None
    ) -> asyncio.Future[ErrorCode]:
        """Mark an empty group Dead and write tombstones for it and all its offsets."""
        group.transition(GroupState.DEAD, self.wall_clock())
        self.membership.on_unloaded(group)
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
