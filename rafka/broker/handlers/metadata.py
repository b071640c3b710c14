"""Metadata: brokers, topics and partition leadership, with topic auto-creation.

Authorization as Kafka's KafkaApis: a topic the principal may not DESCRIBE is left out of an
all-topics answer and refused by name (TOPIC_AUTHORIZATION_FAILED) before its existence is
looked at; auto-creation takes CREATE on the cluster or on the topic."""

from __future__ import annotations

from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.cluster.cluster_metadata import TopicImage
from rafka.broker.coordinator.internal_topic import OFFSETS_TOPIC, TXN_TOPIC
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.broker.topic_admin import AdminError, validate_topic_name
from rafka.protocol.errors import ErrorCode

# Kafka's "authorized operations not requested" marker (Integer.MIN_VALUE, the schema default).
AUTHORIZED_OPERATIONS_OMITTED = -2147483648
# Kafka's Topic.isInternal, for the answer about a topic that was not created.
_INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC, TXN_TOPIC})


def make_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        image = broker.metadata.image
        version = ctx.api_version
        # v8+: the operations the principal may do on each topic it may describe (every one
        # without an authorizer), including one that does not exist.
        with_operations = bool(getattr(request, "include_topic_authorized_operations", False))
        topics_out: list[dict[str, Any]] = []
        if request.topics is None or (version == 0 and not request.topics):
            # v1+: null means every topic; v0 used an empty list for the same. Topics the
            # principal may not describe are left out.
            for topic in sorted(image.topics.values(), key=_name):
                if ctx.authorize(Operation.DESCRIBE, ResourceType.TOPIC, topic.name):
                    topics_out.append(
                        _operations(ctx, describe_topic(broker, topic), with_operations)
                    )
        else:
            allow_create = bool(getattr(request, "allow_auto_topic_creation", True))
            auto_create = allow_create and broker.config.get_bool("auto.create.topics.enable")
            for wanted in request.topics:
                topics_out.append(await _lookup(broker, ctx, wanted, auto_create, with_operations))
        # v8-v10 only (KIP-700 moved it to DescribeCluster): 0 without DESCRIBE on the cluster.
        cluster_operations = AUTHORIZED_OPERATIONS_OMITTED
        if getattr(request, "include_cluster_authorized_operations", False):
            cluster_operations = (
                ctx.authorized_operations(ResourceType.CLUSTER, CLUSTER_NAME)
                if ctx.authorize(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME)
                else 0
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


def _operations(ctx: RequestContext, topic: dict[str, Any], wanted: bool) -> dict[str, Any]:
    if wanted:
        topic["topic_authorized_operations"] = ctx.authorized_operations(
            ResourceType.TOPIC, topic["name"]
        )
    return topic


async def _lookup(
    broker: Broker, ctx: RequestContext, wanted: Any, auto_create: bool, with_operations: bool
) -> dict[str, Any]:
    name = getattr(wanted, "name", None)
    topic_id = getattr(wanted, "topic_id", None)
    if name is None and topic_id is not None:
        topic = broker.topic_by_id(topic_id)
        if topic is None:
            return _error(ErrorCode.unknown_topic_id, None, topic_id)
        if not ctx.authorize(Operation.DESCRIBE, ResourceType.TOPIC, topic.name):
            # As Kafka: ids are not secret, so the refusal names the id (not the topic).
            return _error(ErrorCode.topic_authorization_failed, None, topic_id)
        return _operations(ctx, describe_topic(broker, topic), with_operations)
    if not ctx.authorize(Operation.DESCRIBE, ResourceType.TOPIC, name):
        # Refused before looking: whether the topic exists is not revealed.
        return _error(ErrorCode.topic_authorization_failed, name, None)
    topic = broker.topic(name)
    if topic is None and auto_create:
        if not ctx.authorize(
            Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME
        ) and not ctx.authorize(Operation.CREATE, ResourceType.TOPIC, name):
            refused = _error(ErrorCode.topic_authorization_failed, name, None)
            refused["is_internal"] = name in _INTERNAL_TOPICS
            return refused
        try:
            topic = await broker.create_topic(name, -1, -1)
        except AdminError as exc:
            if exc.code != ErrorCode.topic_already_exists:
                return _operations(ctx, _error(exc.code, name, None), with_operations)
            topic = broker.topic(name)
    if topic is None:
        # As Kafka: a name no topic could have is INVALID_TOPIC_EXCEPTION, not unknown.
        code = ErrorCode.unknown_topic_or_partition
        try:
            validate_topic_name(name)
        except AdminError as exc:
            if exc.code is ErrorCode.invalid_topic_exception:
                code = exc.code
        return _operations(ctx, _error(code, name, None), with_operations)
    return _operations(ctx, describe_topic(broker, topic), with_operations)


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
