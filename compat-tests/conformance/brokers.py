"""The two brokers under comparison, each started on a free loopback port with data in a temp dir.

Kafka is installed, configured and formatted by the benchmark's `peers.Kafka`; rafka is started
by the tests' `BrokerProcess`. Both restart on the same data directory and port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Protocol

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BENCH = ROOT / "compat-tests" / "bench"
sys.path[:0] = [str(BENCH), str(ROOT / "tests")]

import peers  # noqa: E402 - the benchmark's Kafka installer, reused
import probes  # noqa: E402
from broker_process import BrokerProcess, free_port  # noqa: E402 - the tests' rafka fixture

START_LIMIT_S = 60.0
STOP_LIMIT_S = 30.0
# Kafka's default delays a new group's first rebalance by 3 s; both brokers set 0.
RAFKA_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}
KAFKA_CACHE = BENCH / ".cache"  # shared with the benchmark: one download of the jars


class Broker(Protocol):
    name: str

    @property
    def bootstrap(self) -> str: ...

    def start(self) -> None: ...

    def restart(self) -> None: ...

    def stop(self) -> None: ...

    def log_tail(self, lines: int = 30) -> str: ...


class Rafka:
    name = "rafka"

    def __init__(self, data_dir: Path) -> None:
        self.process = BrokerProcess(data_dir / "logs", **RAFKA_OVERRIDES)

    @property
    def bootstrap(self) -> str:
        return self.process.bootstrap

    def start(self) -> None:
        self.process.start(timeout=START_LIMIT_S)

    def restart(self) -> None:
        self.process.stop(timeout=STOP_LIMIT_S)  # SIGTERM: a clean shutdown
        self.process.start(timeout=START_LIMIT_S)

    def stop(self) -> None:
        try:
            self.process.stop(timeout=STOP_LIMIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.process.log_lines[-lines:])


class Kafka:
    """Single-node KRaft Kafka from Maven Central's jars (compat-tests/bench/pom.xml)."""

    def __init__(self, data_dir: Path) -> None:
        self.peer = peers.Kafka(KAFKA_CACHE)
        self.name = self.peer.name
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = data_dir / "kafka.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._command: list[str] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def install(self) -> None:
        """Java, Maven and the jars (apt-get and Maven Central on first use); PeerUnavailable."""
        self.peer.install()

    def start(self) -> None:
        if not self._command:  # writes server.properties and formats the log dir, once
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._command = self.peer.prepare(self.data_dir, self.port, [free_port()]).command
        self._log = self.log_path.open("ab")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            self._command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            probes.wait_for_metadata(self.port, started, self.process, START_LIMIT_S)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {exc}\n{self.log_tail()}") from exc

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_LIMIT_S)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(STOP_LIMIT_S)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
