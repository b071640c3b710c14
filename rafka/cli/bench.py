"""`rafka bench`: produce, consume and end-to-end latency benchmarks against any Kafka cluster.

The flags follow Kafka's perf tools (kafka-producer-perf-test, kafka-consumer-perf-test,
EndToEndLatency) and so does the result line, where MB means 2**20 bytes as in Kafka's tools. The
load comes from librdkafka through confluent-kafka, so the client is rarely the bottleneck; the
CPU time this process used is reported beside every result so a reader can tell when it was.

confluent-kafka is imported lazily: it is a test dependency of rafka, not a runtime one, and
`rafka broker` shares this module's imports.
"""

from __future__ import annotations

import json
import logging
import random
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Annotated, Any, NoReturn

import typer

EXIT_FAILURE = 1
MB = 1024 * 1024  # Kafka's perf tools divide by 2**20 and call it MB
METADATA_TIMEOUT_S = 10.0
E2E_HEADER_BYTES = 16  # sequence number and send time, big-endian, at the start of each value
WARMUP_SEQ = (1 << 63) - 1  # marks records sent before the consumer is known to be fetching

app = typer.Typer(
    name="bench",
    help="Benchmark a Kafka-compatible cluster: produce, consume, end-to-end latency.",
    no_args_is_help=True,
    add_completion=False,
)


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
            f"\r{self.label} [{bar}] {100 * done // self.total:3d}% {done:,} records "
            f"{rate:,.0f}/s "
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
    ck: ModuleType, bootstrap: str, topic: str, partitions: int, replication_factor: int,
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
        if meta is not None and meta.error is None and meta.partitions and all(
            p.leader >= 0 for p in meta.partitions.values()
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


# -- produce -------------------------------------------------------------------------------------


def run_produce(
    ck: ModuleType,
    config: dict[str, Any],
    topic: str,
    num_records: int,
    record_size: int,
    throughput: float,
    progress: Progress,
) -> BenchResult:
    """Send `num_records` records of `record_size` bytes as fast as allowed; wait for every ack."""
    errors = ClientErrors(ck)
    producer = ck.Producer(
        {**config, "delivery.report.only.error": True, **errors.client_config()}
    )
    wait_for_metadata(producer, config["bootstrap.servers"], topic)
    value = random_payload(record_size)
    produce, poll = producer.produce, producer.poll
    on_delivery = errors.on_delivery
    throttle = Throttle(throughput)
    cpu = CpuClock()
    started_at, start = time.time(), time.perf_counter()
    for sent in range(num_records):
        while True:
            try:
                produce(topic, value, on_delivery=on_delivery)
                break
            except BufferError:  # librdkafka's queue is full: let it drain
                poll(0.001)
                errors.check()
        if not sent & 1023:
            poll(0)
            errors.check()
            progress.update(sent)
        throttle.wait(sent + 1)
    while producer.flush(1.0):
        errors.check()
    elapsed = time.perf_counter() - start
    progress.update(num_records)
    delivered = num_records - errors.delivery_errors
    return BenchResult(
        workload="produce",
        records=delivered,
        bytes=delivered * record_size,
        elapsed_s=elapsed,
        client_cpu_s=cpu.elapsed(),
        started_at=started_at,
        errors=errors.delivery_errors,
        first_error=errors.first_delivery_error,
    )


# -- consume -------------------------------------------------------------------------------------


def consumer_config(bootstrap: str, group: str | None, props: dict[str, str]) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        # librdkafka wants a group id even for assign(); a unique one leaves no trace to clean up
        "group.id": group or f"rafka-bench-{uuid.uuid4().hex[:12]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": group is not None,
        **props,
    }


class Moment:
    """A point in time on three clocks: interval timing, the wall, and this process's CPU."""

    def __init__(self) -> None:
        self.perf = time.perf_counter()
        self.wall = time.time()
        self.cpu = CpuClock.now()


