"""What `rafka bench` measures with and reports: results and percentiles, CPU clocks, throttling,
progress, and the librdkafka client (confluent-kafka, imported lazily) it drives."""

from __future__ import annotations

import logging
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

EXIT_FAILURE = 1
MB = 1024 * 1024  # Kafka's perf tools divide by 2**20 and call it MB
METADATA_TIMEOUT_S = 10.0
E2E_HEADER_BYTES = 16  # sequence number and send time, big-endian, at the start of each value
WARMUP_SEQ = (1 << 63) - 1  # marks records sent before the consumer is known to be fetching


class BenchError(Exception):
    """A failure worth one line to the user."""


# -- results -------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    """One run's figures; `to_json` is what `--json` prints and the peer benchmark reads."""

    workload: str
    records: int
    bytes: int
    elapsed_s: float
    client_cpu_s: float
    errors: int = 0
    first_error: str | None = None
    latency_ms: dict[str, float] | None = None
    started_at: float = 0.0  # wall clock (epoch s) when the measured interval began
    extra: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_sec(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_sec(self) -> float:
        return self.bytes / MB / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def client_cpu_pct(self) -> float:
        """CPU time of this process over wall time: 100 means one core kept busy."""
        return 100.0 * self.client_cpu_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "records_per_sec": self.records_per_sec,
            "mb_per_sec": self.mb_per_sec,
            "client_cpu_pct": self.client_cpu_pct,
        }

    def result_line(self) -> str:
        verb = {"produce": "sent", "e2e": "sent and received"}.get(self.workload, "received")
        line = (
            f"{self.records} records {verb}, {self.records_per_sec:.1f} records/sec "
            f"({self.mb_per_sec:.2f} MB/sec)"
        )
        if self.latency_ms:
            lat = self.latency_ms
            line += (
                f", latency ms p50 {lat['p50']:.2f}, p99 {lat['p99']:.2f}, "
                f"p99.9 {lat['p99.9']:.2f}, max {lat['max']:.2f}"
            )
        return f"{line}, client CPU {self.client_cpu_pct:.0f}% of one core."

    def table_rows(self) -> list[tuple[str, str]]:
        rows = [
            ("records", f"{self.records:,}"),
            ("bytes", f"{self.bytes:,}"),
            ("elapsed", f"{self.elapsed_s:.3f} s"),
            ("records/sec", f"{self.records_per_sec:,.1f}"),
            ("MB/sec", f"{self.mb_per_sec:,.2f}"),
        ]
        for name, value in (self.latency_ms or {}).items():
            rows.append((f"latency {name}", f"{value:.3f} ms"))
        rows += [(name.replace("_", " "), _format(value)) for name, value in self.extra.items()]
        rows += [
            ("client CPU", f"{self.client_cpu_s:.2f} s ({self.client_cpu_pct:.0f}% of one core)"),
            ("errors", str(self.errors)),
        ]
        if self.first_error:
            rows.append(("first error", self.first_error))
        return rows


def _format(value: Any) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p99/p99.9 by nearest rank (as Kafka's tools), plus min, mean and max."""
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(n - 1, max(0, int(q * n + 0.999999999) - 1))]

    return {
        "min": ordered[0],
        "mean": sum(ordered) / n,
        "p50": rank(0.50),
        "p99": rank(0.99),
        "p99.9": rank(0.999),
        "max": ordered[-1],
    }


# -- measuring helpers ---------------------------------------------------------------------------


class CpuClock:
    """CPU time (user + system) of this whole process, librdkafka's threads included."""

    def __init__(self) -> None:
        self.start = self.now()

    @staticmethod
    def now() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def elapsed(self) -> float:
        return self.now() - self.start


