"""Long-polling fetches: a waiting consumer is woken by new data, not by its max wait.

The latency measured is from the producer's acks=all delivery report to the moment the consumer
holds the message. Waiting fetches sleep on the partition's high watermark, so this should be a
millisecond or two; 100 ms leaves room for a loaded CI machine while still failing if the broker
only answers at the end of `max_wait` (500 ms for librdkafka's default fetch.wait.max.ms).
"""

from __future__ import annotations

import io
import select
import socket
import struct
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.fetch.v12.request import FetchPartition as FetchPartitionV12
from kio.schema.fetch.v12.request import FetchRequest as FetchRequestV12
from kio.schema.fetch.v12.request import FetchTopic as FetchTopicV12
from kio.schema.fetch.v12.response import FetchResponse as FetchResponseV12
from kio.schema.fetch.v16.request import FetchPartition as FetchPartitionV16
from kio.schema.fetch.v16.request import FetchRequest as FetchRequestV16
from kio.schema.fetch.v16.request import FetchTopic as FetchTopicV16
from kio.schema.fetch.v16.response import FetchResponse as FetchResponseV16
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.metadata.v12.response import MetadataResponse
from kio.serial import entity_reader, entity_writer

from rafka.protocol.records import decode_batch, iter_batch_headers

pytestmark = pytest.mark.timeout(90)

LATENCY_LIMIT = 0.100  # seconds from delivery report to the consumer holding the message
ROUNDS = 20
QUIET = {"log_level": 3}  # librdkafka: errors only


# --- real clients ---------------------------------------------------------------------------


def create_topics(bootstrap: str, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=1, replication_factor=1) for n in names]
    )
    for future in futures.values():
        future.result(timeout=15)


