"""Share groups' APIs (KIP-932), at the versions Kafka 4.2/4.3 serves: ShareGroupHeartbeat (76,
v1), ShareGroupDescribe (77, v1), ShareFetch (78, v1-2) and ShareAcknowledge (79, v1-2).

The heartbeat is served where the group's coordinator is (the `__consumer_offsets` partition
FindCoordinator names), ShareFetch and ShareAcknowledge by the partitions' leader, whose
share-partition states are durable in `__share_group_state` (rafka.broker.share.service and
state_coordinator); the inter-broker ReadShareGroupState (84) and WriteShareGroupState (85)
reach the share coordinator of a key led by another broker. Membership stays in memory.
ApiVersions advertises the `share.version` feature at level 1 beside them, as Kafka 4.2+ does
once share groups are enabled; the Java KafkaShareConsumer itself only needs the four APIs
advertised.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from functools import partial
from typing import Any

from msgspec import Struct, field

from rafka.broker import group_configs
from rafka.broker.broker import Broker
from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.handlers.groups import client_host, group_operations, may_read_group, millis
from rafka.broker.handlers.share_versions import share_specs
from rafka.broker.net.dispatch import ApiSpec, RequestContext
from rafka.broker.partition.replica import Partition
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.broker.share.committed import committed_spans
from rafka.broker.share.group import ShareGroup, ShareGroupError, TopicLookup
from rafka.broker.share.group_records import ShareGroupLog
from rafka.broker.share.partition_state import (
    AckBatch,
    AckError,
    AckType,
    AcquiredRange,
    BatchSpan,
)
from rafka.broker.share.persister import (
    NO_STATE,
    READ_SHARE_GROUP_STATE,
    WRITE_SHARE_GROUP_STATE,
    CoordinatorPersister,
)
from rafka.broker.share.service import ShareConfig, ShareKey, ShareService
from rafka.broker.share.sessions import FINAL_EPOCH, INITIAL_EPOCH, SessionError
from rafka.broker.share.state_coordinator import ShareStateCoordinator, ShareStateError
from rafka.protocol.errors import ErrorCode

SHARE_GROUP_HEARTBEAT = 76
SHARE_GROUP_DESCRIBE = 77
SHARE_FETCH = 78
SHARE_ACKNOWLEDGE = 79

ASSIGNOR_NAME = "simple"

_BATCH_PREFIX = struct.Struct(">qi")  # baseOffset, batchLength
_ATTRIBUTES = struct.Struct(">h")  # at byte 21
_LAST_OFFSET_DELTA = struct.Struct(">i")  # at byte 23
_CONTROL_FLAG = 0x20


def share_config(broker: Broker) -> ShareConfig:
    get = broker.config.get
    return ShareConfig(
        session_timeout_ms=get("group.share.session.timeout.ms"),
        heartbeat_interval_ms=get("group.share.heartbeat.interval.ms"),
        record_lock_duration_ms=get("group.share.record.lock.duration.ms"),
        delivery_count_limit=get("group.share.delivery.count.limit"),
        partition_max_record_locks=get("group.share.partition.max.record.locks"),
        max_size=get("group.share.max.size"),
        max_share_sessions=get("group.share.max.share.sessions"),
    )


def share_state_coordinator(broker: Broker) -> ShareStateCoordinator:
    """The share coordinator, configured by Kafka's share.coordinator.* keys."""
    get = broker.config.get_int
    coordinator = ShareStateCoordinator(
        broker,
        partitions=get("share.coordinator.state.topic.num.partitions"),
        replication_factor=get("share.coordinator.state.topic.replication.factor"),
        min_isr=get("share.coordinator.state.topic.min.isr"),
        snapshot_every=get("share.coordinator.snapshot.update.records.per.snapshot"),
        prune_interval_ms=get("share.coordinator.state.topic.prune.interval.ms"),
        cold_snapshot_interval_ms=get("share.coordinator.cold.partition.snapshot.interval.ms"),
    )
    coordinator.start()
    return coordinator


