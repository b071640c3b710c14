"""The doors between the broker's parts and the node they run in.

`Broker` (broker.py) is the composition root: it builds the replication manager, the controller
client, the coordinators and the log cleaner, and hands itself to each as one of these small
interfaces. A part depends on what it may ask of the node, never on `Broker`, so nothing below the
composition root imports it (not even for type hints) and the imports point one way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from msgspec import Struct

from rafka.broker.cluster.cluster_metadata import ClusterMetadata, TopicImage
from rafka.broker.cluster.peers import PeerNetwork
from rafka.broker.config import BrokerConfig
from rafka.broker.partition.replica import Partition
from rafka.protocol.errors import ErrorCode
from rafka.storage.config import LogConfig
from rafka.storage.log_dir import LogDirectory


class BrokerEndpoint(Struct, frozen=True):
    """Where clients reach a broker."""

    node_id: int
    host: str
    port: int
    rack: str | None = None
    # Every advertised client listener, name -> (host, port); host and port are the first.
    listeners: tuple[tuple[str, str, int], ...] = ()


class Node(Protocol):
    """Who this node is, the cluster metadata it has applied, and its partitions: what Raft's
    transport and request forwarding need."""

    config: BrokerConfig
    node_id: int
    cluster_id: str
    metadata: ClusterMetadata | None
    partitions: dict[tuple[str, int], Partition]

    @property
    def network(self) -> PeerNetwork | None:
        """The connections to the other nodes (None for a single node)."""
        ...

    @property
    def is_controller(self) -> bool: ...

    def partition(self, topic: str, index: int) -> Partition | None: ...

    def topic(self, name: str) -> TopicImage | None: ...

    def leadership(self, topic: TopicImage, index: int) -> tuple[int, int, list[int]]: ...

    def absent_partition_error(self, topic: str, index: int) -> ErrorCode: ...


class ControllerNode(Node, Protocol):
    """What registration, heartbeats and the controller's handlers add: the voters and the
    address this node registers."""

    voters: frozenset[int]
    own_endpoint: BrokerEndpoint | None


class StorageNode(Node, Protocol):
    """What topic administration and the log cleaner add: the log directory, the I/O pool, the
    log configs, the lock that serializes topic changes and requests to the controller."""

    log_dir: LogDirectory
    pool: ThreadPoolExecutor
    default_log_config: LogConfig
    topic_lock: asyncio.Lock

    def topic_log_config(self, topic: TopicImage) -> LogConfig: ...

    def live_broker_ids(self) -> list[int]: ...

    def write_checkpoints(self) -> None: ...

    async def wait_for_new_replicas(self, keys: Iterable[tuple[str, int]]) -> None:
        """Until these replicas, if being created, are durable and open."""
        ...

    async def call_controller(self, api_key: int, version: int, data: dict[str, Any]) -> Any:
        """A request to the metadata quorum's leader (NotController if there is none)."""
        ...


class CoordinatorNode(Node, Protocol):
    """What a coordinator over an internal topic adds: the live brokers' addresses and the
    internal topic's creation on first need."""

    # Told of each group coordinator shard loaded (the share groups it holds).
    share_groups_loaded: Callable[[Any], None] | None

    @property
    def endpoints(self) -> list[BrokerEndpoint]: ...

    async def ensure_internal_topic(
        self, name: str, num_partitions: int, replication_factor: int, configs: dict[str, str]
    ) -> TopicImage: ...

    async def delete_records(self, partition: Partition, offset: int) -> int:
        """Move the log start offset of a partition this node leads to `offset` (DeleteRecords);
        the new log start offset."""
        ...
