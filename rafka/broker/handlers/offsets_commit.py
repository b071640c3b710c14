"""OffsetCommit, OffsetFetch (single group before v8, many groups from v8) and OffsetDelete."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.coordinator.groups.coordinator import CoordinatorError
from rafka.broker.coordinator.groups.offset_store import OffsetCommit
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.partition.clock import now_ms
from rafka.protocol.errors import ErrorCode

NO_OFFSET = -1
NO_METADATA = ""


def requested_commits(request: Any) -> list[OffsetCommit]:
    """The offsets an OffsetCommit or TxnOffsetCommit request asks to commit, in its order."""
    return [
        OffsetCommit(
            topic.name,
            part.partition_index,
            part.committed_offset,
            getattr(part, "committed_leader_epoch", -1),
            part.committed_metadata,
        )
        for topic in request.topics
        for part in topic.partitions
    ]


def commit_response(commits: list[OffsetCommit], codes: list[ErrorCode]) -> dict[str, Any]:
    """The (Txn)OffsetCommit response: each commit's code, grouped by topic."""
    topics: dict[str, list[dict[str, Any]]] = {}
    for commit, code in zip(commits, codes, strict=True):
        topics.setdefault(commit.topic, []).append(
            {"partition_index": commit.partition, "error_code": code}
        )
    return {
        "throttle_time": 0,
        "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
    }


def make_offset_commit_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        commits = requested_commits(request)
        # v2-v4 may carry their own retention; -1 means the broker's offsets.retention.minutes.
        retention = getattr(request, "retention_time", None)
        expire_timestamp = -1
        if retention is not None:
            retention_ms = round(retention / timedelta(milliseconds=1))
            if retention_ms >= 0:
                expire_timestamp = now_ms() + retention_ms
        try:
            codes = await broker.groups.offsets.commit(
                request.group_id,
                request.generation_id_or_member_epoch,
                request.member_id,
                getattr(request, "group_instance_id", None),
                commits,
                expire_timestamp=expire_timestamp,
                api_version=ctx.api_version,
            )
        except CoordinatorError as exc:
            codes = [exc.code] * len(commits)
        return commit_response(commits, codes)

    return handle


def make_offset_fetch_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        version = ctx.api_version
        stable = bool(getattr(request, "require_stable", False))
        if version >= 8:
            groups = [
                await _fetch_group(broker, g.group_id, g.topics, version, stable)
                for g in request.groups
            ]
            return {"throttle_time": 0, "groups": groups}
        group = await _fetch_group(broker, request.group_id, request.topics, version, stable)
        return {"throttle_time": 0, "topics": group["topics"], "error_code": group["error_code"]}

    return handle


async def _fetch_group(
    broker: Broker, group_id: str, topics: Any, version: int, require_stable: bool = False
) -> dict[str, Any]:
    requested = None
    if topics is not None:
        requested = [(t.name, p) for t in topics for p in t.partition_indexes]
    try:
        found = await broker.groups.offsets.fetch(group_id, requested)
        pending = broker.groups.shard_for(group_id).pending_txn_offsets if require_stable else None
    except CoordinatorError as exc:
        if version < 2 and requested is not None:
            # v1 has no group-level error field: every partition carries it.
            return {
                "group_id": group_id,
                "error_code": exc.code,
                "topics": _topics([(t, p, None) for t, p in requested], exc.code),
            }
        return {"group_id": group_id, "error_code": exc.code, "topics": []}
    result = _topics(found)
    if pending is not None:
        # KIP-447: offsets a transaction may still change are not handed out.
        for topic in result:
            for entry in topic["partitions"]:
                if pending.has_pending(group_id, topic["name"], entry["partition_index"]):
                    entry.update(
                        committed_offset=NO_OFFSET,
                        committed_leader_epoch=-1,
                        error_code=ErrorCode.unstable_offset_commit,
                    )
    return {"group_id": group_id, "error_code": ErrorCode.none, "topics": result}


def _topics(found: list, code: ErrorCode = ErrorCode.none) -> list[dict[str, Any]]:
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for topic, partition, committed in found:
        if committed is None:
            entry = {
                "partition_index": partition,
                "committed_offset": NO_OFFSET,
                "committed_leader_epoch": -1,
                "metadata": NO_METADATA,
                "error_code": code,
            }
        else:
            entry = {
                "partition_index": partition,
                "committed_offset": committed.offset,
                "committed_leader_epoch": committed.leader_epoch,
                "metadata": committed.metadata,
                "error_code": code,
            }
        by_topic.setdefault(topic, []).append(entry)
    return [{"name": name, "partitions": parts} for name, parts in by_topic.items()]


def make_offset_delete_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        wanted = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
        try:
            code, codes = await broker.groups.offsets.delete(request.group_id, wanted)
        except CoordinatorError as exc:
            code, codes = exc.code, []
        topics: dict[str, list[dict[str, Any]]] = {}
        if code is ErrorCode.none:
            for (topic, partition), part_code in zip(wanted, codes, strict=True):
                topics.setdefault(topic, []).append(
                    {"partition_index": partition, "error_code": part_code}
                )
        return {
            "error_code": code,
            "throttle_time": 0,
            "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
        }

    return handle
