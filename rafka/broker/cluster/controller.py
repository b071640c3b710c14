"""The controller's side of the cluster: what the leader of the metadata quorum decides for all.

- BrokerRegistration (62): a starting broker publishes its endpoint; it is unfenced.
- AlterPartition (56): a partition leader reports its leader epoch and ISR; the controller writes
  them to the metadata log so that every broker's Metadata answers name the leader, and records
  a reassignment done once the ISR reported is its target.
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
from msgspec import Struct

from rafka.broker.cluster.cluster_metadata import PRODUCER_ID_BLOCK_SIZE, PartitionState
from rafka.broker.cluster.peers import PeerUnavailable
from rafka.broker.cluster.reassignment_control import done_record
from rafka.broker.partition.append import AppendError
from rafka.broker.partition.clock import raft_clock_ms
from rafka.broker.partition.replica import Partition
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.node import ControllerNode

log = structlog.get_logger(__name__)

BROKER_REGISTRATION = 62
BROKER_REGISTRATION_VERSION = 3
BROKER_HEARTBEAT = 63
BROKER_HEARTBEAT_VERSION = 1
SHUTDOWN_REQUEST_TIMEOUT_S = 2.0
ALTER_PARTITION = 56
ALTER_PARTITION_VERSION = 3
ALLOCATE_PRODUCER_IDS = 67
REPORT_INTERVAL_S = 0.05
ISR_CHECK_INTERVAL_S = 1.0


class NotController(Exception):
    pass


# -- controller: requests from brokers ---------------------------------------------------------


async def register_broker(broker: ControllerNode, request: Any) -> dict[str, Any]:
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
        "listeners": [[lst.name, lst.host, lst.port] for lst in request.listeners],
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


async def unregister_broker(broker: ControllerNode, broker_id: int) -> dict[str, Any]:
    """UnregisterBroker (64), on the controller: the registration goes, and Metadata no longer
    lists the broker. Kafka's controller unregisters any registered broker, and a live one
    registers again at its next heartbeat; rafka's brokers register only when they start, so
    a broker still running (not fenced) is refused instead."""
    metadata = broker.metadata
    assert metadata is not None

    def answer(error: ErrorCode, message: str | None = None) -> dict[str, Any]:
        return {"throttle_time": 0, "error_code": error, "error_message": message}

    if not metadata.is_leader:
        return answer(ErrorCode.not_controller)
    registration = metadata.image.brokers.get(broker_id)
    if registration is None:
        return answer(
            ErrorCode.broker_id_not_registered,
            f"Broker ID {broker_id} is not currently registered",
        )
    if not registration.fenced:
        return answer(
            ErrorCode.invalid_request,
            f"Broker {broker_id} is running (not fenced): stop it before unregistering it",
        )
    try:
        await metadata.propose([{"type": "unregister_broker", "id": broker_id}])
    except AppendError as exc:
        return answer(exc.code)
    log.info("broker unregistered", broker=broker_id)
    return answer(ErrorCode.none)


class LeadershipReport(Struct, frozen=True):
    """One partition's leadership as its leader reports it (a row of AlterPartition)."""

    topic_id: uuid.UUID
    index: int
    leader_epoch: int
    isr: tuple[int, ...]


async def alter_partition(broker: ControllerNode, request: Any) -> dict[str, Any]:
    metadata = broker.metadata
    assert metadata is not None
    if not metadata.is_leader:
        return {"throttle_time": 0, "error_code": ErrorCode.not_controller, "topics": []}
    reports = [
        LeadershipReport(
            topic.topic_id,
            p.partition_index,
            p.leader_epoch,
            tuple(s.broker_id for s in p.new_isr_with_epochs),
        )
        for topic in request.topics
        for p in topic.partitions
    ]
    try:
        errors = await record_leaderships(broker, request.broker_id, reports)
    except AppendError as exc:
        return {"throttle_time": 0, "error_code": exc.code, "topics": []}
    topics_out: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for report, error in zip(reports, errors, strict=True):
        topics_out.setdefault(report.topic_id, []).append(
            {
                "partition_index": report.index,
                "error_code": error,
                "leader_id": request.broker_id,
                "leader_epoch": report.leader_epoch,
                "isr": list(report.isr),
                "partition_epoch": report.leader_epoch,
            }
        )
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "topics": [{"topic_id": t, "partitions": parts} for t, parts in topics_out.items()],
    }


