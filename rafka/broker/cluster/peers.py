"""Connections from this broker to the other nodes of the cluster (Raft traffic and forwarding).

Requests to one peer are pipelined on a connection and answered in order, as Kafka's protocol
guarantees. Each peer gets one connection per channel, so that a replica Fetch the leader holds
for up to `max_wait` never delays a Vote or a forwarded admin request queued behind it, nor the
data partitions' fetch the metadata log's.

Faults (issue 13): a connect that is not set up within `socket.connection.setup.timeout.ms` is
given up and begun afresh, so a peer cut off by a partition is reached again as soon as the
network heals, not when the kernel's SYN backoff next retries (1, 3, 7, 15 s ... after the
connect began). A request that times out resets its connection (RST, SO_LINGER 0): a graceful
close would leave the request in the kernel's send queue, to be delivered after the heal and acted
on long after its sender moved on.
"""

from __future__ import annotations

import asyncio
import io
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import structlog
from kio.serial import entity_reader, entity_writer
from msgspec import Struct

from rafka.protocol.fetch_request import VERSION as REPLICA_FETCH_VERSION
from rafka.protocol.fetch_response import decode_replica_fetch_response
from rafka.protocol.frames import FrameDecoder, skip_tagged_fields
from rafka.protocol.messages import build, request_class, response_class

# Requests between brokers carry this client id (a broker cut off from the controller still
# serves them: see self_fencing).
PEER_CLIENT_ID_PREFIX = "rafka-node-"

log = structlog.get_logger(__name__)

_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhih")
API_VERSIONS = 18
FETCH = 1
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
RECONNECT_BACKOFF_S = 0.1
# socket.connection.setup.timeout.ms as rafka defaults it (Kafka: 10 s, growing to 30 s). A SYN
# not answered within the kernel's initial retransmission timeout (1 s) was lost; between nodes
# a live peer accepts in well under that. A fresh connect every ~1.1 s keeps the time from a heal
# to a working connection under 2 s.
CONNECT_TIMEOUT_S = 1.0
_LINGER_RESET = struct.pack("ii", 1, 0)


class PeerSasl(Struct, frozen=True):
    """How this node authenticates to the others' controller listeners: the mechanism and its
    one token (PLAIN's authzid NUL user NUL password)."""

    mechanism: str
    token: bytes


class PeerUnavailable(ConnectionError):
    """The peer could not be reached or dropped the connection before answering."""


