"""A share group's records in its `__consumer_offsets` partition (Kafka's ShareGroupMetadata and
ShareGroupStatePartitionMetadata, coordinator/groups/share_records.py): what outlives its
members, so that after the coordinator restarts or moves the group is still listed, described
and deleted, and its initialized share partitions (its offsets) are still known.

Writes of one group run one after another, each from the group's state when it starts, so a
burst of changes ends with the last state on the log. A loaded partition's replay replaces the
groups of that partition in memory; their members join again, as after a session timeout.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.coordinator.groups.share_records import (
    SHARE_GROUP_METADATA,
    SHARE_STATE_PARTITION_METADATA,
    InitializedTopicsValue,
    PersistedShareGroup,
    ShareGroupEpochValue,
    ShareGroupKey,
    ShareGroupValue,
)
from rafka.broker.share.group import ShareGroup
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.coordinator.groups.shard import CoordinatorShard

log = structlog.get_logger(__name__)

Records = list[tuple[ShareGroupKey, ShareGroupValue | None]]


class ShareGroupLog:
    def __init__(
        self,
        shard_for: Callable[[str], CoordinatorShard],
        topic_name: Callable[[uuid.UUID], str],
    ) -> None:
        self._shard_for = shard_for  # CoordinatorError where this broker does not coordinate
        self._topic_name = topic_name
        self._last: dict[str, asyncio.Task[ErrorCode]] = {}

    def write(self, group: ShareGroup) -> asyncio.Task[ErrorCode]:
        """Write the group's epoch and initialized share partitions, after its earlier writes;
        the task ends with the outcome (NONE once committed)."""
        return self._chain(group.group_id, lambda: self._records(group))

    def delete(self, group_id: str) -> asyncio.Task[ErrorCode]:
        """Tombstones for the group's records: it is gone after a restart too."""
        return self._chain(
            group_id,
            lambda: [
                (ShareGroupKey(SHARE_STATE_PARTITION_METADATA, group_id), None),
                (ShareGroupKey(SHARE_GROUP_METADATA, group_id), None),
            ],
        )

    def _records(self, group: ShareGroup) -> Records:
        topics = {
            topic_id: (self._topic_name(topic_id), frozenset(partitions))
            for topic_id, partitions in group.initialized.items()
        }
        return [
            (ShareGroupKey(SHARE_GROUP_METADATA, group.group_id),
             ShareGroupEpochValue(group.group_epoch)),
            (ShareGroupKey(SHARE_STATE_PARTITION_METADATA, group.group_id),
             InitializedTopicsValue(topics)),
        ]  # fmt: skip

    def _chain(self, group_id: str, records: Callable[[], Records]) -> asyncio.Task[ErrorCode]:
        previous = self._last.get(group_id)
        task = asyncio.get_running_loop().create_task(self._write(group_id, previous, records))
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
        records: Callable[[], Records],
    ) -> ErrorCode:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            shard = self._shard_for(group_id)
            code = await shard.write(records(), _ignore)
        except CoordinatorError as exc:
            code = exc.code
        except Exception:  # nobody may await this task: say it here
            log.exception("share group write failed", group=group_id)
            return ErrorCode.unknown_server_error
        if code is not ErrorCode.none:
            log.warning("share group not written", group=group_id, error=code.name)
        return code


def _ignore(_code: ErrorCode) -> None:
    """The shard's in-log-order callback: the groups in memory already have the change."""


def restore(
    groups: dict[str, ShareGroup],
    shard: CoordinatorShard,
    coordinated_by: Callable[[str], int],
) -> None:
    """A `__consumer_offsets` partition was loaded here: its share groups replace the ones in
    `groups` it coordinates (left from an earlier leadership, or gone since), without members."""
    for group_id in [g for g in groups if coordinated_by(g) == shard.index]:
        if group_id not in shard.share_groups:
            del groups[group_id]
    for group_id, persisted in shard.share_groups.items():
        groups[group_id] = restored(group_id, persisted)


def restored(group_id: str, persisted: PersistedShareGroup) -> ShareGroup:
    return ShareGroup(
        group_id,
        group_epoch=persisted.epoch,
        assignment_epoch=persisted.epoch,
        initialized={
            topic_id: set(partitions) for topic_id, (_, partitions) in persisted.initialized.items()
        },
    )
