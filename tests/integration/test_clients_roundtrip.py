"""Real Python clients (kafka-python, aiokafka, confluent-kafka) produce to and consume from a real
broker: every key, value, header, CreateTime timestamp and the order come back byte-identical, for
every compression codec, with each client alone and across clients.

Consumers use manual assignment (no consumer groups yet). Each stored data batch is read back from
the broker's segment files to prove the codec under test was really used on the wire.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiokafka
import confluent_kafka
import kafka
import kafka.codec
import pytest
from broker_process import BrokerProcess
from confluent_kafka.admin import AdminClient, NewTopic

from rafka.protocol.compression import Compression
from rafka.protocol.records import iter_batch_headers

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CLIENTS = ["kafka-python", "aiokafka", "confluent-kafka"]
ROUNDTRIP_COUNT = 10_000
CROSS_CLIENT_COUNT = 1_000
LARGE_VALUE_SIZE = 100 * 1024
DEADLINE_S = 60.0
QUIET = {"log_level": 3}  # librdkafka: errors only

# CreateTime an hour ago: well inside any retention window, so no segment is deleted mid-test.
BASE_TIMESTAMP_MS = int(time.time() * 1000) - 3_600_000

# kafka-python imports a third-party package per codec (it does not use cramjam).
KAFKA_PYTHON_CODEC_PACKAGES = {
    "snappy": (kafka.codec.has_snappy, "python-snappy"),
    "lz4": (kafka.codec.has_lz4, "lz4"),
    "zstd": (kafka.codec.has_zstd, "zstandard"),
}

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int


@dataclass(frozen=True)
class Consumed:
    message: Message
    offset: int
    create_time: bool  # timestamp type is CreateTime (not LogAppendTime)


@dataclass(frozen=True)
class Consumption:
    records: list[Consumed]
    end_offset: int  # the partition's high watermark after reading


# --- test data


def make_messages(count: int, seed: int, *, null_header_values: bool = True) -> list[Message]:
    """Varied keys, values and headers: binary, empty, null, ~100 KB; timestamps not monotonic."""
    rng = random.Random(seed)
    large = {count // 7, count // 2, count - 1}
    messages = []
    for i in range(count):
        key = _key(rng, i)
        if i in large:
            # Half random, half repetitive: large, yet worth compressing (so codecs stay on).
            value = rng.randbytes(LARGE_VALUE_SIZE // 2) + bytes([i % 256]) * (
                LARGE_VALUE_SIZE // 2
            )
        elif i % 101 == 3 and key is not None:
            value = None
        elif i % 103 == 5:
            value = b""
        else:
            value = f"value {i};".encode() * rng.randint(0, 12) + rng.randbytes(rng.randint(0, 48))
        headers = _headers(rng, i, null_header_values)
        timestamp = BASE_TIMESTAMP_MS + (i * 7919) % 600_000
        messages.append(Message(key, value, headers, timestamp))
    return messages


def _key(rng: random.Random, i: int) -> bytes | None:
    if i % 89 == 1:
        return None
    if i % 97 == 0:
        return b""
    if i % 2:
        return rng.randbytes(rng.randint(1, 40))  # any byte, including 0x00 and 0xff
    return f"user-{i % 113}".encode()


def _headers(rng: random.Random, i: int, null_header_values: bool) -> Headers:
    if i % 5 == 0:
        return ()
    headers: list[tuple[str, bytes | None]] = [
        ("seq", str(i).encode()),
        ("binary", rng.randbytes(rng.randint(0, 24))),
        ("empty", b""),
        ("null", None if null_header_values else b"-"),
    ]
    if i % 3 == 0:
        headers += [("dup", b"first"), ("dup", b"second"), ("clé-ключ", "värde".encode())]
    return tuple(headers)


def seed_of(topic: str) -> int:
    return zlib.crc32(topic.encode())


# --- client adapters: produce(bootstrap, topic, messages, codec), consume(bootstrap, topic, n)


def kafka_python_produce(bootstrap: str, topic: str, messages: list[Message], codec: str) -> None:
    producer = kafka.KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        acks="all",
        linger_ms=5,
    )
    try:
        futures = [
            producer.send(
                topic,
                key=m.key,
                value=m.value,
                headers=list(m.headers),
                timestamp_ms=m.timestamp,
            )
            for m in messages
        ]
        producer.flush(DEADLINE_S)
        for future in futures:
            future.get(DEADLINE_S)
    finally:
        producer.close(10)


def kafka_python_consume(bootstrap: str, topic: str, count: int) -> Consumption:
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    partition = kafka.TopicPartition(topic, 0)
    records: list[Consumed] = []
    try:
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        deadline = time.monotonic() + DEADLINE_S
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += [
                    Consumed(
                        Message(r.key, r.value, tuple(r.headers), r.timestamp),
                        r.offset,
                        r.timestamp_type == 0,
                    )
                    for r in batch
                ]
        end_offset = consumer.end_offsets([partition])[partition]
    finally:
        consumer.close(autocommit=False)
    return Consumption(records, end_offset)


def aiokafka_produce(bootstrap: str, topic: str, messages: list[Message], codec: str) -> None:
    async def produce() -> None:
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=None if codec == "none" else codec,
            acks="all",
            linger_ms=5,
        )
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic,
                    key=m.key,
                    value=m.value,
                    headers=list(m.headers),
                    timestamp_ms=m.timestamp,
                )
                for m in messages
            ]
            await asyncio.wait_for(asyncio.gather(*futures), DEADLINE_S)
        finally:
            await producer.stop()

    asyncio.run(produce())


def aiokafka_consume(bootstrap: str, topic: str, count: int) -> Consumption:
    async def consume() -> Consumption:
        consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        partition = aiokafka.TopicPartition(topic, 0)
        records: list[Consumed] = []
        try:
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            deadline = time.monotonic() + DEADLINE_S
            while len(records) < count and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records += [
                        Consumed(
                            Message(r.key, r.value, tuple(r.headers), r.timestamp),
                            r.offset,
                            r.timestamp_type == 0,
                        )
                        for r in batch
                    ]
            end_offset = (await consumer.end_offsets([partition]))[partition]
        finally:
            await consumer.stop()
        return Consumption(records, end_offset)

    return asyncio.run(consume())


def confluent_produce(bootstrap: str, topic: str, messages: list[Message], codec: str) -> None:
    errors: list[object] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "enable.idempotence": True,
            "linger.ms": 5,
            **QUIET,
        }
    )
    for m in messages:
        while True:
            try:
                producer.produce(
                    topic,
                    key=m.key,
                    value=m.value,
                    headers=list(m.headers),
                    timestamp=m.timestamp,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(DEADLINE_S) == 0, "confluent-kafka: messages left undelivered"
    assert not errors, f"confluent-kafka delivery errors: {errors[:5]}"


def confluent_consume(bootstrap: str, topic: str, count: int) -> Consumption:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"unused-{topic}",  # required by the client; assign() never joins it
            "enable.auto.commit": False,
            **QUIET,
        }
    )
    partition = confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)
    records: list[Consumed] = []
    try:
        consumer.assign([partition])
        deadline = time.monotonic() + DEADLINE_S
        while len(records) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    raise confluent_kafka.KafkaException(msg.error())
                ts_type, ts = msg.timestamp()
                message = Message(msg.key(), msg.value(), tuple(msg.headers() or ()), ts)
                records.append(
                    Consumed(
                        message, msg.offset(), ts_type == confluent_kafka.TIMESTAMP_CREATE_TIME
                    )
                )
        _low, end_offset = consumer.get_watermark_offsets(
            confluent_kafka.TopicPartition(topic, 0), timeout=10
        )
    finally:
        consumer.close()
    return Consumption(records, end_offset)


ProduceFn = Callable[[str, str, list[Message], str], None]
ConsumeFn = Callable[[str, str, int], Consumption]

PRODUCERS: dict[str, ProduceFn] = {
    "kafka-python": kafka_python_produce,
    "aiokafka": aiokafka_produce,
    "confluent-kafka": confluent_produce,
}
CONSUMERS: dict[str, ConsumeFn] = {
    "kafka-python": kafka_python_consume,
    "aiokafka": aiokafka_consume,
    "confluent-kafka": confluent_consume,
}


# --- fixtures and helpers


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the whole module (each test uses its own topic): starting one per test
    would dominate the run time."""
    broker = BrokerProcess(tmp_path_factory.mktemp("roundtrip-broker")).start()
    yield broker
    broker.kill()


