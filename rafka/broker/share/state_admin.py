"""What share-group administration asks of the share coordinator (KIP-932): a share partition's
state summary (Kafka's ReadShareGroupStateSummary, 87: start offset, epochs and how many records
past the start are delivered for good), its state replaced by a new start offset with nothing
in flight (InitializeShareGroupState, 83: AlterShareGroupOffsets) and its state removed
(DeleteShareGroupState, 86: DeleteShareGroupOffsets, DeleteGroups); and, when a topic is
deleted, the states of its share partitions (by every broker in the partitions it leads).

Here when this broker leads the key's `__share_group_state` partition, else with those requests
to the broker that does (CLUSTER_ACTION there). An initialized state is a ShareSnapshot with the
new start offset, no state batches and the state epoch raised; a deleted one a tombstone of the
key, which replay drops (`state_coordinator.ShareStateShard.load`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from msgspec import Struct

from rafka.broker.cluster.peers import PeerUnavailable
from rafka.broker.coordinator.internal_topic import ShardState, coordinator_error_for_write
from rafka.broker.partition.append import AppendError
from rafka.broker.partition.clock import now_ms
from rafka.broker.share.persister import remote_coordinator
from rafka.broker.share.state_coordinator import (
    LOAD_WAIT_S,
    ShareStateCoordinator,
    ShareStateError,
    ShareStateShard,
)
from rafka.broker.share.state_records import (
    ACKNOWLEDGED,
    ARCHIVED,
    SNAPSHOT,
    PersistedShareState,
    ShareKey,
    encode_key,
    encode_value,
)
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import build_batch

if TYPE_CHECKING:
    from rafka.broker.node import CoordinatorNode

log = structlog.get_logger(__name__)

INITIALIZE_SHARE_GROUP_STATE = 83
DELETE_SHARE_GROUP_STATE = 86
READ_SHARE_GROUP_STATE_SUMMARY = 87
REQUEST_TIMEOUT_S = 15.0
# As Kafka's persister: a share coordinator not yet elected, moving or loading is retried with
# a backoff, for this long.
RETRY_FOR_S = 15.0
RETRY_BACKOFF_S = 0.1
RETRIABLE = frozenset(
    {
        ErrorCode.not_coordinator,
        ErrorCode.coordinator_not_available,
        ErrorCode.coordinator_load_in_progress,
    }
)
UNINITIALIZED = -1  # Kafka's start offset and delivery complete count of a state not known

T = TypeVar("T")


class StateSummary(Struct, frozen=True):
    start_offset: int
    leader_epoch: int
    state_epoch: int
    # Records at or past the start offset acknowledged or archived (KIP-1226's
    # DeliveryCompleteCount): the lag is the end offset - start offset - this.
    delivery_complete_count: int


def summarize(state: PersistedShareState) -> StateSummary:
    complete = sum(
        1
        for offset, (delivery, _) in state.records.items()
        if offset >= state.start_offset and delivery in (ACKNOWLEDGED, ARCHIVED)
    )
    return StateSummary(state.start_offset, state.leader_epoch, state.state_epoch, complete)


# -- on the share coordinator ------------------------------------------------------------------


async def _append(
    shard: ShareStateShard, key: ShareKey, value: bytes | None, *more: ShareKey
) -> ErrorCode:
    """Append one record of `key` (and tombstones of `more`) and wait until it is committed
    (as ShareStateShard.write)."""
    now = now_ms()
    batch = build_batch(
        [(encode_key(SNAPSHOT, key), value, (), now)]
        + [(encode_key(SNAPSHOT, other), None, (), now) for other in more]
    )
    try:
        result = shard.partition.append_records(
            batch,
            max_message_bytes=shard.partition.log.config.max_message_bytes,
            log_append_time=False,
        )
        first = result.last_offset - len(more)
        shard.appended(key, first, None if value is None else True)
        for other in more:
            shard.appended(other, first, None)
        await shard.partition.wait_committed(result.last_offset)
    except AppendError as exc:
        shard.close()
        return coordinator_error_for_write(exc.code, for_offsets=False)
    if shard.state is ShardState.CLOSED:
        return ErrorCode.not_coordinator
    return ErrorCode.none


def _writable(shard: ShareStateShard) -> bool:
    return shard.state is ShardState.ACTIVE and shard.still_leader()


async def initialize_in(
    shard: ShareStateShard, key: ShareKey, start_offset: int, state_epoch: int | None = None
) -> ErrorCode:
    """Replace `key`'s state by `start_offset` with nothing in flight, in the next state epoch
    (or `state_epoch`, FENCED_STATE_EPOCH if it is older than the stored one). The stored
    leader epoch stays, so a former leader of the share partition is still fenced."""
    if not _writable(shard):
        return ErrorCode.not_coordinator
    old = shard.states.get(key)
    floor = shard.next_state_epoch(key) if old is None else old.state_epoch
    if state_epoch is not None and state_epoch < floor:
        return ErrorCode.fenced_state_epoch
    if state_epoch is None:
        state_epoch = floor if old is None else old.state_epoch + 1
    state = PersistedShareState(
        start_offset,
        state_epoch,
        -1 if old is None else old.leader_epoch,
        0 if old is None else old.snapshot_epoch + 1,
    )
    shard.states[key] = state
    shard.updates_since_snapshot[key] = 0
    return await _append(shard, key, encode_value(state.to_snapshot(now_ms())))


async def delete_in(shard: ShareStateShard, key: ShareKey) -> ErrorCode:
    """Remove `key`'s state (a tombstone); NONE also when it had none."""
    if not _writable(shard):
        return ErrorCode.not_coordinator
    if not shard.retire(key):
        return ErrorCode.none
    return await _append(shard, key, None)


