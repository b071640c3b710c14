"""A consumer group of the next-generation protocol (KIP-848): state and reconciliation.

The group epoch moves whenever membership, a subscription or a subscribed topic's partitions
change; the coordinator then computes the target assignment for that epoch. Each member
converges on its target on its own, heartbeat by heartbeat, and a member is handed a partition
only once no other member still owns it (revoke first, then assign):

    STABLE ──target moved──► UNREVOKED_PARTITIONS ──member acks revocation──► (reconcile again)
      ▲                         (epoch kept)
      └── partitions freed ◄── UNRELEASED_PARTITIONS (epoch advanced; waits for other members)
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterable
from enum import Enum, IntEnum

from msgspec import Struct, field

from rafka.broker.coordinator.groups.consumer_assignors import Assignment
from rafka.broker.coordinator.groups.consumer_records import ClassicMemberMetadata, PartitionEpochs

GROUP_TYPE = "consumer"
PROTOCOL_TYPE = "consumer"
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


class MemberState(IntEnum):
    # Kafka's ConsumerGroupMember.MemberState values (stored in the current-assignment record).
    STABLE = 0
    UNREVOKED_PARTITIONS = 1
    UNRELEASED_PARTITIONS = 2
    UNKNOWN = 127


class ConsumerGroupState(Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


class ConsumerMember(Struct):
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    rebalance_timeout_ms: int = 300000
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    # The member epoch at which each partition above came to the member (KIP-1251): a commit
    # that lags behind the member's epoch still counts for partitions it held by then. A
    # partition left out came at `member_epoch`.
    assignment_epochs: PartitionEpochs = field(default_factory=dict)
    # Set for a member still on the classic protocol (JoinGroup/SyncGroup/Heartbeat), as after
    # a classic group's online upgrade: its session timeout and JoinGroup protocols.
    classic: ClassicMemberMetadata | None = None

    @property
    def uses_classic_protocol(self) -> bool:
        return self.classic is not None

    def owns(self, topic_id: uuid.UUID, partition: int) -> bool:
        return partition in self.assigned.get(topic_id, ()) or partition in (
            self.pending_revocation.get(topic_id, ())
        )

    def assignment_epoch(self, topic_id: uuid.UUID, partition: int) -> int | None:
        """The epoch from which the member holds the partition; None if it does not."""
        if not self.owns(topic_id, partition):
            return None
        return self.assignment_epochs.get((topic_id, partition), self.member_epoch)


class ConsumerGroup(Struct):
    group_id: str
    group_epoch: int = 1  # Kafka 4.3 starts a group at 1: its first member gets epoch 2
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)  # member id -> partitions
    # Subscribed topics as of the group epoch: id -> (name, partition count).
    topics: dict[uuid.UUID, tuple[str, int]] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    dead: bool = False

    @property
    def state(self) -> ConsumerGroupState:
        if self.dead:
            return ConsumerGroupState.DEAD
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.assignment_epoch < self.group_epoch:
            return ConsumerGroupState.ASSIGNING
        if any(
            m.member_epoch != self.assignment_epoch or m.state is not MemberState.STABLE
            for m in self.members.values()
        ):
            return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def subscribed_names(self, all_topics: Iterable[str]) -> set[str]:
        """What the members subscribe to, by name or by regex among `all_topics`."""
        names: set[str] = set()
        for member in self.members.values():
            names |= member_topics(member, all_topics)
        return names

    def owned_elsewhere(self, member_id: str, topic_id: uuid.UUID, partition: int) -> bool:
        return any(
            other.owns(topic_id, partition)
            for other_id, other in self.members.items()
            if other_id != member_id
        )

    def add(self, member: ConsumerMember) -> None:
        self.members[member.member_id] = member
        if member.instance_id is not None:
            self.static_members[member.instance_id] = member.member_id

    def remove(self, member_id: str) -> ConsumerMember | None:
        member = self.members.pop(member_id, None)
        self.target.pop(member_id, None)
        if member is not None and member.instance_id is not None:
            if self.static_members.get(member.instance_id) == member_id:
                del self.static_members[member.instance_id]
        return member


# Internal topics are never matched by a regex subscription (Kafka's Topic.isInternal).
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


@functools.lru_cache(maxsize=256)
def compile_regex(regex: str) -> re.Pattern[str]:
    """A subscription regex; it must match a whole topic name, as Java's matches() does."""
    return re.compile(regex)


def member_topics(member: ConsumerMember, all_topics: Iterable[str]) -> set[str]:
    topics = set(member.subscribed_topic_names)
    if member.subscribed_topic_regex:
        pattern = compile_regex(member.subscribed_topic_regex)
        topics |= {
            t for t in all_topics if t not in INTERNAL_TOPICS and pattern.fullmatch(t) is not None
        }
    return topics


def _minus(a: Assignment, b: Assignment) -> Assignment:
    out = {t: ps - b.get(t, frozenset()) for t, ps in a.items()}
    return {t: ps for t, ps in out.items() if ps}


def _intersect(a: Assignment, b: Assignment) -> Assignment:
    out = {t: ps & b.get(t, frozenset()) for t, ps in a.items()}
    return {t: ps for t, ps in out.items() if ps}


def _pairs(*assignments: Assignment) -> Iterable[tuple[uuid.UUID, int]]:
    for assignment in assignments:
        for topic_id, partitions in assignment.items():
            for partition in partitions:
                yield topic_id, partition


def same_partitions(a: Assignment, b: Assignment) -> bool:
    return {t: ps for t, ps in a.items() if ps} == {t: ps for t, ps in b.items() if ps}


def reconcile(
    group: ConsumerGroup,
    member: ConsumerMember,
    owned: Assignment | None,
) -> bool:
    """Move `member` toward its target (Kafka's CurrentAssignmentBuilder). `owned` is what the
    member says it holds (None: not sent). Returns whether the member's assignment changed."""
    target = group.target.get(member.member_id, {})
    epoch = group.assignment_epoch
    before = (member.member_epoch, member.state, member.assigned, member.pending_revocation)
    if member.state is MemberState.UNREVOKED_PARTITIONS:
        if owned is None or _intersect(owned, member.pending_revocation):
            return False  # still revoking: nothing more until it says it let them go
        member.pending_revocation = {}
    elif member.member_epoch == epoch and member.state is MemberState.STABLE:
        return False
    # What the member keeps keeps its epoch; what it is granted now comes at the new epoch.
    held = {
        tp: member.assignment_epochs.get(tp, member.member_epoch) for tp in _pairs(member.assigned)
    }
    keep = _intersect(member.assigned, target)
    revoke = _minus(member.assigned, target)
    if revoke:
        # Revoke first, at the member's current epoch: the new partitions come afterwards.
        member.assigned = keep
        member.pending_revocation = revoke
        member.state = MemberState.UNREVOKED_PARTITIONS
    else:
        grant: Assignment = dict(keep)
        held_back = False
        for topic_id, partitions in _minus(target, keep).items():
            free = frozenset(
                p for p in partitions if not group.owned_elsewhere(member.member_id, topic_id, p)
            )
            held_back |= free != partitions
            if free:
                grant[topic_id] = grant.get(topic_id, frozenset()) | free
        if member.member_epoch != epoch:
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = epoch
        member.assigned = grant
        member.state = MemberState.UNRELEASED_PARTITIONS if held_back else MemberState.STABLE
    member.assignment_epochs = {
        tp: held[tp] if tp in held else epoch
        for tp in _pairs(member.assigned, member.pending_revocation)
    }
    after = (member.member_epoch, member.state, member.assigned, member.pending_revocation)
    return after != before
