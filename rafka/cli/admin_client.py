"""The admin requests of the `rafka topic`, `rafka configs` and `rafka cluster` commands.

Built on rafka.cli.kafka_client (its connections, ApiVersions negotiation and metadata); this
module adds the topic and config administration APIs with their own version ceilings. Only
standard Kafka APIs are used, so the commands work against Apache Kafka as well. Results are
plain data; a broker error becomes an AdminRequestError naming Kafka's error code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from rafka.cli.kafka_client import (
    DESCRIBE_QUORUM,
    Connection,
    KafkaClient,
    KafkaClientError,
    error_name,
)
from rafka.protocol.errors import ErrorCode

METADATA = 3
CREATE_TOPICS = 19
DELETE_TOPICS = 20
DESCRIBE_CONFIGS = 32
ALTER_CONFIGS = 33
CREATE_PARTITIONS = 37
INCREMENTAL_ALTER_CONFIGS = 44
DESCRIBE_CLUSTER = 60
UNREGISTER_BROKER = 64

# The newest versions this client fills in; the highest both sides support is used.
_ADMIN_MAX = {
    METADATA: 12,
    CREATE_TOPICS: 7,
    DELETE_TOPICS: 6,
    DESCRIBE_CONFIGS: 4,
    ALTER_CONFIGS: 2,
    CREATE_PARTITIONS: 3,
    INCREMENTAL_ALTER_CONFIGS: 1,
    DESCRIBE_CLUSTER: 1,
    UNREGISTER_BROKER: 0,
}
TIMEOUT_MS = 30_000

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_GROUP = 32
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
CONFIG_SOURCES = {
    0: "UNKNOWN",
    1: "DYNAMIC_TOPIC_CONFIG",
    2: "DYNAMIC_BROKER_CONFIG",
    3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
    4: "STATIC_BROKER_CONFIG",
    5: "DEFAULT_CONFIG",
    6: "DYNAMIC_BROKER_LOGGER_CONFIG",
    7: "CLIENT_METRICS_CONFIG",
    8: "GROUP_CONFIG",
}


class AdminRequestError(KafkaClientError):
    """The broker refused a request: `code` is Kafka's error code."""

    def __init__(self, subject: str, code: int, message: str | None = None) -> None:
        detail = f": {message}" if message else ""
        super().__init__(f"{subject}: {error_name(code)}{detail}")
        self.code = code


@dataclass(slots=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]
    offline: list[int]


@dataclass(slots=True)
class TopicInfo:
    name: str
    topic_id: str | None
    internal: bool
    partitions: list[PartitionInfo] = field(default_factory=list)

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0


@dataclass(slots=True)
class ConfigInfo:
    name: str
    value: str | None
    source: str
    read_only: bool
    sensitive: bool
    synonyms: list[dict[str, Any]] = field(default_factory=list)


