"""The consumer group protocol's APIs (KIP-848): ConsumerGroupHeartbeat (READ on the group) and
ConsumerGroupDescribe (DESCRIBE on the group). The rules live in
rafka.broker.coordinator.groups.consumer_heartbeat."""

from __future__ import annotations

from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.coordinator.groups.consumer_assignors import Assignment
from rafka.broker.coordinator.groups.consumer_group import ConsumerGroup
from rafka.broker.coordinator.groups.consumer_heartbeat import HeartbeatRequest
from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.handlers.groups import client_host, group_operations, may_read_group, millis
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.acl import Operation, ResourceType
from rafka.protocol.errors import ErrorCode

# ConsumerGroupDescribe v1's member type: 0 classic (a member on the classic protocol after an
# online upgrade), 1 consumer.
CLASSIC_MEMBER_TYPE = 0
CONSUMER_MEMBER_TYPE = 1


def _owned(request: Any) -> Assignment | None:
    if request.topic_partitions is None:
        return None
    owned: Assignment = {}
    for entry in request.topic_partitions:
        if entry.topic_id is not None and entry.partitions:
            owned[entry.topic_id] = owned.get(entry.topic_id, frozenset()) | frozenset(
                entry.partitions
            )
    return owned


def make_consumer_group_heartbeat_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not may_read_group(ctx, request.group_id):
            return {
                "throttle_time": 0,
                "error_code": ErrorCode.group_authorization_failed,
                "member_epoch": 0,
                "heartbeat_interval": 0,
            }
        names = request.subscribed_topic_names
        result = await broker.groups.consumer.heartbeat(
            HeartbeatRequest(
                group_id=request.group_id,
                member_id=request.member_id,
                member_epoch=request.member_epoch,
                instance_id=request.instance_id,
                rack_id=request.rack_id,
                rebalance_timeout_ms=millis(request.rebalance_timeout),
                subscribed_topic_names=None if names is None else tuple(names),
                subscribed_topic_regex=request.subscribed_topic_regex,  # "" clears it
                server_assignor=request.server_assignor,
                owned=_owned(request),
                client_id=ctx.header.client_id or "",
                client_host=client_host(ctx),
                api_version=ctx.api_version,
            )
        )
        response: dict[str, Any] = {
            "throttle_time": 0,
            "error_code": result.error,
            "error_message": result.message,
            "member_id": result.member_id,
            "member_epoch": result.member_epoch,
            "heartbeat_interval": result.heartbeat_interval_ms,
        }
        if result.assignment is not None:
            response["assignment"] = {
                "topic_partitions": [
                    {"topic_id": topic_id, "partitions": sorted(partitions)}
                    for topic_id, partitions in sorted(
                        result.assignment.items(), key=lambda item: str(item[0])
                    )
                ]
            }
        return response

    return handle


def _partitions(group: ConsumerGroup, assignment: Assignment) -> dict[str, Any]:
    return {
        "topic_partitions": [
            {
                "topic_id": topic_id,
                "topic_name": group.topics.get(topic_id, ("", 0))[0],
                "partitions": sorted(partitions),
            }
            for topic_id, partitions in sorted(assignment.items(), key=lambda item: str(item[0]))
        ]
    }


def _described(broker: Broker, ctx: RequestContext, group_id: str, with_ops: bool) -> dict:
    entry: dict[str, Any] = {
        "error_code": ErrorCode.none,
        "error_message": None,
        "group_id": group_id,
        "group_state": "",
        "group_epoch": 0,  # an error leaves the schema's defaults, as Kafka does
        "assignment_epoch": 0,
        "assignor_name": "",
        "members": [],
    }
    if not ctx.authorize(Operation.DESCRIBE, ResourceType.GROUP, group_id):
        entry["error_code"] = ErrorCode.group_authorization_failed
        return entry
    try:
        group = broker.groups.consumer.describe(group_id)
    except CoordinatorError as exc:
        entry.update(error_code=exc.code, error_message=exc.message)
        return entry
    entry.update(
        group_state=group.state.value,
        group_epoch=group.group_epoch,
        assignment_epoch=group.assignment_epoch,
        assignor_name=broker.groups.consumer.assignor_name(group),
        members=[
            {
                "member_id": m.member_id,
                "instance_id": m.instance_id,
                "rack_id": m.rack_id,
                "member_epoch": m.member_epoch,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "subscribed_topic_names": list(m.subscribed_topic_names),
                "subscribed_topic_regex": m.subscribed_topic_regex or "",  # Kafka: "" if none
                "assignment": _partitions(group, m.assigned),
                "target_assignment": _partitions(group, group.target.get(m.member_id, {})),
                "member_type": (
                    CLASSIC_MEMBER_TYPE if m.classic is not None else CONSUMER_MEMBER_TYPE
                ),
            }
            for m in group.members.values()
        ],
    )
    if with_ops:
        entry["authorized_operations"] = group_operations(ctx, group_id)
    return entry


def make_consumer_group_describe_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        with_ops = bool(request.include_authorized_operations)
        return {
            "throttle_time": 0,
            "groups": [_described(broker, ctx, g, with_ops) for g in request.group_ids],
        }

    return handle
