"""The broker health probe, without the CLI framework: the container image's HEALTHCHECK.

Docker runs the healthcheck every few seconds for the container's whole life, so its cost is
idle CPU: `python -m rafka.cli.probe` imports only the Kafka client (about half of what the
`rafka` command's start costs, typer and rich being the rest). `rafka health` is the same
probe behind the usual CLI.
"""

from __future__ import annotations

import argparse
import sys

from rafka.cli.kafka_client import KafkaClient, KafkaClientError

DEFAULT_BOOTSTRAP = "localhost:9092"


class Unhealthy(Exception):
    """The broker did not answer, or answered without a controller or a live broker."""


def probe(bootstrap_server: str, timeout: float) -> str:
    """ApiVersions then Metadata to the broker itself; returns a one-line summary."""
    try:
        with KafkaClient(
            bootstrap_server, client_id="rafka-health", timeout=timeout, retry_for=0
        ) as client:
            cluster = client.cluster()
    except (KafkaClientError, OSError) as exc:
        raise Unhealthy(str(exc)) from None
    if not cluster.brokers or cluster.controller_id < 0:
        raise Unhealthy("the broker knows no controller or no live broker yet")
    return f"healthy: {len(cluster.brokers)} broker(s), controller {cluster.controller_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rafka.cli.probe")
    parser.add_argument("-b", "--bootstrap-server", default=DEFAULT_BOOTSTRAP)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        print(probe(args.bootstrap_server, args.timeout))
    except Unhealthy as exc:
        print(f"rafka: error: unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
