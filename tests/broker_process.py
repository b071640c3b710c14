"""A real rafka broker in a child process for tests: started, awaited until ready, killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

READY_EVENT = "broker ready"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerProcess:
    """`launcher` prefixes the command (e.g. `ip netns exec <ns>`, which execs in place, so the
    PID signalled is still the broker's); `host` is the address it listens on."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        launcher: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        **overrides: str,
    ) -> None:
        self.extra_args = list(extra_args)  # more `rafka broker` arguments (e.g. --add-scram)
        self.data_dir = data_dir
        self.host = host
        self.launcher = list(launcher)
        self.port = port or free_port()
        self.overrides = {
            "listeners": f"PLAINTEXT://{host}:{self.port}",
            "log.dirs": str(data_dir),
            **overrides,
        }
        self.process: subprocess.Popen[str] | None = None
        self.log_lines: list[str] = []
        self._ready = threading.Event()  # the ready line was seen
        self._settled = threading.Event()  # ready, or the process ended

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BrokerProcess:
        args = [*self.launcher, sys.executable, "-m", "rafka", "broker", *self.extra_args]
        for key, value in self.overrides.items():
            args += ["--override", f"{key}={value}"]
        env = {**os.environ, "RAFKA_LOG_FORMAT": "json"}
        # Fresh events per start: the previous process's reader thread may still be finishing.
        self._ready = threading.Event()
        self._settled = threading.Event()
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        threading.Thread(
            target=self._read_output,
            args=(self.process, self._ready, self._settled),
            daemon=True,
        ).start()
        self._settled.wait(timeout)
        if not self._ready.is_set():
            output = "\n".join(self.log_lines[-40:])
            self.kill()
            raise RuntimeError(f"broker did not become ready:\n{output}")
        return self

    def _read_output(
        self, process: subprocess.Popen[str], ready: threading.Event, settled: threading.Event
    ) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.log_lines.append(line.rstrip())
            if READY_EVENT in line and _is_event(line, READY_EVENT):
                ready.set()
                settled.set()
        settled.set()  # wake a waiting start() so it can report the failure

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: a clean shutdown."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, leaving whatever is on disk."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(30)
        self.process = None

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _is_event(line: str, event: str) -> bool:
    try:
        return json.loads(line).get("event") == event
    except ValueError:
        return event in line
