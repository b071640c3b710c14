"""The broker: owns the log directory, the partitions, the metadata log and the group commit."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from rafka.broker.cluster_metadata import METADATA_TOPIC, ClusterMetadata, TopicImage
from rafka.broker.config import BrokerConfig
from rafka.broker.flusher import GroupCommitFlusher
from rafka.broker.groups.coordinator import GroupCoordinator
from rafka.broker.log_cleaner import LogCleanerService
from rafka.broker.partition import Partition
from rafka.broker.topic_admin import refresh_broker_defaults
from rafka.broker.txn.coordinator import TransactionCoordinator
from rafka.protocol.errors import ErrorCode
from rafka.storage.config import LogConfig
from rafka.storage.files import read_partition_metadata, write_partition_metadata
from rafka.storage.log_dir import LogDirectory

log = structlog.get_logger(__name__)

METADATA_TOPIC_ID = uuid.UUID(int=1)  # KRaft's fixed id for the metadata topic
MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")


class TopicError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True, frozen=True)
class BrokerEndpoint:
    node_id: int
    host: str
    port: int
    rack: str | None = None


def _collision_key(name: str) -> str:
    # Kafka's metric names map '.' to '_', so two topics differing only there would collide.
    return name.replace(".", "_")


def validate_topic_name(name: str) -> None:
    if name == METADATA_TOPIC:
        raise TopicError(ErrorCode.invalid_request, f"{name} is reserved for cluster metadata")
    if not name or name in (".", ".."):
        raise TopicError(ErrorCode.invalid_topic_exception, f"illegal topic name {name!r}")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise TopicError(
            ErrorCode.invalid_topic_exception,
            f"topic name is longer than {MAX_TOPIC_NAME_LENGTH} characters",
        )
    if not _LEGAL_TOPIC_NAME.match(name):
        raise TopicError(
            ErrorCode.invalid_topic_exception,
            f"topic name {name!r} has characters other than ASCII alphanumerics, '.', '_', '-'",
        )


class Broker:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id: int = config.node_id
        self.voters = frozenset(config.voter_ids)
        self.default_log_config = LogConfig.from_topic_configs(config.topic_defaults())
        self.log_dir = LogDirectory(config.log_dirs[0])
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rafka-io")
        self.flusher = GroupCommitFlusher(self.pool)
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.metadata: ClusterMetadata | None = None
        self.cluster_id = ""
        self.endpoints: list[BrokerEndpoint] = []
        self._clean_start = False
        self._log_start_offsets: dict[tuple[str, int], int] = {}
        self._topic_lock = asyncio.Lock()
        self.groups = GroupCoordinator(self)
        self.txn = TransactionCoordinator(self)
        self.cleaner = LogCleanerService(self)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.flusher.start()
        self.cluster_id = self._load_or_create_meta_properties()
        self._clean_start = self.log_dir.had_clean_shutdown()
        self.log_dir.clear_clean_shutdown()
        recovery_points = self.log_dir.read_recovery_points()
        self._log_start_offsets = self.log_dir.read_log_start_offsets()
        metadata_partition = self._open_partition(
            METADATA_TOPIC, 0, METADATA_TOPIC_ID, recovery_points, LogConfig()
        )
        self.metadata = ClusterMetadata(metadata_partition)
        self.metadata.replay()
        refresh_broker_defaults(self)  # dynamic broker configs from the metadata log
        metadata_partition.elect()
        for topic in list(self.metadata.image.topics.values()):
            self._open_topic(topic, recovery_points)
        self._set_aside_stray_partition_dirs()
        # The metadata log's leader-change batch must commit before the broker serves.
        await metadata_partition.wait_committed(metadata_partition.log_end_offset - 1)
        self.groups.start()  # replays the __consumer_offsets partitions this broker leads
        self.txn.start()  # replays __transaction_state, finishes decided transactions
        self.cleaner.start()
        log.info(
            "broker started",
            node_id=self.node_id,
            cluster_id=self.cluster_id,
            topics=len(self.metadata.image.topics),
            clean_start=self._clean_start,
        )

    async def stop(self) -> None:
        await self.cleaner.stop()
        await self.txn.stop()
        await self.groups.stop()
        await self.flusher.close()
        for partition in self.all_partitions():
            try:
                partition.snapshot_producers()
            except OSError as exc:
                log.error("producer snapshot failed", partition=partition.name, error=str(exc))
        for partition in self.all_partitions():
            partition.log.flush()
        self.write_checkpoints()
        for partition in self.all_partitions():
            partition.close()
        self.log_dir.mark_clean_shutdown()
        self.pool.shutdown(wait=True)
        log.info("broker stopped", node_id=self.node_id)

    def write_checkpoints(self) -> None:
        """Recovery points bound the CRC scan after a crash; log start offsets keep retention."""
        partitions = self.all_partitions()
        self.log_dir.write_recovery_points(
            {(p.topic, p.index): p.log.recovery_point for p in partitions}
        )
        self.log_dir.write_log_start_offsets(
            {(p.topic, p.index): p.log_start_offset for p in partitions}
        )

    @property
    def controller_id(self) -> int:
        """The metadata quorum's leader, which Kafka clients see as the controller."""
        if self.metadata is None:
            return -1
        return self.metadata.partition.leader_id

    def all_partitions(self) -> list[Partition]:
        parts = list(self.partitions.values())
        if self.metadata is not None:
            parts.append(self.metadata.partition)
        return parts

    def _load_or_create_meta_properties(self) -> str:
        path = self.log_dir.path / "meta.properties"
        values: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if "=" in line and not line.startswith("#"):
                    key, value = line.split("=", 1)
                    values[key.strip()] = value.strip()
            stored_node = values.get("node.id")
            if stored_node is not None and int(stored_node) != self.node_id:
                raise RuntimeError(
                    f"log dir {self.log_dir.path} belongs to node.id {stored_node}, "
                    f"not {self.node_id}"
                )
        cluster_id = values.get("cluster.id") or self.config.cluster_id or _new_cluster_id()
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(f"version=1\nnode.id={self.node_id}\ncluster.id={cluster_id}\n")
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        return cluster_id

    # -- partitions ---------------------------------------------------------------------------

    def _open_partition(
        self,
        topic: str,
        index: int,
        topic_id: uuid.UUID,
        recovery_points: dict[tuple[str, int], int],
        config: LogConfig,
    ) -> Partition:
        directory = self.log_dir.create_partition_dir(topic, index)
        if read_partition_metadata(directory) is None:
            write_partition_metadata(directory, topic_id)
        started = time.monotonic()
        partition = Partition.open(
            topic,
            index,
            topic_id,
            directory,
            config,
            node_id=self.node_id,
            voters=self.voters,
            flusher=self.flusher,
            recovery_point=recovery_points.get((topic, index), 0),
            log_start_offset=self._log_start_offsets.get((topic, index), 0),
            clean_shutdown=self._clean_start,
            producer_id_expiration_ms=self.config.get_int("producer.id.expiration.ms"),
        )
        if not self._clean_start and partition.log_end_offset > 0:
            log.info(
                "partition recovered",
                partition=partition.name,
                recovery_point=recovery_points.get((topic, index), 0),
                log_end_offset=partition.log_end_offset,
                segments=len(partition.log.segments),
                ms=round((time.monotonic() - started) * 1000, 1),
            )
        return partition

    def topic_log_config(self, topic: TopicImage) -> LogConfig:
        return LogConfig.from_topic_configs(topic.configs, self.default_log_config)

    def _open_topic(self, topic: TopicImage, recovery_points: dict[tuple[str, int], int]) -> None:
        config = self.topic_log_config(topic)
        for index, replicas in enumerate(topic.replicas):
            if self.node_id not in replicas or (topic.name, index) in self.partitions:
                continue
            partition = self._open_partition(
                topic.name, index, topic.topic_id, recovery_points, config
            )
            self.partitions[(topic.name, index)] = partition
            partition.elect()

    def _set_aside_stray_partition_dirs(self) -> None:
        """Partition directories the metadata does not know (a delete interrupted by a crash).

        Like Kafka's stray logs they are renamed, not deleted: a damaged metadata log must never
        cost data, and a topic created later under the same name must not inherit them.
        """
        for topic, index, path in self.log_dir.partition_dirs():
            if topic != METADATA_TOPIC and (topic, index) not in self.partitions:
                stray = path.with_name(f"{path.name}.{uuid.uuid4().hex}-stray")
                os.rename(path, stray)
                log.warning("stray partition directory set aside", path=str(stray))

    def partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get((topic, index))

    def topic(self, name: str) -> TopicImage | None:
        assert self.metadata is not None
        return self.metadata.image.topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicImage | None:
        assert self.metadata is not None
        return self.metadata.image.topics_by_id.get(topic_id)

    # -- topic administration -----------------------------------------------------------------

    async def create_topic(
        self,
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
            num_partitions = int(self.config.get("num.partitions"))
        if replication_factor == -1:
            replication_factor = int(self.config.get("default.replication.factor"))
        if num_partitions <= 0:
            raise TopicError(ErrorCode.invalid_partitions, "number of partitions must be positive")
        if replication_factor <= 0:
            raise TopicError(
                ErrorCode.invalid_replication_factor, "replication factor must be positive"
            )
        brokers = sorted(self.voters)
        if replication_factor > len(brokers):
            raise TopicError(
                ErrorCode.invalid_replication_factor,
                f"replication factor {replication_factor} is larger than the number of "
                f"available brokers {len(brokers)}",
            )
        configs = dict(configs or {})
        try:
            LogConfig.from_topic_configs(configs, self.default_log_config)
        except ValueError as exc:
            raise TopicError(ErrorCode.invalid_config, str(exc)) from None
        async with self._topic_lock:
            assert self.metadata is not None
            if name in self.metadata.image.topics:
                raise TopicError(ErrorCode.topic_already_exists, f"topic {name!r} already exists")
            for existing in self.metadata.image.topics:
                if _collision_key(existing) == _collision_key(name):
                    raise TopicError(
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
            await self.metadata.propose([record])
            topic = self.metadata.image.topics[name]
            self._open_topic(topic, {})
        for index in range(topic.partition_count):
            partition = self.partitions.get((name, index))
            if partition is not None:
                await partition.wait_committed(partition.log_end_offset - 1)
        log.info("topic created", topic=name, partitions=num_partitions)
        return topic

    async def ensure_internal_topic(
        self, name: str, num_partitions: int, replication_factor: int, configs: dict[str, str]
    ) -> TopicImage:
        """An internal topic (e.g. __consumer_offsets), created on first need as Kafka does."""
        topic = self.topic(name)
        if topic is not None:
            return topic
        try:
            return await self.create_topic(name, num_partitions, replication_factor, configs)
        except TopicError as exc:
            if exc.code != ErrorCode.topic_already_exists:
                raise
        topic = self.topic(name)
        assert topic is not None
        return topic

    async def delete_topic(self, topic: TopicImage) -> None:
        assert self.metadata is not None
        async with self._topic_lock:
            await self.metadata.propose([{"type": "remove_topic", "id": str(topic.topic_id)}])
            for index in range(topic.partition_count):
                partition = self.partitions.pop((topic.name, index), None)
                if partition is not None:
                    partition.offline = ErrorCode.unknown_topic_or_partition
                    partition.close()
                    self.log_dir.delete_partition_dir(topic.name, index)
        log.info("topic deleted", topic=topic.name)


def _new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