async def delete_topic_in(shard: ShareStateShard, topic_id: uuid.UUID) -> ErrorCode:
    """Remove the state of every share partition of a deleted topic (tombstones, one batch)."""
    if not _writable(shard):
        return ErrorCode.not_coordinator
    keys = [key for key in shard.states if key[1] == topic_id]
    if not keys:
        return ErrorCode.none
    for key in keys:
        shard.retire(key, remember=False)
    return await _append(shard, keys[0], None, *keys[1:])


# -- from the group coordinator ----------------------------------------------------------------


class ShareStateAdmin:
    """The group coordinator's side: each call goes to the key's share coordinator."""

    def __init__(self, broker: CoordinatorNode, coordinator: ShareStateCoordinator) -> None:
        self.broker = broker
        self.coordinator = coordinator

    # Served here (also for the requests of other brokers).

    async def summary_here(self, key: ShareKey) -> StateSummary | None:
        """ShareStateError if this broker is not the key's share coordinator."""
        state = await self.coordinator.read(key)
        return None if state is None else summarize(state)

    async def initialize_here(
        self, key: ShareKey, start_offset: int, state_epoch: int | None = None
    ) -> ErrorCode:
        try:
            shard = await self.coordinator.local_shard(key)
        except ShareStateError as exc:
            return exc.code
        return await initialize_in(shard, key, start_offset, state_epoch)

    async def delete_here(self, key: ShareKey) -> ErrorCode:
        try:
            shard = await self.coordinator.local_shard(key)
        except ShareStateError as exc:
            return exc.code
        return await delete_in(shard, key)

    async def delete_topic_here(self, topic_id: uuid.UUID) -> None:
        """A topic was deleted: every broker removes its share partitions' states from the
        `__share_group_state` partitions it leads (Kafka's share coordinator does so on the
        metadata update), loading those not loaded yet. A partition without a leader now is
        not cleaned (its states are of a topic id no one uses again)."""
        coordinator = self.coordinator
        if self.broker.topic(coordinator.topic) is None:
            return
        coordinator.sync_leadership()
        for shard in list(coordinator.shards.values()):
            if shard.load_task is not None and not shard.load_task.done():
                await asyncio.wait([shard.load_task], timeout=LOAD_WAIT_S)
            code = await delete_topic_in(shard, topic_id)
            if code is not ErrorCode.none:
                log.warning("share states of a deleted topic not removed", topic_id=str(topic_id),
                            partition=shard.partition.name, error=code.name)  # fmt: skip

    # Wherever the key's share coordinator is.

    def _remote(self, key: ShareKey) -> int | None:
        return remote_coordinator(self.broker, self.coordinator, key)

    async def summary(self, key: ShareKey) -> tuple[ErrorCode, StateSummary | None]:
        return await _retrying(lambda: self._summary(key))

    async def initialize(self, key: ShareKey, start_offset: int) -> ErrorCode:
        code, _ = await _retrying(lambda: _coded(self._initialize(key, start_offset)))
        return code

    async def delete(self, key: ShareKey) -> ErrorCode:
        code, _ = await _retrying(lambda: _coded(self._delete(key)))
        return code

    async def _summary(self, key: ShareKey) -> tuple[ErrorCode, StateSummary | None]:
        remote = self._remote(key)
        if remote is None:
            try:
                return ErrorCode.none, await self.summary_here(key)
            except ShareStateError as exc:
                remote = self._remote(key) if exc.code is ErrorCode.not_coordinator else None
                if remote is None:
                    return exc.code, None
        part = await self._call(
            remote, READ_SHARE_GROUP_STATE_SUMMARY, 1, key, {"leader_epoch": -1}
        )
        if part is None:
            return ErrorCode.coordinator_not_available, None
        code = ErrorCode(part.error_code)
        if code is not ErrorCode.none or part.start_offset == UNINITIALIZED:
            return code, None
        complete = getattr(part, "delivery_complete_count", UNINITIALIZED)
        return code, StateSummary(part.start_offset, part.leader_epoch, part.state_epoch, complete)

    async def _initialize(self, key: ShareKey, start_offset: int) -> ErrorCode:
        remote = self._remote(key)
        if remote is None:
            code = await self.initialize_here(key, start_offset)
            remote = self._remote(key) if code is ErrorCode.not_coordinator else None
            if remote is None:
                return code
        # The next state epoch is the share coordinator's to choose: -1 asks for it.
        part = await self._call(
            remote,
            INITIALIZE_SHARE_GROUP_STATE,
            0,
            key,
            {"state_epoch": -1, "start_offset": start_offset},
        )
        return ErrorCode.coordinator_not_available if part is None else ErrorCode(part.error_code)

    async def _delete(self, key: ShareKey) -> ErrorCode:
        remote = self._remote(key)
        if remote is None:
            code = await self.delete_here(key)
            remote = self._remote(key) if code is ErrorCode.not_coordinator else None
            if remote is None:
                return code
        part = await self._call(remote, DELETE_SHARE_GROUP_STATE, 0, key, {})
        return ErrorCode.coordinator_not_available if part is None else ErrorCode(part.error_code)

    async def _call(
        self, node_id: int, api_key: int, version: int, key: ShareKey, fields: dict[str, Any]
    ) -> Any:
        """The partition result of a one-partition request, None if the broker did not answer."""
        group_id, topic_id, index = key
        request = {
            "group_id": group_id,
            "topics": [{"topic_id": topic_id, "partitions": [{"partition": index, **fields}]}],
        }
        network = self.broker.network
        assert network is not None
        try:
            response = await network.request(
                node_id, api_key, version, request, timeout=REQUEST_TIMEOUT_S
            )
        except (PeerUnavailable, TimeoutError):
            return None
        for topic in response.results:
            for part in topic.partitions:
                return part
        return None


async def _coded(call: Awaitable[ErrorCode]) -> tuple[ErrorCode, None]:
    return await call, None


async def _retrying(
    attempt: Callable[[], Awaitable[tuple[ErrorCode, T]]],
) -> tuple[ErrorCode, T]:
    """`attempt` again, after a backoff, while its share coordinator is not there yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETRY_FOR_S
    while True:
        code, value = await attempt()
        if code not in RETRIABLE or loop.time() >= deadline:
            return code, value
        await asyncio.sleep(RETRY_BACKOFF_S)
