"""Forwarding: admin requests that change cluster metadata are served by the controller (the
metadata quorum's leader). Any other broker sends the request on as it came and relays the
answer, after waiting until its own metadata image shows the change, so that a client reading
Metadata from the same broker right after sees it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from rafka.broker.cluster.peers import PeerUnavailable
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.node import Node

log = structlog.get_logger(__name__)

CREATE_TOPICS = 19
DELETE_TOPICS = 20
CREATE_PARTITIONS = 37
FORWARD_TIMEOUT_S = 60.0
LEADER_WAIT_S = 5.0
IMAGE_WAIT_S = 10.0


def make_forwarder(broker: Node):
    async def forward(api_key: int, version: int, request: Any) -> Any | None:
        metadata = broker.metadata
        network = broker.network
        if metadata is None or network is None or broker.is_controller:
            return None
        leader = await _controller(broker)
        if leader is None or leader == broker.node_id:
            return None  # served here: the handlers answer NOT_CONTROLLER where it matters
        try:
            response = await network.request(
                leader, api_key, version, request, timeout=FORWARD_TIMEOUT_S
            )
        except PeerUnavailable as exc:
            log.warning("forwarding to the controller failed", api_key=api_key, error=str(exc))
            return None
        await _until_visible(broker, api_key, request, response)
        return response

    return forward


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
