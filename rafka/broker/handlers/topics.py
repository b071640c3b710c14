"""CreateTopics (counts or explicit replica assignments, validated configs, validate_only) and
DeleteTopics (by name or topic id)."""

from __future__ import annotations

from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.config_catalog import ConfigRequestError, describe_topic, validate_topic_configs
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.topic_admin import (
    AdminError,
    broker_configs,
    check_assignments,
    validate_topic_name,
)
from rafka.protocol.errors import ErrorCode


def make_create_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        results = []
        seen: set[str] = set()
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
                entry.update(
                    error_code=ErrorCode.none,
                    topic_id=image.topic_id,
                    num_partitions=image.partition_count,
                    replication_factor=len(image.replicas[0]),
                    configs=[
                        {
                            "name": c.name,
                            "value": c.value,
                            "read_only": c.read_only,
                            "config_source": c.source,
                            "is_sensitive": c.sensitive,
                        }
                        for c in describe_topic(image.configs, broker_configs(broker))
                    ],
                )
            results.append(entry)
        return {"throttle_time": 0, "topics": results}

    return handle


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
        results = []
        names = getattr(request, "topic_names", None)
        states = getattr(request, "topics", None)
        wanted = (
            [(n, None) for n in names]
            if names is not None
            else [(s.name, s.topic_id) for s in states or ()]
        )
        for name, topic_id in wanted:
            if name is not None:
                topic = broker.topic(name)
            else:
                topic = broker.topic_by_id(topic_id)
            entry: dict[str, Any] = {"name": name, "topic_id": topic_id, "error_message": None}
            if topic is None:
                entry["error_code"] = (
                    ErrorCode.unknown_topic_or_partition
                    if name is not None
                    else ErrorCode.unknown_topic_id
                )
            elif not broker.config.get_bool("delete.topic.enable"):
                entry["error_code"] = ErrorCode.topic_deletion_disabled
                entry["error_message"] = "Topic deletion is disabled."
            else:
                await broker.delete_topic(topic)
                entry.update(error_code=ErrorCode.none, name=topic.name, topic_id=topic.topic_id)
            results.append(entry)
        return {"throttle_time": 0, "responses": results}

    return handle