def run_consume(
    ck: ModuleType,
    config: dict[str, Any],
    topic: str,
    num_records: int,
    use_group: bool,
    timeout_s: float,
    progress: Progress,
) -> BenchResult:
    """Read `num_records` records from the start of the topic, by assignment or as a group member.

    Throughput runs from the poll that returned the first record to the last record, like
    kafka-consumer-perf-test's fetch figures: librdkafka idles about fetch.wait.max.ms after an
    assignment before its first fetch, whatever the broker. That wait, and a group's join, are
    reported apart (time to first record, join).
    """
    errors = ClientErrors(ck)
    consumer = ck.Consumer({**config, **errors.client_config()})
    opened = Moment()
    assigned: list[Moment] = []
    try:
        meta = wait_for_metadata(consumer, config["bootstrap.servers"], topic).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise BenchError(f"topic {topic!r} not found")
        if use_group:
            def on_assign(_consumer: Any, _partitions: list[Any]) -> None:
                if not assigned:
                    assigned.append(Moment())

            consumer.subscribe([topic], on_assign=on_assign)
        else:
            consumer.assign(
                [ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in meta.partitions]
            )
        received, received_bytes, first, last = _consume_loop(
            consumer, errors, num_records, timeout_s, progress
        )
        cpu_end = CpuClock.now()
    finally:
        consumer.close()
    extra = {"time_to_first_record_ms": (first.perf - opened.perf) * 1e3}
    if assigned:
        extra["join_ms"] = (assigned[0].perf - opened.perf) * 1e3
    return BenchResult(
        workload="group-consume" if use_group else "consume",
        records=received,
        bytes=received_bytes,
        elapsed_s=last - first.perf,
        client_cpu_s=cpu_end - first.cpu,
        started_at=first.wall,
        extra=extra,
    )


POLL_S = 0.01  # short polls: the first record is seen within this of its arrival


def _consume_loop(
    consumer: Any, errors: ClientErrors, num_records: int, timeout_s: float, progress: Progress
) -> tuple[int, int, Moment, float]:
    """Records and bytes received; when the poll that returned the first record began, and when
    the last record arrived."""
    first: Moment | None = None
    last = 0.0
    received = received_bytes = 0
    last_error: str | None = None
    idle_since = time.perf_counter()
    while received < num_records:
        polled = Moment() if first is None else None
        batch = consumer.consume(min(10_000, num_records - received), POLL_S)
        now = time.perf_counter()
        if not batch:
            errors.check()
            if now - idle_since > timeout_s:
                raise BenchError(
                    f"only {received} of {num_records} records arrived; none for {timeout_s:.0f} s"
                    + (f" (last error: {last_error})" if last_error else "")
                )
            continue
        idle_since = now
        failed = [m for m in batch if m.error() is not None]
        for m in failed:
            last_error = m.error().str()
            if m.error().fatal():
                raise BenchError(f"consumer error: {last_error}")
        if first is None and len(failed) < len(batch):
            first = polled
        received += len(batch) - len(failed)
        received_bytes += sum(map(len, batch)) - sum(map(len, failed))
        last = now
        progress.update(received)
    assert first is not None
    return received, received_bytes, first, last


# -- end-to-end latency --------------------------------------------------------------------------


class LatencyConsumer(threading.Thread):
    """Reads the timed records and notes each one's latency (receive time minus send time)."""

    def __init__(self, consumer: Any, expected: int) -> None:
        super().__init__(daemon=True, name="rafka-bench-e2e-consumer")
        self.consumer = consumer
        self.expected = expected
        self.latencies_ms: list[float] = []
        self.fetching = threading.Event()  # a warm-up record came back: the consumer is live
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        while not self.stop.is_set() and len(self.latencies_ms) < self.expected:
            message = self.consumer.poll(0.1)
            now_ns = time.perf_counter_ns()
            if message is None:
                continue
            if message.error() is not None:
                self.error = message.error().str()
                continue
            value = message.value()
            seq = int.from_bytes(value[:8], "big")
            if seq == WARMUP_SEQ:
                self.fetching.set()
                continue
            sent_ns = int.from_bytes(value[8:16], "big")
            self.latencies_ms.append((now_ns - sent_ns) / 1e6)

    def wait_all(self, timeout_s: float) -> None:
        """Until every timed record arrived or `timeout_s` passed."""
        self.join(timeout_s)
        self.stop.set()
        self.join()