def share_apis(
    broker: Broker,
    coordinator: ShareStateCoordinator | None = None,
    service: ShareService | None = None,
    group_log: ShareGroupLog | None = None,
) -> dict[int, ApiSpec]:
    """The four client APIs sharing one ShareService, and the share coordinator's two (the
    coordinator and service built here unless given: handlers/share_admin.py shares them)."""
    if coordinator is None:
        coordinator = share_state_coordinator(broker)
    if service is None:
        service = ShareService(share_config(broker), CoordinatorPersister(broker, coordinator))
    # Each group's share.* group configs over the broker's group.share.* keys.
    service.group_settings = group_configs.ShareGroupSettings(broker, service.config)
    return share_specs(
        {
            SHARE_GROUP_HEARTBEAT: _heartbeat_handler(broker, service, group_log),
            SHARE_GROUP_DESCRIBE: _describe_handler(broker, service),
            SHARE_FETCH: _fetch_handler(broker, service),
            SHARE_ACKNOWLEDGE: _acknowledge_handler(broker, service),
            READ_SHARE_GROUP_STATE: _read_state_handler(coordinator),
            WRITE_SHARE_GROUP_STATE: _write_state_handler(coordinator),
        }
    )


# -- ShareGroupHeartbeat, ShareGroupDescribe ---------------------------------------------------


def _coordinator_error(broker: Broker, group_id: str) -> tuple[ErrorCode, str | None]:
    """NOT_COORDINATOR and the like where this node does not coordinate `group_id`; a classic
    or consumer group of that id is not a share group."""
    try:
        shard = broker.groups.shard_for(group_id)
    except CoordinatorError as exc:
        return exc.code, exc.message
    if group_id in shard.groups or group_id in shard.consumer_groups:
        return ErrorCode.group_id_not_found, f"Group {group_id} is not a share group."
    return ErrorCode.none, None


def topic_lookup(broker: Broker) -> TopicLookup:
    """A topic's id and partition count by name, as share groups' assignments need them."""

    def lookup(name: str) -> tuple[uuid.UUID, int] | None:
        image = broker.topic(name)
        return None if image is None else (image.topic_id, image.partition_count)

    return lookup


def _heartbeat_handler(broker: Broker, service: ShareService, group_log: ShareGroupLog | None):
    lookup = topic_lookup(broker)

    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        response: dict[str, Any] = {
            "throttle_time": 0,
            "error_code": ErrorCode.none,
            "error_message": None,
            "member_id": request.member_id or None,
            "member_epoch": 0,
            "heartbeat_interval": 0,
        }
        group_id = request.group_id
        if not may_read_group(ctx, group_id):
            response["error_code"] = ErrorCode.group_authorization_failed
            return response
        names = request.subscribed_topic_names
        if names and ctx.acls_apply:
            refused = [
                n for n in names if not ctx.authorize(Operation.DESCRIBE, ResourceType.TOPIC, n)
            ]
            if refused:
                response["error_code"] = ErrorCode.topic_authorization_failed
                response["error_message"] = f"Topics not authorized: {sorted(refused)}"
                return response
        code, message = _coordinator_error(broker, group_id)
        if code is not ErrorCode.none:
            response.update(error_code=code, error_message=message)
            return response
        settings = service.settings(group_id)
        before = _written_part(service.groups.groups.get(group_id), request.member_id)
        try:
            result = service.groups.heartbeat(
                group_id=group_id,
                member_id=request.member_id,
                member_epoch=request.member_epoch,
                rack_id=request.rack_id,
                subscribed_topic_names=None if names is None else tuple(names),
                client_id=ctx.header.client_id or "",
                client_host=client_host(ctx),
                lookup=lookup,
                now_ms=service.clock(),
                session_timeout_ms=settings.session_timeout_ms,
            )
        except ShareGroupError as exc:
            response.update(error_code=exc.code, error_message=exc.message)
            return response
        if result.member_epoch == FINAL_EPOCH:
            service.member_gone(group_id, request.member_id)
        service.reschedule()
        group = service.groups.groups.get(group_id)
        changed = _written_part(group, request.member_id) != before
        if group_log is not None and group is not None and changed:
            # As Kafka, a new epoch, a member's assignment or newly initialized partitions are
            # on the log before the member hears of them.
            code = await group_log.write(group)
            if code is not ErrorCode.none:
                response.update(error_code=code, error_message=None)
                return response
        response.update(
            member_id=result.member_id,
            member_epoch=result.member_epoch,
            heartbeat_interval=settings.heartbeat_interval_ms,
        )
        if result.assignment is not None:
            response["assignment"] = {
                "topic_partitions": [
                    {"topic_id": topic_id, "partitions": sorted(partitions)}
                    for topic_id, partitions in sorted(
                        result.assignment.items(), key=lambda item: str(item[0])
                    )
                ]
            }
        return response

    return handle


