"""`rafka group`: list, describe and delete consumer groups and reset their offsets.

Like Kafka's kafka-consumer-groups.sh, but with subcommands. It speaks the Kafka protocol to
the bootstrap server, so it works against any Kafka-compatible cluster. Tables by default,
`--json` for scripts; errors are one line on stderr and exit code 1.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rafka.cli.admin_common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    CommandConfigOption,
    JsonOption,
    command_app,
    fail,
    kafka_client,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from rafka.cli.kafka_client import KafkaClient

NO_ERROR = 0
GROUP_ID_NOT_FOUND = 69
INACTIVE_STATES = ("Empty", "Dead")

app = command_app(
    "group", "List, describe and delete consumer groups; reset their committed offsets."
)


def _error_name(code: int) -> str:
    from rafka.cli.kafka_client import error_name

    return error_name(code)


# -- list -----------------------------------------------------------------------------------------


@app.command("list")
def list_groups(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    state: Annotated[
        list[str] | None,
        typer.Option("--state", help="Only groups in this state (repeatable), e.g. Stable."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the consumer groups of the cluster."""
    with kafka_client(bootstrap_server, command_config) as client:
        groups = client.list_groups(state or ())
    if json_output:
        print_json(groups)
        return
    print_table(
        ["GROUP", "STATE", "PROTOCOL-TYPE", "TYPE"],
        [[g["group"], g["state"], g["protocol_type"], g["type"]] for g in groups],
    )


# -- describe -------------------------------------------------------------------------------------


def describe_group(client: KafkaClient, group_id: str) -> dict[str, Any]:
    """Everything `describe` shows about one group, as plain data."""
    from rafka.cli.kafka_client import LATEST, KafkaClientError, decode_assignment

    coordinator, described = client.describe_group(group_id)
    if described.error_code not in (NO_ERROR, GROUP_ID_NOT_FOUND):
        raise KafkaClientError(f"group {group_id!r}: {_error_name(described.error_code)}")
    exists = described.error_code == NO_ERROR and described.group_state != "Dead"
    committed = client.fetch_offsets(group_id) if exists else {}
    members = []
    owner: dict[tuple[str, int], dict[str, Any]] = {}
    for m in described.members:
        assigned = (
            decode_assignment(m.member_assignment) if described.protocol_type == "consumer" else []
        )
        member = {
            "member_id": m.member_id,
            "group_instance_id": getattr(m, "group_instance_id", None),
            "client_id": m.client_id,
            "host": m.client_host,
            "assignment": [{"topic": t, "partition": p} for t, p in sorted(assigned)],
        }
        members.append(member)
        for tp in assigned:
            owner[tp] = member
    partitions = sorted(set(committed) | set(owner))
    end_offsets = client.list_offsets(partitions, LATEST) if partitions else {}
    offsets = []
    for tp in partitions:
        current = committed.get(tp)
        end = end_offsets.get(tp)
        member = owner.get(tp)
        offsets.append(
            {
                "topic": tp[0],
                "partition": tp[1],
                "current_offset": current.offset if current else None,
                "log_end_offset": end,
                "lag": end - current.offset if current and end is not None else None,
                "consumer_id": member["member_id"] if member else None,
                "host": member["host"] if member else None,
                "client_id": member["client_id"] if member else None,
                "metadata": current.metadata if current else None,
            }
        )
    host, port = client.cluster().brokers.get(coordinator, ("", -1))
    return {
        "group": group_id,
        "exists": exists,
        "state": described.group_state,
        "protocol_type": described.protocol_type,
        "assignment_strategy": described.protocol_data,
        "coordinator": {"id": coordinator, "host": host, "port": port},
        "members": members,
        "offsets": offsets,
    }


