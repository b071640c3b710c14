"""The three workloads of `rafka bench`: produce, consume and end-to-end latency."""

from __future__ import annotations

import threading
import time
import uuid
from types import ModuleType
from typing import Any

from rafka.cli.bench_support import (
    E2E_HEADER_BYTES,
    METADATA_TIMEOUT_S,
    WARMUP_SEQ,
    BenchError,
    BenchResult,
    ClientErrors,
    CpuClock,
    Progress,
    Throttle,
    percentiles,
    random_payload,
    wait_for_metadata,
)

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
    producer = ck.Producer({**config, "delivery.report.only.error": True, **errors.client_config()})
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
            first_error=errors.first_delivery_error
            or reader.error
            or (f"{lost} records not received within {timeout_s:.0f} s" if lost else None),
            latency_ms=percentiles(reader.latencies_ms),
        )
    finally:
        consumer.close()


def _warm_up(
    producer: Any,
    topic: str,
    padding: bytes,
    reader: LatencyConsumer,
    errors: ClientErrors,
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