def run_e2e(
    ck: ModuleType,
    producer_conf: dict[str, Any],
    consumer_conf: dict[str, Any],
    topic: str,
    num_records: int,
    record_size: int,
    throughput: float,
    timeout_s: float,
    progress: Progress,
) -> BenchResult:
    """Send timed records at `throughput` records/s and measure each one's trip to a consumer.

    The consumer keeps librdkafka's defaults (fetch.wait.max.ms=500, fetch.min.bytes=1), so a
    broker that does not answer a waiting Fetch as soon as data arrives shows it here. The
    producer sends each record at once (linger.ms=0), as Kafka's EndToEndLatency tool does.
    """
    if record_size < E2E_HEADER_BYTES:
        raise BenchError(f"--record-size must be at least {E2E_HEADER_BYTES} for e2e")
    errors = ClientErrors(ck)
    producer = ck.Producer({"linger.ms": 0, **producer_conf, **errors.client_config()})
    consumer = ck.Consumer({**consumer_conf, **errors.client_config()})
    try:
        meta = wait_for_metadata(producer, producer_conf["bootstrap.servers"], topic).topics[topic]
        if meta.error is not None or not meta.partitions:
            raise BenchError(f"topic {topic!r} not found")
        # Start at the current end, fixed before anything is sent, so no record is missed.
        assignment = []
        for p in meta.partitions:
            _, high = consumer.get_watermark_offsets(
                ck.TopicPartition(topic, p), timeout=METADATA_TIMEOUT_S
            )
            assignment.append(ck.TopicPartition(topic, p, high))
        consumer.assign(assignment)
        reader = LatencyConsumer(consumer, num_records)
        reader.start()
        padding = random_payload(record_size - E2E_HEADER_BYTES)
        _warm_up(producer, topic, padding, reader, errors, timeout_s)
        cpu = CpuClock()
        started_at, start = time.time(), time.perf_counter()
        throttle = Throttle(throughput)
        for seq in range(num_records):
            header = seq.to_bytes(8, "big") + time.perf_counter_ns().to_bytes(8, "big")
            producer.produce(topic, header + padding, on_delivery=errors.on_delivery)
            producer.poll(0)
            errors.check()
            progress.update(seq)
            throttle.wait(seq + 1)
        producer.flush(timeout_s)
        reader.wait_all(timeout_s)
        elapsed = time.perf_counter() - start
        progress.update(len(reader.latencies_ms))
        received = len(reader.latencies_ms)
        lost = num_records - received
        return BenchResult(
            workload="e2e",
            records=received,
            bytes=received * record_size,
            elapsed_s=elapsed,
            client_cpu_s=cpu.elapsed(),
            started_at=started_at,
            errors=lost,
            first_error=errors.first_delivery_error or reader.error
            or (f"{lost} records not received within {timeout_s:.0f} s" if lost else None),
            latency_ms=percentiles(reader.latencies_ms),
        )
    finally:
        consumer.close()


def _warm_up(
    producer: Any, topic: str, padding: bytes, reader: LatencyConsumer, errors: ClientErrors,
    timeout_s: float,
) -> None:
    """Send marker records until one comes back: connections are up and fetching has begun."""
    deadline = time.monotonic() + timeout_s
    marker = WARMUP_SEQ.to_bytes(8, "big") + bytes(8) + padding
    while not reader.fetching.is_set():
        if time.monotonic() > deadline:
            raise BenchError(f"no record came back to the consumer within {timeout_s:.0f} s")
        producer.produce(topic, marker)
        producer.flush(timeout_s)
        errors.check()
        reader.fetching.wait(0.2)