class AdminClient(KafkaClient):
    """KafkaClient plus the admin APIs."""

    def _request(self, api_key: int, data: dict[str, Any], node_id: int | None = None) -> Any:
        conn = self._any() if node_id is None else self._node(node_id)
        return conn.send(api_key, _version(conn, api_key), data)

    def supports(self, api_key: int) -> bool:
        return api_key in self._any().versions

    # -- cluster and topics -------------------------------------------------------------------

    def metadata(self, topics: list[str] | None = None) -> Any:
        return self._request(
            METADATA,
            {
                "topics": None
                if topics is None
                else [{"name": t, "topic_id": None} for t in topics],
                "allow_auto_topic_creation": False,
                "include_cluster_authorized_operations": False,
                "include_topic_authorized_operations": False,
            },
        )

    def unregister_broker(self, broker_id: int) -> None:
        """UnregisterBroker (Admin.unregisterBroker): the controller forgets the broker."""
        response = self._request(UNREGISTER_BROKER, {"broker_id": broker_id})
        if response.error_code != ErrorCode.none:
            raise AdminRequestError("UnregisterBroker", response.error_code, response.error_message)

    def describe_cluster(self) -> dict[str, Any]:
        if self.supports(DESCRIBE_CLUSTER):
            response = self._request(
                DESCRIBE_CLUSTER,
                {"include_cluster_authorized_operations": False, "endpoint_type": 1},
            )
            if response.error_code != ErrorCode.none:
                raise AdminRequestError(
                    "DescribeCluster", response.error_code, response.error_message
                )
            brokers = [(b.broker_id, b.host, b.port, b.rack) for b in response.brokers]
            cluster_id, controller = response.cluster_id, response.controller_id
        else:
            response = self.metadata([])
            brokers = [(b.node_id, b.host, b.port, b.rack) for b in response.brokers]
            cluster_id, controller = response.cluster_id, response.controller_id
        return {
            "cluster_id": cluster_id,
            "controller_id": controller,
            "brokers": [
                {"id": i, "host": h, "port": p, "rack": r} for i, h, p, r in sorted(brokers)
            ],
        }

    def describe_quorum(self, node_id: int | None = None) -> dict[str, Any] | None:
        """The metadata quorum as its leader describes it (DescribeQuorum), or None if the
        cluster does not serve that API.

        Asked of `node_id` (the controller; any broker if None or -1). A node that is not the
        quorum leader names the leader it knows, which is then asked instead (Apache Kafka
        brokers forward the request to the active controller themselves)."""
        node = None if node_id is None or node_id < 0 else node_id
        asked: set[int | None] = set()
        while True:
            asked.add(node)
            conn = self._any() if node is None else self._node(node)
            if DESCRIBE_QUORUM not in conn.versions:
                return None
            response = conn.send(
                DESCRIBE_QUORUM,
                conn.version_for(DESCRIBE_QUORUM),
                {"topics": [{"topic_name": "__cluster_metadata",
                             "partitions": [{"partition_index": 0}]}]},
            )  # fmt: skip
            if response.error_code != ErrorCode.none:
                raise AdminRequestError(
                    "DescribeQuorum", response.error_code, getattr(response, "error_message", None)
                )
            found = response.topics[0].partitions[0]
            leader = found.leader_id
            if (
                found.error_code == ErrorCode.not_leader_or_follower
                and leader >= 0
                and leader not in asked
                and leader in self.cluster().brokers
            ):
                node = leader
                continue
            if found.error_code != ErrorCode.none:
                raise AdminRequestError(
                    "metadata quorum", found.error_code, getattr(found, "error_message", None)
                )

            def replicas(states: Any) -> list[dict[str, Any]]:
                return [
                    {
                        "id": r.replica_id,
                        "log_end_offset": r.log_end_offset,
                        "last_fetch_timestamp": getattr(r, "last_fetch_timestamp", -1),
                        "last_caught_up_timestamp": getattr(r, "last_caught_up_timestamp", -1),
                    }
                    for r in sorted(states, key=lambda r: r.replica_id)
                ]

            return {
                "leader_id": leader,
                "leader_epoch": found.leader_epoch,
                "high_watermark": found.high_watermark,
                "voters": replicas(found.current_voters),
                "observers": replicas(found.observers),
            }

    def topics(self, names: list[str] | None = None) -> list[TopicInfo]:
        """Topics with their partitions; missing names raise AdminRequestError."""
        response = self.metadata(names)
        out = []
        for t in response.topics:
            if t.error_code != ErrorCode.none:
                raise AdminRequestError(f"topic {t.name!r}", t.error_code)
            topic_id = None if t.topic_id in (None, uuid.UUID(int=0)) else str(t.topic_id)
            info = TopicInfo(t.name, topic_id, bool(t.is_internal))
            for p in sorted(t.partitions, key=lambda p: p.partition_index):
                info.partitions.append(
                    PartitionInfo(
                        p.partition_index,
                        p.leader_id,
                        list(p.replica_nodes),
                        list(p.isr_nodes),
                        list(p.offline_replicas),
                    )
                )
            out.append(info)
        return sorted(out, key=lambda t: t.name)

    def create_topic(
        self,
        name: str,
        partitions: int = -1,
        replication_factor: int = -1,
        configs: dict[str, str] | None = None,
        assignments: list[list[int]] | None = None,
        validate_only: bool = False,
    ) -> Any:
        topic = {
            "name": name,
            "num_partitions": -1 if assignments else partitions,
            "replication_factor": -1 if assignments else replication_factor,
            "assignments": [
                {"partition_index": i, "broker_ids": replicas}
                for i, replicas in enumerate(assignments or [])
            ],
            "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()],
        }
        response = self._request(
            CREATE_TOPICS,
            {"topics": [topic], "timeout": TIMEOUT_MS, "validate_only": validate_only},
        )
        result = response.topics[0]
        if result.error_code != ErrorCode.none:
            raise AdminRequestError(f"topic {name!r}", result.error_code, result.error_message)
        return result

    def delete_topic(self, name: str) -> None:
        response = self._request(
            DELETE_TOPICS,
            {
                "topic_names": [name],
                "topics": [{"name": name, "topic_id": uuid.UUID(int=0)}],
                "timeout": TIMEOUT_MS,
            },
        )
        result = response.responses[0]
        if result.error_code != ErrorCode.none:
            raise AdminRequestError(
                f"topic {name!r}", result.error_code, getattr(result, "error_message", None)
            )

    def create_partitions(self, name: str, count: int, validate_only: bool = False) -> None:
        response = self._request(
            CREATE_PARTITIONS,
            {
                "topics": [{"name": name, "count": count, "assignments": None}],
                "timeout": TIMEOUT_MS,
                "validate_only": validate_only,
            },
        )
        result = response.results[0]
        if result.error_code != ErrorCode.none:
            raise AdminRequestError(f"topic {name!r}", result.error_code, result.error_message)

    # -- configs ------------------------------------------------------------------------------

    def describe_configs(
        self, resource_type: int, name: str, synonyms: bool = False
    ) -> list[ConfigInfo]:
        node = int(name) if resource_type == RESOURCE_BROKER and name else None
        response = self._request(
            DESCRIBE_CONFIGS,
            {
                "resources": [
                    {"resource_type": resource_type, "resource_name": name,
                     "configuration_keys": None}
                ],
                "include_synonyms": synonyms,
                "include_documentation": False,
            },
            node,
        )  # fmt: skip
        result = response.results[0]
        if result.error_code != ErrorCode.none:
            raise AdminRequestError(
                _resource_label(resource_type, name), result.error_code, result.error_message
            )
        return sorted(
            (
                ConfigInfo(
                    c.name,
                    c.value,
                    CONFIG_SOURCES.get(c.config_source, str(c.config_source)),
                    bool(c.read_only),
                    bool(c.is_sensitive),
                    [
                        {
                            "name": s.name,
                            "value": s.value,
                            "source": CONFIG_SOURCES.get(s.source, str(s.source)),
                        }
                        for s in c.synonyms
                    ],
                )  # fmt: skip
                for c in result.configs
            ),
            key=lambda c: c.name,
        )

    def alter_configs(
        self,
        resource_type: int,
        name: str,
        operations: list[tuple[str, int, str | None]],
        validate_only: bool = False,
    ) -> None:
        """IncrementalAlterConfigs with (config name, operation, value) triples."""
        node = int(name) if resource_type == RESOURCE_BROKER and name else None
        response = self._request(
            INCREMENTAL_ALTER_CONFIGS,
            {
                "resources": [
                    {
                        "resource_type": resource_type,
                        "resource_name": name,
                        "configs": [
                            {"name": n, "config_operation": op, "value": v}
                            for n, op, v in operations
                        ],
                    }
                ],
                "validate_only": validate_only,
            },
            node,
        )
        result = response.responses[0]
        if result.error_code != ErrorCode.none:
            raise AdminRequestError(
                _resource_label(resource_type, name), result.error_code, result.error_message
            )


def _resource_label(resource_type: int, name: str) -> str:
    if resource_type == RESOURCE_TOPIC:
        return f"topic {name!r}"
    if resource_type == RESOURCE_GROUP:
        return f"group {name!r}"
    return f"broker {name}" if name else "broker defaults"


def _version(conn: Connection, api_key: int) -> int:
    supported = conn.versions.get(api_key)
    if supported is None:
        raise KafkaClientError(f"{conn.address} does not support API {api_key}")
    version = min(supported[1], _ADMIN_MAX[api_key])
    if version < supported[0]:
        raise KafkaClientError(f"{conn.address}: no common version of API {api_key}")
    return version
