"""Fetch: read whole batches up to the high watermark; long-poll until `min_bytes` are there.

A waiting fetch sleeps on its partitions' high-watermark events (no polling loop) and on its
`max_wait` deadline, whichever comes first. Byte limits follow KIP-74: the first batch of the
first non-empty partition is returned whole even when larger than the limits, so a consumer can
always make progress.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterator
from typing import Any

from msgspec import Struct

from rafka.broker.broker import Broker
from rafka.broker.fetch_sessions import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    INVALID_SESSION_ID,
    CachedPartition,
    FetchSession,
    next_epoch,
)
from rafka.broker.metrics.counters import TopicTraffic
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.partition.replica import Partition
from rafka.broker.security.acl import Operation, ResourceType
from rafka.protocol.errors import ErrorCode
from rafka.protocol.fetch_response import FetchedPartition, FetchedTopic, encode_fetch_response
from rafka.storage.log import OffsetOutOfRangeError

_HEADER_PREFIX = struct.Struct(">qi")  # baseOffset, batchLength
_LAST_OFFSET_DELTA = struct.Struct(">i")



class _Wanted(Struct):
    """One partition a Fetch request asks for."""

    topic_key: Any  # name (v4-v12) or topic id (v13+)
    name: str | None
    index: int
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int
    partition: Partition | None
    error: ErrorCode


def make_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any] | list:
        replica_id = _replica_id(request)
        if replica_id >= 0:  # a follower broker: the Raft side of Fetch
            if not ctx.serves_node_traffic():
                # A replica's fetch counts toward the high watermark: one forged on a client
                # listener could acknowledge acks=all writes that no follower has.
                ctx.connection.abort(f"replica Fetch (replica {replica_id}) on a client listener")
                return None
            return await broker.replication.handle_replica_fetch(
                replica_id, request, ctx.api_version, ctx.connection
            )
        use_ids = ctx.api_version >= 13
        opened = _open(broker, request, use_ids)
        if isinstance(opened, ErrorCode):
            return {"throttle_time": 0, "error_code": opened, "session_id": INVALID_SESSION_ID,
                    "responses": []}
        session, wanted = opened
        _refuse_unreadable(ctx, wanted)
        deadline = time.monotonic() + max(request.max_wait.total_seconds(), 0.0)
        read_committed = getattr(request, "isolation_level", 0) == 1
        while True:
            responses, total_bytes, errors = _read_all(
                broker, wanted, request.max_bytes, read_committed
            )
            remaining = deadline - time.monotonic()
            if total_bytes >= request.min_bytes or errors or remaining <= 0:
                break
            if not await _wait_for_data(wanted, remaining) or ctx.connection.closed:
                # Timed out: no high watermark moved since the read above, which is the answer
                # (at thousands of idle partitions, a second read is most of a poll's cost).
                break
        if broker.metrics is not None:
            _count_bytes_out(broker.metrics.traffic, wanted, responses)
        fetched = _fetched(wanted, responses, read_committed, session)
        if session is not None:
            session_id = session.id
        elif getattr(request, "session_epoch", FINAL_EPOCH) == INITIAL_EPOCH:
            session_id = broker.fetch_sessions.create(_session_of(fetched), use_ids)
        else:
            session_id = INVALID_SESSION_ID
        return _encode(ctx.api_version, fetched, session_id)

    return handle


def _open(
    broker: Broker, request: Any, use_ids: bool
) -> ErrorCode | tuple[FetchSession | None, list[_Wanted]]:
    """The fetch session a request names (KIP-227), and the partitions it fetches: a full
    fetch (epoch 0 or -1) closes the session it names and fetches what it lists; an incremental
    one (epoch > 0) updates its session and fetches all of the session's partitions."""
    epoch = getattr(request, "session_epoch", FINAL_EPOCH)  # before v7: no sessions
    cache = broker.fetch_sessions
    if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
        named = getattr(request, "session_id", INVALID_SESSION_ID)
        if named != INVALID_SESSION_ID:
            cache.remove(named)
        return None, [
            _resolve(broker, key, index, offset, max_bytes, epoch)
            for (key, index), offset, max_bytes, epoch in _asked(request, use_ids)
        ]
    session = cache.get(request.session_id)
    if session is None:
        return ErrorCode.fetch_session_id_not_found
    if session.epoch != epoch:
        return ErrorCode.invalid_fetch_session_epoch
    if session.uses_topic_ids != use_ids:
        return ErrorCode.fetch_session_topic_id_error
    if not cache.has_room(sum(len(t.partitions) for t in request.topics)):
        cache.remove(session.id)  # the client's full fetch that follows gets no session
        return ErrorCode.invalid_fetch_session_epoch
    session.update(
        _asked(request, use_ids),
        [(_key(t, use_ids), index) for t in request.forgotten_topics_data
         for index in t.partitions],
    )
    if not session.partitions:
        cache.remove(session.id)
        return None, []
    cache.touch(session)
    session.epoch = next_epoch(session.epoch)
    return session, [
        _resolve(broker, key, index, c.fetch_offset, c.max_bytes, c.leader_epoch)
        for (key, index), c in session.partitions.items()
    ]