def create_topic(broker: BrokerProcess, topic: str) -> None:
    assert broker.process is not None and broker.process.poll() is None, (
        "broker died earlier in this module:\n" + log_tail(broker)
    )
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)


def log_tail(broker: BrokerProcess, lines: int = 20) -> str:
    return "\n".join(broker.log_lines[-lines:])


def require_client_codec(client: str, codec: str) -> None:
    """Fail (never skip) when kafka-python lacks the package one codec needs."""
    if client != "kafka-python" or codec not in KAFKA_PYTHON_CODEC_PACKAGES:
        return
    available, package = KAFKA_PYTHON_CODEC_PACKAGES[codec]
    if not available():
        pytest.fail(
            f"kafka-python {kafka.__version__} cannot use {codec}: it needs the '{package}' "
            f"package (pip install 'kafka-python[{codec}]'), which is not installed",
            pytrace=False,
        )


def stored_data_codecs(broker: BrokerProcess, topic: str) -> set[Compression]:
    """Codecs of the data batches the broker holds on disk for partition 0 (acked = fsynced)."""
    codecs = set()
    for segment in sorted((broker.data_dir / f"{topic}-0").glob("*.log")):
        for _, header in iter_batch_headers(Path(segment).read_bytes()):
            if not header.is_control:
                codecs.add(header.compression)
    return codecs