def _written_part(group: ShareGroup | None, member_id: str) -> object:
    """What a heartbeat of `member_id` may change of a share group's records (ShareGroupLog):
    the group's epochs and initialized partitions, and that member. Another member's records
    change only with the assignment epoch."""
    if group is None:
        return None
    member = group.members.get(member_id)
    return (
        group.group_epoch,
        group.assignment_epoch,
        {t: frozenset(p) for t, p in group.initialized.items()},
        None if member is None else (
            member.member_epoch, member.rack_id, member.subscribed_topic_names,
            member.client_id, member.client_host, member.assignment,
        ),
    )


def _described(
    broker: Broker, service: ShareService, ctx: RequestContext, group_id: str, with_ops: bool
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "error_code": ErrorCode.none,
        "error_message": None,
        "group_id": group_id,
        "group_state": "",  # an error leaves the schema's defaults, as Kafka does
        "group_epoch": 0,
        "assignment_epoch": 0,
        "assignor_name": "",
        "members": [],
    }
    if not ctx.authorize(Operation.DESCRIBE, ResourceType.GROUP, group_id):
        entry["error_code"] = ErrorCode.group_authorization_failed
        return entry
    code, message = _coordinator_error(broker, group_id)
    try:
        if code is not ErrorCode.none:
            raise ShareGroupError(code, message or "")
        group = service.groups.describe(group_id)
    except ShareGroupError as exc:
        entry.update(error_code=exc.code, error_message=exc.message)
        return entry
    if ctx.acls_apply:
        # As Kafka 4.3: a group holding a topic (subscribed or assigned) the principal may not
        # DESCRIBE is not described at all.
        names = group.topic_names()
        topics = {t for m in group.members.values() for t in m.subscribed_topic_names}
        topics |= {names.get(t, "") for m in group.members.values() for t in m.assignment}
        if not all(ctx.authorize(Operation.DESCRIBE, ResourceType.TOPIC, t) for t in topics):
            entry.update(
                error_code=ErrorCode.topic_authorization_failed,
                error_message="The group has described topic(s) that the client is not "
                "authorized to describe.",
            )
            return entry
    entry.update(
        group_state=group.state,
        group_epoch=group.group_epoch,
        assignment_epoch=group.assignment_epoch,
        assignor_name=ASSIGNOR_NAME,
        members=[
            {
                "member_id": m.member_id,
                "rack_id": m.rack_id,
                "member_epoch": m.member_epoch,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "subscribed_topic_names": list(m.subscribed_topic_names),
                "assignment": _partitions(group, m.assignment),
            }
            for m in group.members.values()
        ],
    )
    if with_ops:
        entry["authorized_operations"] = group_operations(ctx, group_id)
    return entry


def _partitions(group: ShareGroup, assignment: dict[uuid.UUID, frozenset[int]]) -> dict:
    names = group.topic_names()
    return {
        "topic_partitions": [
            {"topic_id": tid, "topic_name": names.get(tid, ""), "partitions": sorted(parts)}
            for tid, parts in sorted(assignment.items(), key=lambda item: str(item[0]))
        ]
    }


