"""CreateTopics (counts or explicit replica assignments, validated configs, validate_only) and
DeleteTopics (by name or topic id), authorized as Kafka's controller does (ControllerApis)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.cluster.cluster_metadata import METADATA_TOPIC
from rafka.broker.config_catalog import ConfigRequestError, describe_topic, validate_topic_configs
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.broker.topic_admin import (
    MAX_PARTITIONS_PER_REQUEST,
    MAX_RECORDS_PER_REQUEST,
    TOO_MANY_PARTITIONS,
    TOO_MANY_RECORDS,
    AdminError,
    broker_configs,
    check_assignments,
    validate_topic_name,
)
from rafka.protocol.errors import ErrorCode

ZERO_UUID = uuid.UUID(int=0)
_TOPIC_DENIED = "Topic authorization failed."


def make_create_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        results = []
        seen: set[str] = set()
        # CREATE on the cluster covers every topic; otherwise CREATE on each topic.
        may_create_all = ctx.authorize(Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)
        too_large = _too_large(broker, request.topics)
        for topic in request.topics:
            entry: dict[str, Any] = {
                "name": topic.name,
                "topic_id": None,
                "error_message": None,
                "configs": None,
            }
            if topic.name in seen:
                entry["error_code"] = ErrorCode.invalid_request
                entry["error_message"] = "topic appears more than once in the request"
                results.append(entry)
                continue
            seen.add(topic.name)
            if topic.name != METADATA_TOPIC and not (
                may_create_all or ctx.authorize(Operation.CREATE, ResourceType.TOPIC, topic.name)
            ):
                # Before any validation: nothing about the topic is revealed.
                entry["error_code"] = ErrorCode.topic_authorization_failed
                entry["error_message"] = "Authorization failed."
                results.append(entry)
                continue
            if too_large is not None:  # the whole request, as Kafka's controller refuses it
                entry["error_code"] = ErrorCode.policy_violation
                entry["error_message"] = too_large
                results.append(entry)
                continue
            try:
                validate_topic_name(topic.name)  # first, as Kafka does
                assignments = _assignments(broker, topic)
                configs = _configs(topic)
                image = await broker.create_topic(
                    topic.name,
                    topic.num_partitions,
                    topic.replication_factor,
                    configs,
                    validate_only=request.validate_only,
                    assignments=assignments,
                )
            except (AdminError, ConfigRequestError) as exc:
                entry["error_code"] = exc.code
                entry["error_message"] = exc.message
            else:
                entry.update(error_code=ErrorCode.none, topic_id=image.topic_id)
                if ctx.authorize(Operation.DESCRIBE_CONFIGS, ResourceType.TOPIC, topic.name):
                    entry.update(_created(broker, image))
                else:
                    # Created, but its configs and layout are shown with DESCRIBE_CONFIGS only.
                    entry.update(
                        topic_config_error_code=ErrorCode.topic_authorization_failed, configs=[]
                    )
            results.append(entry)
        return {"throttle_time": 0, "topics": results}

    return handle


def _too_large(broker: Broker, topics: list[Any]) -> str | None:
    """Kafka's refusal of a CreateTopics that would make too many partitions or records."""
    default = int(broker.config.get("num.partitions"))
    partitions = records = 0
    for topic in topics:
        if topic.assignments:
            count = len(topic.assignments)
        else:
            count = default if topic.num_partitions == -1 else max(topic.num_partitions, 0)
        partitions += count
        if broker.topic(topic.name) is None:
            records += 1 + count + len(topic.configs)
    if partitions > MAX_PARTITIONS_PER_REQUEST:
        return TOO_MANY_PARTITIONS
    if records > MAX_RECORDS_PER_REQUEST:
        return TOO_MANY_RECORDS
    return None


def _created(broker: Broker, image: Any) -> dict[str, Any]:
    return {
        "num_partitions": image.partition_count,
        "replication_factor": len(image.replicas[0]),
        "configs": [
            {
                "name": c.name,
                "value": c.value,
                "read_only": c.read_only,
                "config_source": c.source,
                "is_sensitive": c.sensitive,
            }
            for c in describe_topic(image.configs, broker_configs(broker))
        ],
    }


