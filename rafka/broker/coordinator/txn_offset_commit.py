"""TxnOffsetCommit: a transactional producer commits a consumer group's offsets inside its
transaction (the consume-transform-produce loop).

The group's `__consumer_offsets` partition must be part of the transaction (AddOffsetsToTxn
before; with TxnOffsetCommit v5, transaction version 2, the commit adds it itself), the producer
epoch must be the current one, and group members are fenced by generation (KIP-447), or by
member epoch in a consumer group (KIP-848, with KIP-1251's lagging epochs). The offsets
are written as the producer's transactional batch and stay pending until the marker.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from rafka.broker.coordinator.groups.consumer_group import ConsumerMember
from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.coordinator.groups.coordinator import GroupCoordinator
from rafka.broker.coordinator.groups.group import ClassicGroup, CommittedOffset, GroupState
from rafka.broker.coordinator.groups.offset_store import (
    OffsetCommit,
    check_assignment_epoch,
    offsets_holder,
    validate_consumer_commit,
)
from rafka.broker.coordinator.groups.records import OffsetKey
from rafka.broker.coordinator.groups.shard import CoordinatorShard
from rafka.broker.coordinator.internal_topic import coordinator_error_for_write
from rafka.broker.coordinator.txn.coordinator import TransactionCoordinator
from rafka.broker.node import CoordinatorNode
from rafka.protocol.errors import ErrorCode

# TxnOffsetCommit v5 belongs to clients of transaction version 2 (KIP-890).
FIRST_TV2_VERSION = 5


class TxnOffsetNode(CoordinatorNode, Protocol):
    """TxnOffsetCommit joins the two coordinators, so it lives above both."""

    groups: GroupCoordinator
    txn: TransactionCoordinator


async def txn_offset_commit(
    broker: TxnOffsetNode,
    *,
    transactional_id: str,
    group_id: str,
    producer_id: int,
    producer_epoch: int,
    generation: int,
    member_id: str,
    group_instance_id: str | None,
    commits: list[OffsetCommit],
    api_version: int,
) -> list[ErrorCode]:
    """The outcome per entry of `commits`; CoordinatorError for request-wide errors."""
    groups = broker.groups
    if not group_id:
        raise CoordinatorError(ErrorCode.invalid_group_id)
    shard = groups.shard_for(group_id)
    offsets_partition = broker.txn.offsets_partition_for(group_id)
    if api_version >= FIRST_TV2_VERSION:
        code, _ = await broker.txn.add_implicitly(
            transactional_id, producer_id, producer_epoch, offsets_partition
        )
        if code is ErrorCode.invalid_producer_id_mapping:
            code = ErrorCode.invalid_txn_state
        if code is ErrorCode.invalid_producer_epoch:
            code = ErrorCode.producer_fenced
    else:
        # Transactions v1: a verification that finds another epoch answers
        # INVALID_PRODUCER_EPOCH, newer or older, as Kafka 4.3.1 does.
        topic, partition = offsets_partition
        code, _ = broker.txn.verify(transactional_id, producer_id, producer_epoch, topic, partition)
        if code is ErrorCode.producer_fenced:
            code = ErrorCode.invalid_producer_epoch
    if code is not ErrorCode.none:
        raise CoordinatorError(_for_version(code, api_version))

    now = groups.wall_clock()
    consumer_group = shard.consumer_groups.get(group_id)
    lagging: ConsumerMember | None = None
    if consumer_group is not None:  # a member of the consumer protocol, fenced by its epoch
        lagging = validate_consumer_commit(
            consumer_group,
            generation,
            member_id,
            api_version,
            transactional=True,
            instance_id=group_instance_id,
        )
        offsets_holder(shard, group_id, now)
    else:
        _validate_classic_member(shard, group_id, generation, member_id, group_instance_id, now)

    results: list[ErrorCode] = []
    accepted: dict[OffsetKey, CommittedOffset] = {}
    for commit in commits:
        code = _check_partition(broker, commit)
        results.append(code)
        if code is ErrorCode.none:
            if lagging is not None:
                check_assignment_epoch(
                    lagging, generation, broker.topic(commit.topic), commit.partition
                )
            accepted[OffsetKey(group_id, commit.topic, commit.partition)] = CommittedOffset(
                commit.offset, commit.leader_epoch, commit.metadata or "", now
            )
    if not accepted:
        return results
    values = [(key, value.to_value()) for key, value in accepted.items()]

    def on_done(outcome: ErrorCode) -> None:
        if outcome is ErrorCode.none:
            shard.pending_txn_offsets.add(producer_id, values)

    future = shard.write(values, on_done, producer=(producer_id, producer_epoch))
    timeout = groups.config.offsets_commit_timeout_ms / 1000
    try:
        async with asyncio.timeout(timeout):
            outcome = await asyncio.shield(future)
    except TimeoutError:
        outcome = ErrorCode.request_timed_out
    if outcome is ErrorCode.invalid_producer_epoch:
        outcome = _for_version(ErrorCode.producer_fenced, api_version)
    else:
        outcome = coordinator_error_for_write(outcome, for_offsets=True)
    return [outcome if code is ErrorCode.none else code for code in results]


def _validate_classic_member(
    shard: CoordinatorShard,
    group_id: str,
    generation: int,
    member_id: str,
    instance_id: str | None,
    now: int,
) -> None:
    group = shard.groups.get(group_id)
    if group is None:
        if generation >= 0:
            raise CoordinatorError(ErrorCode.illegal_generation)
        group = ClassicGroup(group_id, state_timestamp=now)
        shard.groups[group_id] = group
    if group.state is GroupState.DEAD:
        raise CoordinatorError(ErrorCode.coordinator_not_available)
    if generation >= 0 or member_id or instance_id is not None:
        code = group.member_error(instance_id, member_id)
        if code is not ErrorCode.none:
            raise CoordinatorError(code)
        if generation != group.generation:
            raise CoordinatorError(ErrorCode.illegal_generation)


def _check_partition(broker: TxnOffsetNode, commit: OffsetCommit) -> ErrorCode:
    topic = broker.topic(commit.topic)
    if topic is None or not 0 <= commit.partition < topic.partition_count:
        return ErrorCode.unknown_topic_or_partition
    if len((commit.metadata or "").encode()) > broker.groups.config.offset_metadata_max_bytes:
        return ErrorCode.offset_metadata_too_large
    return ErrorCode.none


def _for_version(code: ErrorCode, api_version: int) -> ErrorCode:
    # PRODUCER_FENCED exists for TxnOffsetCommit from v3 (KIP-588); older clients know the epoch.
    if code is ErrorCode.producer_fenced and api_version < 3:
        return ErrorCode.invalid_producer_epoch
    return code
