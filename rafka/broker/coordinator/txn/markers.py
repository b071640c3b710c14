"""WriteTxnMarkers: COMMIT or ABORT control batches on every partition of a transaction.

The coordinator calls `write_markers` once a transaction's PrepareCommit/PrepareAbort is
committed; the WriteTxnMarkers API (what a remote coordinator sends) goes through
`write_marker` too, but only ever for partitions led here. A marker is appended through the
partition (producer-state check with the producer and coordinator epochs, aborted-transaction
index) and counts once the high watermark passes it; one for a producer with nothing undecided
on the partition is answered without a second append.
On `__consumer_offsets` partitions the group coordinator then makes the transaction's offsets
visible (commit) or drops them (abort).

Retries: partitions that are offline or not (yet) led here are retried with a backoff until they
succeed or the coordinator shard that asked is unloaded; a partition whose topic is gone, or
that refuses the marker as stale, is skipped, as Kafka's marker channel does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import structlog

from rafka.broker.cluster.peers import PeerUnavailable
from rafka.broker.coordinator.internal_topic import OFFSETS_TOPIC
from rafka.broker.partition.append import AppendError
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.coordinator.txn.context import TxnNode

log = structlog.get_logger(__name__)

RETRY_BACKOFF_S = 0.5
WRITE_TXN_MARKERS = 27
# Refusals that a retry cannot change: the marker is stale or its coordinator was fenced.
_GIVE_UP = frozenset(
    {
        ErrorCode.invalid_producer_epoch,
        ErrorCode.transaction_coordinator_fenced,
        ErrorCode.unknown_topic_or_partition,
    }
)


async def write_marker(
    broker: TxnNode,
    topic: str,
    index: int,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    commit: bool,
    transaction_version: int = 0,
    *,
    forward: bool = True,
) -> ErrorCode:
    """Append one marker and wait until it is committed; the outcome as an error code.

    For the local coordinator (`forward`), a partition led by another broker gets the marker
    through WriteTxnMarkers there. A WriteTxnMarkers request is never forwarded: it was meant
    for the leader its sender knew, and a delayed one reaching a former leader must be refused
    with NOT_LEADER_OR_FOLLOWER (as Kafka does), not appended to whatever transaction the
    producer has open on the current leader by then."""
    partition = broker.partition(topic, index)
    if forward and (partition is None or not partition.is_leader):
        remote = await _write_marker_remotely(
            broker, topic, index, producer_id, producer_epoch, coordinator_epoch, commit,
            transaction_version,
        )
        if remote is not None:
            return remote
    if partition is None:
        return broker.absent_partition_error(topic, index)
    try:
        offset = partition.append_txn_marker(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit,
            transaction_version=transaction_version,
        )
        if offset is None:
            # Nothing of the producer is undecided here (a retry of a marker already written,
            # or a stale one): whatever ended it must be committed before success is answered,
            # and no pending offsets are touched (they would be a newer transaction's).
            await partition.wait_committed(partition.log_end_offset - 1)
            return ErrorCode.none
        await partition.wait_committed(offset)
    except AppendError as exc:
        return exc.code
    if topic == OFFSETS_TOPIC:
        await broker.groups.complete_txn_offsets(index, producer_id, commit)
    return ErrorCode.none


async def _write_marker_remotely(
    broker: TxnNode,
    topic: str,
    index: int,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    commit: bool,
    transaction_version: int,
) -> ErrorCode | None:
    """None when no other broker is known to lead the partition (then it is tried here)."""
    image = broker.topic(topic)
    network = broker.network
    if image is None or network is None or index >= image.partition_count:
        return None
    leader, _, _ = broker.leadership(image, index)
    if leader < 0 or leader == broker.node_id or not network.knows(leader):
        return None
    request = {
        "markers": [
            {
                "producer_id": producer_id,
                "producer_epoch": producer_epoch,
                "transaction_result": commit,
                "topics": [{"name": topic, "partition_indexes": [index]}],
                "coordinator_epoch": coordinator_epoch,
                # v2: the leader checks a TV2 marker's epoch strictly (each transaction has its
                # own), which refuses a delayed marker of the producer's previous transaction.
                "transaction_version": transaction_version,
            }
        ]
    }
    try:
        response = await network.request(leader, WRITE_TXN_MARKERS, 2, request, timeout=30)
    except PeerUnavailable:
        return ErrorCode.network_exception
    for marker in response.markers:
        for result_topic in marker.topics:
            for result in result_topic.partitions:
                return ErrorCode(result.error_code)
    return ErrorCode.unknown_server_error


async def write_markers(
    broker: TxnNode,
    partitions: Iterable[tuple[str, int]],
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    commit: bool,
    transaction_version: int,
    keep_trying: Callable[[], bool],
) -> bool:
    """Markers on all `partitions`, concurrently; True once every one is written or skipped,
    False if `keep_trying` turned false first (the coordinator lost its shard)."""

    async def one(topic: str, index: int) -> bool:
        while True:
            code = await write_marker(
                broker,
                topic,
                index,
                producer_id,
                producer_epoch,
                coordinator_epoch,
                commit,
                transaction_version,
            )
            if code is ErrorCode.none:
                return True
            if code in _GIVE_UP:
                log.warning(
                    "transaction marker skipped",
                    partition=f"{topic}-{index}",
                    producer_id=producer_id,
                    producer_epoch=producer_epoch,
                    error=code.name,
                )
                return True
            if not keep_trying():
                return False
            log.warning(
                "transaction marker failed; retrying",
                partition=f"{topic}-{index}",
                producer_id=producer_id,
                error=code.name,
            )
            await asyncio.sleep(RETRY_BACKOFF_S)
            if not keep_trying():
                return False

    results = await asyncio.gather(*(one(t, p) for t, p in sorted(partitions)))
    return all(results)