async def record_leaderships(
    broker: ControllerNode, leader: int, reports: list[LeadershipReport]
) -> list[ErrorCode]:
    """On the controller: write the reports that are not older than what the image holds;
    the outcome of each report, in order."""
    metadata = broker.metadata
    assert metadata is not None
    states = []
    finished = []
    errors = []
    for report in reports:
        image = metadata.image.topics_by_id.get(report.topic_id)
        if image is None or report.index >= image.partition_count:
            errors.append(ErrorCode.unknown_topic_or_partition)
            continue
        known = image.states.get(report.index)
        if known is not None and known.leader_epoch > report.leader_epoch:
            errors.append(ErrorCode.fenced_leader_epoch)
            continue
        errors.append(ErrorCode.none)
        states.append(
            {
                "id": str(report.topic_id),
                "partition": report.index,
                "leader": leader,
                "epoch": report.leader_epoch,
                "isr": list(report.isr),
            }
        )
        done = done_record(image, report.index, report.isr)
        if done is not None:
            finished.append(done)
    if states:
        await metadata.propose([{"type": "partition_states", "states": states}, *finished])
    return errors


async def allocate_producer_ids(broker: ControllerNode, request: Any) -> dict[str, Any]:
    metadata = broker.metadata
    assert metadata is not None
    failed = {"throttle_time": 0, "producer_id_start": -1, "producer_id_len": 0}
    if not metadata.is_leader:
        return {**failed, "error_code": ErrorCode.not_controller}
    try:
        start = await reserve_producer_id_block(broker, request.broker_id)
    except AppendError as exc:
        return {**failed, "error_code": exc.code}
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "producer_id_start": start,
        "producer_id_len": PRODUCER_ID_BLOCK_SIZE,
    }


async def reserve_producer_id_block(broker: ControllerNode, broker_id: int) -> int:
    """A block of producer ids for `broker_id`, committed in the metadata log before it is
    returned; AppendError (NOT_CONTROLLER) when this node cannot reserve one now."""
    metadata = broker.metadata
    assert metadata is not None
    timeout = broker.config.get_int("controller.quorum.request.timeout.ms") / 1000
    return await metadata.reserve_producer_ids(broker_id, timeout)


async def fence_silent_brokers(broker: ControllerNode) -> None:
    """On the controller: fence brokers silent for broker.session.timeout.ms, unfence the
    ones heard from again."""
    metadata = broker.metadata
    assert metadata is not None
    interval = broker.config.get_int("broker.heartbeat.interval.ms") / 2000
    session = broker.config.get_int("broker.session.timeout.ms")
    lead_since: int | None = None
    while True:
        await asyncio.sleep(interval)
        if not metadata.is_leader:
            lead_since = None
            continue
        now = raft_clock_ms()
        if lead_since is None:
            lead_since = now
        contacts = last_contacts(metadata.partition.raft)
        changes = []
        for node_id, registration in metadata.image.brokers.items():
            if node_id == broker.node_id:
                continue
            # A broker-only node is known once it fetches from this leader: one silent since
            # this leadership began (it died with the last controller) counts from then.
            alive = now - contacts.get(node_id, lead_since) < session
            if alive and registration.shutting_down:
                continue  # fenced by its controlled shutdown: unfenced when it registers again
            if alive == registration.fenced:
                changes.append({"type": "broker_fenced", "id": node_id, "fenced": not alive})
        if changes:
            try:
                await metadata.propose(changes)
                log.info("broker liveness changed", changes=changes)
            except AppendError:
                pass


def last_contacts(raft: Any) -> dict[int, int]:
    """When the metadata leader last heard from each node (its metadata fetches): voters and
    broker-only nodes, which fetch as observers of the metadata log."""
    contacts = {node: p.last_contact_ms for node, p in raft.observer_progress().items()}
    contacts.update({node: p.last_contact_ms for node, p in raft.voter_progress().items()})
    return contacts


async def broker_heartbeat(broker: ControllerNode, request: Any) -> dict[str, Any]:
    """BrokerHeartbeat (63), for what rafka needs of it: controlled shutdown. Liveness comes
    from the brokers' metadata fetches, so a heartbeat without want_shut_down changes nothing.
    With it, the broker is fenced at once (out of every ISR and shown offline) and stays so
    until it registers again, as Kafka's controller does before letting a broker stop."""
    metadata = broker.metadata
    assert metadata is not None

    def answer(error: ErrorCode, fenced: bool = True, shut_down: bool = False) -> dict[str, Any]:
        return {
            "throttle_time": 0,
            "error_code": error,
            "is_caught_up": error == ErrorCode.none,
            "is_fenced": fenced,
            "should_shut_down": shut_down,
        }

    if not metadata.is_leader:
        return answer(ErrorCode.not_controller)
    registration = metadata.image.brokers.get(request.broker_id)
    if registration is None:
        return answer(ErrorCode.broker_id_not_registered)
    if request.want_shut_down and not registration.shutting_down:
        record = {"type": "broker_fenced", "id": request.broker_id, "fenced": True}
        try:
            await metadata.propose([{**record, "shutting_down": True}])
        except AppendError as exc:
            return answer(exc.code)
        log.info("broker in controlled shutdown: fenced", broker=request.broker_id)
    return answer(ErrorCode.none, registration.fenced, bool(request.want_shut_down))


