"""Debian's kcat (librdkafka 2.0.2, the oldest librdkafka we serve) against a real broker: metadata
listing (text and JSON), producing with keys, headers and each codec, consuming with a format
string and the JSON envelope, all asserted byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import time
from collections.abc import Iterator

import aiokafka
import pytest
from broker_process import BrokerProcess
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from rafka.protocol.compression import Compression
from rafka.protocol.records import iter_batch_headers

KCAT = shutil.which("kcat")

pytestmark = [
    pytest.mark.skipif(
        KCAT is None, reason="kcat is not on PATH (Debian/Ubuntu: apt-get install kcat)"
    ),
    pytest.mark.timeout(60),
]

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
QUIET = {"log_level": 3}  # librdkafka: errors only
KEY_DELIMITER = b"\x1f"  # ASCII unit separator: kept out of the generated keys and values
MESSAGE_DELIMITER = b"\x1e"  # ASCII record separator
# Headers kcat adds to every message it produces: -H arguments, and what consumers must see.
HEADER_ARGS = ["trace=abc-123", "empty=", "nullhdr", "dup=1", "dup=2", "utf8=värde"]
HEADERS = [
    ("trace", b"abc-123"),
    ("empty", b""),
    ("nullhdr", None),
    ("dup", b"1"),
    ("dup", b"2"),
    ("utf8", "värde".encode()),
]
# A format that shows every byte and tells null (length -1) from empty (length 0).
FIELDS_FORMAT = r"%p\x1f%K\x1f%k\x1f%S\x1f%s\x1f%h\x1e"

KeyValue = tuple[bytes | None, bytes | None]


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the module, each test on its own topic."""
    broker = BrokerProcess(tmp_path_factory.mktemp("kcat-broker")).start()
    yield broker
    broker.kill()


def log_tail(broker: BrokerProcess, lines: int = 20) -> str:
    return "\n".join(broker.log_lines[-lines:])


def kcat(broker: BrokerProcess, *args: str, stdin: bytes | None = None) -> bytes:
    """Run kcat against the broker; fail with its stderr and the broker's log if it fails."""
    assert KCAT is not None
    command = [KCAT, "-b", broker.bootstrap, *args]
    try:
        result = subprocess.run(command, input=stdin, capture_output=True, timeout=30)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{command} timed out; broker log:\n{log_tail(broker)}\n{exc.stderr!r}")
    if result.returncode != 0:
        pytest.fail(
            f"{command} exited {result.returncode}:\n{result.stderr.decode(errors='replace')}\n"
            f"broker log:\n{log_tail(broker)}"
        )
    return result.stdout


def create_topic(broker: BrokerProcess, topic: str, partitions: int = 1) -> None:
    assert broker.process is not None and broker.process.poll() is None, (
        "broker died earlier in this module:\n" + log_tail(broker)
    )
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[
        topic
    ].result(30)


def stored_data_codecs(broker: BrokerProcess, topic: str) -> list[str]:
    """Codec names of the data batches the broker holds for partition 0 (acked = on disk)."""
    codecs: set[Compression] = set()
    for segment in sorted((broker.data_dir / f"{topic}-0").glob("*.log")):
        for _, header in iter_batch_headers(segment.read_bytes()):
            if not header.is_control:
                codecs.add(header.compression)
    return sorted(c.name.lower() for c in codecs)


def delimited_messages(count: int, seed: int) -> list[KeyValue]:
    """Keys and values of any byte but the two delimiters; empty ones, which kcat -Z sends as null;
    one ~100 KB value."""
    rng = random.Random(seed)
    alphabet = bytes(b for b in range(256) if b not in KEY_DELIMITER + MESSAGE_DELIMITER)

    def binary(low: int, high: int) -> bytes:
        return bytes(rng.choices(alphabet, k=rng.randint(low, high)))

    messages: list[KeyValue] = []
    for i in range(count):
        key = None if i % 10 == 3 else (f"key-{i}".encode() if i % 2 else binary(1, 30))
        if i == count // 2:
            value: bytes | None = binary(50_000, 50_000) + b"z" * 50_000
        elif i % 17 == 5:
            value = None
        else:
            value = f"payload {i} ".encode() * rng.randint(1, 8) + binary(0, 40)
        messages.append((key, value))
    return messages


def kcat_input(messages: list[KeyValue]) -> bytes:
    return b"".join(
        (key or b"") + KEY_DELIMITER + (value or b"") + MESSAGE_DELIMITER for key, value in messages
    )


def fields_line(partition: int, key: bytes | None, value: bytes | None, headers: bytes) -> bytes:
    """One record as FIELDS_FORMAT prints it: kcat prints a null key or value as empty."""

    def length(data: bytes | None) -> bytes:
        return b"-1" if data is None else str(len(data)).encode()

    return (
        b"\x1f".join(
            [str(partition).encode(), length(key), key or b"", length(value), value or b"", headers]
        )
        + b"\x1e"
    )


