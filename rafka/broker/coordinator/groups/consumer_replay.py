"""Rebuilding consumer groups from their records while a shard replays `__consumer_offsets`:
the newest record of each key wins and a tombstone removes its part, in log order."""

from __future__ import annotations

from rafka.broker.coordinator.groups.consumer_group import (
    ConsumerGroup,
    ConsumerMember,
    MemberState,
)
from rafka.broker.coordinator.groups.consumer_records import (
    ConsumerKey,
    ConsumerValue,
    CurrentAssignmentValue,
    GroupEpochValue,
    MemberMetadataValue,
    PartitionMetadataValue,
    TargetEpochValue,
    TargetMemberValue,
)


class ConsumerGroupsReplay:
    def __init__(self) -> None:
        self.groups: dict[str, ConsumerGroup] = {}
        self._exists: dict[str, bool] = {}  # group metadata seen, and not tombstoned

    def apply(self, key: ConsumerKey, value: ConsumerValue | None) -> None:
        group = self.groups.get(key.group)
        if group is None:
            group = self.groups[key.group] = ConsumerGroup(key.group)
        member_id = key.member_id
        if isinstance(value, GroupEpochValue):
            group.group_epoch = value.epoch
            self._exists[key.group] = True
        elif isinstance(value, PartitionMetadataValue):
            group.topics = {tid: (name, n) for tid, name, n in value.topics}
        elif isinstance(value, TargetEpochValue):
            group.assignment_epoch = value.assignment_epoch
        elif member_id is None:
            if value is None and key.record_type == 3:
                self._exists[key.group] = False  # the group was deleted
        elif value is None:
            member = group.members.get(member_id)
            if key.record_type == 5:
                group.remove(member_id)
            elif key.record_type == 7:
                group.target.pop(member_id, None)
            elif member is not None:
                member.assigned, member.pending_revocation = {}, {}
                member.assignment_epochs = {}
        else:
            member = group.members.get(member_id)
            if member is None:
                member = ConsumerMember(member_id)
                group.members[member_id] = member
            if isinstance(value, MemberMetadataValue):
                member.instance_id = value.instance_id
                member.rack_id = value.rack_id
                member.client_id = value.client_id
                member.client_host = value.client_host
                member.subscribed_topic_names = value.subscribed_topic_names
                member.subscribed_topic_regex = value.subscribed_topic_regex
                member.rebalance_timeout_ms = value.rebalance_timeout_ms
                member.server_assignor = value.server_assignor
                member.classic = value.classic
                if value.instance_id is not None:
                    group.static_members[value.instance_id] = member_id
            elif isinstance(value, TargetMemberValue):
                group.target[member_id] = value.partitions
            elif isinstance(value, CurrentAssignmentValue):
                member.member_epoch = value.member_epoch
                member.previous_member_epoch = value.previous_member_epoch
                member.state = (
                    MemberState(value.state)
                    if value.state in MemberState._value2member_map_
                    else MemberState.UNKNOWN
                )
                member.assigned = value.assigned
                member.pending_revocation = value.pending_revocation
                member.assignment_epochs = value.epochs

    def build(self) -> dict[str, ConsumerGroup]:
        return {gid: g for gid, g in self.groups.items() if self._exists.get(gid)}
