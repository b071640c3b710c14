"""Topic and config administration on the broker: creating and deleting topics (internal ones on
first need), CreatePartitions, config changes, DeleteRecords.

Every change is a metadata record (committed, then applied to the image) and then takes effect on
the open partitions at once: LogConfig changes go to each PartitionLog, so retention, rolling,
compaction and the produce checks see them without a restart; a restart replays the records.

Topic-level changes take the broker's topic lock, as CreateTopics and DeleteTopics do, so a
read-modify-write (IncrementalAlterConfigs) never interleaves with another change.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from rafka.broker.cluster.cluster_metadata import METADATA_TOPIC, TopicImage
from rafka.broker.cluster.controller import NotController
from rafka.broker.config_catalog import (
    BrokerConfigs,
    ConfigRequestError,
    check_overlay,
    validate_broker_config,
    validate_topic_configs,
)
from rafka.broker.partition.append import AppendError
from rafka.protocol.errors import ErrorCode
from rafka.storage.config import LogConfig

if TYPE_CHECKING:
    from rafka.broker.node import Node, StorageNode
    from rafka.broker.partition.replica import Partition

log = structlog.get_logger(__name__)

ConfigChange = Callable[[dict[str, str]], dict[str, str]]


CREATE_TOPICS = 19
MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")


class AdminError(Exception):
    """A topic or partition request Kafka answers with `code` and `message`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def propose_metadata(node: StorageNode, records: list[dict[str, Any]]) -> None:
    """Append `records` to the metadata log and wait until they are applied. The log's refusal
    (this node stopped leading it, or it failed on a full disk) answers the request with that
    error, as any other refusal of the request is answered."""
    assert node.metadata is not None
    try:
        await node.metadata.propose(records)
    except AppendError as exc:
        raise AdminError(exc.code, exc.message) from None


def _collision_key(name: str) -> str:
    # Kafka's metric names map '.' to '_', so two topics differing only there would collide.
    return name.replace(".", "_")


def validate_topic_name(name: str) -> None:
    if name == METADATA_TOPIC:
        raise AdminError(ErrorCode.invalid_request, f"{name} is reserved for cluster metadata")
    if not name or name in (".", ".."):
        raise AdminError(ErrorCode.invalid_topic_exception, f"illegal topic name {name!r}")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise AdminError(
            ErrorCode.invalid_topic_exception,
            f"topic name is longer than {MAX_TOPIC_NAME_LENGTH} characters",
        )
    if not _LEGAL_TOPIC_NAME.match(name):
        raise AdminError(
            ErrorCode.invalid_topic_exception,
            f"topic name {name!r} has characters other than ASCII alphanumerics, '.', '_', '-'",
        )


# -- broker configs -----------------------------------------------------------------------------


def broker_configs(broker: Node) -> BrokerConfigs:
    assert broker.metadata is not None
    return BrokerConfigs.of(broker.config, broker.node_id, broker.metadata.image.broker_configs)


def refresh_broker_defaults(broker: StorageNode) -> None:
    """Recompute the topic defaults from the static and dynamic broker configs and push the
    result to every open partition (those with topic overrides keep them)."""
    defaults = broker_configs(broker).topic_defaults()
    broker.default_log_config = LogConfig.from_topic_configs(defaults)
    assert broker.metadata is not None
    for topic in broker.metadata.image.topics.values():
        apply_topic_configs(broker, topic)


def apply_topic_configs(broker: StorageNode, topic: TopicImage) -> None:
    config = broker.topic_log_config(topic)
    for index in range(topic.partition_count):
        partition = broker.partition(topic.name, index)
        if partition is not None:
            partition.log.update_config(config)


def broker_resource_key(broker: Node, resource_name: str) -> str:
    """ "" (cluster default) or this node's id; anything else is another broker's business."""
    if resource_name == "":
        return ""
    try:
        node = int(resource_name)
    except ValueError:
        raise AdminError(
            ErrorCode.invalid_request, f"Broker id must be an integer, got {resource_name!r}"
        ) from None
    if node != broker.node_id:
        raise AdminError(
            ErrorCode.invalid_request,
            f"Unexpected broker id, expected {broker.node_id} or empty string, "
            f"but received {resource_name}",
        )
    return str(node)


