"""Raw requests of the classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and a
member's OffsetCommit, for the classic scenario. Member ids are chosen by the broker, so answers
name them by label (`Members`): the first id seen is m1, the next m2."""

from __future__ import annotations

import struct
from datetime import timedelta
from typing import Any

import raw
from context import Context
from kio.schema.heartbeat.v4.request import HeartbeatRequest
from kio.schema.heartbeat.v4.response import HeartbeatResponse
from kio.schema.join_group.v9 import request as join_req
from kio.schema.join_group.v9.response import JoinGroupResponse
from kio.schema.leave_group.v5 import request as leave_req
from kio.schema.leave_group.v5.response import LeaveGroupResponse
from kio.schema.offset_commit.v9 import request as commit_req
from kio.schema.offset_commit.v9.response import OffsetCommitResponse
from kio.schema.sync_group.v5 import request as sync_req
from kio.schema.sync_group.v5.response import SyncGroupResponse
from raw import request


def prepare(ctx: Context, topic: str, group: str, partitions: int = 1) -> str:
    """Create the topic (recorded) and wait for its partitions and the group's coordinator;
    the bootstrap address."""
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, topic, partitions))
    raw.await_partitions(b, topic, partitions)
    raw.await_coordinator(b, group)
    return b


def subscription(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0: the topics, no user data."""
    out = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        out += struct.pack(">h", len(topic)) + topic.encode()
    return out + struct.pack(">i", -1)


def modern_group(answer: Any) -> dict[str, Any]:
    """What ConsumerGroupDescribe and ShareGroupDescribe both say of a group: its state, epochs
    and assignor."""
    return {
        "error_code": answer.error_code,
        "group_state": answer.group_state,
        "group_epoch": answer.group_epoch,
        "assignment_epoch": answer.assignment_epoch,
        "assignor_name": answer.assignor_name,
    }


class Members:
    """Broker-chosen member ids, named by the order they were first seen."""

    def __init__(self) -> None:
        self.labels: dict[str, str] = {"": ""}

    def label(self, member_id: str) -> str:
        if member_id not in self.labels:
            self.labels[member_id] = f"m{len(self.labels)}"
        return self.labels[member_id]


def join(
    bootstrap: str,
    members: Members,
    group: str,
    member_id: str = "",
    *,
    protocol_type: str = "consumer",
    protocols: tuple[tuple[str, bytes], ...] = (),
    session_ms: int = 10_000,
    rebalance_ms: int = 10_000,
    instance: str | None = None,
) -> tuple[str, int, dict[str, Any]]:
    """(member id, generation, the answer with member ids as labels); `instance`: a static
    member's group.instance.id (KIP-345)."""
    body = join_req.JoinGroupRequest(
        group_id=group,
        session_timeout=timedelta(milliseconds=session_ms),
        rebalance_timeout=timedelta(milliseconds=rebalance_ms),
        member_id=member_id, group_instance_id=instance, protocol_type=protocol_type,
        protocols=tuple(join_req.JoinGroupRequestProtocol(name=n, metadata=m)
                        for n, m in protocols),
    )  # fmt: skip
    answer = request(bootstrap, body, JoinGroupResponse)
    return answer.member_id, answer.generation_id, {
        "error_code": answer.error_code,
        "generation_id": answer.generation_id,
        "protocol_type": answer.protocol_type,
        "protocol_name": answer.protocol_name,
        "leader": members.label(answer.leader),
        "member_id": members.label(answer.member_id),
        "members": sorted((members.label(m.member_id), m.group_instance_id, m.metadata.hex())
                          for m in answer.members),
        "skip_assignment": answer.skip_assignment,
    }


def sync(
    bootstrap: str,
    group: str,
    member_id: str,
    generation: int,
    assignments: dict[str, bytes] | None = None,
    protocol_type: str | None = "consumer",
    protocol_name: str | None = "range",
    instance: str | None = None,
) -> Any:
    body = sync_req.SyncGroupRequest(
        group_id=group, generation_id=generation, member_id=member_id, group_instance_id=instance,
        protocol_type=protocol_type, protocol_name=protocol_name,
        assignments=tuple(sync_req.SyncGroupRequestAssignment(member_id=m, assignment=a)
                          for m, a in (assignments or {}).items()),
    )  # fmt: skip
    answer = request(bootstrap, body, SyncGroupResponse)
    return {
        "error_code": answer.error_code,
        "protocol_type": answer.protocol_type,
        "protocol_name": answer.protocol_name,
        "assignment": answer.assignment.hex(),  # opaque to the broker, not records
    }


def heartbeat(
    bootstrap: str, group: str, member_id: str, generation: int, instance: str | None = None
) -> Any:
    body = HeartbeatRequest(
        group_id=group, generation_id=generation, member_id=member_id, group_instance_id=instance
    )
    return request(bootstrap, body, HeartbeatResponse).error_code


def leave(
    bootstrap: str, members: Members, group: str, member_ids: list[str],
    instances: list[str | None] | None = None,
) -> Any:
    body = leave_req.LeaveGroupRequest(
        group_id=group,
        members=tuple(leave_req.MemberIdentity(member_id=m, group_instance_id=i)
                      for m, i in zip(member_ids, instances or [None] * len(member_ids),
                                      strict=True)),
    )  # fmt: skip
    answer = request(bootstrap, body, LeaveGroupResponse)
    return {
        "error_code": answer.error_code,
        "members": [(members.label(m.member_id), m.group_instance_id, m.error_code)
                    for m in answer.members],
    }


def commit(
    bootstrap: str, group: str, member_id: str, generation: int, topic: str, offset: int,
    instance: str | None = None,
) -> Any:
    """A member's commit of partition 0 at `generation`."""
    body = commit_req.OffsetCommitRequest(
        group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
        group_instance_id=instance,
        topics=(commit_req.OffsetCommitRequestTopic(
            name=topic,
            partitions=(commit_req.OffsetCommitRequestPartition(
                partition_index=0, committed_offset=offset, committed_leader_epoch=-1,
                committed_metadata=None),),
        ),),
    )  # fmt: skip
    return request(bootstrap, body, OffsetCommitResponse).topics[0].partitions[0].error_code