def describe(message: Message) -> str:
    def short(data: bytes | None) -> str:
        if data is None:
            return "None"
        return repr(data[:40]) + (f"...({len(data)} bytes)" if len(data) > 40 else "")

    headers = [(k, short(v)) for k, v in message.headers]
    return (
        f"key={short(message.key)} value={short(message.value)} "
        f"headers={headers} timestamp={message.timestamp}"
    )


def assert_consumed_exactly(
    consumption: Consumption, expected: list[Message], broker: BrokerProcess
) -> None:
    records = consumption.records
    assert len(records) == len(expected), (
        f"consumed {len(records)} of {len(expected)} messages\nbroker log:\n{log_tail(broker)}"
    )
    for index, (record, message) in enumerate(zip(records, expected, strict=True)):
        if record.message != message:
            pytest.fail(
                f"message {index} (offset {record.offset}) differs:\n"
                f"  expected {describe(message)}\n  actual   {describe(record.message)}",
                pytrace=False,
            )
    assert all(r.create_time for r in records), "a timestamp came back as LogAppendTime"
    offsets = [r.offset for r in records]
    first = offsets[0]
    assert offsets == list(range(first, first + len(records))), "offsets are not contiguous"
    assert consumption.end_offset == offsets[-1] + 1, "high watermark is not the last offset + 1"


def assert_stored_codec(broker: BrokerProcess, topic: str, codec: str) -> None:
    stored = sorted(c.name.lower() for c in stored_data_codecs(broker, topic))
    assert stored == [codec], (
        f"the client was asked for {codec} but the broker holds {stored} data batches: the client "
        "judged (from ApiVersions) that this broker does not support the codec"
    )


# --- tests


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", CLIENTS)
def test_roundtrip_is_byte_identical(module_broker: BrokerProcess, client: str, codec: str) -> None:
    require_client_codec(client, codec)
    topic = f"roundtrip-{client}-{codec}"
    create_topic(module_broker, topic)
    # kafka-python's producer refuses null header values ("(str, bytes) tuples" only).
    messages = make_messages(
        ROUNDTRIP_COUNT, seed_of(topic), null_header_values=client != "kafka-python"
    )

    PRODUCERS[client](module_broker.bootstrap, topic, messages, codec)
    consumption = CONSUMERS[client](module_broker.bootstrap, topic, len(messages))

    assert_consumed_exactly(consumption, messages, module_broker)
    assert_stored_codec(module_broker, topic, codec)


CROSS_PAIRS = [(p, c) for p in CLIENTS for c in CLIENTS if p != c]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("producer", "consumer"), CROSS_PAIRS, ids=[f"{p}->{c}" for p, c in CROSS_PAIRS]
)
@pytest.mark.parametrize("codec", CODECS)
def test_cross_client_reads_are_identical(
    module_broker: BrokerProcess, codec: str, producer: str, consumer: str
) -> None:
    require_client_codec(producer, codec)
    require_client_codec(consumer, codec)
    topic = f"cross-{codec}-{producer}-to-{consumer}"
    create_topic(module_broker, topic)
    messages = make_messages(
        CROSS_CLIENT_COUNT, seed_of(topic), null_header_values=producer != "kafka-python"
    )

    PRODUCERS[producer](module_broker.bootstrap, topic, messages, codec)
    consumption = CONSUMERS[consumer](module_broker.bootstrap, topic, len(messages))

    assert_consumed_exactly(consumption, messages, module_broker)
    assert_stored_codec(module_broker, topic, codec)