def _describe_handler(broker: Broker, service: ShareService):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        with_ops = bool(request.include_authorized_operations)
        return {
            "throttle_time": 0,
            "groups": [_described(broker, service, ctx, g, with_ops) for g in request.group_ids],
        }

    return handle


# -- ShareFetch, ShareAcknowledge --------------------------------------------------------------


class _PartitionResult(Struct):
    topic_id: uuid.UUID
    index: int
    error: ErrorCode = ErrorCode.none
    message: str | None = None
    ack_error: ErrorCode = ErrorCode.none
    ack_message: str | None = None
    partition: Partition | None = None
    records: bytes = b""
    acquired: list[AcquiredRange] = field(default_factory=list)


def _resolve(broker: Broker, ctx: RequestContext, result: _PartitionResult) -> Partition | None:
    """The partition, if this node leads it and the principal may READ its topic."""
    image = broker.topic_by_id(result.topic_id)
    if image is None:
        result.error = ErrorCode.unknown_topic_id
        return None
    if ctx.acls_apply and not ctx.authorize(Operation.READ, ResourceType.TOPIC, image.name):
        result.error = ErrorCode.topic_authorization_failed
        return None
    partition = broker.partition(image.name, result.index)
    if partition is None:
        result.error = broker.absent_partition_error(image.name, result.index)
        return None
    code = partition.leader_error(-1)
    if code is not ErrorCode.none:
        result.error = code
        return None
    result.partition = partition
    return partition


def _acknowledge(
    broker: Broker,
    service: ShareService,
    ctx: RequestContext,
    group_id: str,
    member_id: str,
    result: _PartitionResult,
    batches: Any,
) -> bool:
    """Apply one partition's acknowledgements; whether records became available again."""
    if _resolve(broker, ctx, result) is None:
        result.ack_error = result.error
        return False
    key = (group_id, result.topic_id, result.index)
    state = service.partition(key)
    if state is not None and state.leader_epoch != result.partition.leader_epoch:
        service.drop(key)  # loaded in an earlier leadership: its acquisitions are gone
        state = None
    acks = [AckBatch(b.first_offset, b.last_offset, tuple(b.acknowledge_types)) for b in batches]
    try:
        if state is None:
            raise AckError(ErrorCode.invalid_record_state, "no records acquired here")
        if not service.settings(group_id).renew_acknowledge_enabled and any(
            AckType.RENEW in a.types for a in acks
        ):
            raise AckError(
                ErrorCode.invalid_record_state,
                "Renewing acquisition locks is not enabled for the group.",
            )
        state.acknowledge(member_id, acks, service.clock())
    except AckError as exc:
        result.ack_error, result.ack_message = exc.code, exc.message
        return False
    return any(AckType.RELEASE in a.types for a in acks)


async def _persist_acks(
    service: ShareService, group_id: str, results: list[_PartitionResult]
) -> None:
    """Wait until the acknowledgements applied to `results` are committed; a failed write is
    the partition's acknowledgement error."""
    applied = [r for r in results if r.partition is not None and r.ack_error is ErrorCode.none]
    codes = await asyncio.gather(
        *(service.persist((group_id, r.topic_id, r.index)) for r in applied)
    )
    for result, code in zip(applied, codes, strict=True):
        if code is not ErrorCode.none:
            result.ack_error = code
            result.ack_message = "the acknowledgement could not be persisted"


def _spans(data: bytes) -> list[BatchSpan]:
    spans: list[BatchSpan] = []
    pos, size = 0, len(data)
    while pos + 27 <= size:
        base, length = _BATCH_PREFIX.unpack_from(data, pos)
        attributes = _ATTRIBUTES.unpack_from(data, pos + 21)[0]
        delta = _LAST_OFFSET_DELTA.unpack_from(data, pos + 23)[0]
        spans.append(BatchSpan(base, base + delta, bool(attributes & _CONTROL_FLAG)))
        pos += length + 12
    return spans