class PeerConnection(asyncio.Protocol):
    """One TCP connection to a peer; requests are answered in the order they were sent."""

    def __init__(self) -> None:
        self._decoder = FrameDecoder(MAX_RESPONSE_BYTES)
        self._waiting: deque[tuple[int, int, int, asyncio.Future[Any]]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            for frame in self._decoder.feed(data):
                if not self._waiting:
                    raise ValueError("response to no request")
                correlation, api_key, version, future = self._waiting.popleft()
                (got,) = _SIZE.unpack_from(frame, 0)
                if got != correlation:
                    raise ValueError(f"correlation id {got}, expected {correlation}")
                if not future.done():
                    future.set_result(decode_response(api_key, version, frame))
        except Exception as exc:  # a broken peer: drop the connection, fail what waits
            log.warning("bad response from peer", error=repr(exc))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self._waiting:
            future = self._waiting.popleft()[3]
            if not future.done():
                future.set_exception(PeerUnavailable(str(exc or "connection closed")))

    def send(self, correlation: int, api_key: int, version: int, payload: bytes) -> asyncio.Future:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None:
            future.set_exception(PeerUnavailable("connection closed"))
            return future
        self._waiting.append((correlation, api_key, version, future))
        self.transport.write(payload)
        return future

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def abort(self) -> None:
        """Reset the connection: whatever is still queued, in asyncio's buffer or the kernel's
        send queue, is discarded and never reaches the peer (SO_LINGER 0 makes close send RST)."""
        transport = self.transport
        if transport is not None and not self.closed:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                except OSError:
                    pass  # already closed by the kernel: nothing left to deliver
            transport.abort()
        self.closed = True


def _encode_request(
    api_key: int, version: int, correlation: int, client_id: bytes, data: Any
) -> bytes:
    """`data`: a dict built into the request entity, the entity itself (forwarding), or the
    body already encoded (a follower's Fetch)."""
    request_cls = request_class(api_key, version)
    if request_cls is None:
        raise ValueError(f"no schema for API {api_key} v{version}")
    if isinstance(data, bytes):
        body = data
    else:
        out = io.BytesIO()
        entity = build(request_cls, data) if isinstance(data, dict) else data
        entity_writer(request_cls)(out, entity)
        body = out.getvalue()
    header = _HEADER.pack(api_key, version, correlation, len(client_id)) + client_id
    if request_cls.__flexible__:
        header += b"\x00"  # no tagged fields
    payload = header + body
    return _SIZE.pack(len(payload)) + payload


def decode_response(api_key: int, version: int, frame: memoryview | bytes) -> Any:
    """A response frame (from its correlation id on) as the response entity; a follower's
    Fetch (v12) as a FetchResponseBody, decoded by hand with its records left in the frame."""
    response_cls = response_class(api_key, version)
    offset = 4
    if response_cls.__flexible__ and api_key != API_VERSIONS:
        offset = skip_tagged_fields(frame, offset)
    if api_key == FETCH and version == REPLICA_FETCH_VERSION:
        return decode_replica_fetch_response(frame, offset)
    response, _ = entity_reader(response_cls)(bytes(frame), offset)
    return response


class PeerChannel:
    """A lazily (re)connected connection to one address."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: bytes,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
        sasl: PeerSasl | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._sasl = sasl
        self._client_id = client_id
        self._connect_timeout = connect_timeout
        self._connection: PeerConnection | None = None
        self._connecting: asyncio.Future[PeerConnection] | None = None
        self._failed_at = 0.0
        self._correlation = 0

    async def _connected(self) -> PeerConnection:
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> PeerConnection:
        wait = self._failed_at + RECONNECT_BACKOFF_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    PeerConnection,
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
        except TimeoutError:
            # Cancelling the connect closes its socket; the next request starts a new one.
            self._failed_at = time.monotonic()
            raise PeerUnavailable(
                f"{self.host}:{self.port}: connect not set up in {self._connect_timeout} s"
            ) from None
        except OSError as exc:  # ssl.SSLError too: a certificate the trust store refuses
            self._failed_at = time.monotonic()
            raise PeerUnavailable(f"{self.host}:{self.port}: {exc}") from None
        if self._sasl is not None:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await self._authenticate(connection)
            except (TimeoutError, PeerUnavailable) as exc:
                connection.abort()
                self._failed_at = time.monotonic()
                raise PeerUnavailable(f"{self.host}:{self.port}: SASL: {exc}") from None
        self._connection = connection
        return connection

    async def _authenticate(self, connection: PeerConnection) -> None:
        """SaslHandshake v1 then SaslAuthenticate v2 with this node's credentials (PLAIN)."""
        assert self._sasl is not None
        steps = (
            (SASL_HANDSHAKE, 1, {"mechanism": self._sasl.mechanism}),
            (SASL_AUTHENTICATE, 2, {"auth_bytes": self._sasl.token}),
        )
        for api_key, version, data in steps:
            self._correlation = (self._correlation + 1) & 0x7FFFFFFF
            payload = _encode_request(api_key, version, self._correlation, self._client_id, data)
            response = await connection.send(self._correlation, api_key, version, payload)
            if response.error_code != 0:
                message = getattr(response, "error_message", None) or int(response.error_code)
                raise PeerUnavailable(f"refused ({message})")

    async def request(self, api_key: int, version: int, data: Any, timeout: float) -> Any:
        async with asyncio.timeout(timeout):
            connection = await self._connected()
        self._correlation = (self._correlation + 1) & 0x7FFFFFFF
        payload = _encode_request(api_key, version, self._correlation, self._client_id, data)
        future = connection.send(self._correlation, api_key, version, payload)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            # Reset, not close: later responses would be matched to the wrong request, and the
            # request itself, if still queued, must never arrive late (issue 13, bug 3).
            connection.abort()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


class PeerNetwork:
    """Channels to every other node by id: `control` (votes, forwarding), `fetch` (data
    partitions' replica fetches) and `metadata` (the metadata log's)."""

    CHANNELS = ("control", "fetch", "metadata")

    def __init__(
        self,
        node_id: int,
        addresses: Mapping[int, tuple[str, int]],
        connect_timeout: float = CONNECT_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
        sasl: PeerSasl | None = None,
    ) -> None:
        self.node_id = node_id
        client_id = f"{PEER_CLIENT_ID_PREFIX}{node_id}".encode()
        self._client_id = client_id
        self._connect_timeout = connect_timeout
        self._ssl = ssl_context
        self._sasl = sasl
        self.addresses = dict(addresses)
        self._channels = {
            (peer, name): PeerChannel(host, port, client_id, connect_timeout, ssl_context, sasl)
            for peer, (host, port) in addresses.items()
            if peer != node_id
            for name in self.CHANNELS
        }

    def set_address(self, node_id: int, host: str, port: int) -> None:
        """Reach `node_id` at (host, port) from now on: a broker-only node, which has no
        controller listener, at its inter-broker listener once its registration is known.
        Connections to an older address are closed."""
        if node_id == self.node_id or self.addresses.get(node_id) == (host, port):
            return
        self.addresses[node_id] = (host, port)
        for name in self.CHANNELS:
            old = self._channels.get((node_id, name))
            if old is not None:
                old.close()
            self._channels[(node_id, name)] = PeerChannel(
                host, port, self._client_id, self._connect_timeout, self._ssl, self._sasl
            )
        log.info("peer address", node=node_id, host=host, port=port)

    def knows(self, node_id: int) -> bool:
        return (node_id, "control") in self._channels

    async def request(
        self,
        node_id: int,
        api_key: int,
        version: int,
        data: Any,
        *,
        channel: str = "control",
        timeout: float = 5.0,
    ) -> Any:
        peer = self._channels.get((node_id, channel))
        if peer is None:
            raise PeerUnavailable(f"no address for node {node_id}")
        try:
            return await peer.request(api_key, version, data, timeout)
        except TimeoutError:
            raise PeerUnavailable(f"node {node_id} did not answer in {timeout} s") from None

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
