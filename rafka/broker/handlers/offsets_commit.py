"""OffsetCommit, OffsetFetch (single group before v8, many groups from v8) and OffsetDelete,
with Kafka's ACL checks: READ on the group to commit, DESCRIBE to fetch, DELETE to delete; READ
on a topic to commit or delete its offsets, DESCRIBE to see them.

OffsetCommit v10 and OffsetFetch v10 (Kafka 4.2+, KIP-848) name topics by id only: an id the
cluster does not know is answered UNKNOWN_TOPIC_ID for each of its partitions (before any topic
authorization, as Kafka's KafkaApis does), and answers carry the topic id instead of the name.
Offsets themselves stay keyed by topic name, as in `__consumer_offsets`."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.coordinator.groups.coordinator import CoordinatorError
from rafka.broker.coordinator.groups.offset_store import OffsetCommit
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.partition.clock import now_ms
from rafka.broker.security.acl import Operation, ResourceType
from rafka.protocol.errors import ErrorCode

NO_OFFSET = -1
NO_METADATA = ""
TOPIC_IDS_VERSION = 10  # OffsetCommit and OffsetFetch from this version on name topics by id


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


def refused_topics(ctx: RequestContext, operation: Operation, topics: Any) -> set[str]:
    """The names among `topics` (request entries with a name) the principal may not
    `operation`, each asked once."""
    names = {topic.name for topic in topics}
    return {name for name in names if not ctx.authorize(operation, ResourceType.TOPIC, name)}


def make_offset_commit_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if ctx.api_version >= TOPIC_IDS_VERSION:
            return await _commit_by_topic_id(broker, ctx, request)
        commits = requested_commits(request)
        if not ctx.authorize(Operation.READ, ResourceType.GROUP, request.group_id):
            return commit_response(commits, [ErrorCode.group_authorization_failed] * len(commits))
        refused = refused_topics(ctx, Operation.READ, request.topics)
        allowed = [c for c in commits if c.topic not in refused]
        codes = await _commit_allowed(broker, ctx, request, commits, allowed)
        return commit_response(commits, merge_refused(commits, refused, codes))

    return handle


async def _commit_allowed(
    broker: Broker,
    ctx: RequestContext,
    request: Any,
    commits: list[OffsetCommit],
    allowed: list[OffsetCommit],
) -> list[ErrorCode]:
    """The coordinator's answer for the `allowed` commits, in their order."""
    # v2-v4 may carry their own retention; -1 means the broker's offsets.retention.minutes.
    retention = getattr(request, "retention_time", None)
    expire_timestamp = -1
    if retention is not None:
        retention_ms = round(retention / timedelta(milliseconds=1))
        if retention_ms >= 0:
            expire_timestamp = now_ms() + retention_ms
    # Like Kafka, the coordinator sees the authorized topics only (not at all when every
    # topic was refused), so its request-wide errors land on them alone.
    if not allowed and commits:
        return []
    try:
        return await broker.groups.offsets.commit(
            request.group_id,
            request.generation_id_or_member_epoch,
            request.member_id,
            getattr(request, "group_instance_id", None),
            allowed,
            expire_timestamp=expire_timestamp,
            api_version=ctx.api_version,
        )
    except CoordinatorError as exc:
        return [exc.code] * len(allowed)