def _trim(data: bytes, last_offset: int) -> bytes:
    """The batches of `data` up to the one holding `last_offset`."""
    pos, size = 0, len(data)
    while pos + 12 <= size:
        base, length = _BATCH_PREFIX.unpack_from(data, pos)
        if base > last_offset:
            break
        pos += length + 12
    return data[:pos]


def _acquire(
    service: ShareService,
    group_id: str,
    member_id: str,
    result: _PartitionResult,
    max_records: int,
    max_bytes: int,
) -> None:
    partition = result.partition
    assert partition is not None
    state = service.partition((group_id, result.topic_id, result.index))
    if state is None or state.leader_epoch != partition.leader_epoch:
        return  # dropped after a failed write, or the leadership moved: loaded again later
    state.move_start(partition.log_start_offset)
    read_committed = service.settings(group_id).read_committed
    # read_committed (share.isolation.level): nothing of undecided transactions.
    bound = partition.last_stable_offset if read_committed else partition.high_watermark
    start = state.acquirable_from(bound)
    if start is None:
        return
    data = partition.log.read(start, max(max_bytes, 0), max_offset=bound)
    spans = (
        committed_spans(data, partition.aborted_transactions(start, bound))
        if read_committed
        else _spans(data)
    )
    acquired = state.acquire(member_id, spans, bound, max_records, service.clock())
    if acquired:
        result.acquired = acquired
        result.records = _trim(data, acquired[-1].last_offset)


def _leader(broker: Broker, result: _PartitionResult) -> dict[str, int]:
    partition = result.partition
    if partition is None:
        return {"leader_id": -1, "leader_epoch": -1}
    return {"leader_id": broker.node_id, "leader_epoch": partition.leader_epoch}