async def alter_broker_configs(
    broker: StorageNode, resource_name: str, change: ConfigChange, validate_only: bool
) -> None:
    key = broker_resource_key(broker, resource_name)
    assert broker.metadata is not None
    async with broker.topic_lock:
        current = broker.metadata.image.broker_configs
        updated = change(dict(current.get(key, {})))
        for name, value in updated.items():
            validate_broker_config(name, value)
        layers = {**current, key: updated}
        check_overlay(broker.config, layers.get("", {}), layers.get(str(broker.node_id), {}))
        if validate_only:
            return
        await propose_metadata(
            broker, [{"type": "broker_configs", "resource": key, "configs": updated}]
        )
        refresh_broker_defaults(broker)
    log.info("broker configs altered", resource=key or "<default>", configs=sorted(updated))


# -- topic configs ------------------------------------------------------------------------------


async def alter_topic_configs(
    broker: StorageNode, name: str, change: ConfigChange, validate_only: bool
) -> None:
    assert broker.metadata is not None
    async with broker.topic_lock:
        topic = broker.topic(name)
        if topic is None:
            raise AdminError(ErrorCode.unknown_topic_or_partition, f"topic {name!r} does not exist")
        updated = change(dict(topic.configs))
        validate_topic_configs(updated)
        try:
            LogConfig.from_topic_configs(updated, broker.default_log_config)
        except ValueError as exc:
            raise ConfigRequestError(ErrorCode.invalid_config, str(exc)) from None
        if validate_only:
            return
        await propose_metadata(
            broker, [{"type": "topic_configs", "id": str(topic.topic_id), "configs": updated}]
        )
        apply_topic_configs(broker, broker.metadata.image.topics_by_id[topic.topic_id])
    log.info("topic configs altered", topic=name, configs=sorted(updated))


# -- partitions ---------------------------------------------------------------------------------


def check_assignments(
    broker: StorageNode, assignments: list[list[int]], replication_factor: int | None = None
) -> None:
    """Kafka's INVALID_REPLICA_ASSIGNMENT rules for explicit replica lists."""
    known = set(broker.live_broker_ids())
    for index, replicas in enumerate(assignments):
        if not replicas:
            raise AdminError(
                ErrorCode.invalid_replica_assignment, f"partition {index} has no replicas"
            )
        for broker_id in replicas:
            if replicas.count(broker_id) > 1:
                raise AdminError(
                    ErrorCode.invalid_replica_assignment,
                    f"The manual partition assignment includes the broker {broker_id} more "
                    f"than once.",
                )
            if broker_id not in known:
                raise AdminError(
                    ErrorCode.invalid_replica_assignment,
                    f"The manual partition assignment includes broker {broker_id}, but no such "
                    f"broker is registered.",
                )
        expected = len(assignments[0]) if replication_factor is None else replication_factor
        if len(replicas) != expected:
            raise AdminError(
                ErrorCode.invalid_replica_assignment,
                "Inconsistent replication factor between partitions",
            )


# What Kafka's controller takes from one CreateTopics or CreatePartitions request
# (ReplicationControlManager): at most this many new partitions, and this many metadata records
# (a topic, its partitions, its configs). Checked before anything is built: one request could
# otherwise ask for 2^31 partitions.
MAX_PARTITIONS_PER_REQUEST = 10_000
MAX_RECORDS_PER_REQUEST = 10_000
TOO_MANY_PARTITIONS = "Excessively large number of partitions per request."
TOO_MANY_RECORDS = "Unable to perform excessively large batch operation."


