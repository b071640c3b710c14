"""The `rafka` command: `rafka broker` runs a broker; client subcommands register here later.

Errors are one line on stderr and a non-zero exit: 2 for bad configuration or usage.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from rafka.broker.config import BrokerConfig, ConfigError
from rafka.broker.logs import configure_logging, get_logger, parse_level
from rafka.cli.acl import acl
from rafka.cli.bench import app as bench_app
from rafka.cli.cluster import app as cluster_app
from rafka.cli.configs import app as configs_app
from rafka.cli.console_consumer import consume
from rafka.cli.console_producer import produce
from rafka.cli.group import app as group_app
from rafka.cli.health import health
from rafka.cli.topic import app as topic_app
from rafka.cli.txn import app as txn_app

EXIT_CONFIG_ERROR = 2

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


def rafka_version() -> str:
    try:
        return version("rafka")
    except PackageNotFoundError:
        return "0+unknown"


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


def build_config(
    config_path: Path | None, overrides: Sequence[str], environ: Mapping[str, str]
) -> BrokerConfig:
    """The broker's configuration: the properties file < RAFKA_<KEY> variables < overrides."""
    return BrokerConfig.load(config_path, overrides, environ)


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
    seeds = _scram_seeds(add_scram or [])
    try:
        configure_logging(parse_level(log_level))
    except ValueError as exc:
        fail(str(exc))
    try:
        broker_config = build_config(config, override or [], os.environ)
    except ConfigError as exc:
        fail(str(exc))

    # kio registers hypothesis strategies whenever hypothesis is importable (a dev or test
    # install), which costs the broker ~20 MB and ~90 ms at start; the broker never needs them.
    sys.modules.setdefault("hypothesis", None)  # type: ignore[arg-type]
    from rafka.broker import daemon  # imported here: the event loop and broker load only to run

    get_logger(__name__).info(
        "starting rafka",
        version=rafka_version(),
        node_id=broker_config.node_id,
        config=str(config) if config else None,
        log_dirs=[str(d) for d in broker_config.log_dirs],
    )
    try:
        code = daemon.run(broker_config, seeds)
    except KeyboardInterrupt:
        code = 130
    except ConfigError as exc:  # found when the broker loads what the keys name (TLS stores)
        fail(str(exc))
    raise typer.Exit(code)


def run() -> None:
    """Entry point for `python -m rafka`."""
    app(prog_name="rafka")


def _scram_seeds(entries: list[str]) -> dict[tuple[str, str], dict]:
    """--add-scram values as metadata records, salted here (the password goes no further)."""
    if not entries:
        return {}
    from rafka.broker.security.sasl import scram_credential, scram_record
    from rafka.cli.scram_users import parse_scram_settings

    seeds = {}
    for entry in entries:
        try:
            settings = parse_scram_settings(entry)
        except ValueError as exc:
            fail(f"--add-scram: {exc}")
        for setting in settings:
            if not setting.name:
                fail(f"--add-scram {entry!r}: name the user (name=...)")
            salt, salted = setting.salted()
            credential = scram_credential(setting.mechanism, salted, salt, setting.iterations)
            seeds[(setting.name, setting.mechanism)] = scram_record(
                setting.name, setting.mechanism, credential
            )
    return seeds
