"""The broker: owns the log directory, the partitions, the metadata log and the group commit."""

from __future__ import annotations

import asyncio
import functools
import gc
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import structlog
from msgspec.structs import replace

from rafka.broker.cluster.cluster_metadata import METADATA_TOPIC, ClusterMetadata, TopicImage
from rafka.broker.cluster.controller import (
    ControllerClient,
    NotController,
    fence_silent_brokers,
    reserve_producer_id_block,
)
from rafka.broker.cluster.peers import PeerNetwork
from rafka.broker.cluster.reassignment import (
    REASSIGNMENT_RECORDS,
    ReassignmentDriver,
    configured_voters,
    hand_over_to_preferred,
)
from rafka.broker.cluster.replication import ReplicationManager
from rafka.broker.cluster.self_fencing import CutOff, step_down_while_cut_off
from rafka.broker.config import BrokerConfig
from rafka.broker.coordinator.internal_topic import OFFSETS_TOPIC, TXN_TOPIC
from rafka.broker.fetch_sessions import FetchSessionCache
from rafka.broker.flusher import GroupCommitFlusher, flush_recovered
from rafka.broker.log_cleaner import LogCleanerService
from rafka.broker.log_dirs import LogDirs
from rafka.broker.meta_properties import load_or_create_meta_properties
from rafka.broker.metrics.counters import BrokerMetrics
from rafka.broker.node import BrokerEndpoint
from rafka.broker.node_security import (
    authorizer_for,
    peer_sasl,
    peer_tls,
    seed_scram_credentials,
)
from rafka.broker.partition.append import AppendError
from rafka.broker.partition.batches import settle_for_shutdown
from rafka.broker.partition.replica import NO_REPLICATION, Partition
from rafka.broker.replica_dirs import NewReplicaDirs
from rafka.broker.replica_moves import ReplicaMoves
from rafka.broker.topic_admin import (
    apply_topic_configs,
    create_topic,
    delete_records,
    delete_topic,
    ensure_internal_topic,
    refresh_broker_defaults,
)
from rafka.protocol.errors import ErrorCode
from rafka.replication.raft import RaftConfig, Role, RoleChanged
from rafka.storage.config import LogConfig
from rafka.storage.files import read_partition_metadata, write_partition_metadata
from rafka.storage.log_dir import LogDirectory
from rafka.storage.open_files import configure_budget

if TYPE_CHECKING:
    from rafka.broker.coordinator.groups.coordinator import GroupCoordinator
    from rafka.broker.coordinator.txn.coordinator import TransactionCoordinator

log = structlog.get_logger(__name__)

METADATA_TOPIC_ID = uuid.UUID(int=1)
KRAFT_FETCH_MAX_WAIT_MS = 500  # KafkaRaftClient's MAX_FETCH_WAIT_MS
KRAFT_FETCH_MAX_BYTES = 8 * 1024 * 1024  # KafkaRaftClient's MAX_FETCH_SIZE_BYTES
ALLOCATE_PRODUCER_IDS = 67  # KRaft's fixed id for the metadata topic


