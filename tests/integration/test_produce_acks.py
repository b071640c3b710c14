"""Produce with acks 0, 1 and all, and per-partition errors in one request."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.metadata.v12.response import MetadataResponse
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v9.response import ProduceResponse
from raw_client import RawClient, encode

from rafka.protocol.records import build_batch

pytestmark = pytest.mark.timeout(90)

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REQUIRED_ACKS = 21


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def read_values(bootstrap: str, topic: str, partition: int, count: int) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


def produce_request(
    acks: int, partitions: dict[tuple[str, int], bytes], timeout_ms: int = 10_000
) -> ProduceRequest:
    by_topic: dict[str, list[PartitionProduceData]] = {}
    for (topic, index), records in partitions.items():
        by_topic.setdefault(topic, []).append(PartitionProduceData(index=index, records=records))
    return ProduceRequest(
        transactional_id=None,
        acks=acks,
        timeout=timedelta(milliseconds=timeout_ms),
        topic_data=tuple(
            TopicProduceData(name=name, partition_data=tuple(parts))
            for name, parts in by_topic.items()
        ),
    )


def one_batch(value: bytes) -> bytes:
    return build_batch([(b"k", value, (), int(time.time() * 1000))])


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_confluent_producer_every_acks_setting_is_readable(broker, acks: str) -> None:
    topic = f"acks-{acks}"
    create_topic(broker.bootstrap, topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": acks, "linger.ms": 2})
    reports: list[tuple[object, int]] = []
    for i in range(500):
        producer.produce(
            topic, f"v{i}".encode(), on_delivery=lambda e, m: reports.append((e, m.offset()))
        )
    assert producer.flush(30) == 0
    assert all(error is None for error, _ in reports) and len(reports) == 500
    if acks != "0":
        # Offsets are known only with a response; as on Kafka the first record is offset 0.
        assert [offset for _, offset in reports] == list(range(500))
    assert read_values(broker.bootstrap, topic, 0, 500) == [f"v{i}".encode() for i in range(500)]


def test_acks_zero_gets_no_response_and_later_responses_keep_order(broker) -> None:
    topic = "acks-zero-raw"
    create_topic(broker.bootstrap, topic)
    client = RawClient(broker.bootstrap)
    try:
        produce = produce_request(0, {(topic, 0): one_batch(b"fire-and-forget")})
        client.send(0, 9, encode(produce), flexible=True)  # acks=0: the broker stays silent
        metadata = MetadataRequest(
            topics=(MetadataRequestTopic(topic_id=None, name=topic),),
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )
        # The next frame on the connection must be the metadata answer, not a produce answer.
        response = client.request(metadata, MetadataResponse)
        assert [t.name for t in response.topics] == [topic]
        ack = client.request(
            produce_request(-1, {(topic, 0): one_batch(b"acknowledged")}), ProduceResponse
        )
        [partition] = ack.responses[0].partition_responses
        assert partition.error_code == 0 and partition.base_offset == 1
    finally:
        client.close()
    assert read_values(broker.bootstrap, topic, 0, 2) == [b"fire-and-forget", b"acknowledged"]


def test_per_partition_errors_in_one_request(broker) -> None:
    topic = "mixed"
    create_topic(broker.bootstrap, topic, partitions=2)
    client = RawClient(broker.bootstrap)
    try:
        request = produce_request(
            -1,
            {
                (topic, 0): one_batch(b"p0"),
                (topic, 7): one_batch(b"no such partition"),
                ("missing-topic", 0): one_batch(b"no such topic"),
                (topic, 1): one_batch(b"p1"),
            },
        )
        response = client.request(request, ProduceResponse)
    finally:
        client.close()
    results = {
        (t.name, p.index): (int(p.error_code), int(p.base_offset))
        for t in response.responses
        for p in t.partition_responses
    }
    assert results == {
        (topic, 0): (0, 0),
        (topic, 1): (0, 0),
        (topic, 7): (UNKNOWN_TOPIC_OR_PARTITION, -1),
        ("missing-topic", 0): (UNKNOWN_TOPIC_OR_PARTITION, -1),
    }
    assert read_values(broker.bootstrap, topic, 1, 1) == [b"p1"]


def test_invalid_acks_value_is_refused(broker) -> None:
    topic = "bad-acks"
    create_topic(broker.bootstrap, topic)
    client = RawClient(broker.bootstrap)
    try:
        response = client.request(
            produce_request(2, {(topic, 0): one_batch(b"x")}), ProduceResponse
        )
    finally:
        client.close()
    [partition] = response.responses[0].partition_responses
    assert partition.error_code == INVALID_REQUIRED_ACKS
