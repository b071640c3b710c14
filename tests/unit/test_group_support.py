"""Helpers for the group coordinator tests: a Broker on a temporary directory, and the group
requests called on its coordinator the way the request handlers call them."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.config import BrokerConfig
from rafka.broker.coordinator.groups.group import GroupState
from rafka.broker.coordinator.groups.membership import JoinRequest
from rafka.broker.node import BrokerEndpoint
from rafka.protocol.errors import ErrorCode

NONE = ErrorCode.none
TOPIC = "orders"


def subscription(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0: version, [topic], null user data."""
    out = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        out += struct.pack(">h", len(topic)) + topic.encode()
    return out + struct.pack(">i", -1)


SUB = subscription(TOPIC)


def config(path: Path, **overrides: Any) -> BrokerConfig:
    values = {
        "log.dirs": str(path),
        "group.min.session.timeout.ms": 10,
        "group.initial.rebalance.delay.ms": 0,
        **overrides,
    }
    return BrokerConfig.from_dict(values)


async def start_broker(path: Path, **overrides: Any) -> Broker:
    broker = Broker(config(path, **overrides))
    await broker.start()
    await broker.join(BrokerEndpoint(broker.node_id, "localhost", 9092))
    await broker.groups.ensure_offsets_topic()
    await broker.groups.wait_loaded()
    return broker


def join_request(
    group: str = "g",
    member_id: str = "",
    instance: str | None = None,
    protocols: tuple[tuple[str, bytes], ...] = (("range", SUB),),
    session: int = 30000,
    rebalance: int = 30000,
    version: int = 9,
    client_id: str = "client",
) -> JoinRequest:
    return JoinRequest(
        group_id=group,
        member_id=member_id,
        group_instance_id=instance,
        client_id=client_id,
        client_host="/127.0.0.1",
        session_timeout_ms=session,
        rebalance_timeout_ms=rebalance,
        protocol_type="consumer",
        protocols=list(protocols),
        require_known_member_id=version >= 4,
        supports_skip_assignment=version >= 9,
    )


async def join(broker: Broker, **kw: Any) -> dict[str, Any]:
    return await asyncio.wait_for(broker.groups.membership.join_group(join_request(**kw)), 10)


def join_task(broker: Broker, **kw: Any) -> asyncio.Task[dict[str, Any]]:
    return asyncio.ensure_future(broker.groups.membership.join_group(join_request(**kw)))


async def join_new(broker: Broker, **kw: Any) -> dict[str, Any]:
    """JoinGroup v4+ as clients do it: learn the member id, then join with it."""
    first = await join(broker, **kw)
    assert first["error_code"] == ErrorCode.member_id_required
    return await join(broker, member_id=first["member_id"], **kw)


async def sync(
    broker: Broker,
    result: dict[str, Any],
    group: str = "g",
    assignments: dict[str, bytes] | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    return await asyncio.wait_for(
        broker.groups.membership.sync_group(
            group,
            result["generation_id"],
            result["member_id"],
            instance,
            "consumer",
            result["protocol_name"],
            assignments or {},
        ),
        10,
    )


def heartbeat(broker: Broker, result: dict[str, Any], group: str = "g", **kw: Any) -> ErrorCode:
    return broker.groups.membership.heartbeat(
        group,
        kw.get("generation", result["generation_id"]),
        kw.get("member_id", result["member_id"]),
        kw.get("instance"),
    )


def group_of(broker: Broker, group_id: str = "g"):
    return broker.groups.shard_for(group_id).groups.get(group_id)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """For outcomes of the coordinator's own timers, which no request awaits."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def stable_group(broker: Broker, count: int, group: str = "g", **kw: Any) -> list[dict]:
    """`count` members joined and synced into one generation; the leader assigns partitions."""
    first = await join_new(broker, group=group, **kw)
    results = [first]
    for _ in range(count - 1):
        pending = join_task(broker, group=group, **kw)
        member_id = (await pending)["member_id"]
        tasks = [join_task(broker, group=group, member_id=member_id, **kw)]
        tasks += [join_task(broker, group=group, member_id=r["member_id"], **kw) for r in results]
        results = list(await asyncio.wait_for(asyncio.gather(*tasks), 10))
    leader = next(r for r in results if r["leader"] == r["member_id"])
    assignments = {r["member_id"]: f"assignment-{r['member_id']}".encode() for r in results}
    syncs = [
        asyncio.ensure_future(sync(broker, r, group, assignments if r is leader else None))
        for r in results
    ]
    for s in await asyncio.gather(*syncs):
        assert s["error_code"] == NONE
    assert group_of(broker, group).state is GroupState.STABLE
    return results
