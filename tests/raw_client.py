"""A minimal raw Kafka client for tests: hand-built frames and headers, bodies encoded by kio.

Tests that must put exact (or deliberately wrong) bytes on the wire use this instead of a client
library.
"""

from __future__ import annotations

import io
import select
import socket
import struct
import time
from typing import Any

from kio.serial import entity_reader, entity_writer

API_VERSIONS = 18
IO_TIMEOUT = 10.0


def encode(entity: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def request_header(
    api_key: int,
    version: int,
    correlation_id: int,
    flexible: bool,
    client_id: str | None = "bad-input-test",
    header_tags: bytes = b"\x00",
) -> bytes:
    """Request header v1, or v2 (plus a tagged-field section) for flexible versions."""
    if client_id is None:
        client = struct.pack(">h", -1)
    else:
        raw = client_id.encode()
        client = struct.pack(">h", len(raw)) + raw
    header = struct.pack(">hhi", api_key, version, correlation_id) + client
    return header + header_tags if flexible else header


def framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


class RawClient:
    """One TCP connection speaking Kafka frames; requests are answered in order."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=IO_TIMEOUT)
        self._next_correlation = 1

    @classmethod
    def wrapping(cls, sock: socket.socket) -> RawClient:
        """A client on a connected socket (e.g. one bound to a chosen source address)."""
        client = cls.__new__(cls)
        client.sock = sock
        client._next_correlation = 1
        return client

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def correlation_id(self) -> int:
        self._next_correlation += 1
        return self._next_correlation

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, api_key: int, version: int, body: bytes, flexible: bool, **header: Any) -> int:
        correlation_id = self.correlation_id()
        head = request_header(api_key, version, correlation_id, flexible, **header)
        self.send_raw(framed(head + body))
        return correlation_id

    def read_exactly(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self.sock.recv(size - len(chunks))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(chunks)} of {size} bytes")
            chunks += chunk
        return bytes(chunks)

    def receive(self, correlation_id: int, flexible_header: bool) -> bytes:
        """The response body of the frame answering `correlation_id` (response header checked)."""
        (size,) = struct.unpack(">i", self.read_exactly(4))
        payload = self.read_exactly(size)
        (got,) = struct.unpack_from(">i", payload, 0)
        assert got == correlation_id, f"response for correlation {got}, expected {correlation_id}"
        pos = 4
        if flexible_header:
            count, pos = read_uvarint(payload, pos)
            for _ in range(count):
                _tag, pos = read_uvarint(payload, pos)
                length, pos = read_uvarint(payload, pos)
                pos += length
        return payload[pos:]

    def request(self, request: Any, response_cls: type, **header: Any) -> Any:
        """Send a kio request entity and decode its answer with `response_cls`."""
        api_key, version = int(request.__api_key__), int(request.__version__)
        flexible = bool(request.__flexible__)
        correlation_id = self.send(api_key, version, encode(request), flexible, **header)
        return self.decode_response(correlation_id, response_cls)

    def decode_response(self, correlation_id: int, response_cls: type) -> Any:
        # ApiVersions answers always use response header v0 (clients parse it before they know
        # which versions the broker speaks).
        flexible = bool(response_cls.__flexible__) and int(response_cls.__api_key__) != API_VERSIONS
        body = self.receive(correlation_id, flexible)
        response, size = entity_reader(response_cls)(body, 0)
        assert size == len(body), f"{len(body) - size} unread bytes after {response_cls.__name__}"
        return response

    def closed_by_peer(self, timeout: float = IO_TIMEOUT) -> bool:
        """True once the broker closes the connection (EOF or reset), False on timeout.

        Any response bytes the broker sends before closing are discarded.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            readable, _, _ = select.select([self.sock], [], [], remaining)
            if not readable:
                return False
            try:
                if not self.sock.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True


def read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tagged_section(fields: dict[int, bytes]) -> bytes:
    """A tagged-field section: count, then (tag, length, data) in ascending tag order."""
    out = uvarint(len(fields))
    for tag in sorted(fields):
        out += uvarint(tag) + uvarint(len(fields[tag])) + fields[tag]
    return out
