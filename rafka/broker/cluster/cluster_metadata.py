"""The cluster metadata: a Raft-replicated log (`__cluster_metadata-0`) replayed into an image.

Every change (topic created or deleted, configs, producer-id blocks, broker registrations,
partition leaders) is proposed as records on the metadata log by its leader (the controller).
Every node, leader or follower, applies records to its in-memory image as the high watermark
passes them, in log order, and tells the broker (`on_record`) so it can act on them: open or
delete partitions, push configs. A single node is a one-voter quorum: the same path.

Record values are JSON objects with a "type" for now. KRaft's binary metadata record schemas can
replace them without changing this module's interface.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from msgspec import Struct, field

from rafka.broker.partition.append import AppendError
from rafka.broker.partition.clock import now_ms
from rafka.broker.partition.replica import Partition
from rafka.broker.security.acl import AclBinding, acl_from_record
from rafka.broker.security.sasl import ScramCredential
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import build_batch, decode_batch

log = structlog.get_logger(__name__)

METADATA_TOPIC = "__cluster_metadata"
PRODUCER_ID_BLOCK_SIZE = 1000


class PartitionState(Struct, frozen=True):
    """A partition's leadership as its leader last reported it (Kafka's AlterPartition)."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]


class Reassignment(Struct, frozen=True):
    """A partition's replicas on their way from `original` to `target` (Kafka's
    AlterPartitionReassignments). The partition's replicas meanwhile list every broker that
    hosts one: the target first, then the others."""

    original: tuple[int, ...]  # the replicas before the reassignment began
    target: tuple[int, ...]  # where the replicas go (after a cancel: == original)
    # Moving back to `original`; ListPartitionReassignments no longer shows it.
    cancelled: bool = False


class BrokerRegistration(Struct):
    """A broker as its registration record describes it."""

    node_id: int
    host: str
    port: int
    rack: str | None
    incarnation: str
    fenced: bool = False
    # Fenced by its own controlled shutdown: stays fenced while it still fetches, until it
    # registers again (Kafka's controlled shutdown takes it out of every ISR at once).
    shutting_down: bool = False
    # Advertised client listeners by name; host and port above are the first of them.
    listeners: dict[str, tuple[str, int]] = field(default_factory=dict)

    def address(self, listener: str | None) -> tuple[str, int]:
        """Where clients of `listener` reach this broker (the first listener's address for a
        listener it does not advertise, or a registration from before listeners were kept)."""
        return self.listeners.get(listener or "", (self.host, self.port))


class TopicImage(Struct):
    """A topic as the metadata log describes it."""

    name: str
    topic_id: uuid.UUID
    replicas: list[list[int]]  # per partition, the replica node ids (first = preferred leader)
    configs: dict[str, str] = field(default_factory=dict)
    states: dict[int, PartitionState] = field(default_factory=dict)
    # Reassignments in progress (cancelled ones too, until they are back), by partition index.
    reassignments: dict[int, Reassignment] = field(default_factory=dict)

    @property
    def partition_count(self) -> int:
        return len(self.replicas)

    def reassign(self, index: int, target: tuple[int, ...]) -> None:
        """Start moving a partition to `target`, or redirect the move in progress (which keeps
        its original replicas). The replicas keep every broker that may host one meanwhile:
        a replaced target's replicas may already be Raft voters."""
        if index >= self.partition_count or not target:
            return
        current = self.replicas[index]
        known = self.reassignments.get(index)
        if known is None and sorted(target) == sorted(current):
            # Nothing to move; a new order only changes the preferred leader (as in Kafka).
            self.replicas[index] = list(target)
            return
        original = known.original if known is not None else tuple(current)
        self.reassignments[index] = Reassignment(original, target)
        self.replicas[index] = _target_first(target, current)

    def cancel_reassignment(self, index: int) -> None:
        """Move back to the original replicas; the others keep theirs until they have left."""
        known = self.reassignments.get(index)
        if known is None or index >= self.partition_count:
            return
        self.reassignments[index] = Reassignment(known.original, known.original, cancelled=True)
        self.replicas[index] = _target_first(known.original, self.replicas[index])

    def finish_reassignment(self, index: int, replicas: list[int]) -> None:
        known = self.reassignments.get(index)
        if known is None or set(known.target) != set(replicas):
            # Decided before a newer reassignment of the partition was recorded: stale.
            return
        self.replicas[index] = list(replicas)
        del self.reassignments[index]


def _target_first(target: tuple[int, ...], current: list[int]) -> list[int]:
    """Kafka's replica order during a reassignment: the target, then the others."""
    return [*target, *(node for node in current if node not in target)]


class MetadataImage(Struct):
    """The cluster's state as the committed metadata records leave it."""

    topics: dict[str, TopicImage] = field(default_factory=dict)
    topics_by_id: dict[uuid.UUID, TopicImage] = field(default_factory=dict)
    next_producer_id_block: int = 0
    # Dynamic broker configs by resource name: "" = cluster-wide default, "<node id>" = one broker.
    broker_configs: dict[str, dict[str, str]] = field(default_factory=dict)
    # Dynamic group configs (config resource type GROUP, KIP-848/KIP-932) by group id.
    group_configs: dict[str, dict[str, str]] = field(default_factory=dict)
    brokers: dict[int, BrokerRegistration] = field(default_factory=dict)
    # SCRAM credentials by (user, mechanism): salt, keys and iterations, never the password.
    scram_credentials: dict[tuple[str, str], ScramCredential] = field(default_factory=dict)
    # ACLs by the id the controller gave each when it was created.
    acls: dict[str, AclBinding] = field(default_factory=dict)

    def apply(self, record: dict[str, Any]) -> None:
        kind = record["type"]
        if kind == "topic":
            topic = TopicImage(
                record["name"],
                uuid.UUID(record["id"]),
                [list(r) for r in record["replicas"]],
                dict(record.get("configs", {})),
            )
            self.topics[topic.name] = topic
            self.topics_by_id[topic.topic_id] = topic
        elif kind == "remove_topic":
            topic = self.topics_by_id.pop(uuid.UUID(record["id"]), None)
            if topic is not None:
                self.topics.pop(topic.name, None)
        elif kind == "topic_configs":
            topic = self.topics_by_id.get(uuid.UUID(record["id"]))
            if topic is not None:
                topic.configs = dict(record["configs"])
        elif kind == "partitions":  # CreatePartitions: replica lists of the added partitions
            topic = self.topics_by_id.get(uuid.UUID(record["id"]))
            if topic is not None:
                topic.replicas.extend(list(r) for r in record["replicas"])
        elif kind == "broker_configs":
            if record["configs"]:
                self.broker_configs[record["resource"]] = dict(record["configs"])
            else:
                self.broker_configs.pop(record["resource"], None)
        elif kind == "group_configs":
            if record["configs"]:
                self.group_configs[record["group"]] = dict(record["configs"])
            else:
                self.group_configs.pop(record["group"], None)
        elif kind == "producer_ids":
            start = record.get("start")
            if start is not None and start < self.next_producer_id_block:
                # Cannot happen while the controller reserves from a caught-up image: say so
                # loudly, two brokers now hand out the same producer ids.
                log.error(
                    "producer-id block reserved twice",
                    start=start,
                    next=self.next_producer_id_block,
                    broker=record.get("broker"),
                )
            self.next_producer_id_block = max(self.next_producer_id_block, record["next"])
        elif kind == "broker":
            self.brokers[record["id"]] = BrokerRegistration(
                record["id"],
                record["host"],
                record["port"],
                record.get("rack"),
                record["incarnation"],
                listeners={name: (host, port) for name, host, port in record.get("listeners", [])},
            )
            # A broker that (re)registers has restarted: it is in no ISR until its leaders see
            # it caught up (as KRaft's controller does), whatever their last reports said.
            self._leave_isrs(record["id"])
        elif kind == "unregister_broker":  # UnregisterBroker (64): Kafka's UnregisterBrokerRecord
            self.brokers.pop(record["id"], None)
        elif kind == "broker_fenced":
            registration = self.brokers.get(record["id"])
            if registration is not None:
                registration.fenced = bool(record["fenced"])
                registration.shutting_down = registration.fenced and bool(
                    record.get("shutting_down")
                )
        elif kind == "partition_states":
            for entry in record["states"]:
                topic = self.topics_by_id.get(uuid.UUID(entry["id"]))
                if topic is None:
                    continue
                known = topic.states.get(entry["partition"])
                if known is not None and known.leader_epoch > entry["epoch"]:
                    continue  # a late report of an older leadership
                topic.states[entry["partition"]] = PartitionState(
                    entry["leader"], entry["epoch"], tuple(entry["isr"])
                )
        elif kind in _REASSIGNMENT_RECORDS:
            topic = self.topics_by_id.get(uuid.UUID(record["id"]))
            if topic is not None:
                _apply_reassignment(topic, kind, record)
        elif kind == "scram_credential":
            key = (record["name"], record["mechanism"])
            if record.get("deleted"):
                self.scram_credentials.pop(key, None)
            else:
                self.scram_credentials[key] = ScramCredential(
                    base64.b64decode(record["salt"]),
                    base64.b64decode(record["stored_key"]),
                    base64.b64decode(record["server_key"]),
                    int(record["iterations"]),
                )
        elif kind == "acl":
            self.acls[record["id"]] = acl_from_record(record)
        elif kind == "remove_acl":
            self.acls.pop(record["id"], None)
        # Unknown record types are skipped so an older broker can read a newer log.

    def _leave_isrs(self, node_id: int) -> None:
        for topic in self.topics.values():
            for index, state in topic.states.items():
                # A partition it led keeps it: its election report (which may come first) names
                # it, and its leadership stands until a newer epoch is reported.
                if node_id in state.isr and node_id != state.leader:
                    isr = tuple(n for n in state.isr if n != node_id)
                    topic.states[index] = PartitionState(state.leader, state.leader_epoch, isr)


# "elect_preferred" (ElectLeaders) changes nothing in the image: the partition's leader hands
# over to its preferred replica when it applies the record.
_REASSIGNMENT_RECORDS = frozenset(
    {"reassign_partitions", "cancel_reassignments", "reassignment_done", "elect_preferred"}
)


def _apply_reassignment(topic: TopicImage, kind: str, record: dict[str, Any]) -> None:
    if kind == "reassign_partitions":
        for entry in record["partitions"]:
            topic.reassign(entry["partition"], tuple(entry["target"]))
    elif kind == "cancel_reassignments":
        for index in record["partitions"]:
            topic.cancel_reassignment(index)
    elif kind == "reassignment_done":
        topic.finish_reassignment(record["partition"], record["replicas"])


class ClusterMetadata:
    def __init__(
        self, partition: Partition, on_record: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.partition = partition
        self.image = MetadataImage()
        self.on_record = on_record
        self.applied_offset = partition.log_start_offset  # records below it are in the image
        self._applied = asyncio.Event()
        self._producer_ids: range = range(0)
        self._allocating = asyncio.Lock()
        self._reserving = asyncio.Lock()
        self.reserve_block: Callable[[], Awaitable[int]] | None = None
        partition.on_high_watermark = self._on_high_watermark

    def apply_committed(self) -> None:
        """Apply what is known committed now, e.g. below a checkpointed high watermark at start
        (no advance reports that prefix)."""
        self._on_high_watermark(self.partition)

    def _on_high_watermark(self, partition: Partition) -> None:
        """Apply every record the high watermark just passed, in log order."""
        high_watermark = partition.high_watermark
        if high_watermark <= self.applied_offset:
            return
        for header, batch in partition.log.iter_batches(self.applied_offset):
            if header.base_offset >= high_watermark:
                break
            self.applied_offset = header.last_offset + 1
            if header.is_control:
                continue
            _, records = decode_batch(batch)
            for record in records:
                if record.value is None:
                    continue
                try:
                    entry = json.loads(record.value)
                except ValueError:
                    log.error("undecodable metadata record skipped", offset=header.base_offset)
                    continue
                self.image.apply(entry)
                if self.on_record is not None:
                    try:
                        self.on_record(entry)
                    except Exception:
                        log.exception("applying a metadata record failed", record=entry)
        self._applied.set()
        self._applied = asyncio.Event()

    async def wait_applied(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until the image satisfies `predicate` (as records are applied); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    await self._applied.wait()
            except TimeoutError:
                return predicate()
        return True

    @property
    def is_leader(self) -> bool:
        return self.partition.is_leader

    def caught_up_as_leader(self) -> bool:
        """This node leads the metadata quorum and its image holds every record committed
        before its epoch began (KRaft's controller likewise serves writes only once its
        leader's epoch start is committed and replayed). A new leader's high watermark can lag
        what its predecessor committed until its LEADER_CHANGE commits, and a restarted leader
        whose log is all committed appends none, so its checkpointed prefix is applied here."""
        raft = self.partition.raft
        start = raft.epoch_start_offset
        if not raft.is_leader or start is None or raft.high_watermark < start:
            return False
        if self.applied_offset < raft.high_watermark:
            self._on_high_watermark(self.partition)
        return self.applied_offset >= start

    async def wait_caught_up_as_leader(self, timeout: float) -> None:
        """Wait until `caught_up_as_leader()`; AppendError(NOT_CONTROLLER) if this node does
        not lead, loses the lead, or is not caught up within `timeout` seconds."""
        raft = self.partition.raft
        epoch = raft.epoch
        if not await self.wait_applied(
            lambda: raft.epoch != epoch or self.caught_up_as_leader(), timeout
        ) or not (raft.epoch == epoch and self.caught_up_as_leader()):
            raise AppendError(ErrorCode.not_controller, "not the caught-up metadata leader")

    async def propose(self, records: list[dict[str, Any]]) -> None:
        """Append records (this node must lead the metadata quorum) and wait until they are
        committed and applied to the image."""
        timestamp = now_ms()
        values = [(None, json.dumps(r).encode(), (), timestamp) for r in records]
        batch = build_batch(values)
        result = self.partition.append_records(
            batch, max_message_bytes=1 << 30, log_append_time=False
        )
        await self.partition.wait_committed(result.last_offset)
        # Applied as the high watermark passed it, before this waiter resumed.

    async def reserve_producer_ids(self, broker_id: int, timeout: float) -> int:
        """On the controller: reserve the next block of producer ids for `broker_id`; its start
        once the reservation is committed (no id of it may be handed out before)."""
        async with self._reserving:
            await self.wait_caught_up_as_leader(timeout)
            # No await between reading the image and appending: this leader's own earlier
            # reservations are applied (each waited for its commit under this lock), and so
            # is everything of earlier epochs.
            start = self.image.next_producer_id_block
            record = {
                "type": "producer_ids",
                "broker": broker_id,
                "start": start,
                "next": start + PRODUCER_ID_BLOCK_SIZE,
            }
            await self.propose([record])
        return start

    async def allocate_producer_id(self) -> int:
        """Producer ids come in blocks reserved on the metadata log (by the controller, which
        `reserve_block` asks), so none is reused."""
        async with self._allocating:
            if not self._producer_ids:
                assert self.reserve_block is not None
                start = await self.reserve_block()
                self._producer_ids = range(start, start + PRODUCER_ID_BLOCK_SIZE)
        producer_id = self._producer_ids[0]
        self._producer_ids = self._producer_ids[1:]
        return producer_id
