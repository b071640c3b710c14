"""The /metrics endpoint (rafka.metrics.host:rafka.metrics.port): the collectors over a broker,
served on its event loop, rendered in a thread of its own.

Imported only when metrics are enabled: this is where prometheus_client comes in.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import structlog
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)

from rafka.broker.metrics.fetch_sessions import FetchSessionCollector
from rafka.broker.metrics.group_lag import GroupLagCollector
from rafka.broker.metrics.hot_path import HotPathCollector
from rafka.broker.metrics.http_server import HttpServer, Response
from rafka.broker.metrics.partition_state import PartitionStateCollector
from rafka.broker.metrics.scrape import LoopShare, Scrape, StateCollector

if TYPE_CHECKING:
    from rafka.broker.broker import Broker

log = structlog.get_logger(__name__)

METRICS_PATH = "/metrics"
# The text format every Prometheus reads (prometheus_client >= 0.22 calls its output 1.0.0, the
# same bytes for names like ours).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsEndpoint:
    def __init__(self, broker: Broker) -> None:
        assert broker.metrics is not None, "the broker counts only with metrics enabled"
        self._collectors: list[StateCollector] = [
            HotPathCollector(broker.metrics, lambda: _topic_names(broker)),
            PartitionStateCollector(broker),
            GroupLagCollector(broker),
            FetchSessionCollector(broker),
        ]
        # Process and interpreter metrics read /proc and the gc module only: safe off the loop.
        self._process = CollectorRegistry()
        for make in (ProcessCollector, PlatformCollector, GCCollector):
            make(registry=self._process)
        # One thread: scrapes render one at a time, never in the fsync pool.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rafka-metrics")
        self._server = HttpServer({METRICS_PATH: self._scrape})
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        try:
            self.port = await self._server.start(host, port)
        except OSError as exc:
            # One line for the operator (run() logs it and exits 1), not a traceback.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(
                f"rafka.metrics.port: cannot serve metrics on {host}:{port}: {reason}"
            ) from None
        log.info("metrics endpoint listening", url=f"http://{host}:{self.port}{METRICS_PATH}")

    async def close(self) -> None:
        await self._server.close()
        self._pool.shutdown(wait=True)

    async def _scrape(self, headers: dict[str, str]) -> Response:
        share = LoopShare()
        copies = [await collector.read(share) for collector in self._collectors]
        scrape = Scrape(copies, [self._process], share.finish())
        compress = "gzip" in headers.get("accept-encoding", "")
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(self._pool, scrape.render, compress)
        response_headers = {"Content-Type": CONTENT_TYPE}
        if compress:
            response_headers["Content-Encoding"] = "gzip"
        return Response(200, body, response_headers)


def _topic_names(broker: Broker) -> Collection[str] | None:
    return None if broker.metadata is None else broker.metadata.image.topics.keys()


async def start_metrics_endpoint(broker: Broker, host: str, port: int) -> MetricsEndpoint:
    endpoint = MetricsEndpoint(broker)
    await endpoint.start(host, port)
    return endpoint
