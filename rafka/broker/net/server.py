"""Listeners and connections: frames in, handler tasks, responses out in request order.

Requests of one connection are served concurrently (a long-polling fetch does not hold up a
metadata request behind it), but Kafka clients match responses by order, so each response waits
for the ones before it. acks=0 produce requests get no response at all.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import structlog

from rafka.broker.net.listener_security import PLAINTEXT, ListenerSecurity
from rafka.broker.net.tls import ANONYMOUS, principal_of
from rafka.protocol.errors import ProtocolError
from rafka.protocol.frames import FrameDecoder

log = structlog.get_logger(__name__)

# How often idle connections are looked for, as a fraction of connections.max.idle.ms (bounds).
IDLE_SWEEPS_PER_TIMEOUT = 4
IDLE_SWEEP_MIN_S, IDLE_SWEEP_MAX_S = 0.05, 30.0
# A client that connects to a TLS listener and never completes the handshake is dropped.
TLS_HANDSHAKE_TIMEOUT_S = 10.0


class SocketOptions(NamedTuple):
    """socket.send.buffer.bytes, socket.receive.buffer.bytes (-1: the kernel's own sizing) and
    socket.listen.backlog.size. The buffers are set on the listening socket: accepted
    connections inherit them, and the receive buffer must be in place before a handshake for
    the window scale it offers."""

    send_buffer: int = -1
    receive_buffer: int = -1
    listen_backlog: int = 50

    def apply(self, listening: socket.socket) -> None:
        if self.send_buffer >= 0:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        if self.receive_buffer >= 0:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)


class ConnectionLimits:
    """max.connections (client listeners together) and max.connections.per.ip (every listener),
    shared by the broker's listeners. A connection beyond a limit is closed at once."""

    def __init__(self, max_connections: int, max_per_ip: int) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self._clients = 0
        self._per_ip: dict[str, int] = {}

    def admit(self, ip: str, counted: bool) -> str | None:
        """Registers the connection and returns None, or returns why it is refused."""
        if self._per_ip.get(ip, 0) >= self.max_per_ip:
            return f"max.connections.per.ip ({self.max_per_ip}) reached for {ip}"
        if counted and self._clients >= self.max_connections:
            return f"max.connections ({self.max_connections}) reached"
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        self._clients += counted
        return None

    def release(self, ip: str, counted: bool) -> None:
        left = self._per_ip.get(ip, 0) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)
        self._clients -= counted


# A handler returns the response frame (size prefix included) or None for no response.
RequestHandler = Callable[[memoryview, "Connection"], Awaitable[bytes | list[bytes] | None]]


class Connection(asyncio.Protocol):
    def __init__(
        self,
        handler: RequestHandler,
        max_frame_bytes: int,
        on_close: Callable,
        on_open: Callable[[Connection], str | None] | None = None,
    ) -> None:
        self._handler = handler
        # Given the new connection (its peer known): None to serve it, else why it is refused.
        self._on_open = on_open
        self.admitted_by_limits = False
        self.last_active = 0.0
        self._decoder = FrameDecoder(max_frame_bytes)
        self._pending: deque[asyncio.Task[bytes | list[bytes] | None]] = deque()
        self._transport: asyncio.Transport | None = None
        self._on_close = on_close
        self.peer: str = "?"
        self.peer_host = ""
        # For controller listeners: whether the peer's address is a voter's (checked once).
        self.admitted: bool | None = None
        self.closed = False
        # The listener it came in on: Metadata and FindCoordinator answer with that listener's
        # advertised addresses (a container has one for the host and one for its network).
        self.listener = ""
        # Called once the connection is gone, one per key (share sessions end with the
        # connection that opened them, as Kafka's ShareSessionCache does on a disconnect).
        self.on_lost: dict[object, Callable[[], None]] = {}
        # Who the client is: User:<certificate DN> after mTLS, User:<name> after SASL, else
        # User:ANONYMOUS.
        self.principal = ANONYMOUS
        self.security: ListenerSecurity = PLAINTEXT
        # SASL: a SASL listener's connection is authenticated once the exchange succeeded (the
        # listener sets it False; other connections have nothing to prove); the mechanism's
        # server meanwhile; `sasl_raw` after a SaslHandshake v0, when the tokens come bare.
        self.authenticated = True
        self.sasl_server: Any = None
        self.sasl_raw = False
        # Close once the response being written is out (a failed authentication).
        self.close_after_reply = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.peer_host = str(peer[0]) if peer else ""
        self.principal = principal_of(transport.get_extra_info("ssl_object"))
        self.last_active = time.monotonic()
        if self._on_open is not None:
            refused = self._on_open(self)
            if refused is not None:
                log.info("connection refused", peer=self.peer, reason=refused)
                self.closed = True
                transport.close()

    def idle_since(self) -> float | None:
        """When the connection last did anything, or None while a request is being served
        (a long-polling fetch is not idleness)."""
        return None if self._pending else self.last_active

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            for frame in self._decoder.feed(data):
                task = asyncio.ensure_future(self._handler(frame, self))
                self._pending.append(task)
                task.add_done_callback(self._on_done)
        except ProtocolError as exc:
            self.abort(str(exc))

    def _on_done(self, _task: asyncio.Task) -> None:
        transport = self._transport
        while self._pending and self._pending[0].done():
            task = self._pending.popleft()
            if task.cancelled() or self.closed or transport is None:
                continue
            exc = task.exception()
            if exc is not None:
                log.error("request failed", peer=self.peer, exc_info=exc)
                self.abort(f"request failed: {exc!r}")
                return
            response = task.result()
            self.last_active = time.monotonic()
            if response is None:
                continue
            if isinstance(response, list):
                transport.writelines(response)
            else:
                transport.write(response)
            if self.close_after_reply:
                self.abort("authentication failed", warn=False)  # close() flushes the write
                return

    async def drain(self) -> None:
        """Stop reading and let the requests already received finish and be answered.

        A produce that was appended but not yet acknowledged would otherwise be retried by the
        client after a restart, and only the newest batch per producer survives in a snapshot.
        """
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()
        pending = [task for task in self._pending if not task.done()]
        if pending:
            await asyncio.wait(pending)

    def abort(self, reason: str, *, warn: bool = True) -> None:
        """Close the connection after a protocol violation (or, `warn` False, as the broker's
        routine answer to the state it is in); other connections are unaffected."""
        if self.closed:
            return
        (log.warning if warn else log.debug)("closing connection", peer=self.peer, reason=reason)
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for task in self._pending:
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # a pipelined request that failed after the one reported
        self._pending.clear()
        self._on_close(self)
        callbacks, self.on_lost = self.on_lost, {}
        for callback in callbacks.values():
            try:
                callback()
            except Exception:
                log.exception("connection close callback failed", peer=self.peer)


