"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topic, broker and group
resources (group configs: rafka.broker.group_configs).

A topic's configs are its overrides; a broker resource is either this node ("<node id>") or the
cluster-wide default (""). AlterConfigs replaces a resource's whole set of overrides, as Kafka's
legacy API does; IncrementalAlterConfigs applies SET, DELETE, APPEND and SUBTRACT to it.

Authorization is Kafka's: DESCRIBE_CONFIGS (ALTER_CONFIGS) on the topic for a topic resource,
on the cluster for broker-wide ones (broker, broker logger, client metrics), on the group for a
group; a refused resource answers TOPIC_, CLUSTER_ or GROUP_AUTHORIZATION_FAILED alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rafka.broker import group_configs
from rafka.broker.broker import Broker
from rafka.broker.config import DEFINITIONS, render_value
from rafka.broker.config_catalog import (
    BrokerConfigs,
    ConfigRequestError,
    DescribedConfig,
    ResourceType,
    describe_broker,
    describe_broker_defaults,
    describe_topic,
    is_list_config,
)
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.acl import CLUSTER_NAME, Operation
from rafka.broker.security.acl import ResourceType as AclResource
from rafka.broker.topic_admin import (
    AdminError,
    alter_broker_configs,
    alter_topic_configs,
    broker_configs,
    broker_resource_key,
    validate_topic_name,
)
from rafka.protocol.errors import ErrorCode

OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
_OP_NAMES = {OP_APPEND: "APPEND", OP_SUBTRACT: "SUBTRACT"}

ConfigChange = Callable[[dict[str, str]], dict[str, str]]
_Failure = (AdminError, ConfigRequestError)

# Config resource types without a ResourceType here, whose authorization Kafka checks first
# (client metrics are not served; groups are, as ResourceType.GROUP).
CLIENT_METRICS, GROUP = 16, 32
# A config resource type: the ACL resource it is authorized on, and the error when refused.
_GUARDS: dict[int, tuple[AclResource, ErrorCode]] = {
    ResourceType.TOPIC: (AclResource.TOPIC, ErrorCode.topic_authorization_failed),
    ResourceType.BROKER: (AclResource.CLUSTER, ErrorCode.cluster_authorization_failed),
    ResourceType.BROKER_LOGGER: (AclResource.CLUSTER, ErrorCode.cluster_authorization_failed),
    CLIENT_METRICS: (AclResource.CLUSTER, ErrorCode.cluster_authorization_failed),
    GROUP: (AclResource.GROUP, ErrorCode.group_authorization_failed),
}
_DENIED = {
    ErrorCode.topic_authorization_failed: "Topic authorization failed.",
    ErrorCode.cluster_authorization_failed: "Cluster authorization failed.",
    ErrorCode.group_authorization_failed: "Group authorization failed.",
}


def _refusal(
    ctx: RequestContext, operation: Operation, resource_type: int, name: str
) -> ErrorCode | None:
    """The error of a resource the principal may not `operation`; None when allowed, or for a
    type Kafka does not know (answered as unsupported further on)."""
    guard = _GUARDS.get(resource_type)
    if guard is None:
        return None
    acl_type, error = guard
    acl_name = CLUSTER_NAME if acl_type is AclResource.CLUSTER else name
    return None if ctx.authorize(operation, acl_type, acl_name) else error


# -- DescribeConfigs ----------------------------------------------------------------------------


def make_describe_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        with_synonyms = bool(getattr(request, "include_synonyms", False))
        with_docs = bool(getattr(request, "include_documentation", False))
        results = []
        refused = []  # Kafka answers the refused resources after the others
        for resource in request.resources:
            entry: dict[str, Any] = {
                "resource_type": resource.resource_type,
                "resource_name": resource.resource_name,
                "error_message": None,
                "configs": [],
            }
            error = _refusal(
                ctx, Operation.DESCRIBE_CONFIGS, resource.resource_type, resource.resource_name
            )
            if error is not None:
                entry.update(error_code=error, error_message=_DENIED[error])
                refused.append(entry)
                continue
            try:
                described = _describe(broker, resource.resource_type, resource.resource_name)
            except _Failure as exc:
                entry.update(error_code=exc.code, error_message=exc.message)
                results.append(entry)
                continue
            keys = resource.configuration_keys
            if keys:  # null or empty: every config
                wanted = set(keys)
                described = [c for c in described if c.name in wanted]
            entry["error_code"] = ErrorCode.none
            entry["configs"] = [_entry(c, with_synonyms, with_docs) for c in described]
            results.append(entry)
        return {"throttle_time": 0, "results": results + refused}

    return handle


