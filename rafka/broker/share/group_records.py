"""A share group's records in its `__consumer_offsets` partition (Kafka's ShareGroupMetadata,
ShareGroupTargetAssignmentMetadata, ShareGroupStatePartitionMetadata and each member's
ShareGroupMemberMetadata and ShareGroupCurrentMemberAssignment;
coordinator/groups/share_records.py): after the coordinator restarts or moves the group is still
listed, described and deleted, its initialized share partitions (its offsets) are still known,
and its members heartbeat on at their epochs.

Writes of one group run one after another, each from the group's state when it starts and only
of what changed since the last write that committed, so a burst of changes ends with the last
state on the log. A loaded partition's replay replaces the groups of that partition in memory;
their members get a fresh session timeout, as Kafka's do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from msgspec import Struct

from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.coordinator.groups.share_records import (
    SHARE_CURRENT_ASSIGNMENT,
    SHARE_GROUP_METADATA,
    SHARE_MEMBER_METADATA,
    SHARE_STATE_PARTITION_METADATA,
    SHARE_TARGET_METADATA,
    InitializedTopicsValue,
    PersistedShareGroup,
    ShareAssignmentEpochValue,
    ShareGroupEpochValue,
    ShareGroupKey,
    ShareGroupValue,
    ShareMemberAssignmentValue,
    ShareMemberValue,
)
from rafka.broker.share.group import ShareGroup, ShareMember, TopicLookup
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.coordinator.groups.shard import CoordinatorShard

log = structlog.get_logger(__name__)

Records = list[tuple[ShareGroupKey, ShareGroupValue | None]]
_GROUP_KEYS = (SHARE_GROUP_METADATA, SHARE_TARGET_METADATA, SHARE_STATE_PARTITION_METADATA)
_MEMBER_KEYS = (SHARE_CURRENT_ASSIGNMENT, SHARE_MEMBER_METADATA)


class Snapshot(Struct, frozen=True):
    """What a share group's records hold: each record's value by key."""

    values: dict[ShareGroupKey, ShareGroupValue]


def snapshot(group: ShareGroup, topic_name: Callable[[uuid.UUID], str]) -> Snapshot:
    gid = group.group_id
    topics = {
        topic_id: (topic_name(topic_id), frozenset(partitions))
        for topic_id, partitions in group.initialized.items()
    }
    values: dict[ShareGroupKey, ShareGroupValue] = {
        ShareGroupKey(SHARE_GROUP_METADATA, gid): ShareGroupEpochValue(group.group_epoch),
        ShareGroupKey(SHARE_TARGET_METADATA, gid): ShareAssignmentEpochValue(
            group.assignment_epoch),
        ShareGroupKey(SHARE_STATE_PARTITION_METADATA, gid): InitializedTopicsValue(topics),
    }
    for member in group.members.values():
        mid = member.member_id
        values[ShareGroupKey(SHARE_MEMBER_METADATA, gid, mid)] = ShareMemberValue(
            member.rack_id, member.client_id, member.client_host, member.subscribed_topic_names)
        values[ShareGroupKey(SHARE_CURRENT_ASSIGNMENT, gid, mid)] = ShareMemberAssignmentValue(
            member.member_epoch, dict(member.assignment))
    return Snapshot(values)


def _changes(now: Snapshot, written: Snapshot | None) -> Records:
    """The records that take the log from `written` to `now`: new and changed values, then
    tombstones of members gone (their assignment first, as Kafka)."""
    before = written.values if written is not None else {}
    records: Records = [(k, v) for k, v in now.values.items() if before.get(k) != v]
    gone = [k for k in before if k not in now.values]
    records += [(k, None) for k in sorted(gone, key=_tombstone_order)]
    return records


class ShareGroupLog:
    def __init__(
        self,
        shard_for: Callable[[str], CoordinatorShard],
        topic_name: Callable[[uuid.UUID], str],
    ) -> None:
        self._shard_for = shard_for  # CoordinatorError where this broker does not coordinate
        self._topic_name = topic_name
        self._last: dict[str, asyncio.Task[ErrorCode]] = {}
        self._written: dict[str, Snapshot] = {}  # what the log holds, as far as known here

    def write(self, group: ShareGroup) -> asyncio.Task[ErrorCode]:
        """Write what changed in the group since its last committed write, after its earlier
        writes; the task ends with the outcome (NONE once committed)."""
        return self._chain(group.group_id, lambda: snapshot(group, self._topic_name))

    def delete(self, group_id: str) -> asyncio.Task[ErrorCode]:
        """Tombstones for the group's records: it is gone after a restart too."""
        return self._chain(group_id, lambda: None)

    def loaded(self, group: ShareGroup) -> None:
        """The group as a replay left it: what the log holds."""
        self._written[group.group_id] = snapshot(group, self._topic_name)

    def forget(self, group_id: str) -> None:
        self._written.pop(group_id, None)

    def _chain(
        self, group_id: str, state: Callable[[], Snapshot | None]
    ) -> asyncio.Task[ErrorCode]:
        previous = self._last.get(group_id)
        task = asyncio.get_running_loop().create_task(self._write(group_id, previous, state))
        self._last[group_id] = task

        def done(finished: asyncio.Task[ErrorCode]) -> None:
            if self._last.get(group_id) is finished:
                del self._last[group_id]

        task.add_done_callback(done)
        return task

    async def _write(
        self,
        group_id: str,
        previous: asyncio.Task[ErrorCode] | None,
        state: Callable[[], Snapshot | None],
    ) -> ErrorCode:
        if previous is not None:
            await asyncio.wait([previous])
        now = state()
        written = self._written.get(group_id)
        if now is None:  # deleted: every record it had, gone
            records: Records = [
                (k, None) for k in sorted(
                    written.values if written is not None else (), key=_tombstone_order)
            ] or [(ShareGroupKey(t, group_id), None) for t in _GROUP_KEYS[::-1]]
        else:
            records = _changes(now, written)
        if not records:
            return ErrorCode.none
        try:
            shard = self._shard_for(group_id)
            code = await shard.write(records, _ignore)
        except CoordinatorError as exc:
            code = exc.code
        except Exception:  # nobody may await this task: say it here
            log.exception("share group write failed", group=group_id)
            return ErrorCode.unknown_server_error
        if code is not ErrorCode.none:
            log.warning("share group not written", group=group_id, error=code.name)
        elif now is None:
            self._written.pop(group_id, None)
        else:
            self._written[group_id] = now
        return code