class Broker:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id: int = config.node_id
        self.voters = frozenset(config.voter_ids)
        self.default_log_config = LogConfig.from_topic_configs(config.topic_defaults())
        self.log_dirs = LogDirs(config.log_dirs, config.metadata_log_dir)
        # The handlers and the replica moves read these (the same objects as in log_dirs).
        self.data_dirs = self.log_dirs.data_dirs
        self.all_dirs = self.log_dirs.all_dirs
        self.log_dir = self.log_dirs.first
        self.placement = self.log_dirs.placement
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rafka-io")
        # Set, with why, once this node cannot go on (its metadata log failed): it stops.
        self.failure: str | None = None
        self.failed = asyncio.Event()
        self.metrics = BrokerMetrics() if config.metrics_enabled else None  # else: not counted
        self.flusher = GroupCommitFlusher(self.pool, self.metrics and self.metrics.log_flushes)
        # The metadata log's fsyncs never queue behind a round of thousands of data logs': its
        # followers fetch again only once they are done, and the controller's liveness with them.
        self._metadata_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rafka-meta")
        self.metadata_flusher = GroupCommitFlusher(self._metadata_pool)
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.fetch_sessions = FetchSessionCache(
            config.get_int("max.incremental.fetch.session.cache.slots")
        )
        self.new_replica_dirs = NewReplicaDirs(self.log_dir_for, self.pool)
        self.replica_moves = ReplicaMoves(self)
        self.metadata: ClusterMetadata | None = None
        self.cluster_id = ""
        self.own_endpoint: BrokerEndpoint | None = None
        # While a crashed broker opens its partitions: the recovered logs awaiting a flush.
        self._recovered: list[Partition] | None = None
        self.topic_lock = asyncio.Lock()
        self.raft_config = RaftConfig(
            election_timeout_ms=config.get_int("controller.quorum.election.timeout.ms"),
            election_backoff_max_ms=config.get_int("controller.quorum.election.backoff.max.ms"),
            fetch_timeout_ms=config.get_int("controller.quorum.fetch.timeout.ms"),
            request_timeout_ms=config.get_int("controller.quorum.request.timeout.ms"),
            retry_backoff_ms=config.get_int("controller.quorum.retry.backoff.ms"),
            fetch_max_wait_ms=config.get_int("replica.fetch.wait.max.ms"),
            fetch_limit=config.get_int("replica.fetch.max.bytes"),
        )
        # The metadata log holds fetches for KRaft's fixed 500 ms, not replica.fetch.wait.max.ms
        # (a data-partition setting): held longer than broker.session.timeout.ms, an idle log's
        # followers would not hear from its leader in time and would fence themselves. Its
        # fetch size is KRaft's fixed one too.
        self.metadata_raft_config = replace(
            self.raft_config,
            fetch_max_wait_ms=KRAFT_FETCH_MAX_WAIT_MS,
            fetch_limit=KRAFT_FETCH_MAX_BYTES,
        )
        addresses = {v.node_id: (v.host, v.port) for v in config.quorum_voters}
        connect_timeout = config.get_int("socket.connection.setup.timeout.ms") / 1000
        network = (
            PeerNetwork(
                self.node_id, addresses, connect_timeout, peer_tls(config), peer_sasl(config)
            )
            if len(addresses) > 1
            else None
        )
        self.replication = ReplicationManager(
            self, network, self.raft_config, self._on_role_changed
        )
        self.controller_client = ControllerClient(self)
        self.reassignments = ReassignmentDriver(
            self,
            config.replica_lag_time_max_ms,
            self.broker_is_live,
            self.raft_config.fetch_timeout_ms,
        )
        self._background: list[asyncio.Task[None]] = []
        self.cut_off = CutOff()
        # Set by join(): from then on, a coordinator starts as it is first needed.
        self._coordinators_started = False
        self.cleaner = LogCleanerService(self)
        # Told of each deleted topic's id as its record applies (share groups drop its state).
        self.topic_deleted_listeners: list[Callable[[uuid.UUID], None]] = []
        # Told of each `__consumer_offsets` partition loaded here (its CoordinatorShard), to
        # take over the share groups its records hold (handlers/share_admin.py).
        self.share_groups_loaded: Callable[[Any], None] | None = None
        self.authorizer = authorizer_for(config, self)
        # SCRAM credentials to create at first start if missing (`rafka broker --add-scram`,
        # Kafka's `kafka-storage format --add-scram`): (user, mechanism) -> its record.
        self.scram_seeds: dict[tuple[str, str], dict[str, Any]] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the logs and take part in the Raft groups; `join` completes the start once the
        listeners (which the Raft traffic needs) are up."""
        self.flusher.start()
        self.metadata_flusher.start()
        # Thousands of partitions need thousands of files: raise RLIMIT_NOFILE to its hard limit
        # and keep log and index files open within a budget under it.
        log.info("file descriptors", **configure_budget())
        self.cluster_id, directory_ids = load_or_create_meta_properties(
            [d.path for d in self.all_dirs],
            self.node_id,
            self.config.cluster_id,
            self.config.quorum_voters,
        )
        for directory in self.all_dirs:
            directory.directory_id = directory_ids[directory.path]
        self.log_dirs.load()
        metadata_partition = self._open_partition(
            METADATA_TOPIC, 0, METADATA_TOPIC_ID, LogConfig(), self.voters
        )
        metadata_partition.on_storage_failed = self._metadata_log_failed
        # Records are applied as the quorum commits them, which opens this node's partitions.
        self.metadata = ClusterMetadata(metadata_partition, on_record=self._on_metadata_record)
        self.metadata.reserve_block = self._reserve_producer_id_block
        self.replication.start()
        self._attach(metadata_partition)
        # The checkpointed prefix opens our partitions now: millions of objects that live as long
        # as the broker. Collections meanwhile would rescan them again and again (a third of a
        # 10,000-partition start), and frozen they stay out of every later one.
        gc.disable()
        self._recovered = [] if not self.log_dirs.clean_start else None
        try:
            self.metadata.apply_committed()
        finally:
            gc.enable()
            recovered, self._recovered = self._recovered or [], None
        # No collection first: opening creates no reference cycles (a collection here finds
        # nothing at 10,000 partitions and takes a third of a second), and any it did create
        # would be a bounded, one-off leak.
        gc.freeze()
        if recovered:
            await flush_recovered(
                self.flusher, self.pool, [d.path for d in self.all_dirs], recovered
            )
        if len(self.voters) == 1:
            metadata_partition.elect()

    def _metadata_log_failed(self, error: OSError) -> None:
        # Without its metadata log a node can neither follow the cluster nor lead it: it
        # stops, as Kafka halts when its metadata log directory fails.
        if self.failure is None:
            self.failure = f"the metadata log failed: {error}"
            self.failed.set()

    def _queue_recovered(self, partition: Partition) -> None:
        """Recovered logs are synced together: at start, once the checkpointed prefix of the
        metadata log has opened them; later (a metadata high watermark checkpointed behind the
        records that created them, so they open as the quorum commits them again), all those one
        pass of records opens. One syncfs instead of an fdatasync per log."""
        if self._recovered is None:
            self._recovered = []
            asyncio.get_running_loop().call_soon(self._sync_late_recovered)
        self._recovered.append(partition)

    def _sync_late_recovered(self) -> None:
        recovered, self._recovered = self._recovered or [], None
        paths = [d.path for d in self.all_dirs]
        syncing = flush_recovered(self.flusher, self.pool, paths, recovered)
        self._background.append(asyncio.create_task(syncing, name="recovered-logs-sync"))

    async def join(self, endpoint: BrokerEndpoint) -> None:
        """Register with the controller and wait until the metadata log is applied up to that
        registration, then start the coordinators."""
        assert self.metadata is not None
        self.own_endpoint = endpoint
        await self.controller_client.register()
        refresh_broker_defaults(self)  # dynamic broker configs from the metadata log
        known = {*self.partitions, *self.new_replica_dirs.pending_keys(), (METADATA_TOPIC, 0)}
        for directory in self.all_dirs:
            held = {k for k in known if self.placement.get(k) is directory}
            for stray in directory.set_aside_strays(held):
                log.warning("stray partition directory set aside", path=str(stray))
        self.controller_client.start()
        self._background.append(
            asyncio.create_task(fence_silent_brokers(self), name="broker-liveness")
        )
        self._background.append(
            asyncio.create_task(
                step_down_while_cut_off(
                    self.metadata,
                    self.node_id,
                    self.partitions.values,
                    self.cut_off,
                    interval_ms=self.config.get_int("broker.heartbeat.interval.ms"),
                    session_ms=self.config.get_int("broker.session.timeout.ms"),
                ),
                name="self-fencing",
            )
        )
        self._background.append(
            asyncio.create_task(self._preferred_leader_loop(), name="preferred-leaders")
        )
        self._background.append(asyncio.create_task(self.reassignments.run(), name="reassignments"))
        if self.scram_seeds:
            assert self.metadata is not None
            seeding = seed_scram_credentials(self.metadata, self.scram_seeds)
            self._background.append(asyncio.create_task(seeding, name="scram-seeds"))
        # Each replays its topic's partitions this broker leads; the transaction coordinator
        # then finishes the transactions decided there. Without its topic, a coordinator
        # starts at its first request (or when this broker comes to lead one of the topic's
        # partitions), so a broker serving no groups or transactions never imports it.
        for name, topic in (("groups", OFFSETS_TOPIC), ("txn", TXN_TOPIC)):
            if name in self.__dict__ or self.topic(topic) is not None:
                getattr(self, name).start()
        self._coordinators_started = True
        self.cleaner.start()
        log.info(
            "broker started",
            node_id=self.node_id,
            cluster_id=self.cluster_id,
            topics=len(self.metadata.image.topics),
            clean_start=self.log_dirs.clean_start,
        )

    async def stop(self) -> None:
        await self.replica_moves.stop()
        await self.cleaner.stop()
        if "txn" in self.__dict__:
            await self.txn.stop()
        if "groups" in self.__dict__:
            await self.groups.stop()
        await self.hand_over_leadership()
        await self.controller_client.shut_down()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.controller_client.stop()
        await self.replication.stop()
        await self.flusher.close()
        await self.metadata_flusher.close()
        settle_for_shutdown(self.all_partitions())
        self._mark_clean_shutdown()
        self.pool.shutdown(wait=True)
        self._metadata_pool.shutdown(wait=True)
        log.info("broker stopped", node_id=self.node_id)

    def _mark_clean_shutdown(self) -> None:
        """Checkpoints, then each log dir's clean-shutdown marker, which vouches for them. A dir
        with a replica a storage error took offline is not vouched for (its next start recovers
        it, as Kafka does with a failed log directory), nor is any when the checkpoints could
        not be written (a full disk): the shutdown still completes."""
        try:
            self.write_checkpoints()
        except OSError as exc:
            log.error("checkpoints not written: the next start recovers every log", error=str(exc))
            return
        failed = {
            p.directory.parent
            for p in self.all_partitions()
            if p.offline is ErrorCode.kafka_storage_error
        }
        for directory in self.all_dirs:
            if directory.path in failed:
                log.warning(
                    "log dir not marked clean: it had a storage error", dir=str(directory.path)
                )
                continue
            try:
                directory.mark_clean_shutdown()
            except OSError as exc:
                log.error("log dir not marked clean", dir=str(directory.path), error=str(exc))

    async def hand_over_leadership(self, timeout: float = 5.0) -> None:
        """Graceful shutdown: every group this node leads hands over (EndQuorumEpoch to the most
        caught-up voter), and we wait, bounded, until a successor is known for each."""
        replicated = [p for p in self.all_partitions() if len(p.raft.voters) > 1]
        for partition in replicated:
            # On its way out, this node stands for no election (it would take back what it
            # just handed over, and the handover would go round again) and votes in none.
            partition.raft.leaving = True
        led = [p for p in replicated if p.is_leader]
        if not led:
            return
        for partition in led:
            partition.apply(partition.raft.resign())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if all(p.raft.leader_id not in (None, self.node_id) for p in led):
                break
            await asyncio.sleep(0.02)
        log.info("leadership handed over", partitions=len(led))

    async def _preferred_leader_loop(self) -> None:
        """auto.leader.rebalance.enable: a leader that is not its partition's preferred replica
        hands over to it once that replica is caught up (Kafka's preferred leader election)."""
        if not self.config.get_bool("auto.leader.rebalance.enable"):
            return
        interval = self.config.get_int("leader.imbalance.check.interval.seconds")
        while True:
            await asyncio.sleep(min(interval, 5))
            self.move_to_preferred_leaders()

    def move_to_preferred_leaders(self) -> None:
        led = [p for p in self.partitions.values() if p.is_leader]
        hand_over_to_preferred(self, led, self.broker_is_live, self.raft_config.fetch_timeout_ms)

    def write_checkpoints(self) -> None:
        self.log_dirs.write_checkpoints(self.all_partitions())

    def log_dir_for(self, topic: str, index: int) -> LogDirectory:
        return self.log_dirs.dir_for(
            (topic, index), self.replica_moves.take_preferred, self.replica_moves.targets()
        )

    def replica_moved(self, key: tuple[str, int], target: LogDirectory) -> None:
        self.log_dirs.moved(key, target)

    @property
    def controller_id(self) -> int:
        """What clients see as the controller: the metadata quorum's leader while it is a live
        broker they can reach, else this node (which forwards what only the controller may do).
        A controller id missing from the brokers of the same answer leaves clients (librdkafka's
        admin requests) waiting for it; Kafka's KRaft brokers name a live broker too."""
        if self.metadata is None:
            return -1
        leader = self.metadata.partition.leader_id
        brokers = self.metadata.image.brokers
        if leader is not None and leader in brokers and not brokers[leader].fenced:
            return leader
        own = brokers.get(self.node_id)
        return self.node_id if own is not None and not own.fenced else -1

    @property
    def network(self) -> PeerNetwork | None:
        return self.replication.network

    @property
    def is_controller(self) -> bool:
        return self.metadata is not None and self.metadata.is_leader

    @property
    def endpoints(self) -> list[BrokerEndpoint]:
        """Registered brokers that are not fenced, as Metadata lists them."""
        return self.endpoints_for(None)

    def endpoints_for(self, listener: str | None) -> list[BrokerEndpoint]:
        """The live brokers at their addresses for clients of `listener` (Kafka answers each
        listener with its own advertised addresses)."""
        brokers = self.metadata.image.brokers if self.metadata is not None else {}
        live = [
            BrokerEndpoint(b.node_id, *b.address(listener), b.rack)
            for b in sorted(brokers.values(), key=lambda b: b.node_id)
            if not b.fenced
        ]
        own = self.own_endpoint
        if not live and own is not None:
            addresses = {name: (host, port) for name, host, port in own.listeners}
            host, port = addresses.get(listener or "", (own.host, own.port))
            return [BrokerEndpoint(own.node_id, host, port, own.rack, own.listeners)]
        return live

    def broker_is_live(self, node_id: int) -> bool:
        if self.metadata is None:
            return False
        registration = self.metadata.image.brokers.get(node_id)
        return registration is not None and not registration.fenced

    def leadership(self, topic: TopicImage, index: int) -> tuple[int, int, list[int]]:
        """(leader, leader epoch, ISR) of a partition as this broker knows it: its own replica's
        Raft state when newer, else what the leader last reported to the controller."""
        partition = self.partitions.get((topic.name, index))
        reported = topic.states.get(index)
        if partition is not None and partition.offline is None:
            if partition.is_leader:
                return self.node_id, partition.leader_epoch, partition.in_sync_replicas()
            leader = partition.raft.leader_id
            # Our own id while not leading: restarted after leading that epoch (resigned).
            if (
                leader is not None
                and leader != self.node_id
                and (reported is None or reported.leader_epoch < partition.leader_epoch)
            ):
                return leader, partition.leader_epoch, list(topic.replicas[index])
        if reported is None:
            return -1, -1, []
        if reported.leader == self.node_id and partition is not None and not partition.is_leader:
            return -1, -1, list(reported.isr)  # we lost it; the new leader has not reported
        return reported.leader, reported.leader_epoch, list(reported.isr)

    def all_partitions(self) -> list[Partition]:
        parts = list(self.partitions.values())
        if self.metadata is not None:
            parts.append(self.metadata.partition)
        return parts

    # -- partitions ---------------------------------------------------------------------------

    def _open_partition(
        self,
        topic: str,
        index: int,
        topic_id: uuid.UUID,
        config: LogConfig,
        voters: frozenset[int],
        *,
        has_metadata: bool = False,
    ) -> Partition:
        """`has_metadata`: the caller has just read this replica's `partition.metadata`."""
        directory = self.log_dir_for(topic, index).create_partition_dir(topic, index)
        clean = self.log_dirs.is_clean((topic, index))
        if not has_metadata and read_partition_metadata(directory) is None:
            write_partition_metadata(directory, topic_id)
            # A new replica: checkpoints naming this partition are of a deleted namesake, and
            # would look like data this replica lost.
            self.log_dirs.forget_checkpoints((topic, index))
        started = time.monotonic()
        recovery_points = self.log_dirs.recovery_points
        flusher = self.metadata_flusher if topic == METADATA_TOPIC else self.flusher
        partition = Partition.open(
            topic,
            index,
            topic_id,
            directory,
            config,
            node_id=self.node_id,
            voters=voters,
            flusher=flusher,
            recovery_point=recovery_points.get((topic, index), 0),
            log_start_offset=self.log_dirs.log_start_offsets.get((topic, index), 0),
            high_watermark=self.log_dirs.high_watermarks.get((topic, index), 0),
            clean_shutdown=clean,
            producer_id_expiration_ms=self.config.get_int("producer.id.expiration.ms"),
            raft_config=self.metadata_raft_config if topic == METADATA_TOPIC else self.raft_config,
        )
        partition.replica_lag_time_max_ms = self.config.replica_lag_time_max_ms
        if partition.log_end_offset > 0 and not clean:
            # Recovered bytes count for Raft only once fsynced: a follower fetches from there.
            if flusher is not self.flusher:
                flusher.request(partition)
            else:
                self._queue_recovered(partition)
        if not clean and partition.log_end_offset > 0:
            # One line per partition is noise by the thousand; a cut tail logs its own warning.
            log.debug(
                "partition recovered",
                partition=partition.name,
                recovery_point=recovery_points.get((topic, index), 0),
                log_end_offset=partition.log_end_offset,
                segments=len(partition.log.segments),
                ms=round((time.monotonic() - started) * 1000, 1),
            )
        return partition

    def _attach(self, partition: Partition) -> None:
        """Let the partition take part in its Raft group."""
        self.replication.attach(partition)
        key = (partition.topic, partition.index)
        if self.log_dirs.is_clean(key) and partition.log_end_offset > 0:
            # A clean shutdown fsynced and closed every log: it is durable to its end, with no
            # flush to wait for (for thousands of partitions, thousands of wasted fsyncs).
            partition.on_flushed(partition.log_end_offset)

    def topic_log_config(self, topic: TopicImage) -> LogConfig:
        return LogConfig.from_topic_configs(topic.configs, self.default_log_config)

    def _open_topic(self, topic: TopicImage) -> None:
        """Open this node's replicas of `topic` and let them take part in their Raft groups;
        new ones once their directories are durable (replica_dirs.py)."""
        config = self.topic_log_config(topic)
        new: list[int] = []
        for index, replicas in enumerate(topic.replicas):
            key = (topic.name, index)
            if (
                self.node_id not in replicas
                or key in self.partitions
                or self.new_replica_dirs.pending(key)
            ):
                continue
            if read_partition_metadata(self.log_dir_for(*key).partition_dir(*key)) is None:
                new.append(index)
                continue
            # A replica a reassignment adds opens as an observer of the voters before it.
            voters = configured_voters(topic, index)
            partition = self._open_partition(
                topic.name, index, topic.topic_id, config, voters, has_metadata=True
            )
            self.partitions[(topic.name, index)] = partition
            self._attach(partition)
            fresh = partition.log_end_offset == 0 and partition.leader_epoch == 0
            if len(voters) == 1 or (fresh and replicas[0] == self.node_id):
                # A new partition's preferred replica stands at once; restarted ones wait for
                # their election timers, so that a healthy leader elsewhere is not disrupted.
                partition.elect()
        if new:
            self._create_replicas(topic, new)

    async def wait_for_new_replicas(self, keys: Iterable[tuple[str, int]]) -> None:
        await self.new_replica_dirs.wait(keys)

    def _create_replicas(self, topic: TopicImage, indexes: list[int]) -> None:
        for index in indexes:
            # A new replica: checkpoints naming this partition are of a deleted namesake, and
            # would look like data this replica lost.
            self.log_dirs.forget_checkpoints((topic.name, index))
        durable = self.new_replica_dirs.create(topic.name, topic.topic_id, indexes)
        durable.add_done_callback(
            functools.partial(self._on_replicas_durable, topic.topic_id, topic.name, indexes)
        )

    def _on_replicas_durable(
        self, topic_id: uuid.UUID, name: str, indexes: list[int], durable: asyncio.Future[None]
    ) -> None:
        if durable.cancelled() or self.metadata is None:
            return
        error = durable.exception()
        if error is not None:  # as a failed log fsync: these replicas stay offline
            log.error(
                "new replicas offline: their directories could not be written",
                topic=name,
                partitions=indexes,
                error=str(error),
            )
            return
        topic = self.metadata.image.topics_by_id.get(topic_id)
        if topic is None:  # deleted meanwhile
            for index in indexes:
                if (name, index) not in self.partitions:
                    self.log_dirs.delete_replica_dir((name, index))
            return
        self._open_topic(topic)
        apply_topic_configs(self, topic)

    def _on_metadata_record(self, record: dict[str, Any]) -> None:
        """Act on a committed metadata record, on every node alike."""
        assert self.metadata is not None
        kind = record["type"]
        image = self.metadata.image
        if kind in ("topic", "partitions", "topic_configs"):
            topic = image.topics_by_id.get(uuid.UUID(record["id"]))
            if topic is not None:
                self._open_topic(topic)
                apply_topic_configs(self, topic)
        elif kind == "remove_topic":
            topic_id = uuid.UUID(record["id"])
            for key, partition in list(self.partitions.items()):
                if partition.topic_id == topic_id:
                    self._drop_partition(key)
            for listener in self.topic_deleted_listeners:
                listener(topic_id)
        elif kind == "broker_configs":
            refresh_broker_defaults(self)
        elif kind == "broker":
            self._learn_peer_address(record["id"])
            self._mark_out_of_sync(record["id"])  # it restarted: in sync once caught up again
        elif kind == "broker_fenced" and record["fenced"]:
            self._mark_out_of_sync(record["id"])
        elif kind in REASSIGNMENT_RECORDS:
            topic = image.topics_by_id.get(uuid.UUID(record["id"]))
            if topic is not None:
                self._on_reassignment(kind, topic, record)

    def _mark_out_of_sync(self, node_id: int) -> None:
        for partition in self.partitions.values():
            if partition.is_leader:
                partition.raft.mark_out_of_sync(node_id)

    def _on_reassignment(self, kind: str, topic: TopicImage, record: dict[str, Any]) -> None:
        """Replicas a reassignment adds open (as observers); ones it removed close once it is
        done; the leader's driver moves the voters; ElectLeaders hands over to the preferred."""
        if kind == "reassignment_done":
            indexes = [record["partition"]]
        elif kind == "reassign_partitions":
            indexes = [entry["partition"] for entry in record["partitions"]]
        else:
            indexes = list(record["partitions"])
        if kind == "elect_preferred":
            for index in indexes:
                self.reassignments.prefer(topic.name, index)
            return
        self._open_topic(topic)
        for index in indexes:
            key = (topic.name, index)
            if index < topic.partition_count and self.node_id not in topic.replicas[index]:
                if key in self.partitions and index not in topic.reassignments:
                    log.info("replica reassigned away", partition=f"{topic.name}-{index}")
                    self._drop_partition(key)
            self.reassignments.watch(*key)

    def _learn_peer_address(self, node_id: int) -> None:
        """A broker-only node has no controller listener: the other nodes send it their Raft
        traffic at its inter-broker listener, as registered (voters stay at theirs)."""
        assert self.metadata is not None
        registration = self.metadata.image.brokers.get(node_id)
        network = self.network
        if network is None or registration is None or node_id in self.voters:
            return
        listener = self.config.inter_broker_listener_name
        network.set_address(node_id, *registration.address(listener))

    def _drop_partition(self, key: tuple[str, int]) -> None:
        partition = self.partitions.pop(key, None)
        if partition is None:
            return
        partition.offline = ErrorCode.unknown_topic_or_partition
        partition.hooks = NO_REPLICATION  # detached: no more Raft traffic
        self.replica_moves.cancel(key)
        partition.close()
        self.log_dirs.delete_replica_dir(key)
        self.log_dirs.forget_checkpoints(key)

    def _on_role_changed(self, partition: Partition, change: RoleChanged) -> None:
        if partition.topic == METADATA_TOPIC:
            log.info(
                "metadata quorum leader changed",
                leader=change.leader_id,
                epoch=change.epoch,
                role=change.role.value,
            )
            return
        if change.role is Role.LEADER:
            self.controller_client.leadership_changed(partition)
            self.reassignments.watch(partition.topic, partition.index)
        if partition.topic == OFFSETS_TOPIC:
            self.groups.sync_leadership()
        elif partition.topic == TXN_TOPIC:
            self.txn.sync_leadership()

    # -- the coordinators, imported and started at their first use ----------------------------

    @functools.cached_property
    def groups(self) -> GroupCoordinator:
        from rafka.broker.coordinator.groups.coordinator import GroupCoordinator

        coordinator = GroupCoordinator(self)
        if self._coordinators_started:
            coordinator.start()
        return coordinator

    @functools.cached_property
    def txn(self) -> TransactionCoordinator:
        from rafka.broker.coordinator.txn.coordinator import TransactionCoordinator

        coordinator = TransactionCoordinator(self)
        if self._coordinators_started:
            coordinator.start()
        return coordinator

    def partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get((topic, index))

    def absent_partition_error(self, topic: str, index: int) -> ErrorCode:
        """Kafka's answer for a partition this broker holds no replica of: the client's
        metadata is stale (NOT_LEADER_OR_FOLLOWER) if the partition exists elsewhere."""
        image = self.topic(topic)
        if image is not None and 0 <= index < image.partition_count:
            return ErrorCode.not_leader_or_follower
        return ErrorCode.unknown_topic_or_partition

    def topic(self, name: str) -> TopicImage | None:
        assert self.metadata is not None
        return self.metadata.image.topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicImage | None:
        assert self.metadata is not None
        return self.metadata.image.topics_by_id.get(topic_id)

    # -- requests only the controller serves -------------------------------------------------

    async def _reserve_producer_id_block(self) -> int:
        while True:
            try:
                if self.is_controller:
                    return await reserve_producer_id_block(self, self.node_id)
                response = await self.controller_client.call(
                    ALLOCATE_PRODUCER_IDS, 0, {"broker_id": self.node_id, "broker_epoch": -1}
                )
                if response.error_code == ErrorCode.none:
                    return int(response.producer_id_start)
            except (NotController, AppendError):
                pass  # leadership moved, or a new controller is not caught up yet
            await asyncio.sleep(0.1)  # the quorum is electing a leader

    def live_broker_ids(self) -> list[int]:
        assert self.metadata is not None
        live = [b.node_id for b in self.metadata.image.brokers.values() if not b.fenced]
        return sorted(live) or [self.node_id]

    # -- topic administration (topic_admin does the work) ------------------------------------

    async def create_topic(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: dict[str, str] | None = None,
        validate_only: bool = False,
        assignments: list[list[int]] | None = None,
    ) -> TopicImage:
        return await create_topic(
            self, name, num_partitions, replication_factor, configs, validate_only, assignments
        )

    async def ensure_internal_topic(
        self, name: str, num_partitions: int, replication_factor: int, configs: dict[str, str]
    ) -> TopicImage:
        return await ensure_internal_topic(self, name, num_partitions, replication_factor, configs)

    async def delete_topic(self, topic: TopicImage) -> None:
        await delete_topic(self, topic)

    async def delete_records(self, partition: Partition, offset: int) -> int:
        return await delete_records(self, partition, offset)

    async def call_controller(self, api_key: int, version: int, data: dict[str, Any]) -> Any:
        return await self.controller_client.call(api_key, version, data)
