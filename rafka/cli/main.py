"""The `rafka` command: `rafka broker` runs a broker; client subcommands register here later.

Errors are one line on stderr and a non-zero exit: 2 for bad configuration or usage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from rafka.cli.acl import acl
from rafka.cli.bench import app as bench_app
from rafka.cli.broker_command import (
    EXIT_CONFIG_ERROR,
    BrokerCommandError,
    rafka_version,
    run_broker,
)
from rafka.cli.cluster import app as cluster_app
from rafka.cli.configs import app as configs_app
from rafka.cli.console_consumer import consume
from rafka.cli.console_producer import produce
from rafka.cli.group import app as group_app
from rafka.cli.health import health
from rafka.cli.leader_election import leader_election
from rafka.cli.reassign import reassign
from rafka.cli.topic import app as topic_app
from rafka.cli.txn import app as txn_app

app = typer.Typer(
    name="rafka",
    help="rafka: a Kafka-compatible broker whose partition logs are replicated with Raft.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Client commands (topic, group, cluster, configs, produce, consume, bench) are typer sub-apps
# added with app.add_typer(<sub_app>, name="<command>") from their own modules in rafka.cli.
app.add_typer(group_app, name="group")
app.add_typer(bench_app, name="bench")
app.add_typer(topic_app, name="topic")
app.add_typer(configs_app, name="configs")
app.add_typer(cluster_app, name="cluster")
app.add_typer(txn_app, name="txn")
app.command("produce")(produce)
app.command("consume")(consume)
app.command("health")(health)
app.command("acl")(acl)
app.command("reassign")(reassign)
app.command("leader-election")(leader_election)


def _print_version(requested: bool) -> None:
    if requested:
        typer.echo(f"rafka {rafka_version()}")
        raise typer.Exit()


def fail(message: str, code: int = EXIT_CONFIG_ERROR) -> NoReturn:
    """Print one line to stderr and exit."""
    typer.echo(f"rafka: error: {message}", err=True)
    raise typer.Exit(code)


@app.callback()
def main(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """rafka: a Kafka-compatible broker whose partition logs are replicated with Raft."""


@app.command()
def broker(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Kafka server.properties file."),
    ] = None,
    override: Annotated[
        list[str] | None,
        typer.Option(
            "--override",
            "-o",
            metavar="KEY=VALUE",
            help="Set a config key, over the file and RAFKA_<KEY> variables; repeatable.",
        ),
    ] = None,
    add_scram: Annotated[
        list[str] | None,
        typer.Option(
            "--add-scram",
            help="A SCRAM user created at first start if missing, as Kafka's kafka-storage "
            "format --add-scram: 'SCRAM-SHA-256=[name=alice,password=alice-secret]'.",
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level", envvar="RAFKA_LOG_LEVEL", help="debug, info, warning or error."
        ),
    ] = "INFO",
) -> None:
    """Run a broker. With no configuration: one node on localhost:9092, data in ./rafka-data."""
    try:
        code = run_broker(config, override or [], add_scram or [], log_level)
    except BrokerCommandError as exc:
        fail(str(exc))
    raise typer.Exit(code)


def run() -> None:
    """The full command line (rafka.cli.launch starts a broker without it)."""
    app(prog_name="rafka")
