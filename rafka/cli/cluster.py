"""`rafka cluster describe`: cluster id, controller, brokers, topic counts, the metadata quorum
and the under-replicated partitions. `rafka cluster unregister --id N`: forget a removed broker
(kafka-cluster's unregister)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from rafka.cli.admin_common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    CommandConfigOption,
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


@app.command("unregister")
def unregister(
    broker_id: Annotated[int, typer.Option("--id", help="The id of the broker to unregister.")],
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
) -> None:
    """Remove a stopped broker's registration (UnregisterBroker): Metadata no longer lists
    it. Move its replicas away first (`rafka reassign`)."""
    with admin_client(bootstrap_server, command_config) as client:  # errors: one line, exit 1
        client.unregister_broker(broker_id)
    typer.echo(f"Broker {broker_id} is no longer registered.")


@app.command("describe")
def describe(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Cluster id, controller, brokers, how many topics and partitions it holds, the metadata
    quorum (leader, epoch, high watermark, each voter's lag) and the under-replicated
    partitions."""
    from rafka.cli.kafka_client import KafkaClientError

    with admin_client(bootstrap_server, command_config) as client:
        cluster: dict[str, Any] = client.describe_cluster()
        topics = client.topics()
        try:
            quorum = client.describe_quorum(cluster["controller_id"])
            quorum_error = None if quorum is not None else "DescribeQuorum is not supported"
        except KafkaClientError as exc:  # e.g. an election under way: show the rest anyway
            quorum, quorum_error = None, str(exc)
    cluster["topics"] = len([t for t in topics if not t.internal])
    cluster["internal_topics"] = len([t for t in topics if t.internal])
    cluster["partitions"] = sum(len(t.partitions) for t in topics)
    cluster["offline_partitions"] = sum(1 for t in topics for p in t.partitions if p.leader < 0)
    under_replicated = [
        {
            "topic": t.name,
            "partition": p.partition,
            "leader": p.leader,
            "replicas": p.replicas,
            "isr": p.isr,
            "offline_replicas": p.offline,
        }
        for t in topics
        for p in t.partitions
        if len(p.isr) < len(p.replicas) or p.offline
    ]
    cluster["under_replicated_partitions"] = len(under_replicated)
    cluster["under_replicated"] = under_replicated
    cluster["quorum"] = None if quorum is None else with_lag(quorum, _wall_ms())
    if quorum_error is not None:
        cluster["quorum_error"] = quorum_error
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
    typer.echo(f"Under-replicated:    {len(under_replicated)}")
    _print_quorum(cluster["quorum"], quorum_error)
    if under_replicated:
        typer.echo("")
        print_table(
            ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE"],
            [
                [
                    u["topic"],
                    u["partition"],
                    u["leader"] if u["leader"] >= 0 else "none",
                    _ids(u["replicas"]),
                    _ids(u["isr"]),
                    _ids(u["offline_replicas"]),
                ]
                for u in under_replicated
            ],
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


def with_lag(quorum: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The quorum with each replica's lag and last fetch age added.

    Lag is measured, as kafka-metadata-quorum does, from the leader's log end offset; if the
    leader's own entry is missing, from the high watermark. Unknown values are None."""
    leader_end = next(
        (v["log_end_offset"] for v in quorum["voters"] if v["id"] == quorum["leader_id"]), -1
    )
    reference = leader_end if leader_end >= 0 else quorum["high_watermark"]

    def annotated(replica: dict[str, Any]) -> dict[str, Any]:
        end, fetched = replica["log_end_offset"], replica["last_fetch_timestamp"]
        return {
            **replica,
            "lag": max(reference - end, 0) if end >= 0 and reference >= 0 else None,
            "last_fetch_age_ms": max(now_ms - fetched, 0) if fetched >= 0 else None,
        }

    return {
        **quorum,
        "voters": [annotated(v) for v in quorum["voters"]],
        "observers": [annotated(o) for o in quorum["observers"]],
    }


def _print_quorum(quorum: dict[str, Any] | None, error: str | None) -> None:
    if quorum is None:
        typer.echo(f"Metadata quorum:     not available ({error})")
        return
    typer.echo(
        f"Metadata quorum:     leader {quorum['leader_id']}, epoch {quorum['leader_epoch']}, "
        f"high watermark {quorum['high_watermark']}"
    )
    typer.echo("")
    replicas = [("voter", v) for v in quorum["voters"]]
    replicas += [("observer", o) for o in quorum["observers"]]
    print_table(
        ["NODE", "ROLE", "LOG END OFFSET", "LAG", "LAST FETCH"],
        [
            [
                r["id"],
                "leader" if r["id"] == quorum["leader_id"] else kind,
                r["log_end_offset"] if r["log_end_offset"] >= 0 else None,
                r["lag"],
                _age(r["last_fetch_age_ms"]),
            ]
            for kind, r in replicas
        ],
    )


def _age(ms: int | None) -> str | None:
    if ms is None:
        return None
    if ms < 1000:
        return f"{ms} ms ago"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s ago"
    return f"{ms // 60_000} min ago"


def _ids(nodes: list[int]) -> str:
    return ",".join(str(n) for n in nodes) or "-"


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
