"""`rafka group`: list, describe and delete consumer and share groups and reset their offsets.

Like Kafka's kafka-consumer-groups.sh and, for share groups (KIP-932, rafka.cli.share_groups),
kafka-share-groups.sh, but with subcommands. It speaks the Kafka protocol to
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
CONSUMER_MEMBER_TYPE = 1  # ConsumerGroupDescribe v1: 0 classic, 1 consumer
INACTIVE_STATES = ("Empty", "Dead")

app = command_app(
    "group",
    "List, describe and delete consumer and share groups; reset or delete their offsets.",
)


def _error_name(code: int) -> str:
    from rafka.cli.kafka_client import error_name

    return error_name(code)


# -- list -----------------------------------------------------------------------------------------

GROUP_TYPES = ("classic", "consumer", "share")


def _split(values: list[str] | None) -> list[str]:
    """Repeatable options that also take comma-separated values, as kafka-consumer-groups.sh."""
    return [v.strip() for item in values or () for v in item.split(",") if v.strip()]


@app.command("list")
def list_groups(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    state: Annotated[
        list[str] | None,
        typer.Option("--state", help="Only groups in this state (repeatable), e.g. Stable."),
    ] = None,
    group_type: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help="Only groups of this type (repeatable): classic, consumer (KIP-848) or share "
            "(KIP-932).",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the consumer and share groups of the cluster, with their state and type."""
    types = [t.lower() for t in _split(group_type)]
    unknown = [t for t in types if t not in GROUP_TYPES]
    if unknown:
        fail(f"invalid group type {unknown[0]!r}: valid types are {', '.join(GROUP_TYPES)}")
    with kafka_client(bootstrap_server, command_config) as client:
        groups = client.list_groups(_split(state))
    if types:
        groups = [g for g in groups if g["type"] in types]
    if json_output:
        print_json(groups)
        return
    print_table(
        ["GROUP", "STATE", "PROTOCOL-TYPE", "TYPE"],
        [[g["group"], g["state"], g["protocol_type"], g["type"]] for g in groups],
    )


# -- describe -------------------------------------------------------------------------------------


def _member_type(member: Any) -> bool | None:
    """ConsumerGroupDescribe v1's member type as Kafka's `upgraded`: True for a member on the
    consumer protocol, False for a classic member inside a consumer group, None if unknown."""
    kind = getattr(member, "member_type", -1)
    return None if kind < 0 else kind == CONSUMER_MEMBER_TYPE


def _topic_partitions(assignment: Any) -> list[dict[str, Any]]:
    return sorted(
        (
            {"topic": t.topic_name, "partition": p}
            for t in assignment.topic_partitions
            for p in t.partitions
        ),
        key=lambda tp: (tp["topic"], tp["partition"]),
    )


def _classic_view(described: Any) -> dict[str, Any]:
    from rafka.cli.kafka_client import decode_assignment

    members = []
    for m in described.members:
        assigned = (
            decode_assignment(m.member_assignment) if described.protocol_type == "consumer" else []
        )
        members.append(
            {
                "member_id": m.member_id,
                "group_instance_id": getattr(m, "group_instance_id", None),
                "client_id": m.client_id,
                "host": m.client_host,
                "assignment": [{"topic": t, "partition": p} for t, p in sorted(assigned)],
                "member_epoch": None,
                "target_assignment": None,
                "upgraded": None,
            }
        )
    return {
        "type": "classic",
        "state": described.group_state,
        "protocol_type": described.protocol_type,
        "assignment_strategy": described.protocol_data,
        "group_epoch": None,
        "assignment_epoch": None,
        "members": members,
    }


def _consumer_view(described: Any) -> dict[str, Any]:
    """A consumer-protocol group (KIP-848) from ConsumerGroupDescribe."""
    return {
        "type": "consumer",
        "state": described.group_state,
        "protocol_type": "consumer",
        "assignment_strategy": described.assignor_name,
        "group_epoch": described.group_epoch,
        "assignment_epoch": described.assignment_epoch,
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.instance_id,
                "client_id": m.client_id,
                "host": m.client_host,
                "assignment": _topic_partitions(m.assignment),
                "member_epoch": m.member_epoch,
                "target_assignment": _topic_partitions(m.target_assignment),
                "upgraded": _member_type(m),
                "rack_id": m.rack_id,
                "subscribed_topic_names": list(m.subscribed_topic_names),
                "subscribed_topic_regex": m.subscribed_topic_regex,
            }
            for m in described.members
        ],
    }


