"""Helpers shared by the transaction tests (test_transactions.py, test_transactions_apis.py): the
broker they run against, API keys and error codes, confluent-kafka producers and consumers,
wire-level requests through rafka.cli.kafka_client.Connection, and a raw transactional producer
that shows each error code."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from broker_process import BrokerProcess
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from rafka.cli.kafka_client import Connection
from rafka.cli.txn import describe_transactions
from rafka.protocol.records import build_batch

PRODUCE, LIST_OFFSETS, OFFSET_FETCH, FIND_COORDINATOR, INIT_PRODUCER_ID = 0, 2, 9, 10, 22
ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN, END_TXN, TXN_OFFSET_COMMIT = 24, 25, 26, 28
DESCRIBE_PRODUCERS, LIST_TRANSACTIONS = 61, 66

NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
CONCURRENT_TRANSACTIONS = 51
UNSTABLE_OFFSET_COMMIT = 88
PRODUCER_FENCED = 90
LATEST = -1
QUIET = {"log_level": 0}  # librdkafka: no client log lines on stderr


def start_broker(data_dir: Path) -> BrokerProcess:
    """A broker that looks for timed-out transactions every 100 ms."""
    return BrokerProcess(
        data_dir, **{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"}
    ).start()


def new_topic(broker: BrokerProcess, partitions: int = 2) -> str:
    name = f"txn-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(10)
    return name


def txn_producer(broker: BrokerProcess, transactional_id: str, **extra: Any) -> Producer:
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id,
         **QUIET, **extra}
    )
    producer.init_transactions(20)
    return producer


def consume_all(
    broker: BrokerProcess, topic: str, partitions: int, isolation: str, expect: int | None = None,
    settle: float = 1.0, deadline: float = 15.0,
) -> list[str]:
    """Values of `topic` read from the start until `expect` arrived (or nothing new for
    `settle` seconds when no count is expected)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:6]}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            **QUIET,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[str] = []
    end = time.monotonic() + deadline
    last_new = time.monotonic()
    try:
        while time.monotonic() < end:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                values.append(message.value().decode())
                last_new = time.monotonic()
            if expect is not None and len(values) >= expect:
                break
            if expect is None and time.monotonic() - last_new > settle:
                break
    finally:
        consumer.close()
    return values


def connect(broker: BrokerProcess) -> Connection:
    host, port = broker.bootstrap.rsplit(":", 1)
    return Connection(host, int(port), "txn-test", 10.0)


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """The first result of `predicate` that is neither None nor False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result is not None and result is not False:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def list_offsets(conn: Connection, topic: str, partition: int, isolation: int) -> int:
    response = conn.send(
        LIST_OFFSETS,
        7,
        {
            "replica_id": -1,
            "isolation_level": isolation,
            "topics": [
                {
                    "name": topic,
                    "partitions": [
                        {"partition_index": partition, "current_leader_epoch": -1,
                         "timestamp": LATEST}
                    ],
                }
            ],
        },
    )
    result = response.topics[0].partitions[0]
    assert result.error_code == NONE
    return result.offset


def describe_txn(conn: Connection, transactional_id: str) -> SimpleNamespace:
    """DescribeTransactions v0 (decoded by the CLI's reader: kio refuses a start time of -1)."""
    (state,) = describe_transactions(conn, [transactional_id])
    return SimpleNamespace(**state)



# -- raw transactional producer ----------------------------------------------------------------


class RawTxnProducer:
    """The transactional protocol step by step, to see each error code."""

    def __init__(self, broker: BrokerProcess, transactional_id: str, timeout_ms: int = 60000):
        self.conn = connect(broker)
        self.transactional_id = transactional_id
        found = self.conn.send(
            FIND_COORDINATOR,
            4,
            {"key_type": 1, "coordinator_keys": [transactional_id]},
        ).coordinators[0]
        assert found.error_code == NONE
        response = wait_for(
            lambda: self._init(timeout_ms), what="InitProducerId"
        )
        assert response.error_code == NONE, response
        self.producer_id = response.producer_id
        self.epoch = response.producer_epoch
        self.sequence: dict[tuple[str, int], int] = {}

    def _init(self, timeout_ms: int) -> Any:
        response = self.conn.send(
            INIT_PRODUCER_ID,
            4,
            {
                "transactional_id": self.transactional_id,
                "transaction_timeout": timeout_ms,
                "producer_id": -1,
                "producer_epoch": -1,
            },
        )
        retriable = (CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS)
        return None if response.error_code in retriable else response

    def add_partitions(self, topic: str, partitions: list[int], version: int = 3) -> int:
        response = self.conn.send(
            ADD_PARTITIONS_TO_TXN,
            version,
            {
                "v3_and_below_transactional_id": self.transactional_id,
                "v3_and_below_producer_id": self.producer_id,
                "v3_and_below_producer_epoch": self.epoch,
                "v3_and_below_topics": [{"name": topic, "partitions": partitions}],
            },
        )
        codes = {p.partition_error_code for t in response.results_by_topic_v3_and_below
                 for p in t.results_by_partition}
        assert len(codes) == 1, codes
        return codes.pop()

    def produce(self, topic: str, partition: int, values: list[bytes]) -> int:
        sequence = self.sequence.get((topic, partition), 0)
        now = int(time.time() * 1000)
        batch = build_batch(
            [(None, v, (), now) for v in values],
            producer_id=self.producer_id,
            producer_epoch=self.epoch,
            base_sequence=sequence,
            is_transactional=True,
        )
        response = self.conn.send(
            PRODUCE,
            9,
            {
                "transactional_id": self.transactional_id,
                "acks": -1,
                "timeout": 10000,
                "topic_data": [
                    {"name": topic, "partition_data": [{"index": partition, "records": batch}]}
                ],
            },
        )
        code = response.responses[0].partition_responses[0].error_code
        if code == NONE:
            self.sequence[(topic, partition)] = sequence + len(values)
        return code

    def end(self, commit: bool, version: int = 3) -> Any:
        return self.conn.send(
            END_TXN,
            version,
            {
                "transactional_id": self.transactional_id,
                "producer_id": self.producer_id,
                "producer_epoch": self.epoch,
                "committed": commit,
            },
        )

    def close(self) -> None:
        self.conn.close()


def run_cli(broker: BrokerProcess, *args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "rafka", *args, "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