class Throttle:
    """Paces a loop to `per_second` operations (like Kafka's ThroughputThrottler); <= 0: no limit.

    Sleeping for each operation would cost more than it paces at high rates, so it checks only
    every `check_every` operations and sleeps off whatever lead it has built up.
    """

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_second = per_second
        self.clock = clock
        self.sleep = sleep
        self.start = clock()
        self.check_every = max(1, int(per_second // 1000)) if per_second > 0 else 0

    def wait(self, done: int) -> None:
        """Called after `done` operations; returns when the next one is due."""
        if self.per_second <= 0 or done % self.check_every:
            return
        ahead = done / self.per_second - (self.clock() - self.start)
        if ahead > 0:
            self.sleep(ahead)


class Progress:
    """A one-line progress bar on stderr, redrawn at most five times a second."""

    WIDTH = 30

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label = label
        self.total = max(total, 1)
        self.enabled = enabled
        self.start = time.perf_counter()
        self.next_draw = 0.0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now < self.next_draw and done < self.total:
            return
        self.next_draw = now + 0.2
        filled = min(self.WIDTH, self.WIDTH * done // self.total)
        rate = done / (now - self.start) if now > self.start else 0.0
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        sys.stderr.write(
            f"\r{self.label} [{bar}] {100 * done // self.total:3d}% {done:,} records {rate:,.0f}/s "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


# -- librdkafka ----------------------------------------------------------------------------------


def load_confluent_kafka() -> ModuleType:
    try:
        import confluent_kafka
    except ImportError as exc:
        raise BenchError(
            "rafka bench needs the confluent-kafka package (librdkafka): "
            "pip install confluent-kafka"
        ) from exc
    return confluent_kafka


def parse_props(props: Sequence[str]) -> dict[str, str]:
    """`key=value` pairs (librdkafka configuration properties)."""
    parsed = {}
    for prop in props:
        key, sep, value = prop.partition("=")
        if not sep or not key.strip():
            raise BenchError(f"expected KEY=VALUE, got {prop!r}")
        parsed[key.strip()] = value.strip()
    return parsed


class ClientErrors:
    """Collects librdkafka's errors and log lines instead of letting them flood stderr."""

    def __init__(self, ck: ModuleType) -> None:
        self.ck = ck
        self.fatal: str | None = None
        self.all_brokers_down = False
        self.delivery_errors = 0
        self.first_delivery_error: str | None = None
        self.logger = logging.getLogger("rafka.bench.librdkafka")
        self.logger.propagate = False
        if not self.logger.handlers:
            self.logger.addHandler(logging.NullHandler())

    def on_error(self, error: Any) -> None:
        if error.fatal():
            self.fatal = error.str()
        elif error.code() == self.ck.KafkaError._ALL_BROKERS_DOWN:
            self.all_brokers_down = True

    def on_delivery(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.delivery_errors += 1
            if self.first_delivery_error is None:
                self.first_delivery_error = error.str()

    def client_config(self) -> dict[str, Any]:
        return {"error_cb": self.on_error, "logger": self.logger}

    def check(self) -> None:
        if self.fatal:
            raise BenchError(f"client error: {self.fatal}")
        if self.all_brokers_down:
            raise BenchError("lost the connection to every broker")


def wait_for_metadata(client: Any, bootstrap: str, topic: str | None = None) -> Any:
    try:
        return client.list_topics(topic, timeout=METADATA_TIMEOUT_S)
    except Exception as exc:  # KafkaException: unreachable or not a Kafka broker
        raise BenchError(
            f"no metadata from {bootstrap} within {METADATA_TIMEOUT_S:.0f} s: {exc}"
        ) from exc


def ensure_topic(
    ck: ModuleType,
    bootstrap: str,
    topic: str,
    partitions: int,
    replication_factor: int,
    errors: ClientErrors,
) -> int:
    """Create the topic if it is missing; its partition count."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **errors.client_config()})
    existing = wait_for_metadata(admin, bootstrap).topics
    if topic not in existing or existing[topic].error is not None:
        future = admin.create_topics(
            [NewTopic(topic, partitions, replication_factor)], operation_timeout=30
        )[topic]
        try:
            future.result(timeout=60)
        except ck.KafkaException as exc:
            if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                raise BenchError(f"cannot create topic {topic!r}: {exc.args[0].str()}") from exc
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    while True:  # a new topic's leaders take a moment to show up in metadata
        meta = wait_for_metadata(admin, bootstrap, topic).topics.get(topic)
        if (
            meta is not None
            and meta.error is None
            and meta.partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return len(meta.partitions)
        if time.monotonic() > deadline:
            raise BenchError(f"topic {topic!r} has no leader for every partition")
        time.sleep(0.05)


def producer_config(
    bootstrap: str, acks: str, compression: str, idempotence: bool, props: dict[str, str]
) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "acks": acks,
        "compression.type": compression,
        "enable.idempotence": idempotence,
        **props,
    }


def random_payload(size: int, seed: int = 0) -> bytes:
    """Random upper-case letters, as in Kafka's producer perf tool: compressible, not trivially."""
    rng = random.Random(seed)
    return bytes(rng.randrange(65, 91) for _ in range(size))
