"""`rafka reassign`: kafka-reassign-partitions' actions, flags, JSON files and output.

    --generate --topics-to-move-json-file F --broker-list 2,3   propose a placement
    --execute  --reassignment-json-file F [--additional]        start moving
    --verify   --reassignment-json-file F                       completed or in progress
    --cancel   --reassignment-json-file F                       move back
    --list                                                      reassignments in progress

Throttles (--throttle) are not offered: replicas catch up through their Raft group's fetches.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rafka.cli.admin_common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    CommandConfigOption,
    admin_client,
    fail,
)
from rafka.cli.reassign_plan import (
    PlanError,
    TopicPartition,
    parse_broker_list,
    parse_reassignment,
    parse_topics_to_move,
    partition_name,
    propose,
    reassignment_json,
)

if TYPE_CHECKING:
    from rafka.cli.admin_client import AdminClient
    from rafka.cli.reassign_client import Outcome


def _read(path: Path | None, flag: str, action: str) -> str:
    if path is None:
        fail(f"{action} requires {flag}")
    try:
        return path.read_text()
    except OSError as exc:
        fail(f"{flag} {path}: {exc.strerror or exc}")


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def _names(partitions: Iterable[TopicPartition]) -> str:
    return ",".join(partition_name(tp) for tp in sorted(partitions))


def _failures(outcomes: dict[TopicPartition, Outcome]) -> list[str]:
    from rafka.cli.kafka_client import error_name

    return [
        f"{partition_name(tp)}: {error_name(code)}" + (f": {message}" if message else "")
        for tp, (code, message) in sorted(outcomes.items())
        if code != 0
    ]


def current_assignment(
    client: AdminClient, partitions: list[TopicPartition] | None, topics: list[str] | None = None
) -> dict[TopicPartition, list[int]]:
    """The replicas of the named partitions (or of every partition of `topics`)."""
    names = sorted({t for t, _ in partitions}) if partitions is not None else topics
    found = {(t.name, p.partition): p.replicas for t in client.topics(names) for p in t.partitions}
    if partitions is None:
        return found
    missing = [tp for tp in partitions if tp not in found]
    if missing:
        fail(f"Unable to find partition{_plural(len(missing))}: {_names(missing)}")
    return {tp: found[tp] for tp in partitions}


def reassign(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    generate: Annotated[
        bool, typer.Option("--generate", help="Propose a placement of topics over brokers.")
    ] = False,
    execute: Annotated[
        bool, typer.Option("--execute", help="Start the reassignment in the JSON file.")
    ] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="Tell whether its partitions have moved.")
    ] = False,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Cancel its reassignments in progress.")
    ] = False,
    list_: Annotated[
        bool, typer.Option("--list", help="List the reassignments in progress.")
    ] = False,
    reassignment_json_file: Annotated[
        Path | None,
        typer.Option("--reassignment-json-file", help="Target replicas per partition (JSON)."),
    ] = None,
    topics_to_move_json_file: Annotated[
        Path | None,
        typer.Option("--topics-to-move-json-file", help="Topics to place, for --generate."),
    ] = None,
    broker_list: Annotated[
        str | None,
        typer.Option("--broker-list", help="Brokers to place them on, e.g. 2,3,4."),
    ] = None,
    additional: Annotated[
        bool,
        typer.Option("--additional", help="Execute although reassignments are in progress."),
    ] = False,
    disallow_replication_factor_change: Annotated[
        bool,
        typer.Option(
            "--disallow-replication-factor-change",
            help="Refuse targets with another number of replicas.",
        ),
    ] = False,
) -> None:
    """Move partitions' replicas between brokers (as kafka-reassign-partitions)."""
    actions = [generate, execute, verify, cancel, list_]
    if sum(actions) != 1:
        fail(
            "Command must include exactly one action: --generate, --execute, --verify, "
            "--cancel, or --list"
        )
    try:
        with admin_client(bootstrap_server, command_config) as client:
            if generate:
                topics = parse_topics_to_move(
                    _read(topics_to_move_json_file, "--topics-to-move-json-file", "--generate")
                )
                if broker_list is None:
                    fail("--generate requires --broker-list")
                _generate(client, topics, parse_broker_list(broker_list))
            elif list_:
                _list(client)
            else:
                action = "--execute" if execute else "--verify" if verify else "--cancel"
                text = _read(reassignment_json_file, "--reassignment-json-file", action)
                targets = parse_reassignment(text)
                if execute:
                    _execute(client, targets, additional, not disallow_replication_factor_change)
                elif verify:
                    _verify(client, targets)
                else:
                    _cancel(client, list(targets))
    except PlanError as exc:
        fail(str(exc))


