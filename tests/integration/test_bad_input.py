"""Bad input never hurts the broker (DESIGN principle 6).

Every test keeps a second, healthy connection open while it sends one kind of bad input on
another, then checks that the broker process is alive, that the healthy connection still gets
correct answers and that new connections are accepted. Requests are built by hand (size prefix,
request header, body encoded by kio) so that the bytes on the wire are exactly the bad ones.
"""

from __future__ import annotations

import random
import struct
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.api_versions.v3.request import ApiVersionsRequest as ApiVersionsRequestV3
from kio.schema.api_versions.v3.response import ApiVersionsResponse as ApiVersionsResponseV3
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.create_topics.v7.response import CreateTopicsResponse
from kio.schema.fetch.v12.request import FetchRequest as FetchRequestV12
from kio.schema.fetch.v12.request import ForgottenTopic
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.metadata.v12.response import MetadataResponse
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v9.response import ProduceResponse
from raw_client import (  # noqa: E402 (tests/ is on sys.path via the integration conftest)
    RawClient,
    encode,
    framed,
    request_header,
    tagged_section,
    uvarint,
)

from rafka.protocol.records import HEADER_SIZE, build_batch

pytestmark = pytest.mark.timeout(60)

API_VERSIONS = 18
METADATA = 3
PRODUCE = 0

NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
UNSUPPORTED_VERSION = 35

# API ranges the broker announces (see the test brief); ApiVersions answers must list them.
# Produce is announced from v0 (librdkafka needs it to enable gzip/snappy) but served from v3.
EXPECTED_RANGES = {0: (0, 12), 1: (4, 16), 3: (0, 12), 18: (0, 4)}



# --- request builders -----------------------------------------------------------------------


def api_versions_request() -> ApiVersionsRequestV3:
    return ApiVersionsRequestV3(client_software_name="rafka-tests", client_software_version="1")


def metadata_request(*names: str, allow_auto_create: bool = True) -> MetadataRequest:
    return MetadataRequest(
        topics=tuple(MetadataRequestTopic(topic_id=None, name=name) for name in names),
        allow_auto_topic_creation=allow_auto_create,
        include_topic_authorized_operations=False,
    )


def produce_request(topic: str, records: bytes, acks: int = -1) -> ProduceRequest:
    return ProduceRequest(
        transactional_id=None,
        acks=acks,
        timeout=timedelta(seconds=10),
        topic_data=(
            TopicProduceData(
                name=topic,
                partition_data=(PartitionProduceData(index=0, records=records),),
            ),
        ),
    )


def batch(value: bytes = b"value") -> bytes:
    return build_batch([(b"key", value, [], int(time.time() * 1000))])


def create_topic(client: RawClient, name: str) -> None:
    request = CreateTopicsRequest(
        topics=(
            CreatableTopic(
                name=name, num_partitions=1, replication_factor=1, assignments=(), configs=()
            ),
        ),
        timeout=timedelta(seconds=10),
        validate_only=False,
    )
    response = client.request(request, CreateTopicsResponse)
    assert [(t.name, int(t.error_code)) for t in response.topics] == [(name, NONE)]


def produce_error(client: RawClient, topic: str, records: bytes) -> int:
    response = client.request(produce_request(topic, records), ProduceResponse)
    [topic_response] = response.responses
    [partition] = topic_response.partition_responses
    return int(partition.error_code)


# --- checks ---------------------------------------------------------------------------------


def assert_api_versions(response: Any) -> None:
    ranges = {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in response.api_keys}
    for key, expected in EXPECTED_RANGES.items():
        assert ranges.get(key) == expected, f"api {key}: announced {ranges.get(key)}"


def assert_healthy(broker: Any, healthy: RawClient, topic: str) -> None:
    """The broker lives, the long-open connection answers correctly, a new one is accepted."""
    try:
        versions = healthy.request(api_versions_request(), ApiVersionsResponseV3)
        metadata = healthy.request(metadata_request(topic), MetadataResponse)
        fresh = RawClient(broker.bootstrap)
        try:
            fresh_versions = fresh.request(api_versions_request(), ApiVersionsResponseV3)
        finally:
            fresh.close()
    except OSError as exc:
        raise AssertionError(
            f"healthy connection broken ({exc!r}); {broker_state(broker)}"
        ) from exc
    assert broker.process is not None and broker.process.poll() is None, broker_state(broker)
    assert int(versions.error_code) == NONE
    assert_api_versions(versions)
    [described] = metadata.topics
    assert (described.name, int(described.error_code)) == (topic, NONE)
    assert [int(p.partition_index) for p in described.partitions] == [0]
    assert int(described.partitions[0].leader_id) == int(metadata.brokers[0].node_id)
    assert int(fresh_versions.error_code) == NONE


