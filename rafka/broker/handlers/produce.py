"""Produce: append each partition's batch, then answer per acks (0: never, 1: leader fsync,
all: high watermark) or when the request's timeout runs out.

The produce requests of one connection append in the order they arrived. Requests of a
connection run concurrently (server.py), and a transactional batch may wait for the transaction
coordinator before it is appended (KIP-890 verification, or transaction version 2's implicit
AddPartitionsToTxn); without that order, a pipelined later batch of a partition could overtake
the earlier one (after an epoch bump, the one with sequence 0) and fail with
OUT_OF_ORDER_SEQUENCE_NUMBER. Kafka keeps the order by reading no further request from a
connection until it has answered the one before.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.handlers import lazy
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.net.server import Connection
from rafka.broker.partition.append import AppendError, AppendResult
from rafka.broker.security.acl import Operation, ResourceType
from rafka.protocol.errors import ErrorCode
from rafka.protocol.produce_response import (
    ProducedPartition,
    ProducedTopic,
    encode_produce_response,
)
from rafka.protocol.records import is_transactional_batch

# (topic, partition, the append or why it failed, error message); an AppendError keeps the
# record errors and log start offset of a batch with invalid records (KIP-467).
Outcome = tuple[str, int, AppendResult | AppendError | ErrorCode, str | None]


def make_handler(broker: Broker):
    # One lock per connection, held from a request's first check to its last append (not while
    # it waits for acks). Handlers start in arrival order and reach acquire() without yielding
    # before it, and asyncio.Lock hands itself to its waiters first come first served.
    append_order = weakref.WeakKeyDictionary[Connection, asyncio.Lock]()

    async def handle(ctx: RequestContext, request: Any) -> bytes | None:
        acks = request.acks
        transactional_id = request.transactional_id
        if (
            transactional_id is not None
            and not ctx.authorize(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)
            and _has_transactional_records(request)
        ):
            # As Kafka: the whole request is refused. (Transactional batches without an id are
            # refused per partition with the same error, see handlers/txn.py.)
            code = ErrorCode.transactional_id_authorization_failed
            return None if acks == 0 else _all_failed(ctx.api_version, request, code)
        if acks not in (-1, 0, 1):
            return _all_failed(ctx.api_version, request, ErrorCode.invalid_required_acks)
        lock = append_order.get(ctx.connection)
        if lock is None:
            lock = append_order[ctx.connection] = asyncio.Lock()
        async with lock:
            outcomes, waits = await _append(broker, ctx, request)
        if acks == 0:
            for future in waits.values():
                future.cancel()
            return None
        if waits:
            await _acknowledged(list(waits.values()), max(request.timeout.total_seconds(), 0.0))
        for position, future in waits.items():
            name, index, _, _ = outcomes[position]
            if not future.done() or future.cancelled():  # cancelled: by the timeout
                future.cancel()
                outcomes[position] = (name, index, ErrorCode.request_timed_out, None)
            elif future.exception() is not None:
                exc = future.exception()
                code = exc.code if isinstance(exc, AppendError) else ErrorCode.unknown_server_error
                outcomes[position] = (name, index, code, str(exc))
        return _response(ctx.api_version, outcomes)

    return handle


async def _acknowledged(waits: list[asyncio.Future[None]], timeout: float) -> None:
    """Until every wait is over or the timeout passes. A lone wait (a request for one
    partition, the usual case) is awaited directly, so that its resolution wakes this task in
    one step of the event loop (asyncio.wait's own waiter takes two); the timeout cancels it,
    and its outcome, whatever it is, is read afterwards."""
    if len(waits) > 1:
        await asyncio.wait(waits, timeout=timeout)
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            await waits[0]


async def _append(
    broker: Broker, ctx: RequestContext, request: Any
) -> tuple[list[Outcome], dict[int, asyncio.Future[None]]]:
    """Checks and appends each partition's batch: the outcomes in request order, and for the
    appended ones (by position) what their acks wait for."""
    acks = request.acks
    traffic = broker.metrics.traffic if broker.metrics is not None else None
    outcomes: list[Outcome] = []
    waits: dict[int, asyncio.Future[None]] = {}
    for topic_data in request.topic_data:
        name = topic_data.name
        # WRITE on the topic, once per topic (not per batch); checked before its existence, so
        # an unauthorized principal learns nothing about it.
        if not ctx.authorize(Operation.WRITE, ResourceType.TOPIC, name):
            denied = ErrorCode.topic_authorization_failed
            outcomes.extend((name, data.index, denied, None) for data in topic_data.partition_data)
            continue
        for data in topic_data.partition_data:
            partition = broker.partition(name, data.index)
            if partition is None:
                missing = broker.absent_partition_error(name, data.index)
                outcomes.append((name, data.index, missing, None))
                continue
            code, message = (
                await lazy.txn().check_transactional_produce(
                    broker, request.transactional_id, partition, data.records, ctx.api_version
                )
                if is_transactional_batch(data.records)
                else (ErrorCode.none, None)
            )
            if code is not ErrorCode.none:
                outcomes.append((name, data.index, code, message))
                continue
            config = partition.log.config
            try:
                result = partition.append_records(
                    data.records or b"",
                    max_message_bytes=config.max_message_bytes,
                    log_append_time=config.message_timestamp_type == "LogAppendTime",
                    required_acks=acks,
                )
            except AppendError as exc:
                outcomes.append((name, data.index, exc, exc.message))
                continue
            if traffic is not None and not result.duplicate:
                count = result.last_offset - result.base_offset + 1
                traffic.produced(name, count, len(data.records))
            if acks == -1:
                waits[len(outcomes)] = partition.wait_committed(result.last_offset)
            elif acks == 1:
                waits[len(outcomes)] = partition.wait_flushed(result.last_offset)
            outcomes.append((name, data.index, result, None))
    return outcomes, waits


def _response(version: int, outcomes: list[Outcome]) -> bytes:
    by_topic: dict[str, ProducedTopic] = {}
    for name, index, outcome, message in outcomes:
        if isinstance(outcome, AppendResult):
            entry = ProducedPartition(
                index,
                ErrorCode.none,
                outcome.base_offset,
                outcome.log_append_time,
                outcome.log_start_offset,
            )
        elif isinstance(outcome, AppendError):
            # Produce v8+: clients fail these records with the error, the rest of the batch
            # with their "invalid different record" one.
            entry = ProducedPartition(
                index,
                outcome.code,
                log_start_offset=outcome.log_start_offset,
                record_errors=[(e.batch_index, e.message) for e in outcome.record_errors],
                error_message=message,
            )
        else:
            entry = ProducedPartition(index, outcome, error_message=message)
        topic = by_topic.get(name)
        if topic is None:
            topic = by_topic[name] = ProducedTopic(name)
        topic.partitions.append(entry)
    return encode_produce_response(version, list(by_topic.values()))


def _has_transactional_records(request: Any) -> bool:
    """Whether a partition's (first) batch is transactional, as Kafka's
    RequestUtils.hasTransactionalRecords."""
    return any(
        is_transactional_batch(data.records)
        for topic_data in request.topic_data
        for data in topic_data.partition_data
    )


def _all_failed(version: int, request: Any, code: ErrorCode) -> bytes:
    return _response(
        version,
        [(t.name, p.index, code, None) for t in request.topic_data for p in t.partition_data]
    )