async def create_partitions(
    broker: StorageNode,
    name: str,
    count: int,
    assignments: list[list[int]] | None,
    validate_only: bool,
    budget: int = MAX_RECORDS_PER_REQUEST,
) -> int:
    """Add partitions up to `count`, at most `budget` of them (what the request has left);
    returns how many were added."""
    assert broker.metadata is not None
    async with broker.topic_lock:
        topic = broker.topic(name)
        if topic is None:
            raise AdminError(ErrorCode.unknown_topic_or_partition, f"topic {name!r} does not exist")
        current = topic.partition_count
        if count == current:
            raise AdminError(
                ErrorCode.invalid_partitions, f"Topic already has {current} partition(s)."
            )
        if count < current:
            raise AdminError(
                ErrorCode.invalid_partitions,
                f"Topic currently has {current} partitions, which is higher than the requested "
                f"{count}.",
            )
        added = count - current
        if added > budget:
            # Kafka's controller answers UNKNOWN_SERVER_ERROR here (an exception it does not
            # map) after committing part of the partitions; all or nothing, as for topics.
            raise AdminError(ErrorCode.policy_violation, TOO_MANY_RECORDS)
        replication_factor = len(topic.replicas[0]) if topic.replicas else 1
        if assignments is not None:
            if len(assignments) != added:
                raise AdminError(
                    ErrorCode.invalid_replica_assignment,
                    f"Attempted to add {added} additional partition(s), but only "
                    f"{len(assignments)} assignment(s) were specified.",
                )
            check_assignments(broker, assignments, replication_factor)
            replicas = [list(r) for r in assignments]
        else:
            brokers = broker.live_broker_ids()
            if replication_factor > len(brokers):
                raise AdminError(
                    ErrorCode.invalid_replication_factor,
                    f"replication factor {replication_factor} exceeds the {len(brokers)} brokers",
                )
            replicas = [
                [brokers[(p + r) % len(brokers)] for r in range(replication_factor)]
                for p in range(current, count)
            ]
        if validate_only:
            return added
        await propose_metadata(
            broker, [{"type": "partitions", "id": str(topic.topic_id), "replicas": replicas}]
        )
        topic = broker.metadata.image.topics_by_id[topic.topic_id]
    await await_new_leaders(broker, topic, range(current, count))
    log.info("partitions created", topic=name, partitions=count)
    return added


# -- records ------------------------------------------------------------------------------------


async def delete_records(broker: StorageNode, partition: Partition, offset: int) -> int:
    """DeleteRecords: move the log start offset to `offset` (-1: the high watermark); returns
    the new low watermark."""
    if partition.offline is not None:
        raise AdminError(partition.offline, "partition is offline")
    if not partition.is_leader:
        raise AdminError(ErrorCode.not_leader_or_follower, "not the leader")
    config = partition.log.config
    # Kafka refuses only compacted topics without delete; an empty cleanup.policy allows it.
    if config.compact_enabled and not config.delete_enabled:
        raise AdminError(
            ErrorCode.policy_violation,
            f"Records of partition {partition.name} can not be deleted due to the configured "
            f"policy",
        )
    high_watermark = partition.high_watermark
    if offset == -1:
        offset = high_watermark
    if offset < 0 or offset > high_watermark:
        raise AdminError(
            ErrorCode.offset_out_of_range,
            f"Cannot increment the log start offset to {offset} of partition {partition.name} "
            f"since it is larger than the high watermark {high_watermark}",
        )
    if offset > partition.log_start_offset:
        partition.log.delete_records_before(offset)
        partition.producers.delete_snapshots_before(partition.log_start_offset)
        # Checkpointed now: a crash must not bring deleted records back. (On the loop, as the
        # housekeeping task writes the same files.)
        broker.write_checkpoints()
        log.info("records deleted", partition=partition.name, log_start_offset=offset)
    return partition.log_start_offset


async def _create_topic_at_controller(
    node: StorageNode,
    name: str,
    num_partitions: int,
    replication_factor: int,
    configs: dict[str, str],
) -> TopicImage:
    """Internal topics and auto-creation on a broker that does not lead the metadata
    quorum: ask the controller, then wait for the topic in this broker's image."""
    assert node.metadata is not None
    request = {
        "topics": [
            {
                "name": name,
                "num_partitions": num_partitions,
                "replication_factor": replication_factor,
                "assignments": [],
                "configs": [{"name": k, "value": v} for k, v in configs.items()],
            }
        ],
        "timeout": 30000,
        "validate_only": False,
    }
    try:
        response = await node.call_controller(CREATE_TOPICS, 7, request)
    except NotController:
        raise AdminError(ErrorCode.not_controller, "no controller is available") from None
    result = response.topics[0]
    if result.error_code not in (ErrorCode.none, ErrorCode.topic_already_exists):
        raise AdminError(ErrorCode(result.error_code), result.error_message or "")
    await node.metadata.wait_applied(lambda: name in node.metadata.image.topics, 10.0)
    topic = node.topic(name)
    if topic is None:
        raise AdminError(ErrorCode.request_timed_out, f"topic {name} is not visible yet")
    if result.error_code == ErrorCode.topic_already_exists:
        raise AdminError(ErrorCode.topic_already_exists, f"topic {name!r} already exists")
    return topic


