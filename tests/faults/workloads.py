"""The fault suite's clients, each a thread recording into a shared `History`: queue writers
(idempotent and plain acks=all), tailing readers (read_uncommitted and read_committed), a
transactional writer, group-offset committers and InitProducerId callers on every node. They
keep going through faults: errors are outcomes to record, not reasons to stop."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from checker import History, OffsetCommit, OffsetFetch, Read, Txn, Write
from cluster_fixtures import CLIENT_LOG_LEVEL, TRANSIENT_CONSUMER_ERRORS
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from rafka.cli.kafka_client import Connection, KafkaClientError

INIT_PRODUCER_ID = 22
FLUSH_TIMEOUT = 30.0
# Fast reconnects: after a heal a client should find the nodes again within a fraction of the
# recovery target, not at librdkafka's default 10 s backoff ceiling.
RECONNECT = {
    "reconnect.backoff.ms": 20,
    "reconnect.backoff.max.ms": 250,
    "retry.backoff.ms": 20,
    "retry.backoff.max.ms": 250,
    "topic.metadata.refresh.interval.ms": 1000,
    "socket.connection.setup.timeout.ms": 2000,
    # A request to a paused or cut-off broker is given up after this long (librdkafka's default,
    # 60 s, would make the gap a client's wait, not the cluster's failover: docs/reliability.md).
    "socket.timeout.ms": 1000,
    "log_level": CLIENT_LOG_LEVEL,
}


class Worker(threading.Thread):
    """A daemon thread with a stop event; `run_loop` records any unexpected exception."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.run_loop()
        except BaseException as exc:  # reported by the run after it joins
            self.error = exc

    def run_loop(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = FLUSH_TIMEOUT + 15) -> None:
        self.stopping.set()
        self.join(timeout)


