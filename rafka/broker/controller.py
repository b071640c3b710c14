"""The controller's side of the cluster: what the leader of the metadata quorum decides for all.

- BrokerRegistration (62): a starting broker publishes its endpoint; it is unfenced.
- AlterPartition (56): a partition leader reports its leader epoch and ISR; the controller writes
  them to the metadata log so that every broker's Metadata answers name the leader.
- AllocateProducerIds (67): blocks of producer ids for brokers' InitProducerId.
- Liveness: a voter the controller has not heard from (its metadata fetches) for
  broker.session.timeout.ms is fenced, shown offline, and unfenced when it fetches again.

And the broker's side of those requests: `ControllerClient` registers this broker and reports
the leaderships it gains or whose ISR changes, to whichever node leads the metadata quorum.
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import structlog

from rafka.broker.cluster_metadata import PRODUCER_ID_BLOCK_SIZE, PartitionState
from rafka.broker.partition import AppendError, Partition, raft_clock_ms
from rafka.broker.peers import PeerUnavailable
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.broker import Broker

log = structlog.get_logger(__name__)

BROKER_REGISTRATION = 62
BROKER_REGISTRATION_VERSION = 3
ALTER_PARTITION = 56
ALTER_PARTITION_VERSION = 3
ALLOCATE_PRODUCER_IDS = 67
REPORT_INTERVAL_S = 0.05
ISR_CHECK_INTERVAL_S = 1.0


class NotController(Exception):
    pass


# -- controller: requests from brokers ---------------------------------------------------------


async def register_broker(broker: Broker, request: Any) -> dict[str, Any]:
    metadata = broker.metadata
    assert metadata is not None
    if not metadata.is_leader:
        return {"throttle_time": 0, "error_code": ErrorCode.not_controller}
    listener = request.listeners[0] if request.listeners else None
    if listener is None:
        return {"throttle_time": 0, "error_code": ErrorCode.invalid_request}
    record = {
        "type": "broker",
        "id": request.broker_id,
        "host": listener.host,
        "port": listener.port,
        "rack": request.rack,
        "incarnation": str(request.incarnation_id),
    }
    try:
        await metadata.propose([record])
    except AppendError as exc:
        return {"throttle_time": 0, "error_code": exc.code}
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "broker_epoch": metadata.applied_offset,
    }


async def alter_partition(broker: Broker, request: Any) -> dict[str, Any]:
    metadata = broker.metadata
    assert metadata is not None
    if not metadata.is_leader:
        return {"throttle_time": 0, "error_code": ErrorCode.not_controller, "topics": []}
    states = []
    topics_out = []
    for topic in request.topics:
        image = metadata.image.topics_by_id.get(topic.topic_id)
        parts_out = []
        for p in topic.partitions:
            isr = [s.broker_id for s in p.new_isr_with_epochs]
            error = ErrorCode.none
            if image is None or p.partition_index >= image.partition_count:
                error = ErrorCode.unknown_topic_or_partition
            else:
                known = image.states.get(p.partition_index)
                if known is not None and known.leader_epoch > p.leader_epoch:
                    error = ErrorCode.fenced_leader_epoch
                else:
                    states.append(
                        {
                            "id": str(topic.topic_id),
                            "partition": p.partition_index,
                            "leader": request.broker_id,
                            "epoch": p.leader_epoch,
                            "isr": isr,
                        }
                    )
            parts_out.append(
                {
                    "partition_index": p.partition_index,
                    "error_code": error,
                    "leader_id": request.broker_id,
                    "leader_epoch": p.leader_epoch,
                    "isr": isr,
                    "partition_epoch": p.partition_epoch,
                }
            )
        topics_out.append({"topic_id": topic.topic_id, "partitions": parts_out})
    if states:
        try:
            await metadata.propose([{"type": "partition_states", "states": states}])
        except AppendError as exc:
            return {"throttle_time": 0, "error_code": exc.code, "topics": []}
    return {"throttle_time": 0, "error_code": ErrorCode.none, "topics": topics_out}


async def allocate_producer_ids(broker: Broker, request: Any) -> dict[str, Any]:
    metadata = broker.metadata
    assert metadata is not None
    failed = {"throttle_time": 0, "producer_id_start": -1, "producer_id_len": 0}
    if not metadata.is_leader:
        return {**failed, "error_code": ErrorCode.not_controller}
    try:
        start = await reserve_producer_id_block(broker)
    except AppendError as exc:
        return {**failed, "error_code": exc.code}
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "producer_id_start": start,
        "producer_id_len": PRODUCER_ID_BLOCK_SIZE,
    }


async def reserve_producer_id_block(broker: Broker) -> int:
    metadata = broker.metadata
    assert metadata is not None
    async with broker.producer_id_lock:
        start = metadata.image.next_producer_id_block
        await metadata.propose([{"type": "producer_ids", "next": start + PRODUCER_ID_BLOCK_SIZE}])
    return start


async def fence_silent_brokers(broker: Broker) -> None:
    """On the controller: fence voters silent for broker.session.timeout.ms, unfence the
    ones heard from again."""
    metadata = broker.metadata
    assert metadata is not None
    interval = broker.config.get_int("broker.heartbeat.interval.ms") / 2000
    session = broker.config.get_int("broker.session.timeout.ms")
    while True:
        await asyncio.sleep(interval)
        if not metadata.is_leader:
            continue
        progress = metadata.partition.raft.voter_progress()
        now = raft_clock_ms()
        changes = []
        for node_id, registration in metadata.image.brokers.items():
            if node_id == broker.node_id or node_id not in progress:
                continue
            alive = now - progress[node_id].last_contact_ms < session
            if alive == registration.fenced:
                changes.append({"type": "broker_fenced", "id": node_id, "fenced": not alive})
        if changes:
            try:
                await metadata.propose(changes)
                log.info("broker liveness changed", changes=changes)
            except AppendError:
                pass


# -- broker: requests to the controller --------------------------------------------------------


class ControllerClient:
    """Sends this broker's registration and leadership reports to the metadata leader."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.incarnation = uuid.uuid4()
        self._dirty: dict[tuple[str, int], Partition] = {}
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._report_loop(), name="leadership-reports"),
            asyncio.create_task(self._isr_loop(), name="isr-checks"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def call(self, api_key: int, version: int, data: dict[str, Any]) -> Any:
        """Send a request to the controller; NotController if there is none right now."""
        broker = self.broker
        metadata = broker.metadata
        assert metadata is not None
        leader = metadata.partition.raft.leader_id
        network = broker.replication.network
        if leader is None or network is None or leader == broker.node_id:
            raise NotController()
        try:
            return await network.request(leader, api_key, version, data, timeout=10)
        except PeerUnavailable as exc:
            raise NotController() from exc

    # -- registration -----------------------------------------------------------------------------

    def registered(self) -> bool:
        metadata = self.broker.metadata
        assert metadata is not None
        registration = metadata.image.brokers.get(self.broker.node_id)
        own = self.broker.own_endpoint
        return (
            registration is not None
            and registration.incarnation == str(self.incarnation)
            and not registration.fenced
            and own is not None
            and (registration.host, registration.port) == (own.host, own.port)
        )

    async def register(self) -> None:
        """Publish this broker's endpoint; returns once the local image shows it."""
        broker = self.broker
        metadata = broker.metadata
        assert metadata is not None and broker.own_endpoint is not None
        own = broker.own_endpoint
        while not self.registered():
            try:
                if metadata.is_leader:
                    await metadata.propose(
                        [
                            {
                                "type": "broker",
                                "id": broker.node_id,
                                "host": own.host,
                                "port": own.port,
                                "rack": own.rack,
                                "incarnation": str(self.incarnation),
                            }
                        ]
                    )
                    continue
                response = await self.call(
                    BROKER_REGISTRATION,
                    BROKER_REGISTRATION_VERSION,
                    {
                        "broker_id": broker.node_id,
                        "cluster_id": broker.cluster_id,
                        "incarnation_id": self.incarnation,
                        "listeners": [
                            {
                                "name": "PLAINTEXT",
                                "host": own.host,
                                "port": own.port,
                                "security_protocol": 0,
                            }
                        ],
                        "features": [],
                        "rack": own.rack,
                    },
                )
                if response.error_code == ErrorCode.none:
                    await metadata.wait_applied(self.registered, 5.0)
                    continue
            except (NotController, AppendError):
                pass
            await asyncio.sleep(0.1)  # no quorum leader yet, or it just changed

    # -- leadership reports -------------------------------------------------------------------

    def leadership_changed(self, partition: Partition) -> None:
        if len(self.broker.voters) == 1:
            return  # a single node answers Metadata from its own replicas
        self._dirty[(partition.topic, partition.index)] = partition
        self._wakeup.set()

    async def _isr_loop(self) -> None:
        """Report partitions whose ISR drifted from what the metadata says."""
        while True:
            await asyncio.sleep(ISR_CHECK_INTERVAL_S)
            for partition in list(self.broker.partitions.values()):
                if partition.is_leader and self._reported_differs(partition):
                    self.leadership_changed(partition)

    def _reported_differs(self, partition: Partition) -> bool:
        topic = self.broker.topic(partition.topic)
        if topic is None:
            return False
        known = topic.states.get(partition.index)
        current = PartitionState(
            self.broker.node_id, partition.leader_epoch, tuple(partition.in_sync_replicas())
        )
        return known != current

    async def _report_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(REPORT_INTERVAL_S)  # let a burst of elections share a report
            batch, self._dirty = self._dirty, {}
            reports = [p for p in batch.values() if p.is_leader and self._reported_differs(p)]
            if not reports:
                continue
            try:
                await self._report(reports)
            except (NotController, AppendError):
                for partition in reports:
                    self._dirty.setdefault((partition.topic, partition.index), partition)
                await asyncio.sleep(0.1)
                self._wakeup.set()

    async def _report(self, partitions: list[Partition]) -> None:
        broker = self.broker
        metadata = broker.metadata
        assert metadata is not None
        by_topic: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for partition in partitions:
            by_topic.setdefault(partition.topic_id, []).append(
                {
                    "partition_index": partition.index,
                    "leader_epoch": partition.leader_epoch,
                    "new_isr_with_epochs": [
                        {"broker_id": node, "broker_epoch": -1}
                        for node in partition.in_sync_replicas()
                    ],
                    "leader_recovery_state": 0,
                    "partition_epoch": partition.leader_epoch,
                }
            )
        data = {
            "broker_id": broker.node_id,
            "broker_epoch": -1,
            "topics": [{"topic_id": t, "partitions": parts} for t, parts in by_topic.items()],
        }
        if metadata.is_leader:
            await alter_partition(broker, _as_request(data))
            return
        response = await self.call(ALTER_PARTITION, ALTER_PARTITION_VERSION, data)
        if response.error_code != ErrorCode.none:
            raise NotController()


def _as_request(data: Any) -> Any:
    """A dict request as attribute access, for calling a handler in-process."""
    if isinstance(data, dict):
        return SimpleNamespace(**{k: _as_request(v) for k, v in data.items()})
    if isinstance(data, list):
        return [_as_request(v) for v in data]
    return data
