"""Produce: append each partition's batch, then answer per acks (0: never, 1: leader fsync,
all: high watermark) or when the request's timeout runs out."""

from __future__ import annotations

import asyncio
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.dispatch import RequestContext
from rafka.broker.handlers.txn import check_transactional_produce
from rafka.broker.partition import AppendError, AppendResult
from rafka.protocol.errors import ErrorCode


def make_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any] | None:
        acks = request.acks
        if acks not in (-1, 0, 1):
            return _all_failed(request, ErrorCode.invalid_required_acks)
        outcomes: list[tuple[str, int, AppendResult | ErrorCode, str | None]] = []
        waits: dict[int, asyncio.Future[None]] = {}
        for topic_data in request.topic_data:
            name = topic_data.name
            for data in topic_data.partition_data:
                partition = broker.partition(name, data.index)
                if partition is None:
                    missing = broker.absent_partition_error(name, data.index)
                    outcomes.append((name, data.index, missing, None))
                    continue
                code, message = await check_transactional_produce(
                    broker, request.transactional_id, partition, data.records, ctx.api_version
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
                    outcomes.append((name, data.index, exc.code, exc.message))
                    continue
                if acks == -1:
                    waits[len(outcomes)] = partition.wait_committed(result.last_offset)
                elif acks == 1:
                    waits[len(outcomes)] = partition.wait_flushed(result.last_offset)
                outcomes.append((name, data.index, result, None))
        if acks == 0:
            for future in waits.values():
                future.cancel()
            return None
        if waits:
            timeout = max(request.timeout.total_seconds(), 0.0)
            await asyncio.wait(waits.values(), timeout=timeout)
        for position, future in waits.items():
            name, index, _, _ = outcomes[position]
            if not future.done():
                future.cancel()
                outcomes[position] = (name, index, ErrorCode.request_timed_out, None)
            elif future.exception() is not None:
                exc = future.exception()
                code = exc.code if isinstance(exc, AppendError) else ErrorCode.unknown_server_error
                outcomes[position] = (name, index, code, str(exc))
        return _response(outcomes)

    return handle


def _response(outcomes: list[tuple[str, int, AppendResult | ErrorCode, str | None]]) -> dict:
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for name, index, outcome, message in outcomes:
        if isinstance(outcome, AppendResult):
            entry = {
                "index": index,
                "error_code": ErrorCode.none,
                "base_offset": outcome.base_offset,
                "log_append_time": None if outcome.log_append_time < 0 else outcome.log_append_time,
                "log_start_offset": outcome.log_start_offset,
                "record_errors": [],
            }
        else:
            entry = {
                "index": index,
                "error_code": outcome,
                "base_offset": -1,
                "log_append_time": None,
                "log_start_offset": -1,
                "record_errors": [],
                "error_message": message,
            }
        by_topic.setdefault(name, []).append(entry)
    return {
        "responses": [{"name": n, "partition_responses": p} for n, p in by_topic.items()],
        "throttle_time": 0,
    }


def _all_failed(request: Any, code: ErrorCode) -> dict:
    return _response(
        [(t.name, p.index, code, None) for t in request.topic_data for p in t.partition_data]
    )