def _assignments(broker: Broker, topic: Any) -> list[list[int]] | None:
    """Explicit replica lists by partition, checked as Kafka does; None if not given."""
    if not topic.assignments:
        return None
    for field, value in (
        ("numPartitions", topic.num_partitions),
        ("replicationFactor", topic.replication_factor),
    ):
        if value != -1:
            raise AdminError(
                ErrorCode.invalid_request,
                f"A manual partition assignment was specified, but {field} was not set to -1.",
            )
    by_index = {a.partition_index: list(a.broker_ids) for a in topic.assignments}
    if sorted(by_index) != list(range(len(topic.assignments))):
        raise AdminError(
            ErrorCode.invalid_replica_assignment,
            "partitions should be a consecutive 0-based integer sequence",
        )
    assignments = [by_index[index] for index in range(len(by_index))]
    check_assignments(broker, assignments)
    return assignments


def _configs(topic: Any) -> dict[str, str]:
    configs: dict[str, str] = {}
    for config in topic.configs:
        if config.value is None:
            raise ConfigRequestError(
                ErrorCode.invalid_config,
                f"Null value not supported for topic configs: {config.name}",
            )
        configs[config.name] = config.value
    validate_topic_configs(configs)
    return configs


def make_delete_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        names = getattr(request, "topic_names", None)
        states = getattr(request, "topics", None)
        wanted = (
            [(n, None) for n in names]
            if names is not None
            else [(s.name, s.topic_id) for s in states or ()]
        )
        if not broker.config.get_bool("delete.topic.enable"):
            # Kafka refuses the whole request first, for every topic alike.
            code = (
                ErrorCode.invalid_request
                if ctx.api_version < 3
                else ErrorCode.topic_deletion_disabled
            )
            return {
                "throttle_time": 0,
                "responses": [
                    {"name": name, "topic_id": topic_id or ZERO_UUID, "error_code": code,
                     "error_message": None}
                    for name, topic_id in wanted
                ],
            }  # fmt: skip
        # DELETE on the cluster covers every topic.
        may_delete_all = ctx.authorize(Operation.DELETE, ResourceType.CLUSTER, CLUSTER_NAME)

        def may(operation: Operation, name: str) -> bool:
            return may_delete_all or ctx.authorize(operation, ResourceType.TOPIC, name)

        results = []
        for name, topic_id in wanted:
            results.append(await _delete(broker, may, name, topic_id))
        return {"throttle_time": 0, "responses": results}

    return handle


async def _delete(
    broker: Broker, may: Callable[[Operation, str], bool], name: str | None, topic_id: Any
) -> dict[str, Any]:
    """One topic's result. Kafka's rule: a topic the principal may not DESCRIBE answers
    TOPIC_AUTHORIZATION_FAILED whether it exists or not, and one named by id keeps its name
    hidden then."""
    entry: dict[str, Any] = {"name": name, "topic_id": topic_id, "error_message": None}
    if name is None:
        topic = broker.topic_by_id(topic_id)
        if topic is None:
            return {**entry, "error_code": ErrorCode.unknown_topic_id}
        if not may(Operation.DELETE, topic.name):
            shown = topic.name if may(Operation.DESCRIBE, topic.name) else None
            return {**entry, "name": shown, "error_code": ErrorCode.topic_authorization_failed,
                    "error_message": _TOPIC_DENIED}  # fmt: skip
    else:
        entry["topic_id"] = ZERO_UUID
        if not may(Operation.DESCRIBE, name):
            return {**entry, "error_code": ErrorCode.topic_authorization_failed,
                    "error_message": _TOPIC_DENIED}  # fmt: skip
        topic = broker.topic(name)
        if topic is None:
            return {**entry, "error_code": ErrorCode.unknown_topic_or_partition}
        if not may(Operation.DELETE, name):
            return {**entry, "error_code": ErrorCode.topic_authorization_failed,
                    "error_message": _TOPIC_DENIED}  # fmt: skip
    await broker.delete_topic(topic)
    return {**entry, "error_code": ErrorCode.none, "name": topic.name, "topic_id": topic.topic_id}
