"""The ACL requests of `rafka acl`: CreateAcls, DescribeAcls, DeleteAcls (v1-3), with Kafka's
resource, pattern, operation and permission codes (rafka.broker.security.acl)."""

from __future__ import annotations

from typing import Any

from rafka.broker.security.acl import (
    AclBinding,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from rafka.cli.admin_client import AdminClient, AdminRequestError
from rafka.cli.kafka_client import KafkaClientError
from rafka.protocol.errors import ErrorCode

DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31


def acl_json(acl: AclBinding) -> dict[str, str]:
    return {
        "resource_type": acl.resource_type.name, "resource_name": acl.resource_name,
        "pattern_type": acl.pattern_type.name, "principal": acl.principal, "host": acl.host,
        "operation": acl.operation.name, "permission": acl.permission.name,
    }  # fmt: skip


def acl_filter(
    resource_type: ResourceType = ResourceType.ANY,
    resource_name: str | None = None,
    pattern_type: PatternType = PatternType.ANY,
    principal: str | None = None,
    host: str | None = None,
    operation: Operation = Operation.ANY,
    permission: Permission = Permission.ANY,
) -> AclFilter:
    """A DescribeAcls/DeleteAcls filter; what is not named matches anything."""
    return AclFilter(
        resource_type, resource_name, pattern_type, principal, host, operation, permission
    )


def _filter_fields(query: AclFilter) -> dict[str, Any]:
    return {
        "resource_type_filter": int(query.resource_type),
        "resource_name_filter": query.resource_name,
        "pattern_type_filter": int(query.pattern_type),
        "principal_filter": query.principal,
        "host_filter": query.host,
        "operation": int(query.operation),
        "permission_type": int(query.permission),
    }


def _version(client: AdminClient, api_key: int) -> int:
    conn = client._any()  # noqa: SLF001 - the admin client's connection, as its own methods do
    supported = conn.versions.get(api_key)
    if supported is None or supported[1] < 1:
        raise KafkaClientError(f"{conn.address} does not support the ACL APIs")
    return min(supported[1], 3)


def _send(client: AdminClient, api_key: int, data: dict[str, Any]) -> Any:
    conn = client._any()  # noqa: SLF001
    return conn.send(api_key, _version(client, api_key), data)


def create_acls(client: AdminClient, acls: list[AclBinding]) -> None:
    creations = [
        {"resource_type": int(a.resource_type), "resource_name": a.resource_name,
         "resource_pattern_type": int(a.pattern_type), "principal": a.principal,
         "host": a.host, "operation": int(a.operation), "permission_type": int(a.permission)}
        for a in acls
    ]  # fmt: skip
    response = _send(client, CREATE_ACLS, {"creations": creations})
    for acl, result in zip(acls, response.results, strict=True):
        if result.error_code != ErrorCode.none:
            raise AdminRequestError(f"ACL {acl.principal} {acl.operation.name} "
                                    f"{acl.resource_type.name} {acl.resource_name!r}",
                                    result.error_code, result.error_message)  # fmt: skip


def describe_acls(client: AdminClient, query: AclFilter) -> list[AclBinding]:
    response = _send(client, DESCRIBE_ACLS, _filter_fields(query))
    if response.error_code != ErrorCode.none:
        raise AdminRequestError("DescribeAcls", response.error_code, response.error_message)
    return [
        AclBinding(ResourceType(r.resource_type), r.resource_name, PatternType(r.pattern_type),
            a.principal, a.host, Operation(a.operation), Permission(a.permission_type))
        for r in response.resources
        for a in r.acls
    ]  # fmt: skip


def delete_acls(client: AdminClient, queries: list[AclFilter]) -> list[AclBinding]:
    response = _send(client, DELETE_ACLS, {"filters": [_filter_fields(q) for q in queries]})
    removed = []
    for result in response.filter_results:
        if result.error_code != ErrorCode.none:
            raise AdminRequestError("DeleteAcls", result.error_code, result.error_message)
        removed += [
            AclBinding(ResourceType(m.resource_type), m.resource_name, PatternType(m.pattern_type),
                m.principal, m.host, Operation(m.operation), Permission(m.permission_type))
            for m in result.matching_acls
        ]  # fmt: skip
    return removed