async def _commit_by_topic_id(broker: Broker, ctx: RequestContext, request: Any) -> dict[str, Any]:
    """OffsetCommit v10+: topics named by id."""
    entries: list[tuple[uuid.UUID | None, int, OffsetCommit | None]] = []
    for topic in request.topics:
        image = broker.topic_by_id(topic.topic_id) if topic.topic_id is not None else None
        for part in topic.partitions:
            commit = None
            if image is not None:
                commit = OffsetCommit(
                    image.name,
                    part.partition_index,
                    part.committed_offset,
                    part.committed_leader_epoch,
                    part.committed_metadata,
                )
            entries.append((topic.topic_id, part.partition_index, commit))
    codes: list[ErrorCode | None] = [None] * len(entries)
    if not ctx.authorize(Operation.READ, ResourceType.GROUP, request.group_id):
        codes = [ErrorCode.group_authorization_failed] * len(entries)
    else:
        names = {c.topic for _, _, c in entries if c is not None}
        refused = {n for n in names if not ctx.authorize(Operation.READ, ResourceType.TOPIC, n)}
        for i, (_, _, commit) in enumerate(entries):
            if commit is None:
                codes[i] = ErrorCode.unknown_topic_id
            elif commit.topic in refused:
                codes[i] = ErrorCode.topic_authorization_failed
        allowed = [c for (_, _, c), code in zip(entries, codes, strict=True) if code is None]
        allowed_commits = [c for c in allowed if c is not None]
        answers = iter(
            await _commit_allowed(broker, ctx, request, allowed_commits, allowed_commits)
        )
        codes = [code if code is not None else next(answers) for code in codes]
    topics: dict[uuid.UUID | None, list[dict[str, Any]]] = {}
    for (topic_id, partition, _), code in zip(entries, codes, strict=True):
        topics.setdefault(topic_id, []).append({"partition_index": partition, "error_code": code})
    return {
        "throttle_time": 0,
        "topics": [{"topic_id": tid, "partitions": parts} for tid, parts in topics.items()],
    }


def merge_refused(
    commits: list[OffsetCommit], refused: set[str], allowed_codes: list[ErrorCode]
) -> list[ErrorCode]:
    """Each commit's code in request order: TOPIC_AUTHORIZATION_FAILED for refused topics,
    the coordinator's answer (given in order for the others) for the rest."""
    answers = iter(allowed_codes)
    return [
        ErrorCode.topic_authorization_failed if c.topic in refused else next(answers)
        for c in commits
    ]


def make_offset_fetch_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        version = ctx.api_version
        stable = bool(getattr(request, "require_stable", False))
        if version >= 8:
            groups = [
                await _fetch_group(
                    broker,
                    ctx,
                    g.group_id,
                    g.topics,
                    version,
                    stable,
                    # v9+: a consumer-protocol member fetches at its epoch (KIP-848).
                    (getattr(g, "member_id", None) or None, getattr(g, "member_epoch", -1)),
                )
                for g in request.groups
            ]
            return {"throttle_time": 0, "groups": groups}
        group = await _fetch_group(broker, ctx, request.group_id, request.topics, version, stable)
        return {"throttle_time": 0, "topics": group["topics"], "error_code": group["error_code"]}

    return handle


async def _fetch_group(
    broker: Broker,
    ctx: RequestContext,
    group_id: str,
    topics: Any,
    version: int,
    require_stable: bool = False,
    member: tuple[str | None, int] = (None, -1),
) -> dict[str, Any]:
    unknown_ids: list[tuple[uuid.UUID | None, list[int]]] = []
    if version >= TOPIC_IDS_VERSION and topics is not None:
        # Topics named by id: those the cluster knows are looked up by name from here on.
        named = []
        for t in topics:
            image = broker.topic_by_id(t.topic_id) if t.topic_id is not None else None
            if image is None:
                unknown_ids.append((t.topic_id, list(t.partition_indexes)))
            else:
                named.append(_NamedTopic(image.name, t.partition_indexes))
        topics = named
    requested = None
    if topics is not None:
        requested = [(t.name, p) for t in topics for p in t.partition_indexes]
    if not ctx.authorize(Operation.DESCRIBE, ResourceType.GROUP, group_id):
        return _group_error(group_id, requested, version, ErrorCode.group_authorization_failed)
    refused = refused_topics(ctx, Operation.DESCRIBE, topics) if topics is not None else set()
    allowed = None if requested is None else [tp for tp in requested if tp[0] not in refused]
    try:
        found = await broker.groups.offsets.fetch(group_id, allowed, member)
        pending = broker.groups.shard_for(group_id).pending_txn_offsets if require_stable else None
    except CoordinatorError as exc:
        return _group_error(group_id, requested, version, exc.code)
    if requested is None:
        # Every committed offset was asked for: those of topics the principal may not
        # DESCRIBE are left out, as if there were none.
        hidden = {
            topic
            for topic in {entry[0] for entry in found}
            if not ctx.authorize(Operation.DESCRIBE, ResourceType.TOPIC, topic)
        }
        found = [entry for entry in found if entry[0] not in hidden]
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
    if refused and requested is not None:
        # Asked for by name but not DESCRIBE-able: TOPIC_AUTHORIZATION_FAILED, after the rest.
        denied = [(t, p, None) for t, p in requested if t in refused]
        result += _topics(denied, ErrorCode.topic_authorization_failed)
    if version >= TOPIC_IDS_VERSION:
        result = _with_topic_ids(broker, result)
        for topic_id, partitions in unknown_ids:
            missing = _topics([("", p, None) for p in partitions], ErrorCode.unknown_topic_id)
            parts = missing[0]["partitions"] if missing else []
            result.append({"topic_id": topic_id, "partitions": parts})
    return {"group_id": group_id, "error_code": ErrorCode.none, "topics": result}