def describe_group(client: KafkaClient, group_id: str) -> dict[str, Any]:
    """Everything `describe` shows about one group, as plain data.

    As kafka-consumer-groups.sh in Kafka 4: a classic group is described by DescribeGroups, and
    a consumer-protocol group (KIP-848), which DescribeGroups does not know (GROUP_ID_NOT_FOUND),
    by ConsumerGroupDescribe; a share group (KIP-932), which neither knows, as
    kafka-share-groups.sh does (rafka.cli.share_groups)."""
    from rafka.cli.kafka_client import LATEST, KafkaClientError
    from rafka.cli.share_groups import describe_share_group, share_view

    coordinator, described = client.describe_group(group_id)
    if described.error_code not in (NO_ERROR, GROUP_ID_NOT_FOUND):
        raise KafkaClientError(f"group {group_id!r}: {_error_name(described.error_code)}")
    exists = described.error_code == NO_ERROR and described.group_state != "Dead"
    view = _classic_view(described)
    if not exists:
        found = client.describe_consumer_group(group_id)
        if found is not None:
            node, consumer = found
            if consumer.error_code not in (NO_ERROR, GROUP_ID_NOT_FOUND):
                raise KafkaClientError(f"group {group_id!r}: {_error_name(consumer.error_code)}")
            if consumer.error_code == NO_ERROR and consumer.group_state != "Dead":
                coordinator, exists, view = node, True, _consumer_view(consumer)
    if not exists:
        share = describe_share_group(client, group_id)
        if share is not None:
            return share_view(client, group_id, *share)
    committed = client.fetch_offsets(group_id) if exists else {}
    owner: dict[tuple[str, int], dict[str, Any]] = {}
    for member in view["members"]:
        for tp in member["assignment"]:
            owner[(tp["topic"], tp["partition"])] = member
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
                "leader_epoch": (
                    current.leader_epoch if current and current.leader_epoch >= 0 else None
                ),
            }
        )
    host, port = client.cluster().brokers.get(coordinator, ("", -1))
    return {
        "group": group_id,
        "exists": exists,
        "type": view["type"],
        "state": view["state"],
        "protocol_type": view["protocol_type"],
        "assignment_strategy": view["assignment_strategy"],
        "group_epoch": view["group_epoch"],
        "assignment_epoch": view["assignment_epoch"],
        "coordinator": {"id": coordinator, "host": host, "port": port},
        "members": view["members"],
        "offsets": offsets,
    }


def assignment_string(partitions: list[dict[str, Any]] | None) -> str | None:
    """Kafka's CURRENT-ASSIGNMENT/TARGET-ASSIGNMENT cell: `topic:0,1;other:2`, None if empty."""
    if not partitions:
        return None
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp["topic"], []).append(tp["partition"])
    return ";".join(
        f"{topic}:{','.join(str(p) for p in sorted(ps))}" for topic, ps in sorted(by_topic.items())
    )


