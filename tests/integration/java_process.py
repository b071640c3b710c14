"""A single-file Java client program (compat-tests/java/src/test-only) run by a test: its stdout
read line by line on a thread, stdin closed to make it leave and exit, killed by PID at the end."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path


class JavaProcess:
    def __init__(self, name: str, classpath: str, source: Path, *args: str) -> None:
        self.name = name
        self.output: list[str] = []  # the lines `on_line` does not take
        self.process = subprocess.Popen(
            ["java", "-cp", classpath, str(source), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-out", daemon=True)
        self._reader.start()

    def on_line(self, kind: str, rest: str) -> bool:
        """Take a report line (`kind` its first word); False leaves it in `output`."""
        return False

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            kind, _, rest = line.strip().partition(" ")
            if not self.on_line(kind, rest):
                self.output.append(line.rstrip())

    def finish(self, timeout: float = 60) -> None:
        """Close its stdin: it leaves the group and exits, saying "closed" last."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not stop: {self.output[-20:]}") from None
        self._reader.join(10)
        assert code == 0, f"{self.name} exited with {code}: {self.output[-20:]}"
        assert self.output[-1:] == ["closed"], self.output[-20:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
