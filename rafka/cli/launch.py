"""`python -m rafka` and the `rafka` command: a broker starts without the CLI framework.

Brokers are started often (containers, clusters, every test) and need only their own four flags.
A `rafka broker` command line made of those flags alone is parsed here, as typer would parse it,
and the broker runs without importing typer, click, rich, pydantic or the client commands (with
Hypothesis, which they brought in: about half of its start time and a third of its idle memory).
Everything else, including any broker command line this parser does not take as-is (--help, a
mistake), goes to the full typer CLI (rafka.cli.main), which answers it as it always has.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from msgspec import Struct

BROKER_COMMAND = "broker"
LOG_LEVEL_ENV = "RAFKA_LOG_LEVEL"
# rafka.cli.main.broker's options, each taking one value: flag -> parameter.
_OPTIONS = {
    "--config": "config",
    "-c": "config",
    "--override": "override",
    "-o": "override",
    "--add-scram": "add_scram",
    "--log-level": "log_level",
}
# Imported by the broker's libraries whenever they are installed, and never used by it: kio
# registers Hypothesis strategies (a dev or test install; ~20 MB and ~90 ms), structlog loads rich
# to format tracebacks, which rafka.broker.logs formats plainly. Both treat absence as normal.
UNUSED_BY_THE_BROKER = ("hypothesis", "rich")


class BrokerArgs(Struct, frozen=True):
    config: Path | None
    overrides: list[str]
    add_scram: list[str]
    log_level: str


def parse_broker_args(args: Sequence[str], environ: Mapping[str, str]) -> BrokerArgs | None:
    """`rafka broker ...` read as the typer command reads it (`--flag value`, `--flag=value`,
    `-fvalue`; the last --config and --log-level win), or None for anything else."""
    if not args or args[0] != BROKER_COMMAND:
        return None
    values: dict[str, list[str]] = {name: [] for name in _OPTIONS.values()}
    rest = iter(args[1:])
    for arg in rest:
        if arg.startswith("--"):
            flag, equals, value = arg.partition("=")
            if not equals:
                value = next(rest, None)
        elif arg.startswith("-") and len(arg) > 2:
            flag, value = arg[:2], arg[2:]
        else:
            flag, value = arg, next(rest, None)
        name = _OPTIONS.get(flag)
        if name is None or value is None:
            return None
        values[name].append(value)
    configs, log_levels = values["config"], values["log_level"]
    return BrokerArgs(
        config=Path(configs[-1]) if configs else None,
        overrides=values["override"],
        add_scram=values["add_scram"],
        # click reads an empty variable as unset
        log_level=log_levels[-1] if log_levels else environ.get(LOG_LEVEL_ENV) or "INFO",
    )


def main() -> None:
    """Run `rafka` with sys.argv."""
    parsed = parse_broker_args(sys.argv[1:], os.environ)
    if parsed is None:
        from rafka.cli.main import run

        run()
        return
    sys.exit(_run_broker(parsed))


def _run_broker(args: BrokerArgs) -> int:
    for name in UNUSED_BY_THE_BROKER:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "not installed"
    from rafka.cli.broker_command import EXIT_CONFIG_ERROR, BrokerCommandError, run_broker

    try:
        return run_broker(args.config, args.overrides, args.add_scram, args.log_level)
    except BrokerCommandError as exc:
        print(f"rafka: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
