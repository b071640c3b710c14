"""Kafka's framing: every request and response is an i32 size followed by that many bytes.

`FrameDecoder` is sans-I/O: feed it bytes as they arrive and take complete frames out. The size
prefix is checked against the limit before the frame's buffer is allocated, so a hostile length
costs nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from msgspec import Struct

from rafka.protocol.errors import FrameTooLargeError, MalformedRequestError

_SIZE = struct.Struct(">i")
_HEADER_FIXED = struct.Struct(">hhih")


class FrameDecoder:
    """Frames are memoryviews of the bytes received, without their size prefix. A frame that
    arrived within one chunk is not copied at all (a 1 MB produce request used to be copied
    three times: into the buffer, out of it, into bytes); one spread over several chunks is
    joined once, when its last byte has come."""

    def __init__(self, max_frame_bytes: int) -> None:
        self._max = max_frame_bytes
        self._parts: list[bytes] = []  # the chunks of an incomplete frame, as received
        self._buffered = 0
        # Bytes needed before the parts are worth joining: a size prefix, then a whole frame.
        self._wanted = 4

    @property
    def buffered(self) -> int:
        return self._buffered

    def feed(self, data: bytes) -> Iterator[memoryview]:
        """Take received bytes and yield every frame that is now complete (without its size)."""
        if type(data) is not bytes:  # frames must not see the caller's buffer change
            data = bytes(data)
        if self._parts:
            self._parts.append(data)
            self._buffered += len(data)
            if self._buffered < self._wanted:
                return
            data = b"".join(self._parts)
            self._parts, self._buffered = [], 0
        view = memoryview(data)
        pos = 0
        end = len(data)
        self._wanted = 4
        while end - pos >= 4:
            (size,) = _SIZE.unpack_from(data, pos)
            if size < 0 or size > self._max:
                raise FrameTooLargeError(f"frame of {size} bytes exceeds limit {self._max}")
            if end - pos - 4 < size:
                self._wanted = 4 + size
                break
            yield view[pos + 4 : pos + 4 + size]
            pos += 4 + size
        if pos < end:
            rest = data[pos:] if pos else data
            self._parts, self._buffered = [rest], len(rest)


class RequestHeader(Struct, frozen=True):
    """A request's header (v0-v2): which API, at which version, from whom."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    size: int  # bytes the header occupies; the body starts here


def peek_correlation_id(frame: memoryview) -> int | None:
    if len(frame) < 8:
        return None
    return _SIZE.unpack_from(frame, 4)[0]


def decode_request_header(frame: memoryview, flexible: bool) -> RequestHeader:
    """Request header v1 (v2 adds tagged fields when the API version is flexible).

    The client id is a classic nullable string even in v2, for compatibility with old brokers.
    """
    if len(frame) < _HEADER_FIXED.size:
        raise MalformedRequestError("request shorter than its header")
    api_key, api_version, correlation_id, client_len = _HEADER_FIXED.unpack_from(frame, 0)
    pos = _HEADER_FIXED.size
    client_id = None
    if client_len >= 0:
        if pos + client_len > len(frame):
            raise MalformedRequestError("client id runs past the end of the request")
        client_id = bytes(frame[pos : pos + client_len]).decode("utf-8", "replace")
        pos += client_len
    if flexible:
        count, pos = read_uvarint(frame, pos)
        for _ in range(count):
            _tag, pos = read_uvarint(frame, pos)
            length, pos = read_uvarint(frame, pos)
            pos += length
        if pos > len(frame):
            raise MalformedRequestError("header tagged fields run past the end of the request")
    return RequestHeader(api_key, api_version, correlation_id, client_id, pos)


def write_uvarint(out: bytearray, value: int) -> None:
    """Append Kafka's unsigned varint (compact lengths, tagged-field counts) to `out`."""
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read_uvarint(buf: memoryview | bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise MalformedRequestError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 28:
            raise MalformedRequestError("varint too long")


def skip_tagged_fields(buf: memoryview | bytes, pos: int) -> int:
    """The position after a tagged-field section (a response header's, when reading one)."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
    return pos


def response_header(correlation_id: int, flexible: bool) -> bytes:
    """Response header v0, or v1 (an empty tagged-field section) for flexible responses."""
    return _SIZE.pack(correlation_id) + (b"\x00" if flexible else b"")


def frame(payload_size: int) -> bytes:
    return _SIZE.pack(payload_size)
