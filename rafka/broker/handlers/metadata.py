"""Metadata: brokers, topics and partition leadership, with topic auto-creation."""

from __future__ import annotations

from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.cluster.cluster_metadata import TopicImage
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.topic_admin import AdminError
from rafka.protocol.errors import ErrorCode

# Kafka's "authorized operations not requested" marker.
AUTHORIZED_OPERATIONS_OMITTED = -2147483648
# AclOperation bits: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
# CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE
CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))


def make_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        image = broker.metadata.image
        version = ctx.api_version
        topics_out: list[dict[str, Any]] = []
        if request.topics is None or (version == 0 and not request.topics):
            # v1+: null means every topic; v0 used an empty list for the same.
            topics_out = [
                describe_topic(broker, t) for t in sorted(image.topics.values(), key=_name)
            ]
        else:
            allow_create = bool(getattr(request, "allow_auto_topic_creation", True))
            auto_create = allow_create and broker.config.get_bool("auto.create.topics.enable")
            for wanted in request.topics:
                topics_out.append(await _lookup(broker, wanted, auto_create))
        # No authorizer: every operation is allowed, which Kafka reports when asked (v8-v10).
        if getattr(request, "include_topic_authorized_operations", False):
            for topic in topics_out:
                if topic["error_code"] == ErrorCode.none:
                    topic["topic_authorized_operations"] = TOPIC_OPERATIONS
        cluster_operations = (
            CLUSTER_OPERATIONS
            if getattr(request, "include_cluster_authorized_operations", False)
            else AUTHORIZED_OPERATIONS_OMITTED
        )
        return {
            "throttle_time": 0,
            "brokers": [
                {"node_id": e.node_id, "host": e.host, "port": e.port, "rack": e.rack}
                for e in broker.endpoints_for(ctx.connection.listener)
            ],
            "cluster_id": broker.cluster_id,
            "controller_id": broker.controller_id,
            "topics": topics_out,
            "cluster_authorized_operations": cluster_operations,
        }

    return handle


def _name(topic: TopicImage) -> str:
    return topic.name


async def _lookup(broker: Broker, wanted: Any, auto_create: bool) -> dict[str, Any]:
    name = getattr(wanted, "name", None)
    topic_id = getattr(wanted, "topic_id", None)
    if name is None and topic_id is not None:
        topic = broker.topic_by_id(topic_id)
        if topic is None:
            return _error(ErrorCode.unknown_topic_id, None, topic_id)
        return describe_topic(broker, topic)
    topic = broker.topic(name)
    if topic is None and auto_create:
        try:
            topic = await broker.create_topic(name, -1, -1)
        except AdminError as exc:
            if exc.code != ErrorCode.topic_already_exists:
                return _error(exc.code, name, None)
            topic = broker.topic(name)
    if topic is None:
        return _error(ErrorCode.unknown_topic_or_partition, name, None)
    return describe_topic(broker, topic)


def _error(code: ErrorCode, name: str | None, topic_id: Any) -> dict[str, Any]:
    return {
        "error_code": code,
        "name": name,
        "topic_id": topic_id,
        "is_internal": False,
        "partitions": [],
        "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


def describe_topic(
    broker: Broker, topic: TopicImage, indexes: range | None = None
) -> dict[str, Any]:
    """A topic and its partitions' leadership, for Metadata and DescribeTopicPartitions (fields
    a version lacks, such as the ELR lists, are dropped when the response is built)."""
    partitions = []
    for index in indexes if indexes is not None else range(topic.partition_count):
        replicas = topic.replicas[index]
        leader, epoch, isr = broker.leadership(topic, index)
        offline = [node for node in replicas if not broker.broker_is_live(node)]
        error = ErrorCode.none
        if leader < 0 or leader in offline:
            # No leader yet, or one the controller has fenced: clients retry after a refresh.
            leader, error = -1, ErrorCode.leader_not_available
        partitions.append(
            {
                "error_code": error,
                "partition_index": index,
                "leader_id": leader,
                "leader_epoch": epoch,
                "replica_nodes": replicas,
                "isr_nodes": [node for node in isr if node not in offline],
                "eligible_leader_replicas": [],
                "last_known_elr": [],
                "offline_replicas": offline,
            }
        )
    return {
        "error_code": ErrorCode.none,
        "name": topic.name,
        "topic_id": topic.topic_id,
        "is_internal": topic.name.startswith("__"),
        "partitions": partitions,
        "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }
