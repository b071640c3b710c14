"""Raft over the wire: carries every partition's Raft messages between brokers and drives timers.

- One tick loop drives all Raft groups: a heap of each replica's `next_deadline()`, lazily
  invalidated, woken when an earlier deadline appears (no asyncio timer per partition).
- Followers: one `FollowerFetcher` per leader broker gathers the fetches of every partition this
  node follows there into one replica Fetch request, and hands each partition its answer; the
  metadata log has a fetcher and a connection of its own.
- Leaders: a replica Fetch is offered to each partition's replica; fetches with nothing new are
  held by the replica until records arrive or `max_wait` passes. Once any partition of the
  request has an answer, the others are released as they stand, and the request is answered.
- Quorum-state writes run off the event loop; a partition's messages wait until its state is
  on disk (quorum_state_writes).
- Vote, BeginQuorumEpoch and EndQuorumEpoch go out on the control channel, one request per peer
  and API carrying every partition's message of one pass of the event loop (quorum_sender); the
  answers go back to each sending replica. How many requests went out, and how many partitions
  they carried, is logged once a second while quorum requests are sent ("raft requests sent").
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from msgspec.structs import replace

from rafka.broker.cluster import raft_wire as wire
from rafka.broker.cluster.peers import PeerNetwork, PeerUnavailable
from rafka.broker.cluster.quorum_sender import QuorumSender, SentRequests
from rafka.broker.cluster.quorum_state_writes import QuorumStateWrites
from rafka.broker.partition.clock import raft_clock_ms
from rafka.broker.partition.replica import Partition, ReplicationHooks
from rafka.protocol.errors import ErrorCode
from rafka.protocol.fetch_response import FetchedTopic, encode_fetch_response
from rafka.replication.actions import Action, RoleChanged, SendMessage
from rafka.replication.messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    FetchRequest,
    FetchResponse,
    Message,
    VoteRequest,
    VoteResponse,
)
from rafka.replication.raft import RaftConfig
from rafka.replication.state import QuorumState

if TYPE_CHECKING:
    from rafka.broker.node import Node

log = structlog.get_logger(__name__)

PartitionKey = tuple[str, int]
# How long a fetcher waits for the partitions that just received records to fsync them and
# fetch again, so that one request carries them all rather than each its own.
ROUND_GATHER_S = 0.05
# How long a partition that has not come back in time (a slow fsync) keeps the requests sent
# without it from waiting at the leader: see FollowerFetcher._run.
LATE_LIMIT_S = 0.5
# How often the counts of Raft requests sent are logged, while quorum requests go out.
SENT_LOG_INTERVAL_S = 1.0
# The state machine's answer to each incoming quorum request.
_ANSWER_TYPES: dict[int, type] = {
    wire.VOTE: VoteResponse,
    wire.BEGIN_QUORUM_EPOCH: BeginQuorumEpochResponse,
    wire.END_QUORUM_EPOCH: EndQuorumEpochResponse,
}


def _pick(
    actions: list[Action], destination: int, kind: type, request_id: int | None = None
) -> tuple[Any, list[Action]]:
    """Split the answer to `destination` of type `kind` out of a replica's actions."""
    for i, action in enumerate(actions):
        if (
            isinstance(action, SendMessage)
            and action.destination == destination
            and isinstance(action.message, kind)
            and (request_id is None or action.message.request_id == request_id)  # type: ignore[union-attr]
        ):
            return action.message, actions[:i] + actions[i + 1 :]
    return None, actions