# -- broker: requests to the controller --------------------------------------------------------


class ControllerClient:
    """Sends this broker's registration and leadership reports to the metadata leader."""

    def __init__(self, broker: ControllerNode) -> None:
        self.broker = broker
        self.incarnation = uuid.uuid4()
        self._dirty: dict[tuple[str, int], Partition] = {}
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._report_loop(), name="leadership-reports"),
            asyncio.create_task(self._isr_loop(), name="isr-checks"),
        ]

    async def stop(self) -> None:
        # A cancel that arrives in the turn an awaited request completes is lost on Python 3.11
        # (CPython gh-86296): the loops also end on the flag, and are woken to see it.
        self._stopping = True
        self._wakeup.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def shut_down(self) -> None:
        """Controlled shutdown: ask the controller to fence this broker now (BrokerHeartbeat
        with want_shut_down), so that Metadata shows it out of every ISR before it stops
        fetching; bounded, and a failure only leaves the fencing to the session timeout."""
        broker = self.broker
        metadata = broker.metadata
        if len(broker.voters) == 1 or metadata is None:
            return
        data = {
            "broker_id": broker.node_id,
            "broker_epoch": -1,
            "current_metadata_offset": metadata.applied_offset,
            "want_fence": False,
            "want_shut_down": True,
        }
        try:
            async with asyncio.timeout(SHUTDOWN_REQUEST_TIMEOUT_S):
                while True:
                    try:
                        if metadata.is_leader:  # the last to lead: fence ourselves
                            response = SimpleNamespace(
                                **await broker_heartbeat(broker, SimpleNamespace(**data))
                            )
                        else:
                            response = await self.call(
                                BROKER_HEARTBEAT, BROKER_HEARTBEAT_VERSION, data
                            )
                    except NotController:
                        response = None
                    if response is not None and response.error_code == ErrorCode.none:
                        return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            log.warning("controlled shutdown not acknowledged: fenced by session timeout later")

    async def call(self, api_key: int, version: int, data: dict[str, Any]) -> Any:
        """Send a request to the controller; NotController if there is none right now."""
        broker = self.broker
        metadata = broker.metadata
        assert metadata is not None
        leader = metadata.partition.raft.leader_id
        network = broker.network
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
            and (not own.listeners or registration.listeners == _by_name(own.listeners))
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
                                "listeners": [list(entry) for entry in own.listeners],
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
                            {"name": name, "host": host, "port": port, "security_protocol": 0}
                            for name, host, port in own.listeners
                            or (("PLAINTEXT", own.host, own.port),)
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
        if len(self.broker.voters) == 1:
            return  # a single node answers Metadata from its own replicas (leadership_changed)
        while not self._stopping:
            await asyncio.sleep(ISR_CHECK_INTERVAL_S)
            for partition in list(self.broker.partitions.values()):
                if (
                    len(partition.raft.voters) > 1
                    and partition.is_leader
                    and self._reported_differs(partition)
                ):
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
        while not self._stopping:  # stop() also cancels, but Python 3.11 may lose a cancel
            await self._wakeup.wait()
            if self._stopping:
                return
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
        reports = [
            LeadershipReport(p.topic_id, p.index, p.leader_epoch, tuple(p.in_sync_replicas()))
            for p in partitions
        ]
        if metadata.is_leader:
            await record_leaderships(broker, broker.node_id, reports)
            return
        by_topic: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for report in reports:
            by_topic.setdefault(report.topic_id, []).append(
                {
                    "partition_index": report.index,
                    "leader_epoch": report.leader_epoch,
                    "new_isr_with_epochs": [
                        {"broker_id": node, "broker_epoch": -1} for node in report.isr
                    ],
                    "leader_recovery_state": 0,
                    "partition_epoch": report.leader_epoch,
                }
            )
        data = {
            "broker_id": broker.node_id,
            "broker_epoch": -1,
            "topics": [{"topic_id": t, "partitions": parts} for t, parts in by_topic.items()],
        }
        response = await self.call(ALTER_PARTITION, ALTER_PARTITION_VERSION, data)
        if response.error_code != ErrorCode.none:
            raise NotController()


def _by_name(listeners: tuple[tuple[str, str, int], ...]) -> dict[str, tuple[str, int]]:
    return {name: (host, port) for name, host, port in listeners}