def _describe(broker: Broker, resource_type: int, name: str) -> list[DescribedConfig]:
    if resource_type == ResourceType.TOPIC:
        validate_topic_name(name)
        topic = broker.topic(name)
        if topic is None:
            raise AdminError(ErrorCode.unknown_topic_or_partition, f"Topic {name} does not exist.")
        return describe_topic(topic.configs, broker_configs(broker))
    if resource_type == ResourceType.BROKER:
        key = broker_resource_key(broker, name)
        configs = broker_configs(broker)
        return describe_broker_defaults(configs) if key == "" else describe_broker(configs)
    if resource_type == ResourceType.GROUP:
        return group_configs.describe(broker, name)
    raise AdminError(ErrorCode.invalid_request, f"Unsupported resource type {resource_type}")


def _entry(config: DescribedConfig, with_synonyms: bool, with_docs: bool) -> dict[str, Any]:
    return {
        "name": config.name,
        "value": config.value,
        "read_only": config.read_only,
        "config_source": config.source,
        "is_sensitive": config.sensitive,
        "synonyms": [{"name": n, "value": v, "source": s} for n, v, s in config.synonyms]
        if with_synonyms
        else [],
        "config_type": config.type,
        "documentation": config.doc if with_docs else None,
    }


# -- AlterConfigs and IncrementalAlterConfigs ---------------------------------------------------


def make_alter_handler(broker: Broker):
    """Legacy AlterConfigs: the given configs become the resource's complete set."""

    def plan(resource: Any, current_values: Mapping[str, str | None]) -> ConfigChange:
        wanted = {}
        for config in resource.configs:
            if config.value is None:
                raise ConfigRequestError(
                    ErrorCode.invalid_request, f"Null value not supported for : {config.name}"
                )
            wanted[config.name] = config.value
        return lambda _current: dict(wanted)

    return _make_alter(broker, plan, incremental=False)


def make_incremental_alter_handler(broker: Broker):
    def plan(resource: Any, current_values: Mapping[str, str | None]) -> ConfigChange:
        resource_type = ResourceType(resource.resource_type)
        operations = [(c.name, c.config_operation, c.value) for c in resource.configs]
        for name, op, value in operations:
            if op not in (OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT):
                raise ConfigRequestError(
                    ErrorCode.invalid_request, f"Unknown config operation {op} for {name}"
                )
            if op in _OP_NAMES and not is_list_config(resource_type, name):
                raise ConfigRequestError(
                    ErrorCode.invalid_config,
                    f"Can't {_OP_NAMES[op]} to key {name} because its type is not LIST.",
                )
            if op != OP_DELETE and value is None:
                raise ConfigRequestError(
                    ErrorCode.invalid_request, f"Null value not supported for : {name}"
                )

        def change(current: dict[str, str]) -> dict[str, str]:
            updated = dict(current)
            for name, op, value in operations:
                if op == OP_SET:
                    updated[name] = value
                elif op == OP_DELETE:
                    updated.pop(name, None)
                else:
                    base = updated.get(name, current_values.get(name)) or ""
                    items = [item.strip() for item in base.split(",") if item.strip()]
                    given = [item.strip() for item in _java_split(value)]
                    if op == OP_APPEND:
                        # An empty element ("" or "a, ") is kept, so validation refuses it
                        # as Kafka does ("values must not be empty").
                        items += [item for item in dict.fromkeys(given) if item not in items]
                    else:
                        # Subtracting the last element leaves the empty list, which Kafka
                        # 4.x accepts (an empty cleanup.policy: KIP-1030).
                        items = [item for item in items if item not in given]
                    updated[name] = ",".join(items)
            return updated

        return change

    return _make_alter(broker, plan, incremental=True)