def broker_state(broker: Any) -> str:
    process = broker.process
    if process is None:
        return "broker not running"
    try:
        code = process.wait(2)
    except subprocess.TimeoutExpired:
        return "broker process still alive"
    # The first lines a structlog formatter did not write (a native crash) say most.
    raw = [line for line in broker.log_lines if not line.startswith("{")][:3]
    tail = "\n".join(line[:300] for line in raw + broker.log_lines[-3:])
    return f"broker process died with exit code {code}; last output:\n{tail}"


# --- fixtures -------------------------------------------------------------------------------

HEALTHY_TOPIC = "healthy"


@pytest.fixture
def healthy_broker(broker_factory: Any, request: pytest.FixtureRequest) -> Any:
    """A broker with a topic for health checks; broker overrides come by indirect parametrize."""
    overrides = getattr(request, "param", {})
    broker = broker_factory(**overrides).start()
    admin = RawClient(broker.bootstrap)
    try:
        create_topic(admin, HEALTHY_TOPIC)
    finally:
        admin.close()
    return broker


@pytest.fixture
def healthy(healthy_broker: Any) -> Any:
    """A connection opened before the bad input and checked after it."""
    client = RawClient(healthy_broker.bootstrap)
    assert_healthy(healthy_broker, client, HEALTHY_TOPIC)  # it works before the bad input
    yield client
    client.close()


@pytest.fixture
def bad(healthy_broker: Any) -> Any:
    client = RawClient(healthy_broker.bootstrap)
    yield client
    client.close()


def broker_overrides(**overrides: str) -> pytest.MarkDecorator:
    """Start this test's broker with these overrides (keys use dots: pass them as a dict)."""
    label = ",".join(f"{k}={v}" for k, v in overrides.items())
    return pytest.mark.parametrize("healthy_broker", [overrides], indirect=True, ids=[label])


# --- unknown APIs and versions --------------------------------------------------------------


def test_unknown_api_key_closes_the_connection(healthy_broker, healthy, bad) -> None:
    bad.send(9999, 0, b"\x00\x00", flexible=False)
    assert bad.closed_by_peer(), "broker kept a connection that sent api key 9999"
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


def test_unsupported_produce_version_closes_the_connection(healthy_broker, healthy, bad) -> None:
    body = encode(produce_request(HEALTHY_TOPIC, batch()))
    bad.send(PRODUCE, 99, body, flexible=True)
    assert bad.closed_by_peer(), "broker kept a connection that sent Produce v99"
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


def test_unsupported_api_versions_version_gets_a_v0_answer(healthy_broker, healthy, bad) -> None:
    """Clients send their newest ApiVersions first; the broker answers in v0 with error 35 and
    its own ranges so the client can retry with a version both know (KIP-511)."""
    body = encode(api_versions_request()) + b"\x01\x02\x03"  # a future body, unknown to us
    correlation_id = bad.send(API_VERSIONS, 127, body, flexible=True)
    response = bad.decode_response(correlation_id, ApiVersionsResponseV0)
    assert int(response.error_code) == UNSUPPORTED_VERSION
    assert_api_versions(response)
    # The connection stays usable: the client retries with a version the broker announced.
    retry = bad.request(api_versions_request(), ApiVersionsResponseV3)
    assert int(retry.error_code) == NONE
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


# --- bad records ----------------------------------------------------------------------------


def test_produce_with_a_bad_crc_gets_corrupt_message(healthy_broker, healthy, bad) -> None:
    create_topic(bad, "crc")
    corrupted = bytearray(batch(b"some value"))
    corrupted[HEADER_SIZE + 2] ^= 0xFF  # inside the records, covered by the CRC
    assert produce_error(bad, "crc", bytes(corrupted)) == CORRUPT_MESSAGE
    # The connection stays open and a correct batch on it is accepted.
    assert produce_error(bad, "crc", batch(b"some value")) == NONE
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


@broker_overrides(**{"message.max.bytes": "1000"})
def test_batch_above_message_max_bytes_gets_message_too_large(healthy_broker, healthy, bad):
    create_topic(bad, "limited")
    big = batch(b"x" * 2000)
    assert len(big) > 1000
    assert produce_error(bad, "limited", big) == MESSAGE_TOO_LARGE
    assert produce_error(bad, "limited", batch(b"x" * 100)) == NONE
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


