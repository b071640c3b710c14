"""FindCoordinator and the classic group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
DescribeGroups, ListGroups and DeleteGroups. The rules live in rafka.broker.coordinator.groups;
these handlers translate between request versions and the coordinator, after the ACL checks
Kafka's KafkaApis makes (READ on the group to take part in it, DESCRIBE to look at it, DELETE
to delete it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.coordinator.groups.classic_rebalance import join_error, sync_result
from rafka.broker.coordinator.groups.coordinator import (
    KEY_TYPE_GROUP,
    KEY_TYPE_TRANSACTION,
    CoordinatorError,
)
from rafka.broker.coordinator.groups.group import GroupState
from rafka.broker.coordinator.groups.membership import JoinRequest
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.protocol.errors import ErrorCode

# Kafka's "authorized operations not requested" marker.
AUTHORIZED_OPERATIONS_OMITTED = -2147483648
# The operations a group has in Kafka 4 (AclEntry.supportedOperations), group configs included.
GROUP_OPERATIONS = (
    Operation.READ, Operation.DESCRIBE, Operation.DELETE, Operation.DESCRIBE_CONFIGS,
    Operation.ALTER_CONFIGS,
)  # fmt: skip
# What FindCoordinator asks for each key type: DESCRIBE on the group or transactional id.
_COORDINATOR_KEY_ACL = {
    KEY_TYPE_GROUP: (ResourceType.GROUP, ErrorCode.group_authorization_failed),
    KEY_TYPE_TRANSACTION: (
        ResourceType.TRANSACTIONAL_ID,
        ErrorCode.transactional_id_authorization_failed,
    ),
}
_AUTH_MESSAGES = {
    ErrorCode.group_authorization_failed: "Group authorization failed.",
    ErrorCode.transactional_id_authorization_failed: "Transactional Id authorization failed.",
}


def millis(value: timedelta) -> int:
    return round(value / timedelta(milliseconds=1))


def client_host(ctx: RequestContext) -> str:
    """The peer address the way Kafka prints it (InetAddress.toString: "/127.0.0.1")."""
    peer = ctx.connection.peer
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return f"/{host}"


def make_find_coordinator_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        batched = ctx.api_version >= 4
        keys = list(request.coordinator_keys) if batched else [request.key]
        key_type = getattr(request, "key_type", 0)
        coordinators = []
        for key in keys:
            refused = _refused_coordinator_key(ctx, key_type, key)
            if refused is not None:
                # As Kafka: no node and (v4+) no message; no lookup either, so no internal
                # topic is created for a client that may not use it.
                coordinators.append(
                    {
                        "key": key,
                        "node_id": -1,
                        "host": "",
                        "port": -1,
                        "error_code": refused,
                        "error_message": None if batched else _AUTH_MESSAGES[refused],
                    }
                )
                continue
            if key_type == KEY_TYPE_TRANSACTION:
                found = await broker.txn.find_coordinator(key)
            else:
                found = await broker.groups.find_coordinator(key_type, key)
            host, port = found.host, found.port
            for endpoint in broker.endpoints_for(ctx.connection.listener):
                if endpoint.node_id == found.node_id:  # its address on this listener
                    host, port = endpoint.host, endpoint.port
            coordinators.append(
                {
                    "key": key,
                    "node_id": found.node_id,
                    "host": host,
                    "port": port,
                    "error_code": found.error,
                    "error_message": found.message,
                }
            )
        if batched:
            return {"throttle_time": 0, "coordinators": coordinators}
        only = coordinators[0] if coordinators else {}
        return {"throttle_time": 0, **only}

    return handle


def _refused_coordinator_key(ctx: RequestContext, key_type: int, key: str) -> ErrorCode | None:
    """The authorization error for looking up `key`'s coordinator, or None when allowed."""
    acl = _COORDINATOR_KEY_ACL.get(key_type)
    if acl is None:
        return None  # an unknown key type: the coordinator answers it
    resource_type, error = acl
    return None if ctx.authorize(Operation.DESCRIBE, resource_type, key) else error


def may_read_group(ctx: RequestContext, group_id: str) -> bool:
    """READ on the group: what JoinGroup, SyncGroup, Heartbeat and LeaveGroup need."""
    return ctx.authorize(Operation.READ, ResourceType.GROUP, group_id)


def make_join_group_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        version = ctx.api_version
        session_timeout = millis(request.session_timeout)
        rebalance_timeout = millis(request.rebalance_timeout) if version >= 1 else -1
        if rebalance_timeout < 0:
            rebalance_timeout = session_timeout  # v0 had one timeout for both
        join = JoinRequest(
            group_id=request.group_id,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            client_id=ctx.header.client_id or "",
            client_host=client_host(ctx),
            session_timeout_ms=session_timeout,
            rebalance_timeout_ms=rebalance_timeout,
            protocol_type=request.protocol_type,
            protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
            require_known_member_id=version >= 4,
            supports_skip_assignment=version >= 9,
            reason=getattr(request, "reason", None),
        )
        if not may_read_group(ctx, request.group_id):
            result = join_error(ErrorCode.group_authorization_failed)  # no member id, as Kafka
        else:
            try:
                result = await broker.groups.membership.join_group(join)
            except CoordinatorError as exc:
                result = join_error(exc.code, request.member_id)
        if version < 7:
            # Non-nullable before v7: errors carry an empty protocol name.
            result["protocol_name"] = result["protocol_name"] or ""
        result["leader"] = result["leader"] or ""
        result["throttle_time"] = 0
        return result

    return handle


