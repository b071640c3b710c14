"""What the group and the transaction coordinators share: an internal, compacted topic whose
partitions each hold a slice of the coordinator's state, served by the partition's leader.

For each partition this broker leads there is a shard that replays the partition before it
serves. Leadership is read from the partitions themselves, so when the Raft layer moves a
leader, the next request (or `sync_leadership()`) unloads or loads the shard; meanwhile clients
get NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS and look the coordinator up again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from enum import Enum
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

import structlog
from msgspec import Struct

from rafka.broker.coordinator.placement import partition_for
from rafka.broker.partition.replica import Partition
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import BatchHeader, CorruptRecordError, Record, decode_batch

if TYPE_CHECKING:
    from rafka.broker.node import CoordinatorNode

log = structlog.get_logger(__name__)

# Group state and committed offsets (the transaction coordinator writes there too).
OFFSETS_TOPIC = "__consumer_offsets"
# Transactional ids and their state (the transaction coordinator's).
TXN_TOPIC = "__transaction_state"
# Share-partition states (KIP-932's share coordinator).
SHARE_STATE_TOPIC = "__share_group_state"

# Batches replayed between yields to the event loop, so a long load does not stall other work.
REPLAY_SLICE = 256


class ShardState(Enum):
    LOADING = "loading"
    ACTIVE = "active"
    CLOSED = "closed"


class CoordinatorLocation(Struct, frozen=True):
    """FindCoordinator's answer for one key."""

    error: ErrorCode
    message: str | None = None
    node_id: int = -1
    host: str = ""
    port: int = -1


class InternalShard:
    """One internal-topic partition led by this broker, from the leader epoch it was loaded in."""

    def __init__(self, index: int, partition: Partition) -> None:
        self.index = index
        self.partition = partition
        self.leader_epoch = partition.leader_epoch
        # The log end when this replica became leader (shards are made only for a leader).
        start = partition.raft.epoch_start_offset
        self.epoch_start_offset = partition.log_end_offset if start is None else start
        self.state = ShardState.LOADING
        self.load_task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.state is ShardState.ACTIVE

    def still_leader(self) -> bool:
        p = self.partition
        return p.offline is None and p.is_leader and p.leader_epoch == self.leader_epoch

    async def load(self) -> None:
        """Replay every committed record, then serve."""
        raise NotImplementedError

    async def replay_point(self) -> int:
        """Wait for the high watermark of our own epoch; the offset to replay up to.

        At election the high watermark this replica knows may lag what the previous leader
        committed (and acknowledged): those records sit in our log between the high watermark
        and the log end, the epoch start offset. They are known committed only once the high
        watermark reaches it (with a LEADER_CHANGE batch written there, once that commits)."""
        partition = self.partition
        start = self.epoch_start_offset
        if start > 0:
            await partition.wait_committed(start - 1)
        return partition.high_watermark

    async def batches_below(self, high_watermark: int) -> AsyncIterator[tuple[BatchHeader, bytes]]:
        """(header, batch) of each batch from the log start up to `high_watermark`, yielding to
        the event loop now and then. Stops early if the shard is closed meanwhile (callers
        then check `state`)."""
        partition = self.partition
        count = 0
        for header, batch in partition.log.iter_batches(partition.log_start_offset):
            if header.base_offset >= high_watermark:
                return
            count += 1
            if count % REPLAY_SLICE == 0:
                await asyncio.sleep(0)
                if self.state is ShardState.CLOSED:
                    return
            yield header, batch

    async def records_below(self, high_watermark: int, log_name: str) -> AsyncIterator[Record]:
        """The keyed records of the data batches below `high_watermark`, for a replay; a batch
        that does not decode is logged ("bad batch in <log_name>") and skipped."""
        async for header, batch in self.batches_below(high_watermark):
            if header.is_control:
                continue
            try:
                _, records = decode_batch(batch)
            except CorruptRecordError as exc:
                log.error(f"bad batch in {log_name}", partition=self.partition.name, error=str(exc))
                continue
            for record in records:
                if record.offset < high_watermark and record.key is not None:
                    yield record

    def close(self) -> None:
        self.state = ShardState.CLOSED
        if self.load_task is not None and not self.load_task.done():
            self.load_task.cancel()


S = TypeVar("S", bound=InternalShard)


