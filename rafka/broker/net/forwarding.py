"""Forwarding: admin requests that change cluster metadata are served by the controller (the
metadata quorum's leader). Any other broker sends the request on as it came, wrapped in an
Envelope (Kafka's KIP-590) that names the client's principal and address, so that the
controller checks the client's ACLs, not the forwarding node's; it relays the answer after
waiting until its own metadata image shows the change, so that a client reading Metadata from
the same broker right after sees it."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING, Any

import structlog

from rafka.broker.cluster.cluster_metadata import TopicImage
from rafka.broker.cluster.peers import PeerUnavailable, decode_response
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.net.dispatch import RequestContext
    from rafka.broker.node import Node

log = structlog.get_logger(__name__)

ENVELOPE = 58
CREATE_TOPICS = 19
DELETE_TOPICS = 20
CREATE_PARTITIONS = 37
ALTER_PARTITION_REASSIGNMENTS = 45
FORWARD_TIMEOUT_S = 60.0
LEADER_WAIT_S = 5.0
IMAGE_WAIT_S = 10.0


def make_forwarder(broker: Node):
    async def forward(
        api_key: int, version: int, request: Any, frame: bytes, ctx: RequestContext
    ) -> Any | None:
        metadata = broker.metadata
        network = broker.network
        if metadata is None or network is None or broker.is_controller:
            return None
        leader = await _controller(broker)
        if leader is None or leader == broker.node_id:
            return None  # served here: the handlers answer NOT_CONTROLLER where it matters
        envelope = {
            "request_data": frame,
            "request_principal": ctx.connection.principal.encode(),
            "client_host_address": _address_bytes(ctx.connection.peer_host),
        }
        try:
            answer = await network.request(leader, ENVELOPE, 0, envelope, timeout=FORWARD_TIMEOUT_S)
        except PeerUnavailable as exc:
            log.warning("forwarding to the controller failed", api_key=api_key, error=str(exc))
            return None
        if answer.error_code != ErrorCode.none or answer.response_data is None:
            log.warning("the controller refused a forwarded request", api_key=api_key,
                        error=int(answer.error_code))  # fmt: skip
            return None
        response = decode_response(api_key, version, answer.response_data)
        await _until_visible(broker, api_key, request, response)
        return response

    return forward


def _address_bytes(host: str) -> bytes:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).packed
    except ValueError:
        return b""


async def _controller(broker: Node) -> int | None:
    assert broker.metadata is not None
    raft = broker.metadata.partition.raft
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LEADER_WAIT_S
    while raft.leader_id is None and loop.time() < deadline:
        await asyncio.sleep(0.05)  # an election is under way
    return raft.leader_id


async def _until_visible(broker: Node, api_key: int, request: Any, response: Any) -> None:
    metadata = broker.metadata
    assert metadata is not None
    topics = metadata.image.topics
    if api_key == CREATE_TOPICS and not getattr(request, "validate_only", False):
        names = [t.name for t in response.topics if t.error_code == ErrorCode.none]
        await metadata.wait_applied(lambda: all(n in topics for n in names), IMAGE_WAIT_S)
    elif api_key == DELETE_TOPICS:
        names = [r.name for r in response.responses if r.error_code == ErrorCode.none and r.name]
        await metadata.wait_applied(lambda: not any(n in topics for n in names), IMAGE_WAIT_S)
    elif api_key == CREATE_PARTITIONS and not getattr(request, "validate_only", False):
        wanted = {
            r.name: t.count
            for r, t in zip(response.results, request.topics, strict=False)
            if r.error_code == ErrorCode.none
        }
        await metadata.wait_applied(
            lambda: all(n in topics and topics[n].partition_count >= c for n, c in wanted.items()),
            IMAGE_WAIT_S,
        )
    elif api_key == ALTER_PARTITION_REASSIGNMENTS and response.error_code == ErrorCode.none:
        accepted = {
            (t.name, p.partition_index)
            for t in response.responses
            for p in t.partitions
            if p.error_code == ErrorCode.none
        }
        changes = [
            (t.name, p.partition_index, p.replicas)
            for t in request.topics
            for p in t.partitions
            if (t.name, p.partition_index) in accepted
        ]
        await metadata.wait_applied(
            lambda: all(_reassignment_visible(topics.get(n), i, r) for n, i, r in changes),
            IMAGE_WAIT_S,
        )


def _reassignment_visible(topic: TopicImage | None, index: int, target: Any) -> bool:
    """Whether this node's image shows a reassignment (or its cancel) the controller made."""
    if topic is None or index >= topic.partition_count:
        return True  # deleted since: nothing more will show
    known = topic.reassignments.get(index)
    if target is None:
        return known is None or known.cancelled
    if known is not None:
        return set(known.target) == set(target) and not known.cancelled
    return sorted(topic.replicas[index]) == sorted(target)