def _ignore(_code: ErrorCode) -> None:
    """The shard's in-log-order callback: the groups in memory already have the change."""


def _tombstone_order(key: ShareGroupKey) -> int:
    """Members' records first (assignment, then metadata), the group's last (metadata last)."""
    if key.record_type in _MEMBER_KEYS:
        return _MEMBER_KEYS.index(key.record_type)
    return len(_MEMBER_KEYS) + _GROUP_KEYS[::-1].index(key.record_type)


def restore(
    groups: dict[str, ShareGroup],
    shard: CoordinatorShard,
    coordinated_by: Callable[[str], int],
    lookup: TopicLookup,
    session_deadline_ms: Callable[[str], int],
) -> list[ShareGroup]:
    """A `__consumer_offsets` partition was loaded here: its share groups replace the ones in
    `groups` it coordinates (left from an earlier leadership, or gone since); their members
    get until `session_deadline_ms(group id)` to heartbeat. Returns the groups restored."""
    for group_id in [g for g in groups if coordinated_by(g) == shard.index]:
        if group_id not in shard.share_groups:
            del groups[group_id]
    out = []
    for group_id, persisted in shard.share_groups.items():
        group = groups[group_id] = restored(
            group_id, persisted, lookup, session_deadline_ms(group_id))
        out.append(group)
    return out


def restored(
    group_id: str, persisted: PersistedShareGroup, lookup: TopicLookup, deadline_ms: int
) -> ShareGroup:
    members = {
        member_id: ShareMember(
            member_id,
            m.current.member_epoch if m.current is not None else 0,
            m.metadata.client_id,
            m.metadata.client_host,
            m.metadata.rack_id,
            m.metadata.subscribed_topic_names,
            deadline_ms,
            dict(m.current.assignment) if m.current is not None else {},
        )
        for member_id, m in persisted.members.items()
        if m.metadata is not None
    }
    # The subscribed topics as the image has them now: a partition count that changed while
    # the group was away moves its epoch at the next heartbeat, as a change does.
    topics = {}
    for name in sorted({t for m in members.values() for t in m.subscribed_topic_names}):
        if (found := lookup(name)) is not None:
            topics[name] = found
    epoch = persisted.epoch
    return ShareGroup(
        group_id,
        group_epoch=epoch,
        assignment_epoch=epoch if persisted.assignment_epoch is None
        else persisted.assignment_epoch,
        members=members,
        topics=topics,
        initialized={
            topic_id: set(partitions) for topic_id, (_, partitions) in persisted.initialized.items()
        },
    )
