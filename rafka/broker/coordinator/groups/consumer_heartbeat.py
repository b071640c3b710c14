"""ConsumerGroupHeartbeat (KIP-848): joining, heartbeats, leaving and session expiry of the
consumer group protocol's members; the group epoch and the target assignment.

Every heartbeat is handled to the end without awaiting: the group is updated in memory, the
records saying what changed are appended as one batch, and the response waits until that batch
is committed. A write that fails means this broker lost the partition's leadership, and the
next leader replays the log instead of this memory.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import structlog
from msgspec.structs import replace

from rafka.broker.coordinator.groups.consumer_assignors import (
    ASSIGNORS,
    Assignment,
    MemberSubscription,
    PartitionRacks,
    assign,
)
from rafka.broker.coordinator.groups.consumer_group import (
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
    compile_regex,
    member_topics,
    reconcile,
    same_partitions,
)
from rafka.broker.coordinator.groups.consumer_records import (
    CURRENT_ASSIGNMENT,
    GROUP_METADATA,
    MEMBER_METADATA,
    PARTITION_METADATA,
    TARGET_MEMBER,
    TARGET_METADATA,
    ConsumerKey,
    CurrentAssignmentValue,
    GroupEpochValue,
    MemberMetadataValue,
    PartitionMetadataValue,
    TargetEpochValue,
    TargetMemberValue,
)
from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.coordinator.groups.shard import CoordinatorShard, Record
from rafka.broker.coordinator.internal_topic import ShardState
from rafka.broker.group_configs import CONSUMER_HEARTBEAT_INTERVAL, CONSUMER_SESSION_TIMEOUT
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.coordinator.groups.context import GroupContext
    from rafka.broker.coordinator.groups.group import ClassicGroup

log = structlog.get_logger(__name__)


class ClassicConversion(Protocol):
    """The online upgrade and downgrade between classic and consumer groups
    (consumer_classic.ClassicMembers; a protocol here so that this module need not import it)."""

    def upgrade(
        self, shard: CoordinatorShard, classic: ClassicGroup, records: list[Record]
    ) -> ConsumerGroup | None: ...

    def maybe_downgrade(
        self, shard: CoordinatorShard, group: ConsumerGroup, records: list[Record]
    ) -> bool: ...


_SESSION = "consumer-session"
_REVOCATION = "consumer-revocation"


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None
    rack_id: str | None
    rebalance_timeout_ms: int
    subscribed_topic_names: tuple[str, ...] | None
    subscribed_topic_regex: str | None
    server_assignor: str | None
    owned: Assignment | None
    client_id: str
    client_host: str
    api_version: int


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    error: ErrorCode
    member_id: str | None
    member_epoch: int
    heartbeat_interval_ms: int
    assignment: Assignment | None = None
    message: str | None = None


class ConsumerGroupHeartbeats:
    def __init__(self, coordinator: GroupContext) -> None:
        self.coordinator = coordinator
        self.config = coordinator.config
        # Classic members in consumer groups and the conversions (set by the coordinator).
        self.classic_members: ClassicConversion | None = None

    # -- the request ----------------------------------------------------------------------------

    async def heartbeat(self, req: HeartbeatRequest) -> HeartbeatResult:
        try:
            result, write = self._handle(req)
        except CoordinatorError as exc:
            return self._error(exc.code, exc.message)
        if write is not None:
            code = await self.coordinator.await_write(write, for_offsets=False)
            if code is not ErrorCode.none:
                return self._error(code)
        return result

    @staticmethod
    def _error(code: ErrorCode, message: str | None = None) -> HeartbeatResult:
        """Kafka's error response: no member id, epoch 0, no assignment."""
        return HeartbeatResult(code, None, 0, 0, message=message)

    def _handle(
        self, req: HeartbeatRequest
    ) -> tuple[HeartbeatResult, asyncio.Future[ErrorCode] | None]:
        self._validate(req)
        shard = self.coordinator.shard_for(req.group_id)
        classic = shard.groups.get(req.group_id)
        if classic is not None and classic.members:
            # KIP-848's online upgrade: a member joining a classic group of consumers turns it
            # into a consumer group, whose classic members stay on their protocol.
            upgraded: list[Record] = []
            converted = None
            if req.member_epoch == 0 and self.classic_members is not None:
                converted = self.classic_members.upgrade(shard, classic, upgraded)
            if converted is None:
                raise CoordinatorError(
                    ErrorCode.group_id_not_found, f"Group {req.group_id} is not a consumer group."
                )
            try:
                return self._heartbeat(shard, converted, req, upgraded)
            except CoordinatorError:
                shard.write(upgraded, lambda _code: None)  # converted all the same
                raise
        group = shard.consumer_groups.get(req.group_id)
        if group is None:
            if req.member_epoch != 0:
                raise CoordinatorError(
                    ErrorCode.group_id_not_found, f"Group {req.group_id} not found."
                )
            group = shard.consumer_groups[req.group_id] = ConsumerGroup(req.group_id)
            try:
                return self._heartbeat(shard, group, req)
            except CoordinatorError:
                if not group.members:  # a first join that failed leaves no group behind
                    del shard.consumer_groups[req.group_id]
                raise
        return self._heartbeat(shard, group, req)

    def _heartbeat(
        self,
        shard: CoordinatorShard,
        group: ConsumerGroup,
        req: HeartbeatRequest,
        records: list[Record] | None = None,
    ) -> tuple[HeartbeatResult, asyncio.Future[ErrorCode] | None]:
        records = [] if records is None else records
        if req.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            if req.instance_id is None:
                member = group.members.get(req.member_id)
                if member is None:
                    raise CoordinatorError(ErrorCode.unknown_member_id)
            else:  # as Kafka: the instance's holder, which must be this member
                holder = group.static_members.get(req.instance_id)
                member = group.members.get(holder) if holder is not None else None
                if member is None:
                    raise CoordinatorError(
                        ErrorCode.unknown_member_id, f"Instance id {req.instance_id} is unknown."
                    )
                if member.member_id != req.member_id:
                    raise CoordinatorError(
                        ErrorCode.fenced_instance_id,
                        f"Static member {req.instance_id} is held by another member id.",
                    )
            if req.member_epoch == STATIC_LEAVE_EPOCH:
                # Gone for a restart: its partitions stay its own for the session timeout, so
                # coming back under its instance id needs no rebalance.
                member.previous_member_epoch = member.member_epoch
                member.member_epoch = STATIC_LEAVE_EPOCH
                records.append(current_assignment_record(group, member))
            else:
                self.remove_member(shard, group, member, records)
                self.after_removal(shard, group, records)
            write = shard.write(records, lambda _code: None)
            return HeartbeatResult(ErrorCode.none, req.member_id, req.member_epoch, 0), write
        # A member rejoining (epoch 0 under its id) starts over at the target assignment of
        # the group epoch: as in Kafka, only a changed subscription bumps that epoch.
        rejoined = req.member_epoch == 0 and req.member_id in group.members
        member, is_new = self._member(shard, group, req, records)
        replaced = is_new and member.member_epoch != 0  # a static member took its place back
        details_changed, subscription_changed = self._update_member(member, req)
        if details_changed or is_new:
            records.append(member_metadata_record(group, member))
        topics_changed = self.refresh_topics(group)  # refreshed on every heartbeat
        if subscription_changed or topics_changed or (is_new and not replaced and not rejoined):
            self.bump_epoch(group, records)
        self.update_target(group, records)
        assignment_changed = reconcile(group, member, req.owned)
        if assignment_changed or is_new:
            records.append(current_assignment_record(group, member))
        self.schedule_timers(shard, group, member)
        send_assignment = (
            req.member_epoch == 0
            or assignment_changed
            or (req.owned is not None and not same_partitions(req.owned, member.assigned))
        )
        result = HeartbeatResult(
            ErrorCode.none,
            member.member_id,
            member.member_epoch,
            self._group_ms(
                group.group_id,
                CONSUMER_HEARTBEAT_INTERVAL,
                self.config.consumer_heartbeat_interval_ms,
            ),
            dict(member.assigned) if send_assignment else None,
        )
        write = shard.write(records, lambda _code: None) if records else None
        return result, write

    def _validate(self, req: HeartbeatRequest) -> None:
        # In Kafka 4.3's order (GroupCoordinatorService): the codes are what a client sees.
        epoch = req.member_epoch
        if (req.api_version >= 1 or epoch > 0 or epoch == LEAVE_EPOCH) and not req.member_id:
            raise CoordinatorError(ErrorCode.invalid_request, "MemberId can't be empty.")
        if not req.group_id:
            raise CoordinatorError(ErrorCode.invalid_request, "GroupId can't be empty.")
        if req.instance_id == "":
            raise CoordinatorError(ErrorCode.invalid_request, "InstanceId can't be empty.")
        if req.rack_id == "":
            raise CoordinatorError(ErrorCode.invalid_request, "RackId can't be empty.")
        if epoch == STATIC_LEAVE_EPOCH and req.instance_id is None:
            raise CoordinatorError(ErrorCode.invalid_request, "InstanceId can't be null.")
        if req.member_epoch == 0:
            if req.rebalance_timeout_ms == -1:  # only -1 means "not given" (Kafka's sentinel)
                raise CoordinatorError(
                    ErrorCode.invalid_request,
                    "RebalanceTimeoutMs must be provided in first request.",
                )
            if req.owned is None or req.owned:  # null is refused too, as Kafka does
                raise CoordinatorError(
                    ErrorCode.invalid_request, "TopicPartitions must be empty when (re-)joining."
                )
            if req.subscribed_topic_names is None and not req.subscribed_topic_regex:
                raise CoordinatorError(
                    ErrorCode.invalid_request,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                )
        elif req.member_epoch < STATIC_LEAVE_EPOCH:
            raise CoordinatorError(ErrorCode.invalid_request, "MemberEpoch is invalid.")
        if req.subscribed_topic_regex:
            try:
                compile_regex(req.subscribed_topic_regex)
            except re.error as exc:
                raise CoordinatorError(
                    ErrorCode.invalid_regular_expression,
                    f"SubscribedTopicRegex {req.subscribed_topic_regex} is invalid: {exc}",
                ) from None
        assignors = [a for a in self.config.consumer_assignors if a in ASSIGNORS]
        if req.server_assignor is not None and req.server_assignor not in assignors:
            raise CoordinatorError(
                ErrorCode.unsupported_assignor,
                f"ServerAssignor {req.server_assignor} is not supported. "
                f"Supported assignors: {', '.join(assignors)}.",
            )

    # -- membership -----------------------------------------------------------------------------

    def _member(
        self,
        shard: CoordinatorShard,
        group: ConsumerGroup,
        req: HeartbeatRequest,
        records: list[Record],
    ) -> tuple[ConsumerMember, bool]:
        member = group.members.get(req.member_id) if req.member_id else None
        if req.member_epoch == 0:
            if req.instance_id is not None:
                holder_id = group.static_members.get(req.instance_id)
                holder = group.members.get(holder_id) if holder_id else None
                if holder is not None and holder.member_id != req.member_id:
                    if holder.member_epoch != STATIC_LEAVE_EPOCH:
                        raise CoordinatorError(
                            ErrorCode.unreleased_instance_id,
                            f"Static member {req.instance_id} has not left yet.",
                        )
                    return self._replace_static_member(group, holder, req, records), True
            if member is not None:
                # A rejoin: the member lost its partitions, it starts over (on this protocol,
                # if it was a classic member before).
                member.classic = None
                member.assigned, member.pending_revocation = {}, {}
                member.assignment_epochs = {}
                member.member_epoch, member.previous_member_epoch = 0, -1
                member.state = MemberState.STABLE
                return member, True
            member_id = req.member_id or str(uuid.uuid4())  # v0: the coordinator names it
            member = ConsumerMember(member_id, instance_id=req.instance_id)
            group.add(member)
            return member, True
        if member is None or member.classic is not None:
            raise CoordinatorError(
                ErrorCode.unknown_member_id,
                f"Member {req.member_id} is not a member."
                if member is None
                else f"Member {req.member_id} does not use the consumer protocol.",
            )
        if req.member_epoch != member.member_epoch:
            # A member that missed the response to its last heartbeat may say the epoch before,
            # but only while still holding what it had then.
            missed_response = (
                req.member_epoch < member.member_epoch
                and req.member_epoch == member.previous_member_epoch
                and req.owned is not None
                and same_partitions(req.owned, member.assigned)
            )
            if not missed_response:
                raise CoordinatorError(
                    ErrorCode.fenced_member_epoch,
                    f"The consumer group member has a smaller member epoch "
                    f"({req.member_epoch}) than the one known by the group coordinator "
                    f"({member.member_epoch}). The member must abandon all its partitions "
                    f"and rejoin."
                    if req.member_epoch < member.member_epoch
                    else "The consumer group member has a greater member epoch than the "
                    "one known by the group coordinator.",
                )
        return member, False

    def _replace_static_member(
        self,
        group: ConsumerGroup,
        old: ConsumerMember,
        req: HeartbeatRequest,
        records: list[Record],
    ) -> ConsumerMember:
        """The instance's new member id takes over the old one's partitions and epoch."""
        target = group.target.get(old.member_id, {})
        group.remove(old.member_id)
        for kind in (CURRENT_ASSIGNMENT, TARGET_MEMBER, MEMBER_METADATA):
            records.append((ConsumerKey(kind, group.group_id, old.member_id), None))
        self.coordinator.timers.cancel((_SESSION, group.group_id, old.member_id))
        self.coordinator.timers.cancel((_REVOCATION, group.group_id, old.member_id))
        member = replace(
            old,
            member_id=req.member_id or str(uuid.uuid4()),
            member_epoch=old.previous_member_epoch,
            previous_member_epoch=-1,
        )
        group.add(member)
        group.target[member.member_id] = target
        key = ConsumerKey(TARGET_MEMBER, group.group_id, member.member_id)
        records.append((key, TargetMemberValue(target)))
        log.info(
            "static member replaced",
            group=group.group_id,
            instance=member.instance_id,
            old=old.member_id,
            new=member.member_id,
        )
        return member

    @staticmethod
    def _update_member(member: ConsumerMember, req: HeartbeatRequest) -> tuple[bool, bool]:
        """Apply what the heartbeat changed: (anything changed, the subscription changed)."""
        subscription = (member.subscribed_topic_names, member.subscribed_topic_regex)
        before = (
            member.instance_id, member.rack_id, member.client_id, member.client_host,
            member.subscribed_topic_names, member.rebalance_timeout_ms, member.server_assignor,
        )  # fmt: skip
        if req.instance_id is not None:
            member.instance_id = req.instance_id
        if req.rack_id is not None:
            member.rack_id = req.rack_id
        if req.rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = req.rebalance_timeout_ms
        if req.subscribed_topic_names is not None:
            member.subscribed_topic_names = tuple(sorted(set(req.subscribed_topic_names)))
        if req.subscribed_topic_regex is not None:
            member.subscribed_topic_regex = req.subscribed_topic_regex or None  # "": cleared
        if req.server_assignor is not None:
            member.server_assignor = req.server_assignor
        member.client_id, member.client_host = req.client_id, req.client_host
        after = (
            member.instance_id, member.rack_id, member.client_id, member.client_host,
            member.subscribed_topic_names, member.rebalance_timeout_ms, member.server_assignor,
        )  # fmt: skip
        now_subscribed = (member.subscribed_topic_names, member.subscribed_topic_regex)
        return after != before, now_subscribed != subscription

    def remove_member(
        self,
        shard: CoordinatorShard,
        group: ConsumerGroup,
        member: ConsumerMember,
        records: list[Record],
        bump: bool = True,
    ) -> None:
        group.remove(member.member_id)
        for kind in (CURRENT_ASSIGNMENT, TARGET_MEMBER, MEMBER_METADATA):
            records.append((ConsumerKey(kind, group.group_id, member.member_id), None))
        self.cancel_timers(group, member.member_id)
        if bump:
            self.refresh_topics(group)
            self.bump_epoch(group, records)

    def cancel_timers(self, group: ConsumerGroup, member_id: str) -> None:
        self.coordinator.timers.cancel((_SESSION, group.group_id, member_id))
        self.coordinator.timers.cancel((_REVOCATION, group.group_id, member_id))

    def after_removal(
        self, shard: CoordinatorShard, group: ConsumerGroup, records: list[Record]
    ) -> None:
        """Members left: with only classic members remaining, the group turns classic again."""
        if self.classic_members is not None:
            self.classic_members.maybe_downgrade(shard, group, records)

    # -- epochs and the target assignment -------------------------------------------------------

    def refresh_topics(self, group: ConsumerGroup) -> bool:
        """Refresh the subscribed topics' metadata; whether it changed since the group epoch."""
        topics: dict[uuid.UUID, tuple[str, int]] = {}
        metadata = self.coordinator.broker.metadata
        regex = any(m.subscribed_topic_regex for m in group.members.values())
        everything = list(metadata.image.topics) if regex and metadata is not None else []
        for name in sorted(group.subscribed_names(everything)):
            image = self.coordinator.broker.topic(name)
            if image is not None:
                topics[image.topic_id] = (name, image.partition_count)
        if topics == group.topics:
            return False
        group.topics = topics
        return True

    def bump_epoch(self, group: ConsumerGroup, records: list[Record]) -> None:
        """A new group epoch. Its target assignment waits for the next heartbeat or join of a
        member (update_target), as in Kafka: until then a group whose member was fenced or
        left is Assigning, and its members learn of it at that heartbeat either way."""
        group.group_epoch += 1
        records.append(
            (ConsumerKey(GROUP_METADATA, group.group_id), GroupEpochValue(group.group_epoch))
        )
        records.append(
            (
                ConsumerKey(PARTITION_METADATA, group.group_id),
                PartitionMetadataValue(
                    tuple((tid, name, n) for tid, (name, n) in group.topics.items())
                ),
            )
        )

    def update_target(self, group: ConsumerGroup, records: list[Record]) -> None:
        """The target assignment of the group epoch, unless it has one already."""
        if group.assignment_epoch >= group.group_epoch:
            return
        ids_by_name = {name: tid for tid, (name, _) in group.topics.items()}
        subscriptions = {
            m.member_id: MemberSubscription(
                frozenset(
                    ids_by_name[n] for n in member_topics(m, ids_by_name) if n in ids_by_name
                ),
                group.target.get(m.member_id, {}),
                m.rack_id or None,
            )
            for m in group.members.values()
        }
        counts = {tid: n for tid, (_, n) in group.topics.items()}
        racks = self.partition_racks(group) if any(s.rack for s in subscriptions.values()) else None
        target = assign(self.assignor_name(group), subscriptions, counts, racks)
        for member_id, partitions in target.items():
            if not same_partitions(group.target.get(member_id, {}), partitions) or (
                member_id not in group.target
            ):
                records.append(
                    (
                        ConsumerKey(TARGET_MEMBER, group.group_id, member_id),
                        TargetMemberValue(partitions),
                    )
                )
        group.target = target
        group.assignment_epoch = group.group_epoch
        records.append(
            (
                ConsumerKey(TARGET_METADATA, group.group_id),
                TargetEpochValue(group.assignment_epoch),
            )
        )

    def partition_racks(self, group: ConsumerGroup) -> PartitionRacks | None:
        """Per subscribed topic and partition, the racks (`broker.rack`) of the brokers holding
        its replicas, from the metadata image; None if no such broker has a rack. Read when
        the target is computed (the target, not the racks, is what the log keeps)."""
        metadata = self.coordinator.broker.metadata
        if metadata is None:
            return None
        brokers = metadata.image.brokers
        racks: dict[uuid.UUID, tuple[frozenset[str], ...]] = {}
        for topic_id in group.topics:
            image = metadata.image.topics_by_id.get(topic_id)
            if image is None:
                continue
            racks[topic_id] = tuple(
                frozenset(
                    rack
                    for node_id in replicas
                    if (broker := brokers.get(node_id)) is not None and (rack := broker.rack)
                )
                for replicas in image.replicas
            )
        return racks if any(any(per) for per in racks.values()) else None

    def assignor_name(self, group: ConsumerGroup) -> str:
        """The assignor most members ask for, else the first configured (Kafka's choice)."""
        asked = Counter(m.server_assignor for m in group.members.values() if m.server_assignor)
        if asked:
            return max(sorted(asked), key=lambda name: asked[name])
        configured = [a for a in self.config.consumer_assignors if a in ASSIGNORS]
        return configured[0] if configured else ASSIGNORS[0]

    def describe(self, group_id: str) -> ConsumerGroup:
        """The live consumer group (CoordinatorError if not coordinated here or unknown)."""
        shard = self.coordinator.shard_for(group_id)
        group = shard.consumer_groups.get(group_id)
        if group is None:
            message = (
                f"Group {group_id} is not a consumer group."
                if group_id in shard.groups
                else f"Group {group_id} not found."
            )
            raise CoordinatorError(ErrorCode.group_id_not_found, message)
        return group

    def _group_ms(self, group_id: str, name: str, default: int) -> int:
        """A group config of `group_id` (`name`, set with IncrementalAlterConfigs on the GROUP
        resource, checked against the broker's bounds then) over the broker's group.consumer.*
        default: read at each heartbeat, as Kafka's GroupConfigManager is consulted."""
        metadata = self.coordinator.broker.metadata
        if metadata is None:
            return default
        value = metadata.image.group_configs.get(group_id, {}).get(name)
        return default if value is None else int(value.strip())

    # -- timers ---------------------------------------------------------------------------------

    def schedule_timers(
        self, shard: CoordinatorShard, group: ConsumerGroup, member: ConsumerMember
    ) -> None:
        timers = self.coordinator.timers
        key = (group.group_id, member.member_id)
        session_ms = self._group_ms(
            group.group_id, CONSUMER_SESSION_TIMEOUT, self.config.consumer_session_timeout_ms
        )
        if member.classic is not None:
            session_ms = member.classic.session_timeout_ms
        timers.schedule(
            (_SESSION, *key),
            session_ms / 1000,
            lambda: self._expire(shard, group, member.member_id, "session timeout"),
        )
        revoking = (_REVOCATION, *key)
        if member.state is MemberState.UNREVOKED_PARTITIONS:
            if revoking not in timers:
                timers.schedule(
                    revoking,
                    member.rebalance_timeout_ms / 1000,
                    lambda: self._expire(shard, group, member.member_id, "revocation timeout"),
                )
        else:
            timers.cancel(revoking)

    def _expire(
        self, shard: CoordinatorShard, group: ConsumerGroup, member_id: str, why: str
    ) -> None:
        if (
            shard.state is not ShardState.ACTIVE
            or shard.consumer_groups.get(group.group_id) is not group
        ):
            return
        member = group.members.get(member_id)
        if member is None:
            return
        log.info("consumer group member fenced", group=group.group_id, member=member_id, why=why)
        records: list[Record] = []
        self.remove_member(shard, group, member, records)
        self.after_removal(shard, group, records)
        shard.write(records, lambda _code: None)

    # -- loading --------------------------------------------------------------------------------

    def on_loaded(self, shard: CoordinatorShard) -> None:
        """Replayed members get a fresh session: they must heartbeat within it."""
        for group in shard.consumer_groups.values():
            for member in group.members.values():
                self.schedule_timers(shard, group, member)

    def on_unloaded(self, shard: CoordinatorShard) -> None:
        ids = set(shard.consumer_groups)
        self.coordinator.timers.cancel_where(
            lambda key: (
                isinstance(key, tuple)
                and len(key) == 3
                and key[0] in (_SESSION, _REVOCATION)
                and key[1] in ids
            )
        )
        for group in shard.consumer_groups.values():
            group.dead = True
        shard.consumer_groups.clear()


def group_tombstones(group: ConsumerGroup) -> list[Record]:
    """The records that delete an empty consumer group (its offsets are the caller's)."""
    return [
        (ConsumerKey(kind, group.group_id), None)
        for kind in (TARGET_METADATA, PARTITION_METADATA, GROUP_METADATA)
    ]


def member_metadata_record(group: ConsumerGroup, member: ConsumerMember) -> Record:
    return (
        ConsumerKey(MEMBER_METADATA, group.group_id, member.member_id),
        MemberMetadataValue(
            member.instance_id,
            member.rack_id,
            member.client_id,
            member.client_host,
            member.subscribed_topic_names,
            member.subscribed_topic_regex,
            member.rebalance_timeout_ms,
            member.server_assignor,
            member.classic,
        ),
    )


def current_assignment_record(group: ConsumerGroup, member: ConsumerMember) -> Record:
    return (
        ConsumerKey(CURRENT_ASSIGNMENT, group.group_id, member.member_id),
        CurrentAssignmentValue(
            member.member_epoch,
            member.previous_member_epoch,
            int(member.state),
            member.assigned,
            member.pending_revocation,
            member.assignment_epochs,
        ),
    )
