"""Durability of the single-node broker under restarts and crashes, seen through real clients.

Every test drives a real broker process (tests/broker_process.py) with confluent-kafka and checks
three views of the same data: the producers' delivery reports, what consumers read back, and the
segment files on disk (batch headers and CRC32C). Restarts reuse the port and the data directory,
so clients reconnect by themselves, exactly as they would after a real broker restart.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from broker_process import BrokerProcess
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from rafka.protocol.records import BatchHeader, CorruptRecordError, crc_ok, iter_batch_headers

CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"
# librdkafka logs every refused connection during a restart; failures are asserted, not logged.
CLIENT_LOG_LEVEL = 2
FLUSH_TIMEOUT = 60


# -- waiting --------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def wait_for_more(count: Callable[[], int], more: int, timeout: float, what: str) -> None:
    """Wait until `count()` has grown by `more` from now."""
    target = count() + more
    wait_until(lambda: count() >= target, timeout, f"{more} more {what}")


# -- broker helpers -------------------------------------------------------------------------------


def broker_events(broker: BrokerProcess, event: str) -> list[dict]:
    found = []
    for line in list(broker.log_lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found


def shut_down(broker: BrokerProcess, *, crash: bool) -> None:
    """SIGKILL (crash) or SIGTERM (clean, exit code 0) the broker, then wait until its output
    is read to the end."""
    # Waiting for the output reader means log_lines holds all the old process said.
    readers = [t for t in threading.enumerate() if t.name.endswith("(_read_output)")]
    if crash:
        broker.kill()
    else:
        assert broker.stop() == 0
    for reader in readers:
        reader.join(10)


def restart(broker: BrokerProcess, *, crash: bool) -> None:
    """Stop the broker (SIGTERM, or SIGKILL for a crash) and start it on the same port and dir."""
    shut_down(broker, crash=crash)
    if not crash:
        assert (broker.data_dir / CLEAN_SHUTDOWN_MARKER).exists()
    started = start_again(broker)
    assert started["clean_start"] is (not crash), started
    assert not (broker.data_dir / CLEAN_SHUTDOWN_MARKER).exists(), "marker must go while running"


def start_again(broker: BrokerProcess) -> dict:
    """Start a stopped broker; returns its "broker started" log event."""
    readies = len(broker_events(broker, "broker ready"))
    broker.start()
    wait_until(
        lambda: len(broker_events(broker, "broker ready")) > readies, 30, "the broker to restart"
    )
    return broker_events(broker, "broker started")[-1]


def create_topic(bootstrap: str, topic: str, partitions: int, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": CLIENT_LOG_LEVEL})
    futures = admin.create_topics([NewTopic(topic, partitions, 1, config=configs)])
    for future in futures.values():
        future.result(timeout=15)


# -- clients --------------------------------------------------------------------------------------


def durable_producer_config(bootstrap: str) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "message.send.max.retries": 1_000_000,
        "delivery.timeout.ms": 120_000,
        "retry.backoff.ms": 20,
        "retry.backoff.max.ms": 200,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "linger.ms": 2,
        "log_level": CLIENT_LOG_LEVEL,
    }


@dataclass(frozen=True, slots=True)
class Ack:
    partition: int
    offset: int
    value: bytes


@dataclass
class SequencedProducer:
    """A thread that produces `<prefix><n>` to partitions round-robin, n counting 0, 1, ... per
    partition, and keeps every delivery report. Outstanding messages are bounded so a broker
    outage does not queue an unbounded backlog."""

    bootstrap: str
    topic: str
    partitions: int
    prefix: str = ""
    max_outstanding: int = 1000
    acked: list[Ack] = field(default_factory=list)
    failed: list[tuple[int, bytes, KafkaError]] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    unflushed: int = -1

    def __post_init__(self) -> None:
        self.sent = [0] * self.partitions
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"producer{self.prefix}", daemon=True
        )
        self._error: BaseException | None = None

    def start(self) -> SequencedProducer:
        self._thread.start()
        return self

    def finish(self) -> None:
        """Stop producing and wait until every outstanding message has a delivery report."""
        self._stop.set()
        self._thread.join(FLUSH_TIMEOUT + 10)
        assert not self._thread.is_alive(), "producer thread did not finish"
        if self._error is not None:
            raise self._error

    def ack_count(self) -> int:
        """Acks so far; raises at once if the producer failed, so waits fail fast."""
        if self._error is not None:
            raise AssertionError(f"producer {self.prefix!r} failed: {self._error}")
        if self.failed:
            raise AssertionError(f"producer {self.prefix!r} delivery failed: {self.failed[:3]}")
        return len(self.acked)

    def _report(self, error: KafkaError | None, message) -> None:
        if error is not None:
            self.failed.append((message.partition(), message.value(), error))
        else:
            self.acked.append(Ack(message.partition(), message.offset(), message.value()))

    def _run(self) -> None:
        try:
            producer = Producer(durable_producer_config(self.bootstrap))
            count = 0
            while not self._stop.is_set():
                if len(producer) >= self.max_outstanding:
                    producer.poll(0.01)
                    continue
                partition = count % self.partitions
                value = f"{self.prefix}{self.sent[partition]}".encode()
                producer.produce(self.topic, value, partition=partition, on_delivery=self._report)
                self.sent[partition] += 1
                count += 1
                producer.poll(0)
            self.unflushed = producer.flush(FLUSH_TIMEOUT)
        except BaseException as exc:  # surfaced to the test by finish()
            self._error = exc


class TailingConsumer:
    """A thread that reads assigned partitions from the start and keeps polling across broker
    restarts, recording every (partition, offset) -> value it is handed."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[int, int], bytes] = {}
        self.changed_values: list[tuple[int, int, bytes, bytes]] = []
        self.rewinds: list[tuple[int, int, int]] = []
        self.errors: list[KafkaError] = []
        self._last_offset = [-1] * partitions
        self._consumer = Consumer(
            {
                **consumer_config(bootstrap),
                # A reset would silently skip data; make it an error this test sees.
                "auto.offset.reset": "error",
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tailing-consumer", daemon=True)

    def seen(self) -> dict[tuple[int, int], bytes]:
        with self._lock:
            return dict(self._seen)

    def missing(self, wanted: dict[tuple[int, int], bytes]) -> list[tuple[int, int]]:
        with self._lock:
            return [key for key in wanted if key not in self._seen]

    def start(self) -> TailingConsumer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.05)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                # Broker down: transport errors are expected and librdkafka recovers by itself.
                if error.code() not in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
                    self.errors.append(error)
                continue
            key = (message.partition(), message.offset())
            value = message.value()
            with self._lock:
                previous = self._seen.setdefault(key, value)
            if previous != value:
                self.changed_values.append((*key, previous, value))
            if message.offset() <= self._last_offset[message.partition()]:
                self.rewinds.append((*key, self._last_offset[message.partition()]))
            self._last_offset[message.partition()] = message.offset()


def consumer_config(bootstrap: str) -> dict:
    # group.id is required by the client but unused: partitions are assigned, nothing committed.
    return {
        "bootstrap.servers": bootstrap,
        "group.id": "durability-check",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "log_level": CLIENT_LOG_LEVEL,
    }


def consume_all(
    bootstrap: str, topic: str, partitions: int, timeout: float = 30
) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition, from the start to the current end: (offset, value)."""
    consumer = Consumer({**consumer_config(bootstrap), "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        records: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"consumed only to the end of {sorted(at_end)}"
            for message in consumer.consume(10_000, 0.2):
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    at_end.add(message.partition())
                    continue
                records[message.partition()].append((message.offset(), message.value()))
        return records
    finally:
        consumer.close()


def assert_acks_in_log(acks: list[Ack], records: dict[int, list[tuple[int, bytes]]]) -> None:
    """Each acknowledged message is stored once, at the offset its delivery report named."""
    stored = {(p, offset): value for p, rows in records.items() for offset, value in rows}
    missing = [a for a in acks if stored.get((a.partition, a.offset)) != a.value]
    assert not missing, f"{len(missing)} acked messages not at their offsets, e.g. {missing[:5]}"
    for partition, rows in records.items():
        values = [value for _, value in rows]
        duplicates = len(values) - len(set(values))
        assert duplicates == 0, f"partition {partition} holds {duplicates} duplicate values"


# -- storage --------------------------------------------------------------------------------------


def validate_segments(partition_dir: Path, *, allow_torn_tail: bool = False) -> list[BatchHeader]:
    """Check every batch in the partition's .log segments: a sane header, a matching CRC32C,
    offsets contiguous across batches and segments, leader epochs never decreasing. With
    `allow_torn_tail`, the last segment may end in an incomplete batch (a write cut by SIGKILL),
    which recovery must remove."""
    segments = sorted(partition_dir.glob("*.log"))
    assert segments, f"no segments in {partition_dir}"
    headers: list[BatchHeader] = []
    for number, path in enumerate(segments):
        data = path.read_bytes()
        base = int(path.stem)
        valid_end = 0
        try:
            for pos, header in iter_batch_headers(data):
                assert crc_ok(data, pos, header), f"{path.name}: CRC mismatch at position {pos}"
                if headers:
                    previous = headers[-1]
                    assert header.base_offset == previous.last_offset + 1, (
                        f"{path.name}: batch at {pos} starts at offset {header.base_offset}, "
                        f"after {previous.last_offset}"
                    )
                    assert header.partition_leader_epoch >= previous.partition_leader_epoch
                if valid_end == 0:
                    assert header.base_offset == base, f"{path.name} starts at {header.base_offset}"
                headers.append(header)
                valid_end = pos + header.size
        except CorruptRecordError as exc:
            torn_tail_ok = allow_torn_tail and number == len(segments) - 1
            assert torn_tail_ok, f"{path.name}: corrupt at position {valid_end}: {exc}"
            assert _is_incomplete_batch(data[valid_end:]), (
                f"{path.name}: bad bytes at position {valid_end} are not a torn write: {exc}"
            )
    return headers


def _is_incomplete_batch(tail: bytes) -> bool:
    if len(tail) < 12:
        return True
    batch_length = int.from_bytes(tail[8:12], "big", signed=True)
    return batch_length + 12 > len(tail)


def partition_dirs(data_dir: Path, topic: str, partitions: int) -> list[Path]:
    return [data_dir / f"{topic}-{p}" for p in range(partitions)]


# -- tests ----------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_idempotent_producer_across_restarts_has_no_gaps_or_duplicates(broker_factory, crash):
    """An idempotent acks=all producer keeps producing through three broker restarts (one right
    after the previous restart); afterwards each partition holds exactly 0..N-1 in order, every
    delivery report succeeded and named the offset its value is stored at (a retried batch the
    broker already had must be answered with its original offsets, not appended again)."""
    partitions = 3
    topic = "idempotent-restart"
    broker = broker_factory().start()
    create_topic(broker.bootstrap, topic, partitions)
    producer = SequencedProducer(broker.bootstrap, topic, partitions).start()
    try:
        for acks_before_restart in (1500, 1, 3000):
            wait_for_more(producer.ack_count, acks_before_restart, 30, "acks before the restart")
            restart(broker, crash=crash)
        wait_for_more(producer.ack_count, 1500, 30, "acks after the restarts")
    finally:
        producer.finish()

    assert producer.failed == [], producer.failed[:5]
    assert producer.unflushed == 0
    assert len(producer.acked) == sum(producer.sent)
    records = consume_all(broker.bootstrap, topic, partitions)
    for partition in range(partitions):
        values = [value for _, value in records[partition]]
        expected = [str(n).encode() for n in range(producer.sent[partition])]
        assert len(values) == len(expected), f"partition {partition}: {len(values)} records"
        assert values == expected, f"partition {partition} out of sequence"
    assert_acks_in_log(producer.acked, records)


@pytest.mark.timeout(150)
def test_acked_writes_survive_kill_9(broker_factory):
    """Three idempotent acks=all producers and a tailing consumer run while the broker is
    killed with SIGKILL at several moments. Every acknowledged message must stay at its
    acknowledged offset exactly once; the consumer must continue after each restart and see
    every acked message with no offset changing its value; the segments on disk must hold only
    whole batches with valid CRCs; and new writes after the last restart must follow the
    recovered data."""
    partitions = 3
    topic = "kill-9"
    broker = broker_factory().start()
    # Small segments, so kills also land around segment rolls.
    create_topic(broker.bootstrap, topic, partitions, **{"segment.bytes": "16384"})
    dirs = partition_dirs(broker.data_dir, topic, partitions)
    producers = [
        SequencedProducer(broker.bootstrap, topic, partitions, prefix=f"{client}:").start()
        for client in "abc"
    ]
    reader = TailingConsumer(broker.bootstrap, topic, partitions).start()

    def acked() -> int:
        return sum(producer.ack_count() for producer in producers)

    recovery_warnings: list[str] = []
    try:
        # Kill in steady state, right after the first acks of a fresh broker, after a longer
        # run, and once more straight after the restart.
        for acks_before_kill in (1500, 1, 6000, 1, 3000):
            wait_for_more(acked, acks_before_kill, 40, "acks before the kill")
            assert not (broker.data_dir / CLEAN_SHUTDOWN_MARKER).exists()
            lines_before = len(broker.log_lines)
            shut_down(broker, crash=True)
            for directory in dirs:
                validate_segments(directory, allow_torn_tail=True)
            started = start_again(broker)
            assert started["clean_start"] is False, "a crash must lead to recovery"
            assert not (broker.data_dir / CLEAN_SHUTDOWN_MARKER).exists()
            recovery_warnings += [
                line
                for line in broker.log_lines[lines_before:]
                if '"warning"' in line and "rafka.storage" in line
            ]
        wait_for_more(acked, 2000, 40, "acks after the last restart")
    finally:
        for producer in producers:
            producer.finish()

    all_acks = [ack for producer in producers for ack in producer.acked]
    for producer in producers:
        assert producer.failed == [], producer.failed[:5]
        assert producer.unflushed == 0
        assert len(producer.acked) == sum(producer.sent)

    records = consume_all(broker.bootstrap, topic, partitions)
    assert_acks_in_log(all_acks, records)
    # Per client and partition the values are 0..n-1 in offset order: no loss, no reordering.
    for partition in range(partitions):
        by_client: dict[str, list[int]] = defaultdict(list)
        for _, value in records[partition]:
            client, number = value.decode().split(":")
            by_client[client].append(int(number))
        for producer in producers:
            client = producer.prefix[:-1]
            expected = list(range(producer.sent[partition]))
            assert by_client[client] == expected, f"client {client} partition {partition}"

    # The tailing consumer saw everything acknowledged, each offset with one value, in order.
    wanted = {(a.partition, a.offset): a.value for a in all_acks}
    try:
        wait_until(lambda: not reader.missing(wanted), 30, "the tailing consumer to catch up")
    finally:
        reader.stop()
    assert reader.errors == []
    assert reader.changed_values == []
    assert reader.rewinds == []
    seen = reader.seen()
    assert all(seen[key] == value for key, value in wanted.items())

    # No corrupt tail: the logs are whole now, and new writes follow the recovered data.
    segment_counts = []
    for directory in dirs:
        validate_segments(directory)
        segment_counts.append(len(list(directory.glob("*.log"))))
    assert max(segment_counts) > 1, "the test meant to cross segment rolls"
    last_offsets = {p: rows[-1][0] for p, rows in records.items()}
    extra = SequencedProducer(broker.bootstrap, topic, partitions, prefix="after:").start()
    try:
        wait_for_more(extra.ack_count, 300, 30, "acks after the crashes")
    finally:
        extra.finish()
    assert extra.failed == []
    assert all(ack.offset > last_offsets[ack.partition] for ack in extra.acked)
    final = consume_all(broker.bootstrap, topic, partitions)
    for partition in range(partitions):
        assert final[partition][: len(records[partition])] == records[partition]
        tail = [value for _, value in final[partition][len(records[partition]) :]]
        assert tail == [f"after:{n}".encode() for n in range(extra.sent[partition])]
    for directory in dirs:
        validate_segments(directory)
    print(
        f"\nkill -9: {len(all_acks)} acks, segments per partition {segment_counts}, "
        f"storage warnings in recovery: {recovery_warnings}"
    )


@pytest.mark.timeout(60)
def test_clean_restart_keeps_data_snapshots_and_marker(broker_factory):
    """While running there is no clean-shutdown marker; SIGTERM writes it and a producer-state
    snapshot per partition; the next start reports a clean start, removes the marker and
    serves every record at its old offset."""
    partitions = 2
    topic = "clean-restart"
    broker = broker_factory().start()
    marker = broker.data_dir / CLEAN_SHUTDOWN_MARKER
    assert not marker.exists(), "the marker is only written on a clean shutdown"
    create_topic(broker.bootstrap, topic, partitions)
    producer = SequencedProducer(broker.bootstrap, topic, partitions).start()
    try:
        wait_for_more(producer.ack_count, 1000, 30, "acks")
    finally:
        producer.finish()
    assert producer.failed == []
    before = consume_all(broker.bootstrap, topic, partitions)
    assert not marker.exists()

    shut_down(broker, crash=False)
    assert marker.exists()
    assert json.loads(marker.read_text())["version"] == 0
    for directory in partition_dirs(broker.data_dir, topic, partitions):
        headers = validate_segments(directory)
        snapshots = sorted(directory.glob("*.snapshot"))
        assert snapshots, f"no producer snapshot in {directory.name}"
        # Named after the log end offset it covers, as Kafka names them.
        assert int(snapshots[-1].stem) == headers[-1].last_offset + 1

    started = start_again(broker)
    assert started["clean_start"] is True
    assert not marker.exists()
    after = consume_all(broker.bootstrap, topic, partitions)
    assert after == before
    for partition in range(partitions):
        values = [value for _, value in after[partition]]
        assert values == [str(n).encode() for n in range(producer.sent[partition])]

    # New writes follow the old data.
    more = SequencedProducer(broker.bootstrap, topic, partitions, prefix="more:").start()
    try:
        wait_for_more(more.ack_count, 100, 30, "acks after the clean restart")
    finally:
        more.finish()
    assert more.failed == []
    last = {p: rows[-1][0] for p, rows in before.items()}
    assert all(ack.offset > last[ack.partition] for ack in more.acked)