# -- command line --------------------------------------------------------------------------------

BootstrapOption = Annotated[
    str,
    typer.Option("--bootstrap-server", "-b", envvar="RAFKA_BOOTSTRAP_SERVER", metavar="HOST:PORT",
                 help="A broker to connect to (comma-separated list allowed)."),
]
TopicOption = Annotated[str, typer.Option("--topic", "-t", help="Topic to use.")]
NumRecordsOption = Annotated[
    int, typer.Option("--num-records", "--messages", min=1, help="Number of records.")
]
RecordSizeOption = Annotated[int, typer.Option("--record-size", min=1, help="Bytes per record.")]
AcksOption = Annotated[str, typer.Option("--acks", help="0, 1 or all.")]
CompressionOption = Annotated[
    str, typer.Option("--compression", help="none, gzip, snappy, lz4 or zstd.")
]
IdempotenceOption = Annotated[
    bool, typer.Option("--idempotence/--no-idempotence", help="Idempotent producer (acks=all).")
]
PartitionsOption = Annotated[
    int, typer.Option("--partitions", min=1, help="Partitions if the topic must be created.")
]
ReplicationOption = Annotated[
    int, typer.Option("--replication-factor",
                      help="Replicas if the topic must be created; -1: the broker's default.")
]
ProducerPropsOption = Annotated[
    list[str] | None,
    typer.Option("--producer-props", metavar="KEY=VALUE",
                 help="librdkafka producer property (repeatable)."),
]
ConsumerPropsOption = Annotated[
    list[str] | None,
    typer.Option("--consumer-props", metavar="KEY=VALUE",
                 help="librdkafka consumer property (repeatable)."),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for records before giving up.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object instead of the line and table.")
]
ProgressOption = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Progress bar (default: when stderr is a TTY)."),
]
DEFAULT_BOOTSTRAP = "localhost:9092"
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
ACKS = {"0": "0", "1": "1", "all": "all", "-1": "all"}


def _fail(message: str) -> NoReturn:
    typer.echo(f"rafka: error: {message}", err=True)
    raise typer.Exit(EXIT_FAILURE)


def _progress(label: str, total: int, wanted: bool | None, json_output: bool) -> Progress:
    enabled = wanted if wanted is not None else (sys.stderr.isatty() and not json_output)
    return Progress(label, total, enabled)


def _report(result: BenchResult, json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps(result.to_json()))
        return
    typer.echo(result.result_line())
    rows = result.table_rows()
    width = max(len(name) for name, _ in rows)
    typer.echo("")
    for name, value in rows:
        typer.echo(f"  {name.ljust(width)}  {value}")


def _check_producer_options(acks: str, compression: str, idempotence: bool) -> str:
    if acks.lower() not in ACKS:
        raise BenchError(f"--acks must be 0, 1 or all, not {acks!r}")
    if compression not in COMPRESSIONS:
        raise BenchError(f"--compression must be one of {', '.join(COMPRESSIONS)}")
    if idempotence and ACKS[acks.lower()] != "all":
        raise BenchError("--idempotence needs --acks all")
    return ACKS[acks.lower()]


def _run(action: Callable[[], BenchResult], progress: Progress, json_output: bool) -> None:
    try:
        result = action()
    except BenchError as exc:
        progress.close()
        _fail(str(exc))
    except KeyboardInterrupt:
        progress.close()
        _fail("interrupted")
    progress.close()
    _report(result, json_output)
    if result.errors:
        _fail(f"{result.errors} records failed: {result.first_error}")


