"""InitProducerId for idempotent producers (transactional ids belong to the txn coordinator)."""

from __future__ import annotations

from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.handlers.txn import init_transactional_producer
from rafka.broker.net.dispatch import RequestContext
from rafka.protocol.errors import ErrorCode


def make_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if request.transactional_id is not None:
            return await init_transactional_producer(broker, ctx, request)
        # Like Kafka, an idempotent producer without a transactional id always gets a fresh id:
        # its sequence numbers start again at 0 under the new id.
        producer_id = await broker.metadata.allocate_producer_id()
        return {
            "throttle_time": 0,
            "error_code": ErrorCode.none,
            "producer_id": producer_id,
            "producer_epoch": 0,
        }

    return handle
