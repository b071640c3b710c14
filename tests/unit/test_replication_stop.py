"""A graceful shutdown ends the replica fetchers even when a cancel is lost, and no loop the
broker cancels at shutdown loses its cancel.

On Python 3.11, asyncio.wait_for returns the result of an awaitable that completed in the same
loop turn as the cancel of the task awaiting it, and the cancel is gone (CPython gh-86296, fixed
in 3.12). A fetcher cancelled by ReplicationManager.stop() just as its fetch response arrived
(peers.py awaits responses with wait_for) went back to waiting for work that never came, and
stop() waited for it forever: one SIGTERM in a few under load never ended
(tests/integration/test_rolling_restart.py). ReassignmentDriver.run() waited for work with
wait_for, and a broker's SIGTERM hung the same way (tests/integration/test_security_cluster.py,
in CI); wait_for is now banned in rafka (pyproject's ruff settings)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from rafka.broker.cluster.reassignment import ReassignmentDriver
from rafka.broker.cluster.replication import ReplicationManager
from rafka.protocol.errors import ErrorCode
from rafka.replication.messages import FetchRequest
from rafka.replication.raft import RaftConfig

LEADER = 3


class SlowNetwork:
    """Answers a fetch when the test says so, awaiting it the way PeerChannel.request does."""

    def __init__(self) -> None:
        self.sent = asyncio.Event()
        self.response: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def request(
        self, node_id: int, api_key: int, version: int, data: Any, **options: Any
    ) -> Any:
        self.sent.set()
        return await asyncio.wait_for(self.response, options["timeout"])

    def close(self) -> None:
        pass


async def test_stop_ends_a_fetcher_whose_cancel_was_lost() -> None:
    network = SlowNetwork()
    broker = SimpleNamespace(cluster_id="cluster", node_id=1)
    manager = ReplicationManager(broker, network, RaftConfig(), lambda *_: None)  # type: ignore[arg-type]
    fetcher = manager._fetcher(LEADER, "fetch")
    request = FetchRequest(
        epoch=1, replica_id=1, fetch_offset=0, last_fetched_epoch=0, max_wait_ms=500, request_id=1
    )
    fetcher.add(("topic", 0), SimpleNamespace(), request)  # type: ignore[arg-type]
    await asyncio.wait_for(network.sent.wait(), 5)

    # The answer arrives, and in the same loop turn stop() cancels the fetcher.
    network.response.set_result(SimpleNamespace(error_code=ErrorCode.none, responses=[]))
    stopping = asyncio.ensure_future(manager.stop())
    done, _ = await asyncio.wait([stopping], timeout=5)
    assert stopping in done, "ReplicationManager.stop() hung on a fetcher that lost its cancel"
    assert fetcher.task.done()


async def test_a_reassignment_driver_woken_as_it_is_cancelled_stops() -> None:
    """The broker's background loops are cancelled at shutdown and gathered: one that lost its
    cancel (woken in the same loop turn) kept the broker from ever exiting."""
    node = SimpleNamespace(partitions={}, topic=lambda _name: None)
    driver = ReassignmentDriver(node, 30_000, lambda _node: True, 2_000)  # type: ignore[arg-type]
    task = asyncio.ensure_future(driver.run())
    for _ in range(3):
        await asyncio.sleep(0)  # now waiting for work
    driver.watch("topic", 0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert task in done, "ReassignmentDriver.run() went on after its cancel"
