"""Transactions against a real broker: confluent-kafka and kafka-python transactional producers,
read_committed and read_uncommitted consumers, zombie fencing, the coordinator's timeout abort,
the last stable offset, and the describe/list APIs with `rafka txn`.

Wire-level checks (exact error codes of fenced requests) use rafka.cli.kafka_client.Connection.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from broker_process import BrokerProcess
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from rafka.cli.kafka_client import Connection
from rafka.cli.txn import describe_transactions
from rafka.protocol.records import build_batch

pytestmark = pytest.mark.timeout(120)

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


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(
        tmp_path_factory.mktemp("transactions"),
        **{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"},
    ).start()
    yield process
    process.kill()


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


# -- 1. committed visible, aborted not (real clients) ---------------------------------------------


def test_confluent_committed_visible_aborted_only_to_read_uncommitted(broker) -> None:
    topic = new_topic(broker)
    producer = txn_producer(broker, f"cf-{topic}")
    producer.begin_transaction()
    for i in range(6):
        producer.produce(topic, value=f"commit-{i}".encode(), partition=i % 2)
    producer.commit_transaction(20)
    producer.begin_transaction()
    for i in range(6):
        producer.produce(topic, value=f"abort-{i}".encode(), partition=i % 2)
    producer.flush(20)
    producer.abort_transaction(20)
    producer.begin_transaction()
    for i in range(4):
        producer.produce(topic, value=f"later-{i}".encode(), partition=i % 2)
    producer.commit_transaction(20)

    committed = [f"commit-{i}" for i in range(6)] + [f"later-{i}" for i in range(4)]
    aborted = [f"abort-{i}" for i in range(6)]
    seen = consume_all(broker, topic, 2, "read_committed", expect=len(committed))
    assert sorted(seen) == sorted(committed)
    # Nothing aborted arrives later either, once the consumer has passed every marker.
    assert sorted(consume_all(broker, topic, 2, "read_committed", settle=1.0)) == sorted(committed)
    everything = consume_all(broker, topic, 2, "read_uncommitted", expect=16)
    assert sorted(everything) == sorted(committed + aborted)

    conn = connect(broker)
    for p in range(2):  # no open transaction: the LSO is the high watermark
        assert list_offsets(conn, topic, p, 1) == list_offsets(conn, topic, p, 0)
    conn.close()


def test_kafka_python_committed_visible_aborted_only_to_read_uncommitted(broker) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KafkaTopicPartition

    topic = new_topic(broker)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"kp-{topic}")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for i in range(6):
            producer.send(topic, value=f"commit-{i}".encode(), partition=i % 2)
        producer.commit_transaction()
        producer.begin_transaction()
        for i in range(6):
            producer.send(topic, value=f"abort-{i}".encode(), partition=i % 2)
        producer.flush()
        producer.abort_transaction()
    finally:
        producer.close()

    def read(isolation: str, expect: int) -> list[str]:
        consumer = KafkaConsumer(
            bootstrap_servers=broker.bootstrap, isolation_level=isolation, enable_auto_commit=False
        )
        consumer.assign([KafkaTopicPartition(topic, p) for p in range(2)])
        consumer.seek_to_beginning()
        values: list[str] = []
        deadline = time.monotonic() + 15
        while len(values) < expect and time.monotonic() < deadline:
            for records in consumer.poll(200).values():
                values += [r.value.decode() for r in records]
        consumer.close()
        return values

    assert sorted(read("read_committed", 6)) == [f"commit-{i}" for i in range(6)]
    everything = read("read_uncommitted", 12)
    assert sorted(everything) == sorted(
        [f"commit-{i}" for i in range(6)] + [f"abort-{i}" for i in range(6)]
    )
    # kafka-python's own consumer with read_committed, also across a later fetch.
    assert all(not v.startswith("abort") for v in consume_all(broker, topic, 2, "read_committed"))


def test_open_transaction_holds_back_read_committed_readers(broker) -> None:
    """The LSO stops read_committed consumers at the first undecided offset, even for
    non-transactional data written after it; committing releases both."""
    topic = new_topic(broker, partitions=1)
    producer = txn_producer(broker, f"lso-{topic}")
    producer.begin_transaction()
    producer.produce(topic, value=b"in-txn", partition=0)
    producer.flush(20)
    plain = Producer({"bootstrap.servers": broker.bootstrap, **QUIET})
    plain.produce(topic, value=b"plain", partition=0)
    plain.flush(20)

    conn = connect(broker)
    high_watermark = list_offsets(conn, topic, 0, 0)
    stable = list_offsets(conn, topic, 0, 1)
    assert stable < high_watermark
    assert consume_all(broker, topic, 1, "read_committed", settle=1.0) == []
    assert sorted(consume_all(broker, topic, 1, "read_uncommitted", expect=2)) == [
        "in-txn",
        "plain",
    ]
    state = describe_txn(conn, f"lso-{topic}")
    assert state.state == "Ongoing"
    assert state.partitions == [{"topic": topic, "partition": 0}]

    producer.commit_transaction(20)
    assert consume_all(broker, topic, 1, "read_committed", expect=2) == ["in-txn", "plain"]
    assert list_offsets(conn, topic, 0, 1) == list_offsets(conn, topic, 0, 0)
    conn.close()


# -- 3. zombie fencing ----------------------------------------------------------------------------


def test_confluent_zombie_is_fenced_by_a_new_instance(broker) -> None:
    topic = new_topic(broker)
    transactional_id = f"zombie-{topic}"
    zombie = txn_producer(broker, transactional_id)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie-1", partition=0)
    zombie.flush(20)

    successor = txn_producer(broker, transactional_id)  # fences the zombie, aborts its txn
    with pytest.raises(KafkaException) as failure:
        # Adding the new partition is refused: librdkafka learns it is fenced.
        zombie.produce(topic, value=b"zombie-2", partition=1)
        zombie.flush(10)
        zombie.commit_transaction(10)
    assert failure.value.args[0].fatal()
    with pytest.raises(KafkaException):
        zombie.commit_transaction(10)

    successor.begin_transaction()
    successor.produce(topic, value=b"successor", partition=0)
    successor.commit_transaction(20)
    assert consume_all(broker, topic, 2, "read_committed", expect=1) == ["successor"]
    assert "successor" in consume_all(broker, topic, 2, "read_uncommitted")
    assert not any(v.startswith("zombie") for v in consume_all(broker, topic, 2, "read_committed"))


def test_raw_zombie_cannot_produce_add_commit_or_commit_offsets(broker) -> None:
    topic = new_topic(broker)
    transactional_id = f"raw-zombie-{topic}"
    zombie = RawTxnProducer(broker, transactional_id)
    assert zombie.add_partitions(topic, [0]) == NONE
    assert zombie.produce(topic, 0, [b"zombie-1"]) == NONE

    successor = RawTxnProducer(broker, transactional_id)
    assert successor.producer_id == zombie.producer_id
    assert successor.epoch > zombie.epoch

    # The zombie's open transaction was aborted under the new epoch: every request of the old
    # epoch is refused, and older request versions get the error they know.
    assert zombie.produce(topic, 0, [b"zombie-2"]) == INVALID_PRODUCER_EPOCH
    assert zombie.produce(topic, 1, [b"zombie-3"]) == INVALID_PRODUCER_EPOCH
    assert zombie.add_partitions(topic, [1]) == PRODUCER_FENCED
    assert zombie.add_partitions(topic, [1], version=1) == INVALID_PRODUCER_EPOCH
    assert zombie.end(commit=True).error_code == PRODUCER_FENCED
    assert zombie.end(commit=True, version=1).error_code == INVALID_PRODUCER_EPOCH
    offsets = zombie.conn.send(
        ADD_OFFSETS_TO_TXN,
        3,
        {
            "transactional_id": transactional_id,
            "producer_id": zombie.producer_id,
            "producer_epoch": zombie.epoch,
            "group_id": "zombie-group",
        },
    )
    assert offsets.error_code == PRODUCER_FENCED
    def commit_offsets() -> int | None:
        response = zombie.conn.send(
            TXN_OFFSET_COMMIT,
            3,
            {
                "transactional_id": transactional_id,
                "group_id": "zombie-group",
                "producer_id": zombie.producer_id,
                "producer_epoch": zombie.epoch,
                "generation_id": -1,
                "member_id": "",
                "group_instance_id": None,
                "topics": [
                    {
                        "name": topic,
                        "partitions": [
                            {"partition_index": 0, "committed_offset": 5,
                             "committed_leader_epoch": -1, "committed_metadata": ""}
                        ],
                    }
                ],
            },
        )
        code = response.topics[0].partitions[0].error_code
        # The offsets topic was just created: retry while its coordinator loads, as clients do.
        return None if code == COORDINATOR_LOAD_IN_PROGRESS else code

    assert wait_for(commit_offsets, what="the group coordinator") == PRODUCER_FENCED

    # A transactional write to a partition never added to the transaction is refused too
    # (KIP-890 part 1): it would open a transaction nobody ends.
    assert successor.produce(topic, 1, [b"unadded"]) == INVALID_TXN_STATE
    assert successor.add_partitions(topic, [0, 1]) == NONE
    assert successor.produce(topic, 1, [b"successor"]) == NONE
    assert successor.end(commit=True).error_code == NONE
    assert consume_all(broker, topic, 2, "read_committed", expect=1) == ["successor"]
    zombie.close()
    successor.close()


# -- 4. transaction timeout ---------------------------------------------------------------------


def test_transaction_past_its_timeout_is_aborted_and_lso_advances(broker) -> None:
    topic = new_topic(broker, partitions=1)
    transactional_id = f"timeout-{topic}"
    producer = RawTxnProducer(broker, transactional_id, timeout_ms=1000)
    assert producer.add_partitions(topic, [0]) == NONE
    assert producer.produce(topic, 0, [b"abandoned-1", b"abandoned-2"]) == NONE
    conn = connect(broker)
    assert list_offsets(conn, topic, 0, 1) < list_offsets(conn, topic, 0, 0)

    started = time.monotonic()
    state = wait_for(
        lambda: (s := describe_txn(conn, transactional_id)).state == "CompleteAbort" and s,
        what="the coordinator to abort the timed-out transaction",
    )
    assert time.monotonic() - started < 10
    assert state.producer_epoch == producer.epoch + 1  # fenced: the late producer cannot finish
    wait_for(
        lambda: list_offsets(conn, topic, 0, 1) == list_offsets(conn, topic, 0, 0),
        what="the last stable offset to reach the high watermark",
    )
    assert producer.end(commit=True).error_code == PRODUCER_FENCED
    assert producer.produce(topic, 0, [b"late"]) == INVALID_PRODUCER_EPOCH
    assert consume_all(broker, topic, 1, "read_committed", settle=0.5) == []
    assert sorted(consume_all(broker, topic, 1, "read_uncommitted", expect=2)) == [
        "abandoned-1",
        "abandoned-2",
    ]
    producer.close()
    conn.close()


def test_confluent_transaction_timeout_aborts(broker) -> None:
    topic = new_topic(broker, partitions=1)
    producer = txn_producer(
        broker, f"cf-timeout-{topic}", **{"transaction.timeout.ms": 1000,
                                          "message.timeout.ms": 1000}
    )
    producer.begin_transaction()
    producer.produce(topic, value=b"abandoned", partition=0)
    producer.flush(10)
    conn = connect(broker)
    wait_for(
        lambda: describe_txn(conn, f"cf-timeout-{topic}").state == "CompleteAbort",
        what="timeout abort",
    )
    wait_for(lambda: list_offsets(conn, topic, 0, 1) == list_offsets(conn, topic, 0, 0),
             what="LSO == HW")
    assert consume_all(broker, topic, 1, "read_committed", settle=0.5) == []
    conn.close()


# -- describe/list APIs and the CLI ---------------------------------------------------------------


def test_describe_and_list_transactions_and_producers(broker) -> None:
    topic = new_topic(broker)
    transactional_id = f"described-{topic}"
    producer = RawTxnProducer(broker, transactional_id)
    empty = run_cli(broker, "txn", "describe", "-t", transactional_id, "--json")
    assert (empty["state"], empty["start_time_ms"], empty["partitions"]) == ("Empty", None, [])
    assert producer.add_partitions(topic, [0, 1]) == NONE
    assert producer.produce(topic, 1, [b"x"]) == NONE
    conn = producer.conn

    listed = conn.send(
        LIST_TRANSACTIONS, 1, {"state_filters": ["Ongoing", "Bogus"], "producer_id_filters": [],
                               "duration_filter": -1}
    )
    assert listed.error_code == NONE
    assert list(listed.unknown_state_filters) == ["Bogus"]
    ours = [t for t in listed.transaction_states if t.transactional_id == transactional_id]
    assert [(t.producer_id, t.transaction_state) for t in ours] == [
        (producer.producer_id, "Ongoing")
    ]
    by_pid = conn.send(
        LIST_TRANSACTIONS, 0,
        {"state_filters": [], "producer_id_filters": [producer.producer_id]},
    )
    assert [t.transactional_id for t in by_pid.transaction_states] == [transactional_id]

    state = describe_txn(conn, transactional_id)
    assert state.error_code == NONE
    assert (state.producer_id, state.producer_epoch) == (producer.producer_id, producer.epoch)
    assert state.partitions == [
        {"topic": topic, "partition": 0},
        {"topic": topic, "partition": 1},
    ]
    assert state.start_time_ms > 0 and state.timeout_ms == 60000
    unknown = describe_txn(conn, "never-used-id")
    assert unknown.error_code == 105  # TRANSACTIONAL_ID_NOT_FOUND

    producers = conn.send(
        DESCRIBE_PRODUCERS, 0, {"topics": [{"name": topic, "partition_indexes": [0, 1]}]}
    )
    p0, p1 = producers.topics[0].partitions
    assert p0.active_producers == ()
    (active,) = p1.active_producers
    assert active.producer_id == producer.producer_id
    assert active.current_txn_start_offset >= 0

    cli = run_cli(broker, "txn", "describe", "--transactional-id", transactional_id, "--json")
    assert cli["state"] == "Ongoing"
    assert cli["producer_id"] == producer.producer_id
    assert {(p["topic"], p["partition"]) for p in cli["partitions"]} == {(topic, 0), (topic, 1)}
    listed_cli = run_cli(broker, "txn", "list", "--state", "Ongoing", "--json")
    assert transactional_id in [t["transactional_id"] for t in listed_cli]
    producers_cli = run_cli(
        broker, "txn", "describe-producers", "--topic", topic, "--partition", "1", "--json"
    )
    assert [p["producer_id"] for p in producers_cli] == [producer.producer_id]

    assert producer.end(commit=False).error_code == NONE
    assert describe_txn(conn, transactional_id).state in (
        "PrepareAbort",
        "CompleteAbort",
    )
    table = subprocess.run(
        [sys.executable, "-m", "rafka", "txn", "list", "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert table.splitlines()[0].split() == [
        "TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"
    ]
    assert transactional_id in table
    producer.close()


def run_cli(broker: BrokerProcess, *args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "rafka", *args, "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_transactional_offsets_are_unstable_until_the_commit(broker) -> None:
    topic = new_topic(broker, partitions=1)
    transactional_id, group = f"offsets-{topic}", f"group-{topic}"
    producer = RawTxnProducer(broker, transactional_id)
    conn = producer.conn
    added = conn.send(
        ADD_OFFSETS_TO_TXN,
        3,
        {"transactional_id": transactional_id, "producer_id": producer.producer_id,
         "producer_epoch": producer.epoch, "group_id": group},
    )
    assert added.error_code == NONE

    def commit_offsets() -> int | None:
        response = conn.send(
            TXN_OFFSET_COMMIT,
            3,
            {
                "transactional_id": transactional_id, "group_id": group,
                "producer_id": producer.producer_id, "producer_epoch": producer.epoch,
                "generation_id": -1, "member_id": "", "group_instance_id": None,
                "topics": [{"name": topic, "partitions": [
                    {"partition_index": 0, "committed_offset": 42, "committed_leader_epoch": -1,
                     "committed_metadata": "m"}]}],
            },
        )
        code = response.topics[0].partitions[0].error_code
        return None if code == COORDINATOR_LOAD_IN_PROGRESS else code

    assert wait_for(commit_offsets, what="the group coordinator") == NONE

    def fetch(require_stable: bool) -> tuple[int, int]:
        response = conn.send(
            OFFSET_FETCH,
            7,
            {"group_id": group, "topics": [{"name": topic, "partition_indexes": [0]}],
             "require_stable": require_stable},
        )
        partition = response.topics[0].partitions[0]
        return partition.error_code, partition.committed_offset

    assert fetch(require_stable=True) == (UNSTABLE_OFFSET_COMMIT, -1)
    assert fetch(require_stable=False) == (NONE, -1)
    assert producer.end(commit=True).error_code == NONE
    assert fetch(require_stable=True) == (NONE, 42)
    producer.close()


def test_batched_add_partitions_and_write_txn_markers(broker) -> None:
    """The broker-to-broker forms: AddPartitionsToTxn v4 (several ids, verify_only) and
    WriteTxnMarkers, which a remote coordinator would send to end a transaction here."""
    topic = new_topic(broker)
    one = RawTxnProducer(broker, f"batched-1-{topic}")
    two = RawTxnProducer(broker, f"batched-2-{topic}")
    conn = one.conn

    def add(verify_only: bool, *producers: RawTxnProducer) -> dict[str, set[int]]:
        response = conn.send(
            ADD_PARTITIONS_TO_TXN,
            4,
            {
                "transactions": [
                    {
                        "transactional_id": p.transactional_id,
                        "producer_id": p.producer_id,
                        "producer_epoch": p.epoch,
                        "verify_only": verify_only,
                        "topics": [{"name": topic, "partitions": [0, 1]}],
                    }
                    for p in producers
                ]
            },
        )
        assert response.error_code == NONE
        return {
            r.transactional_id: {p.partition_error_code for t in r.topic_results
                                 for p in t.results_by_partition}
            for r in response.results_by_transaction
        }

    assert add(True, one, two) == {one.transactional_id: {INVALID_TXN_STATE},
                                   two.transactional_id: {INVALID_TXN_STATE}}
    assert add(False, one, two) == {one.transactional_id: {NONE}, two.transactional_id: {NONE}}
    assert add(True, one) == {one.transactional_id: {NONE}}
    assert one.produce(topic, 0, [b"one"]) == NONE
    assert two.produce(topic, 0, [b"two"]) == NONE

    # An ABORT marker for producer one, as the coordinator's marker channel writes it.
    coordinator_epoch = 1_000_000  # at least the real coordinator's epoch
    written = conn.send(
        27,
        1,
        {
            "markers": [
                {
                    "producer_id": one.producer_id,
                    "producer_epoch": one.epoch,
                    "transaction_result": False,
                    "topics": [{"name": topic, "partition_indexes": [0]}],
                    "coordinator_epoch": coordinator_epoch,
                }
            ]
        },
    )
    (result,) = written.markers
    assert result.producer_id == one.producer_id
    assert [(p.partition_index, p.error_code) for p in result.topics[0].partitions] == [(0, NONE)]
    # Producer two's transaction still holds the LSO; once it commits, only its record shows.
    assert two.end(commit=True).error_code == NONE
    assert consume_all(broker, topic, 2, "read_committed", expect=1) == ["two"]
    one.close()
    two.close()