def _generate(client: AdminClient, topics: list[str], brokers: list[int]) -> None:
    known = set(client.cluster(refresh=True).brokers)
    unknown = [b for b in brokers if b not in known]
    if unknown:
        fail(f"Broker{_plural(len(unknown))} {','.join(map(str, unknown))} not in the cluster")
    current = current_assignment(client, None, topics)
    proposal = propose(current, brokers)
    typer.echo(f"Current partition replica assignment\n{reassignment_json(current)}\n")
    typer.echo(f"Proposed partition reassignment configuration\n{reassignment_json(proposal)}")


def _execute(
    client: AdminClient,
    targets: dict[TopicPartition, list[int]],
    additional: bool,
    allow_replication_factor_change: bool,
) -> None:
    from rafka.cli.reassign_client import alter_reassignments, list_reassignments

    if list_reassignments(client):
        if not additional:
            fail(
                "Cannot execute because there is an existing partition assignment. Use "
                "--additional to override this and create a new partition assignment in "
                "addition to the existing one."
            )
    else:
        current = current_assignment(client, list(targets))
        typer.echo(
            f"Current partition replica assignment\n\n{reassignment_json(current)}\n\n"
            "Save this to use as the --reassignment-json-file option during rollback"
        )
    wanted: dict[TopicPartition, list[int] | None] = dict(targets)
    outcomes = alter_reassignments(client, wanted, allow_replication_factor_change)
    failures = _failures(outcomes)
    if failures:
        fail(f"Error reassigning partition(s): {'; '.join(failures)}")
    typer.echo(
        f"Successfully started partition reassignment{_plural(len(targets))} for {_names(targets)}"
    )


def _verify(client: AdminClient, targets: dict[TopicPartition, list[int]]) -> None:
    from rafka.cli.reassign_client import list_reassignments

    ongoing = list_reassignments(client, list(targets))
    current = current_assignment(client, [tp for tp in targets if tp not in ongoing])
    typer.echo("Status of partition reassignment:")
    for tp in sorted(targets):
        name = partition_name(tp)
        if tp in ongoing:
            typer.echo(f"Reassignment of partition {name} is still in progress.")
        elif current[tp] == targets[tp]:
            typer.echo(f"Reassignment of partition {name} is completed.")
        else:
            typer.echo(
                f"There is no active reassignment of partition {name}, but replica set is "
                f"{','.join(map(str, current[tp]))} rather than "
                f"{','.join(map(str, targets[tp]))}."
            )


def _cancel(client: AdminClient, partitions: list[TopicPartition]) -> None:
    from rafka.cli.reassign_client import alter_reassignments, list_reassignments

    active = [
        tp
        for tp, ongoing in list_reassignments(client, partitions).items()
        if ongoing.adding or ongoing.removing
    ]
    if not active:
        typer.echo("None of the specified partition reassignments are active.")
        return
    failures = _failures(alter_reassignments(client, dict.fromkeys(active)))
    if failures:
        fail(f"Error cancelling partition reassignment{_plural(len(failures))} for: "
             f"{'; '.join(failures)}")  # fmt: skip
    typer.echo(
        f"Successfully cancelled partition reassignment{_plural(len(active))} for: {_names(active)}"
    )


def _list(client: AdminClient) -> None:
    from rafka.cli.reassign_client import list_reassignments

    ongoing = list_reassignments(client)
    if not ongoing:
        typer.echo("No partition reassignments found.")
        return
    typer.echo("Current partition reassignments:")
    for tp, entry in sorted(ongoing.items()):
        line = f"{partition_name(tp)}: replicas: {','.join(map(str, entry.replicas))}."
        if entry.adding:
            line += f" adding: {','.join(map(str, entry.adding))}."
        if entry.removing:
            line += f" removing: {','.join(map(str, entry.removing))}."
        typer.echo(line)
