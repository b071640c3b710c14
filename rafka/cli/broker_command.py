"""What `rafka broker` does once its flags are parsed, free of the CLI framework.

Both ways into a broker run this: the typer command in rafka.cli.main, and rafka.cli.launch,
which parses a broker's flags itself so that the broker process never imports typer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import rafka
from rafka.broker.config import BrokerConfig, ConfigError
from rafka.broker.logs import configure_logging, get_logger, parse_level

EXIT_CONFIG_ERROR = 2


class BrokerCommandError(Exception):
    """A bad flag or configuration value: one line on stderr and EXIT_CONFIG_ERROR."""


def rafka_version() -> str:
    return rafka.__version__


def build_config(
    config_path: Path | None, overrides: Sequence[str], environ: Mapping[str, str]
) -> BrokerConfig:
    """The broker's configuration: the properties file < RAFKA_<KEY> variables < overrides."""
    return BrokerConfig.load(config_path, overrides, environ)


def run_broker(
    config_path: Path | None, overrides: Sequence[str], add_scram: Sequence[str], log_level: str
) -> int:
    """Run a broker until SIGTERM or SIGINT; returns the process exit code."""
    seeds = scram_seeds(add_scram)
    try:
        configure_logging(parse_level(log_level))
    except ValueError as exc:
        raise BrokerCommandError(str(exc)) from None
    try:
        broker_config = build_config(config_path, overrides, os.environ)
    except ConfigError as exc:
        raise BrokerCommandError(str(exc)) from None

    from rafka.broker import daemon  # imported here: the event loop and broker load only to run

    get_logger(__name__).info(
        "starting rafka",
        version=rafka_version(),
        node_id=broker_config.node_id,
        config=str(config_path) if config_path else None,
        log_dirs=[str(d) for d in broker_config.log_dirs],
    )
    try:
        return daemon.run(broker_config, seeds)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:  # found when the broker loads what the keys name (TLS stores)
        raise BrokerCommandError(str(exc)) from None


def scram_seeds(entries: Sequence[str]) -> dict[tuple[str, str], dict]:
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
            raise BrokerCommandError(f"--add-scram: {exc}") from None
        for setting in settings:
            if not setting.name:
                raise BrokerCommandError(f"--add-scram {entry!r}: name the user (name=...)")
            salt, salted = setting.salted()
            credential = scram_credential(setting.mechanism, salted, salt, setting.iterations)
            seeds[(setting.name, setting.mechanism)] = scram_record(
                setting.name, setting.mechanism, credential
            )
    return seeds
