"""DescribeAcls (29), CreateAcls (30) and DeleteAcls (31): the ACLs live in the cluster metadata
log (replicated, kept across restarts). Creating and deleting are the controller's (forwarded)
and need ALTER on the cluster; describing needs DESCRIBE on it. Without an authorizer the three
answer SECURITY_DISABLED, as Kafka does."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from rafka.broker.broker import Broker
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.partition.append import AppendError
from rafka.broker.security.acl import (
    CLUSTER_NAME,
    AclBinding,
    AclError,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    acl_record,
)
from rafka.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)
NO_AUTHORIZER = "No Authorizer is configured on the broker"


def _enum(kind: type, value: int):  # noqa: ANN202 - one of the ACL IntEnums
    try:
        return kind(int(value))
    except ValueError:
        return kind(0)  # UNKNOWN: refused by the checks


def _filter(
    resource_type: int, name: str | None, pattern: int, principal: str | None,
    host: str | None, operation: int, permission: int,
) -> AclFilter:  # fmt: skip
    return AclFilter(
        _enum(ResourceType, resource_type), name, _enum(PatternType, pattern), principal, host,
        _enum(Operation, operation), _enum(Permission, permission),
    )  # fmt: skip


def _acl_fields(acl: AclBinding) -> dict[str, Any]:
    return {
        "principal": acl.principal,
        "host": acl.host,
        "operation": int(acl.operation),
        "permission_type": int(acl.permission),
    }


def make_describe_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        def failed(code: ErrorCode, message: str) -> dict[str, Any]:
            return {"throttle_time": 0, "error_code": code, "error_message": message,
                    "resources": []}  # fmt: skip

        if broker.authorizer is None:
            return failed(ErrorCode.security_disabled, NO_AUTHORIZER)
        if not ctx.authorize(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
            return failed(ErrorCode.cluster_authorization_failed, "Cluster authorization failed")
        wanted = _filter(
            request.resource_type_filter, request.resource_name_filter,
            getattr(request, "pattern_type_filter", int(PatternType.LITERAL)),
            request.principal_filter, request.host_filter, request.operation,
            request.permission_type,
        )  # fmt: skip
        try:
            wanted.check()
        except AclError as exc:
            return failed(ErrorCode.invalid_request, str(exc))
        assert broker.metadata is not None
        by_resource: dict[tuple[int, str, int], list[dict[str, Any]]] = {}
        for acl in broker.metadata.image.acls.values():
            if wanted.matches(acl):
                key = (int(acl.resource_type), acl.resource_name, int(acl.pattern_type))
                by_resource.setdefault(key, []).append(_acl_fields(acl))
        resources = [
            {"resource_type": t, "resource_name": n, "pattern_type": p, "acls": acls}
            for (t, n, p), acls in sorted(by_resource.items())
        ]
        return {"throttle_time": 0, "error_code": 0, "error_message": None, "resources": resources}

    return handle


def make_create_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        count = len(request.creations)
        if broker.authorizer is None:
            error = {"error_code": ErrorCode.security_disabled, "error_message": NO_AUTHORIZER}
            return {"throttle_time": 0, "results": [error] * count}
        if not ctx.authorize(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
            error = {"error_code": ErrorCode.cluster_authorization_failed,
                     "error_message": "Cluster authorization failed"}  # fmt: skip
            return {"throttle_time": 0, "results": [error] * count}
        results: list[dict[str, Any]] = []
        records = []
        for creation in request.creations:
            acl = AclBinding(
                _enum(ResourceType, creation.resource_type), creation.resource_name,
                _enum(PatternType, getattr(creation, "resource_pattern_type", 3)),
                creation.principal, creation.host, _enum(Operation, creation.operation),
                _enum(Permission, creation.permission_type),
            )  # fmt: skip
            try:
                acl.check()
            except AclError as exc:
                results.append({"error_code": ErrorCode.invalid_request, "error_message": str(exc)})
                continue
            assert broker.metadata is not None
            if acl not in broker.metadata.image.acls.values():  # creating twice is a no-op
                records.append(acl_record(uuid.uuid4().hex, acl))
            results.append({"error_code": ErrorCode.none, "error_message": None})
        if records:
            try:
                await _propose(broker, records)
            except AppendError as exc:
                return {"throttle_time": 0, "results": [
                    {"error_code": exc.code, "error_message": exc.message}] * count}  # fmt: skip
            log.info("ACLs created", count=len(records))
        return {"throttle_time": 0, "results": results}

    return handle


def make_delete_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        def failed(code: ErrorCode, message: str) -> dict[str, Any]:
            return {"error_code": code, "error_message": message, "matching_acls": []}

        count = len(request.filters)
        if broker.authorizer is None:
            disabled = failed(ErrorCode.security_disabled, NO_AUTHORIZER)
            return {"throttle_time": 0, "filter_results": [disabled] * count}
        if not ctx.authorize(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
            denied = failed(ErrorCode.cluster_authorization_failed, "Cluster authorization failed")
            return {"throttle_time": 0, "filter_results": [denied] * count}
        assert broker.metadata is not None
        existing = dict(broker.metadata.image.acls)
        results, records, removed = [], [], set()
        for item in request.filters:
            wanted = _filter(
                item.resource_type_filter, item.resource_name_filter,
                getattr(item, "pattern_type_filter", int(PatternType.LITERAL)),
                item.principal_filter, item.host_filter, item.operation, item.permission_type,
            )  # fmt: skip
            try:
                wanted.check()
            except AclError as exc:
                results.append(failed(ErrorCode.invalid_request, str(exc)))
                continue
            matching = []
            for acl_id, acl in existing.items():
                if wanted.matches(acl):
                    matching.append({
                        "error_code": 0, "error_message": None,
                        "resource_type": int(acl.resource_type),
                        "resource_name": acl.resource_name,
                        "pattern_type": int(acl.pattern_type), **_acl_fields(acl),
                    })  # fmt: skip
                    if acl_id not in removed:
                        removed.add(acl_id)
                        records.append({"type": "remove_acl", "id": acl_id})
            results.append({"error_code": 0, "error_message": None, "matching_acls": matching})
        if records:
            try:
                await _propose(broker, records)
            except AppendError as exc:
                return {"throttle_time": 0,
                        "filter_results": [failed(exc.code, exc.message)] * count}  # fmt: skip
            log.info("ACLs deleted", count=len(records))
        return {"throttle_time": 0, "filter_results": results}

    return handle


async def _propose(broker: Broker, records: list[dict[str, Any]]) -> None:
    assert broker.metadata is not None
    await broker.metadata.wait_caught_up_as_leader(5.0)
    await broker.metadata.propose(records)
