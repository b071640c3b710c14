"""Client-side helpers of the cluster tests: confluent-kafka producers and consumers that run in
threads while nodes die, and the checks of what they were acknowledged against what is stored."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cluster import Cluster, wait_until
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

# librdkafka logs every refused connection while a node is down; failures are asserted instead.
CLIENT_LOG_LEVEL = 2
FLUSH_TIMEOUT = 60.0
# Consumer errors that only say a node is unreachable; librdkafka recovers from them by itself.
TRANSIENT_CONSUMER_ERRORS = frozenset(
    {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT}
)


@contextmanager
def running_cluster(root: Path, size: int, **overrides: str) -> Iterator[Cluster]:
    """A started cluster whose processes are all killed (by PID) when the block ends."""
    with Cluster(root, size, **overrides) as cluster:
        cluster.start()
        yield cluster


# -- topics ---------------------------------------------------------------------------------------


def create_topic(
    cluster: Cluster, topic: str, partitions: int, replication_factor: int, **configs: str
) -> None:
    """Create the topic and wait until every live node knows a leader for each partition."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": CLIENT_LOG_LEVEL})
    futures = admin.create_topics(
        [NewTopic(topic, partitions, replication_factor, config=configs)], operation_timeout=30
    )
    for future in futures.values():
        future.result(timeout=30)
    for partition in range(partitions):
        cluster.wait_for_leader(topic, partition)


# What a partition's leader moving looks like to a client (librdkafka does not flag each of these
# retriable on a one-shot request such as get_watermark_offsets).
LEADERSHIP_MOVING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.UNKNOWN_LEADER_EPOCH,
    }
)


def high_watermark(cluster: Cluster, topic: str, partition: int) -> int:
    """The partition's high watermark, from its leader (ListOffsets latest)."""
    return high_watermarks(cluster, [(topic, partition)])[(topic, partition)]


