"""CreateTopics and DeleteTopics, as clients and test fixtures use them."""

from __future__ import annotations

from typing import Any

from rafka.broker.broker import Broker, TopicError
from rafka.broker.dispatch import RequestContext
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
                if topic.assignments:
                    raise TopicError(
                        ErrorCode.invalid_request, "manual replica assignment is not supported yet"
                    )
                configs = {c.name: c.value for c in topic.configs if c.value is not None}
                image = await broker.create_topic(
                    topic.name,
                    topic.num_partitions,
                    topic.replication_factor,
                    configs,
                    validate_only=request.validate_only,
                )
            except TopicError as exc:
                entry["error_code"] = exc.code
                entry["error_message"] = exc.message
            else:
                entry.update(
                    error_code=ErrorCode.none,
                    topic_id=image.topic_id,
                    num_partitions=image.partition_count,
                    replication_factor=len(image.replicas[0]),
                    configs=[],
                )
            results.append(entry)
        return {"throttle_time": 0, "topics": results}

    return handle


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
            else:
                await broker.delete_topic(topic)
                entry.update(error_code=ErrorCode.none, name=topic.name, topic_id=topic.topic_id)
            results.append(entry)
        return {"throttle_time": 0, "responses": results}

    return handle
