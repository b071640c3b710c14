"""Building a client's suite and running it against a broker, each as a bounded process group;
a suite's JSON lines on stdout become its column of cells."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from matrix import LOGS, ROOT
from matrix.clients import Client
from matrix.scenarios import SCENARIOS

BUILD_TIMEOUT = 1500.0  # a cold Maven/Go/npm cache downloads everything
SUITE_TIMEOUT = 480.0  # 19 scenarios, each bounded at 60 s inside the suite


# -- processes ------------------------------------------------------------------------------------


def run_bounded(
    command: list[str], cwd: Path, log: Path, timeout: float, env: dict[str, str] | None = None
) -> tuple[int | None, str]:
    """Runs a command in its own process group with stderr to `log`; returns (exit code or None
    on timeout, stdout). The whole group is killed afterwards, whatever it left running."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as errors:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        try:
            stdout, _ = process.communicate(timeout=timeout)
            code: int | None = process.returncode
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            stdout, _ = process.communicate()
            code = None
        finally:
            _kill_group(process.pid)
    return code, stdout


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- suites ---------------------------------------------------------------------------------------


@dataclass
class Column:
    client: Client
    version: str = ""
    cells: dict[str, tuple[str, str]] = field(default_factory=dict)  # scenario -> (result, reason)
    topics: dict[str, str] = field(default_factory=dict)  # scenario -> topic to inspect
    log: Path | None = None

    @property
    def header(self) -> str:
        """The client and the exact version its suite reported (which replaces a line like 4.x)."""
        if not self.version:
            return self.client.title
        title = re.sub(r" \d+\.(\d+|x)$", "", self.client.title)
        return f"{title} {self.version}"


def build(client: Client) -> str | None:
    """Builds the client's suite; returns why it failed, or None."""
    for step, command in enumerate(client.builds):
        log = LOGS / f"{client.key}.build{step}.log"
        started = time.monotonic()
        code, stdout = run_bounded(command, client.cwd, log, BUILD_TIMEOUT, client.env)
        with log.open("a") as out:
            out.write(stdout)
        took = time.monotonic() - started
        print(f"  built {client.key}: {' '.join(command)} ({took:.1f} s)", flush=True)
        if code != 0:
            what = "timed out" if code is None else f"exited {code}"
            return f"build `{' '.join(command)}` {what}; see {log.relative_to(ROOT)}"
    return None


def run_suite(
    client: Client,
    bootstrap: str,
    skips: dict[str, str],
    only: list[str],
    prefix: str,
    extra_env: dict[str, str] | None = None,
) -> Column:
    column = Column(client, log=LOGS / f"{client.key}.log")
    env = {
        **client.env,
        **(extra_env or {}),
        "COMPAT_BOOTSTRAP": bootstrap,
        "COMPAT_PREFIX": prefix,
        "COMPAT_SKIP": "\n".join(f"{name}\t{reason}" for name, reason in skips.items()),
        "COMPAT_ONLY": ",".join(only),
    }
    started = time.monotonic()
    code, stdout = run_bounded(client.run, client.cwd, column.log, SUITE_TIMEOUT, env)
    for line in stdout.splitlines():
        try:
            report = json.loads(line)
        except ValueError:
            continue  # a client library that logs to stdout
        if not isinstance(report, dict):
            continue
        if "version" in report:
            column.version = str(report["version"])
        elif report.get("scenario") in SCENARIOS and report.get("result") in (
            "pass",
            "fail",
            "skip",
        ):
            column.cells[report["scenario"]] = (report["result"], str(report.get("reason", "")))
            if report.get("topic"):
                column.topics[report["scenario"]] = str(report["topic"])
    ending = "timed out" if code is None else f"exited {code}"
    for scenario in only:
        if scenario not in column.cells:
            column.cells[scenario] = ("fail", f"suite {ending} without reporting this scenario")
    print(
        f"  ran {client.key}: {_summary(column, only)} ({time.monotonic() - started:.1f} s)",
        flush=True,
    )
    return column


def _summary(column: Column, only: list[str]) -> str:
    results = [column.cells[s][0] for s in only]
    return ", ".join(f"{results.count(r)} {r}" for r in ("pass", "fail", "skip") if r in results)