def headers_text(headers: list[tuple[str, bytes | None]]) -> bytes:
    """kcat's %h: name=value pairs joined by commas, a null value printed as NULL."""
    return b",".join(
        name.encode() + b"=" + (b"NULL" if value is None else value) for name, value in headers
    )


def confluent_read_all(broker: BrokerProcess, topic: str, count: int) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": f"unused-{topic}",  # required by the client; assign() never joins it
            "enable.auto.commit": False,
            **QUIET,
        }
    )
    messages: list = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while len(messages) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                messages.append(msg)
    finally:
        consumer.close()
    return messages


def aiokafka_produce(
    broker: BrokerProcess,
    topic: str,
    records: list[tuple[bytes | None, bytes | None, list, int]],
    codec: str,
) -> None:
    """Produce (key, value, headers, timestamp) records with aiokafka, which compresses with any
    codec whatever the broker's ApiVersions say (librdkafka 2.0.2 does not: see the codec test)."""

    async def produce() -> None:
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap,
            compression_type=None if codec == "none" else codec,
            linger_ms=5,
        )
        await producer.start()
        try:
            futures = [
                await producer.send(topic, key=k, value=v, headers=h, timestamp_ms=ts)
                for k, v, h, ts in records
            ]
            await asyncio.wait_for(asyncio.gather(*futures), 30)
        finally:
            await producer.stop()

    asyncio.run(produce())


# --- metadata


def test_list_metadata_as_text(module_broker: BrokerProcess) -> None:
    create_topic(module_broker, "kcat-meta-text", partitions=3)

    output = kcat(module_broker, "-L", "-t", "kcat-meta-text").decode()

    address = module_broker.bootstrap
    assert output.splitlines() == [
        f"Metadata for kcat-meta-text (from broker 1: {address}/1):",
        " 1 brokers:",
        f"  broker 1 at {address} (controller)",
        " 1 topics:",
        '  topic "kcat-meta-text" with 3 partitions:',
        "    partition 0, leader 1, replicas: 1, isrs: 1",
        "    partition 1, leader 1, replicas: 1, isrs: 1",
        "    partition 2, leader 1, replicas: 1, isrs: 1",
    ]


def test_list_metadata_as_json(module_broker: BrokerProcess) -> None:
    create_topic(module_broker, "kcat-meta-json", partitions=3)
    create_topic(module_broker, "kcat-meta-json-single")

    listing = json.loads(kcat(module_broker, "-L", "-J"))

    assert listing["brokers"] == [{"id": 1, "name": module_broker.bootstrap}]
    assert listing["controllerid"] == 1
    assert listing["originating_broker"]["id"] == 1
    topics = {topic["topic"]: topic for topic in listing["topics"]}
    assert "__cluster_metadata" not in topics, "internal Raft log listed as a topic"
    assert all("error" not in topic for topic in topics.values())
    assert topics["kcat-meta-json"]["partitions"] == [
        {"partition": p, "leader": 1, "replicas": [{"id": 1}], "isrs": [{"id": 1}]}
        for p in range(3)
    ]
    assert topics["kcat-meta-json-single"]["partitions"] == [
        {"partition": 0, "leader": 1, "replicas": [{"id": 1}], "isrs": [{"id": 1}]}
    ]


def test_list_metadata_reports_configured_identity_and_unknown_topic(broker_factory) -> None:
    broker = broker_factory(
        **{
            "node.id": "7",
            "auto.create.topics.enable": "false",
        }
    ).start()

    listing = json.loads(kcat(broker, "-L", "-J", "-t", "no-such-topic"))

    assert listing["brokers"] == [{"id": 7, "name": broker.bootstrap}]
    assert listing["controllerid"] == 7
    assert listing["topics"] == [
        {
            "topic": "no-such-topic",
            "error": "Broker: Unknown topic or partition",
            "partitions": [],
        }
    ]


# --- produce with kcat, consume with kcat and confluent-kafka


