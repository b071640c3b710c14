"""Request decoding through kio, and its fallback that skips unknown tagged fields.

Bodies are encoded with kio, then tagged-field sections are rewritten by hand: kio's own reader
raises KeyError on a tag it does not know, and the protocol says such tags must be skipped.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta
from typing import Any

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.fetch.v15.request import FetchPartition, FetchRequest, FetchTopic, ReplicaState
from kio.schema.metadata.v1.request import MetadataRequest as MetadataRequestV1
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.serial import entity_writer

from rafka.protocol.errors import MalformedRequestError
from rafka.protocol.messages import decode_request_body, is_flexible, request_class


def encode(entity: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def tagged(fields: dict[int, bytes]) -> bytes:
    """A tagged-field section: count, then (tag, size, data) in ascending tag order."""
    out = uvarint(len(fields))
    for tag in sorted(fields):
        out += uvarint(tag) + uvarint(len(fields[tag])) + fields[tag]
    return out


def compact_string(text: str) -> bytes:
    raw = text.encode()
    return uvarint(len(raw) + 1) + raw


# --- Metadata v12: a request body written field by field --------------------------------------


def metadata_topic(name: str, tags: bytes = b"\x00") -> bytes:
    return bytes(16) + compact_string(name) + tags  # null topic id, name, tagged fields


def metadata_body(topics: list[bytes] | None, tags: bytes = b"\x00") -> bytes:
    array = b"\x00" if topics is None else uvarint(len(topics) + 1) + b"".join(topics)
    return array + b"\x01" + b"\x00" + tags  # allow auto creation, no authorized operations


def metadata_request(*names: str) -> MetadataRequest:
    return MetadataRequest(
        topics=tuple(MetadataRequestTopic(topic_id=None, name=n) for n in names),
        allow_auto_topic_creation=True,
        include_topic_authorized_operations=False,
    )


def test_handwritten_metadata_body_matches_kio() -> None:
    body = metadata_body([metadata_topic("a"), metadata_topic("bb")])
    assert body == encode(metadata_request("a", "bb"))


def test_plain_request_decodes() -> None:
    body = encode(metadata_request("a", "bb"))
    assert decode_request_body(MetadataRequest, body, 0) == metadata_request("a", "bb")


def test_body_is_read_from_the_given_offset() -> None:
    body = encode(metadata_request("x"))
    assert decode_request_body(MetadataRequest, b"HEADER" + body, 6) == metadata_request("x")


@pytest.mark.parametrize(
    "tags",
    [
        {99: b"\x01\x02\x03"},
        {0: b"", 99: b""},
        {300: b"z" * 200},  # multi-byte tag and size varints
        {5: b"a", 6: b"bc", 1000: b"def"},
    ],
    ids=["one", "empty-data", "long", "several"],
)
def test_unknown_top_level_tags_are_skipped(tags: dict[int, bytes]) -> None:
    body = metadata_body([metadata_topic("a"), metadata_topic("bb")], tags=tagged(tags))
    assert decode_request_body(MetadataRequest, body, 0) == metadata_request("a", "bb")


def test_unknown_tags_in_a_nested_struct_are_skipped() -> None:
    topics = [metadata_topic("a", tagged({99: b"xyz"})), metadata_topic("bb")]
    body = metadata_body(topics)
    assert decode_request_body(MetadataRequest, body, 0) == metadata_request("a", "bb")


def test_unknown_tags_at_both_levels_are_skipped() -> None:
    topics = [metadata_topic("a", tagged({1: b""})), metadata_topic("bb", tagged({2: b"\xff"}))]
    body = metadata_body(topics, tags=tagged({99: b"\x00" * 10}))
    assert decode_request_body(MetadataRequest, body, 0) == metadata_request("a", "bb")


def test_null_array_with_unknown_tags() -> None:
    """Metadata v12 topics=null means all topics; the fallback must keep null, not ()."""
    decoded = decode_request_body(MetadataRequest, metadata_body(None, tagged({9: b"!"})), 0)
    assert decoded.topics is None


@pytest.mark.parametrize(
    ("api_key", "version", "body"),
    [
        # Produce v9: transactional_id null, acks, timeout, topic_data null, no tags.
        (0, 9, b"\x00" + bytes.fromhex("0001000003e8") + b"\x00" + b"\x00"),
        # Produce v8 (not flexible): the same with a legacy -1 count.
        (0, 8, bytes.fromhex("ffff" "0001" "000003e8" "ffffffff")),
        # ListOffsets v7: replica, isolation, topics [name "t", partitions null].
        (2, 7, bytes.fromhex("ffffffff" "00" "02" "0274" "00" "00" "00")),
    ],
    ids=["produce-v9", "produce-v8", "list-offsets-v7-partitions"],
)
def test_null_for_a_non_nullable_array_is_malformed(api_key: int, version: int, body) -> None:
    """Kafka's parser refuses it; handlers never see None where the schema promises a list."""
    cls = request_class(api_key, version)
    with pytest.raises(MalformedRequestError, match="non-nullable array"):
        decode_request_body(cls, body, 0)


def test_unknown_top_level_tag_in_api_versions() -> None:
    request = ApiVersionsRequest(client_software_name="librdkafka", client_software_version="2.6")
    body = encode(request)
    assert body.endswith(b"\x00")
    assert decode_request_body(ApiVersionsRequest, body[:-1] + tagged({99: b"new"}), 0) == request


@pytest.mark.parametrize(
    "section",
    [
        bytes([1, 99, 10]) + b"short",  # data shorter than its declared size
        bytes([2, 99, 0]),  # a second field that never comes
        bytes([1, 99]),  # no size
    ],
    ids=["data-short", "missing-field", "missing-size"],
)
def test_truncated_tagged_fields_are_malformed(section: bytes) -> None:
    body = metadata_body([metadata_topic("a")], tags=section)
    with pytest.raises(MalformedRequestError):
        decode_request_body(MetadataRequest, body, 0)


