"""Listeners and connections: frames in, handler tasks, responses out in request order.

Requests of one connection are served concurrently (a long-polling fetch does not hold up a
metadata request behind it), but Kafka clients match responses by order, so each response waits
for the ones before it. acks=0 produce requests get no response at all.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

from rafka.protocol.errors import ProtocolError
from rafka.protocol.frames import FrameDecoder

log = structlog.get_logger(__name__)

# A handler returns the response frame (size prefix included) or None for no response.
RequestHandler = Callable[[memoryview, "Connection"], Awaitable[bytes | list[bytes] | None]]


class Connection(asyncio.Protocol):
    def __init__(self, handler: RequestHandler, max_frame_bytes: int, on_close: Callable) -> None:
        self._handler = handler
        self._decoder = FrameDecoder(max_frame_bytes)
        self._pending: deque[asyncio.Task[bytes | list[bytes] | None]] = deque()
        self._transport: asyncio.Transport | None = None
        self._on_close = on_close
        self.peer: str = "?"
        self.closed = False
        # The listener it came in on: Metadata and FindCoordinator answer with that listener's
        # advertised addresses (a container has one for the host and one for its network).
        self.listener = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    def data_received(self, data: bytes) -> None:
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
            if response is None:
                continue
            if isinstance(response, list):
                transport.writelines(response)
            else:
                transport.write(response)

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
            task.cancel()
        self._pending.clear()
        self._on_close(self)


class Listener:
    """One `listeners` entry: accepts connections and hands frames to the dispatcher."""

    def __init__(self, name: str, host: str, port: int, handler: RequestHandler, max_frame: int):
        self.name = name
        self.host = host
        self.port = port
        self._handler = handler
        self._max_frame = max_frame
        self._server: asyncio.Server | None = None
        self.connections: set[Connection] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make_connection, self.host, self.port, reuse_address=True, backlog=1024
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]  # port 0 picks a free port (tests)

    def _make_connection(self) -> Connection:
        connection = Connection(self._handler, self._max_frame, self.connections.discard)
        connection.listener = self.name
        self.connections.add(connection)
        return connection

    async def stop(self, drain_timeout: float = 3.0) -> None:
        if self._server is not None:
            self._server.close()
            drains = [asyncio.ensure_future(c.drain()) for c in list(self.connections)]
            if drains:
                await asyncio.wait(drains, timeout=drain_timeout)
            for connection in list(self.connections):
                connection.abort("broker shutting down")
            await self._server.wait_closed()