def _top_level(lock_ms: int, code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {
        "throttle_time": 0,
        "error_code": code,
        "error_message": message,
        "acquisition_lock_timeout": lock_ms,
        "responses": [],
        "node_endpoints": [],
    }


def _request_error(ctx: RequestContext, request: Any) -> tuple[ErrorCode, str | None]:
    # As Kafka 4.3's KafkaApis: READ on the group first, whatever the ids hold.
    if not may_read_group(ctx, request.group_id):
        return ErrorCode.group_authorization_failed, None
    if not request.group_id:
        return ErrorCode.invalid_request, "GroupId can't be empty."
    if not request.member_id:
        return ErrorCode.invalid_request, "MemberId can't be empty."
    return ErrorCode.none, None


async def _wait(service: ShareService, partitions: list[Partition], timeout: float) -> None:
    """Until a fetched partition's high watermark moves, records are released, or timeout."""
    futures: list[asyncio.Future[bool]] = [p.data_listener() for p in partitions]
    available = service.availability()
    try:
        await asyncio.wait([*futures, available], timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        for partition, future in zip(partitions, futures, strict=True):
            partition.discard_listener(future)
            future.cancel()
        service.discard(available)


def _fetch_handler(broker: Broker, service: ShareService):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        code, message = _request_error(ctx, request)
        if code is not ErrorCode.none:
            return _top_level(service.config.record_lock_duration_ms, code, message)
        group_id, member_id = request.group_id, request.member_id
        # The group's share.record.lock.duration.ms, as Kafka answers it.
        lock_ms = service.settings(group_id).record_lock_duration_ms
        epoch = request.share_session_epoch
        has_acks = any(p.acknowledgement_batches for t in request.topics for p in t.partitions)
        if epoch == INITIAL_EPOCH and has_acks:
            return _top_level(
                lock_ms, ErrorCode.invalid_request, "Acknowledgements in an initial ShareFetch."
            )
        try:
            session = service.sessions.for_fetch(group_id, member_id, epoch)
        except SessionError as exc:
            return _top_level(lock_ms, exc.code, exc.message)
        if epoch == INITIAL_EPOCH:
            # One per member and connection, however often it reopens its session here.
            ctx.connection.on_lost[("share session", group_id, member_id)] = partial(
                service.session_disconnected, session
            )
        results: dict[tuple[uuid.UUID, int], _PartitionResult] = {}
        acked: list[_PartitionResult] = []
        released = False
        for topic in request.topics:
            for part in topic.partitions:
                key = (topic.topic_id, part.partition_index)
                result = results[key] = _PartitionResult(*key)
                if epoch != FINAL_EPOCH:
                    session.partitions[key] = None
                if part.acknowledgement_batches:
                    released |= _acknowledge(
                        broker, service, ctx, group_id, member_id, result,
                        part.acknowledgement_batches,
                    )  # fmt: skip
                    acked.append(result)
        if released:
            service.notify()
        await _persist_acks(service, group_id, acked)
        for forgotten in request.forgotten_topics_data:
            for index in forgotten.partitions:
                session.partitions.pop((forgotten.topic_id, index), None)
        if epoch == FINAL_EPOCH:
            service.sessions.close(group_id, member_id)
            service.release_member(group_id, member_id)
        elif not getattr(request, "is_renew_ack", False):
            await _fetch(ctx, request, session.partitions, results, group_id, member_id)
        service.reschedule()
        return {
            **_top_level(lock_ms, ErrorCode.none, None),
            "responses": _fetch_responses(broker, results),
        }

    async def _fetch(
        ctx: RequestContext,
        request: Any,
        keys: dict[tuple[uuid.UUID, int], None],
        results: dict[tuple[uuid.UUID, int], _PartitionResult],
        group_id: str,
        member_id: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(millis(request.max_wait), 0) / 1000
        fetching: list[_PartitionResult] = []
        for key in keys:
            result = results.get(key)
            if result is None:
                result = _PartitionResult(*key)
            if result.partition is None and result.error is ErrorCode.none:
                _resolve(broker, ctx, result)
            if result.error is not ErrorCode.none:
                results[key] = result  # errors always reach the client
            else:
                fetching.append(result)
        # Each share partition's durable state is loaded before it is fetched; one that
        # cannot be yet (its coordinator loading or moving) is answered empty, after the wait.
        waiting_for = [r.partition for r in fetching if r.partition]
        codes = await asyncio.gather(*(_load(service, group_id, r) for r in fetching))
        fetching = [r for r, code in zip(fetching, codes, strict=True) if code is ErrorCode.none]
        while True:
            records, size = max(request.max_records, 1), request.max_bytes
            for result in fetching:
                if records <= 0 or size <= 0:
                    break
                _acquire(service, group_id, member_id, result, records, size)
                if result.acquired:
                    records -= sum(r.last_offset - r.first_offset + 1 for r in result.acquired)
                    size -= len(result.records)
                    results[(result.topic_id, result.index)] = result
            service.reschedule()
            remaining = deadline - loop.time()
            got = any(r.acquired for r in fetching)
            if got or remaining <= 0 or not waiting_for or ctx.connection.closed:
                return
            await _wait(service, waiting_for, remaining)

    return handle


async def _load(service: ShareService, group_id: str, result: _PartitionResult) -> ErrorCode:
    partition = result.partition
    assert partition is not None
    key: ShareKey = (group_id, result.topic_id, result.index)
    return await service.load(key, partition.leader_epoch, lambda: partition.high_watermark)


def _fetch_responses(
    broker: Broker, results: dict[tuple[uuid.UUID, int], _PartitionResult]
) -> list[dict[str, Any]]:
    topics: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for result in results.values():
        topics.setdefault(result.topic_id, []).append(
            {
                "partition_index": result.index,
                "error_code": result.error,
                "error_message": result.message,
                "acknowledge_error_code": result.ack_error,
                "acknowledge_error_message": result.ack_message,
                "current_leader": _leader(broker, result),
                "records": result.records,
                "acquired_records": [
                    {
                        "first_offset": r.first_offset,
                        "last_offset": r.last_offset,
                        "delivery_count": r.delivery_count,
                    }
                    for r in result.acquired
                ],
            }
        )
    return [{"topic_id": tid, "partitions": parts} for tid, parts in topics.items()]


def _acknowledge_handler(broker: Broker, service: ShareService):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        code, message = _request_error(ctx, request)
        if code is not ErrorCode.none:
            return _top_level(service.config.record_lock_duration_ms, code, message)
        group_id, member_id = request.group_id, request.member_id
        lock_ms = service.settings(group_id).record_lock_duration_ms
        epoch = request.share_session_epoch
        try:
            service.sessions.for_acknowledge(group_id, member_id, epoch)
        except SessionError as exc:
            return _top_level(lock_ms, exc.code, exc.message)
        results: list[_PartitionResult] = []
        released = False
        for topic in request.topics:
            for part in topic.partitions:
                result = _PartitionResult(topic.topic_id, part.partition_index)
                released |= _acknowledge(
                    broker, service, ctx, group_id, member_id, result,
                    part.acknowledgement_batches,
                )  # fmt: skip
                results.append(result)
        if released:
            service.notify()
        await _persist_acks(service, group_id, results)
        topics: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for result in results:
            topics.setdefault(result.topic_id, []).append(
                {
                    "partition_index": result.index,
                    "error_code": result.ack_error,
                    "error_message": result.ack_message,
                    "current_leader": _leader(broker, result),
                }
            )
        if epoch == FINAL_EPOCH:
            service.sessions.close(group_id, member_id)
            service.release_member(group_id, member_id)
        service.reschedule()
        return {
            **_top_level(lock_ms, ErrorCode.none, None),
            "responses": [{"topic_id": t, "partitions": p} for t, p in topics.items()],
        }

    return handle


# -- ReadShareGroupState, WriteShareGroupState (inter-broker) -----------------------------------


def _cluster_action(ctx: RequestContext) -> bool:
    return not ctx.acls_apply or ctx.authorize(
        Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME
    )


def _read_state_handler(coordinator: ShareStateCoordinator):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        allowed = _cluster_action(ctx)
        results = []
        for topic in request.topics:
            partitions = []
            for part in topic.partitions:
                entry: dict[str, Any] = {
                    "partition": part.partition,
                    "error_code": ErrorCode.none,
                    "error_message": None,
                    "state_epoch": 0,
                    "start_offset": NO_STATE,
                    "state_batches": [],
                }
                try:
                    if not allowed:
                        raise ShareStateError(ErrorCode.cluster_authorization_failed)
                    state = await coordinator.read(
                        (request.group_id, topic.topic_id, part.partition), part.leader_epoch
                    )
                except ShareStateError as exc:
                    entry.update(error_code=exc.code, error_message=exc.message)
                    state = None
                if state is not None:
                    entry.update(
                        state_epoch=state.state_epoch,
                        start_offset=state.start_offset,
                        state_batches=[
                            {
                                "first_offset": b.first_offset,
                                "last_offset": b.last_offset,
                                "delivery_state": b.delivery_state,
                                "delivery_count": b.delivery_count,
                            }
                            for b in state.batches()
                        ],
                    )
                partitions.append(entry)
            results.append({"topic_id": topic.topic_id, "partitions": partitions})
        return {"results": results}

    return handle


def _write_state_handler(coordinator: ShareStateCoordinator):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        allowed = _cluster_action(ctx)
        results = []
        for topic in request.topics:
            partitions = []
            for part in topic.partitions:
                changes = {
                    offset: (b.delivery_state, b.delivery_count)
                    for b in part.state_batches
                    for offset in range(b.first_offset, b.last_offset + 1)
                }
                code = (
                    await coordinator.write(
                        (request.group_id, topic.topic_id, part.partition),
                        part.leader_epoch,
                        part.start_offset,
                        changes,
                        state_epoch=part.state_epoch,
                    )
                    if allowed
                    else ErrorCode.cluster_authorization_failed
                )
                partitions.append(
                    {"partition": part.partition, "error_code": code, "error_message": None}
                )
            results.append({"topic_id": topic.topic_id, "partitions": partitions})
        return {"results": results}

    return handle
