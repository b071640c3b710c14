"""DescribeLogDirs and AlterReplicaLogDirs: the log dirs of this broker (log.dirs, JBOD) and
moving a replica between them (replica_moves.py), answered as Kafka's ReplicaManager does."""

from __future__ import annotations

import os
import shutil
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.protocol.errors import ErrorCode
from rafka.storage.log_dir import LogDirectory


def _disk_usage(directory: LogDirectory) -> tuple[int, int]:
    try:
        usage = shutil.disk_usage(directory.path)
    except OSError:
        return -1, -1
    return usage.total, usage.free


def make_describe_log_dirs_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not ctx.authorize(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
            # v1-2 have no error field: those clients just see no log directory.
            return {
                "throttle_time": 0,
                "error_code": ErrorCode.cluster_authorization_failed,
                "results": [],
            }
        wanted: dict[str, set[int]] | None = None
        if request.topics is not None:
            wanted = {}
            for t in request.topics:
                wanted.setdefault(t.topic, set()).update(t.partitions)
        by_dir: dict[int, dict[str, list[dict[str, Any]]]] = {id(d): {} for d in broker.data_dirs}
        for (topic, index), partition in sorted(broker.partitions.items()):
            if wanted is not None and index not in wanted.get(topic, ()):
                continue
            directory = broker.placement.get((topic, index))
            if directory is not None and id(directory) in by_dir:
                by_dir[id(directory)].setdefault(topic, []).append(
                    {
                        "partition_index": index,
                        "partition_size": partition.log.size_bytes,
                        "offset_lag": max(partition.high_watermark - partition.log_end_offset, 0),
                        "is_future_key": False,
                    }
                )
            future = broker.replica_moves.future((topic, index))
            if future is not None and id(future[0]) in by_dir:
                target, copied, caught_up = future
                by_dir[id(target)].setdefault(topic, []).append(
                    {
                        "partition_index": index,
                        "partition_size": copied,
                        # Kafka: the current replica's log end minus the future one's.
                        "offset_lag": 0 if caught_up else partition.log_end_offset,
                        "is_future_key": True,
                    }
                )
        results = []
        for directory in broker.data_dirs:
            total, usable = _disk_usage(directory)
            topics = by_dir[id(directory)]
            results.append(
                {
                    "error_code": ErrorCode.none,
                    "log_dir": os.path.abspath(directory.path),
                    "topics": [{"name": name, "partitions": ps} for name, ps in topics.items()],
                    "total_bytes": total,
                    "usable_bytes": usable,
                }
            )
        return {"throttle_time": 0, "error_code": ErrorCode.none, "results": results}

    return handle


def make_alter_replica_log_dirs_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        allowed = ctx.authorize(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME)
        dirs = {os.path.abspath(d.path): d for d in broker.data_dirs}
        results: dict[str, list[dict[str, Any]]] = {}
        for entry in request.dirs:
            target = dirs.get(os.path.abspath(entry.path)) if os.path.isabs(entry.path) else None
            for topic in entry.topics:
                for index in topic.partitions:
                    if not allowed:
                        error = ErrorCode.cluster_authorization_failed
                    elif target is None:
                        error = ErrorCode.log_dir_not_found
                    else:
                        error = _alter(broker, topic.name, index, target)
                    results.setdefault(topic.name, []).append(
                        {"partition_index": index, "error_code": error}
                    )
        return {
            "throttle_time": 0,
            "results": [
                {"topic_name": name, "partitions": parts} for name, parts in results.items()
            ],
        }

    return handle


def _alter(broker: Broker, topic: str, index: int, target: LogDirectory) -> ErrorCode:
    key = (topic, index)
    partition = broker.partition(topic, index)
    if partition is None:
        image = broker.topic(topic)
        if image is None or not 0 <= index < image.partition_count:
            return ErrorCode.unknown_topic_or_partition
        # Kafka remembers the dir for a replica created here later, and answers
        # REPLICA_NOT_AVAILABLE (kept for compatibility, where others say
        # NOT_LEADER_OR_FOLLOWER).
        if broker.node_id in image.replicas[index] and key not in broker.placement:
            broker.replica_moves.preferred[key] = target
        return ErrorCode.replica_not_available
    if partition.offline is not None:
        return ErrorCode.kafka_storage_error
    broker.replica_moves.start(key, target)
    return ErrorCode.none
