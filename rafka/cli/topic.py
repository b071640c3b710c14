"""`rafka topic`: create, list, describe, alter and delete topics (like kafka-topics.sh).

Tables by default, `--json` for scripts; errors are one line on stderr and exit code 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from rafka.cli.admin_common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    CommandConfigOption,
    JsonOption,
    admin_client,
    command_app,
    fail,
    parse_config_pairs,
    parse_names,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from rafka.cli.admin_client import AdminClient, TopicInfo

app = command_app("topic", "Create, list, describe, alter and delete topics.")

TopicOption = Annotated[str, typer.Option("--topic", "-t", help="Topic name.")]
ConfigOption = Annotated[
    list[str] | None,
    typer.Option(
        "--config",
        "-c",
        metavar="KEY=VALUE",
        help="A topic config override (repeatable; list values as k=\\[a,b]).",
    ),
]
TOPIC_ALREADY_EXISTS = 36
UNKNOWN_TOPIC_OR_PARTITION = 3


def _parse_assignment(text: str) -> list[list[int]]:
    """kafka-topics.sh's --replica-assignment: partitions by comma, replicas by colon."""
    try:
        return [[int(b) for b in part.split(":")] for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"bad --replica-assignment {text!r}: expected e.g. 1:2,2:3")


def _configs(items: list[str] | None) -> dict[str, str]:
    try:
        return parse_config_pairs(items or [])
    except ValueError as exc:
        fail(str(exc))


# -- create ---------------------------------------------------------------------------------------


