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
Logs of builds, suites and the broker go to compat-tests/target/logs/.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import TextIO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
from broker_process import BrokerProcess  # noqa: E402 - the tests' broker fixture, reused

LOGS = HERE / "target" / "logs"
DOC = ROOT / "docs" / "compatibility.md"

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
SCENARIOS: dict[str, str] = {
    "metadata": "create a 3-partition topic; the client's metadata shows the one broker at the "
    "bootstrap address (as controller, with a cluster id) and each partition led by it",
    **{
        f"produce-consume-{codec}": f"produce 100 keyed records (some keys null) with headers "
        f"(a repeated name among them), compression `{codec}`; read them back by manual "
        "assignment: same keys, values, headers, order, nothing after them"
        + ("" if codec == "none" else f"; the broker stored `{codec}` batches")
        for codec in CODECS
    },
    "idempotent-produce": "idempotent producer, acks=all, 500 records in small batches: read "
    "back exactly once in order; the stored batches carry a producer id and gapless sequences",
    "group-rebalance": "consumer group on a 4-partition topic: the first member owns all 4; a "
    "second joins and the partitions are split between them; together they read all 40 "
    "records; the second leaves and the first owns all 4 again",
    "commit-resume": "a group member reads 10 of 20 records and commits the next offset (with "
    "metadata where the client allows); the committed offset reads back; a new member of the "
    "group resumes exactly there, and its own commit lands",
    "admin-topics": "create a 3-partition topic, describe it, list it, re-create it "
    "(TOPIC_ALREADY_EXISTS), delete it, see it leave the list (and describe fail)",
    "admin-configs": "create a topic with retention.ms; describe its configs (value, source, "
    "defaults); alter retention.ms (incrementally where the client can); describe the broker's",
    "transactions": "commit 5 records, abort 3, commit 1; read_committed sees the 6 committed, "
    "read_uncommitted all 9; the stored batches are transactional with 3 markers",
    "txn-pipeline": "one transactional producer, 20 transactions on an 8-partition topic; each "
    "sends 20 records (about 4 to a batch) to every partition without waiting and commits at "
    "once. With transaction version 2 each commit bumps the epoch, so the next transaction's "
    "first batches restart at sequence 0 while later ones are in flight behind them. "
    "read_committed sees all 3200 exactly once; the stored batches are transactional, each "
    "epoch's sequences start at 0 without gaps, with 20 markers",
}

# Scenarios that need broker APIs rafka does not serve yet: skipped, naming the issue, while the
# broker does not advertise them. Consumer groups are deliberately absent: without them the group
# scenarios must fail, not skip.
API_NAMES = {
    24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn",
    26: "EndTxn",
    28: "TxnOffsetCommit",
    32: "DescribeConfigs",
    33: "AlterConfigs",
    44: "IncrementalAlterConfigs",
}
GATES: dict[str, tuple[list[int], str]] = {
    "admin-configs": ([32, 33, 44], "issue 3"),
    "transactions": ([24, 25, 26, 28], "issue 5"),
    "txn-pipeline": ([24, 26], "issue 5"),
}

BROKER_OVERRIDES = {
    # Kafka's default delays a new group's first rebalance by 3 s; test brokers set 0.
    "group.initial.rebalance.delay.ms": "0",
}
BUILD_TIMEOUT = 1500.0  # a cold Maven/Go/npm cache downloads everything
SUITE_TIMEOUT = 420.0  # 12 scenarios, each bounded at 60 s inside the suite


# -- clients --------------------------------------------------------------------------------------


