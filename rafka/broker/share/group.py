"""Share groups' membership (ShareGroupHeartbeat, ShareGroupDescribe), sans-I/O: time comes in
as `now_ms`, topic metadata through a lookup function.

A member joins with epoch 0 under the member id it generated, heartbeats with its current
epoch and leaves with -1. The group epoch moves on a join, a leave, a subscription change or a
subscribed topic's partition count; the assignment is then computed at once and, as nothing is
ever revoked in a share group (partitions are shared, records are what is handed out), every
member reaches the group epoch with its next heartbeat. The assignor is Kafka's `simple` in its
KIP-932 form: every member gets every partition of every topic it subscribes to.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from msgspec import Struct, field

from rafka.broker.share.partition_state import AckError
from rafka.protocol.errors import ErrorCode

LEAVE_EPOCH = -1
JOIN_EPOCH = 0

Assignment = dict[uuid.UUID, frozenset[int]]
# A topic name -> (topic id, partition count), None if the topic does not exist.
TopicLookup = Callable[[str], tuple[uuid.UUID, int] | None]


class ShareGroupError(AckError):
    """A heartbeat or describe answered with an error code."""


class ShareMember(Struct):
    member_id: str
    member_epoch: int
    client_id: str
    client_host: str
    rack_id: str | None
    subscribed_topic_names: tuple[str, ...]
    session_deadline_ms: int
    assignment: Assignment = field(default_factory=dict)


class ShareGroup(Struct):
    group_id: str
    group_epoch: int = 1  # Kafka 4.3 starts a group at 1: its first member gets epoch 2
    assignment_epoch: int = 0
    members: dict[str, ShareMember] = field(default_factory=dict)
    # The subscribed topics' (id, partition count) the assignment was computed from.
    topics: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    # The share partitions the group has been assigned or had offsets altered for (Kafka's
    # initialized partitions): what DescribeShareGroupOffsets lists for all topics and
    # DeleteGroups deletes the state of; it outlives the members.
    initialized: dict[uuid.UUID, set[int]] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return "Stable" if self.members else "Empty"

    def topic_names(self) -> dict[uuid.UUID, str]:
        return {topic_id: name for name, (topic_id, _) in self.topics.items()}


class HeartbeatResult(Struct, frozen=True):
    member_id: str
    member_epoch: int
    assignment: Assignment | None  # None: unchanged since the member's last heartbeat


class ShareGroups:
    def __init__(self, session_timeout_ms: int, heartbeat_interval_ms: int, max_size: int) -> None:
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_size = max_size
        self.groups: dict[str, ShareGroup] = {}

    def heartbeat(
        self,
        *,
        group_id: str,
        member_id: str,
        member_epoch: int,
        rack_id: str | None,
        subscribed_topic_names: tuple[str, ...] | None,
        client_id: str,
        client_host: str,
        lookup: TopicLookup,
        now_ms: int,
        session_timeout_ms: int | None = None,
    ) -> HeartbeatResult:
        """A member's heartbeat. Its session is renewed for `session_timeout_ms` (the group's
        share.session.timeout.ms; the broker's when None): as in Kafka, a changed group config
        reaches a member at its next heartbeat."""
        if not group_id:
            raise ShareGroupError(ErrorCode.invalid_request, "GroupId can't be empty.")
        if not member_id:
            raise ShareGroupError(ErrorCode.invalid_request, "MemberId can't be empty.")
        group = self.groups.get(group_id)
        if group is None and member_epoch != JOIN_EPOCH:
            raise ShareGroupError(  # as Kafka 4.3.1 answers a group it does not have
                ErrorCode.group_id_not_found, f"Group {group_id} not found."
            )
        if member_epoch == LEAVE_EPOCH:
            assert group is not None  # refused above otherwise
            if member_id not in group.members:
                raise ShareGroupError(
                    ErrorCode.unknown_member_id, f"Member {member_id} is not in the group."
                )
            self.remove_member(group, member_id)
            return HeartbeatResult(member_id, LEAVE_EPOCH, None)
        if member_epoch < JOIN_EPOCH:
            raise ShareGroupError(ErrorCode.invalid_request, f"MemberEpoch {member_epoch}.")
        if member_epoch == JOIN_EPOCH:
            if not subscribed_topic_names:
                raise ShareGroupError(
                    ErrorCode.invalid_request,
                    "SubscribedTopicNames must be set in first request.",
                )
            if group is None:
                group = self.groups[group_id] = ShareGroup(group_id)
            member = group.members.get(member_id)
            if member is None:
                if len(group.members) >= self.max_size:
                    raise ShareGroupError(
                        ErrorCode.group_max_size_reached,
                        f"The share group has reached its maximum size {self.max_size}.",
                    )
                member = group.members[member_id] = ShareMember(
                    member_id, 0, client_id, client_host, rack_id, (), 0
                )
        else:
            assert group is not None  # refused above otherwise
            member = group.members.get(member_id)
            if member is None:
                raise ShareGroupError(
                    ErrorCode.unknown_member_id, f"Member {member_id} is not in the group."
                )
            if member_epoch != member.member_epoch:
                raise ShareGroupError(
                    ErrorCode.fenced_member_epoch,
                    f"The share group member has epoch {member.member_epoch}, not {member_epoch}.",
                )
        if session_timeout_ms is None:
            session_timeout_ms = self.session_timeout_ms
        member.session_deadline_ms = now_ms + session_timeout_ms
        if rack_id is not None:
            member.rack_id = rack_id
        changed = member_epoch == JOIN_EPOCH and member.member_epoch == 0
        if subscribed_topic_names is not None:
            names = tuple(sorted(set(subscribed_topic_names)))
            if names != member.subscribed_topic_names:
                member.subscribed_topic_names = names
                changed = True
        topics = self._subscribed_topics(group, lookup)
        if changed or topics != group.topics:
            group.topics = topics
            group.group_epoch += 1
        if group.assignment_epoch < group.group_epoch:
            self._assign(group)  # also an epoch a member's departure left unassigned
        assignment: Assignment | None = None
        if member.member_epoch != group.assignment_epoch or member_epoch == JOIN_EPOCH:
            member.member_epoch = group.assignment_epoch
            assignment = member.assignment
        return HeartbeatResult(member_id, member.member_epoch, assignment)

    def remove_member(self, group: ShareGroup, member_id: str) -> None:
        if group.members.pop(member_id, None) is None:
            return
        group.group_epoch += 1
        group.topics = {
            name: meta
            for name, meta in group.topics.items()
            if any(name in m.subscribed_topic_names for m in group.members.values())
        }
        # As Kafka: the new epoch's assignment waits for a remaining member's next heartbeat.

    def expire(self, now_ms: int) -> list[tuple[str, str]]:
        """Remove the members whose session timed out: (group id, member id) of each."""
        gone: list[tuple[str, str]] = []
        for group in self.groups.values():
            for member in list(group.members.values()):
                if member.session_deadline_ms <= now_ms:
                    self.remove_member(group, member.member_id)
                    gone.append((group.group_id, member.member_id))
        return gone

    def next_deadline(self) -> int | None:
        deadlines = [
            m.session_deadline_ms for g in self.groups.values() for m in g.members.values()
        ]
        return min(deadlines) if deadlines else None

    def describe(self, group_id: str) -> ShareGroup:
        group = self.groups.get(group_id)
        if group is None:
            raise ShareGroupError(ErrorCode.group_id_not_found, f"Group {group_id} not found.")
        return group

    def is_member(self, group_id: str, member_id: str) -> bool:
        group = self.groups.get(group_id)
        return group is not None and member_id in group.members

    @staticmethod
    def _subscribed_topics(
        group: ShareGroup, lookup: TopicLookup
    ) -> dict[str, tuple[uuid.UUID, int]]:
        names = {name for m in group.members.values() for name in m.subscribed_topic_names}
        found: dict[str, tuple[uuid.UUID, int]] = {}
        for name in sorted(names):
            meta = lookup(name)
            if meta is not None:
                found[name] = meta
        return found

    @staticmethod
    def _assign(group: ShareGroup) -> None:
        for member in group.members.values():
            member.assignment = {
                group.topics[name][0]: frozenset(range(group.topics[name][1]))
                for name in member.subscribed_topic_names
                if name in group.topics and group.topics[name][1] > 0
            }
        for topic_id, count in group.topics.values():
            group.initialized.setdefault(topic_id, set()).update(range(count))
        group.assignment_epoch = group.group_epoch
