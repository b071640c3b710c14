"""InitProducerId for idempotent producers (transactional ids belong to the txn coordinator)."""

from __future__ import annotations

from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.handlers import lazy
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.protocol.errors import ErrorCode


def make_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if request.transactional_id is not None:
            if not ctx.authorize(
                Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id
            ):
                return _refused(ErrorCode.transactional_id_authorization_failed)
            return await lazy.txn().init_transactional_producer(broker, ctx, request)
        # As Kafka since KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic (an
        # idempotent producer can do no harm with an id alone).
        if not ctx.authorize(
            Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, CLUSTER_NAME
        ) and not _may_write_some_topic(ctx):
            return _refused(ErrorCode.cluster_authorization_failed)
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


def _may_write_some_topic(ctx: RequestContext) -> bool:
    """Kafka's authorizeByResourceType(WRITE, TOPIC); reached only with an authorizer, as
    ctx.authorize allows everything without one."""
    authorizer = ctx.dispatcher.authorizer if ctx.dispatcher is not None else None
    if authorizer is None or ctx.control_plane:
        return True
    connection = ctx.connection
    return authorizer.authorize_any(
        connection.principal, connection.peer_host, Operation.WRITE, ResourceType.TOPIC
    )


def _refused(code: ErrorCode) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": code, "producer_id": -1, "producer_epoch": -1}