class InternalTopicCoordinator(Generic[S]):
    """Shards of the partitions of `topic` this broker leads, and where a key is coordinated.

    Subclasses name the topic, build their shards, say how the topic is created and may react
    to a shard being loaded or unloaded."""

    topic: ClassVar[str]
    kind: ClassVar[str]  # "group" or "transaction", for log lines
    # The request-level error raised by `shard_for`; called with the error code.
    error_type: ClassVar[Callable[[ErrorCode], Exception]]

    def __init__(self, broker: CoordinatorNode) -> None:
        self.broker = broker
        self.shards: dict[int, S] = {}
        self._topic_lock = asyncio.Lock()
        self._running = False

    # -- hooks ----------------------------------------------------------------------------------

    def _new_shard(self, index: int, partition: Partition) -> S:
        raise NotImplementedError

    def _default_partitions(self) -> int:
        """The partition count to place keys by while the topic does not exist yet."""
        raise NotImplementedError

    def _topic_settings(self) -> tuple[int, int, dict[str, str]]:
        """(partitions, replication factor, topic configs) to create the topic with."""
        raise NotImplementedError

    def _on_loaded(self, shard: S) -> None:
        """Called once `shard` has replayed its partition (or stopped because it was closed)."""

    def _on_unloaded(self, shard: S) -> None:
        """Called when `shard` is closed and dropped, before it is logged."""

    # -- shards ---------------------------------------------------------------------------------

    async def wait_loaded(self) -> None:
        """Resolves once every shard this broker leads serves (tests, tools)."""
        tasks = [s.load_task for s in self.shards.values() if s.load_task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def sync_leadership(self) -> None:
        """Load shards for partitions this broker now leads, unload the ones it lost."""
        if not self._running:
            return
        topic = self.broker.topic(self.topic)
        count = topic.partition_count if topic is not None else 0
        for index in list(self.shards):
            if index >= count:
                self._unload(self.shards[index])
        for index in range(count):
            partition = self.broker.partition(self.topic, index)
            shard = self.shards.get(index)
            if shard is not None and (shard.partition is not partition or not shard.still_leader()):
                self._unload(shard)
                shard = None
            leads = partition is not None and partition.offline is None and partition.is_leader
            if leads and shard is None:
                assert partition is not None
                shard = self._new_shard(index, partition)
                self.shards[index] = shard
                shard.load_task = asyncio.create_task(
                    self._load(shard), name=f"load {partition.name}"
                )

    def any_loading(self) -> bool:
        return any(s.state is ShardState.LOADING for s in self.shards.values())

    async def _load(self, shard: S) -> None:
        try:
            await shard.load()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(f"{self.kind} coordinator load failed", partition=shard.partition.name)
            if self.shards.get(shard.index) is shard:
                self._unload(shard)
            return
        self._on_loaded(shard)

    def _unload(self, shard: S) -> None:
        shard.close()
        if self.shards.get(shard.index) is shard:
            del self.shards[shard.index]
        self._on_unloaded(shard)
        if self._running:  # a leadership change, not a shutdown
            log.info(f"{self.kind} coordinator unloaded", partition=shard.partition.name)

    # -- placement ------------------------------------------------------------------------------

    def partition_for(self, key: str) -> int:
        topic = self.broker.topic(self.topic)
        count = topic.partition_count if topic is not None else self._default_partitions()
        return partition_for(key, count)

    def shard_for(self, key: str) -> S:
        """The loaded shard that coordinates `key`, or `error_type` saying why not."""
        if not self._running:
            raise self.error_type(ErrorCode.coordinator_not_available)
        index = self.partition_for(key)
        shard = self.shards.get(index)
        if shard is None or not shard.still_leader():
            self.sync_leadership()
            shard = self.shards.get(index)
        if shard is None:
            raise self.error_type(ErrorCode.not_coordinator)
        if shard.state is ShardState.LOADING:
            raise self.error_type(ErrorCode.coordinator_load_in_progress)
        return shard

    async def _ensure_topic(self) -> None:
        async with self._topic_lock:
            if self.broker.topic(self.topic) is not None:
                return
            partitions, replication_factor, configs = self._topic_settings()
            await self.broker.ensure_internal_topic(
                self.topic, partitions, replication_factor, configs
            )
        self.sync_leadership()

    async def _locate(self, key: str, topic_description: str) -> CoordinatorLocation:
        """The endpoint of the broker that leads `key`'s partition, creating the topic first."""
        if not self._running:
            return CoordinatorLocation(ErrorCode.coordinator_not_available)
        try:
            await self._ensure_topic()
        except Exception as exc:  # AdminError, or too few brokers for the replication factor
            log.warning(f"cannot create {topic_description}", error=str(exc))
            return CoordinatorLocation(ErrorCode.coordinator_not_available, str(exc))
        topic = self.broker.topic(self.topic)
        leader = -1
        if topic is not None:
            leader, _, _ = self.broker.leadership(topic, self.partition_for(key))
        for endpoint in self.broker.endpoints:
            if endpoint.node_id == leader:
                return CoordinatorLocation(
                    ErrorCode.none, None, endpoint.node_id, endpoint.host, endpoint.port
                )
        return CoordinatorLocation(ErrorCode.coordinator_not_available)


def coordinator_error_for_write(code: ErrorCode, for_offsets: bool) -> ErrorCode:
    """Kafka's mapping of a failed `__consumer_offsets` append to what group clients expect."""
    if code in (
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.not_enough_replicas,
        ErrorCode.not_enough_replicas_after_append,
        ErrorCode.request_timed_out,
    ):
        return ErrorCode.coordinator_not_available
    if code in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    if code in (
        ErrorCode.message_too_large,
        ErrorCode.record_list_too_large,
        ErrorCode.invalid_fetch_size,
    ):
        if for_offsets:
            return ErrorCode.invalid_commit_offset_size
        return ErrorCode.unknown_server_error
    if code in (ErrorCode.none, ErrorCode.not_coordinator, ErrorCode.coordinator_not_available):
        return code
    return ErrorCode.unknown_server_error
