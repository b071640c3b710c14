"""Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and offsets.retention expiry.

A commit is validated against the group (generation fencing for group members; commits with
generation -1 come from admin tools or consumers that assign partitions themselves and are
accepted only while the group is Empty), written to `__consumer_offsets`, and visible to
OffsetFetch once committed there. Metadata strings are kept verbatim.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Protocol

import structlog
from msgspec import Struct

from rafka.broker.coordinator.groups.consumer_group import ConsumerGroup, ConsumerMember
from rafka.broker.coordinator.groups.consumer_heartbeat import group_tombstones
from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.coordinator.groups.group import (
    CONSUMER_PROTOCOL_TYPE,
    ClassicGroup,
    CommittedOffset,
    GroupState,
    TopicPartition,
)
from rafka.broker.coordinator.groups.records import OffsetKey
from rafka.broker.coordinator.groups.shard import CoordinatorShard, Record
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.coordinator.groups.context import GroupContext

log = structlog.get_logger(__name__)


class OffsetCommit(Struct, frozen=True):
    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


class OffsetStore:
    def __init__(self, coordinator: GroupContext) -> None:
        self.coordinator = coordinator
        self.config = coordinator.config

    # -- OffsetCommit ---------------------------------------------------------------------------

    async def commit(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        commits: list[OffsetCommit],
        *,
        expire_timestamp: int = -1,
        api_version: int = 9,
    ) -> list[ErrorCode]:
        """The outcome per entry of `commits`; CoordinatorError for request-wide errors."""

        if not group_id:
            raise CoordinatorError(ErrorCode.invalid_group_id)
        shard = self.coordinator.shard_for(group_id)
        group = shard.groups.get(group_id)
        consumer_group = shard.consumer_groups.get(group_id)
        lagging: ConsumerMember | None = None
        if consumer_group is not None:
            lagging = validate_consumer_commit(consumer_group, generation, member_id, api_version)
            group = offsets_holder(shard, group_id, self.coordinator.wall_clock())
        elif group is None:
            if generation >= 0:
                # v9+ says so plainly; older clients expect ILLEGAL_GENERATION.
                if api_version >= 9:
                    raise CoordinatorError(ErrorCode.group_id_not_found)
                raise CoordinatorError(ErrorCode.illegal_generation)
            group = ClassicGroup(group_id, state_timestamp=self.coordinator.wall_clock())
            shard.groups[group_id] = group
        if consumer_group is None:
            code = self._validate_commit(group, generation, member_id, group_instance_id)
            if code is not ErrorCode.none:
                raise CoordinatorError(code)
        if group.state is GroupState.STABLE and member_id:
            self.coordinator.touch_member(shard, group, member_id)

        now = self.coordinator.wall_clock()
        results: list[ErrorCode] = []
        accepted: dict[TopicPartition, CommittedOffset] = {}
        for commit in commits:
            code = self._check_partition(commit)
            results.append(code)
            if code is ErrorCode.none:
                if lagging is not None:
                    topic = self.coordinator.broker.topic(commit.topic)
                    check_assignment_epoch(lagging, generation, topic, commit.partition)
                accepted[(commit.topic, commit.partition)] = CommittedOffset(
                    commit.offset,
                    commit.leader_epoch,
                    commit.metadata or "",
                    now,
                    expire_timestamp,
                )
        if not accepted:
            return results
        future = self._write_offsets(shard, group, accepted)
        outcome = await self.coordinator.await_write(future, for_offsets=True)
        return [outcome if code is ErrorCode.none else code for code in results]

    @staticmethod
    def _validate_commit(
        group: ClassicGroup, generation: int, member_id: str, instance_id: str | None
    ) -> ErrorCode:
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        if generation < 0 and group.state is GroupState.EMPTY:
            return ErrorCode.none  # an admin tool or a consumer without group management
        if generation >= 0 or member_id or instance_id is not None:
            code = group.member_error(instance_id, member_id)
            if code is not ErrorCode.none:
                return code
            if generation != group.generation:
                return ErrorCode.illegal_generation
        elif group.state is not GroupState.EMPTY:
            return ErrorCode.unknown_member_id
        if group.state is GroupState.COMPLETING_REBALANCE:
            # The member has the new generation but no assignment yet: it retries after sync.
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def _check_partition(self, commit: OffsetCommit) -> ErrorCode:
        topic = self.coordinator.broker.topic(commit.topic)
        if topic is None or not 0 <= commit.partition < topic.partition_count:
            return ErrorCode.unknown_topic_or_partition
        metadata = commit.metadata or ""
        if len(metadata.encode()) > self.config.offset_metadata_max_bytes:
            return ErrorCode.offset_metadata_too_large
        return ErrorCode.none

    def _write_offsets(
        self,
        shard: CoordinatorShard,
        group: ClassicGroup,
        offsets: dict[TopicPartition, CommittedOffset],
    ) -> asyncio.Future[ErrorCode]:
        group.begin_offset_writes(offsets.keys())
        records: list[Record] = [
            (OffsetKey(group.group_id, topic, partition), value.to_value())
            for (topic, partition), value in offsets.items()
        ]

        def on_done(code: ErrorCode) -> None:
            group.end_offset_writes(offsets.keys())
            if code is ErrorCode.none and group.state is not GroupState.DEAD:
                group.offsets.update(offsets)

        return shard.write(records, on_done)

    # -- OffsetFetch ----------------------------------------------------------------------------

    async def fetch(
        self,
        group_id: str,
        partitions: list[TopicPartition] | None,
        member: tuple[str | None, int] = (None, -1),
    ) -> list[tuple[str, int, CommittedOffset | None]]:
        """Committed offsets of the named partitions (None: every partition with one), once a
        majority has confirmed that this coordinator's partition leader still leads: a deposed
        one (paused, cut off) would answer from memory older than commits made since."""

        coordinator = self.coordinator
        shard = coordinator.shard_for(group_id)
        timeout_s = coordinator.config.offsets_commit_timeout_ms / 1000
        if not await shard.partition.confirm_leadership(timeout_s) or (
            coordinator.shard_for(group_id) is not shard
        ):
            raise CoordinatorError(ErrorCode.not_coordinator)
        member_id, member_epoch = member
        consumer_group = shard.consumer_groups.get(group_id)
        if consumer_group is not None and member_id is not None and member_epoch >= 0:
            known = consumer_group.members.get(member_id)
            if known is None:
                raise CoordinatorError(ErrorCode.unknown_member_id)
            _validate_member_epoch(known, member_epoch)
        group = shard.groups.get(group_id)
        offsets = group.offsets if group is not None and group.state is not GroupState.DEAD else {}
        if partitions is None:
            return [(t, p, offsets[(t, p)]) for t, p in sorted(offsets)]
        return [(t, p, offsets.get((t, p))) for t, p in partitions]

    # -- OffsetDelete ---------------------------------------------------------------------------

    async def delete(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        shard = self.coordinator.shard_for(group_id)
        group = shard.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.group_id_not_found, []
        subscribed: set[str] | None = set()
        if group.state is not GroupState.EMPTY:
            if group.protocol_type != CONSUMER_PROTOCOL_TYPE:
                return ErrorCode.non_empty_group, []
            subscribed = group.subscribed_topics()
        results: list[ErrorCode] = []
        deletable: list[TopicPartition] = []
        for topic, partition in partitions:
            image = self.coordinator.broker.topic(topic)
            if image is None or not 0 <= partition < image.partition_count:
                results.append(ErrorCode.unknown_topic_or_partition)
            elif subscribed is None or topic in subscribed:
                # Unknown subscriptions count as subscribed to everything, as in Kafka.
                results.append(ErrorCode.group_subscribed_to_topic)
            else:
                results.append(ErrorCode.none)
                if (topic, partition) in group.offsets:
                    deletable.append((topic, partition))
        if not deletable:
            return ErrorCode.none, results
        removed = {tp: group.offsets[tp] for tp in deletable}

        def on_done(code: ErrorCode) -> None:
            if code is ErrorCode.none:
                for tp, value in removed.items():
                    if group.offsets.get(tp) is value:
                        del group.offsets[tp]

        records: list[Record] = [(OffsetKey(group_id, t, p), None) for t, p in deletable]
        outcome = await self.coordinator.await_write(shard.write(records, on_done), True)
        return ErrorCode.none, [outcome if code is ErrorCode.none else code for code in results]

    # -- offsets.retention ----------------------------------------------------------------------

    def expire(self, shard: CoordinatorShard, group: ClassicGroup, now: int) -> int:
        """Write tombstones for the group's expired offsets (and for the group itself once it
        is Empty with no offset left); returns how many offsets expired."""
        consumer_group = shard.consumer_groups.get(group.group_id)
        if consumer_group is not None and consumer_group.members:
            return 0  # a consumer group's offsets expire once it is empty, as a classic group's
        expired = self._expired_offsets(group, now)
        if (
            group.state is GroupState.EMPTY
            and not group.members
            and not group.pending_members
            and not group.pending_offset_writes
            and len(expired) == len(group.offsets)
        ):
            log.info("group expired", group=group.group_id, offsets=len(expired))
            extra: list[Record] = []
            if consumer_group is not None:  # an empty consumer group goes with its offsets
                del shard.consumer_groups[group.group_id]
                consumer_group.dead = True
                extra = group_tombstones(consumer_group)
            self.coordinator.remove_group(shard, group, extra)
            return len(expired)
        if not expired:
            return 0
        removed = {tp: group.offsets[tp] for tp in expired}

        def on_done(code: ErrorCode) -> None:
            if code is ErrorCode.none:
                for tp, value in removed.items():
                    if group.offsets.get(tp) is value:  # not committed again meanwhile
                        del group.offsets[tp]

        shard.write([(OffsetKey(group.group_id, t, p), None) for t, p in expired], on_done)
        log.info("offsets expired", group=group.group_id, offsets=len(expired))
        return len(expired)

    def _expired_offsets(self, group: ClassicGroup, now: int) -> list[TopicPartition]:
        retention = self.config.offsets_retention_ms
        skip_topics: set[str] = set()
        if group.protocol_type is None:
            use_state_time = False  # a group that only commits: each offset ages on its own
        elif group.state is GroupState.EMPTY:
            use_state_time = True  # retention counts from when the last member left
        elif group.protocol_type == CONSUMER_PROTOCOL_TYPE and group.state is GroupState.STABLE:
            subscribed = group.subscribed_topics()
            if subscribed is None:
                return []
            skip_topics = subscribed  # offsets of topics nobody consumes any more still age
            use_state_time = False
        else:
            return []
        expired = []
        for tp, value in group.offsets.items():
            if tp[0] in skip_topics or group.pending_offset_writes[tp] > 0:
                continue
            if value.expire_timestamp >= 0:
                if now >= value.expire_timestamp:
                    expired.append(tp)
                continue
            base = value.commit_timestamp
            if use_state_time and group.state_timestamp >= 0:
                base = group.state_timestamp
            if now - base >= retention:
                expired.append(tp)
        return expired


def offsets_holder(shard: CoordinatorShard, group_id: str, now: int) -> ClassicGroup:
    """The classic group that holds a consumer group's offsets: an Empty one of its id, made
    on first need."""
    group = shard.groups.get(group_id)
    if group is None or group.state is GroupState.DEAD:
        group = ClassicGroup(group_id, state_timestamp=now)
        shard.groups[group_id] = group
    return group


def validate_consumer_commit(
    group: ConsumerGroup,
    member_epoch: int,
    member_id: str,
    api_version: int,
    *,
    transactional: bool = False,
    instance_id: str | None = None,
) -> ConsumerMember | None:
    """(Txn)OffsetCommit's checks against a consumer group (raises CoordinatorError), as Kafka
    4.3's ConsumerGroup.validateOffsetCommit: a member commits at its epoch (a classic member of
    the group, at its epoch as generation); without one only while the group is empty, or in a
    transaction that names no member. Returns the member when the commit's epoch lags behind
    its own (KIP-1251): then each partition goes through `check_assignment_epoch`."""
    if member_epoch < 0 and not group.members:
        return None  # an admin tool, or a consumer assigning partitions itself
    if transactional and member_epoch == -1 and not member_id and instance_id is None:
        return None  # a producer that sent offsets without the consumer's group metadata
    member = group.members.get(member_id)
    if member is None:
        raise CoordinatorError(ErrorCode.unknown_member_id)
    if not transactional and member.classic is None and api_version < 9:
        # Older requests carry a classic generation, which means nothing to this member.
        raise CoordinatorError(ErrorCode.unsupported_version)
    if member_epoch == member.member_epoch:
        return None
    if member_epoch > member.member_epoch:
        raise CoordinatorError(_epoch_error(member))
    # The member moved on (a heartbeat answer crossed this commit): the partitions it still
    # holds since the commit's epoch or earlier are its to commit.
    return member


class _Topic(Protocol):
    topic_id: uuid.UUID


def check_assignment_epoch(
    member: ConsumerMember, member_epoch: int, topic: _Topic | None, partition: int
) -> None:
    """A lagging commit (see `validate_consumer_commit`) of one partition of `topic` (None: no
    such topic): refused, for the whole request as in Kafka, unless the member has held it since
    `member_epoch` or earlier."""
    held_from = None if topic is None else member.assignment_epoch(topic.topic_id, partition)
    if held_from is None or member_epoch < held_from:
        raise CoordinatorError(_epoch_error(member))


def _validate_member_epoch(member: ConsumerMember, member_epoch: int) -> None:
    if member_epoch != member.member_epoch:
        raise CoordinatorError(_epoch_error(member))


def _epoch_error(member: ConsumerMember) -> ErrorCode:
    if member.classic is not None:
        return ErrorCode.illegal_generation
    return ErrorCode.stale_member_epoch