def high_watermarks(
    cluster: Cluster, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The high watermarks of (topic, partition)s, from their leaders, with one client. A
    retriable error (NOT_LEADER_OR_FOLLOWER while leadership moves, to the preferred replica
    say) is asked again once the client has refreshed its metadata, as a client would."""
    consumer = Consumer(consumer_config(cluster.bootstrap))
    try:
        found: dict[tuple[str, int], int] = {}
        for topic, partition in partitions:
            wanted = TopicPartition(topic, partition)

            def asked(wanted: TopicPartition = wanted) -> bool:
                try:
                    _, found[(wanted.topic, wanted.partition)] = consumer.get_watermark_offsets(
                        wanted, timeout=15, cached=False
                    )
                except KafkaException as exc:
                    error = exc.args[0]
                    if not (error.retriable() or error.code() in LEADERSHIP_MOVING):
                        raise
                    return False
                return True

            wait_until(asked, 30, f"the high watermark of {topic}-{partition}")
        return found
    finally:
        consumer.close()


# -- clients --------------------------------------------------------------------------------------


def producer_config(bootstrap: str, **extra: object) -> dict:
    """Idempotent acks=all producer that retries through failovers, reconnecting quickly."""
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "delivery.timeout.ms": 120_000,
        "retry.backoff.ms": 20,
        "retry.backoff.max.ms": 200,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "linger.ms": 2,
        "log_level": CLIENT_LOG_LEVEL,
        **extra,
    }


def consumer_config(bootstrap: str, **extra: object) -> dict:
    # group.id is required by librdkafka even when partitions are assigned and nothing committed.
    return {
        "bootstrap.servers": bootstrap,
        "group.id": "cluster-check",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "log_level": CLIENT_LOG_LEVEL,
        **extra,
    }


@dataclass(frozen=True, slots=True)
class Ack:
    partition: int
    # None: librdkafka knows the message was stored but not where. An idempotent producer's
    # request that may have been stored (a timeout, a closed connection, NOT_LEADER_OR_FOLLOWER
    # for a batch appended but not committed) is implicitly acked when a later one on the
    # partition succeeds: its records must have been stored before.
    offset: int | None
    value: bytes
    at: float  # time.monotonic() when the delivery report arrived


def sequence_value(partition: int, number: int) -> bytes:
    return f"{partition}-{number:09d}".encode()


def sequence_number(value: bytes) -> int:
    return int(value.split(b"-")[1])


@dataclass
class SequencedProducer:
    """A thread producing `<partition>-<n>` round-robin over the partitions, n = 0, 1, ... per
    partition, keeping every delivery report. Outstanding messages are bounded, so an outage
    does not queue an unbounded backlog."""

    bootstrap: str
    topic: str
    partitions: int
    config: dict = field(default_factory=dict)
    max_outstanding: int = 500
    acked: list[Ack] = field(default_factory=list)
    failed: list[tuple[int, bytes, KafkaError]] = field(default_factory=list)
    client_errors: list[KafkaError] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    unflushed: int = -1

    def __post_init__(self) -> None:
        self.sent = [0] * self.partitions
        self._acks_by_partition = [0] * self.partitions
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sequenced-producer", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> SequencedProducer:
        self._thread.start()
        return self

    def finish(self) -> None:
        """Stop producing and wait until every outstanding message has a delivery report."""
        self.close()
        assert not self._thread.is_alive(), "producer thread did not finish"
        if self._error is not None:
            raise self._error
        assert self.unflushed == 0, f"{self.unflushed} messages without a delivery report"

    def close(self) -> None:
        """Stop producing and let the thread flush what is outstanding (for cleanup: checks
        nothing)."""
        self._stop.set()
        self._thread.join(FLUSH_TIMEOUT + 10)

    def ack_count(self) -> int:
        """Acks so far; raises at once if the producer failed, so waits fail fast."""
        if self._error is not None:
            raise AssertionError(f"producer failed: {self._error!r}")
        fatal = [e for e in self.client_errors if e.fatal()]
        assert not fatal, f"producer fatal error: {fatal}"
        return len(self.acked)

    def acks_of(self, partition: int) -> int:
        self.ack_count()  # fail fast
        return self._acks_by_partition[partition]

    def wait_for_acks(
        self, more: int, timeout: float, what: str = "", partition: int | None = None
    ) -> None:
        """Wait until `more` further messages (of `partition`, if given) are acknowledged."""
        count = self.ack_count if partition is None else lambda: self.acks_of(partition)
        target = count() + more
        where = "" if partition is None else f" on partition {partition}"
        wait_until(
            lambda: count() >= target,
            timeout,
            f"{more} more acknowledged messages{where} {what}".strip(),
        )

    def longest_ack_gap(self) -> float:
        """The longest time between two consecutive delivery reports."""
        times = [ack.at for ack in self.acked]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def _report(self, error: KafkaError | None, message) -> None:
        if error is not None:
            self.failed.append((message.partition(), message.value(), error))
        else:
            self.acked.append(
                Ack(message.partition(), message.offset(), message.value(), time.monotonic())
            )
            self._acks_by_partition[message.partition()] += 1

    def _run(self) -> None:
        try:
            producer = Producer(
                {
                    **producer_config(self.bootstrap),
                    "error_cb": self.client_errors.append,
                    **self.config,
                }
            )
            count = 0
            while not self._stop.is_set():
                if len(producer) >= self.max_outstanding:
                    producer.poll(0.01)
                    continue
                partition = count % self.partitions
                value = sequence_value(partition, self.sent[partition])
                producer.produce(self.topic, value, partition=partition, on_delivery=self._report)
                self.sent[partition] += 1
                count += 1
                producer.poll(0)
            self.unflushed = producer.flush(FLUSH_TIMEOUT)
        except BaseException as exc:  # surfaced to the test by finish()
            self._error = exc


class TailingConsumer:
    """A thread that reads assigned partitions from the start and keeps polling across node
    deaths, recording every (partition, offset) -> value it is handed and any value that
    changed or offset that went backwards."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[int, int], bytes] = {}
        self.changed_values: list[tuple[int, int, bytes, bytes]] = []
        self.rewinds: list[tuple[int, int, int]] = []
        self.errors: list[KafkaError] = []
        self._last_offset = [-1] * partitions
        self._consumer = Consumer(
            consumer_config(
                bootstrap,
                # A reset would silently skip or replay data; make it an error this test sees.
                **{"auto.offset.reset": "error"},
            )
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tailing-consumer", daemon=True)

    def seen(self) -> dict[tuple[int, int], bytes]:
        with self._lock:
            return dict(self._seen)

    def count(self) -> int:
        with self._lock:
            return len(self._seen)

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
                if error.code() not in TRANSIENT_CONSUMER_ERRORS:
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


def consume_all(
    bootstrap: str, topic: str, partitions: int, timeout: float = 60
) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition, from the start to the high watermark: (offset, value)."""
    consumer = Consumer(consumer_config(bootstrap, **{"enable.partition.eof": True}))
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
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                        continue
                    assert error.code() in TRANSIENT_CONSUMER_ERRORS, error
                    continue
                records[message.partition()].append((message.offset(), message.value()))
        return records
    finally:
        consumer.close()


# -- consumer groups ------------------------------------------------------------------------------

T = TypeVar("T")


class GroupProgress:
    """What a group's members consumed and which commits the coordinator acknowledged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.consumed: list[tuple[int, int, bytes]] = []
        self.acked_commits: dict[int, int] = {}  # partition -> highest acknowledged offset
        self.commit_failures: list[KafkaError] = []
        self.errors: list[KafkaError] = []

    def consumed_values(self) -> set[bytes]:
        with self.lock:
            return {value for _, _, value in self.consumed}

    def count(self) -> int:
        with self.lock:
            return len(self.consumed)

    def commits(self) -> dict[int, int]:
        with self.lock:
            return dict(self.acked_commits)


class GroupMember:
    """A subscribed confluent-kafka consumer in a thread: consume a batch, commit it
    synchronously, repeat; at-least-once processing."""

    def __init__(
        self, bootstrap: str, topic: str, group: str, name: str, progress: GroupProgress
    ) -> None:
        self.progress = progress
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "client.id": name,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 200,
                "log_level": CLIENT_LOG_LEVEL,
            }
        )
        self.consumer.subscribe([topic])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> GroupMember:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = self.consumer.consume(500, 0.1)
            data = []
            for message in messages:
                error = message.error()
                if error is None:
                    data.append((message.partition(), message.offset(), message.value()))
                elif error.code() not in TRANSIENT_CONSUMER_ERRORS:
                    with self.progress.lock:
                        self.progress.errors.append(error)
            if not data:
                continue
            with self.progress.lock:
                self.progress.consumed.extend(data)
            self._commit()

    def _commit(self) -> None:
        try:
            committed = self.consumer.commit(asynchronous=False)
        except KafkaException as exc:  # coordinator moving, rebalance: at-least-once allows it
            with self.progress.lock:
                self.progress.commit_failures.append(exc.args[0])
            return
        with self.progress.lock:
            for tp in committed or ():
                if tp.error is None and tp.offset >= 0:
                    previous = self.progress.acked_commits.get(tp.partition, -1)
                    self.progress.acked_commits[tp.partition] = max(previous, tp.offset)