@broker_overrides(**{"auto.create.topics.enable": "false"})
def test_unknown_topic_without_auto_creation(healthy_broker, healthy, bad) -> None:
    metadata = bad.request(metadata_request("missing", allow_auto_create=True), MetadataResponse)
    assert [(t.name, int(t.error_code)) for t in metadata.topics] == [
        ("missing", UNKNOWN_TOPIC_OR_PARTITION)
    ]
    assert produce_error(bad, "missing", batch()) == UNKNOWN_TOPIC_OR_PARTITION
    everything = bad.request(
        MetadataRequest(
            topics=None, allow_auto_topic_creation=True, include_topic_authorized_operations=False
        ),
        MetadataResponse,
    )
    assert "missing" not in {t.name for t in everything.topics}, "topic was created anyway"
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


# --- framing --------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@broker_overrides(**{"socket.request.max.bytes": "1000000"})
@pytest.mark.parametrize("size", [2_000_000_000, 1_000_001])
def test_frame_above_socket_request_max_bytes(healthy_broker, healthy, bad, size) -> None:
    pid = healthy_broker.process.pid
    before = rss_bytes(pid)
    bad.send_raw(struct.pack(">i", size) + b"\x00\x12\x00\x03" + b"\x00" * 60)
    assert bad.closed_by_peer(), f"broker kept a connection that announced a {size}-byte frame"
    grown = rss_bytes(pid) - before
    assert grown < 50 * 1024 * 1024, f"RSS grew by {grown} bytes after a {size}-byte prefix"
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


def test_negative_frame_size_closes_the_connection(healthy_broker, healthy, bad) -> None:
    bad.send_raw(struct.pack(">i", -5) + b"\x00" * 16)
    assert bad.closed_by_peer()
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


def test_truncated_frame_then_close(healthy_broker, healthy, bad) -> None:
    payload = request_header(API_VERSIONS, 3, 7, True) + encode(api_versions_request())
    payload += b"\x00" * (100 - len(payload))
    bad.send_raw(struct.pack(">i", 100) + payload[:50])
    # While the partial frame sits in the broker, other connections are served.
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)
    bad.close()
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


def test_frame_split_into_single_bytes_is_answered(healthy_broker, healthy, bad) -> None:
    payload = request_header(API_VERSIONS, 3, 42, True) + encode(api_versions_request())
    for byte in framed(payload):
        bad.send_raw(bytes([byte]))
    response = bad.decode_response(42, ApiVersionsResponseV3)
    assert int(response.error_code) == NONE
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


# --- unknown tagged fields ------------------------------------------------------------------


def test_api_versions_with_an_unknown_top_level_tag(healthy_broker, healthy, bad) -> None:
    body = encode(api_versions_request())
    assert body.endswith(b"\x00")  # the empty top-level tagged-field section
    body = body[:-1] + tagged_section({99: b"\xde\xad\xbe\xef"})
    correlation_id = bad.send(API_VERSIONS, 3, body, flexible=True)
    response = bad.decode_response(correlation_id, ApiVersionsResponseV3)
    assert int(response.error_code) == NONE
    assert_api_versions(response)
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


def metadata_v12_body(topic: str, topic_tags: bytes, top_tags: bytes) -> bytes:
    """Metadata v12 request body written field by field so tags can go anywhere."""
    name = topic.encode()
    entry = bytes(16) + uvarint(len(name) + 1) + name + topic_tags  # topic_id null, name
    return uvarint(2) + entry + b"\x01" + b"\x00" + top_tags


def test_metadata_body_writer_matches_kio() -> None:
    assert metadata_v12_body("abc", b"\x00", b"\x00") == encode(metadata_request("abc"))


@pytest.mark.parametrize(
    ("where", "topic_tags", "top_tags"),
    [
        ("top level", b"\x00", tagged_section({99: b"\x01\x02\x03"})),
        ("topic entry", tagged_section({99: b"\x01\x02\x03"}), b"\x00"),
        ("both", tagged_section({7: b"", 99: b"\xff" * 200}), tagged_section({99: b"\x00"})),
    ],
)
def test_metadata_with_unknown_tags(healthy_broker, healthy, bad, where, topic_tags, top_tags):
    body = metadata_v12_body(HEALTHY_TOPIC, topic_tags, top_tags)
    correlation_id = bad.send(METADATA, 12, body, flexible=True)
    response = bad.decode_response(correlation_id, MetadataResponse)
    [described] = response.topics
    assert (described.name, int(described.error_code)) == (HEALTHY_TOPIC, NONE), where
    assert isinstance(described.topic_id, uuid.UUID) and described.topic_id.int != 0
    assert [int(p.partition_index) for p in described.partitions] == [0]
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


