"""A real single-node rafka broker in a child process: started on a free port, awaited until it
answers, stopped by PID.

Readiness is an event, not a delay: the broker logs `broker ready` (JSON) with the port it bound
(it listens on port 0, so two brokers never race for a port), and an ApiVersions request on that
port is answered. Output goes to `<directory>/broker.log`; data to `<directory>/data`.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

READY_EVENT = "broker ready"
DEFAULT_HOST = "127.0.0.1"
# The broker reads these from the environment; a developer's shell settings for a local broker
# (or KAFKA_* meant for an application) must not reconfigure a test broker behind its back.
_CONFIG_ENV_PREFIXES = ("RAFKA_", "KAFKA_")
_CONFIG_ENV_NAMES = frozenset({"CLUSTER_ID"})
_API_VERSIONS = 18
_OUTPUT_TAIL = 200

# Brokers started and not yet stopped: stopped at interpreter exit if no teardown did it.
_live: set[RafkaBroker] = set()


class BrokerStartError(RuntimeError):
    """The broker exited, or did not answer, before the start timeout."""


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class RafkaBroker:
    """One broker process. `overrides` are broker config keys (Kafka's names, e.g.
    `num.partitions`), applied over the launcher's own `listeners` and `log.dirs`."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = DEFAULT_HOST,
        overrides: Mapping[str, object] | None = None,
        log_level: str = "INFO",
        bytecode_cache: Path | None = None,
        python: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.host = host
        self.overrides = {k: _text(v) for k, v in (overrides or {}).items()}
        self.log_level = log_level
        self.bytecode_cache = bytecode_cache
        self.python = python or sys.executable
        self.port: int | None = None
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None
        self.returncode: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._output: deque[str] = deque(maxlen=_OUTPUT_TAIL)

    # -- what a test uses ---------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """`host:port` for a client's bootstrap.servers."""
        if self.port is None:
            raise RuntimeError("broker not started")
        return f"{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        """The broker's data directory (Kafka's log.dirs)."""
        return self.directory / "data"

    @property
    def output_path(self) -> Path:
        return self.directory / "broker.log"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output_tail(self, lines: int = 40) -> str:
        return "\n".join(list(self._output)[-lines:])

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> RafkaBroker:
        """Start and wait until the broker answers ApiVersions; raises BrokerStartError."""
        if self._process is not None:
            raise RuntimeError(f"broker already running (pid {self._process.pid})")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        deadline = time.monotonic() + timeout
        ready = threading.Event()
        process = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self._environment(),
            cwd=self.directory,
            # Its own session: a Ctrl-C in the terminal reaches pytest, whose teardown stops the
            # broker (and times it), not the broker first.
            start_new_session=True,
        )
        self._process = process
        self.returncode = None
        _live.add(self)
        self._reader = threading.Thread(
            target=self._read_output, args=(process, ready), name=f"rafka-{process.pid}",
            daemon=True,
        )
        self._reader.start()
        try:
            ready.wait(timeout)
            if self.port is None or process.poll() is not None:
                state = "did not log ready" if process.poll() is None else "exited"
                raise BrokerStartError(
                    f"rafka broker (pid {process.pid}) {state} within {timeout:g}s; "
                    f"output ({self.output_path}):\n{self.output_tail()}"
                )
            if not api_versions_ok(self.host, self.port, max(0.1, deadline - time.monotonic())):
                raise BrokerStartError(
                    f"rafka broker at {self.bootstrap} did not answer ApiVersions"
                )
        except BaseException:  # KeyboardInterrupt too: never leave a half-started broker behind
            self.kill()
            raise
        self.start_seconds = time.perf_counter() - began
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (a clean shutdown) and wait; SIGKILL after `timeout`. Returns the exit code."""
        process = self._process
        if process is None:
            return self.returncode
        began = time.perf_counter()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            if not _wait_for_exit(process, timeout):
                process.kill()
            process.wait()
        self.stop_seconds = time.perf_counter() - began
        self._finished(process)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, leaving whatever is on disk."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        self._finished(process)

    def restart(self, timeout: float = 30.0) -> RafkaBroker:
        """Stop cleanly and start again on the same port with the same data."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> RafkaBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.bootstrap if self.port is not None else "not started"
        return f"<RafkaBroker {where} pid={self.pid} dir={self.directory}>"

    # -- internals ----------------------------------------------------------------------------

    def _command(self) -> list[str]:
        # A restart keeps the port clients already know; the first start lets the kernel pick.
        port = self.port or 0
        settings = {
            "listeners": f"PLAINTEXT://{self.host}:{port}",
            "log.dirs": str(self.log_dir),
            **self.overrides,
        }
        args = [self.python, "-m", "rafka.testing._child", str(os.getpid()), "broker",
                "--log-level", self.log_level]
        for key, value in settings.items():
            args += ["--override", f"{key}={value}"]
        return args

    def _environment(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(_CONFIG_ENV_PREFIXES) and name not in _CONFIG_ENV_NAMES
        }
        env["RAFKA_LOG_FORMAT"] = "json"  # the ready event is read as JSON
        if (
            self.bytecode_cache is not None
            and env.get("PYTHONDONTWRITEBYTECODE")
            and not env.get("PYTHONPYCACHEPREFIX")
        ):
            # Without cached bytecode every start recompiles the broker (~2x slower); a private
            # cache directory keeps .pyc files out of the source tree, which is what
            # PYTHONDONTWRITEBYTECODE is usually set for.
            del env["PYTHONDONTWRITEBYTECODE"]
            env["PYTHONPYCACHEPREFIX"] = str(self.bytecode_cache)
        return env

    def _read_output(self, process: subprocess.Popen[str], ready: threading.Event) -> None:
        # Drains the pipe for the broker's whole life (a full pipe would block it), keeps a tail
        # for error messages and copies everything to broker.log.
        assert process.stdout is not None
        with open(self.output_path, "a", encoding="utf-8", buffering=1) as out:
            for line in process.stdout:
                out.write(line)
                self._output.append(line.rstrip("\n"))
                if not ready.is_set() and READY_EVENT in line:
                    port = _ready_port(line)
                    if port is not None:
                        self.port = port
                        ready.set()
        ready.set()  # the process ended: wake start() to report it

    def _finished(self, process: subprocess.Popen[str]) -> None:
        self.returncode = process.returncode
        if process.stdout is not None and self._reader is not None:
            self._reader.join(5.0)
            process.stdout.close()
        self._process = None
        self._reader = None
        _live.discard(self)


def _wait_for_exit(process: subprocess.Popen[str], timeout: float) -> bool:
    """Whether the process exited within `timeout`. A pidfd wakes us at the exit itself;
    Popen.wait(timeout) polls with sleeps of up to 50 ms, which would blur stop times."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3, or already reaped
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return bool(readable)


def _ready_port(line: str) -> int | None:
    """The first listener's port from the broker's `broker ready` JSON line."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if record.get("event") != READY_EVENT or not record.get("listeners"):
        return None
    return int(str(record["listeners"][0]).rsplit(":", 1)[1])


def api_versions_ok(host: str, port: int, timeout: float) -> bool:
    """Whether `host:port` answers an ApiVersions v0 request with no error."""
    client_id = b"rafka-testing"
    correlation_id = 1
    body = struct.pack(">hhih", _API_VERSIONS, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            answer = _recv_exact(sock, size)
    except OSError:
        return False
    got_id, error_code = struct.unpack_from(">ih", answer)
    return got_id == correlation_id and error_code == 0


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks += chunk
    return bytes(chunks)


@atexit.register
def _stop_all() -> None:
    for broker in list(_live):
        broker.stop(timeout=5.0)