def offsets_reader(bootstrap: str, group: str) -> Consumer:
    """A consumer of `group` that never joins it, for reading its committed offsets. (Not the
    admin client's ListConsumerGroupOffsets: librdkafka 2.x dereferences the admin client's
    missing group handle when an OffsetFetch answer says NOT_COORDINATOR, which a coordinator
    that just moved gives, and the whole process dies: confluentinc/librdkafka#5040.)"""
    return Consumer(consumer_config(bootstrap, **{"group.id": group}))


def committed_offsets(reader: Consumer, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets of the topic as its coordinator reports them (OffsetFetch);
    KafkaException while there is no coordinator to ask."""
    asked = [TopicPartition(topic, p) for p in range(partitions)]
    answered = reader.committed(asked, timeout=10)
    return {tp.partition: tp.offset for tp in answered if tp.error is None and tp.offset >= 0}


class CommitWatcher:
    """A thread sampling a group's committed offsets from its coordinator, noting any that
    went backwards (an acknowledged commit the coordinator later forgot)."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        self.reader = offsets_reader(bootstrap, group)
        self.topic = topic
        self.partitions = partitions
        self.highest: dict[int, int] = {}
        self.regressions: list[tuple[int, int, int]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watcher", daemon=True)

    def start(self) -> CommitWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self.reader.close()

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            try:
                offsets = committed_offsets(self.reader, self.topic, self.partitions)
            except KafkaException:
                continue  # no coordinator at the moment
            self.samples += 1
            for partition, offset in offsets.items():
                highest = self.highest.get(partition, -1)
                if offset < highest:
                    self.regressions.append((partition, highest, offset))
                self.highest[partition] = max(highest, offset)


def retrying(call: Callable[[], T], what: str, timeout: float = 30) -> T:
    """The result of `call`, retried while the admin client reports an error."""
    results: list[T] = []

    def attempt() -> bool:
        try:
            results.append(call())
        except KafkaException:
            return False
        return True

    wait_until(attempt, timeout, what)
    return results[-1]


# -- checks ---------------------------------------------------------------------------------------


def assert_acked_exactly_once_in_order(
    acks: list[Ack], records: dict[int, list[tuple[int, bytes]]], sent: list[int] | None = None
) -> None:
    """Each acknowledged message is stored once, at the offset its delivery report named (if it
    named one); each partition's sequence numbers strictly increase (in order, no duplicates);
    with `sent` (all messages acknowledged), each partition holds exactly 0..sent-1."""
    stored = {(p, offset): value for p, rows in records.items() for offset, value in rows}
    values = {(p, value) for p, rows in records.items() for _, value in rows}
    misplaced = [
        a
        for a in acks
        if (a.offset is None and (a.partition, a.value) not in values)
        or (a.offset is not None and stored.get((a.partition, a.offset)) != a.value)
    ]
    assert not misplaced, (
        f"{len(misplaced)} of {len(acks)} acknowledged messages are not at their offsets, "
        f"e.g. {[(a.partition, a.offset, a.value) for a in misplaced[:5]]}"
    )
    for partition, rows in records.items():
        numbers = [sequence_number(value) for _, value in rows]
        backwards = [
            (rows[i][0], numbers[i - 1], numbers[i])
            for i in range(1, len(numbers))
            if numbers[i] <= numbers[i - 1]
        ]
        assert not backwards, (
            f"partition {partition}: duplicated or reordered values (offset, previous, value): "
            f"{backwards[:5]}"
        )
        if sent is not None:
            assert numbers == list(range(sent[partition])), (
                f"partition {partition} holds {len(numbers)} values, {sent[partition]} were "
                f"acknowledged; first missing: "
                f"{sorted(set(range(sent[partition])) - set(numbers))[:5]}"
            )


def assert_tailing_view_consistent(
    tail: TailingConsumer, records: dict[int, list[tuple[int, bytes]]]
) -> None:
    """What a consumer saw while nodes died is what the log holds now: no offset ever changed
    its value, and no offset was handed out twice or went backwards."""
    assert not tail.changed_values, f"offsets changed their values: {tail.changed_values[:5]}"
    assert not tail.rewinds, f"the consumer went backwards: {tail.rewinds[:5]}"
    assert not tail.errors, f"consumer errors: {tail.errors[:5]}"
    stored = {(p, offset): value for p, rows in records.items() for offset, value in rows}
    differ = [
        (key, value, stored.get(key))
        for key, value in tail.seen().items()
        if stored.get(key) != value
    ]
    assert not differ, f"consumed values that the log does not hold: {differ[:5]}"