def make_sync_group_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not may_read_group(ctx, request.group_id):
            return {"throttle_time": 0, **sync_result(ErrorCode.group_authorization_failed)}
        try:
            result = await broker.groups.membership.sync_group(
                request.group_id,
                request.generation_id,
                request.member_id,
                getattr(request, "group_instance_id", None),
                getattr(request, "protocol_type", None),
                getattr(request, "protocol_name", None),
                {a.member_id: bytes(a.assignment) for a in request.assignments},
            )
        except CoordinatorError as exc:
            result = sync_result(exc.code)
        result["throttle_time"] = 0
        return result

    return handle


def make_heartbeat_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not may_read_group(ctx, request.group_id):
            return {"throttle_time": 0, "error_code": ErrorCode.group_authorization_failed}
        try:
            code = broker.groups.membership.heartbeat(
                request.group_id,
                request.generation_id,
                request.member_id,
                getattr(request, "group_instance_id", None),
            )
        except CoordinatorError as exc:
            code = exc.code
        return {"throttle_time": 0, "error_code": code}

    return handle


def make_leave_group_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        batched = ctx.api_version >= 3
        if not may_read_group(ctx, request.group_id):
            # The whole request fails, with no member results (Kafka's error response).
            return {
                "throttle_time": 0,
                "error_code": ErrorCode.group_authorization_failed,
                "members": [],
            }
        if batched:
            leaving = [(m.member_id, m.group_instance_id) for m in request.members]
        else:
            leaving = [(request.member_id, None)]
        try:
            code, member_codes = broker.groups.membership.leave_group(request.group_id, leaving)
        except CoordinatorError as exc:
            code, member_codes = exc.code, []
        if not batched:
            if code is ErrorCode.none and member_codes:
                code = member_codes[0]
            return {"throttle_time": 0, "error_code": code}
        members = [
            {"member_id": member_id, "group_instance_id": instance_id, "error_code": member_code}
            for (member_id, instance_id), member_code in zip(leaving, member_codes, strict=False)
        ]
        return {"throttle_time": 0, "error_code": code, "members": members}

    return handle


def make_describe_groups_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        with_operations = bool(getattr(request, "include_authorized_operations", False))
        described = []
        for group_id in request.groups:
            if not ctx.authorize(Operation.DESCRIBE, ResourceType.GROUP, group_id):
                described.append(_group_entry(group_id, ErrorCode.group_authorization_failed))
                continue
            entry = _describe(broker, group_id, ctx.api_version)
            if with_operations and entry["error_code"] == ErrorCode.none:
                entry["authorized_operations"] = group_operations(ctx, group_id)
            described.append(entry)
        return {"throttle_time": 0, "groups": described}

    return handle


def group_operations(ctx: RequestContext, group_id: str) -> int:
    """Kafka's bit field of what the principal may do with the group (every group operation
    without an authorizer). Asked operation by operation rather than through
    ctx.authorized_operations, whose table lacks the group config operations Kafka 4 has."""
    bits = 0
    for operation in GROUP_OPERATIONS:
        if ctx.authorize(operation, ResourceType.GROUP, group_id):
            bits |= 1 << operation
    return bits


def _group_entry(group_id: str, code: ErrorCode) -> dict[str, Any]:
    """A DescribeGroups entry with nothing known (Kafka's DescribeGroupsResponse.groupError)."""
    return {
        "error_code": code,
        "error_message": None,
        "group_id": group_id,
        "group_state": "",
        "protocol_type": "",
        "protocol_data": "",
        "members": [],
        "authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


def _describe(broker: Broker, group_id: str, version: int) -> dict:
    entry = _group_entry(group_id, ErrorCode.none)
    try:
        group = broker.groups.describe_group(group_id)
    except CoordinatorError as exc:
        entry["error_code"] = exc.code
        return entry
    if group is None:
        entry["group_state"] = GroupState.DEAD.value
        if version >= 6:
            entry["error_code"] = ErrorCode.group_id_not_found
            entry["error_message"] = f"Group {group_id} not found."
        return entry
    stable = group.state is GroupState.STABLE
    entry.update(
        group_state=group.state.value,
        protocol_type=group.protocol_type or "",
        protocol_data=(group.protocol_name or "") if stable else "",
        members=[
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                # Metadata and assignment only mean something once the group is Stable.
                "member_metadata": m.metadata(group.protocol_name) if stable else b"",
                "member_assignment": m.assignment if stable else b"",
            }
            for m in group.members.values()
        ],
    )
    return entry


def make_list_groups_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        states = set(getattr(request, "states_filter", ()) or ())
        types = set(getattr(request, "types_filter", ()) or ())
        code, groups = broker.groups.list_groups(states, types)
        # DESCRIBE on the cluster lists every group (Kafka keeps it for compatibility);
        # otherwise only the groups the principal may DESCRIBE.
        if not ctx.authorize(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
            groups = [
                g
                for g in groups
                if ctx.authorize(Operation.DESCRIBE, ResourceType.GROUP, g["group_id"])
            ]
        return {"throttle_time": 0, "error_code": code, "groups": groups}

    return handle


def make_delete_groups_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        wanted = list(dict.fromkeys(request.groups_names))  # each group once, as Kafka
        allowed = [g for g in wanted if ctx.authorize(Operation.DELETE, ResourceType.GROUP, g)]
        codes = dict(await broker.groups.delete_groups(allowed)) if allowed else {}
        return {
            "throttle_time": 0,
            "results": [
                {
                    "group_id": g,
                    "error_code": codes.get(g, ErrorCode.group_authorization_failed),
                }
                for g in wanted
            ],
        }

    return handle
