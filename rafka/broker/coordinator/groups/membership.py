"""The classic group protocol's requests: JoinGroup, SyncGroup, Heartbeat and LeaveGroup.

Each request is checked against its group here; the rebalance it starts or waits for is
classic_rebalance.py's, which answers the requests waiting for a phase to end.

Kafka's rules, as its group coordinator applies them:
* A JoinGroup without a member id gets one. From v4 on it is only handed out (MEMBER_ID_REQUIRED)
  and the member must join again with it; until then it is a pending member, which holds the
  rebalance back until it joins or its session timeout passes.
* New members, which cannot heartbeat yet, get five minutes to join.
* Static members (group.instance.id) keep their place: a JoinGroup without member id for a
  known instance replaces the old member id (whose requests now get FENCED_INSTANCE_ID), and in a
  Stable group with an unchanged protocol this happens without a rebalance.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from msgspec import Struct

from rafka.broker.coordinator.groups.classic_rebalance import (
    ClassicRebalance,
    answer,
    join_error,
    sync_result,
)
from rafka.broker.coordinator.groups.consumer_heartbeat import group_tombstones
from rafka.broker.coordinator.groups.group import ClassicGroup, GroupState, Member
from rafka.broker.coordinator.groups.records import GroupKey
from rafka.broker.coordinator.groups.shard import CoordinatorShard
from rafka.broker.coordinator.internal_topic import coordinator_error_for_write
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.coordinator.groups.consumer_group import ConsumerGroup
    from rafka.broker.coordinator.groups.context import GroupContext

log = structlog.get_logger(__name__)

NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000


class JoinRequest(Struct, frozen=True):
    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    require_known_member_id: bool  # JoinGroup v4+
    supports_skip_assignment: bool  # JoinGroup v9+
    reason: str | None = None



class MixedGroups(Protocol):
    """Classic members of consumer groups (consumer_classic.ClassicMembers; a protocol here so
    that this module need not import it)."""

    async def join(
        self, shard: CoordinatorShard, group: ConsumerGroup, req: JoinRequest
    ) -> dict[str, Any]: ...

    def sync(
        self,
        group: ConsumerGroup,
        generation: int,
        member_id: str,
        protocol_type: str | None,
        protocol_name: str | None,
    ) -> dict[str, Any]: ...

    def heartbeat(
        self, shard: CoordinatorShard, group: ConsumerGroup, generation: int, member_id: str
    ) -> ErrorCode: ...

    def leave(
        self,
        shard: CoordinatorShard,
        group: ConsumerGroup,
        members: list[tuple[str, str | None]],
    ) -> list[ErrorCode]: ...

class Membership:
    def __init__(self, coordinator: GroupContext, rebalance: ClassicRebalance) -> None:
        self.coordinator = coordinator
        self.rebalance = rebalance
        self.config = coordinator.config
        # Classic members of consumer groups (KIP-848's online upgrade), set by the coordinator.
        self.mixed: MixedGroups | None = None

    # -- JoinGroup ------------------------------------------------------------------------------

    async def join_group(self, req: JoinRequest) -> dict[str, Any]:
        if not req.group_id:
            return join_error(ErrorCode.invalid_group_id, req.member_id)
        shard = self.coordinator.shard_for(req.group_id)
        config = self.config
        if not (
            config.min_session_timeout_ms <= req.session_timeout_ms <= config.max_session_timeout_ms
        ):
            return join_error(ErrorCode.invalid_session_timeout, req.member_id)
        consumer_group = shard.consumer_groups.get(req.group_id)
        if consumer_group is not None:
            if consumer_group.members:
                # A classic member of a consumer group (online upgrade): the consumer group's
                # target assignment is its assignment.
                if self.mixed is None:
                    return join_error(ErrorCode.inconsistent_group_protocol, req.member_id)
                return await self.mixed.join(shard, consumer_group, req)
            # An empty consumer group becomes a classic one (its offsets stay).
            del shard.consumer_groups[req.group_id]
            shard.write(group_tombstones(consumer_group), lambda _code: None)
        group = shard.groups.get(req.group_id)
        if group is None:
            if req.member_id:
                return join_error(ErrorCode.unknown_member_id, req.member_id)
            # A new member's join creates the group, and a refused one (no protocol in common)
            # leaves it Empty, as in Kafka, until the offsets.retention sweep removes it.
            group = ClassicGroup(req.group_id, state_timestamp=self.coordinator.wall_clock())
            shard.groups[req.group_id] = group
        outcome = self._join(shard, group, req)
        if group.state is GroupState.PREPARING_REBALANCE:
            self.rebalance.try_complete_join(shard, group)
        if isinstance(outcome, dict):
            return outcome
        # shield: a closed connection cancels its request, which must not cancel the member's
        # place in the rebalance (Kafka keeps the member until it rejoins or times out).
        return await asyncio.shield(outcome)

    def _join(
        self, shard: CoordinatorShard, group: ClassicGroup, req: JoinRequest
    ) -> dict[str, Any] | asyncio.Future[dict[str, Any]]:
        if group.state is GroupState.DEAD:
            # Being deleted or unloaded: the client looks the coordinator up and tries again.
            return join_error(ErrorCode.coordinator_not_available, req.member_id)
        if not group.supports(req.protocol_type, req.protocols):
            return join_error(ErrorCode.inconsistent_group_protocol, req.member_id)
        if not self._accepts_joining_member(group, req):
            return join_error(ErrorCode.group_max_size_reached)
        if not req.member_id:
            return self._join_new_member(shard, group, req)
        return self._join_known_member(shard, group, req)

    def _accepts_joining_member(self, group: ClassicGroup, req: JoinRequest) -> bool:
        limit = self.config.max_size
        member = group.members.get(req.member_id)
        if group.static_member_id(req.group_instance_id) is not None:
            return True  # a known static member takes its own place back
        if group.state in (GroupState.EMPTY, GroupState.DEAD):
            return True
        if group.state is GroupState.PREPARING_REBALANCE:
            # Members that have rejoined count: those that have not may yet be dropped.
            awaiting = sum(1 for m in group.members.values() if m.awaiting_join)
            return (member is not None and member.awaiting_join) or awaiting < limit
        return member is not None or group.size() < limit

    def _join_new_member(
        self, shard: CoordinatorShard, group: ClassicGroup, req: JoinRequest
    ) -> dict[str, Any] | asyncio.Future[dict[str, Any]]:
        prefix = req.group_instance_id if req.group_instance_id is not None else req.client_id
        member_id = f"{prefix}-{uuid.uuid4()}"
        if req.group_instance_id is not None:
            old_id = group.static_member_id(req.group_instance_id)
            if old_id is not None:
                return self._replace_static_member(shard, group, old_id, member_id, req)
            return self._add_member_and_rebalance(shard, group, member_id, req)
        if req.require_known_member_id:
            # KIP-394: hand out the id first, so a client that times out and retries cannot
            # leave orphaned members behind.
            group.pending_members.add(member_id)
            self.rebalance.schedule_pending_expiry(shard, group, member_id, req.session_timeout_ms)
            return join_error(ErrorCode.member_id_required, member_id)
        return self._add_member_and_rebalance(shard, group, member_id, req)

    def _join_known_member(
        self, shard: CoordinatorShard, group: ClassicGroup, req: JoinRequest
    ) -> dict[str, Any] | asyncio.Future[dict[str, Any]]:
        member_id = req.member_id
        if member_id in group.pending_members:
            return self._add_member_and_rebalance(shard, group, member_id, req)
        if group.is_static_member_fenced(req.group_instance_id, member_id):
            return join_error(ErrorCode.fenced_instance_id, member_id)
        unknown_instance = (
            req.group_instance_id is not None
            and group.static_member_id(req.group_instance_id) is None
        )
        if not group.has(member_id) or unknown_instance:
            return join_error(ErrorCode.unknown_member_id, member_id)
        member = group.members[member_id]
        state = group.state
        if state is GroupState.PREPARING_REBALANCE:
            return self._update_member_and_rebalance(shard, group, member, req)
        if state is GroupState.COMPLETING_REBALANCE:
            if member.matches(req.protocols):
                # A retried JoinGroup of this generation: answer it as before.
                return self.rebalance.join_result(group, member)
            return self._update_member_and_rebalance(shard, group, member, req)
        if state is GroupState.STABLE:
            if group.is_leader(member_id) or not member.matches(req.protocols):
                # The leader's JoinGroup always rebalances: that is how a consumer asks for a
                # new assignment after a change the member metadata does not show.
                return self._update_member_and_rebalance(shard, group, member, req)
            return self.rebalance.join_result(group, member)
        return join_error(ErrorCode.unknown_member_id, member_id)

    def _add_member_and_rebalance(
        self, shard: CoordinatorShard, group: ClassicGroup, member_id: str, req: JoinRequest
    ) -> asyncio.Future[dict[str, Any]]:
        member = Member(
            member_id,
            req.group_instance_id,
            req.client_id,
            req.client_host,
            req.rebalance_timeout_ms,
            req.session_timeout_ms,
            req.protocol_type,
            list(req.protocols),
            is_new=True,
        )
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        member.join_waiter = waiter
        if group.state is GroupState.PREPARING_REBALANCE and group.generation == 0:
            group.new_member_added = True
        self.rebalance.cancel_pending_expiry(group, member_id)
        group.add(member)
        # Until its first JoinGroup completes a member cannot heartbeat; it gets the (long)
        # new-member timeout, so a client that gave up does not hold the rebalance forever.
        self.rebalance.schedule_heartbeat(shard, group, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        self.rebalance.maybe_prepare_rebalance(shard, group, f"adding new member {member_id}")
        return waiter

    def _update_member_and_rebalance(
        self, shard: CoordinatorShard, group: ClassicGroup, member: Member, req: JoinRequest
    ) -> asyncio.Future[dict[str, Any]]:
        group.update_protocols(member, list(req.protocols))
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.session_timeout_ms = req.session_timeout_ms
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        # An older JoinGroup of the same member (a retry on a new connection) gets an answer
        # that makes it rejoin instead of hanging on its connection.
        answer(member.join_waiter, join_error(ErrorCode.rebalance_in_progress, member.member_id))
        member.join_waiter = waiter
        self.rebalance.maybe_prepare_rebalance(
            shard, group, f"updating metadata of {member.member_id}"
        )
        return waiter

    # -- static members -------------------------------------------------------------------------

    def _replace_static_member(
        self,
        shard: CoordinatorShard,
        group: ClassicGroup,
        old_id: str,
        new_id: str,
        req: JoinRequest,
    ) -> dict[str, Any] | asyncio.Future[dict[str, Any]]:
        assert req.group_instance_id is not None
        old_leader = group.leader_id
        member = group.members[old_id]
        old_protocols = list(member.protocols)
        old_timeouts = (member.rebalance_timeout_ms, member.session_timeout_ms)
        # The replaced instance's in-flight requests learn that they are fenced.
        answer(member.join_waiter, join_error(ErrorCode.fenced_instance_id, old_id))
        answer(member.sync_waiter, sync_result(ErrorCode.fenced_instance_id))
        member.join_waiter = member.sync_waiter = None
        self.rebalance.cancel_heartbeat(group, old_id)
        group.replace_static_member(req.group_instance_id, old_id, new_id)
        group.update_protocols(member, list(req.protocols))
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.session_timeout_ms = req.session_timeout_ms
        member.client_id = req.client_id
        member.client_host = req.client_host
        self.rebalance.schedule_heartbeat(shard, group, member)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        member.join_waiter = waiter
        state = group.state
        if state is GroupState.STABLE:
            if group.select_protocol() != group.protocol_name:
                self.rebalance.maybe_prepare_rebalance(
                    shard, group, f"static member {new_id} changed the group's protocol"
                )
                return waiter
            member.join_waiter = None
            self._persist_static_replacement(
                shard, group, member, waiter, old_id, old_leader, old_protocols, old_timeouts, req
            )
            return waiter
        if state is GroupState.COMPLETING_REBALANCE:
            # The leader may be assigning under the old member id: rebalance so that the
            # assignment names the new one.
            self.rebalance.prepare_rebalance(shard, group, f"static member {new_id} rejoined")
        # PreparingRebalance: the member simply takes part in the rebalance under its new id.
        return waiter

    def _persist_static_replacement(
        self,
        shard: CoordinatorShard,
        group: ClassicGroup,
        member: Member,
        waiter: asyncio.Future[dict[str, Any]],
        old_id: str,
        old_leader: str | None,
        old_protocols: list[tuple[str, bytes]],
        old_timeouts: tuple[int, int],
        req: JoinRequest,
    ) -> None:
        generation = group.generation
        new_id = member.member_id

        def on_done(code: ErrorCode) -> None:
            if not self.coordinator.is_current(shard, group):
                answer(waiter, join_error(ErrorCode.not_coordinator))
                return
            if code is not ErrorCode.none:
                # Not persisted: put the old member id back, as if this join never happened.
                if group.members.get(new_id) is member:
                    group.update_protocols(member, old_protocols)
                    member.rebalance_timeout_ms, member.session_timeout_ms = old_timeouts
                    self.rebalance.cancel_heartbeat(group, new_id)
                    assert req.group_instance_id is not None
                    group.replace_static_member(req.group_instance_id, new_id, old_id)
                    self.rebalance.schedule_heartbeat(shard, group, member)
                answer(waiter, join_error(coordinator_error_for_write(code, False)))
                return
            if group.members.get(new_id) is not member or group.generation != generation:
                answer(waiter, join_error(ErrorCode.rebalance_in_progress, new_id))
                return
            if req.supports_skip_assignment:
                # v9+: the leader learns it leads, but keeps the current assignment (KIP-814).
                is_leader = group.is_leader(new_id)
                result = self.rebalance.join_result(
                    group, member, include_members=is_leader, skip_assignment=is_leader
                )
            else:
                # Older clients get the previous leader id, so a returning leader does not
                # compute an assignment that a Stable group would ignore.
                result = self.rebalance.join_result(
                    group, member, include_members=False, leader=old_leader
                )
            log.info(
                "static member rejoined without rebalance",
                group=group.group_id,
                instance=req.group_instance_id,
                generation=generation,
            )
            answer(waiter, result)

        shard.write([(GroupKey(group.group_id), group.to_value())], on_done)

    # -- SyncGroup ------------------------------------------------------------------------------

    async def sync_group(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> dict[str, Any]:
        shard = self.coordinator.shard_for(group_id)
        consumer_group = shard.consumer_groups.get(group_id)
        if consumer_group is not None and self.mixed is not None:
            return self.mixed.sync(
                consumer_group, generation, member_id, protocol_type, protocol_name
            )
        group = shard.groups.get(group_id)
        if group is None:
            return sync_result(ErrorCode.unknown_member_id)
        code = self._validate_member(group, member_id, group_instance_id, generation)
        if code is not ErrorCode.none:
            return sync_result(code)
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return sync_result(ErrorCode.inconsistent_group_protocol)
        member = group.members[member_id]
        if group.state is GroupState.EMPTY:
            return sync_result(ErrorCode.unknown_member_id)
        if group.state is GroupState.PREPARING_REBALANCE:
            return sync_result(ErrorCode.rebalance_in_progress)
        group.pending_sync.discard(member_id)
        if group.state is GroupState.STABLE:
            self.rebalance.schedule_heartbeat(shard, group, member)
            return sync_result(
                ErrorCode.none, member.assignment, group.protocol_type, group.protocol_name
            )
        # CompletingRebalance: wait for the leader's assignment to be persisted.
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        answer(member.sync_waiter, sync_result(ErrorCode.rebalance_in_progress))
        member.sync_waiter = waiter
        if group.is_leader(member_id):
            full = {m: assignments.get(m, b"") for m in group.members}
            self.rebalance.store_assignment(shard, group, full)
        return await asyncio.shield(waiter)

    # -- Heartbeat ------------------------------------------------------------------------------

    def heartbeat(
        self, group_id: str, generation: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        shard = self.coordinator.shard_for(group_id)
        consumer_group = shard.consumer_groups.get(group_id)
        if consumer_group is not None and self.mixed is not None:
            return self.mixed.heartbeat(shard, consumer_group, generation, member_id)
        group = shard.groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        code = self._validate_member(group, member_id, group_instance_id, generation)
        if code is not ErrorCode.none:
            return code
        if group.state is GroupState.EMPTY:
            return ErrorCode.unknown_member_id
        self.rebalance.schedule_heartbeat(shard, group, group.members[member_id])
        if group.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def _validate_member(
        self, group: ClassicGroup, member_id: str, instance_id: str | None, generation: int
    ) -> ErrorCode:
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        code = group.member_error(instance_id, member_id)
        if code is not ErrorCode.none:
            return code
        if generation != group.generation:
            return ErrorCode.illegal_generation
        return ErrorCode.none

    # -- LeaveGroup -----------------------------------------------------------------------------

    def leave_group(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        shard = self.coordinator.shard_for(group_id)
        consumer_group = shard.consumer_groups.get(group_id)
        if consumer_group is not None and self.mixed is not None:
            return ErrorCode.none, self.mixed.leave(shard, consumer_group, members)
        group = shard.groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id, [ErrorCode.unknown_member_id] * len(members)
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available, []
        results = []
        for member_id, instance_id in members:
            results.append(self._leave_one(shard, group, member_id, instance_id))
        return ErrorCode.none, results

    def _leave_one(
        self, shard: CoordinatorShard, group: ClassicGroup, member_id: str, instance_id: str | None
    ) -> ErrorCode:
        if not member_id:
            # KIP-345: an admin removes a static member by its instance id alone.
            member_id = group.static_member_id(instance_id) or ""
            if not member_id:
                return ErrorCode.unknown_member_id
        elif member_id in group.pending_members:
            group.pending_members.discard(member_id)
            self.rebalance.cancel_pending_expiry(group, member_id)
            self.rebalance.try_complete_join(shard, group)
            return ErrorCode.none
        elif (code := group.member_error(instance_id, member_id)) is not ErrorCode.none:
            return code
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        self.rebalance.remove_member_and_update_group(shard, group, member, "left the group")
        return ErrorCode.none
