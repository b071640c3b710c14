"""The requests of `rafka reassign` and `rafka leader-election`: AlterPartitionReassignments,
ListPartitionReassignments and ElectLeaders, at the highest version both sides know. Any broker
takes them (a KRaft broker forwards them to the controller), so they work against Apache Kafka
as well. Per-partition outcomes are returned as (Kafka error code, message)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rafka.cli.admin_client import AdminClient, AdminRequestError
from rafka.cli.kafka_client import KafkaClientError
from rafka.protocol.errors import ErrorCode

ELECT_LEADERS = 43
ALTER_PARTITION_REASSIGNMENTS = 45
LIST_PARTITION_REASSIGNMENTS = 46
# The newest versions this client fills in.
_MAX_VERSION = {ELECT_LEADERS: 2, ALTER_PARTITION_REASSIGNMENTS: 1, LIST_PARTITION_REASSIGNMENTS: 0}
TIMEOUT_MS = 30_000
PREFERRED, UNCLEAN = 0, 1

TopicPartition = tuple[str, int]
Outcome = tuple[int, str | None]


@dataclass(slots=True, frozen=True)
class OngoingReassignment:
    replicas: list[int]
    adding: list[int]
    removing: list[int]


def _send(client: AdminClient, api_key: int, data: dict[str, Any]) -> Any:
    conn = client._any()  # noqa: SLF001 - the admin client's connection, as its own methods do
    supported = conn.versions.get(api_key)
    if supported is None:
        raise KafkaClientError(f"{conn.address} does not support API {api_key}")
    return conn.send(api_key, min(supported[1], _MAX_VERSION[api_key]), data)


def _by_topic(partitions: list[TopicPartition]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for topic, index in partitions:
        grouped.setdefault(topic, []).append(index)
    return grouped


def alter_reassignments(
    client: AdminClient,
    targets: dict[TopicPartition, list[int] | None],
    allow_replication_factor_change: bool = True,
) -> dict[TopicPartition, Outcome]:
    """Start (a replica list) or cancel (None) reassignments; each partition's outcome."""
    topics: dict[str, list[dict[str, Any]]] = {}
    for (topic, index), replicas in targets.items():
        topics.setdefault(topic, []).append({"partition_index": index, "replicas": replicas})
    response = _send(
        client,
        ALTER_PARTITION_REASSIGNMENTS,
        {
            "timeout": TIMEOUT_MS,
            "allow_replication_factor_change": allow_replication_factor_change,
            "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
        },
    )
    if response.error_code != ErrorCode.none:
        raise AdminRequestError(
            "AlterPartitionReassignments", response.error_code, response.error_message
        )
    return {
        (t.name, p.partition_index): (p.error_code, p.error_message)
        for t in response.responses
        for p in t.partitions
    }


def list_reassignments(
    client: AdminClient, partitions: list[TopicPartition] | None = None
) -> dict[TopicPartition, OngoingReassignment]:
    """The reassignments in progress (of `partitions`, or all)."""
    topics = None
    if partitions is not None:
        topics = [{"name": name, "partition_indexes": indexes}
                  for name, indexes in _by_topic(partitions).items()]  # fmt: skip
    response = _send(
        client, LIST_PARTITION_REASSIGNMENTS, {"timeout": TIMEOUT_MS, "topics": topics}
    )
    if response.error_code != ErrorCode.none:
        raise AdminRequestError(
            "ListPartitionReassignments", response.error_code, response.error_message
        )
    return {
        (t.name, p.partition_index): OngoingReassignment(
            list(p.replicas), list(p.adding_replicas), list(p.removing_replicas)
        )
        for t in response.topics
        for p in t.partitions
    }


def elect_leaders(
    client: AdminClient, election_type: int, partitions: list[TopicPartition] | None
) -> dict[TopicPartition, Outcome]:
    """ElectLeaders for `partitions` (None: every partition); each partition's outcome."""
    topic_partitions = None
    if partitions is not None:
        topic_partitions = [{"topic": name, "partitions": indexes}
                            for name, indexes in _by_topic(partitions).items()]  # fmt: skip
    response = _send(
        client,
        ELECT_LEADERS,
        {"election_type": election_type, "topic_partitions": topic_partitions,
         "timeout": TIMEOUT_MS},
    )  # fmt: skip
    if getattr(response, "error_code", ErrorCode.none) != ErrorCode.none:
        raise AdminRequestError("ElectLeaders", response.error_code)
    return {
        (r.topic, p.partition_id): (p.error_code, p.error_message)
        for r in response.replica_election_results
        for p in r.partition_result
    }
