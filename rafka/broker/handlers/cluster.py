"""Requests between the nodes of a cluster: Raft (Vote, BeginQuorumEpoch, EndQuorumEpoch; the
replica side of Fetch is in handlers/fetch.py) and the controller's BrokerRegistration,
AlterPartition and AllocateProducerIds; and the admin's UnregisterBroker."""

from __future__ import annotations

from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.cluster import controller
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.protocol.errors import ErrorCode


def make_quorum_handler(broker: Broker, api_key: int):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not ctx.serves_node_traffic():
            return {"error_code": ErrorCode.cluster_authorization_failed, "topics": []}
        cluster_id = getattr(request, "cluster_id", None)
        if cluster_id not in (None, broker.cluster_id):
            return {"error_code": ErrorCode.inconsistent_cluster_id, "topics": []}
        return await broker.replication.handle_quorum_request(api_key, request)

    return handle


def make_broker_registration_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if request.cluster_id != broker.cluster_id:
            return {"throttle_time": 0, "error_code": ErrorCode.inconsistent_cluster_id}
        return await controller.register_broker(broker, request)

    return handle


def make_broker_heartbeat_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        return await controller.broker_heartbeat(broker, request)

    return handle


def make_alter_partition_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        return await controller.alter_partition(broker, request)

    return handle


def make_allocate_producer_ids_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        return await controller.allocate_producer_ids(broker, request)

    return handle


def make_unregister_broker_handler(broker: Broker):
    """UnregisterBroker (64): an admin request, forwarded to the controller; ALTER on the
    cluster, as Kafka checks."""

    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not ctx.authorize(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
            return {
                "throttle_time": 0,
                "error_code": ErrorCode.cluster_authorization_failed,
                "error_message": None,
            }
        return await controller.unregister_broker(broker, request.broker_id)

    return handle