@app.command("produce")
def produce(
    topic: TopicOption,
    num_records: NumRecordsOption,
    record_size: RecordSizeOption = 100,
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    throughput: Annotated[
        float, typer.Option("--throughput", help="Records/sec to aim at; -1: no limit.")
    ] = -1,
    acks: AcksOption = "all",
    compression: CompressionOption = "none",
    idempotence: IdempotenceOption = False,
    partitions: PartitionsOption = 1,
    replication_factor: ReplicationOption = -1,
    producer_props: ProducerPropsOption = None,
    json_output: JsonOption = False,
    show_progress: ProgressOption = None,
) -> None:
    """Producer throughput: records/sec and MB/sec until every record is acknowledged."""
    progress = _progress("produce", num_records, show_progress, json_output)

    def action() -> BenchResult:
        acks_value = _check_producer_options(acks, compression, idempotence)
        ck = load_confluent_kafka()
        props = parse_props(producer_props or [])
        ensure_topic(ck, bootstrap_server, topic, partitions, replication_factor, ClientErrors(ck))
        config = producer_config(bootstrap_server, acks_value, compression, idempotence, props)
        result = run_produce(ck, config, topic, num_records, record_size, throughput, progress)
        result.settings = {
            "topic": topic, "record_size": record_size, "acks": acks_value,
            "compression": compression, "idempotence": idempotence, "throughput": throughput,
            "librdkafka": ck.libversion()[0], **props,
        }
        return result

    _run(action, progress, json_output)


@app.command("consume")
def consume(
    topic: TopicOption,
    num_records: NumRecordsOption,
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    group: Annotated[
        str | None,
        typer.Option("--group", "-g", help="Consume as a member of this group (subscribe)."),
    ] = None,
    timeout: TimeoutOption = 10.0,
    consumer_props: ConsumerPropsOption = None,
    json_output: JsonOption = False,
    show_progress: ProgressOption = None,
) -> None:
    """Consumer throughput from the start of the topic, by assignment or in a --group."""
    progress = _progress("consume", num_records, show_progress, json_output)

    def action() -> BenchResult:
        ck = load_confluent_kafka()
        props = parse_props(consumer_props or [])
        config = consumer_config(bootstrap_server, group, props)
        result = run_consume(ck, config, topic, num_records, group is not None, timeout, progress)
        result.settings = {
            "topic": topic, "group": group, "librdkafka": ck.libversion()[0], **props,
        }
        return result

    _run(action, progress, json_output)


@app.command("e2e")
def e2e(
    topic: TopicOption,
    num_records: NumRecordsOption,
    record_size: RecordSizeOption = 100,
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    throughput: Annotated[
        float, typer.Option("--throughput", help="Records/sec to send at.")
    ] = 1000,
    acks: AcksOption = "all",
    compression: CompressionOption = "none",
    idempotence: IdempotenceOption = False,
    partitions: PartitionsOption = 1,
    replication_factor: ReplicationOption = -1,
    timeout: TimeoutOption = 10.0,
    producer_props: ProducerPropsOption = None,
    consumer_props: ConsumerPropsOption = None,
    json_output: JsonOption = False,
    show_progress: ProgressOption = None,
) -> None:
    """End-to-end latency (produce to consume) at a fixed rate, default consumer settings."""
    progress = _progress("e2e", num_records, show_progress, json_output)

    def action() -> BenchResult:
        acks_value = _check_producer_options(acks, compression, idempotence)
        if throughput <= 0:
            raise BenchError("--throughput must be positive for e2e")
        ck = load_confluent_kafka()
        pprops = parse_props(producer_props or [])
        cprops = parse_props(consumer_props or [])
        ensure_topic(ck, bootstrap_server, topic, partitions, replication_factor, ClientErrors(ck))
        result = run_e2e(
            ck,
            producer_config(bootstrap_server, acks_value, compression, idempotence, pprops),
            consumer_config(bootstrap_server, None, cprops),
            topic, num_records, record_size, throughput, timeout, progress,
        )
        result.settings = {
            "topic": topic, "record_size": record_size, "acks": acks_value,
            "throughput": throughput, "librdkafka": ck.libversion()[0], **pprops, **cprops,
        }
        return result

    _run(action, progress, json_output)