@pytest.mark.parametrize("codec", CODECS)
def test_produce_and_consume_byte_identical(module_broker: BrokerProcess, codec: str) -> None:
    topic = f"kcat-roundtrip-{codec}"
    create_topic(module_broker, topic)
    messages = delimited_messages(300, seed=CODECS.index(codec))
    header_flags = [arg for header in HEADER_ARGS for arg in ("-H", header)]
    codec_flags = [] if codec == "none" else ["-z", codec]

    before_ms = time.time_ns() // 1_000_000
    kcat(
        module_broker,
        "-P",
        "-t",
        topic,
        "-K",
        r"\x1f",
        "-D",
        r"\x1e",
        "-Z",  # empty key or value -> null
        *header_flags,
        *codec_flags,
        stdin=kcat_input(messages),
    )
    after_ms = time.time_ns() // 1_000_000

    consume_args = ["-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q"]
    printed = kcat(module_broker, *consume_args, "-f", FIELDS_FORMAT)
    expected = b"".join(fields_line(0, k, v, headers_text(HEADERS)) for k, v in messages)
    assert printed == expected

    offsets_and_times = kcat(module_broker, *consume_args, "-f", r"%o %T\n").split()
    offsets = [int(o) for o in offsets_and_times[0::2]]
    timestamps = [int(t) for t in offsets_and_times[1::2]]
    assert offsets == list(range(offsets[0], offsets[0] + len(messages)))
    # librdkafka stamps CreateTime when kcat hands it the message.
    assert all(before_ms <= ts <= after_ms for ts in timestamps), (before_ms, timestamps, after_ms)

    # Another client sees the same bytes, and the null header value as null.
    consumed = confluent_read_all(module_broker, topic, len(messages))
    assert [(m.key(), m.value()) for m in consumed] == messages
    assert all(m.headers() == HEADERS for m in consumed)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_produced_batches_use_requested_codec(module_broker: BrokerProcess, codec: str) -> None:
    """librdkafka 2.0.2 enables a codec only if the broker's ApiVersions look new enough: gzip and
    snappy need Produce v0 advertised, lz4 FindCoordinator v0, zstd Produce v7 and Fetch v10.
    Otherwise it silently sends the batches uncompressed."""
    topic = f"kcat-codec-{codec}"
    create_topic(module_broker, topic)
    lines = b"".join(
        b"key-%d\tcompressible value %d %s\n" % (i, i, b"abc" * 30) for i in range(500)
    )

    kcat(module_broker, "-P", "-t", topic, "-K", r"\t", "-z", codec, stdin=lines)

    assert stored_data_codecs(module_broker, topic) == [codec], (
        f"kcat was asked for {codec}; librdkafka judged from ApiVersions that the broker does not "
        "support it and sent the batches uncompressed"
    )


# --- consume batches another client produced (and compressed)


@pytest.mark.parametrize("codec", CODECS)
def test_consume_batches_compressed_by_another_client(
    module_broker: BrokerProcess, codec: str
) -> None:
    topic = f"kcat-consume-{codec}"
    create_topic(module_broker, topic)
    rng = random.Random(len(codec))
    base_ms = time.time_ns() // 1_000_000 - 60_000
    records = []
    for i in range(500):
        key = None if i % 9 == 4 else rng.randbytes(rng.randint(0, 20))
        null_value = i % 13 == 6 and key is not None  # aiokafka refuses a null key and value
        value = None if null_value else b"v%d " % i * rng.randint(0, 20) + rng.randbytes(8)
        # kcat's %h stops a header value at a NUL byte (a printf "%s"), so none in header values.
        binary_header = bytes(rng.choices(range(1, 256), k=4))
        headers = [("i", b"%d" % i), ("bin", binary_header), ("null", None)][: i % 4]
        records.append((key, value, headers, base_ms + (i * 37) % 5000))
    aiokafka_produce(module_broker, topic, records, codec)
    assert stored_data_codecs(module_broker, topic) == [codec]

    printed = kcat(
        module_broker,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        FIELDS_FORMAT + r"%T\x1e",
    )

    expected = b"".join(
        fields_line(0, k, v, headers_text(h)) + b"%d\x1e" % ts for k, v, h, ts in records
    )
    assert printed == expected


def test_consume_as_json_envelope(module_broker: BrokerProcess) -> None:
    topic = "kcat-json"
    create_topic(module_broker, topic)
    base_ms = time.time_ns() // 1_000_000 - 60_000
    records = [
        (b"k1", b"first", [("a", b"1")], base_ms),
        (None, "zweite Nachricht ✓".encode(), [("n", None), ("a", b"")], base_ms + 5),
        (b"k3", None, [("dup", b"x"), ("dup", b"y")], base_ms - 1000),
        (b"", b"", [("e", b"")], base_ms + 1),
    ]
    aiokafka_produce(module_broker, topic, records, "none")

    output = kcat(module_broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J")

    envelopes = [json.loads(line) for line in output.splitlines()]
    first_offset = envelopes[0]["offset"]
    assert envelopes == [
        {
            "topic": topic,
            "partition": 0,
            "offset": first_offset + i,
            "tstype": "create",
            "ts": ts,
            "broker": 1,
            "headers": [
                item
                for name, value in headers
                for item in (name, None if value is None else value.decode())
            ],
            "key": None if key is None else key.decode(),
            "payload": None if value is None else value.decode(),
        }
        for i, (key, value, headers, ts) in enumerate(records)
    ]
