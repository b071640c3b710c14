"""The fetch session cache (KIP-227): Kafka's NumIncrementalFetchSessions,
NumIncrementalFetchPartitionsCached and IncrementalFetchSessionEvictionsPerSec."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from rafka.broker.metrics.scrape import Families, LoopShare

if TYPE_CHECKING:
    from rafka.broker.broker import Broker


class FetchSessionCollector:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def read(self, share: LoopShare) -> Families:
        cache = self._broker.fetch_sessions
        sessions, partitions, evictions = (
            len(cache.sessions), cache.partition_count, cache.evictions)

        def families() -> Iterable[Metric]:
            yield GaugeMetricFamily(
                "rafka_fetch_sessions", "Fetch sessions (KIP-227) the broker holds.",
                value=sessions,
            )
            yield GaugeMetricFamily(
                "rafka_fetch_session_partitions",
                "Partitions held in all fetch sessions.", value=partitions,
            )
            yield CounterMetricFamily(
                "rafka_fetch_session_evictions",
                "Fetch sessions evicted to make room for another.", value=evictions,
            )

        return families
