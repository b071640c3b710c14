"""Exports what the request path counted (counters.BrokerMetrics): topic traffic, request and
log-flush durations."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from kio.schema.index import api_key_map
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

from rafka.broker.metrics.counters import FOLLOWER_FETCH, BrokerMetrics
from rafka.broker.metrics.scrape import Families, LoopShare, cumulative_buckets


def api_name(api_key: int) -> str:
    """Kafka's name of an API (kio's produce -> Produce, api_versions -> ApiVersions)."""
    if api_key == FOLLOWER_FETCH:
        return "FetchFollower"
    name = api_key_map.get(api_key)
    if name is None:
        return str(api_key)
    return "".join(word.capitalize() for word in name.split("_"))


class HotPathCollector:
    """`topics` names the topics that exist (None before the metadata is loaded): a deleted
    topic's counters are dropped at the next scrape."""

    def __init__(
        self, metrics: BrokerMetrics, topics: Callable[[], Collection[str] | None]
    ) -> None:
        self._metrics = metrics
        self._topics = topics

    async def read(self, share: LoopShare) -> Families:
        metrics = self._metrics
        traffic = metrics.traffic
        existing = self._topics()
        if existing is not None:
            counted = traffic.bytes_in.keys() | traffic.bytes_out.keys()
            if gone := {topic for topic in counted if topic not in existing}:
                traffic.forget(gone)
        messages_in = dict(traffic.messages_in)
        bytes_in = dict(traffic.bytes_in)
        bytes_out = dict(traffic.bytes_out)
        requests = {
            key: (h.bounds, list(h.counts), h.sum) for key, h in metrics.requests.by_api.items()
        }
        flushes = metrics.log_flushes
        flush = (flushes.bounds, list(flushes.counts), flushes.sum)

        def families() -> Iterable[Metric]:
            yield _per_topic(
                "rafka_topic_messages_in",
                "Records appended to the topic's partitions led here (producer retries "
                "acknowledged as duplicates excluded).",
                messages_in,
            )
            yield _per_topic(
                "rafka_topic_bytes_in", "Record batch bytes producers appended.", bytes_in
            )
            yield _per_topic(
                "rafka_topic_bytes_out", "Record batch bytes returned to consumers.", bytes_out
            )
            durations = HistogramMetricFamily(
                "rafka_request_duration_seconds",
                "Time from a request's turn to its encoded response, by Kafka API (long-polling "
                "Fetch included; FetchFollower: the followers' replica fetches).",
                labels=["api"],
            )
            for key, (bounds, counts, total) in sorted(requests.items()):
                buckets = cumulative_buckets(bounds, counts)
                durations.add_metric([api_name(key)], buckets, total)
            yield durations
            bounds, counts, total = flush
            yield HistogramMetricFamily(
                "rafka_log_flush_duration_seconds",
                "Group-commit rounds: one fsync of every partition log written since the "
                "previous round, run in parallel.",
                buckets=cumulative_buckets(bounds, counts),
                sum_value=total,
            )

        return families


def _per_topic(name: str, documentation: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["topic"])
    for topic, value in sorted(counts.items()):
        family.add_metric([topic], value)
    return family