def _print_state(d: dict[str, Any], verbose: bool) -> None:
    c = d["coordinator"]
    row = [
        d["group"],
        f"{c['host']}:{c['port']} ({c['id']})",
        d["assignment_strategy"] or None,
        d["state"],
    ]
    if d["type"] == "consumer" or verbose:
        print_table(
            [
                "GROUP",
                "COORDINATOR (ID)",
                "ASSIGNMENT-STRATEGY",
                "STATE",
                "GROUP-EPOCH",
                "TARGET-ASSIGNMENT-EPOCH",
                "#MEMBERS",
            ],
            [[*row, d["group_epoch"], d["assignment_epoch"], len(d["members"])]],
        )
        return
    print_table(
        ["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
        [[d["group"], row[1], d["assignment_strategy"], d["state"], len(d["members"])]],
    )


def _print_members(d: dict[str, Any], verbose: bool) -> None:
    """Kafka's columns; a consumer-protocol group also shows each member's epoch and current
    assignment, and --verbose adds the target assignment (and UPGRADED in a mixed group)."""
    headers = ["GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
    epochs = d["type"] == "consumer" or verbose
    kinds = {m["upgraded"] for m in d["members"]}
    mixed = verbose and True in kinds and False in kinds
    if epochs:
        headers += ["CURRENT-EPOCH", "CURRENT-ASSIGNMENT"]
    if verbose:
        headers += ["TARGET-EPOCH", "TARGET-ASSIGNMENT"]
    if mixed:
        headers.append("UPGRADED")
    rows = []
    for m in d["members"]:
        row = [
            d["group"],
            m["member_id"],
            m["group_instance_id"],
            m["host"],
            m["client_id"],
            len(m["assignment"]),
        ]
        if epochs:
            row += [m["member_epoch"], assignment_string(m["assignment"])]
        if verbose:
            row += [d["assignment_epoch"], assignment_string(m["target_assignment"])]
        if mixed:
            row.append(None if m["upgraded"] is None else str(m["upgraded"]).lower())
        rows.append(row)
    print_table(headers, rows)


def _print_offsets(d: dict[str, Any], verbose: bool) -> None:
    if d["state"] in INACTIVE_STATES:
        typer.echo(f"Consumer group '{d['group']}' has no active members.")
    headers = ["GROUP", "TOPIC", "PARTITION"]
    if verbose:
        headers.append("LEADER-EPOCH")
    headers += ["CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]
    rows = []
    for o in d["offsets"]:
        row = [d["group"], o["topic"], o["partition"]]
        if verbose:
            row.append(o["leader_epoch"])
        row += [
            o["current_offset"],
            o["log_end_offset"],
            o["lag"],
            o["consumer_id"],
            o["host"],
            o["client_id"],
        ]
        rows.append(row)
    print_table(headers, rows)


@app.command("describe")
def describe(
    group: Annotated[list[str], typer.Option("--group", "-g", help="Group id (repeatable).")],
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    members: Annotated[bool, typer.Option("--members", help="Show members.")] = False,
    state: Annotated[bool, typer.Option("--state", help="Show the group's state.")] = False,
    offsets: Annotated[
        bool, typer.Option("--offsets", help="Show offsets per partition (the default).")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="More columns: members' epochs and target assignments (--members), the group "
            "and target assignment epochs (--state), committed leader epochs (offsets).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Committed offsets, log end offsets and lag per partition (or members, or state); for a
    share group, each share partition's start offset and lag."""
    from rafka.cli.share_groups import print_share_group

    if sum((members, state, offsets)) > 1:
        fail("give at most one of --members, --state, --offsets")
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
        if d["type"] == "share":
            print_share_group(d, members=members, state=state, verbose=verbose)
            continue
        if state:
            _print_state(d, verbose)
        elif members:
            _print_members(d, verbose)
        else:
            _print_offsets(d, verbose)


# -- delete ---------------------------------------------------------------------------------------


@app.command("delete")
def delete(
    group: Annotated[list[str], typer.Option("--group", "-g", help="Group id (repeatable).")],
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete groups and their committed offsets, or a share group and its share-partition
    states (only groups without active members)."""
    with kafka_client(bootstrap_server, command_config) as client:
        kinds = _group_kinds(client)
        results = client.delete_groups(group)
    failed = {g: c for g, c in results.items() if c != NO_ERROR}
    if json_output:
        print_json(
            [
                {
                    "group": g,
                    "type": kinds.get(g),
                    "error": None if c == NO_ERROR else _error_name(c),
                }
                for g, c in results.items()
            ]
        )
    else:
        for g, c in results.items():
            if c == NO_ERROR:
                # Classic and consumer-protocol groups are both consumer groups, as
                # kafka-consumer-groups.sh calls them; share groups are kafka-share-groups.sh's.
                kind = "share" if kinds.get(g) == "share" else "consumer"
                typer.echo(f"Deleted {kind} group '{g}'.")
    if failed:
        fail("; ".join(f"cannot delete group {g!r}: {_error_name(c)}" for g, c in failed.items()))


def _group_kinds(client: KafkaClient) -> dict[str, str]:
    """Group id -> type (classic, consumer, share) as ListGroups reports it (before v5 it has
    no type: classic); empty if ListGroups fails, which then only costs the wording."""
    from rafka.cli.kafka_client import KafkaClientError

    try:
        return {g["group"]: g["type"] for g in client.list_groups()}
    except KafkaClientError:
        return {}


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
    committed: dict[tuple[str, int], int] | None = None,
) -> dict[tuple[str, int], int]:
    """The offset each partition would be reset to, clamped to the log's range like Kafka.
    `committed`: the offsets to shift or keep (a share group's start offsets), else the
    group's committed offsets."""
    from rafka.cli.kafka_client import EARLIEST, LATEST, KafkaClientError

    earliest = client.list_offsets(partitions, EARLIEST)
    latest = client.list_offsets(partitions, LATEST)
    if committed is None:
        committed = {tp: c.offset for tp, c in client.fetch_offsets(group_id).items()}

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
            tp: clamp(tp, (committed[tp] if tp in committed else latest[tp]) + shift_by)
            for tp in partitions
        }
    if to_datetime is not None:
        timestamp = int(to_datetime.timestamp() * 1000)
        found = client.list_offsets(partitions, timestamp)
        return {tp: latest[tp] if found[tp] < 0 else found[tp] for tp in partitions}
    if to_current:
        return {tp: committed[tp] if tp in committed else latest[tp] for tp in partitions}
    raise KafkaClientError(
        "say where to: --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime "
        "or --to-current"
    )


def _active_state(client: KafkaClient, group_id: str) -> str | None:
    """The group's state if it has active members (classic or consumer protocol), else None."""
    _, described = client.describe_group(group_id)
    if described.error_code == NO_ERROR:
        state = described.group_state
        return None if state in INACTIVE_STATES else state
    if described.error_code == GROUP_ID_NOT_FOUND:
        found = client.describe_consumer_group(group_id)
        if found is not None and found[1].error_code == NO_ERROR:
            state = found[1].group_state
            return None if state in INACTIVE_STATES else state
    return None


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
    """Move a group's committed offsets (a share group's start offsets); the group must have
    no active members."""
    from rafka.cli.share_groups import alter_share_offsets, describe_share_group, share_offsets

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
        state = _active_state(client, group)
        share = describe_share_group(client, group) if state is None else None
        if share is not None and share[1].group_state not in INACTIVE_STATES:
            state = share[1].group_state
        if state is not None:
            fail(
                f"assignments can only be reset if the group {group!r} is inactive, but the "
                f"current state is {state}"
            )
        current = None
        if share is not None:
            starts = share_offsets(client, group)
            current = {
                tp: o["start_offset"] for tp, o in starts.items() if o["start_offset"] is not None
            }
        if all_topics:
            partitions = sorted(client.fetch_offsets(group) if current is None else starts)
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
            committed=current,
        )
        errors: dict[tuple[str, int], int] = {}
        if execute and plan:
            if share is None:
                results = client.commit_offsets(group, plan)
            else:
                results = alter_share_offsets(client, group, plan)
            errors = {tp: c for tp, c in results.items() if c}
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


# -- delete-offsets -------------------------------------------------------------------------------


@app.command("delete-offsets")
def delete_offsets(
    group: Annotated[str, typer.Option("--group", "-g", help="Share group id.")],
    topic: Annotated[list[str], typer.Option("--topic", "-t", help="Topic (repeatable).")],
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete a share group's offsets of topics, as kafka-share-groups.sh --delete-offsets: its
    share partitions there start again by share.auto.offset.reset. The group must have no
    active members."""
    from rafka.cli.share_groups import delete_share_offsets, describe_share_group

    topics = list(dict.fromkeys(_split(topic)))
    with kafka_client(bootstrap_server, command_config) as client:
        if describe_share_group(client, group) is None:
            fail(f"group {group!r} is not a share group: delete-offsets serves share groups")
        results = delete_share_offsets(client, group, topics)
    if json_output:
        print_json([{"topic": t, "error": e} for t, e in results.items()])
    else:
        print_table(
            ["TOPIC", "STATUS"],
            [[t, "Successful" if e is None else f"Error: {e}"] for t, e in results.items()],
        )
    failed = {t: e for t, e in results.items() if e is not None}
    if failed:
        fail("; ".join(f"cannot delete the offsets of {t!r}: {e}" for t, e in failed.items()))
