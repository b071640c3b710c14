"""Transactions against a real broker, as clients live them: confluent-kafka and kafka-python
transactional producers with read_committed and read_uncommitted consumers, the last stable
offset, zombie fencing and the coordinator's timeout abort. The transaction APIs beyond a
client's happy path (describe/list, `rafka txn`, transactional offsets, the broker-to-broker
forms) are in test_transactions_apis.py; helpers in txn_support.py.

Wire-level checks (exact error codes of fenced requests) use rafka.cli.kafka_client.Connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from broker_process import BrokerProcess
from confluent_kafka import KafkaException, Producer
from txn_support import (
    ADD_OFFSETS_TO_TXN,
    COORDINATOR_LOAD_IN_PROGRESS,
    INVALID_PRODUCER_EPOCH,
    INVALID_TXN_STATE,
    NONE,
    PRODUCER_FENCED,
    QUIET,
    TXN_OFFSET_COMMIT,
    RawTxnProducer,
    connect,
    consume_all,
    describe_txn,
    list_offsets,
    new_topic,
    start_broker,
    txn_producer,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = start_broker(tmp_path_factory.mktemp("transactions"))
    yield process
    process.kill()


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

    # Its offsets' transaction verification answers INVALID_PRODUCER_EPOCH (Kafka 4.3.1 turns
    # the verification's PRODUCER_FENCED into it; the conformance producers scenario).
    assert wait_for(commit_offsets, what="the group coordinator") == INVALID_PRODUCER_EPOCH

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


