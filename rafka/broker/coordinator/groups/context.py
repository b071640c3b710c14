"""What the group coordinator's parts (the classic rebalance and membership, the offset store)
share with it: its constants, its config, its request-level error, and `GroupContext`, the door
through which they reach the coordinator without importing it (the coordinator builds them and
imports them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from msgspec import Struct

from rafka.broker.coordinator.groups.group import ClassicGroup
from rafka.broker.coordinator.groups.shard import CoordinatorShard, Record
from rafka.broker.coordinator.groups.timers import Timers
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.config import BrokerConfig
    from rafka.broker.node import CoordinatorNode

KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1


class CoordinatorError(Exception):
    """A request-level error: every part of the request gets this code."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


class GroupConfig(Struct, frozen=True):
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
    # The consumer group protocol (KIP-848).
    consumer_session_timeout_ms: int = 45000
    consumer_heartbeat_interval_ms: int = 5000
    consumer_assignors: tuple[str, ...] = ("uniform", "range")
    # group.consumer.migration.policy: bidirectional, upgrade, downgrade or disabled.
    consumer_migration_policy: str = "bidirectional"

    @property
    def online_upgrade(self) -> bool:
        """A non-empty classic group may turn into a consumer group."""
        return self.consumer_migration_policy in ("bidirectional", "upgrade")

    @property
    def online_downgrade(self) -> bool:
        """A consumer group left with classic members only may turn into a classic group."""
        return self.consumer_migration_policy in ("bidirectional", "downgrade")

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
            consumer_session_timeout_ms=config.get_int("group.consumer.session.timeout.ms"),
            consumer_heartbeat_interval_ms=config.get_int("group.consumer.heartbeat.interval.ms"),
            consumer_assignors=tuple(config.get("group.consumer.assignors")),
            consumer_migration_policy=config.get("group.consumer.migration.policy").lower(),
        )


class GroupContext(Protocol):
    """The group coordinator as its rebalance, membership and offset store see it."""

    broker: CoordinatorNode
    config: GroupConfig
    timers: Timers
    wall_clock: Callable[[], int]

    def shard_for(self, key: str) -> CoordinatorShard: ...

    def is_current(self, shard: CoordinatorShard, group: ClassicGroup) -> bool: ...

    def touch_member(self, shard: CoordinatorShard, group: ClassicGroup, member_id: str) -> None:
        """A member's request counts as its heartbeat."""
        ...

    async def await_write(
        self, future: asyncio.Future[ErrorCode], for_offsets: bool
    ) -> ErrorCode: ...

    def remove_group(
        self, shard: CoordinatorShard, group: ClassicGroup, extra: list[Record] | None = None
    ) -> asyncio.Future[ErrorCode]: ...
