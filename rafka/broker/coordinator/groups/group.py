"""A classic consumer group: its members, its generation and Kafka's group state machine.

    Empty ──join──► PreparingRebalance ──all joined / timeout──► CompletingRebalance
      ▲                  ▲         ▲                                   │ leader's SyncGroup
      │  last member     │         └────────── member change ──────────┤ persisted
      └── leaves ────────┴──────────────── member change ─── Stable ◄──┘
    any state ──delete / expiry / unload──► Dead

This module holds state and the rules that read it; the coordinator drives the transitions,
the timers and the writes to `__consumer_offsets`. Waiters (the JoinGroup and SyncGroup requests
a member has in flight) are asyncio futures owned by the coordinator.
"""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import Iterable
from enum import Enum
from typing import Any

from msgspec import Struct, field

from rafka.broker.coordinator.groups.records import GroupValue, MemberValue, OffsetValue
from rafka.protocol.errors import ErrorCode

CONSUMER_PROTOCOL_TYPE = "consumer"
GROUP_TYPE = "classic"


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY}
    ),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}


class IllegalTransitionError(RuntimeError):
    pass


class Member(Struct):
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (name, metadata) in the member's order of preference
    assignment: bytes = b""
    join_waiter: asyncio.Future[dict[str, Any]] | None = None
    sync_waiter: asyncio.Future[dict[str, Any]] | None = None
    # A member whose JoinGroup has not completed once yet; it cannot heartbeat, so it has the
    # new-member join timeout instead of the session timeout.
    is_new: bool = False
    heartbeat_deadline: float = 0.0  # loop time

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        """Same protocols with the same metadata, in the same order."""
        return self.protocols == protocols

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among those every member supports."""
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")


class CommittedOffset(Struct):
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    expire_timestamp: int = -1

    @classmethod
    def from_value(cls, value: OffsetValue) -> CommittedOffset:
        return cls(
            value.offset,
            value.leader_epoch,
            value.metadata,
            value.commit_timestamp,
            value.expire_timestamp,
        )

    def to_value(self) -> OffsetValue:
        return OffsetValue(
            self.offset,
            self.metadata,
            self.commit_timestamp,
            self.leader_epoch,
            self.expire_timestamp,
        )


TopicPartition = tuple[str, int]


class ClassicGroup(Struct):
    group_id: str
    state: GroupState = GroupState.EMPTY
    state_timestamp: int = -1  # wall-clock ms of the last transition
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    pending_members: set[str] = field(default_factory=set)  # told MEMBER_ID_REQUIRED
    pending_sync: set[str] = field(default_factory=set)  # joined, SyncGroup not yet seen
    offsets: dict[TopicPartition, CommittedOffset] = field(default_factory=dict)
    pending_offset_writes: Counter[TopicPartition] = field(default_factory=Counter)
    new_member_added: bool = False
    initial_join_remaining_ms: int | None = None  # set while the initial rebalance delay runs
    _protocol_support: Counter[str] = field(default_factory=Counter)

    # -- state ----------------------------------------------------------------------------------

    def transition(self, state: GroupState, now_ms: int) -> None:
        if self.state not in _VALID_PREVIOUS[state]:
            raise IllegalTransitionError(
                f"group {self.group_id}: {self.state.value} -> {state.value} is not allowed"
            )
        self.state = state
        self.state_timestamp = now_ms

    def is_in(self, *states: GroupState) -> bool:
        return self.state in states

    @property
    def can_rebalance(self) -> bool:
        return self.state in (
            GroupState.STABLE,
            GroupState.COMPLETING_REBALANCE,
            GroupState.EMPTY,
        )

    # -- membership -----------------------------------------------------------------------------

    def has(self, member_id: str) -> bool:
        return member_id in self.members

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def size(self) -> int:
        return len(self.members)

    def add(self, member: Member) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        self._protocol_support.update(member.protocol_names())
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.pending_members.discard(member.member_id)

    def remove(self, member_id: str) -> Member | None:
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        self._protocol_support.subtract(member.protocol_names())
        self._protocol_support += Counter()  # drop zero counts
        if member.group_instance_id is not None:
            if self.static_members.get(member.group_instance_id) == member_id:
                del self.static_members[member.group_instance_id]
        self.pending_sync.discard(member_id)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        return member

    def update_protocols(self, member: Member, protocols: list[tuple[str, bytes]]) -> None:
        self._protocol_support.subtract(member.protocol_names())
        member.protocols = protocols
        self._protocol_support.update(member.protocol_names())
        self._protocol_support += Counter()

    def static_member_id(self, instance_id: str | None) -> str | None:
        if instance_id is None:
            return None
        return self.static_members.get(instance_id)

    def member_error(self, instance_id: str | None, member_id: str) -> ErrorCode:
        """Kafka's ClassicGroup.validateMember: a request naming an instance id must come from
        the member that holds it (UNKNOWN_MEMBER_ID if none does, FENCED_INSTANCE_ID if another
        does); one without must come from a member."""
        if instance_id is not None:
            current = self.static_member_id(instance_id)
            if current is None:
                return ErrorCode.unknown_member_id
            return ErrorCode.none if current == member_id else ErrorCode.fenced_instance_id
        return ErrorCode.none if self.has(member_id) else ErrorCode.unknown_member_id

    def is_static_member_fenced(self, instance_id: str | None, member_id: str) -> bool:
        """The instance id now belongs to another member id: this one was replaced."""
        current = self.static_member_id(instance_id)
        return current is not None and current != member_id

    def replace_static_member(self, instance_id: str, old_id: str, new_id: str) -> Member:
        member = self.members.pop(old_id)
        member.member_id = new_id
        self.members[new_id] = member
        self.static_members[instance_id] = new_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        return member

    # -- rebalance ------------------------------------------------------------------------------

    def all_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def not_yet_rejoined(self) -> list[Member]:
        return [m for m in self.members.values() if not m.awaiting_join]

    def max_rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def candidate_protocols(self) -> set[str]:
        count = len(self.members)
        return {name for name, n in self._protocol_support.items() if n == count}

    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        names = {name for name, _ in protocols}
        if self.state is GroupState.EMPTY or not self.members:
            return bool(protocol_type) and bool(names)
        return protocol_type == self.protocol_type and bool(names & self.candidate_protocols())

    def select_protocol(self) -> str:
        """Kafka's vote: each member names its favourite protocol that all members support."""
        candidates = self.candidate_protocols()
        if not candidates:
            raise ValueError(f"group {self.group_id} has no protocol all members support")
        votes = Counter(m.vote(candidates) for m in self.members.values())
        # Ties go to the protocol voted for first, which keeps the choice deterministic.
        return max(votes, key=lambda name: votes[name])

    def init_next_generation(self, now_ms: int) -> None:
        self.generation += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.transition(GroupState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.transition(GroupState.EMPTY, now_ms)

    # -- consumer protocol ----------------------------------------------------------------------

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to (consumer protocol only; None when unknown)."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            parsed = parse_subscription_topics(member.metadata(self.protocol_name))
            if parsed is None:
                return None
            topics.update(parsed)
        return topics

    # -- offsets --------------------------------------------------------------------------------

    def has_offsets(self) -> bool:
        return bool(self.offsets) or bool(self.pending_offset_writes)

    def begin_offset_writes(self, partitions: Iterable[TopicPartition]) -> None:
        self.pending_offset_writes.update(partitions)

    def end_offset_writes(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            left = self.pending_offset_writes[tp] - 1
            if left > 0:
                self.pending_offset_writes[tp] = left
            else:
                self.pending_offset_writes.pop(tp, None)

    # -- persistence ----------------------------------------------------------------------------

    def to_value(self, assignments: dict[str, bytes] | None = None) -> GroupValue:
        """The GroupMetadataValue to persist; `assignments` replaces the members' current ones."""
        members = tuple(
            MemberValue(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.rebalance_timeout_ms,
                m.session_timeout_ms,
                m.metadata(self.protocol_name),
                m.assignment if assignments is None else assignments.get(m.member_id, b""),
            )
            for m in self.members.values()
        )
        return GroupValue(
            self.protocol_type or "",
            self.generation,
            self.protocol_name,
            self.leader_id,
            self.state_timestamp,
            members,
        )

    @classmethod
    def from_value(cls, group_id: str, value: GroupValue) -> ClassicGroup:
        """A group as loaded from its latest GroupMetadataValue: Stable, or Empty if memberless."""
        group = cls(
            group_id,
            state=GroupState.STABLE if value.members else GroupState.EMPTY,
            state_timestamp=value.current_state_timestamp,
            generation=value.generation,
            protocol_type=value.protocol_type or None,
            protocol_name=value.protocol,
        )
        for m in value.members:
            group.add(
                Member(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout,
                    m.session_timeout,
                    value.protocol_type,
                    [(value.protocol or "", m.subscription)],
                    assignment=m.assignment,
                )
            )
        group.leader_id = value.leader if value.leader in group.members else group.leader_id
        if not group.members:
            group.leader_id = None
        return group


_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


def parse_subscription_topics(metadata: bytes) -> list[str] | None:
    """Topics of a ConsumerProtocolSubscription (every version starts: version i16, topics
    [string]); None if the bytes are not one."""
    try:
        pos = 2
        (count,) = _I32.unpack_from(metadata, pos)
        pos += 4
        if count < 0 or count > len(metadata):
            return None
        topics = []
        for _ in range(count):
            (length,) = _I16.unpack_from(metadata, pos)
            pos += 2
            if length < 0 or pos + length > len(metadata):
                return None
            topics.append(metadata[pos : pos + length].decode())
            pos += length
        return topics
    except (struct.error, UnicodeDecodeError):
        return None
