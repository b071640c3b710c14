"""`rafka health`: is this broker serving? The container image's HEALTHCHECK.

It asks the broker itself, as a client would: ApiVersions, then Metadata. Healthy means the
broker answered both and knows a controller and at least one live broker; a broker still
joining its cluster, or cut off from the controller, is not.
"""

from __future__ import annotations

from typing import Annotated

import typer

from rafka.cli.admin_common import DEFAULT_BOOTSTRAP, BootstrapOption, fail
from rafka.cli.kafka_client import KafkaClient, KafkaClientError


def health(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the broker's answers.")
    ] = 5.0,
) -> None:
    """Exit 0 if the broker answers Metadata with a controller and its live brokers."""
    try:
        with KafkaClient(
            bootstrap_server, client_id="rafka-health", timeout=timeout, retry_for=0
        ) as client:
            cluster = client.cluster()
    except (KafkaClientError, OSError) as exc:
        fail(f"unhealthy: {exc}")
    controller = cluster.controller_id
    if not cluster.brokers or controller < 0:
        fail("unhealthy: the broker knows no controller or no live broker yet")
    typer.echo(f"healthy: {len(cluster.brokers)} broker(s), controller {controller}")