@app.command("create")
def create(
    topic: TopicOption,
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    partitions: Annotated[
        int, typer.Option("--partitions", "-p", help="Partition count (default: the broker's).")
    ] = -1,
    replication_factor: Annotated[
        int,
        typer.Option(
            "--replication-factor", "-r", help="Replicas per partition (default: the broker's)."
        ),
    ] = -1,
    config: ConfigOption = None,
    replica_assignment: Annotated[
        str | None,
        typer.Option("--replica-assignment", help="Replicas per partition, e.g. 1:2,2:3,3:1."),
    ] = None,
    if_not_exists: Annotated[
        bool, typer.Option("--if-not-exists", help="Succeed if the topic already exists.")
    ] = False,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Only check that the topic could be created.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Create a topic."""
    from rafka.cli.admin_client import AdminRequestError

    assignments = _parse_assignment(replica_assignment) if replica_assignment else None
    configs = _configs(config)
    with admin_client(bootstrap_server, command_config) as client:
        try:
            result = client.create_topic(
                topic, partitions, replication_factor, configs, assignments, validate_only
            )
        except AdminRequestError as exc:
            if not (if_not_exists and exc.code == TOPIC_ALREADY_EXISTS):
                raise
            if json_output:
                print_json({"topic": topic, "created": False, "exists": True})
            else:
                typer.echo(f"Topic {topic} already exists.")
            return
    created = {
        "topic": topic,
        "created": not validate_only,
        "topic_id": None if getattr(result, "topic_id", None) is None else str(result.topic_id),
        "partitions": getattr(result, "num_partitions", partitions),
        "replication_factor": getattr(result, "replication_factor", replication_factor),
    }
    if json_output:
        print_json(created)
    elif validate_only:
        typer.echo(f"Topic {topic} can be created.")
    else:
        typer.echo(f"Created topic {topic}.")


# -- list -----------------------------------------------------------------------------------------


@app.command("list")
def list_topics(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    exclude_internal: Annotated[
        bool, typer.Option("--exclude-internal", help="Leave out internal topics.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """List the topics of the cluster, one per line."""
    with admin_client(bootstrap_server, command_config) as client:
        topics = [t for t in client.topics() if not (exclude_internal and t.internal)]
    if json_output:
        print_json(
            [
                {
                    "name": t.name,
                    "topic_id": t.topic_id,
                    "partitions": len(t.partitions),
                    "replication_factor": t.replication_factor,
                    "internal": t.internal,
                }
                for t in topics
            ]
        )
        return
    for t in topics:
        typer.echo(t.name)


# -- describe -------------------------------------------------------------------------------------


def describe_topics(client: AdminClient, names: list[str] | None) -> list[dict[str, Any]]:
    from rafka.cli.admin_client import RESOURCE_TOPIC

    described = []
    for t in client.topics(names):
        overrides = {
            c.name: c.value
            for c in client.describe_configs(RESOURCE_TOPIC, t.name)
            if c.source == "DYNAMIC_TOPIC_CONFIG"
        }
        described.append(_topic_dict(t, overrides))
    return described


def _topic_dict(t: TopicInfo, configs: dict[str, str | None]) -> dict[str, Any]:
    return {
        "name": t.name,
        "topic_id": t.topic_id,
        "internal": t.internal,
        "partition_count": len(t.partitions),
        "replication_factor": t.replication_factor,
        "configs": configs,
        "partitions": [
            {
                "partition": p.partition,
                "leader": p.leader,
                "replicas": p.replicas,
                "isr": p.isr,
                "offline": p.offline,
            }
            for p in t.partitions
        ],
    }


@app.command("describe")
def describe(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="Topic to describe (repeatable; default: all)."),
    ] = None,
    exclude_internal: Annotated[
        bool, typer.Option("--exclude-internal", help="Leave out internal topics.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Partitions, leaders, replicas, ISR and config overrides of topics."""
    with admin_client(bootstrap_server, command_config) as client:
        described = [
            d
            for d in describe_topics(client, parse_names(topic) if topic else None)
            if not (exclude_internal and d["internal"])
        ]
    if json_output:
        print_json(described)
        return
    for i, d in enumerate(described):
        if i:
            typer.echo("")
        configs = ",".join(f"{k}={v}" for k, v in sorted(d["configs"].items()))
        typer.echo(
            f"Topic: {d['name']}  TopicId: {d['topic_id'] or '-'}  "
            f"PartitionCount: {d['partition_count']}  "
            f"ReplicationFactor: {d['replication_factor']}  Configs: {configs or '-'}"
        )
        print_table(
            ["PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE"],
            [
                [
                    p["partition"],
                    p["leader"] if p["leader"] >= 0 else "none",
                    ",".join(map(str, p["replicas"])),
                    ",".join(map(str, p["isr"])) or "-",
                    ",".join(map(str, p["offline"])) or "-",
                ]
                for p in d["partitions"]
            ],
        )


# -- alter ----------------------------------------------------------------------------------------


@app.command("alter")
def alter(
    topic: TopicOption,
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    partitions: Annotated[
        int | None, typer.Option("--partitions", "-p", help="New (larger) partition count.")
    ] = None,
    config: ConfigOption = None,
    delete_config: Annotated[
        list[str] | None,
        typer.Option("--delete-config", metavar="KEY", help="Remove a config override."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Add partitions to a topic and/or change its config overrides."""
    from rafka.cli.admin_client import OP_DELETE, OP_SET, RESOURCE_TOPIC

    configs = _configs(config)
    deletions = parse_names(delete_config or [])
    if partitions is None and not configs and not deletions:
        fail("nothing to alter: give --partitions, --config or --delete-config")
    with admin_client(bootstrap_server, command_config) as client:
        if partitions is not None:
            client.create_partitions(topic, partitions)
        if configs or deletions:
            operations = [(k, OP_SET, v) for k, v in configs.items()]
            operations += [(k, OP_DELETE, None) for k in deletions]
            client.alter_configs(RESOURCE_TOPIC, topic, operations)
    if json_output:
        print_json({"topic": topic, "partitions": partitions, "set": configs, "deleted": deletions})
        return
    if partitions is not None:
        typer.echo(f"Topic {topic} now has {partitions} partitions.")
    if configs or deletions:
        typer.echo(f"Updated the configs of topic {topic}.")


# -- delete ---------------------------------------------------------------------------------------


@app.command("delete")
def delete(
    topic: Annotated[list[str], typer.Option("--topic", "-t", help="Topic name (repeatable).")],
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    if_exists: Annotated[
        bool, typer.Option("--if-exists", help="Succeed if a topic does not exist.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Delete topics and all their data."""
    from rafka.cli.admin_client import AdminRequestError

    results: list[dict[str, Any]] = []
    errors: list[str] = []
    with admin_client(bootstrap_server, command_config) as client:
        for name in parse_names(topic):
            try:
                client.delete_topic(name)
            except AdminRequestError as exc:
                if not (if_exists and exc.code == UNKNOWN_TOPIC_OR_PARTITION):
                    errors.append(str(exc))
                    results.append({"topic": name, "deleted": False, "error": str(exc)})
                    continue
                results.append({"topic": name, "deleted": False, "error": None})
                continue
            results.append({"topic": name, "deleted": True, "error": None})
    if json_output:
        print_json(results)
    else:
        for r in results:
            if r["deleted"]:
                typer.echo(f"Deleted topic {r['topic']}.")
            elif r["error"] is None:
                typer.echo(f"Topic {r['topic']} does not exist.")
    if errors:
        fail("; ".join(errors))
