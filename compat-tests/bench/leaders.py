"""Until a broker leads every partition: Metadata v4 requests for all topics, each answer read to
the end and its partitions counted (the partition-scale section's restart figures)."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from typing import Any

import probes

# Between full Metadata requests while waiting for every leader: POLL_S, or POLL_COST_RATIO
# times the last answer's wall time if longer, so that answering them takes a broker at most a
# tenth of its time (a 10,000-partition answer costs a Python broker tens of milliseconds).
POLL_S = 0.1
POLL_COST_RATIO = 9.0
CONNECT_POLL_S = 0.01  # between connection attempts while the broker is not listening yet


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value[0] if len(value) == 1 else value

    def string(self) -> str | None:
        size = self.take(">h")
        if size < 0:
            return None
        text = self.data[self.at:self.at + size].decode()
        self.at += size
        return text

    def skip_int32_array(self) -> None:
        count = self.take(">i")  # before `at` is read again: take() moves it
        self.at += 4 * max(count, 0)


def led_partitions(body: bytes, topics: dict[str, int]) -> int:
    """How many partitions of `topics` a Metadata v4 response body lists with a leader."""
    r = _Reader(body)
    r.take(">ii")  # correlation id, throttle ms
    for _ in range(r.take(">i")):  # brokers: node id, host, port, rack
        r.take(">i")
        r.string()
        r.take(">i")
        r.string()
    r.string()  # cluster id
    r.take(">i")  # controller id
    led = 0
    for _ in range(r.take(">i")):
        topic_error = r.take(">h")
        name = r.string()
        r.take(">b")  # is internal
        for _ in range(r.take(">i")):
            error, _index, leader = r.take(">hii")
            r.skip_int32_array()  # replicas
            r.skip_int32_array()  # in-sync replicas
            if name in topics and topic_error == 0 and error == 0 and leader >= 0:
                led += 1
    return led


def _metadata_body(sock: socket.socket) -> bytes:
    sock.sendall(probes.METADATA_REQUEST)
    size = struct.unpack(">i", _receive(sock, 4))[0]
    return _receive(sock, size)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = probes.recv_exactly(sock, size)
    if data is None:
        raise ConnectionError("connection closed")
    return data


def wait_for_leaders(port: int, topics: dict[str, int], started: float, limit: float,
                     process: subprocess.Popen | None = None) -> dict[str, float]:
    """From `started` (perf_counter): ms to the first Metadata answer and to one listing every
    partition of `topics` with a leader. One connection, a full request at a time."""
    wanted = sum(topics.values())
    first: float | None = None
    led = 0
    sock: socket.socket | None = None
    try:
        while True:
            elapsed = time.perf_counter() - started
            if elapsed > limit:
                raise TimeoutError(f"{led:,} of {wanted:,} partitions led after {limit:.0f} s")
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"broker exited with code {process.returncode}")
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                asked = time.perf_counter()
                body = _metadata_body(sock)
            except OSError:
                if sock is not None:
                    sock.close()
                    sock = None
                time.sleep(CONNECT_POLL_S)
                continue
            answered = time.perf_counter()
            now = (answered - started) * 1000.0
            first = now if first is None else first
            led = led_partitions(body, topics)
            if led >= wanted:
                return {"first_answer_ms": first, "all_led_ms": now}
            time.sleep(max(POLL_S, POLL_COST_RATIO * (answered - asked)))
    finally:
        if sock is not None:
            sock.close()