@app.command("describe")
def describe(
    group: Annotated[list[str], typer.Option("--group", "-g", help="Group id (repeatable).")],
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    members: Annotated[bool, typer.Option("--members", help="Show members.")] = False,
    state: Annotated[bool, typer.Option("--state", help="Show the group's state.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Committed offsets, log end offsets and lag per partition (or members, or state)."""
    with kafka_client(bootstrap_server, command_config) as client:
        described = [describe_group(client, g) for g in group]
    if json_output:
        print_json(described if len(described) > 1 else described[0])
        return
    for i, d in enumerate(described):
        if i:
            typer.echo("")
        if not d["exists"]:
            typer.echo(f"Consumer group '{d['group']}' does not exist.")
            continue
        if state:
            c = d["coordinator"]
            print_table(
                ["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
                [
                    [
                        d["group"],
                        f"{c['host']}:{c['port']} ({c['id']})",
                        d["assignment_strategy"],
                        d["state"],
                        len(d["members"]),
                    ]
                ],
            )
        elif members:
            print_table(
                ["GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS"],
                [
                    [
                        d["group"],
                        m["member_id"],
                        m["group_instance_id"],
                        m["host"],
                        m["client_id"],
                        len(m["assignment"]),
                    ]
                    for m in d["members"]
                ],
            )
        else:
            if d["state"] in INACTIVE_STATES:
                typer.echo(f"Consumer group '{d['group']}' has no active members.")
            print_table(
                [
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                ],
                [
                    [
                        d["group"],
                        o["topic"],
                        o["partition"],
                        o["current_offset"],
                        o["log_end_offset"],
                        o["lag"],
                        o["consumer_id"],
                        o["host"],
                        o["client_id"],
                    ]
                    for o in d["offsets"]
                ],
            )


# -- delete ---------------------------------------------------------------------------------------


@app.command("delete")
def delete(
    group: Annotated[list[str], typer.Option("--group", "-g", help="Group id (repeatable).")],
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete groups and their committed offsets (only groups without active members)."""
    with kafka_client(bootstrap_server, command_config) as client:
        results = client.delete_groups(group)
    failed = {g: c for g, c in results.items() if c != NO_ERROR}
    if json_output:
        print_json(
            [
                {"group": g, "error": None if c == NO_ERROR else _error_name(c)}
                for g, c in results.items()
            ]
        )
    else:
        for g, c in results.items():
            if c == NO_ERROR:
                typer.echo(f"Deleted consumer group '{g}'.")
    if failed:
        fail("; ".join(f"cannot delete group {g!r}: {_error_name(c)}" for g, c in failed.items()))


# -- reset-offsets --------------------------------------------------------------------------------


def _parse_topic_spec(spec: str, client: KafkaClient) -> list[tuple[str, int]]:
    """TOPIC or TOPIC:P,P,... as in kafka-consumer-groups.sh."""
    from rafka.cli.kafka_client import KafkaClientError

    topic, _, partitions = spec.partition(":")
    count = client.cluster().partitions.get(topic)
    if count is None:
        raise KafkaClientError(f"topic {topic!r} does not exist")
    if not partitions:
        return [(topic, p) for p in range(count)]
    chosen = []
    for item in partitions.split(","):
        if not item.strip().isdigit() or int(item) >= count:
            raise KafkaClientError(f"topic {topic!r} has no partition {item.strip()!r}")
        chosen.append((topic, int(item)))
    return chosen


def plan_reset(
    client: KafkaClient,
    group_id: str,
    partitions: list[tuple[str, int]],
    *,
    to_earliest: bool = False,
    to_latest: bool = False,
    to_offset: int | None = None,
    shift_by: int | None = None,
    to_datetime: datetime | None = None,
    to_current: bool = False,
) -> dict[tuple[str, int], int]:
    """The offset each partition would be reset to, clamped to the log's range like Kafka."""
    from rafka.cli.kafka_client import EARLIEST, LATEST, KafkaClientError

    earliest = client.list_offsets(partitions, EARLIEST)
    latest = client.list_offsets(partitions, LATEST)
    committed = client.fetch_offsets(group_id)

    def clamp(tp: tuple[str, int], offset: int) -> int:
        return max(earliest[tp], min(latest[tp], offset))

    if to_earliest:
        return {tp: earliest[tp] for tp in partitions}
    if to_latest:
        return {tp: latest[tp] for tp in partitions}
    if to_offset is not None:
        return {tp: clamp(tp, to_offset) for tp in partitions}
    if shift_by is not None:
        return {
            tp: clamp(tp, (committed[tp].offset if tp in committed else latest[tp]) + shift_by)
            for tp in partitions
        }
    if to_datetime is not None:
        timestamp = int(to_datetime.timestamp() * 1000)
        found = client.list_offsets(partitions, timestamp)
        return {tp: latest[tp] if found[tp] < 0 else found[tp] for tp in partitions}
    if to_current:
        return {tp: committed[tp].offset if tp in committed else latest[tp] for tp in partitions}
    raise KafkaClientError(
        "say where to: --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime "
        "or --to-current"
    )


@app.command("reset-offsets")
def reset_offsets(
    group: Annotated[str, typer.Option("--group", "-g", help="Group id.")],
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="TOPIC or TOPIC:P,P,... (repeatable)."),
    ] = None,
    all_topics: Annotated[
        bool, typer.Option("--all-topics", help="Every topic the group has offsets for.")
    ] = False,
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="The log start.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="The log end.")] = False,
    to_offset: Annotated[
        int | None, typer.Option("--to-offset", help="This offset (clamped to the log).")
    ] = None,
    shift_by: Annotated[
        int | None, typer.Option("--shift-by", help="Move the committed offset by N.")
    ] = None,
    to_datetime: Annotated[
        datetime | None, typer.Option("--to-datetime", help="ISO time, e.g. 2024-01-31T12:00:00")
    ] = None,
    to_current: Annotated[
        bool, typer.Option("--to-current", help="Keep committed offsets, fill in missing ones.")
    ] = False,
    execute: Annotated[
        bool, typer.Option("--execute", help="Commit the new offsets (default: dry run).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the plan.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Move a group's committed offsets; the group must have no active members."""
    chosen = [
        to_earliest,
        to_latest,
        to_offset is not None,
        shift_by is not None,
        to_datetime is not None,
        to_current,
    ]
    if sum(chosen) != 1:
        fail(
            "give exactly one of --to-earliest, --to-latest, --to-offset, --shift-by, "
            "--to-datetime, --to-current"
        )
    if bool(topic) == all_topics:
        fail("give either --topic or --all-topics")
    if execute and dry_run:
        fail("--execute and --dry-run exclude each other")
    with kafka_client(bootstrap_server, command_config) as client:
        _, described = client.describe_group(group)
        state = described.group_state
        if state not in INACTIVE_STATES and described.error_code == NO_ERROR:
            fail(
                f"assignments can only be reset if the group {group!r} is inactive, but the "
                f"current state is {state}"
            )
        if all_topics:
            partitions = sorted(client.fetch_offsets(group))
        else:
            partitions = sorted(
                {tp for spec in topic or () for tp in _parse_topic_spec(spec, client)}
            )
        plan = plan_reset(
            client,
            group,
            partitions,
            to_earliest=to_earliest,
            to_latest=to_latest,
            to_offset=to_offset,
            shift_by=shift_by,
            to_datetime=to_datetime,
            to_current=to_current,
        )
        errors: dict[tuple[str, int], int] = {}
        if execute and plan:
            errors = {tp: c for tp, c in client.commit_offsets(group, plan).items() if c}
    rows = [
        {
            "group": group,
            "topic": t,
            "partition": p,
            "new_offset": offset,
            "error": _error_name(errors[(t, p)]) if (t, p) in errors else None,
        }
        for (t, p), offset in sorted(plan.items())
    ]
    if json_output:
        print_json({"executed": execute, "offsets": rows})
    else:
        print_table(
            ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
            [[r["group"], r["topic"], r["partition"], r["new_offset"]] for r in rows],
        )
        if not execute:
            typer.echo("Dry run: nothing committed. Add --execute to commit these offsets.")
    if errors:
        fail("; ".join(f"{t}-{p}: {_error_name(c)}" for (t, p), c in sorted(errors.items())))