class Listener:
    """One `listeners` entry: accepts connections and hands frames to the dispatcher."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        handler: RequestHandler,
        max_frame: int,
        limits: ConnectionLimits | None = None,
        counts_toward_max: bool = True,
        idle_ms: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        security: ListenerSecurity = PLAINTEXT,
        sockets: SocketOptions | None = None,
    ):
        self._security = security
        self._sockets = sockets or SocketOptions()
        self.name = name
        self.host = host
        self.port = port
        self._handler = handler
        self._max_frame = max_frame
        self._limits = limits
        # Controller listeners do not count toward max.connections: clients cannot crowd the
        # other nodes out.
        self._counted = counts_toward_max
        self._idle_s = None if idle_ms is None or idle_ms < 0 else idle_ms / 1000
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.connections: set[Connection] = set()
        self._stopping = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make_connection,
            self.host,
            self.port,
            reuse_address=True,
            backlog=self._sockets.listen_backlog,
            ssl=self._ssl,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if self._ssl else None,
        )
        for listening in self._server.sockets:
            self._sockets.apply(listening)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]  # port 0 picks a free port (tests)
        if self._idle_s is not None:
            self._sweeper = asyncio.create_task(self._close_idle(), name=f"idle-{self.name}")

    def _make_connection(self) -> Connection:
        connection = Connection(self._handler, self._max_frame, self._closed, self._opened)
        connection.listener = self.name
        connection.security = self._security
        # Only a SASL listener's connections have to authenticate first.
        connection.authenticated = not self._security.sasl
        return connection

    def _opened(self, connection: Connection) -> str | None:
        """Tracked from connection_made on, not from accept: a TLS connection reaches it only
        after its handshake, and one whose handshake fails never reaches connection_lost."""
        if self._stopping:
            # Its handshake finished after stop() closed the others: it would stay open, and
            # served, until the process exits.
            return "broker shutting down"
        if self._limits is not None:
            refused = self._limits.admit(connection.peer_host, self._counted)
            if refused is not None:
                return refused
            connection.admitted_by_limits = True
        self.connections.add(connection)
        return None

    def _closed(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if connection.admitted_by_limits and self._limits is not None:
            connection.admitted_by_limits = False
            self._limits.release(connection.peer_host, self._counted)

    async def _close_idle(self) -> None:
        """connections.max.idle.ms: a connection with nothing in flight and no bytes either
        way for that long is closed (clients reconnect when they need to)."""
        assert self._idle_s is not None
        interval = self._idle_s / IDLE_SWEEPS_PER_TIMEOUT
        interval = min(max(interval, IDLE_SWEEP_MIN_S), IDLE_SWEEP_MAX_S)
        while True:
            await asyncio.sleep(interval)
            cutoff = time.monotonic() - self._idle_s
            for connection in list(self.connections):
                since = connection.idle_since()
                if since is not None and since < cutoff:
                    connection.abort("idle longer than connections.max.idle.ms", warn=False)

    async def stop(self, drain_timeout: float = 3.0, close_timeout: float = 5.0) -> None:
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
            drains = [asyncio.ensure_future(c.drain()) for c in list(self.connections)]
            if drains:
                await asyncio.wait(drains, timeout=drain_timeout)
            for connection in list(self.connections):
                connection.abort("broker shutting down", warn=False)
            try:
                # Bounded: uvloop 0.23 (like asyncio before 3.12) returns at once once closed,
                # but where it waits for every connection, a TLS handshake still under way or
                # a peer that never answers our close_notify must not keep the broker up.
                async with asyncio.timeout(close_timeout):
                    await self._server.wait_closed()
            except TimeoutError:
                log.warning("connections still open at shutdown", listener=self.name)
