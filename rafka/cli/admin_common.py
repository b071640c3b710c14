"""What the `rafka topic`, `configs`, `cluster` and `group` commands share: options, the client,
errors and output.

The Kafka client (and kio under it) is imported only when a command runs: `rafka broker` shares
this process's imports and must not pay for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rafka.cli.admin_client import AdminClient
    from rafka.cli.kafka_client import KafkaClient

EXIT_FAILURE = 1
DEFAULT_BOOTSTRAP = "localhost:9092"

BootstrapOption = Annotated[
    str,
    typer.Option(
        "--bootstrap-server",
        "-b",
        envvar="RAFKA_BOOTSTRAP_SERVER",
        metavar="HOST:PORT",
        help="A broker to connect to (comma-separated list allowed).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str) -> NoReturn:
    typer.echo(f"rafka: error: {message}", err=True)
    raise typer.Exit(EXIT_FAILURE)


def command_app(name: str, help: str) -> typer.Typer:
    """A command group: its subcommands listed when called without one, no completion setup."""
    return typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False)


CommandConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--command-config",
        help="Client properties file: security.protocol, sasl.mechanism, sasl.jaas.config, "
        "ssl.truststore.location, ssl.keystore.location (Kafka's client keys).",
    ),
]


def use_command_config(path: Path | None) -> None:
    """Secure every connection this command opens as `path` says (one line if it cannot)."""
    if path is None:
        return
    from rafka.cli.client_security import (
        CURRENT,
        ClientSecurityError,
        read_command_config,
        security_from,
    )

    try:
        props = read_command_config(path)
        CURRENT.set(security_from(props))
    except ClientSecurityError as exc:
        fail(f"--command-config {path}: {exc}")


@contextmanager
def admin_client(bootstrap: str, command_config: Path | None = None) -> Iterator[AdminClient]:
    """An AdminClient for the duration of a command; any client error ends it with one line."""
    from rafka.cli.admin_client import AdminClient

    use_command_config(command_config)
    with _failing_on_client_error():
        with AdminClient(bootstrap, client_id="rafka-admin") as client:
            yield client


@contextmanager
def kafka_client(bootstrap: str, command_config: Path | None = None) -> Iterator[KafkaClient]:
    """A KafkaClient for the duration of a command; any client error ends it with one line."""
    from rafka.cli.kafka_client import KafkaClient

    use_command_config(command_config)
    with _failing_on_client_error():
        with KafkaClient(bootstrap) as client:
            yield client


@contextmanager
def _failing_on_client_error() -> Iterator[None]:
    from rafka.cli.kafka_client import KafkaClientError

    try:
        yield
    except KafkaClientError as exc:
        fail(str(exc))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def parse_config_pairs(items: Sequence[str]) -> dict[str, str]:
    """`k=v` items, each of which may hold several comma-separated pairs as kafka-configs.sh
    takes them; a list value goes in square brackets: `cleanup.policy=[compact,delete]`."""
    pairs: dict[str, str] = {}
    for item in items:
        for part in _split_outside_brackets(item):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"{part!r} is not KEY=VALUE")
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                value = value[1:-1]
            pairs[key] = value
    return pairs


def parse_names(items: Sequence[str]) -> list[str]:
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


def _split_outside_brackets(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(depth - 1, 0)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]