class _EpochBumpLog:
    """A `logger` for librdkafka keeping the lines that say why the producer epoch is bumped."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def log(self, level: int, fmt: str, *args: object) -> None:
        line = fmt % args if args else fmt
        if "bump" in line.lower():
            self.lines.append(line)


class QueueWriter(Worker):
    """Sends `<name>:<partition>:<n>` round-robin over the partitions at `rate` per second;
    every send becomes a `Write` (acknowledged with its offset, or not)."""

    def __init__(
        self,
        history: History,
        bootstrap: str,
        topic: str,
        partitions: int,
        name: str,
        idempotent: bool,
        rate: float,
    ) -> None:
        super().__init__(f"writer-{name}")
        self.history, self.topic, self.partitions = history, topic, partitions
        self.writer, self.idempotent, self.rate = name, idempotent, rate
        self.config = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": idempotent,
            "linger.ms": 5,
            "delivery.timeout.ms": 60_000,
            "message.timeout.ms": 60_000,
            **RECONNECT,
        }
        self.unflushed = 0
        self.errors: list[KafkaError] = []
        # Why librdkafka bumped its producer epoch, if it did: records it re-sends after a bump
        # carry new sequence numbers, so no broker (Kafka included) can tell them from new ones.
        self.epoch_bumps: list[str] = []
        if idempotent:
            self.config.update(debug="eos", log_level=7, logger=_EpochBumpLog(self.epoch_bumps))

    def run_loop(self) -> None:
        producer = Producer({**self.config, "error_cb": self.errors.append})
        interval = 1.0 / self.rate
        number, next_send = 0, time.monotonic()
        while not self.stopping.is_set():
            delay = next_send - time.monotonic()
            if delay > 0:
                producer.poll(min(delay, 0.05))
                continue
            next_send += interval
            partition = number % self.partitions
            value = f"{self.writer}:{partition}:{number}".encode()
            number += 1
            sent = time.monotonic()
            try:
                producer.produce(
                    self.topic,
                    value,
                    partition=partition,
                    on_delivery=self._reporter(partition, value, sent),
                )
            except BufferError:
                self.history.writes.append(
                    Write(self.writer, self.idempotent, (self.topic, partition), value, sent)
                )
            producer.poll(0)
        self.unflushed = producer.flush(FLUSH_TIMEOUT)

    def _reporter(self, partition: int, value: bytes, sent: float) -> Callable[..., None]:
        tp = (self.topic, partition)

        def report(error: KafkaError | None, message) -> None:
            if error is None:
                write = Write(
                    self.writer,
                    self.idempotent,
                    tp,
                    value,
                    sent,
                    message.offset(),
                    time.monotonic(),
                )
            else:
                write = Write(self.writer, self.idempotent, tp, value, sent)
            self.history.writes.append(write)

        return report


class TailReader(Worker):
    """Reads the topic's partitions from the start for as long as it runs; every record is a
    `Read`. A reset would silently skip or replay: it is an error recorded instead."""

    def __init__(
        self,
        history: History,
        bootstrap: str,
        topic: str,
        partitions: int,
        name: str,
        read_committed: bool,
    ) -> None:
        super().__init__(f"reader-{name}")
        self.history, self.reader, self.read_committed = history, name, read_committed
        self.errors: list[KafkaError] = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"fault-reader-{name}",
                "enable.auto.commit": False,
                "auto.offset.reset": "error",
                "isolation.level": "read_committed" if read_committed else "read_uncommitted",
                **RECONNECT,
            }
        )
        self.consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )

    def run_loop(self) -> None:
        try:
            while not self.stopping.is_set():
                for message in self.consumer.consume(500, 0.1):
                    error = message.error()
                    if error is not None:
                        if error.code() not in TRANSIENT_CONSUMER_ERRORS:
                            self.errors.append(error)
                        continue
                    self.history.reads.append(
                        Read(
                            self.reader,
                            (message.topic(), message.partition()),
                            message.offset(),
                            message.value(),
                            self.read_committed,
                            time.monotonic(),
                        )
                    )
        finally:
            self.consumer.close()


class TxnWriter(Worker):
    """Transactions of 1-4 records over the topic's partitions, a third of them aborted on
    purpose; each ends as a `Txn` committed, aborted (abort acknowledged, commit never asked)
    or unknown."""

    def __init__(
        self, history: History, bootstrap: str, topic: str, partitions: int, name: str, seed: int
    ) -> None:
        super().__init__(f"txn-{name}")
        self.history, self.topic, self.partitions, self.writer = history, topic, partitions, name
        self.random = random.Random(seed)
        self.config = {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"fault-{name}",
            "acks": "all",
            "linger.ms": 2,
            "transaction.timeout.ms": 20_000,
            "message.timeout.ms": 20_000,
            **RECONNECT,
        }
        self.errors: list[str] = []

    def run_loop(self) -> None:
        producer: Producer | None = None
        number = 0
        while not self.stopping.is_set():
            if producer is None:
                producer = Producer(self.config)
                try:
                    producer.init_transactions(15)
                except KafkaException as exc:
                    self.errors.append(f"init: {exc}")
                    producer = None
                    self.stopping.wait(0.2)  # pacing while the coordinator is unreachable
                    continue
            number += 1
            name = f"{self.writer}-{number}"
            values = tuple(
                ((self.topic, self.random.randrange(self.partitions)), f"{name}:{i}".encode())
                for i in range(self.random.randint(1, 4))
            )
            abort = self.random.random() < 0.3
            outcome = self._transaction(producer, values, abort)
            self.history.txns.append(Txn(name, outcome, values))
            if outcome == "unknown":
                producer = None  # a fresh producer's InitProducerId ends what this one left open
        if producer is None and number > 0:
            # Leave no transaction open at the end: read_committed readers would stop at it.
            try:
                Producer(self.config).init_transactions(30)
            except KafkaException as exc:
                self.errors.append(f"final init: {exc}")

    def _transaction(self, producer: Producer, values, abort: bool) -> str:
        try:
            producer.begin_transaction()
            for (topic, partition), value in values:
                producer.produce(topic, value, partition=partition)
            if abort:
                producer.abort_transaction(20)
                return "aborted"
            producer.commit_transaction(20)
            return "committed"
        except KafkaException as exc:
            error = exc.args[0]
            self.errors.append(str(error))
            if abort and not error.fatal():
                try:
                    producer.abort_transaction(20)
                    return "aborted"  # abort asked for, commit never: the records are aborted
                except KafkaException as again:
                    self.errors.append(f"abort: {again}")
            elif error.txn_requires_abort():
                try:
                    producer.abort_transaction(20)
                    return "aborted"  # the commit was refused before it began
                except KafkaException as again:
                    self.errors.append(f"abort: {again}")
            return "unknown"


class OffsetCommitter(Worker):
    """Commits strictly increasing offsets for one group (a simple consumer: assigned, not
    subscribed) every `interval` seconds and reads them back with OffsetFetch; every commit and
    every fetch is recorded with its start and end."""

    def __init__(
        self, history: History, bootstrap: str, topic: str, partitions: int, group: str
    ) -> None:
        super().__init__(f"committer-{group}")
        self.history, self.group = history, group
        self.tps = [(topic, p) for p in range(partitions)]
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                **RECONNECT,
            }
        )
        self.interval = 0.2
        self.errors: list[str] = []

    def run_loop(self) -> None:
        offset = 0
        try:
            while not self.stopping.is_set():
                offset += 1
                self.commit(offset)
                self.fetch()
                self.stopping.wait(self.interval)  # pacing, not a wait for an event
        finally:
            self.consumer.close()

    def commit(self, offset: int) -> None:
        start = time.monotonic()
        outcome: dict[tuple[str, int], bool] = {}
        try:
            answer = self.consumer.commit(
                offsets=[TopicPartition(t, p, offset) for t, p in self.tps], asynchronous=False
            )
            for tp in answer or []:
                outcome[(tp.topic, tp.partition)] = tp.error is None
        except KafkaException as exc:
            self.errors.append(f"commit: {exc}")
        end = time.monotonic()
        for tp in self.tps:
            self.history.commits.append(
                OffsetCommit(self.group, tp, offset, outcome.get(tp, False), start, end)
            )

    def fetch(self) -> None:
        fetch_committed(self.consumer, self.group, self.tps, self.history, self.errors)


class OffsetReader(Worker):
    """Another client of the group that only reads its offsets, every `interval` seconds. With
    its own connections it may still talk to a deposed coordinator while the committer has
    moved on to the new one: the stale read a lone committer could not see."""

    def __init__(
        self, history: History, bootstrap: str, topic: str, partitions: int, group: str, name: str
    ) -> None:
        super().__init__(f"offset-reader-{group}-{name}")
        self.history, self.group = history, group
        self.tps = [(topic, p) for p in range(partitions)]
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
             **RECONNECT}
        )  # fmt: skip
        self.interval = 0.1
        self.errors: list[str] = []

    def run_loop(self) -> None:
        try:
            while not self.stopping.wait(self.interval):  # pacing, not a wait for an event
                fetch_committed(self.consumer, self.group, self.tps, self.history, self.errors)
        finally:
            self.consumer.close()


def fetch_committed(
    consumer: Consumer,
    group: str,
    tps: list[tuple[str, int]],
    history: History,
    errors: list[str],
) -> None:
    """One OffsetFetch of the group's partitions, recorded with its start and end."""
    start = time.monotonic()
    try:
        answer = consumer.committed([TopicPartition(t, p) for t, p in tps], 5)
    except KafkaException as exc:
        errors.append(f"fetch: {exc}")
        return
    end = time.monotonic()
    for tp in answer:
        if tp.error is None:
            offset = tp.offset if tp.offset >= 0 else -1
            history.fetches.append(OffsetFetch(group, (tp.topic, tp.partition), offset, start, end))


class ProducerIdCaller(Worker):
    """InitProducerId without a transactional id on one node, `rate` per second: each answer is
    a fresh producer id from the node's block."""

    def __init__(self, history: History, host: str, port: int, node: int, rate: float) -> None:
        super().__init__(f"producer-ids-{node}")
        self.history, self.host, self.port, self.node = history, host, port, node
        self.interval = 1.0 / rate
        self.errors: dict[int, int] = {}

    def run_loop(self) -> None:
        connection: Connection | None = None
        try:
            while not self.stopping.wait(self.interval):
                try:
                    if connection is None:
                        connection = Connection(self.host, self.port, "fault-pids", 5.0)
                    response = connection.send(
                        INIT_PRODUCER_ID,
                        4,
                        {
                            "transactional_id": None,
                            "transaction_timeout": 60_000,
                            "producer_id": -1,
                            "producer_epoch": -1,
                        },
                    )
                except (KafkaClientError, OSError):
                    if connection is not None:
                        connection.close()
                        connection = None
                    continue
                if response.error_code == 0:
                    self.history.producer_ids.append((self.node, response.producer_id))
                else:
                    self.errors[response.error_code] = self.errors.get(response.error_code, 0) + 1
        finally:
            if connection is not None:
                connection.close()