def _asked(request: Any, use_ids: bool) -> Iterator[tuple[tuple[Any, int], int, int, int]]:
    """Each partition a request names: (topic key, index), fetch offset, max bytes, the
    leader epoch the fetcher knows (-1 before v9)."""
    for t in request.topics:
        key = _key(t, use_ids)
        for p in t.partitions:
            yield ((key, p.partition), p.fetch_offset, p.partition_max_bytes,
                   getattr(p, "current_leader_epoch", -1))


def _key(topic: Any, use_ids: bool) -> Any:
    return topic.topic_id if use_ids else topic.topic


def _session_of(fetched: list[tuple[_Wanted, FetchedPartition]]) -> dict[Any, CachedPartition]:
    """A new session's partitions, as the full fetch that opens it answered them."""
    return {
        (w.topic_key, w.index): CachedPartition(
            w.fetch_offset, w.partition_max_bytes, w.current_leader_epoch,
            -1 if p.error_code else p.high_watermark, p.log_start_offset,
        )
        for w, p in fetched
    }


def _count_bytes_out(
    traffic: TopicTraffic, wanted: list[_Wanted], responses: list[tuple[ErrorCode, bytes]]
) -> None:
    for w, (_, data) in zip(wanted, responses, strict=True):
        if data and w.name is not None:
            traffic.fetched(w.name, len(data))


def _replica_id(request: Any) -> int:
    """The fetching broker's id (v15+ moved it into replica_state); -1 for consumers."""
    state = getattr(request, "replica_state", None)
    if state is not None:
        return int(state.replica_id)
    return int(getattr(request, "replica_id", -1))


def _resolve(
    broker: Broker, key: Any, index: int, fetch_offset: int, max_bytes: int, leader_epoch: int
) -> _Wanted:
    """The partition a fetch names by topic name (v4-v12) or topic id (v13+)."""
    if isinstance(key, str):
        name: str | None = key
        missing = ErrorCode.unknown_topic_or_partition
    else:
        image = broker.topic_by_id(key)
        name = image.name if image else None
        missing = ErrorCode.unknown_topic_id
    partition = broker.partition(name, index) if name is not None else None
    if partition is None and name is not None:
        missing = broker.absent_partition_error(name, index)
    return _Wanted(
        key, name, index, fetch_offset, max_bytes, leader_epoch, partition,
        missing if partition is None else ErrorCode.none,
    )


def _refuse_unreadable(ctx: RequestContext, wanted: list[_Wanted]) -> None:
    """As Kafka: READ on each topic (asked once per topic), checked before the topic's
    existence; an unknown topic id stays UNKNOWN_TOPIC_ID. A refused partition is answered
    as an absent one (no records, no watermarks) with TOPIC_AUTHORIZATION_FAILED."""
    if not ctx.acls_apply:  # the common case: nothing to check on the fetch path
        return
    readable: dict[str, bool] = {}
    for w in wanted:
        name = w.name
        if name is None:
            continue
        allowed = readable.get(name)
        if allowed is None:
            allowed = readable[name] = ctx.authorize(Operation.READ, ResourceType.TOPIC, name)
        if not allowed:
            w.partition, w.error = None, ErrorCode.topic_authorization_failed


def _read_all(
    broker: Broker, wanted: list[_Wanted], max_bytes: int, read_committed: bool = False
) -> tuple[list[tuple[ErrorCode, bytes]], int, bool]:
    out: list[tuple[ErrorCode, bytes]] = []
    total = 0
    errors = False
    for w in wanted:
        partition = w.partition
        if w.error is not ErrorCode.none or partition is None:
            out.append((w.error, b""))
            errors = True
            continue
        code = partition.leader_error(w.current_leader_epoch)
        if code is not ErrorCode.none:
            out.append((code, b""))
            errors = True
            continue
        budget = min(w.partition_max_bytes, max_bytes - total)
        if budget <= 0 and total > 0:
            out.append((ErrorCode.none, b""))
            continue
        try:
            data = partition.log.read(
                w.fetch_offset,
                max(budget, 0),
                # read_committed consumers see nothing of undecided transactions.
                max_offset=(
                    partition.last_stable_offset if read_committed else partition.high_watermark
                ),
                min_one_batch=total == 0,
            )
        except OffsetOutOfRangeError:
            out.append((ErrorCode.offset_out_of_range, b""))
            errors = True
            continue
        total += len(data)
        out.append((ErrorCode.none, data))
    return out, total, errors


