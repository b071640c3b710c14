"""Just enough HTTP/1.1 for Prometheus to scrape: GET (or HEAD) of one path, then close.

It runs on the broker's event loop (an asyncio server, no thread of its own), so a scrape reads
broker state where that state lives; the page function decides what runs elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from msgspec import Struct, field

log = structlog.get_logger(__name__)

REQUEST_HEAD_LIMIT = 16 * 1024  # request line and headers; Prometheus sends a few hundred bytes
REQUEST_TIMEOUT_S = 10.0  # to send the request head; a silent connection is closed after it


class Response(Struct, frozen=True):
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


# Given the request's headers (names in lower case): the response.
Page = Callable[[dict[str, str]], Awaitable[Response]]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error"}  # fmt: skip


class HttpServer:
    def __init__(self, pages: dict[str, Page]) -> None:
        self._pages = pages
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (port 0: any free one). OSError if it cannot."""
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=REQUEST_HEAD_LIMIT, reuse_address=True
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._connections):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            response, send_body = await self._respond(head)
            writer.write(_head(response) + (response.body if send_body else b""))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sent no complete request gets nothing
        except ConnectionError:
            pass
        finally:
            self._connections.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, head: bytes) -> tuple[Response, bool]:
        lines = head.decode("latin-1").split("\r\n")
        request_line = lines[0].split(" ")
        if len(request_line) != 3:
            return Response(400, b"bad request line\n"), True
        method, target, _ = request_line
        if method not in ("GET", "HEAD"):
            return Response(405, b"GET only\n", {"Allow": "GET, HEAD"}), True
        page = self._pages.get(target.split("?", 1)[0])
        if page is None:
            paths = ", ".join(sorted(self._pages))
            return Response(404, f"not found; try {paths}\n".encode()), method == "GET"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        try:
            response = await page(headers)
        except Exception:
            log.exception("metrics page failed", path=target)
            response = Response(500, b"internal error; see the broker's log\n")
        return response, method == "GET"


def _head(response: Response) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}"]
    headers = {"Content-Type": "text/plain; charset=utf-8", **response.headers}
    headers["Content-Length"] = str(len(response.body))
    headers["Connection"] = "close"
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
