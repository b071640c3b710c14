"""WriteTxnMarkers: COMMIT or ABORT control batches on every partition of a transaction.

The coordinator calls `write_markers` once a transaction's PrepareCommit/PrepareAbort is
committed; the WriteTxnMarkers API (what a remote coordinator would send) goes through
`write_marker` too. A marker is appended through the partition (producer-state check with the
coordinator epoch, aborted-transaction index) and counts once the high watermark passes it.
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

from rafka.broker.groups.coordinator import OFFSETS_TOPIC
from rafka.broker.partition import AppendError
from rafka.broker.peers import PeerUnavailable
from rafka.broker.txn.pending_offsets import complete_txn_offsets
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.broker import Broker

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
    broker: Broker,
    topic: str,
    index: int,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    commit: bool,
    transaction_version: int = 0,
) -> ErrorCode:
    """Append one marker and wait until it is committed; the outcome as an error code. A
    partition led by another broker gets the marker through WriteTxnMarkers there."""
    partition = broker.partition(topic, index)
    if partition is None or not partition.is_leader:
        remote = await _write_marker_remotely(
            broker, topic, index, producer_id, producer_epoch, coordinator_epoch, commit
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
        await partition.wait_committed(offset)
    except AppendError as exc:
        return exc.code
    if topic == OFFSETS_TOPIC:
        await complete_txn_offsets(broker.groups, index, producer_id, commit)
    return ErrorCode.none


async def _write_marker_remotely(
    broker: Broker,
    topic: str,
    index: int,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    commit: bool,
) -> ErrorCode | None:
    """None when no other broker is known to lead the partition (then it is tried here)."""
    image = broker.topic(topic)
    network = broker.replication.network
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
            }
        ]
    }
    try:
        response = await network.request(leader, WRITE_TXN_MARKERS, 1, request, timeout=30)
    except PeerUnavailable:
        return ErrorCode.network_exception
    for marker in response.markers:
        for result_topic in marker.topics:
            for result in result_topic.partitions:
                return ErrorCode(result.error_code)
    return ErrorCode.unknown_server_error


async def write_markers(
    broker: Broker,
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