# --- Fetch v15: known tagged fields (one a struct) next to unknown ones ------------------------

TOPIC_ID = uuid.UUID("6a2398ec-7983-49f0-8a0b-8da27cf3e221")


def fetch_request(**tagged_values: Any) -> FetchRequest:
    return FetchRequest(
        max_wait=timedelta(milliseconds=500),
        min_bytes=1,
        topics=(
            FetchTopic(
                topic_id=TOPIC_ID,
                partitions=(
                    FetchPartition(partition=0, fetch_offset=5, partition_max_bytes=100),
                    FetchPartition(partition=3, fetch_offset=9, partition_max_bytes=200),
                ),
            ),
        ),
        forgotten_topics_data=(),
        **tagged_values,
    )


def replica_state_bytes(replica_id: int, epoch: int, tags: bytes = b"\x00") -> bytes:
    return replica_id.to_bytes(4, "big", signed=True) + epoch.to_bytes(8, "big") + tags


def fetch_body_with_top_tags(section: bytes) -> bytes:
    body = encode(fetch_request())
    assert body.endswith(b"\x00")  # no tagged field holds a non-default value
    return body[:-1] + section


def test_known_tagged_fields_decode() -> None:
    request = fetch_request(cluster_id="cluster", replica_state=ReplicaState(replica_id=3))
    assert decode_request_body(FetchRequest, encode(request), 0) == request


def test_known_tagged_fields_decode_next_to_unknown_ones() -> None:
    section = tagged(
        {
            0: compact_string("cluster"),
            1: replica_state_bytes(3, 7),
            99: b"\x01\x02",
        }
    )
    decoded = decode_request_body(FetchRequest, fetch_body_with_top_tags(section), 0)
    assert decoded == fetch_request(
        cluster_id="cluster", replica_state=ReplicaState(replica_id=3, replica_epoch=7)
    )


def test_unknown_tag_between_known_ones() -> None:
    section = tagged({0: compact_string("c"), 1: replica_state_bytes(2, 1), 2: b"?"})
    decoded = decode_request_body(FetchRequest, fetch_body_with_top_tags(section), 0)
    assert decoded.cluster_id == "c"
    assert decoded.replica_state == ReplicaState(replica_id=2, replica_epoch=1)


def test_unknown_tag_inside_a_known_tagged_struct() -> None:
    """ReplicaState is itself flexible: a newer client may add tags inside it."""
    section = tagged({1: replica_state_bytes(3, 7, tags=tagged({99: b"new"}))})
    decoded = decode_request_body(FetchRequest, fetch_body_with_top_tags(section), 0)
    assert decoded.replica_state == ReplicaState(replica_id=3, replica_epoch=7)


def test_unknown_tag_in_a_struct_two_arrays_deep() -> None:
    """A FetchPartition (inside FetchTopic, inside topics) with an unknown tag."""
    body = encode(fetch_request())
    partition = (0).to_bytes(4, "big") + (-1).to_bytes(4, "big", signed=True)
    partition += (5).to_bytes(8, "big")
    at = body.index(partition)
    end = at + 4 + 4 + 8 + 4 + 8 + 4  # partition, epoch, offset, last epoch, log start, max
    assert body[end : end + 1] == b"\x00"
    body = body[:end] + tagged({42: b"future"}) + body[end + 1 :]
    assert decode_request_body(FetchRequest, body, 0) == fetch_request()


# --- malformed bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "body"),
    [
        (MetadataRequest, encode(metadata_request("abc"))[:-3]),  # truncated
        (MetadataRequestV1, b"\x00\x00\x00\x05\x00\x02ab"),  # array of 5, then too little
        (MetadataRequest, metadata_body([bytes(16) + compact_string("a")[:1] + b"\xff\xfe"])),
        (MetadataRequest, b""),
    ],
    ids=["truncated", "short-array", "invalid-utf8", "empty"],
)
def test_malformed_bodies_raise_malformed_request_error(cls: type, body: bytes) -> None:
    """The dispatcher closes the connection on MalformedRequestError (a protocol error); any
    other exception is logged as a broker failure."""
    with pytest.raises(MalformedRequestError):
        decode_request_body(cls, body, 0)


HUGE_ARRAY_PROBE = textwrap.dedent(
    """
    from kio.schema.metadata.v12.request import MetadataRequest
    from rafka.protocol.errors import MalformedRequestError
    from rafka.protocol.messages import decode_request_body

    body = bytes.fromhex("ffffffff0f") + bytes(40)  # 2**32 - 2 topics in a 45-byte body
    try:
        decode_request_body(MetadataRequest, body, 0)
    except MalformedRequestError:
        print("malformed")
    """
)


def test_array_length_beyond_the_body_is_malformed_not_fatal() -> None:
    """Runs in a child process: kio reserves memory for the announced count and a failed
    reservation aborts the process (which would take the test run down with it)."""
    result = subprocess.run(
        [sys.executable, "-c", HUGE_ARRAY_PROBE], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, (
        f"decoder killed the process (exit {result.returncode}): {result.stderr[:300]}"
    )
    assert result.stdout.strip() == "malformed"


# --- schema lookup -------------------------------------------------------------------------------


def test_request_class_and_flexibility() -> None:
    assert request_class(3, 12) is MetadataRequest
    assert request_class(18, 3) is ApiVersionsRequest
    assert request_class(9999, 0) is None
    assert request_class(0, 99) is None
    assert is_flexible(3, 12) and not is_flexible(3, 1)