async def create_topic(
    node: StorageNode,
    name: str,
    num_partitions: int,
    replication_factor: int,
    configs: dict[str, str] | None = None,
    validate_only: bool = False,
    assignments: list[list[int]] | None = None,
) -> TopicImage:
    """`assignments` (replica lists, already checked by topic_admin.check_assignments)
    replace the partition count and replication factor when given."""
    validate_topic_name(name)
    if assignments is not None:
        num_partitions, replication_factor = len(assignments), len(assignments[0])
    if num_partitions == -1:
        num_partitions = int(node.config.get("num.partitions"))
    brokers = node.live_broker_ids()
    if replication_factor == -1:
        # Kafka's default is 1; a rafka cluster replicates unless told otherwise.
        replication_factor = (
            node.config.default_replication_factor
            if node.config.is_set("default.replication.factor")
            else min(3, len(brokers))
        )
    if num_partitions <= 0:
        raise AdminError(ErrorCode.invalid_partitions, "number of partitions must be positive")
    if replication_factor <= 0:
        raise AdminError(
            ErrorCode.invalid_replication_factor, "replication factor must be positive"
        )
    if replication_factor > len(brokers):
        raise AdminError(
            ErrorCode.invalid_replication_factor,
            f"replication factor {replication_factor} is larger than the number of "
            f"available brokers {len(brokers)}",
        )
    configs = dict(configs or {})
    try:
        LogConfig.from_topic_configs(configs, node.default_log_config)
    except ValueError as exc:
        raise AdminError(ErrorCode.invalid_config, str(exc)) from None
    if not node.is_controller and not validate_only and assignments is None:
        return await _create_topic_at_controller(
            node, name, num_partitions, replication_factor, configs
        )
    async with node.topic_lock:
        assert node.metadata is not None
        if name in node.metadata.image.topics:
            raise AdminError(ErrorCode.topic_already_exists, f"topic {name!r} already exists")
        for existing in node.metadata.image.topics:
            if _collision_key(existing) == _collision_key(name):
                raise AdminError(
                    ErrorCode.invalid_topic_exception,
                    f"topic {name!r} collides with existing topic {existing!r}",
                )
        replicas = (
            [list(r) for r in assignments]
            if assignments is not None
            else [
                [brokers[(p + r) % len(brokers)] for r in range(replication_factor)]
                for p in range(num_partitions)
            ]
        )
        topic_id = uuid.uuid4()
        record: dict[str, Any] = {
            "type": "topic",
            "name": name,
            "id": str(topic_id),
            "replicas": replicas,
            "configs": configs,
        }
        if validate_only:
            return TopicImage(name, topic_id, replicas, configs)
        await propose_metadata(node, [record])  # applying it opened our replicas
        topic = node.metadata.image.topics[name]
    await await_new_leaders(node, topic, range(topic.partition_count))
    log.info("topic created", topic=name, partitions=num_partitions)
    return topic


async def await_new_leaders(node: StorageNode, topic: TopicImage, indexes: range) -> None:
    """Let the partitions this node leads commit their first batch (a single node leads all
    of them at once), so that clients find leaders right after the topic is created."""
    await node.wait_for_new_replicas((topic.name, index) for index in indexes)
    waits = []
    for index in indexes:
        partition = node.partitions.get((topic.name, index))
        if partition is not None and partition.is_leader:
            waits.append(partition.wait_committed(partition.log_end_offset - 1))
    if waits:
        await asyncio.wait(waits, timeout=5)


async def ensure_internal_topic(
    node: StorageNode,
    name: str,
    num_partitions: int,
    replication_factor: int,
    configs: dict[str, str],
) -> TopicImage:
    """An internal topic (e.g. __consumer_offsets), created on first need as Kafka does."""
    topic = node.topic(name)
    if topic is not None:
        return topic
    replication_factor = min(replication_factor, len(node.live_broker_ids()))
    try:
        return await create_topic(node, name, num_partitions, replication_factor, configs)
    except AdminError as exc:
        if exc.code != ErrorCode.topic_already_exists:
            raise
    topic = node.topic(name)
    assert topic is not None
    return topic


async def delete_topic(node: StorageNode, topic: TopicImage) -> None:
    assert node.metadata is not None
    async with node.topic_lock:
        # Applying the record drops this node's replicas, as on every other node.
        await propose_metadata(node, [{"type": "remove_topic", "id": str(topic.topic_id)}])
    log.info("topic deleted", topic=topic.name)
