"""CreatePartitions, DeleteRecords, DescribeTopicPartitions and DescribeCluster, authorized as
Kafka does (ControllerApis for CreatePartitions, KafkaApis for the rest). DescribeLogDirs is in
log_dirs.py."""

from __future__ import annotations

import uuid
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.handlers.metadata import describe_topic
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.broker.topic_admin import (
    MAX_RECORDS_PER_REQUEST,
    AdminError,
    create_partitions,
    delete_records,
)
from rafka.protocol.errors import ErrorCode

AUTHORIZED_OPERATIONS_OMITTED = -2147483648
ENDPOINT_BROKERS = 1
ENDPOINT_CONTROLLERS = 2
# Kafka's max.request.partition.size.limit: the most partitions one response describes.
MAX_DESCRIBED_PARTITIONS = 2000


# -- CreatePartitions ---------------------------------------------------------------------------


def make_create_partitions_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        results = []
        budget = MAX_RECORDS_PER_REQUEST  # new partitions this request may still add
        counts: dict[str, int] = {}
        for topic in request.topics:
            counts[topic.name] = counts.get(topic.name, 0) + 1
        for topic in request.topics:
            entry: dict[str, Any] = {"name": topic.name, "error_message": None}
            if counts[topic.name] > 1:
                # As Kafka: one result per duplicated name.
                counts[topic.name] = 0
                entry.update(
                    error_code=ErrorCode.invalid_request, error_message="Duplicate topic name."
                )
                results.append(entry)
                continue
            if counts[topic.name] == 0:
                continue
            if not ctx.authorize(Operation.ALTER, ResourceType.TOPIC, topic.name):
                entry["error_code"] = ErrorCode.topic_authorization_failed
                results.append(entry)
                continue
            try:
                assignments = (
                    None
                    if topic.assignments is None
                    else [list(a.broker_ids) for a in topic.assignments]
                )
                budget -= await create_partitions(
                    broker, topic.name, topic.count, assignments, request.validate_only, budget
                )
            except AdminError as exc:
                entry.update(error_code=exc.code, error_message=exc.message)
            else:
                entry["error_code"] = ErrorCode.none
            results.append(entry)
        return {"throttle_time": 0, "results": results}

    return handle


# -- DeleteRecords ------------------------------------------------------------------------------


def make_delete_records_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        topics = []
        for topic in request.topics:
            partitions = []
            allowed = ctx.authorize(Operation.DELETE, ResourceType.TOPIC, topic.name)
            for wanted in topic.partitions:
                entry: dict[str, Any] = {"partition_index": wanted.partition_index}
                partition = broker.partition(topic.name, wanted.partition_index)
                try:
                    if not allowed:  # before existence, which it would reveal
                        raise AdminError(ErrorCode.topic_authorization_failed, "")
                    if partition is None:
                        raise AdminError(ErrorCode.unknown_topic_or_partition, "")
                    low = await delete_records(broker, partition, wanted.offset)
                except AdminError as exc:
                    entry.update(error_code=exc.code, low_watermark=-1)
                else:
                    entry.update(error_code=ErrorCode.none, low_watermark=low)
                partitions.append(entry)
            topics.append({"name": topic.name, "partitions": partitions})
        return {"throttle_time": 0, "topics": topics}

    return handle


# -- DescribeTopicPartitions --------------------------------------------------------------------


def make_describe_topic_partitions_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        assert broker.metadata is not None
        image = broker.metadata.image
        listed = bool(request.topics)
        names = sorted({t.name for t in request.topics}) if listed else sorted(image.topics)
        cursor = request.cursor
        if cursor is not None:
            if listed and cursor.topic_name not in names:
                return _invalid_cursor(names)
            names = [n for n in names if n >= cursor.topic_name]
        # As Kafka: topics the principal may not DESCRIBE are left out before paging (and so
        # before their existence is looked at); named ones answer TOPIC_AUTHORIZATION_FAILED
        # after the others, the rest are not shown.
        allowed = {n for n in names if ctx.authorize(Operation.DESCRIBE, ResourceType.TOPIC, n)}
        denied = [_unknown_topic(n, ErrorCode.topic_authorization_failed)
                  for n in names if listed and n not in allowed]  # fmt: skip
        limit = max(min(request.response_partition_limit, MAX_DESCRIBED_PARTITIONS), 1)
        described: list[dict[str, Any]] = []
        next_cursor = None
        budget = limit
        for name in (n for n in names if n in allowed):
            first = max(cursor.partition_index, 0) if cursor and name == cursor.topic_name else 0
            topic = image.topics.get(name)
            if topic is None:
                described.append(_unknown_topic(name))
                continue
            if budget == 0:
                next_cursor = {"topic_name": name, "partition_index": first}
                break
            last = min(topic.partition_count, first + budget)
            described.append(describe_topic(broker, topic, range(first, last)))
            budget -= last - first
            if last < topic.partition_count:
                next_cursor = {"topic_name": name, "partition_index": last}
                break
        for topic_entry in described:
            topic_entry["topic_authorized_operations"] = ctx.authorized_operations(
                ResourceType.TOPIC, topic_entry["name"]
            )
        return {"throttle_time": 0, "topics": described + denied, "next_cursor": next_cursor}

    return handle


def _invalid_cursor(names: list[str]) -> dict[str, Any]:
    # No request-level error field: as Kafka does, every requested topic carries the error.
    topics = [_unknown_topic(name, ErrorCode.invalid_request) for name in names]
    return {"throttle_time": 0, "topics": topics, "next_cursor": None}


def _unknown_topic(
    name: str, code: ErrorCode = ErrorCode.unknown_topic_or_partition
) -> dict[str, Any]:
    return {
        "error_code": code,
        "name": name,
        "topic_id": uuid.UUID(int=0),
        "is_internal": False,
        "partitions": [],
        "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


# -- DescribeCluster ----------------------------------------------------------------------------


def make_describe_cluster_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        endpoint_type = getattr(request, "endpoint_type", ENDPOINT_BROKERS)
        response: dict[str, Any] = {
            "throttle_time": 0,
            "error_code": ErrorCode.none,
            "error_message": None,
            "endpoint_type": ENDPOINT_BROKERS,  # what this listener is, as Kafka answers
            "cluster_id": broker.cluster_id,
            "controller_id": broker.controller_id,
            "brokers": [],
            "cluster_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
        }
        if endpoint_type == ENDPOINT_CONTROLLERS:
            # A broker listener describes brokers; controllers answer on their own listener.
            response.update(
                error_code=ErrorCode.mismatched_endpoint_type,
                error_message="The request was sent to an endpoint of type BROKER, but we "
                "wanted an endpoint of type CONTROLLER",
            )
        elif endpoint_type != ENDPOINT_BROKERS:
            response.update(
                error_code=ErrorCode.unsupported_endpoint_type,
                error_message=f"Unsupported endpoint type {endpoint_type}",
            )
        else:
            if request.include_cluster_authorized_operations:
                # Kafka refuses nothing here: without DESCRIBE on the cluster the operations
                # are reported as none.
                response["cluster_authorized_operations"] = (
                    ctx.authorized_operations(ResourceType.CLUSTER, CLUSTER_NAME)
                    if ctx.authorize(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME)
                    else 0
                )
            response["brokers"] = [
                {
                    "broker_id": e.node_id,
                    "host": e.host,
                    "port": e.port,
                    "rack": e.rack,
                    "is_fenced": False,
                }
                for e in broker.endpoints_for(ctx.connection.listener)
            ]
        return response

    return handle
