"""Kafka framing (size-prefixed frames) and request headers, fed byte strings directly."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rafka.protocol.errors import FrameTooLargeError, MalformedRequestError, ProtocolError
from rafka.protocol.frames import (
    FrameDecoder,
    decode_request_header,
    peek_correlation_id,
    read_uvarint,
    response_header,
)


def framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def collect(decoder: FrameDecoder, data: bytes) -> list[bytes]:
    return [bytes(frame) for frame in decoder.feed(data)]


# --- FrameDecoder -----------------------------------------------------------------------------


def test_one_frame_in_one_feed() -> None:
    decoder = FrameDecoder(1024)
    assert collect(decoder, framed(b"hello")) == [b"hello"]
    assert decoder.buffered == 0


def test_several_frames_in_one_feed() -> None:
    decoder = FrameDecoder(1024)
    data = framed(b"first") + framed(b"") + framed(b"third frame")
    assert collect(decoder, data) == [b"first", b"", b"third frame"]
    assert decoder.buffered == 0


def test_frame_split_byte_by_byte() -> None:
    decoder = FrameDecoder(1024)
    data = framed(b"split across many feeds")
    out: list[bytes] = []
    for i in range(len(data)):
        out += collect(decoder, data[i : i + 1])
        if i < len(data) - 1:
            assert out == [], f"frame yielded after {i + 1} of {len(data)} bytes"
            assert decoder.buffered == i + 1
    assert out == [b"split across many feeds"]
    assert decoder.buffered == 0


def test_size_prefix_split_across_feeds() -> None:
    decoder = FrameDecoder(1024)
    data = framed(b"abc")
    assert collect(decoder, data[:2]) == []
    assert collect(decoder, data[2:3]) == []
    assert collect(decoder, data[3:]) == [b"abc"]


def test_complete_frame_followed_by_a_partial_one() -> None:
    decoder = FrameDecoder(1024)
    second = framed(b"second")
    assert collect(decoder, framed(b"first") + second[:6]) == [b"first"]
    assert decoder.buffered == 6  # only the partial frame is kept
    assert collect(decoder, second[6:] + framed(b"third")) == [b"second", b"third"]
    assert decoder.buffered == 0


@given(
    payloads=st.lists(st.binary(max_size=40), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_any_split_of_a_stream_yields_the_same_frames(payloads, cuts) -> None:
    stream = b"".join(framed(p) for p in payloads)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    decoder = FrameDecoder(64)
    out: list[bytes] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        out += collect(decoder, stream[start:end])
    assert out == payloads
    assert decoder.buffered == 0


def test_frames_stay_valid_after_later_feeds() -> None:
    decoder = FrameDecoder(1024)
    [first] = list(decoder.feed(framed(b"keep me")))
    list(decoder.feed(framed(b"overwrite?") + framed(b"x" * 100)))
    assert bytes(first) == b"keep me"


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(10)
    assert collect(decoder, framed(b"0123456789")) == [b"0123456789"]


def test_limit_is_checked_from_the_size_prefix_alone() -> None:
    """A hostile prefix is rejected before any of the frame arrives (nothing is allocated)."""
    decoder = FrameDecoder(1_000_000)
    with pytest.raises(FrameTooLargeError):
        list(decoder.feed(struct.pack(">i", 2_000_000_000)))
    assert decoder.buffered <= 4


def test_limit_is_checked_when_the_prefix_arrives_in_pieces() -> None:
    decoder = FrameDecoder(100)
    prefix = struct.pack(">i", 101)
    assert collect(decoder, prefix[:3]) == []
    with pytest.raises(FrameTooLargeError):
        list(decoder.feed(prefix[3:]))


def test_limit_applies_to_a_frame_behind_good_ones() -> None:
    decoder = FrameDecoder(100)
    frames = decoder.feed(framed(b"ok") + struct.pack(">i", 101))
    assert bytes(next(frames)) == b"ok"
    with pytest.raises(FrameTooLargeError):
        next(frames)


@pytest.mark.parametrize("size", [-1, -100, -(2**31)])
def test_negative_size_is_a_protocol_error(size: int) -> None:
    decoder = FrameDecoder(1024)
    with pytest.raises(ProtocolError):
        list(decoder.feed(struct.pack(">i", size) + b"abcd"))


def test_empty_feed_yields_nothing() -> None:
    decoder = FrameDecoder(1024)
    assert collect(decoder, b"") == []
    assert decoder.buffered == 0


# --- request header -----------------------------------------------------------------------------


def header_v1(api_key: int, version: int, correlation_id: int, client_id: bytes | None) -> bytes:
    client = struct.pack(">h", -1) if client_id is None else struct.pack(">h", len(client_id))
    return struct.pack(">hhi", api_key, version, correlation_id) + client + (client_id or b"")


def test_header_v1() -> None:
    data = memoryview(header_v1(3, 1, 77, b"my-client") + b"BODY")
    header = decode_request_header(data, flexible=False)
    assert (header.api_key, header.api_version, header.correlation_id) == (3, 1, 77)
    assert header.client_id == "my-client"
    assert bytes(data[header.size :]) == b"BODY"


def test_header_v1_with_null_client_id() -> None:
    data = memoryview(header_v1(18, 0, 5, None))
    header = decode_request_header(data, flexible=False)
    assert header.client_id is None
    assert header.size == len(data)


def test_header_v2_skips_its_tagged_fields() -> None:
    tags = bytes([2, 0, 3]) + b"abc" + bytes([99, 1, 0xFF])  # two tagged fields, one unknown
    data = memoryview(header_v1(3, 12, 9, b"c") + tags + b"BODY")
    header = decode_request_header(data, flexible=True)
    assert (header.correlation_id, header.client_id) == (9, "c")
    assert bytes(data[header.size :]) == b"BODY"


@pytest.mark.parametrize(
    ("data", "flexible"),
    [
        (b"\x00\x03\x00\x01\x00\x00", False),  # shorter than the fixed part
        (header_v1(3, 1, 1, b"client")[:-2], False),  # client id runs past the end
        (header_v1(3, 12, 1, b"c") + bytes([1, 5, 10, 0]), True),  # tag data runs past the end
        (header_v1(3, 12, 1, b"c"), True),  # the tagged-field section is missing
    ],
)
def test_malformed_headers(data: bytes, flexible: bool) -> None:
    with pytest.raises(MalformedRequestError):
        decode_request_header(memoryview(data), flexible=flexible)


def test_peek_correlation_id() -> None:
    assert peek_correlation_id(memoryview(header_v1(18, 3, 1234, None))) == 1234
    assert peek_correlation_id(memoryview(b"\x00\x12\x00\x03")) is None


@pytest.mark.parametrize(
    ("data", "value"),
    [(b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128), (b"\xff\xff\xff\xff\x0f", 2**32 - 1)],
)
def test_read_uvarint(data: bytes, value: int) -> None:
    assert read_uvarint(data + b"tail", 0) == (value, len(data))


@pytest.mark.parametrize("data", [b"", b"\x80", b"\xff\xff\xff\xff\xff\x01"])
def test_read_uvarint_rejects_truncated_and_overlong(data: bytes) -> None:
    with pytest.raises(MalformedRequestError):
        read_uvarint(data, 0)


def test_response_headers() -> None:
    assert response_header(7, flexible=False) == struct.pack(">i", 7)
    assert response_header(7, flexible=True) == struct.pack(">i", 7) + b"\x00"


def test_a_frame_received_in_one_chunk_is_not_copied() -> None:
    chunk = framed(b"a" * 1000) + framed(b"b" * 10)
    frames = list(FrameDecoder(4096).feed(chunk))
    assert [f.obj for f in frames] == [chunk, chunk]
    assert [bytes(f) for f in frames] == [b"a" * 1000, b"b" * 10]


def test_frames_do_not_change_with_the_callers_buffer() -> None:
    buffer = bytearray(framed(b"mine"))
    [frame] = FrameDecoder(64).feed(buffer)
    buffer[4:8] = b"xxxx"
    assert bytes(frame) == b"mine"


def test_a_frame_spread_over_chunks_is_joined_once_complete() -> None:
    decoder = FrameDecoder(1 << 20)
    data = framed(b"z" * 100_000)
    chunks = [data[i : i + 7000] for i in range(0, len(data), 7000)]
    out: list[bytes] = []
    for chunk in chunks:
        out += collect(decoder, chunk)
    assert out == [b"z" * 100_000]
    assert decoder.buffered == 0