@dataclass
class Client:
    key: str
    title: str
    cwd: Path
    run: list[str]
    builds: list[list[str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    toolchain: Callable[[], str | None] = lambda: None  # what is missing, or None


def _missing_commands(*commands: str) -> str | None:
    absent = [c for c in commands if shutil.which(c) is None]
    return ", ".join(absent) if absent else None


def _missing_modules(*modules: str) -> str | None:
    absent = [m for m in modules if find_spec(m) is None]
    return ", ".join(f"Python package {m}" for m in absent) if absent else None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _command_output(*command: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def _java_toolchain() -> str | None:
    missing = _missing_commands("java", "mvn")
    if missing:
        return missing
    settings = _command_output("java", "-XshowSettings:properties", "-version")
    spec = re.search(r"java\.specification\.version = (\S+)", settings)
    if spec is None or _version_tuple(spec.group(1)) < (17,):
        return f"Java >= 17 (found {spec.group(1) if spec else 'unknown'})"
    return None


def _go_toolchain() -> str | None:
    if shutil.which("go") is None:
        return "go"
    wanted = re.search(r"^go (\S+)", (HERE / "go" / "go.mod").read_text(), re.MULTILINE)
    found = _command_output("go", "env", "GOVERSION").strip()
    if wanted and _version_tuple(found) < _version_tuple(wanted.group(1)):
        return f"Go >= {wanted.group(1)} (found {found or 'unknown'})"
    return None


def _node_toolchain() -> str | None:
    missing = _missing_commands("node", "npm")
    if missing:
        return missing
    found = _command_output("node", "--version").strip()
    if _version_tuple(found) < (18,):
        return f"Node.js >= 18 (found {found or 'unknown'})"
    return None


def clients() -> list[Client]:
    python = sys.executable
    java = HERE / "java"
    mvn = ["mvn", "-B", "-q", "-Dstyle.color=never"]

    def java_client(key: str, title: str, profile: str) -> Client:
        target = f"target/{profile}"
        return Client(
            key,
            title,
            java,
            ["java", "-cp", f"{target}/classes{os.pathsep}{target}/lib/*", "dev.rafka.compat.Main"],
            builds=[[*mvn, "-P", profile, "clean", "process-classes"]],
            toolchain=_java_toolchain,
        )

    def python_client(key: str, title: str, script: str, *modules: str) -> Client:
        return Client(
            key,
            title,
            HERE / "python",
            [python, script],
            toolchain=lambda: _missing_modules(*modules),
        )

    return [
        java_client("java-4", "Java kafka-clients 4.x", "kafka-4"),
        java_client("java-3.9", "Java kafka-clients 3.9", "kafka-3.9"),
        Client(
            "franz-go",
            "franz-go",
            HERE / "go",
            [str(HERE / "go" / "target" / "compat-go")],
            builds=[["go", "build", "-mod=readonly", "-o", "target/compat-go", "."]],
            env={"GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false"},
            toolchain=_go_toolchain,
        ),
        Client(
            "kafkajs",
            "kafkajs",
            HERE / "node",
            ["node", "suite.js"],
            builds=[["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]],
            toolchain=_node_toolchain,
        ),
        python_client(
            "confluent-kafka",
            "confluent-kafka",
            "confluent_suite.py",
            "confluent_kafka",
        ),
        Client(
            "kcat",
            "kcat",
            HERE / "python",
            [python, "kcat_suite.py"],
            toolchain=lambda: _missing_commands("kcat") or _missing_modules("confluent_kafka"),
        ),
        python_client("kafka-python", "kafka-python", "kafka_python_suite.py", "kafka"),
        python_client("aiokafka", "aiokafka", "aiokafka_suite.py", "aiokafka"),
    ]


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


# -- broker ---------------------------------------------------------------------------------------


def start_broker(data_dir: Path) -> BrokerProcess:
    """A rafka broker on a free port with data in `data_dir` (tests/broker_process.py)."""
    return BrokerProcess(data_dir, **BROKER_OVERRIDES).start()


def save_broker_log(broker: BrokerProcess) -> Path:
    log = LOGS / "broker.log"
    log.write_text("\n".join(broker.log_lines) + "\n")
    return log


def api_versions(bootstrap: str) -> dict[int, tuple[int, int]]:
    """ApiVersions v0 by hand: {api_key: (min, max)} as the broker advertises them."""
    host, port = bootstrap.rsplit(":", 1)
    client_id = b"rafka-compat"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _read_exactly(conn, 4))[0]
        payload = _read_exactly(conn, size)
    _correlation, error, count = struct.unpack_from(">ihi", payload)
    if error:
        raise RuntimeError(f"ApiVersions failed with error {error}")
    return {
        key: (low, high)
        for key, low, high in (
            struct.unpack_from(">hhh", payload, 10 + 6 * i) for i in range(count)
        )
    }


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data


def gated_skips(advertised: dict[int, tuple[int, int]], ours: bool) -> dict[str, str]:
    skips = {}
    for scenario, (apis, issue) in GATES.items():
        missing = [API_NAMES[a] for a in apis if a not in advertised]
        if missing:
            what = f"not implemented in rafka yet: {issue}" if ours else "broker lacks"
            skips[scenario] = f"{what}; no {', '.join(missing)}"
    return skips


# -- stored-batch checks --------------------------------------------------------------------------


def check_stored(data_dir: Path, scenario: str, topic: str) -> str | None:
    """What the broker stored for the scenario's topic, checked against what the client claimed
    to send; returns the problem, or None."""
    from rafka.protocol.records import iter_batch_headers

    batches = []
    for segment in sorted((data_dir / f"{topic}-0").glob("*.log")):
        batches += [header for _, header in iter_batch_headers(segment.read_bytes())]
    data = [b for b in batches if not b.is_control]
    if not data:
        return "no data batches stored"
    if scenario.startswith("produce-consume-"):
        codec = scenario.removeprefix("produce-consume-")
        stored = sorted({b.compression.name.lower() for b in data})
        if stored != [codec]:
            return f"stored batches are compressed with {stored}, not {codec}"
    elif scenario == "idempotent-produce":
        if not all(b.has_producer_id for b in data):
            return "stored batches carry no producer id: the client did not produce idempotently"
        for before, after in zip(data, data[1:], strict=False):
            same = (before.producer_id, before.producer_epoch) == (
                after.producer_id,
                after.producer_epoch,
            )
            if same and after.base_sequence != before.last_sequence + 1:
                return f"sequence gap: {before.last_sequence} then {after.base_sequence}"
    elif scenario == "transactions":
        if not all(b.is_transactional for b in data):
            return "stored data batches are not transactional"
        markers = [b for b in batches if b.is_control and b.has_producer_id]
        if len(markers) != 3:
            return f"{len(markers)} transaction markers stored, expected 3"
    elif scenario == "txn-pipeline":
        if not all(b.is_transactional for b in data):
            return "stored data batches are not transactional"
        for before, after in zip([None, *data], data, strict=False):
            producer = (after.producer_id, after.producer_epoch)
            if before is None or (before.producer_id, before.producer_epoch) != producer:
                if after.base_sequence != 0:
                    return f"producer {producer} starts at sequence {after.base_sequence}"
            elif after.base_sequence != before.last_sequence + 1:
                return f"sequence gap: {before.last_sequence} then {after.base_sequence}"
        markers = [b for b in batches if b.is_control and b.has_producer_id]
        if len(markers) != 20:
            return f"{len(markers)} transaction markers stored, expected 20"
    return None


# -- the run --------------------------------------------------------------------------------------


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
    client: Client, bootstrap: str, skips: dict[str, str], only: list[str], prefix: str
) -> Column:
    column = Column(client, log=LOGS / f"{client.key}.log")
    env = {
        **client.env,
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


def cell_text(result: str, reason: str) -> str:
    if result == "skip":
        return f"skip ({reason.replace('|', '/')})"
    return result


def matrix_table(columns: list[Column], scenarios: list[str]) -> str:
    header = ["scenario", *(c.header for c in columns)]
    rows = [header, ["---"] * len(header)]
    for scenario in scenarios:
        rows.append([scenario, *(cell_text(*c.cells[scenario]) for c in columns)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def failures(columns: list[Column], scenarios: list[str]) -> list[str]:
    return [
        f"{c.client.key} / {s}: {c.cells[s][1] or 'failed'}"
        for c in columns
        for s in scenarios
        if c.cells[s][0] == "fail"
    ]


def write_doc(columns: list[Column], scenarios: list[str], broker_note: str) -> None:
    failed = failures(columns, scenarios)
    lines = [
        "# Client compatibility",
        "",
        "Generated by `.venv/bin/python compat-tests/run.py`; do not edit by hand. Each client "
        "runs its own small application (under `compat-tests/`) with assertions against "
        f"{broker_note}. A cell reads `pass`, `fail` or `skip (reason)`.",
        "",
        matrix_table(columns, scenarios),
        "",
        "## Scenarios",
        "",
        *(f"- **{s}**: {SCENARIOS[s]}." for s in scenarios),
        "",
        "## Failures",
        "",
        *([f"- {f}" for f in failed] if failed else ["None."]),
        "",
        "## Notes",
        "",
        "- kafkajs ships gzip only; snappy, lz4 and zstd are the codec plugins its documentation "
        "describes, wrapped in `compat-tests/node/codecs.js`: `kafkajs-snappy`, `lz4-napi` (LZ4 "
        "frames with independent blocks, the only kind Kafka reads) and `zstd-codec`. kafkajs "
        "has no manual partition assignment, so it reads back through consumer groups of its "
        "own, and no IncrementalAlterConfigs, so it alters configs with AlterConfigs (as aiokafka "
        "does).",
        "- kafka-python 3.0.12 members poll with a 1 s timeout: with short polls that client can "
        "drop a join whose SyncGroup answer arrives between two polls (the answer is received "
        "and decoded, but the member never takes its assignment and stops heartbeating).",
        "- kcat has no admin commands; its topics are created with confluent-kafka's admin "
        "client. It attaches the same headers to every record (`-H`), and its transactional "
        "producer commits when its input ends, so the aborted transaction in its scenario comes "
        "from confluent-kafka.",
        "- aiokafka's admin-topics does not describe the deleted topic: its Metadata request "
        "allows auto-creation, which Kafka's default `auto.create.topics.enable=true` honours.",
        "- The broker runs with `group.initial.rebalance.delay.ms=0`, as Kafka test setups do.",
        "",
    ]
    DOC.write_text("\n".join(lines))


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

    try:
        if not args.bootstrap:
            broker = start_broker(data_dir)
            print(f"rafka broker at {broker.bootstrap}", flush=True)
        bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
        skips = gated_skips(api_versions(bootstrap), ours=broker is not None)
        for scenario, reason in skips.items():
            print(f"  skipping {scenario}: {reason}")
        print("running suites", flush=True)
        run_id = f"{os.getpid()}{int(time.time()) % 100000}"
        for client in runnable:
            index = next(i for i, c in enumerate(columns) if c.client is client)
            prefix = f"compat-{run_id}-{client.key.replace('.', '')}"
            column = run_suite(client, bootstrap, skips, scenarios, prefix)
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
