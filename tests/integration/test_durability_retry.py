"""An idempotent producer's retries after kill -9, request by request (the deterministic form of
an intermittent failure of test_durability.py::test_acked_writes_survive_kill_9).

A producer had batches in the log without their answers when the broker was killed, and another
producer's batch rolled the segment after them. Recovery starts from the roll's producer-state
snapshot, and must still know every batch the producer may retry: librdkafka retries the oldest
unanswered batch first, and OUT_OF_ORDER_SEQUENCE_NUMBER for it is a fatal error.
"""

from __future__ import annotations

import time

import pytest
from broker_process import BrokerProcess
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from rafka.cli.kafka_client import Connection
from rafka.protocol.records import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, build_batch
from rafka.storage.producer_snapshot import snapshot_file_name

PRODUCE, INIT_PRODUCER_ID = 0, 22
NONE = 0
SEGMENT_BYTES = 16384
QUIET = {"log_level": 0}
CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"


def connect(broker: BrokerProcess) -> Connection:
    return Connection(broker.host, broker.port, "durability-retry", 10.0)


def init_producer_id(conn: Connection) -> tuple[int, int]:
    request = {"transactional_id": None, "transaction_timeout": 60_000, "producer_id": -1,
               "producer_epoch": -1}  # fmt: skip
    response = conn.send(INIT_PRODUCER_ID, 5, request)
    assert response.error_code == NONE, response
    return response.producer_id, response.producer_epoch


def produce(
    conn: Connection, topic: str, values: list[bytes], producer: tuple[int, int, int] | None
) -> tuple[int, int]:
    """(error code, base offset) of one acks=all batch; `producer` is (id, epoch, first
    sequence), None for a producer without idempotence."""
    pid, epoch, seq = producer or (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE)
    now = int(time.time() * 1000)
    records = build_batch([(None, v, (), now) for v in values], producer_id=pid,
                          producer_epoch=epoch, base_sequence=seq)  # fmt: skip
    response = conn.send(PRODUCE, 9, {
        "transactional_id": None, "acks": -1, "timeout": 10_000,
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}],
    })  # fmt: skip
    result = response.responses[0].partition_responses[0]
    return result.error_code, result.base_offset


def read_values(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    config = {"bootstrap.servers": bootstrap, "group.id": "durability-retry",
              "enable.auto.commit": False, "enable.partition.eof": True, **QUIET}  # fmt: skip
    consumer = Consumer(config)
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        records: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                return records
            records.append((message.offset(), message.value()))
        raise AssertionError(f"no end of partition after {len(records)} records")
    finally:
        consumer.close()


@pytest.mark.timeout(90)
def test_retries_of_unanswered_batches_before_a_roll_are_deduplicated_after_kill_9(
    broker_factory,
) -> None:
    broker = broker_factory().start()
    topic = "retry-after-roll"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    new_topic = NewTopic(topic, 1, 1, config={"segment.bytes": str(SEGMENT_BYTES)})
    admin.create_topics([new_topic])[topic].result(timeout=15)
    conn = connect(broker)
    pid, epoch = init_producer_id(conn)

    # Most of the first segment, then two batches whose answers the client will never see.
    assert produce(conn, topic, [b"p" * 12_000], (pid, epoch, 0)) == (NONE, 0)
    b1, b2 = [b"b1"], [b"b2-0", b"b2-1"]
    assert produce(conn, topic, b1, (pid, epoch, 1)) == (NONE, 1)
    assert produce(conn, topic, b2, (pid, epoch, 2)) == (NONE, 2)
    # Another producer's batch does not fit: the segment rolls at offset 4, with a snapshot.
    assert produce(conn, topic, [b"q" * 8_000], None) == (NONE, 4)
    partition_dir = broker.data_dir / f"{topic}-0"
    assert (partition_dir / snapshot_file_name(4)).exists()
    conn.close()

    broker.kill()
    assert not (broker.data_dir / CLEAN_SHUTDOWN_MARKER).exists()  # recovery, not a clean start
    broker.start()
    conn = connect(broker)
    # The client retries its unanswered batches oldest first: each is answered with the offsets
    # it was stored at, and nothing is appended again.
    assert produce(conn, topic, b1, (pid, epoch, 1)) == (NONE, 1)
    assert produce(conn, topic, b2, (pid, epoch, 2)) == (NONE, 2)
    assert produce(conn, topic, [b"next"], (pid, epoch, 4)) == (NONE, 5)
    conn.close()

    values = [value for _, value in read_values(broker.bootstrap, topic)]
    assert values == [b"p" * 12_000, *b1, *b2, b"q" * 8_000, b"next"]
