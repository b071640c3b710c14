"""What keeps a broker's start fast and its idle memory small: `python -m rafka broker` runs without
the CLI framework (typer, click, rich), the client commands, or the libraries only a developer's
install brings (Hypothesis, pydantic), and loads kio's message classes only for the APIs it is
asked. The modules loaded come from the real process (PYTHONVERBOSE). The fast path reads the
broker's flags itself: it must read a command line as the typer command does, and leave what it
does not take (help, mistakes) to typer.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from typer.main import get_command
from typer.testing import CliRunner

from rafka.cli.launch import BrokerArgs, parse_broker_args
from rafka.cli.main import app

QUIET = {"log_level": 3}  # librdkafka: errors only
# prometheus_client: only with rafka.metrics.port set (this broker runs without it).
NEVER_IMPORTED = {"typer", "click", "rich", "hypothesis", "pydantic", "prometheus_client"}
BROKER_CLI_MODULES = {"rafka.cli", "rafka.cli.launch", "rafka.cli.broker_command"}
# kio payload modules are kio.schema.<api>.v<N>.<request|response>
KIO_PAYLOAD = re.compile(r"kio\.schema\.(\w+)\.v\d+\.(request|response)$")
# PYTHONVERBOSE's line for each module executed (not for one hidden as absent)
LOADED_LINE = re.compile(r"^import '([\w.]+)' # ")


def imported_modules(lines: list[str]) -> set[str]:
    return {match[1] for line in lines if (match := LOADED_LINE.match(line))}


def test_broker_process_serves_clients_without_the_cli_framework(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONVERBOSE", "1")  # the child names each module it loads on stderr
    broker = BrokerProcess(tmp_path / "data")
    broker.start()
    try:
        bootstrap = {"bootstrap.servers": broker.bootstrap, **QUIET}
        admin = AdminClient(bootstrap)
        cluster = admin.list_topics(timeout=10)
        assert [(b.id, b.port) for b in cluster.brokers.values()] == [(1, broker.port)]
        admin.create_topics([NewTopic("started", 1, 1)])["started"].result(timeout=10)
        producer = Producer(bootstrap)
        producer.produce("started", key=b"k", value=b"v")
        assert producer.flush(10) == 0
        consumer = Consumer({**bootstrap, "group.id": "startup", "enable.auto.commit": False})
        consumer.assign([TopicPartition("started", 0, 0)])
        message = consumer.poll(10)
        consumer.close()
        assert message is not None and message.error() is None
        assert (message.key(), message.value()) == (b"k", b"v")
        assert broker.stop() == 0
        # The broker's last log line; every module it loaded was named before it.
        wait_until(lambda: any("broker stopped" in line for line in broker.log_lines), 10,
                   "the broker's last log line")  # fmt: skip
    finally:
        broker.kill()

    modules = imported_modules(broker.log_lines)
    assert {"rafka.broker.daemon", "structlog", "kio"} <= modules  # the list is the whole run
    assert {m for m in modules if m.split(".")[0] in NEVER_IMPORTED} == set()
    assert {m for m in modules if m.startswith("rafka.cli")} == BROKER_CLI_MODULES
    payloads = {match[1] for m in modules if (match := KIO_PAYLOAD.match(m))}
    # librdkafka's requests for what this test did (and a group coordinator lookup), no others:
    # the broker never loads the ~60 other APIs' message classes it did not serve.
    assert {"api_versions", "metadata", "produce", "fetch"} <= payloads
    assert payloads <= {
        "api_versions", "metadata", "create_topics", "produce", "fetch", "list_offsets",
        "find_coordinator", "offset_fetch", "offset_for_leader_epoch", "describe_cluster",
    }, payloads  # fmt: skip


# --- the broker's flags, read without typer ---------------------------------------------------

BROKER_COMMAND = get_command(app).commands["broker"]  # type: ignore[attr-defined]


def typer_reading(args: list[str]) -> BrokerArgs | None:
    """What the typer command receives for `rafka <args>`, or None if it would not run a broker."""
    if not args or args[0] != "broker":
        return None
    try:
        context = BROKER_COMMAND.make_context("broker", list(args[1:]))
    except (typer.TyperException, typer.Exit):  # a usage error, or --help
        return None
    params = context.params
    return BrokerArgs(
        config=params["config"],
        overrides=list(params["override"] or []),
        add_scram=list(params["add_scram"] or []),
        log_level=params["log_level"],
    )


TAKEN_AS_TYPER_TAKES_THEM = [
    ["broker"],
    ["broker", "--override", "a=1", "-o", "b=2", "-oc=3", "--override=d=4=5", "-o=e=6"],
    ["broker", "--override=", "-o", ""],
    ["broker", "-c", "one.properties", "--config", "two.properties"],
    ["broker", "-cserver.properties", "--log-level", "debug"],
    ["broker", "--config=server.properties", "--log-level=warn", "--log-level", "error"],
    ["broker", "--log-level="],
    ["broker", "--add-scram", "SCRAM-SHA-256=[name=a,password=b]", "--add-scram", "x"],
    ["broker", "--override", "--log-level"],  # an option's value may look like an option
]
LEFT_TO_TYPER = [
    [],
    ["--version"],
    ["topic", "list"],
    ["broker", "--help"],
    ["broker", "-h"],
    ["broker", "extra"],
    ["broker", "--override"],
    ["broker", "-c"],
    ["broker", "--overide", "a=1"],
    ["broker", "-x"],
    ["broker", "--", "-o"],
    ["broker", "-"],
]


@pytest.mark.parametrize("environ", [{}, {"RAFKA_LOG_LEVEL": "warning"}, {"RAFKA_LOG_LEVEL": ""}])
@pytest.mark.parametrize("args", TAKEN_AS_TYPER_TAKES_THEM + LEFT_TO_TYPER)
def test_broker_flags_read_as_typer_reads_them(
    args: list[str], environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAFKA_LOG_LEVEL", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    fast = parse_broker_args(args, environ)
    if args in TAKEN_AS_TYPER_TAKES_THEM:
        assert fast is not None and fast == typer_reading(args)
    else:
        assert fast is None


def rafka_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rafka", *args], capture_output=True, text=True, timeout=60
    )


def test_errors_and_help_are_the_typer_commands() -> None:
    """A bad value fails as the typer command fails it; --help is typer's help."""
    bad = ["broker", "--override", "num.partitions=lots"]
    fast, typer_run = rafka_process(*bad), CliRunner().invoke(app, bad)
    assert fast.returncode == typer_run.exit_code == 2
    assert fast.stderr == typer_run.stderr
    assert fast.stderr.startswith("rafka: error: ") and "num.partitions" in fast.stderr

    helped = rafka_process("broker", "--help")
    assert helped.returncode == 0
    assert helped.stdout == CliRunner().invoke(app, ["broker", "--help"]).stdout
    assert "--override" in helped.stdout
