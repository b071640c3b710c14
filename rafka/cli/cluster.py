"""`rafka cluster describe`: cluster id, controller, brokers and topic counts."""

from __future__ import annotations

from typing import Any

import typer

from rafka.cli.admin_common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    JsonOption,
    admin_client,
    print_json,
    print_table,
)

app = typer.Typer(
    name="cluster",
    help="Show the cluster: its id, controller and brokers.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("describe")
def describe(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    json_output: JsonOption = False,
) -> None:
    """Cluster id, controller, brokers, and how many topics and partitions it holds."""
    with admin_client(bootstrap_server) as client:
        cluster: dict[str, Any] = client.describe_cluster()
        topics = client.topics()
    cluster["topics"] = len([t for t in topics if not t.internal])
    cluster["internal_topics"] = len([t for t in topics if t.internal])
    cluster["partitions"] = sum(len(t.partitions) for t in topics)
    cluster["offline_partitions"] = sum(1 for t in topics for p in t.partitions if p.leader < 0)
    if json_output:
        print_json(cluster)
        return
    typer.echo(f"Cluster ID:          {cluster['cluster_id']}")
    typer.echo(f"Controller:          {cluster['controller_id']}")
    typer.echo(f"Topics:              {cluster['topics']} (+{cluster['internal_topics']} internal)")
    typer.echo(
        f"Partitions:          {cluster['partitions']} "
        f"({cluster['offline_partitions']} without a leader)"
    )
    typer.echo("")
    print_table(
        ["BROKER", "HOST", "PORT", "RACK", "CONTROLLER"],
        [
            [
                b["id"],
                b["host"],
                b["port"],
                b["rack"],
                "yes" if b["id"] == cluster["controller_id"] else "",
            ]
            for b in cluster["brokers"]
        ],
    )
