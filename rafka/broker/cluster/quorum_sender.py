"""Vote, BeginQuorumEpoch and EndQuorumEpoch to one peer, many partitions per request.

A broker holds thousands of Raft groups, and they elect and announce together: a node restarts,
a leader resigns all it leads, a fetch timeout expires for every partition led by a node that
died. One request per partition and peer then meant thousands of requests, each a task, an
encoding and a frame on both sides, enough to stall both event loops past the Raft timers and
set off more elections. Kafka's schemas take many topics and partitions per request, so each
group's message is queued here, and one request per API carries every partition queued within a
linger of a few milliseconds (timers that fire close together share it), as the follower's
replica Fetch already does.

A newer message of a partition replaces one not yet sent: it is the replica's current state, and
the older one is as if lost, which Raft tolerates. Answers go back partition by partition; a
request that fails in transport answers nothing and the replicas' timers retry.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import structlog

from rafka.broker.cluster import raft_wire as wire
from rafka.broker.cluster.peers import PeerNetwork, PeerUnavailable
from rafka.broker.partition.replica import Partition
from rafka.protocol.errors import ErrorCode
from rafka.replication.messages import Message

log = structlog.get_logger(__name__)

PartitionKey = tuple[str, int]
Batch = dict[PartitionKey, tuple[Partition, wire.QuorumRequest]]
# How long the first queued message waits for others: timers that fire within this of each
# other (randomised election timeouts) share a request. Small against any Raft timeout.
LINGER_S = 0.01
API_NAMES = {
    wire.VOTE: "vote",
    wire.BEGIN_QUORUM_EPOCH: "begin_quorum_epoch",
    wire.END_QUORUM_EPOCH: "end_quorum_epoch",
    wire.FETCH: "fetch",
}


class SentRequests:
    """How many Raft requests this node sent, and how many partitions they carried, by API:
    logged (see ReplicationManager) so that an operator, or a test, sees how well they batch."""

    def __init__(self) -> None:
        self.requests: Counter[int] = Counter()
        self.partitions: Counter[int] = Counter()

    def add(self, api_key: int, partitions: int) -> None:
        self.requests[api_key] += 1
        self.partitions[api_key] += partitions

    def quorum_total(self) -> int:
        return sum(self.requests[api] for api in wire.QUORUM_APIS)

    def as_fields(self) -> dict[str, int]:
        fields = {}
        for api, name in API_NAMES.items():
            fields[f"{name}_requests"] = self.requests[api]
            fields[f"{name}_partitions"] = self.partitions[api]
        return fields


class QuorumSender:
    """The quorum requests of every partition to one peer, sent once per pass of the loop."""

    def __init__(
        self,
        peer: int,
        network: PeerNetwork,
        cluster_id: Callable[[], str],
        timeout_s: float,
        deliver: Callable[[Partition, int, Message], None],
        sent: SentRequests,
    ) -> None:
        self.peer = peer
        self._network = network
        self._cluster_id = cluster_id
        self._timeout_s = timeout_s
        self._deliver = deliver
        self._sent = sent
        self._pending: dict[int, Batch] = {}
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, key: PartitionKey, partition: Partition, message: wire.QuorumRequest) -> None:
        api_key, _ = wire.quorum_api(message)
        self._pending.setdefault(api_key, {})[key] = (partition, message)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(LINGER_S, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, {}
        for api_key, batch in pending.items():
            task = asyncio.ensure_future(self._send(api_key, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, api_key: int, batch: Batch) -> None:
        _, version = wire.quorum_api(next(iter(batch.values()))[1])
        messages = {key: message for key, (_, message) in batch.items()}
        data = wire.quorum_request(api_key, self._cluster_id(), self.peer, messages)
        self._sent.add(api_key, len(batch))
        try:
            response = await self._network.request(
                self.peer, api_key, version, data, timeout=self._timeout_s
            )
        except PeerUnavailable:
            return  # the replicas' timers retry
        if response.error_code != ErrorCode.none:
            log.debug(
                "quorum request refused",
                peer=self.peer,
                api_key=api_key,
                error_code=response.error_code,
            )
            return
        for topic in response.topics:
            for p in topic.partitions:
                entry = batch.get((topic.topic_name, p.partition_index))
                if entry is None or p.error_code == ErrorCode.unknown_topic_or_partition:
                    continue
                partition, message = entry
                self._deliver(partition, self.peer, wire.quorum_answer(message, p))

    def cancel(self) -> list[asyncio.Task[None]]:
        """Stop sending; the tasks still running, for the caller to await."""
        self._pending = {}
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return tasks
