"""The classic group's rebalance state machine: its phases, the timers that end them, and the
members' sessions. Membership (membership.py) checks each request and hands it here; this module
moves the group between states and answers the requests that wait for a phase to end.

Kafka's rules, as its group coordinator applies them:
* Any join, leave or expiry of a member of an Empty, Stable or CompletingRebalance group starts a
  rebalance (PreparingRebalance). It completes when every member has rejoined, or after the
  largest rebalance timeout, when dynamic members that did not rejoin are dropped; a group that
  was Empty first waits group.initial.rebalance.delay.ms (extended while members keep arriving).
* Completing bumps the generation, selects the protocol by vote, answers every JoinGroup (the
  leader gets the members' metadata) and moves to CompletingRebalance; the leader's SyncGroup
  brings the assignment, which is persisted before the group turns Stable and every member's
  SyncGroup is answered. Members that do not sync within the rebalance timeout are dropped.
* Members must heartbeat within their session timeout unless they are waiting for a JoinGroup
  or SyncGroup answer.
"""

from __future__ import annotations

import asyncio
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


def answer(waiter: asyncio.Future[dict[str, Any]] | None, result: dict[str, Any]) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(result)


class ClassicRebalance:
    def __init__(self, coordinator: GroupContext) -> None:
        self.coordinator = coordinator
        self.timers = coordinator.timers
        self.config = coordinator.config

    def join_result(
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

    # -- rebalance mechanics --------------------------------------------------------------------

    def maybe_prepare_rebalance(
        self, shard: CoordinatorShard, group: ClassicGroup, reason: str
    ) -> None:
        if group.can_rebalance:
            self.prepare_rebalance(shard, group, reason)

    def prepare_rebalance(self, shard: CoordinatorShard, group: ClassicGroup, reason: str) -> None:
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
        self.try_complete_join(shard, group)

    def try_complete_join(self, shard: CoordinatorShard, group: ClassicGroup) -> None:
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
            answer(waiter, self.join_result(group, member))
            member.is_new = False
            self.schedule_heartbeat(shard, group, member)
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
        self.prepare_rebalance(shard, group, "members did not send SyncGroup in time")

    # -- the assignment -------------------------------------------------------------------------

    def store_assignment(
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
                self.maybe_prepare_rebalance(shard, group, "the assignment was not persisted")
                return
            for member_id, member in group.members.items():
                member.assignment = assignments.get(member_id, b"")
            self._propagate_assignment(shard, group, ErrorCode.none)
            group.transition(GroupState.STABLE, self.coordinator.wall_clock())
            log.info("group stable", group=group.group_id, generation=generation)

        shard.write([(GroupKey(group.group_id), group.to_value(assignments))], on_done)

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
            answer(waiter, result)
            # Expiry was suspended while the member waited; its session restarts now.
            self.schedule_heartbeat(shard, group, member)

    # -- removing members -----------------------------------------------------------------------

    def _drop_member(self, group: ClassicGroup, member: Member) -> None:
        """Remove a member, answering whatever requests it still has in flight."""
        answer(member.join_waiter, join_error(ErrorCode.unknown_member_id, member.member_id))
        answer(member.sync_waiter, sync_result(ErrorCode.unknown_member_id))
        member.join_waiter = member.sync_waiter = None
        group.remove(member.member_id)
        self.cancel_heartbeat(group, member.member_id)

    def remove_member_and_update_group(
        self, shard: CoordinatorShard, group: ClassicGroup, member: Member, reason: str
    ) -> None:
        log.info("member removed", group=group.group_id, member=member.member_id, reason=reason)
        self._drop_member(group, member)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self.maybe_prepare_rebalance(shard, group, f"removing {member.member_id}: {reason}")
        elif group.state is GroupState.PREPARING_REBALANCE:
            self.try_complete_join(shard, group)

    # -- session timeouts -----------------------------------------------------------------------

    def schedule_heartbeat(
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

    def cancel_heartbeat(self, group: ClassicGroup, member_id: str) -> None:
        self.timers.cancel(("hb", group.group_id, member_id))

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
        self.remove_member_and_update_group(shard, group, member, "session timeout")

    def schedule_pending_expiry(
        self, shard: CoordinatorShard, group: ClassicGroup, member_id: str, timeout_ms: int
    ) -> None:
        def expire() -> None:
            if not self.coordinator.is_current(shard, group):
                return
            if member_id in group.pending_members:
                group.pending_members.discard(member_id)
                log.info("pending member expired", group=group.group_id, member=member_id)
                self.try_complete_join(shard, group)
                self._forget_if_unused(shard, group)

        self.timers.schedule(("pending", group.group_id, member_id), timeout_ms / 1000, expire)

    def cancel_pending_expiry(self, group: ClassicGroup, member_id: str) -> None:
        self.timers.cancel(("pending", group.group_id, member_id))

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

    def touch(self, shard: CoordinatorShard, group: ClassicGroup, member_id: str) -> None:
        """An offset commit from a member of a Stable group counts as a heartbeat."""
        member = group.members.get(member_id)
        if member is not None:
            self.schedule_heartbeat(shard, group, member)

    # -- loading and unloading -------------------------------------------------------------------

    def on_loaded(self, shard: CoordinatorShard) -> None:
        """Members restored from the log must heartbeat within their session, or leave."""
        for group in shard.groups.values():
            for member in group.members.values():
                self.schedule_heartbeat(shard, group, member)

    def on_unloaded(self, group: ClassicGroup) -> None:
        """The group is no longer ours (or is being deleted): answer and forget its requests."""
        gid = group.group_id
        for member in group.members.values():
            answer(member.join_waiter, join_error(ErrorCode.not_coordinator, member.member_id))
            answer(member.sync_waiter, sync_result(ErrorCode.not_coordinator))
            member.join_waiter = member.sync_waiter = None
            self.timers.cancel(("hb", gid, member.member_id))
        for member_id in group.pending_members:
            self.timers.cancel(("pending", gid, member_id))
        self.timers.cancel(("join", gid))
        self.timers.cancel(("sync", gid))