async def _wait_for_data(wanted: list[_Wanted], timeout: float) -> bool:
    """Sleep until a partition's high watermark moves or the timeout passes; True if woken."""
    partitions = [w.partition for w in wanted if w.partition]
    if not partitions:
        await asyncio.sleep(timeout)
        return False
    # One future for all the partitions, awaited directly: an advance wakes this task in one
    # step of the event loop (asyncio.wait takes two, through its own waiter); the timer
    # resolves it too (False), which costs less than asyncio.timeout's cancellation.
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[bool] = loop.create_future()
    for partition in partitions:
        partition.data_listener(woken)
    timer = loop.call_later(timeout, _expire, woken)
    try:
        return await woken
    finally:
        timer.cancel()
        for partition in partitions:
            partition.discard_listener(woken)


def _expire(woken: asyncio.Future[bool]) -> None:
    if not woken.done():
        woken.set_result(False)


def _fetched(
    wanted: list[_Wanted],
    results: list[tuple[ErrorCode, bytes]],
    read_committed: bool,
    session: FetchSession | None = None,
) -> list[tuple[_Wanted, FetchedPartition]]:
    """The partitions answered. In an incremental fetch only those with news: records, an
    error, or watermarks the fetcher has not been told; those with records then go to the end
    of the session's order."""
    out = []
    served = []
    for w, (code, data) in zip(wanted, results, strict=True):
        p = w.partition
        # As Kafka: watermarks only with data; an absent partition's aborted list is empty
        # (the schema default), any other error's is null.
        ok = p is not None and code is ErrorCode.none
        high_watermark = p.high_watermark if ok else -1
        log_start = p.log_start_offset if ok else -1
        if session is not None:
            key = (w.topic_key, w.index)
            cached = session.partitions.get(key)
            if cached is None:  # forgotten by a later request while this one waited
                continue
            if not cached.must_answer(code, len(data), high_watermark, log_start):
                continue
            if data:
                served.append(key)
        out.append((w, FetchedPartition(
            partition_index=w.index,
            error_code=code,
            high_watermark=high_watermark,
            last_stable_offset=p.last_stable_offset if ok else -1,
            log_start_offset=log_start,
            records=data,
            aborted_transactions=(
                _aborted(p, w.fetch_offset, data)
                if read_committed and ok
                else []
                if p is None
                else None
            ),
        )))
    if session is not None:
        session.move_to_end(served)
    return out


def _encode(
    version: int, fetched: list[tuple[_Wanted, FetchedPartition]], session_id: int
) -> list[bytes | memoryview]:
    # As Kafka: one topic entry per run of the same topic's partitions, in the order they are
    # answered (a session's order can interleave topics).
    topics: list[FetchedTopic] = []
    key: Any = None
    for w, partition in fetched:
        if not topics or w.topic_key != key:
            key = w.topic_key
            topics.append(FetchedTopic(
                name=w.name if version < 13 else None,
                topic_id=key if version >= 13 else None,
            ))
        topics[-1].partitions.append(partition)
    return encode_fetch_response(version, topics, session_id=session_id)


def _aborted(partition: Partition, fetch_offset: int, data: bytes) -> list[tuple[int, int]]:
    """The aborted transactions a read_committed consumer needs to filter `data`."""
    if not data:
        return []
    upper_bound = partition.last_stable_offset
    found = partition.aborted_transactions(fetch_offset, upper_bound)
    if len(found) > 1:
        # Bound the list by what was actually returned, not by the last stable offset.
        end = _end_offset(data)
        found = [(pid, first) for pid, first in found if first < end]
    return found


def _end_offset(data: bytes | memoryview) -> int:
    """One past the last offset of the (whole) batches in `data`."""
    end = pos = 0
    size = len(data)
    while pos + _HEADER_PREFIX.size <= size:
        base, length = _HEADER_PREFIX.unpack_from(data, pos)
        delta = _LAST_OFFSET_DELTA.unpack_from(data, pos + 23)[0]
        end = base + delta + 1
        pos += length + 12
    return end