def _java_split(value: str) -> list[str]:
    """Java's String.split(","), which Kafka applies to APPEND/SUBTRACT values: trailing empty
    elements are dropped ("a," is ["a"], "," is []), leading and inner ones kept."""
    parts = value.split(",")
    if len(parts) > 1:
        while parts and parts[-1] == "":
            parts.pop()
    return parts


def _check_null_values(resource: Any, incremental: bool) -> None:
    nulls = [
        c.name
        for c in resource.configs
        if c.value is None and not (incremental and c.config_operation == OP_DELETE)
    ]
    if nulls:
        raise ConfigRequestError(
            ErrorCode.invalid_request, f"Null value not supported for : {', '.join(nulls)}"
        )


def _make_alter(
    broker: Broker,
    plan: Callable[[Any, Mapping[str, str | None]], ConfigChange],
    incremental: bool,
):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        seen: dict[tuple[int, str], int] = {}
        for resource in request.resources:
            key = (resource.resource_type, resource.resource_name)
            seen[key] = seen.get(key, 0) + 1
        responses = []
        for resource in request.resources:
            entry: dict[str, Any] = {
                "resource_type": resource.resource_type,
                "resource_name": resource.resource_name,
                "error_code": ErrorCode.none,
                "error_message": None,
            }
            try:
                if seen[(resource.resource_type, resource.resource_name)] > 1:
                    raise AdminError(ErrorCode.invalid_request, "Duplicate resource in request.")
                names = [c.name for c in resource.configs]
                if len(set(names)) != len(names):
                    raise AdminError(
                        ErrorCode.invalid_request, "Error due to duplicate config keys"
                    )
                # What Kafka's broker checks before the controller authorizes the change.
                kind, name = resource.resource_type, resource.resource_name
                _check_null_values(resource, incremental)
                if kind == ResourceType.BROKER:
                    broker_resource_key(broker, name)
                # Legacy AlterConfigs has no broker loggers (an unknown type, refused below).
                if incremental or kind != ResourceType.BROKER_LOGGER:
                    error = _refusal(ctx, Operation.ALTER_CONFIGS, kind, name)
                    if error is not None:
                        raise AdminError(error, _DENIED[error])
                await _alter(broker, resource, plan, request.validate_only)
            except _Failure as exc:
                entry.update(error_code=exc.code, error_message=exc.message)
            responses.append(entry)
        return {"throttle_time": 0, "responses": responses}

    return handle


async def _alter(
    broker: Broker,
    resource: Any,
    plan: Callable[[Any, Mapping[str, str | None]], ConfigChange],
    validate_only: bool,
) -> None:
    name = resource.resource_name
    if resource.resource_type == ResourceType.TOPIC:
        validate_topic_name(name)
        topic = broker.topic(name)
        if topic is None:
            raise AdminError(ErrorCode.unknown_topic_or_partition, f"Topic {name} does not exist.")
        current = {c.name: c.value for c in describe_topic(topic.configs, broker_configs(broker))}
        await alter_topic_configs(broker, name, plan(resource, current), validate_only)
    elif resource.resource_type == ResourceType.BROKER:
        broker_resource_key(broker, name)
        current = _broker_values(broker_configs(broker))
        await alter_broker_configs(broker, name, plan(resource, current), validate_only)
    elif resource.resource_type == ResourceType.GROUP:
        current = group_configs.current_values(broker, name) if name else {}
        await group_configs.alter(broker, name, plan(resource, current), validate_only)
    else:
        raise AdminError(
            ErrorCode.invalid_request, f"Unsupported resource type {resource.resource_type}"
        )


def _broker_values(configs: BrokerConfigs) -> dict[str, str | None]:
    effective = configs.effective
    return {name: render_value(effective.get(name)) for name in DEFINITIONS}