class ReplicationManager(ReplicationHooks):
    def __init__(
        self,
        broker: Node,
        network: PeerNetwork | None,
        config: RaftConfig,
        on_role_changed: Callable[[Partition, RoleChanged], None],
    ) -> None:
        self.broker = broker
        self.network = network
        self.config = config
        self._on_role_changed = on_role_changed
        self._heap: list[tuple[int, int, Partition]] = []
        self._scheduled: dict[Partition, int] = {}
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._next_wake: int | None = None
        self._fetchers: dict[tuple[int, str], FollowerFetcher] = {}
        self._quorum_senders: dict[int, QuorumSender] = {}
        self.sent = SentRequests()
        self._writes = QuorumStateWrites()
        self._held: dict[tuple[int, PartitionKey, int], asyncio.Future[FetchResponse]] = {}
        # Per follower: a future for each of its fetch requests held here; set, it ends the
        # hold (see _deliver).
        self._holding: dict[int, set[asyncio.Future[None]]] = {}
        # Per follower connection: when each partition's last answer on it was given.
        self._answered: weakref.WeakKeyDictionary[object, dict[PartitionKey, int]] = (
            weakref.WeakKeyDictionary()
        )
        self._request_ids = itertools.count(1)
        self._ticker: asyncio.Task[None] | None = None
        self._sent_logger: asyncio.Task[None] | None = None
        self.closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop(), name="raft-ticks")
        if self.network is not None:
            self._sent_logger = asyncio.create_task(self._log_sent(), name="raft-sent-log")

    async def stop(self) -> None:
        self.closed = True
        tasks = [t for t in (self._ticker, self._sent_logger) if t is not None]
        tasks += [f.task for f in self._fetchers.values()]
        # Python 3.11's asyncio.wait_for loses a cancel that comes in the loop turn its awaitable
        # completes in (CPython gh-86296); rafka no longer uses it (ruff bans it), and the loops
        # also end on `closed`, woken to see it, should anything else swallow a cancel.
        self._wakeup.set()
        for fetcher in self._fetchers.values():
            fetcher.wakeup.set()
        for task in tasks:
            task.cancel()
        for sender in self._quorum_senders.values():
            tasks += sender.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._writes.close()
        if self.sent.quorum_total():
            log.info("raft requests sent", **self.sent.as_fields())
        for future in self._held.values():
            future.cancel()
        if self.network is not None:
            self.network.close()

    def attach(self, partition: Partition) -> None:
        partition.hooks = self
        self.reschedule(partition)

    def lookup(self, topic: str, index: int) -> Partition | None:
        metadata = self.broker.metadata
        if metadata is not None and topic == metadata.partition.topic and index == 0:
            return metadata.partition
        partition = self.broker.partition(topic, index)
        return partition if partition is not None and partition.hooks is self else None

    # -- hooks called by partitions -------------------------------------------------------------

    def persist_quorum_state(self, partition: Partition, state: QuorumState) -> None:
        if len(partition.raft.voters) == 1:
            # A lone voter sends nothing and commits by its own fsync: the state is written
            # just before that, or at close (see persist_with_next_flush).
            partition.persist_with_next_flush(state)
        elif self.closed and not self._writes.pending(partition):
            # Once stopping, with no write of the partition in flight to land after this one.
            partition.write_quorum_state(state)
        else:
            self._writes.persist(partition, state)

    def send(self, partition: Partition, action: SendMessage) -> None:
        if not self.closed:
            self._writes.after_durable(partition, lambda: self._send(partition, action))

    def _send(self, partition: Partition, action: SendMessage) -> None:
        if self.closed:
            return
        message = action.message
        key = (partition.topic, partition.index)
        destination = action.destination
        if isinstance(message, FetchRequest):
            self._fetcher(destination, self._fetch_channel(partition)).add(key, partition, message)
        elif isinstance(message, FetchResponse):
            future = self._held.pop((destination, key, message.request_id), None)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, (VoteRequest, BeginQuorumEpochRequest, EndQuorumEpochRequest)):
            self._quorum_sender(destination).add(key, partition, message)
        # Answers to Vote/Begin/End requests are taken out by the request handlers below; one
        # left here answers a request whose connection is gone.

    def reschedule(self, partition: Partition) -> None:
        deadline = partition.raft.next_deadline()
        if deadline is None or self.closed:
            return
        current = self._scheduled.get(partition)
        if current is not None and current <= deadline:
            return
        self._scheduled[partition] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), partition))
        if self._next_wake is None or deadline < self._next_wake:
            self._wakeup.set()

    def role_changed(self, partition: Partition, change: RoleChanged) -> None:
        self._on_role_changed(partition, change)

    # -- timers ---------------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while not self.closed:
            now = raft_clock_ms()
            heap = self._heap
            while heap and heap[0][0] <= now:
                deadline, _, partition = heapq.heappop(heap)
                if self._scheduled.get(partition) != deadline:
                    continue  # superseded by an earlier deadline, or already ticked
                del self._scheduled[partition]
                if partition.hooks is not self or partition.offline is not None:
                    continue
                try:
                    partition.apply(partition.raft.tick(now))
                except Exception:
                    log.exception("raft tick failed", partition=partition.name)
            self._next_wake = heap[0][0] if heap else None
            self._wakeup.clear()
            timeout = None if not heap else max(heap[0][0] - raft_clock_ms(), 0) / 1000
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def _deliver(self, partition: Partition, source: int, message: Message) -> None:
        if self.closed or partition.hooks is not self or partition.offline is not None:
            return
        partition.apply(partition.raft.on_message(source, message, raft_clock_ms()))
        if (
            isinstance(message, BeginQuorumEpochResponse)
            and message.error == ErrorCode.none
            and partition.raft.is_leader
        ):
            # `source` now follows this partition here and has its first fetch of it queued
            # (it answers after it queued it), behind its fetch request that this node holds
            # for the others: answer that one now, or the first acks=all write to a new
            # partition, or after an election, waits the hold out.
            for cut in self._holding.get(source, ()):
                if not cut.done():
                    cut.set_result(None)

    def _fetch_failed(self, partition: Partition, request_id: int) -> None:
        if self.closed or partition.hooks is not self or partition.offline is not None:
            return
        partition.apply(partition.raft.on_fetch_failed(request_id, raft_clock_ms()))

    # -- outgoing quorum requests ---------------------------------------------------------------

    def _quorum_sender(self, peer: int) -> QuorumSender:
        sender = self._quorum_senders.get(peer)
        if sender is None:
            assert self.network is not None
            sender = self._quorum_senders[peer] = QuorumSender(
                peer,
                self.network,
                lambda: self.broker.cluster_id,
                self.config.request_timeout_ms / 1000,
                self._deliver,
                self.sent,
            )
        return sender

    async def _log_sent(self) -> None:
        """Log the counts of Raft requests sent, once a second while quorum requests go out
        (a steady cluster sends none: then nothing is logged)."""
        logged = 0
        while True:
            await asyncio.sleep(SENT_LOG_INTERVAL_S)
            total = self.sent.quorum_total()
            if total != logged:
                logged = total
                log.info("raft requests sent", **self.sent.as_fields())

    # -- incoming quorum requests ---------------------------------------------------------------

    async def handle_quorum_request(self, api_key: int, request: Any) -> dict[str, Any]:
        """Vote, BeginQuorumEpoch or EndQuorumEpoch from another node, for any partitions;
        answered once the quorum states the answers announce are on disk."""
        now = raft_clock_ms()
        topics = []
        writes: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        for topic in request.topics:
            parts = []
            for p in topic.partitions:
                partition = self.lookup(topic.topic_name, p.partition_index)
                if partition is None or partition.offline is not None:
                    # An offline replica (a storage error) takes no part in its group.
                    parts.append(
                        wire.error_partition(
                            p.partition_index,
                            ErrorCode.unknown_topic_or_partition
                            if partition is None
                            else partition.offline,
                            **({"vote_granted": False} if api_key == wire.VOTE else {}),
                        )
                    )
                    continue
                if api_key == wire.VOTE:
                    message: Message = wire.vote_from_wire(p)
                    source = p.replica_id
                elif api_key == wire.BEGIN_QUORUM_EPOCH:
                    message = wire.begin_from_wire(p)
                    source = p.leader_id
                else:
                    message = wire.end_from_wire(p)
                    source = p.leader_id
                actions = partition.raft.on_message(source, message, now)
                answer_type = _ANSWER_TYPES[api_key]
                answer, rest = _pick(actions, source, answer_type)
                partition.apply(rest)
                if api_key == wire.VOTE:
                    parts.append(wire.vote_response_partition(p.partition_index, answer))
                else:
                    parts.append(wire.quorum_response_partition(p.partition_index, answer))
                durable = self._writes.durable(partition)
                if durable is not None:
                    writes.append((parts[-1], durable))
            topics.append({"topic_name": topic.topic_name, "partitions": parts})
        if writes:
            await asyncio.gather(*(future for _, future in writes), return_exceptions=True)
            for part, future in writes:
                if future.exception() is not None:  # never announce what is not stored
                    part.update(error_code=ErrorCode.kafka_storage_error)
                    if "vote_granted" in part:
                        part["vote_granted"] = False
        return {"error_code": ErrorCode.none, "topics": topics}

    # -- incoming replica fetches ---------------------------------------------------------------

    async def handle_replica_fetch(
        self, replica_id: int, request: Any, version: int, connection: object | None = None
    ) -> list[bytes | memoryview]:
        """A follower's Fetch. A follower sends its next fetch on a connection only once it has
        the answer to the previous one, so the time of the answer last given on `connection`
        is what its new request acknowledges (FetchRequest.acknowledged_at, for read
        barriers)."""
        answered = self._answered.setdefault(connection, {}) if connection is not None else {}
        max_wait_ms = max(int(request.max_wait.total_seconds() * 1000), 0)
        request_id = next(self._request_ids)
        loop = asyncio.get_running_loop()
        now = raft_clock_ms()
        entries: list[tuple[str, Any, Partition | None, asyncio.Future[FetchResponse] | None]] = []
        for topic in request.topics:
            for p in topic.partitions:
                partition = self.lookup(topic.topic, p.partition)
                if partition is None or partition.offline is not None:
                    # An offline leader must not look alive to its followers: refused, they
                    # stop hearing from it and elect another.
                    entries.append((topic.topic, p, partition, None))
                    continue
                key = (topic.topic, p.partition)
                future: asyncio.Future[FetchResponse] = loop.create_future()
                self._held[(replica_id, key, request_id)] = future
                message = wire.fetch_from_wire(replica_id, max_wait_ms, p, request_id)
                message = replace(message, acknowledged_at=answered.pop(key, -1))
                partition.apply(partition.raft.on_message(replica_id, message, now))
                entries.append((topic.topic, p, partition, future))
        futures = [f for _, _, _, f in entries if f is not None]
        if futures and not any(f.done() for f in futures):
            # All held: wait for the first answer (records, a new high watermark, max wait),
            # or for the follower to need this request back (_deliver).
            cut: asyncio.Future[None] = loop.create_future()
            holding = self._holding.setdefault(replica_id, set())
            holding.add(cut)
            try:
                await asyncio.wait(
                    [*futures, cut],
                    timeout=max_wait_ms / 1000 + 1,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                holding.discard(cut)
        topics: dict[str, FetchedTopic] = {}
        for name, p, partition, future in entries:
            topic = topics.get(name)
            if topic is None:
                topic = topics[name] = FetchedTopic(name=name, topic_id=None)
            parts = topic.partitions
            if partition is None or future is None:
                code = ErrorCode.unknown_topic_or_partition
                if partition is not None and partition.offline is not None:
                    code = partition.offline
                parts.append(wire.fetch_error_partition(p.partition, code))
                continue
            if not future.done():
                partition.apply(partition.raft.release_parked_fetch(replica_id))
            self._held.pop((replica_id, (name, p.partition), request_id), None)
            if future.done() and not future.cancelled():
                answer = future.result()
                if answer.error == ErrorCode.none:
                    answered[(name, p.partition)] = answer.sent_at
                parts.append(
                    wire.fetch_response_partition(p.partition, answer, partition.log_start_offset)
                )
            else:
                future.cancel()
                parts.append(
                    wire.fetch_error_partition(p.partition, ErrorCode.not_leader_or_follower)
                )
        return encode_fetch_response(version, list(topics.values()))

    # -- outgoing replica fetches ---------------------------------------------------------------

    def _fetch_channel(self, partition: Partition) -> str:
        """The metadata log is fetched on its own: its leader's liveness (the controller, and
        every broker's check that it is not cut off) must not wait on a fetch of thousands of
        data partitions, nor behind one that their leader holds for `max_wait`."""
        metadata = self.broker.metadata
        return "metadata" if metadata is not None and partition is metadata.partition else "fetch"

    def _fetcher(self, leader: int, channel: str) -> FollowerFetcher:
        fetcher = self._fetchers.get((leader, channel))
        if fetcher is None:
            fetcher = self._fetchers[(leader, channel)] = FollowerFetcher(self, leader, channel)
        return fetcher


class FollowerFetcher:
    """The fetches of every partition this node follows on one leader broker, one request at a
    time (Kafka's replica fetcher)."""

    def __init__(self, manager: ReplicationManager, leader: int, channel: str) -> None:
        self.manager = manager
        self.leader = leader
        self.channel = channel
        self.pending: dict[PartitionKey, tuple[Partition, FetchRequest]] = {}
        self.expected: set[PartitionKey] = set()
        self.late: dict[PartitionKey, float] = {}  # expected, not back by its round: since when
        self.wakeup = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"fetcher-{leader}-{channel}")

    def add(self, key: PartitionKey, partition: Partition, request: FetchRequest) -> None:
        self.pending[key] = (partition, request)
        self.wakeup.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        manager = self.manager
        while not manager.closed:  # stop() also cancels, but a cancel can be lost: see there
            await self.wakeup.wait()
            deadline = loop.time() + ROUND_GATHER_S
            while self.expected - self.pending.keys() and loop.time() < deadline:
                self.wakeup.clear()
                try:
                    async with asyncio.timeout_at(deadline):
                        await self.wakeup.wait()
                except TimeoutError:
                    break
            if manager.closed:
                return
            self.wakeup.clear()
            batch, self.pending = self.pending, {}
            self._note_late(batch, loop.time())
            if batch:
                try:
                    await self._fetch(batch, hold=not self.late)
                except Exception:
                    log.exception("replica fetch failed", leader=self.leader)

    def _note_late(self, batch: dict[PartitionKey, Any], now: float) -> None:
        """Which expected partitions this round goes without. Such a partition fetches once
        this round's request is back, so the leader must answer that request at once: held for
        max wait (its partitions idle, nothing to wake them), it would keep the late partition
        waiting as long, and with it the high watermark when every follower's fsync was slow
        at the same time (one disk). A partition stays late until it fetches, or gives up
        being waited for after LATE_LIMIT_S (it may have stopped following)."""
        for key in self.expected - batch.keys():
            self.late.setdefault(key, now)
        for key, since in list(self.late.items()):
            if key in batch or now - since > LATE_LIMIT_S:
                del self.late[key]
        self.expected = set(self.late)

    async def _fetch(
        self, batch: dict[PartitionKey, tuple[Partition, FetchRequest]], hold: bool = True
    ) -> None:
        """One request for `batch`; `hold` False: the leader answers at once, records or not."""
        manager = self.manager
        assert manager.network is not None
        max_wait_ms = max(request.max_wait_ms for _, request in batch.values()) if hold else 0
        data = wire.fetch_request(
            manager.broker.cluster_id,
            manager.broker.node_id,
            max_wait_ms,
            {key: request for key, (_, request) in batch.items()},
        )
        timeout = max_wait_ms / 1000 + manager.config.request_timeout_ms / 1000
        manager.sent.add(wire.FETCH, len(batch))
        try:
            response = await manager.network.request(
                self.leader,
                wire.FETCH,
                wire.FETCH_VERSION,
                data,
                channel=self.channel,
                timeout=timeout,
            )
            if response.error_code != ErrorCode.none:
                raise PeerUnavailable(f"fetch failed: {response.error_code}")
        except PeerUnavailable:
            for partition, request in batch.values():
                manager._fetch_failed(partition, request.request_id)
            return
        for topic in response.topics:
            for p in topic.partitions:
                key = (topic.name, p.partition_index)
                entry = batch.pop(key, None)
                if entry is None:
                    continue
                partition, sent = entry
                answer = wire.fetch_response_from_wire(p, sent)
                if len(answer.records):
                    self.expected.add(key)
                manager._deliver(partition, self.leader, answer)
