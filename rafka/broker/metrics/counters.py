"""What the request path records for the metrics endpoint: plain ints and bucket counts.

No prometheus_client here: these objects exist only when metrics are enabled (the broker holds
None otherwise), cost a dict lookup and an addition or two per event, and are read by the
collectors at scrape time on the event loop, so they need no locks.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds in seconds; finer than Prometheus' defaults below 5 ms, where produce requests
# and fsyncs on SSDs spend their time.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

FETCH = 1
# Fetches on controller listeners are the followers' replica fetches (long polls of up to
# replica.fetch.wait.max.ms): kept apart from the consumers', as Kafka's FetchFollower.
FOLLOWER_FETCH = -1


class Histogram:
    """Cumulative only at export: counts[i] is the number of observations in bucket i alone
    (the last one is +Inf)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # bucket "le" = bound >= seconds
        self.sum += seconds


class RequestDurations:
    """One histogram per API key, made at the first request of that API."""

    __slots__ = ("by_api",)

    def __init__(self) -> None:
        self.by_api: dict[int, Histogram] = {}

    def observe(self, api_key: int, seconds: float, control_plane: bool) -> None:
        if control_plane and api_key == FETCH:
            api_key = FOLLOWER_FETCH
        histogram = self.by_api.get(api_key)
        if histogram is None:
            histogram = self.by_api[api_key] = Histogram()
        histogram.observe(seconds)


class TopicTraffic:
    """Per topic: records and bytes appended by producers, bytes returned to consumers."""

    __slots__ = ("messages_in", "bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.messages_in: dict[str, int] = {}
        self.bytes_in: dict[str, int] = {}
        self.bytes_out: dict[str, int] = {}

    def produced(self, topic: str, records: int, size: int) -> None:
        self.messages_in[topic] = self.messages_in.get(topic, 0) + records
        self.bytes_in[topic] = self.bytes_in.get(topic, 0) + size

    def fetched(self, topic: str, size: int) -> None:
        self.bytes_out[topic] = self.bytes_out.get(topic, 0) + size

    def forget(self, topics: set[str]) -> None:
        """Drop deleted topics' series (Kafka removes a deleted topic's metrics too)."""
        for counts in (self.messages_in, self.bytes_in, self.bytes_out):
            for topic in topics & counts.keys():
                del counts[topic]


class BrokerMetrics:
    """Everything the hot path records, handed to the parts that record it."""

    __slots__ = ("traffic", "requests", "log_flushes")

    def __init__(self) -> None:
        self.traffic = TopicTraffic()
        self.requests = RequestDurations()
        self.log_flushes = Histogram()  # one observation per group-commit round
