"""`rafka health`: is this broker serving?

It asks the broker itself, as a client would: ApiVersions, then Metadata. Healthy means the
broker answered both and knows a controller and at least one live broker; a broker still
joining its cluster, or cut off from the controller, is not. The probe is rafka.cli.probe,
which the container image runs directly (without this CLI's start-up cost).
"""

from __future__ import annotations

from typing import Annotated

import typer

from rafka.cli.admin_common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    CommandConfigOption,
    fail,
    use_command_config,
)
from rafka.cli.probe import Unhealthy, probe


def health(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the broker's answers.")
    ] = 5.0,
) -> None:
    """Exit 0 if the broker answers Metadata with a controller and its live brokers."""
    use_command_config(command_config)
    try:
        typer.echo(probe(bootstrap_server, timeout))
    except Unhealthy as exc:
        fail(f"unhealthy: {exc}")