class AckedProducer:
    """A confluent-kafka producer (acks=all) that reports when each message was acknowledged."""

    def __init__(self, bootstrap: str) -> None:
        self._producer: Producer | None = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, **QUIET}
        )

    def send(self, topic: str, value: bytes) -> tuple[float, int]:
        """Produce one message and wait for its delivery report: (ack time, offset)."""
        report: dict[str, Any] = {}

        def delivered(err: Any, msg: Any) -> None:
            report.update(at=time.monotonic(), err=err, offset=msg.offset())

        producer = self._producer
        assert producer is not None
        producer.produce(topic, value=value, on_delivery=delivered)
        deadline = time.monotonic() + 15
        while not report and time.monotonic() < deadline:
            producer.poll(0.5)  # returns as soon as the delivery report is served
        assert report, f"no delivery report for {value!r}"
        assert report["err"] is None, f"delivery of {value!r} failed: {report['err']}"
        return report["at"], report["offset"]

    def close(self) -> None:
        """Flush and destroy the client now, before the broker is killed at teardown (a
        lingering librdkafka instance would log connection failures into later tests)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(10)


def poll_value(consumer: Consumer, deadline: float) -> tuple[float, bytes]:
    while (remaining := deadline - time.monotonic()) > 0:
        msg = consumer.poll(remaining)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        return time.monotonic(), msg.value()
    raise AssertionError("the consumer received nothing before the deadline")


def test_confluent_consumer_gets_a_message_right_after_its_ack(broker) -> None:
    topic = "long-poll"
    create_topics(broker.bootstrap, topic)
    producer = AckedProducer(broker.bootstrap)
    # Manual assignment only: the broker has no group coordinator yet, so nothing may commit.
    # fetch.wait.max.ms stays at its default (500 ms).
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "long-poll-test",  # required by confluent-kafka; never used
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            **QUIET,
        }
    )
    try:
        _, first = producer.send(topic, b"warm-up")
        consumer.assign([TopicPartition(topic, 0, first)])
        _, value = poll_value(consumer, time.monotonic() + 15)
        assert value == b"warm-up"

        latencies: list[float] = []
        for i in range(ROUNDS):
            # Let the consumer park a fetch; vary the idle time so the message lands at
            # different points of the 500 ms fetch cycle. Nothing may arrive meanwhile.
            idle = 0.05 + (i % 10) * 0.055
            assert consumer.poll(idle) is None
            acked_at, _ = producer.send(topic, f"message-{i}".encode())
            received_at, value = poll_value(consumer, acked_at + 5)
            assert value == f"message-{i}".encode()
            latencies.append(received_at - acked_at)
        slowest = max(latencies)
        shown = ", ".join(f"{1000 * t:.1f}" for t in latencies)
        assert slowest < LATENCY_LIMIT, (
            f"ack-to-consumer latency up to {1000 * slowest:.1f} ms (limit "
            f"{1000 * LATENCY_LIMIT:.0f} ms); all rounds in ms: {shown}"
        )
    finally:
        consumer.close()
        producer.close()


# --- raw fetches ----------------------------------------------------------------------------


class RawConnection:
    """One TCP connection sending kio request entities and decoding their responses."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        self._correlation = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, request: Any) -> int:
        self._correlation += 1
        body = io.BytesIO()
        entity_writer(type(request))(body, request)
        client = b"long-poll-test"
        header = struct.pack(
            ">hhih", request.__api_key__, request.__version__, self._correlation, len(client)
        )
        header += client + b"\x00"  # request header v2: flexible requests only here
        payload = header + body.getvalue()
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        return self._correlation

    def has_response(self, timeout: float) -> bool:
        readable, _, _ = select.select([self.sock], [], [], timeout)
        return bool(readable)

    def receive(self, correlation_id: int, response_cls: type) -> Any:
        (size,) = struct.unpack(">i", self._read(4))
        payload = self._read(size)
        assert struct.unpack_from(">i", payload)[0] == correlation_id
        assert payload[4] == 0, "expected an empty response-header tagged-field section"
        response, used = entity_reader(response_cls)(payload, 5)
        assert used == size - 5
        return response

    def request(self, request: Any, response_cls: type) -> Any:
        return self.receive(self.send(request), response_cls)

    def _read(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return bytes(data)


def fetch_request(
    version: int, topic: str, topic_id: uuid.UUID, offset: int, max_wait_ms: int, min_bytes: int
) -> Any:
    if version == 12:
        partition_cls, topic_cls, request_cls = FetchPartitionV12, FetchTopicV12, FetchRequestV12
        topic_key: dict[str, Any] = {"topic": topic}
    else:
        partition_cls, topic_cls, request_cls = FetchPartitionV16, FetchTopicV16, FetchRequestV16
        topic_key = {"topic_id": topic_id}
    extra = {"replica_id": -1} if version == 12 else {}
    return request_cls(
        max_wait=timedelta(milliseconds=max_wait_ms),
        min_bytes=min_bytes,
        topics=(
            topic_cls(
                **topic_key,
                partitions=(
                    partition_cls(partition=0, fetch_offset=offset, partition_max_bytes=1 << 20),
                ),
            ),
        ),
        forgotten_topics_data=(),
        **extra,
    )


FETCH_RESPONSES = {12: FetchResponseV12, 16: FetchResponseV16}


def only_partition(response: Any) -> Any:
    assert int(response.error_code) == 0
    [topic] = response.responses
    [partition] = topic.partitions
    assert int(partition.error_code) == 0, f"partition error {partition.error_code}"
    return partition


def values_in(records: bytes | None) -> list[bytes | None]:
    values: list[bytes | None] = []
    for pos, header in iter_batch_headers(records or b""):
        if header.is_control:
            continue
        _, decoded = decode_batch(records, pos)
        values += [record.value for record in decoded]
    return values


def topic_id_of(connection: RawConnection, topic: str) -> uuid.UUID:
    request = MetadataRequest(
        topics=(MetadataRequestTopic(topic_id=None, name=topic),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    [described] = connection.request(request, MetadataResponse).topics
    assert int(described.error_code) == 0
    return described.topic_id


def high_watermark(connection: RawConnection, version: int, topic: str, topic_id: uuid.UUID) -> int:
    request = fetch_request(version, topic, topic_id, 0, max_wait_ms=0, min_bytes=0)
    return int(only_partition(connection.request(request, FETCH_RESPONSES[version])).high_watermark)


@pytest.mark.parametrize("version", [12, 16])
def test_raw_long_poll_returns_as_soon_as_data_arrives(broker, version: int) -> None:
    topic = "raw-long-poll"
    create_topics(broker.bootstrap, topic)
    producer = AckedProducer(broker.bootstrap)
    connection = RawConnection(broker.bootstrap)
    try:
        topic_id = topic_id_of(connection, topic)
        offset = high_watermark(connection, version, topic, topic_id)
        latencies: list[float] = []
        for i in range(ROUNDS):
            request = fetch_request(version, topic, topic_id, offset, max_wait_ms=5000, min_bytes=1)
            sent_at = time.monotonic()
            correlation_id = connection.send(request)
            # The fetch is parked: no (empty) answer before data exists.
            idle = 0.03 + (i % 5) * 0.04
            assert not connection.has_response(idle), "fetch answered before any data arrived"
            value = f"raw-{i}".encode()
            acked_at, produced_offset = producer.send(topic, value)
            assert produced_offset == offset
            assert connection.has_response(5.0)
            received_at = time.monotonic()
            partition = only_partition(connection.receive(correlation_id, FETCH_RESPONSES[version]))
            assert values_in(partition.records) == [value]
            assert int(partition.high_watermark) == offset + 1
            assert received_at - sent_at < 2.5, (
                f"long poll took {received_at - sent_at:.2f} s of its 5 s max_wait"
            )
            latencies.append(received_at - acked_at)
            offset += 1
        slowest = max(latencies)
        shown = ", ".join(f"{1000 * t:.1f}" for t in latencies)
        assert slowest < LATENCY_LIMIT, (
            f"ack-to-fetch-response latency up to {1000 * slowest:.1f} ms; rounds in ms: {shown}"
        )
    finally:
        connection.close()
        producer.close()


@pytest.mark.parametrize("version", [12, 16])
def test_raw_long_poll_without_data_returns_empty_at_max_wait(broker, version: int) -> None:
    """Data on another topic during the wait must not end it early."""
    topic, other = "quiet", "busy"
    create_topics(broker.bootstrap, topic, other)
    producer = AckedProducer(broker.bootstrap)
    connection = RawConnection(broker.bootstrap)
    max_wait = 1.5
    try:
        topic_id = topic_id_of(connection, topic)
        offset = high_watermark(connection, version, topic, topic_id)
        request = fetch_request(version, topic, topic_id, offset, int(max_wait * 1000), 1)
        sent_at = time.monotonic()
        correlation_id = connection.send(request)
        producer.send(other, b"elsewhere")
        assert connection.has_response(10.0)
        elapsed = time.monotonic() - sent_at
        partition = only_partition(connection.receive(correlation_id, FETCH_RESPONSES[version]))
        assert values_in(partition.records) == []
        assert int(partition.high_watermark) == offset
        assert max_wait - 0.05 <= elapsed <= max_wait + 0.5, (
            f"empty long poll answered after {elapsed:.3f} s, max_wait {max_wait} s"
        )
    finally:
        connection.close()
        producer.close()


def test_raw_long_poll_waits_for_min_bytes(broker) -> None:
    """One small message is below min_bytes: the fetch keeps waiting, then returns it at
    max_wait (Kafka answers with what it has when the wait runs out)."""
    topic = "min-bytes"
    create_topics(broker.bootstrap, topic)
    producer = AckedProducer(broker.bootstrap)
    connection = RawConnection(broker.bootstrap)
    max_wait = 1.0
    try:
        topic_id = topic_id_of(connection, topic)
        offset = high_watermark(connection, 12, topic, topic_id)
        request = fetch_request(12, topic, topic_id, offset, int(max_wait * 1000), 100_000)
        sent_at = time.monotonic()
        correlation_id = connection.send(request)
        producer.send(topic, b"small")
        assert connection.has_response(10.0)
        elapsed = time.monotonic() - sent_at
        partition = only_partition(connection.receive(correlation_id, FetchResponseV12))
        assert values_in(partition.records) == [b"small"]
        assert max_wait - 0.05 <= elapsed <= max_wait + 0.5, (
            f"fetch with unmet min_bytes answered after {elapsed:.3f} s, max_wait {max_wait} s"
        )
    finally:
        connection.close()
        producer.close()
