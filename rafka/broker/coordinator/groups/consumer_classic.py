"""Classic-protocol members of a consumer group: KIP-848's online upgrade and downgrade, as
`group.consumer.migration.policy` allows them (Kafka's values: bidirectional, the default, both;
upgrade or downgrade, that one only; disabled, neither). Empty groups convert whatever the policy
(membership.py, consumer_heartbeat.py); classic members may join a consumer group whatever it is.

* Upgrade. A ConsumerGroupHeartbeat that joins a classic group whose members all speak
  the `consumer` protocol type turns it into a consumer group at once: the group epoch and the
  members' epochs are the classic generation, each member's target and current assignment are
  the partitions its last SyncGroup gave it (none if it has not synced yet: a group in the
  middle of a rebalance converts too, its waiting requests answered REBALANCE_IN_PROGRESS), and
  the members stay on the classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
  OffsetCommit with their member epoch as generation). The classic group's metadata is
  tombstoned; its committed offsets stay where they are (the offsets of a consumer group live in
  an Empty classic group of its id). When the policy allows no upgrade, the heartbeat is
  answered GROUP_ID_NOT_FOUND ("Group ... is not a consumer group."), as Kafka answers it.
* A classic member of a consumer group is reconciled like any member, but only when it joins:
  its Heartbeat answers REBALANCE_IN_PROGRESS once the group epoch moved past its own, while it
  has partitions to revoke, or once partitions it waits for are free; its JoinGroup applies the
  revocation (a cooperative client lists the partitions it still owns, an eager one none) and
  moves it on; its SyncGroup hands out its current partitions. The JoinGroup response names no
  leader, so the client assigns nothing itself.
* Downgrade. When the last consumer-protocol member leaves and classic members remain, the
  group turns back into a classic group (its members keep their partitions and rejoin through a
  rebalance); its consumer group records are tombstoned. When the policy allows no downgrade, it
  stays a consumer group of classic members.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from rafka.broker.coordinator.groups.classic_rebalance import answer, join_error, sync_result
from rafka.broker.coordinator.groups.consumer_assignors import Assignment
from rafka.broker.coordinator.groups.consumer_group import (
    PROTOCOL_TYPE,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
    reconcile,
)
from rafka.broker.coordinator.groups.consumer_heartbeat import (
    ConsumerGroupHeartbeats,
    current_assignment_record,
    group_tombstones,
    member_metadata_record,
)
from rafka.broker.coordinator.groups.consumer_records import (
    CURRENT_ASSIGNMENT,
    GROUP_METADATA,
    MEMBER_METADATA,
    PARTITION_METADATA,
    TARGET_MEMBER,
    TARGET_METADATA,
    ClassicMemberMetadata,
    ConsumerKey,
    GroupEpochValue,
    PartitionMetadataValue,
    TargetEpochValue,
    TargetMemberValue,
)
from rafka.broker.coordinator.groups.group import (
    CONSUMER_PROTOCOL_TYPE,
    ClassicGroup,
    GroupState,
    Member,
)
from rafka.broker.coordinator.groups.records import GroupKey
from rafka.broker.coordinator.groups.shard import CoordinatorShard, Record
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.coordinator.groups.classic_rebalance import ClassicRebalance
    from rafka.broker.coordinator.groups.membership import JoinRequest

log = structlog.get_logger(__name__)

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


# -- ConsumerProtocolSubscription / ConsumerProtocolAssignment ------------------------------------


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def i16(self) -> int:
        (value,) = _I16.unpack_from(self.data, self.pos)
        self.pos += 2
        return value

    def i32(self) -> int:
        (value,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        return value

    def string(self) -> str:
        length = self.i16()
        if length < 0 or self.pos + length > len(self.data):
            raise ValueError("bad string")
        value = self.data[self.pos : self.pos + length].decode()
        self.pos += length
        return value

    def skip_bytes(self) -> None:
        length = self.i32()
        if length > 0:
            if self.pos + length > len(self.data):
                raise ValueError("bad bytes")
            self.pos += length

    def count(self) -> int:
        n = self.i32()
        if n > len(self.data) - self.pos:
            raise ValueError("bad array length")
        return max(n, 0)

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.data)


def parse_subscription(metadata: bytes) -> tuple[list[str], dict[str, set[int]]] | None:
    """(topics, owned partitions by topic name) of a ConsumerProtocolSubscription (owned
    partitions from v1 on; none for older ones); None if the bytes are not one."""
    try:
        cursor = _Cursor(metadata)
        version = cursor.i16()
        topics = [cursor.string() for _ in range(cursor.count())]
        cursor.skip_bytes()  # user data
        owned: dict[str, set[int]] = {}
        if version >= 1 and not cursor.at_end:
            for _ in range(cursor.count()):
                topic = cursor.string()
                owned.setdefault(topic, set()).update(cursor.i32() for _ in range(cursor.count()))
        return topics, owned
    except (struct.error, ValueError, UnicodeDecodeError):
        return None


def parse_assignment(data: bytes) -> dict[str, set[int]] | None:
    """Partitions by topic name of a ConsumerProtocolAssignment; None if it is not one."""
    if not data:
        return {}
    try:
        cursor = _Cursor(data)
        cursor.i16()
        assigned: dict[str, set[int]] = {}
        for _ in range(cursor.count()):
            topic = cursor.string()
            assigned.setdefault(topic, set()).update(cursor.i32() for _ in range(cursor.count()))
        return assigned
    except (struct.error, ValueError, UnicodeDecodeError):
        return None


def encode_assignment(partitions: dict[str, list[int]]) -> bytes:
    """A ConsumerProtocolAssignment v0 (every client version reads it), empty user data."""
    out = bytearray(_I16.pack(0))
    out += _I32.pack(len(partitions))
    for topic, indexes in sorted(partitions.items()):
        raw = topic.encode()
        out += _I16.pack(len(raw)) + raw
        out += _I32.pack(len(indexes))
        for index in indexes:
            out += _I32.pack(index)
    out += _I32.pack(0)
    return bytes(out)


# -- the classic members of consumer groups ------------------------------------------------------


class ClassicMembers:
    """JoinGroup, SyncGroup, Heartbeat and LeaveGroup of classic members in consumer groups,
    and the conversions between the two kinds of group."""

    def __init__(self, heartbeats: ConsumerGroupHeartbeats, rebalance: ClassicRebalance) -> None:
        self.heartbeats = heartbeats
        self.rebalance = rebalance
        self.coordinator = heartbeats.coordinator

    # -- names and ids --------------------------------------------------------------------------

    def _ids(self, by_name: dict[str, set[int]]) -> Assignment:
        out: Assignment = {}
        for name, partitions in by_name.items():
            image = self.coordinator.broker.topic(name)
            if image is not None and partitions:
                out[image.topic_id] = frozenset(partitions)
        return out

    def _names(self, group: ConsumerGroup, assignment: Assignment) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for topic_id, partitions in assignment.items():
            known = group.topics.get(topic_id)
            name = known[0] if known is not None else None
            if name is None:
                image = self.coordinator.broker.metadata.image.topics_by_id.get(topic_id)
                name = image.name if image is not None else None
            if name is not None and partitions:
                out[name] = sorted(partitions)
        return out

    # -- upgrade: classic group -> consumer group ------------------------------------------------

    def upgrade(
        self, shard: CoordinatorShard, classic: ClassicGroup, records: list[Record]
    ) -> ConsumerGroup | None:
        """The consumer group a Stable classic group of consumers becomes (its records appended
        to `records`), or None if it cannot be converted now."""
        if classic.protocol_type != CONSUMER_PROTOCOL_TYPE or classic.state is GroupState.DEAD:
            return None
        if not self.coordinator.config.online_upgrade:
            log.info(
                "classic group not upgraded: group.consumer.migration.policy disallows it",
                group=classic.group_id,
                policy=self.coordinator.config.consumer_migration_policy,
            )
            return None
        members: list[ConsumerMember] = []
        targets: dict[str, Assignment] = {}
        for m in classic.members.values():
            subscription = parse_subscription(m.metadata(classic.protocol_name))
            assigned = parse_assignment(m.assignment)
            if subscription is None or assigned is None:
                return None
            member = ConsumerMember(
                m.member_id,
                instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=tuple(sorted(set(subscription[0]))),
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                member_epoch=classic.generation,
                assigned=self._ids(assigned),
                classic=ClassicMemberMetadata(m.session_timeout_ms, tuple(m.protocols)),
            )
            members.append(member)
            targets[member.member_id] = dict(member.assigned)
        group = ConsumerGroup(
            classic.group_id, group_epoch=classic.generation, assignment_epoch=classic.generation
        )
        for member in members:
            group.add(member)
        group.target = targets
        self.heartbeats.refresh_topics(group)
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
        for member in members:
            records.append(member_metadata_record(group, member))
            records.append(
                (
                    ConsumerKey(TARGET_MEMBER, group.group_id, member.member_id),
                    TargetMemberValue(group.target[member.member_id]),
                )
            )
            records.append(current_assignment_record(group, member))
        records.append(
            (
                ConsumerKey(TARGET_METADATA, group.group_id),
                TargetEpochValue(group.assignment_epoch),
            )
        )
        # The classic group is gone; its committed offsets stay, in the (now Empty) group.
        # Requests waiting for a rebalance phase are told to rejoin (now a consumer group).
        for m in classic.members.values():
            answer(m.join_waiter, join_error(ErrorCode.rebalance_in_progress, m.member_id))
            answer(m.sync_waiter, sync_result(ErrorCode.rebalance_in_progress))
            m.join_waiter = m.sync_waiter = None
        self.rebalance.on_unloaded(classic)  # cancels its timers
        classic.members.clear()
        classic.static_members.clear()
        classic.pending_members.clear()
        classic.pending_sync.clear()
        classic.leader_id = None
        classic.protocol_type = classic.protocol_name = None
        classic.state = GroupState.EMPTY
        classic.state_timestamp = self.coordinator.wall_clock()
        classic._protocol_support.clear()
        records.append((GroupKey(classic.group_id), None))
        shard.consumer_groups[group.group_id] = group
        for member in members:
            self.heartbeats.schedule_timers(shard, group, member)
        log.info(
            "classic group upgraded to a consumer group",
            group=group.group_id,
            epoch=group.group_epoch,
            members=len(members),
        )
        return group

    # -- downgrade: consumer group -> classic group ----------------------------------------------

    def maybe_downgrade(
        self, shard: CoordinatorShard, group: ConsumerGroup, records: list[Record]
    ) -> bool:
        """If only classic members are left, turn the group back into a classic group (its
        records appended to `records`); whether it did."""
        if not group.members or any(m.classic is None for m in group.members.values()):
            return False
        if not self.coordinator.config.online_downgrade:
            log.info(
                "consumer group not downgraded: group.consumer.migration.policy disallows it",
                group=group.group_id,
                policy=self.coordinator.config.consumer_migration_policy,
            )
            return False
        protocols = [dict(m.classic.protocols) for m in group.members.values() if m.classic]
        common = set(protocols[0]).intersection(*protocols[1:])
        first = next(iter(group.members.values()))
        assert first.classic is not None
        chosen = next((name for name, _ in first.classic.protocols if name in common), None)
        if chosen is None:
            return False
        offsets_group = shard.groups.get(group.group_id)
        now = self.coordinator.wall_clock()
        classic = ClassicGroup(group.group_id, state_timestamp=now)
        if offsets_group is not None and offsets_group.state is not GroupState.DEAD:
            classic.offsets = offsets_group.offsets
            classic.pending_offset_writes = offsets_group.pending_offset_writes
            offsets_group.state = GroupState.DEAD
        classic.generation = group.group_epoch
        classic.protocol_name = chosen
        for m in group.members.values():
            assert m.classic is not None
            classic.add(
                Member(
                    m.member_id,
                    m.instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.classic.session_timeout_ms,
                    PROTOCOL_TYPE,
                    list(m.classic.protocols),
                    assignment=encode_assignment(self._names(group, m.assigned)),
                )
            )
        classic.state = GroupState.STABLE
        for member_id in list(group.members):
            for kind in (CURRENT_ASSIGNMENT, TARGET_MEMBER, MEMBER_METADATA):
                records.append((ConsumerKey(kind, group.group_id, member_id), None))
            self.heartbeats.cancel_timers(group, member_id)
        records += group_tombstones(group)
        records.append((GroupKey(classic.group_id), classic.to_value()))
        del shard.consumer_groups[group.group_id]
        group.dead = True
        shard.groups[classic.group_id] = classic
        for member in classic.members.values():
            self.rebalance.schedule_heartbeat(shard, classic, member)
        # The members rejoin (their heartbeats answer REBALANCE_IN_PROGRESS).
        self.rebalance.prepare_rebalance(shard, classic, "downgraded from a consumer group")
        log.info("consumer group downgraded to a classic group", group=group.group_id)
        return True

    # -- JoinGroup -------------------------------------------------------------------------------

    async def join(
        self, shard: CoordinatorShard, group: ConsumerGroup, req: JoinRequest
    ) -> dict[str, Any]:
        result, write = self._join(shard, group, req)
        if write is not None:
            code = await self.coordinator.await_write(write, for_offsets=False)
            if code is not ErrorCode.none:
                return join_error(code, req.member_id)
        return result

    def _join(
        self, shard: CoordinatorShard, group: ConsumerGroup, req: JoinRequest
    ) -> tuple[dict[str, Any], asyncio.Future[ErrorCode] | None]:
        if req.protocol_type != PROTOCOL_TYPE or not req.protocols:
            return join_error(ErrorCode.inconsistent_group_protocol, req.member_id), None
        subscription = parse_subscription(req.protocols[0][1])
        if subscription is None:
            return join_error(ErrorCode.inconsistent_group_protocol, req.member_id), None
        topics, owned_names = subscription
        member = group.members.get(req.member_id) if req.member_id else None
        if req.member_id and (member is None or member.classic is None):
            return join_error(ErrorCode.unknown_member_id, req.member_id), None
        if member is None and req.group_instance_id is not None:
            holder_id = group.static_members.get(req.group_instance_id)
            if holder_id is not None:
                # Replacing a static member in a mixed group is not served: it must leave first.
                return join_error(ErrorCode.unreleased_instance_id, req.member_id), None
        records: list[Record] = []
        is_new = member is None
        if member is None:
            member = ConsumerMember(
                f"{req.group_instance_id or req.client_id}-{uuid.uuid4()}",
                instance_id=req.group_instance_id,
            )
            group.add(member)
        before = (member.subscribed_topic_names, member.classic, member.client_id)
        subscription_before = member.subscribed_topic_names
        member.subscribed_topic_names = tuple(sorted(set(topics)))
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.client_id, member.client_host = req.client_id, req.client_host
        member.classic = ClassicMemberMetadata(req.session_timeout_ms, tuple(req.protocols))
        if is_new or before != (member.subscribed_topic_names, member.classic, member.client_id):
            records.append(member_metadata_record(group, member))
        topics_changed = self.heartbeats.refresh_topics(group)
        if is_new or topics_changed or subscription_before != member.subscribed_topic_names:
            self.heartbeats.bump_epoch(group, records)
        self.heartbeats.update_target(group, records)
        owned = self._ids(owned_names)
        if is_new:
            owned = {}
        if reconcile(group, member, owned) or is_new:
            records.append(current_assignment_record(group, member))
        self.heartbeats.schedule_timers(shard, group, member)
        result = {
            "error_code": ErrorCode.none,
            "generation_id": member.member_epoch,
            "protocol_type": PROTOCOL_TYPE,
            "protocol_name": req.protocols[0][0],
            "leader": "",  # no client-side assignment: the coordinator assigns
            "skip_assignment": False,
            "member_id": member.member_id,
            "members": [],
        }
        write = shard.write(records, lambda _code: None) if records else None
        return result, write

    # -- SyncGroup -------------------------------------------------------------------------------

    def sync(
        self,
        group: ConsumerGroup,
        generation: int,
        member_id: str,
        protocol_type: str | None,
        protocol_name: str | None,
    ) -> dict[str, Any]:
        member = group.members.get(member_id)
        if member is None or member.classic is None:
            return sync_result(ErrorCode.unknown_member_id)
        if generation != member.member_epoch:
            return sync_result(ErrorCode.illegal_generation)
        names = [name for name, _ in member.classic.protocols]
        if (protocol_type is not None and protocol_type != PROTOCOL_TYPE) or (
            protocol_name is not None and protocol_name not in names
        ):
            return sync_result(ErrorCode.inconsistent_group_protocol)
        assignment = encode_assignment(self._names(group, member.assigned))
        return sync_result(ErrorCode.none, assignment, PROTOCOL_TYPE, protocol_name or names[0])

    # -- Heartbeat -------------------------------------------------------------------------------

    def heartbeat(
        self, shard: CoordinatorShard, group: ConsumerGroup, generation: int, member_id: str
    ) -> ErrorCode:
        member = group.members.get(member_id)
        if member is None or member.classic is None:
            return ErrorCode.unknown_member_id
        if generation != member.member_epoch:
            return ErrorCode.illegal_generation
        self.heartbeats.schedule_timers(shard, group, member)
        if (
            member.member_epoch < group.group_epoch
            or member.state is MemberState.UNREVOKED_PARTITIONS
            or (member.state is MemberState.UNRELEASED_PARTITIONS and self._freed(group, member))
        ):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    @staticmethod
    def _freed(group: ConsumerGroup, member: ConsumerMember) -> bool:
        """Some partition of its target it does not have yet is no longer owned by another."""
        target = group.target.get(member.member_id, {})
        for topic_id, partitions in target.items():
            for partition in partitions - member.assigned.get(topic_id, frozenset()):
                if not group.owned_elsewhere(member.member_id, topic_id, partition):
                    return True
        return False

    # -- LeaveGroup ------------------------------------------------------------------------------

    def leave(
        self,
        shard: CoordinatorShard,
        group: ConsumerGroup,
        members: list[tuple[str, str | None]],
    ) -> list[ErrorCode]:
        results: list[ErrorCode] = []
        records: list[Record] = []
        for member_id, instance_id in members:
            if not member_id and instance_id is not None:
                member_id = group.static_members.get(instance_id, "")
            member = group.members.get(member_id) if member_id else None
            if member is None:
                results.append(ErrorCode.unknown_member_id)
                continue
            if instance_id is not None and member.instance_id not in (None, instance_id):
                results.append(ErrorCode.fenced_instance_id)
                continue
            self.heartbeats.remove_member(shard, group, member, records)
            results.append(ErrorCode.none)
        if records:
            self.heartbeats.after_removal(shard, group, records)
            shard.write(records, lambda _code: None)
        return results
