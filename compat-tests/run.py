#!/usr/bin/env python3
"""The client compatibility matrix: builds every client's suite, starts a rafka broker, runs each
suite against it, prints the matrix (scenario x client -> pass / fail / skip (reason)) and writes
it to docs/compatibility.md.

    .venv/bin/python compat-tests/run.py              # everything; exit 1 if any cell fails
    .venv/bin/python compat-tests/run.py --clients kcat,kafkajs --scenarios metadata
    .venv/bin/python compat-tests/run.py --bootstrap HOST:PORT   # against a running broker

A client whose toolchain is missing (java/mvn, go, node/npm, kcat, a Python package) gets a column
of `skip (toolchain missing: ...)`; a scenario the broker does not serve yet (judged from its
ApiVersions) is skipped with the issue that will add it. Everything else that does not pass is a
`fail`: a build that breaks, a suite that crashes or times out, a scenario it does not report.
Every process started here runs in its own process group and is killed by that id at the end.
Logs of builds, suites and the broker go to compat-tests/target/logs/. The parts (scenarios,
clients, broker, suites, report) are the modules of compat-tests/matrix/.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from matrix import DOC, HERE, LOGS, ROOT
from matrix.broker import BrokerProcess, api_versions, check_stored, save_broker_log, start_broker
from matrix.clients import Client, clients
from matrix.report import failures, matrix_table, write_doc
from matrix.scenarios import SCENARIOS, gated_skips
from matrix.security import SCENARIOS as SECURITY_SCENARIOS
from matrix.security import SecuritySetup
from matrix.suites import Column, build, run_suite, tail


def hold_tree_lock() -> TextIO:
    """One run per work tree: a second run would rebuild (and clean) the suites under the first.
    The lock lasts as long as the returned file stays open (at the latest, until exit)."""
    lock = (HERE / "target" / ".run.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("another run.py is running in this tree; waiting for it", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", help="comma-separated client keys (default: all)")
    parser.add_argument("--scenarios", help="comma-separated scenarios (default: all)")
    parser.add_argument("--bootstrap", help="use a running broker instead of starting rafka")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/compatibility.md")
    args = parser.parse_args()

    every = clients()
    chosen = every
    if args.clients:
        keys = args.clients.split(",")
        unknown = set(keys) - {c.key for c in every}
        if unknown:
            parser.error(f"unknown clients {sorted(unknown)}; known: {[c.key for c in every]}")
        chosen = [c for c in every if c.key in keys]
    scenarios = list(SCENARIOS)
    if args.scenarios:
        scenarios = args.scenarios.split(",")
        unknown = set(scenarios) - set(SCENARIOS)
        if unknown:
            parser.error(f"unknown scenarios {sorted(unknown)}; known: {list(SCENARIOS)}")
    full_run = chosen == every and scenarios == list(SCENARIOS) and not args.bootstrap

    def on_sigterm(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the finally blocks that kill what we started

    signal.signal(signal.SIGTERM, on_sigterm)
    LOGS.mkdir(parents=True, exist_ok=True)
    tree_lock = hold_tree_lock()  # noqa: F841 - held until main returns
    started = time.monotonic()
    print("building suites", flush=True)
    columns: list[Column] = []
    runnable: list[Client] = []
    for client in chosen:
        column = Column(client)
        missing = client.toolchain()
        problem = None if missing else build(client)
        if missing:
            reason = f"toolchain missing: {missing}"
            column.cells = {s: ("skip", reason) for s in scenarios}
            print(f"  skipped {client.key}: {reason}", flush=True)
        elif problem:
            column.cells = {s: ("fail", problem) for s in scenarios}
            print(f"  FAILED {client.key}: {problem}\n{tail(LOGS / f'{client.key}.build0.log')}")
        else:
            runnable.append(client)
        columns.append(column)

    data_dir = Path(tempfile.mkdtemp(prefix="rafka-compat-"))
    broker: BrokerProcess | None = None

    security_env: dict[str, str] = {}
    try:
        if not args.bootstrap:
            setup = SecuritySetup(data_dir.with_name(data_dir.name + "-certs"))
            broker, security_env = start_broker(data_dir, setup)
            print(f"rafka broker at {broker.bootstrap}", flush=True)
        bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
        skips = gated_skips(api_versions(bootstrap), ours=broker is not None)
        if not security_env:
            for scenario in SECURITY_SCENARIOS:
                skips[scenario] = "needs the secured listeners of a broker run.py starts"
        for scenario, reason in skips.items():
            print(f"  skipping {scenario}: {reason}")
        print("running suites", flush=True)
        run_id = f"{os.getpid()}{int(time.time()) % 100000}"
        for client in runnable:
            index = next(i for i, c in enumerate(columns) if c.client is client)
            prefix = f"compat-{run_id}-{client.key.replace('.', '')}"
            column = run_suite(client, bootstrap, skips, scenarios, prefix, security_env)
            if broker is not None:
                for scenario, topic in column.topics.items():
                    problem = column.cells[scenario][0] == "pass" and check_stored(
                        data_dir, scenario, topic
                    )
                    if problem:
                        column.cells[scenario] = ("fail", f"stored batches: {problem}")
            columns[index] = column
    finally:
        if broker is not None:
            broker_log = save_broker_log(broker)
            broker.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(data_dir.with_name(data_dir.name + "-certs"), ignore_errors=True)

    print()
    print(matrix_table(columns, scenarios))
    failed = failures(columns, scenarios)
    if failed:
        print("\nfailures:")
        for failure in failed:
            print(f"  {failure}")
        for column in columns:
            if column.log and any(column.cells[s][0] == "fail" for s in scenarios):
                print(f"\n--- {column.log.relative_to(ROOT)} (tail) ---\n{tail(column.log)}")
        if broker is not None:
            print(f"\n--- {broker_log.relative_to(ROOT)} (tail) ---\n{tail(broker_log)}")
    if full_run and not args.no_doc:
        write_doc(columns, scenarios, "a single-node rafka broker")
        print(f"\nwrote {DOC.relative_to(ROOT)}")
    results = [c.cells[s][0] for c in columns for s in scenarios]
    print(
        f"\nmatrix of {len(columns)} clients x {len(scenarios)} scenarios in "
        f"{time.monotonic() - started:.0f} s"
    )
    print(
        f"compat: {results.count('pass')} passed, {results.count('fail')} failed, "
        f"{results.count('skip')} skipped"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every process started here was killed", file=sys.stderr)
        sys.exit(130)