class _NamedTopic:
    """An OffsetFetch v10 topic after its id was looked up: what the name-based code reads."""

    __slots__ = ("name", "partition_indexes")

    def __init__(self, name: str, partition_indexes: Any) -> None:
        self.name = name
        self.partition_indexes = partition_indexes


def _with_topic_ids(broker: Broker, topics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answer topics by id (v10+). Offsets of a topic that no longer exists have no id to be
    named by and are left out (they can only be fetched by name, at older versions)."""
    out = []
    for topic in topics:
        image = broker.topic(topic["name"])
        if image is not None:
            out.append({**topic, "topic_id": image.topic_id})
    return out


def _group_error(
    group_id: str, requested: list[tuple[str, int]] | None, version: int, code: ErrorCode
) -> dict[str, Any]:
    if version < 2 and requested is not None:
        # v1 has no group-level error field: every partition carries it.
        return {
            "group_id": group_id,
            "error_code": code,
            "topics": _topics([(t, p, None) for t, p in requested], code),
        }
    return {"group_id": group_id, "error_code": code, "topics": []}


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


_REFUSED_BEFORE_THE_COORDINATOR = frozenset(
    {ErrorCode.topic_authorization_failed, ErrorCode.unknown_topic_or_partition}
)


def make_offset_delete_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not ctx.authorize(Operation.DELETE, ResourceType.GROUP, request.group_id):
            return {
                "error_code": ErrorCode.group_authorization_failed,
                "throttle_time": 0,
                "topics": [],
            }
        wanted = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
        refused = refused_topics(ctx, Operation.READ, request.topics)
        allowed = [tp for tp in wanted if tp[0] not in refused]
        try:
            code, allowed_codes = await broker.groups.offsets.delete(request.group_id, allowed)
        except CoordinatorError as exc:
            code, allowed_codes = exc.code, []
        topics: dict[str, list[dict[str, Any]]] = {}
        # A group-level error replaces every partition's answer, the refused ones' too (Kafka).
        if code is ErrorCode.none:
            answers = iter(allowed_codes)
            codes = [
                ErrorCode.topic_authorization_failed if t in refused else next(answers)
                for t, _ in wanted
            ]
            # Kafka answers the partitions it refuses before asking the coordinator (topics
            # not authorized, partitions that do not exist) first, then merges the
            # coordinator's answers in, each under its topic's entry.
            answered = sorted(  # stable: request order within each part
                zip(wanted, codes, strict=True),
                key=lambda answer: answer[1] not in _REFUSED_BEFORE_THE_COORDINATOR,
            )
            for (topic, partition), part_code in answered:
                topics.setdefault(topic, []).append(
                    {"partition_index": partition, "error_code": part_code}
                )
        return {
            "error_code": code,
            "throttle_time": 0,
            "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
        }

    return handle
