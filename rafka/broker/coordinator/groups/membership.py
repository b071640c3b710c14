"""The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat and LeaveGroup.

Kafka's rules, as its group coordinator applies them:
* A JoinGroup without a member id gets one. From v4 on it is only handed out (MEMBER_ID_REQUIRED)
  and the member must join again with it; until then it is a pending member, which holds the
  rebalance back until it joins or its session timeout passes.
* Any join, leave or expiry of a member of an Empty, Stable or CompletingRebalance group starts a
  rebalance (PreparingRebalance). It completes when every member has rejoined, or after the
  largest rebalance timeout, when dynamic members that did not rejoin are dropped; a group that
  was Empty first waits group.initial.rebalance.delay.ms (extended while members keep arriving).
* Completing bumps the generation, selects the protocol by vote, answers every JoinGroup (the
  leader gets the members' metadata) and moves to CompletingRebalance; the leader's SyncGroup
  brings the assignment, which is persisted before the group turns Stable and every member's
  SyncGroup is answered. Members that do not sync within the rebalance timeout are dropped.
* Members must heartbeat within their session timeout unless they are waiting for a JoinGroup
  or SyncGroup answer; new members, which cannot heartbeat yet, get five minutes to join.
* Static members (group.instance.id) keep their place: a JoinGroup without member id for a
  known instance replaces the old member id (whose requests now get FENCED_INSTANCE_ID), and in a
  Stable group with an unchanged protocol this happens without a rebalance.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from rafka.broker.coordinator.groups.group import ClassicGroup, GroupState, Member
from rafka.broker.coordinator.groups.records import GroupKey
from rafka.broker.coordinator.groups.shard import CoordinatorShard
from rafka.broker.coordinator.internal_topic import coordinator_error_for_write
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.coordinator.groups.context import GroupContext

log = structlog.get_logger(__name__)

NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000


@dataclass(frozen=True, slots=True)
class JoinRequest:
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


def join_error(code: ErrorCode, member_id: str = "", generation: int = -1) -> dict[str, Any]:
    return {
        "error_code": code,
        "generation_id": generation,
        "protocol_type": None,
        "protocol_name": None,
        "leader": "",
        "skip_assignment": False,
        "member_id": member_id,
        "members": [],
    }


def sync_result(
    code: ErrorCode,
    assignment: bytes = b"",
    protocol_type: str | None = None,
    protocol_name: str | None = None,
) -> dict[str, Any]:
    return {
        "error_code": code,
        "protocol_type": protocol_type,
        "protocol_name": protocol_name,
        "assignment": assignment,
    }


def _answer(waiter: asyncio.Future[dict[str, Any]] | None, result: dict[str, Any]) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(result)


class Membership:
    def __init__(self, coordinator: GroupContext) -> None:
        self.coordinator = coordinator
        self.timers = coordinator.timers
        self.config = coordinator.config

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
        group = shard.groups.get(req.group_id)
        created = group is None
        if group is None:
            if req.member_id:
                return join_error(ErrorCode.unknown_member_id, req.member_id)
            group = ClassicGroup(req.group_id, state_timestamp=self.coordinator.wall_clock())
            shard.groups[req.group_id] = group
        outcome = self._join(shard, group, req)
        if created and not group.members and not group.pending_members and not group.offsets:
            if shard.groups.get(req.group_id) is group and group.state is GroupState.EMPTY:
                del shard.groups[req.group_id]  # a failed first join leaves no group behind
        if group.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(shard, group)
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
            self._schedule_pending_expiry(shard, group, member_id, req.session_timeout_ms)
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
                return self._join_result(group, member)
            return self._update_member_and_rebalance(shard, group, member, req)
        if state is GroupState.STABLE:
            if group.is_leader(member_id) or not member.matches(req.protocols):
                # The leader's JoinGroup always rebalances: that is how a consumer asks for a
                # new assignment after a change the member metadata does not show.
                return self._update_member_and_rebalance(shard, group, member, req)
            return self._join_result(group, member)
        return join_error(ErrorCode.unknown_member_id, member_id)

    def _join_result(
        self,
        group: ClassicGroup,
        member: Member,
        *,
        include_members: bool | None = None,
        leader: str | None = None,
        skip_assignment: bool = False,
    ) -> dict[str, Any]:
        is_leader = group.is_leader(member.member_id)
        if include_members is None:
            include_members = is_leader
        members = []
        if include_members:
            members = [
                {
                    "member_id": m.member_id,
                    "group_instance_id": m.group_instance_id,
                    "metadata": m.metadata(group.protocol_name),
                }
                for m in group.members.values()
            ]
        return {
            "error_code": ErrorCode.none,
            "generation_id": group.generation,
            "protocol_type": group.protocol_type,
            "protocol_name": group.protocol_name,
            "leader": group.leader_id if leader is None else leader,
            "skip_assignment": skip_assignment,
            "member_id": member.member_id,
            "members": members,
        }

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
        self.timers.cancel(("pending", group.group_id, member_id))
        group.add(member)
        # Until its first JoinGroup completes a member cannot heartbeat; it gets the (long)
        # new-member timeout, so a client that gave up does not hold the rebalance forever.
        self._schedule_heartbeat(shard, group, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        self._maybe_prepare_rebalance(shard, group, f"adding new member {member_id}")
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
        _answer(member.join_waiter, join_error(ErrorCode.rebalance_in_progress, member.member_id))
        member.join_waiter = waiter
        self._maybe_prepare_rebalance(shard, group, f"updating metadata of {member.member_id}")
        return waiter

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
        _answer(member.join_waiter, join_error(ErrorCode.fenced_instance_id, old_id))
        _answer(member.sync_waiter, sync_result(ErrorCode.fenced_instance_id))
        member.join_waiter = member.sync_waiter = None
        self.timers.cancel(("hb", group.group_id, old_id))
        group.replace_static_member(req.group_instance_id, old_id, new_id)
        group.update_protocols(member, list(req.protocols))
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.session_timeout_ms = req.session_timeout_ms
        member.client_id = req.client_id
        member.client_host = req.client_host
        self._schedule_heartbeat(shard, group, member)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        member.join_waiter = waiter
        state = group.state
        if state is GroupState.STABLE:
            if group.select_protocol() != group.protocol_name:
                self._maybe_prepare_rebalance(
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
            self._prepare_rebalance(shard, group, f"static member {new_id} rejoined")
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
                _answer(waiter, join_error(ErrorCode.not_coordinator))
                return
            if code is not ErrorCode.none:
                # Not persisted: put the old member id back, as if this join never happened.
                if group.members.get(new_id) is member:
                    group.update_protocols(member, old_protocols)
                    member.rebalance_timeout_ms, member.session_timeout_ms = old_timeouts
                    self.timers.cancel(("hb", group.group_id, new_id))
                    assert req.group_instance_id is not None
                    group.replace_static_member(req.group_instance_id, new_id, old_id)
                    self._schedule_heartbeat(shard, group, member)
                _answer(waiter, join_error(coordinator_error_for_write(code, False)))
                return
            if group.members.get(new_id) is not member or group.generation != generation:
                _answer(waiter, join_error(ErrorCode.rebalance_in_progress, new_id))
                return
            if req.supports_skip_assignment:
                # v9+: the leader learns it leads, but keeps the current assignment (KIP-814).
                is_leader = group.is_leader(new_id)
                result = self._join_result(
                    group, member, include_members=is_leader, skip_assignment=is_leader
                )
            else:
                # Older clients get the previous leader id, so a returning leader does not
                # compute an assignment that a Stable group would ignore.
                result = self._join_result(group, member, include_members=False, leader=old_leader)
            log.info(
                "static member rejoined without rebalance",
                group=group.group_id,
                instance=req.group_instance_id,
                generation=generation,
            )
            _answer(waiter, result)

        shard.write([(GroupKey(group.group_id), group.to_value())], on_done)

    # -- rebalance mechanics --------------------------------------------------------------------

    def _maybe_prepare_rebalance(
        self, shard: CoordinatorShard, group: ClassicGroup, reason: str
    ) -> None:
        if group.can_rebalance:
            self._prepare_rebalance(shard, group, reason)

    def _prepare_rebalance(self, shard: CoordinatorShard, group: ClassicGroup, reason: str) -> None:
        if group.state is GroupState.COMPLETING_REBALANCE:
            self._reset_and_propagate_assignment_error(
                shard, group, ErrorCode.rebalance_in_progress
            )
        self.timers.cancel(("sync", group.group_id))
        group.pending_sync.clear()
        initial_delay = self.config.initial_rebalance_delay_ms
        if group.state is GroupState.EMPTY and initial_delay > 0:
            delay = initial_delay
            group.initial_join_remaining_ms = max(group.max_rebalance_timeout_ms() - delay, 0)
            group.new_member_added = False
        else:
            delay = group.max_rebalance_timeout_ms()
            group.initial_join_remaining_ms = None
        group.transition(GroupState.PREPARING_REBALANCE, self.coordinator.wall_clock())
        log.info(
            "preparing to rebalance group",
            group=group.group_id,
            generation=group.generation,
            reason=reason,
        )
        self.timers.schedule(
            ("join", group.group_id), delay / 1000, lambda: self._on_join_deadline(shard, group)
        )
        # A group whose members have all left completes at once (and turns Empty).
        self._try_complete_join(shard, group)

    def _try_complete_join(self, shard: CoordinatorShard, group: ClassicGroup) -> None:
        if (
            group.state is GroupState.PREPARING_REBALANCE
            and group.initial_join_remaining_ms is None
            and group.all_joined()
        ):
            self.timers.cancel(("join", group.group_id))
            self._complete_join(shard, group)

    def _on_join_deadline(self, shard: CoordinatorShard, group: ClassicGroup) -> None:
        if not self.coordinator.is_current(shard, group):
            return
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        remaining = group.initial_join_remaining_ms
        if remaining is not None:
            if group.new_member_added and remaining > 0:
                # Members are still arriving: wait another delay, within the rebalance timeout.
                group.new_member_added = False
                delay = min(self.config.initial_rebalance_delay_ms, remaining)
                group.initial_join_remaining_ms = max(remaining - delay, 0)
                self.timers.schedule(
                    ("join", group.group_id),
                    delay / 1000,
                    lambda: self._on_join_deadline(shard, group),
                )
                return
            group.initial_join_remaining_ms = None
        self._complete_join(shard, group)

    def _complete_join(self, shard: CoordinatorShard, group: ClassicGroup) -> None:
        for member in group.not_yet_rejoined():
            if not member.is_static:
                log.info("member did not rejoin", group=group.group_id, member=member.member_id)
                self._drop_member(group, member)
        if group.state is GroupState.DEAD:
            return
        if group.members and not self._elect_joined_leader(group):
            # Only static members that have not rejoined are left: wait for them once more,
            # until their session timeouts remove them.
            self.timers.schedule(
                ("join", group.group_id),
                group.max_rebalance_timeout_ms() / 1000,
                lambda: self._on_join_deadline(shard, group),
            )
            return
        group.init_next_generation(self.coordinator.wall_clock())
        if group.state is GroupState.EMPTY:
            log.info("group is empty", group=group.group_id, generation=group.generation)

            def on_stored(code: ErrorCode) -> None:
                if code is not ErrorCode.none:
                    log.warning("empty group not persisted", group=group.group_id, error=code.name)

            shard.write([(GroupKey(group.group_id), group.to_value())], on_stored)
            return
        log.info(
            "group stabilized",
            group=group.group_id,
            generation=group.generation,
            protocol=group.protocol_name,
            members=group.size(),
        )
        for member in group.members.values():
            waiter, member.join_waiter = member.join_waiter, None
            _answer(waiter, self._join_result(group, member))
            member.is_new = False
            self._schedule_heartbeat(shard, group, member)
            group.pending_sync.add(member.member_id)
        generation = group.generation
        self.timers.schedule(
            ("sync", group.group_id),
            group.max_rebalance_timeout_ms() / 1000,
            lambda: self._on_sync_deadline(shard, group, generation),
        )

    @staticmethod
    def _elect_joined_leader(group: ClassicGroup) -> bool:
        leader = group.members.get(group.leader_id or "")
        if leader is not None and leader.awaiting_join:
            return True
        for member in group.members.values():
            if member.awaiting_join:
                group.leader_id = member.member_id
                return True
        return False

    def _on_sync_deadline(
        self, shard: CoordinatorShard, group: ClassicGroup, generation: int
    ) -> None:
        if not self.coordinator.is_current(shard, group) or group.generation != generation:
            return
        if group.state not in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return
        if not group.pending_sync:
            return
        missing = sorted(group.pending_sync)
        log.info("members did not sync in time", group=group.group_id, members=missing)
        for member_id in missing:
            member = group.members.get(member_id)
            if member is not None:
                self._drop_member(group, member)
        self._prepare_rebalance(shard, group, "members did not send SyncGroup in time")

    def _reset_and_propagate_assignment_error(
        self, shard: CoordinatorShard, group: ClassicGroup, code: ErrorCode
    ) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(shard, group, code)

    def _propagate_assignment(
        self, shard: CoordinatorShard, group: ClassicGroup, code: ErrorCode
    ) -> None:
        for member in group.members.values():
            waiter, member.sync_waiter = member.sync_waiter, None
            if waiter is None:
                continue
            if code is ErrorCode.none:
                result = sync_result(
                    code, member.assignment, group.protocol_type, group.protocol_name
                )
            else:
                result = sync_result(code)
            _answer(waiter, result)
            # Expiry was suspended while the member waited; its session restarts now.
            self._schedule_heartbeat(shard, group, member)

    def _drop_member(self, group: ClassicGroup, member: Member) -> None:
        """Remove a member, answering whatever requests it still has in flight."""
        _answer(member.join_waiter, join_error(ErrorCode.unknown_member_id, member.member_id))
        _answer(member.sync_waiter, sync_result(ErrorCode.unknown_member_id))
        member.join_waiter = member.sync_waiter = None
        group.remove(member.member_id)
        self.timers.cancel(("hb", group.group_id, member.member_id))

    def _remove_member_and_update_group(
        self, shard: CoordinatorShard, group: ClassicGroup, member: Member, reason: str
    ) -> None:
        log.info("member removed", group=group.group_id, member=member.member_id, reason=reason)
        self._drop_member(group, member)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance(shard, group, f"removing {member.member_id}: {reason}")
        elif group.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(shard, group)

    # -- session timeouts -----------------------------------------------------------------------

    def _schedule_heartbeat(
        self,
        shard: CoordinatorShard,
        group: ClassicGroup,
        member: Member,
        timeout_ms: int | None = None,
    ) -> None:
        timeout = member.session_timeout_ms if timeout_ms is None else timeout_ms
        member.heartbeat_deadline = self.timers.now() + timeout / 1000
        key = ("hb", group.group_id, member.member_id)
        armed = self.timers.deadline(key)
        # A timer that fires earlier re-arms itself at the new deadline: a heartbeat costs a
        # field update, not a heap push.
        if armed is None or armed > member.heartbeat_deadline:
            member_id = member.member_id
            self.timers.schedule_at(
                key,
                member.heartbeat_deadline,
                lambda: self._on_heartbeat_deadline(shard, group, member_id),
            )

    def _on_heartbeat_deadline(
        self, shard: CoordinatorShard, group: ClassicGroup, member_id: str
    ) -> None:
        if not self.coordinator.is_current(shard, group):
            return
        member = group.members.get(member_id)
        if member is None:
            return
        now = self.timers.now()
        if now + 0.001 < member.heartbeat_deadline:
            self.timers.schedule_at(
                ("hb", group.group_id, member_id),
                member.heartbeat_deadline,
                lambda: self._on_heartbeat_deadline(shard, group, member_id),
            )
            return
        if not member.is_new and (member.awaiting_join or member.awaiting_sync):
            # Waiting for the coordinator's answer counts as alive; the session restarts
            # when the answer is sent.
            return
        self._remove_member_and_update_group(shard, group, member, "session timeout")

    def _schedule_pending_expiry(
        self, shard: CoordinatorShard, group: ClassicGroup, member_id: str, timeout_ms: int
    ) -> None:
        def expire() -> None:
            if not self.coordinator.is_current(shard, group):
                return
            if member_id in group.pending_members:
                group.pending_members.discard(member_id)
                log.info("pending member expired", group=group.group_id, member=member_id)
                self._try_complete_join(shard, group)
                self._forget_if_unused(shard, group)

        self.timers.schedule(("pending", group.group_id, member_id), timeout_ms / 1000, expire)

    @staticmethod
    def _forget_if_unused(shard: CoordinatorShard, group: ClassicGroup) -> None:
        """A group that never got past MEMBER_ID_REQUIRED leaves nothing behind."""
        if (
            group.state is GroupState.EMPTY
            and group.generation == 0
            and not group.members
            and not group.pending_members
            and not group.has_offsets()
            and shard.groups.get(group.group_id) is group
        ):
            del shard.groups[group.group_id]

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
            self._schedule_heartbeat(shard, group, member)
            return sync_result(
                ErrorCode.none, member.assignment, group.protocol_type, group.protocol_name
            )
        # CompletingRebalance: wait for the leader's assignment to be persisted.
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        _answer(member.sync_waiter, sync_result(ErrorCode.rebalance_in_progress))
        member.sync_waiter = waiter
        if group.is_leader(member_id):
            full = {m: assignments.get(m, b"") for m in group.members}
            self._store_assignment(shard, group, full)
        return await asyncio.shield(waiter)

    def _store_assignment(
        self, shard: CoordinatorShard, group: ClassicGroup, assignments: dict[str, bytes]
    ) -> None:
        generation = group.generation

        def on_done(code: ErrorCode) -> None:
            if not self.coordinator.is_current(shard, group):
                return
            if group.generation != generation or group.state is not GroupState.COMPLETING_REBALANCE:
                return  # a newer rebalance already answered the waiters
            if code is not ErrorCode.none:
                error = coordinator_error_for_write(code, False)
                self._reset_and_propagate_assignment_error(shard, group, error)
                self._maybe_prepare_rebalance(shard, group, "the assignment was not persisted")
                return
            for member_id, member in group.members.items():
                member.assignment = assignments.get(member_id, b"")
            self._propagate_assignment(shard, group, ErrorCode.none)
            group.transition(GroupState.STABLE, self.coordinator.wall_clock())
            log.info("group stable", group=group.group_id, generation=generation)

        shard.write([(GroupKey(group.group_id), group.to_value(assignments))], on_done)

    # -- Heartbeat ------------------------------------------------------------------------------

    def heartbeat(
        self, group_id: str, generation: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        shard = self.coordinator.shard_for(group_id)
        group = shard.groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        code = self._validate_member(group, member_id, group_instance_id, generation)
        if code is not ErrorCode.none:
            return code
        if group.state is GroupState.EMPTY:
            return ErrorCode.unknown_member_id
        self._schedule_heartbeat(shard, group, group.members[member_id])
        if group.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def _validate_member(
        self, group: ClassicGroup, member_id: str, instance_id: str | None, generation: int
    ) -> ErrorCode:
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        if group.is_static_member_fenced(instance_id, member_id):
            return ErrorCode.fenced_instance_id
        if not group.has(member_id):
            return ErrorCode.unknown_member_id
        if generation != group.generation:
            return ErrorCode.illegal_generation
        return ErrorCode.none

    def touch(self, shard: CoordinatorShard, group: ClassicGroup, member_id: str) -> None:
        """An offset commit from a member of a Stable group counts as a heartbeat."""
        member = group.members.get(member_id)
        if member is not None:
            self._schedule_heartbeat(shard, group, member)

    # -- LeaveGroup -----------------------------------------------------------------------------

    def leave_group(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        shard = self.coordinator.shard_for(group_id)
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
            self.timers.cancel(("pending", group.group_id, member_id))
            self._try_complete_join(shard, group)
            return ErrorCode.none
        elif group.is_static_member_fenced(instance_id, member_id):
            return ErrorCode.fenced_instance_id
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        self._remove_member_and_update_group(shard, group, member, "left the group")
        return ErrorCode.none

    # -- loading and unloading -------------------------------------------------------------------

    def on_loaded(self, shard: CoordinatorShard) -> None:
        """Members restored from the log must heartbeat within their session, or leave."""
        for group in shard.groups.values():
            for member in group.members.values():
                self._schedule_heartbeat(shard, group, member)

    def on_unloaded(self, group: ClassicGroup) -> None:
        """The group is no longer ours (or is being deleted): answer and forget its requests."""
        gid = group.group_id
        for member in group.members.values():
            _answer(member.join_waiter, join_error(ErrorCode.not_coordinator, member.member_id))
            _answer(member.sync_waiter, sync_result(ErrorCode.not_coordinator))
            member.join_waiter = member.sync_waiter = None
            self.timers.cancel(("hb", gid, member.member_id))
        for member_id in group.pending_members:
            self.timers.cancel(("pending", gid, member_id))
        self.timers.cancel(("join", gid))
        self.timers.cancel(("sync", gid))