def test_all_topics_metadata_with_an_unknown_tag(healthy_broker, healthy, bad) -> None:
    """topics=null (every topic) next to an unknown top-level tag."""
    body = b"\x00" + b"\x01" + b"\x00" + tagged_section({99: b"\x01"})
    correlation_id = bad.send(METADATA, 12, body, flexible=True)
    response = bad.decode_response(correlation_id, MetadataResponse)
    assert HEALTHY_TOPIC in {t.name for t in response.topics}
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


def test_unknown_tag_in_the_request_header(healthy_broker, healthy, bad) -> None:
    correlation_id = bad.send(
        API_VERSIONS,
        3,
        encode(api_versions_request()),
        flexible=True,
        header_tags=tagged_section({99: b"hello"}),
    )
    assert int(bad.decode_response(correlation_id, ApiVersionsResponseV3).error_code) == NONE
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


# --- garbage --------------------------------------------------------------------------------


def error_lines(broker: Any) -> list[str]:
    return [line for line in broker.log_lines if '"level": "error"' in line]


@pytest.mark.parametrize("seed", range(5))
def test_garbage_metadata_body_closes_the_connection(healthy_broker, healthy, bad, seed) -> None:
    body = random.Random(seed).randbytes(64)
    bad.send(METADATA, 12, body, flexible=True)
    assert bad.closed_by_peer(), f"broker kept a connection that sent garbage {body.hex()}"
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


@pytest.mark.parametrize("seed", range(3))
def test_garbage_is_a_protocol_error_not_an_internal_one(healthy_broker, bad, seed) -> None:
    """An undecodable body is the client's fault: a warning and a closed connection, not the
    error-level "request failed" traceback that marks a broker bug."""
    body = random.Random(seed).randbytes(64)
    bad.send(METADATA, 12, body, flexible=True)
    assert bad.closed_by_peer()
    assert error_lines(healthy_broker) == [], f"garbage {body.hex()} logged as a broker error"


def fetch_v12_with_forgotten_partitions(count_varint: bytes) -> bytes:
    """A Fetch v12 body whose forgotten topic's int32 partitions array claims `count_varint`."""
    request = FetchRequestV12(
        replica_id=-1,
        max_wait=timedelta(milliseconds=10),
        min_bytes=1,
        topics=(),
        forgotten_topics_data=(ForgottenTopic(topic="t", partitions=(1,)),),
    )
    body = encode(request)
    entry = b"\x02t" + b"\x02" + struct.pack(">i", 1)  # name "t", one partition: 1
    at = body.index(entry) + 2
    return body[:at] + count_varint + body[at + 1 :]


HUGE_ARRAYS = {
    # A 5-byte varint: 2^32 - 2 topic entries announced in a 50-byte request.
    "metadata-v12-topics": (METADATA, 12, True, b"\xff\xff\xff\xff\x0f" + bytes(40)),
    "metadata-v4-topics": (METADATA, 4, False, struct.pack(">i", 2**31 - 1) + bytes(40)),
    "fetch-v12-int32-array": (
        1,
        12,
        True,
        fetch_v12_with_forgotten_partitions(b"\xff\xff\xff\xff\x0f"),
    ),
}


@pytest.mark.parametrize("case", HUGE_ARRAYS, ids=list(HUGE_ARRAYS))
def test_array_length_beyond_the_request_does_not_kill_the_broker(
    healthy_broker, healthy, bad, case
) -> None:
    """Every array element takes at least a byte, so a count above the frame size is malformed;
    it must not make the decoder reserve memory for that many elements."""
    api_key, version, flexible, body = HUGE_ARRAYS[case]
    bad.send(api_key, version, body, flexible=flexible)
    assert bad.closed_by_peer(), f"broker kept a connection after {case}"
    assert_healthy(healthy_broker, healthy, HEALTHY_TOPIC)


def test_closed_detector_sees_an_open_connection(healthy_broker, healthy) -> None:
    """closed_by_peer must not report an idle, healthy connection as closed."""
    assert not healthy.closed_by_peer(timeout=0.3)
