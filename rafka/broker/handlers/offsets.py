"""ListOffsets and OffsetForLeaderEpoch: where a consumer may start, and where an epoch ended."""

from __future__ import annotations

from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.partition.replica import Partition
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import record_timestamps_and_offsets

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4


def _epoch_error(
    broker: Broker, topic: str, index: int, current_leader_epoch: int
) -> tuple[Partition | None, ErrorCode]:
    partition = broker.partition(topic, index)
    if partition is None:
        return None, broker.absent_partition_error(topic, index)
    return partition, partition.leader_error(current_leader_epoch)


def make_list_offsets_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        read_committed = getattr(request, "isolation_level", 0) == 1
        topics = []
        for topic in request.topics:
            # As Kafka: DESCRIBE on the topic, checked before its existence.
            if not ctx.authorize(Operation.DESCRIBE, ResourceType.TOPIC, topic.name):
                refused = [
                    {
                        "partition_index": part.partition_index,
                        "error_code": ErrorCode.topic_authorization_failed,
                        "timestamp": -1,
                        "offset": -1,
                        "old_style_offsets": [],
                        "leader_epoch": -1,
                    }
                    for part in topic.partitions
                ]
                topics.append({"name": topic.name, "partitions": refused})
                continue
            results = []
            for part in topic.partitions:
                partition, code = _epoch_error(
                    broker,
                    topic.name,
                    part.partition_index,
                    getattr(part, "current_leader_epoch", -1),
                )
                entry: dict[str, Any] = {
                    "partition_index": part.partition_index,
                    "error_code": code,
                }
                if code is ErrorCode.none and part.timestamp < EARLIEST_LOCAL:
                    # -5 (latest tiered) needs v9, which we do not serve; as Kafka, a special
                    # timestamp the version does not know is UNSUPPORTED_VERSION.
                    code = entry["error_code"] = ErrorCode.unsupported_version
                    entry.update(timestamp=-1, offset=-1, old_style_offsets=[], leader_epoch=-1)
                if code is ErrorCode.none:
                    assert partition is not None
                    timestamp, offset = _lookup(partition, part.timestamp, read_committed)
                    entry.update(
                        timestamp=timestamp,
                        offset=offset,
                        old_style_offsets=[offset],
                        leader_epoch=partition.leader_epoch if offset >= 0 else -1,
                    )
                results.append(entry)
            topics.append({"name": topic.name, "partitions": results})
        return {"throttle_time": 0, "topics": topics}

    return handle


def _lookup(partition: Partition, target: int, read_committed: bool = False) -> tuple[int, int]:
    """(timestamp, offset) per Kafka's ListOffsets; (-1, -1) when no record qualifies.
    read_committed clients are answered below the last stable offset instead of the HW."""
    high_watermark = partition.last_stable_offset if read_committed else partition.high_watermark
    if target == LATEST:
        return -1, high_watermark
    if target in (EARLIEST, EARLIEST_LOCAL):
        return -1, partition.log_start_offset
    if target == MAX_TIMESTAMP:
        found = partition.log.max_timestamp_batch()
        if found is None:
            return -1, -1
        best = None
        for offset, timestamp in record_timestamps_and_offsets(found[1], 0):
            if offset < high_watermark and (best is None or timestamp > best[0]):
                best = (timestamp, offset)
        return best if best is not None else (-1, -1)
    found = partition.log.first_batch_with_timestamp_at_least(target)
    if found is None:
        return -1, -1
    # The time index finds the first candidate batch; the record may sit in a later one (control
    # batches and batches whose max timestamp is below the target are passed over).
    for header, batch in partition.log.iter_batches(found[0]):
        if header.base_offset >= high_watermark:
            break
        if header.is_control or header.max_timestamp < target:
            continue
        for offset, timestamp in record_timestamps_and_offsets(batch, 0):
            if timestamp >= target and offset < high_watermark:
                return timestamp, offset
    return -1, -1


def make_offset_for_leader_epoch_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        # Brokers ask with CLUSTER_ACTION; consumers (KIP-320: truncation checks after a leader
        # change) with DESCRIBE on each topic.
        everything = ctx.authorize(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)
        topics = []
        for topic in request.topics:
            if not everything and not ctx.authorize(
                Operation.DESCRIBE, ResourceType.TOPIC, topic.topic
            ):
                refused = ErrorCode.topic_authorization_failed
                topics.append(
                    {
                        "topic": topic.topic,
                        "partitions": [
                            {"partition": p.partition, "error_code": refused}
                            for p in topic.partitions
                        ],
                    }
                )
                continue
            results = []
            for part in topic.partitions:
                partition, code = _epoch_error(
                    broker, topic.topic, part.partition, getattr(part, "current_leader_epoch", -1)
                )
                entry: dict[str, Any] = {"partition": part.partition, "error_code": code}
                if code is ErrorCode.none:
                    assert partition is not None
                    epoch, end_offset = partition.log.leader_epochs.end_offset_for(
                        part.leader_epoch, partition.log_end_offset, partition.leader_epoch
                    )
                    entry.update(leader_epoch=epoch, end_offset=end_offset)
                results.append(entry)
            topics.append({"topic": topic.topic, "partitions": results})
        return {"throttle_time": 0, "topics": topics}

    return handle
