"""`rafka leader-election`: kafka-leader-election's flags and output, through ElectLeaders.

    --election-type PREFERRED|UNCLEAN  (--all-topic-partitions | --topic T --partition N |
                                        --path-to-json-file F)

The JSON file is Kafka's: {"partitions":[{"topic":"t","partition":0}]}. On rafka an unclean
election is never needed: a partition's Raft group elects only replicas with every committed
record (docs/operations.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rafka.cli.admin_common import DEFAULT_BOOTSTRAP, BootstrapOption, admin_client, fail
from rafka.cli.reassign_plan import TopicPartition, partition_name

ELECTION_TYPES = {"PREFERRED": 0, "UNCLEAN": 1}
ELECTION_NOT_NEEDED = 84


def _json_partitions(path: Path) -> list[TopicPartition]:
    try:
        document = json.loads(path.read_text())
        partitions = [(str(p["topic"]), int(p["partition"])) for p in document["partitions"]]
    except OSError as exc:
        fail(f"--path-to-json-file {path}: {exc.strerror or exc}")
    except (ValueError, KeyError, TypeError):
        fail(f'--path-to-json-file {path}: expected {{"partitions":[{{"topic":..,'
             f'"partition":..}}]}}')  # fmt: skip
    repeated = sorted({partition_name(p) for p in partitions if partitions.count(p) > 1})
    if repeated:
        fail(f"Replica election data contains duplicate partitions: {','.join(repeated)}")
    return partitions


def leader_election(
    election_type: Annotated[
        str | None,
        typer.Option("--election-type", help="PREFERRED or UNCLEAN.", case_sensitive=False),
    ] = None,
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: Annotated[
        Path | None,
        typer.Option(
            "--command-config",
            "--admin.config",
            help="Client properties file (Kafka's client security keys).",
        ),
    ] = None,
    all_topic_partitions: Annotated[
        bool, typer.Option("--all-topic-partitions", help="Every partition of every topic.")
    ] = False,
    topic: Annotated[str | None, typer.Option("--topic", help="One topic's partition.")] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", help="The partition of --topic.")
    ] = None,
    path_to_json_file: Annotated[
        Path | None,
        typer.Option("--path-to-json-file", help="Partitions to elect for (Kafka's JSON)."),
    ] = None,
) -> None:
    """Elect partition leaders (as kafka-leader-election)."""
    from rafka.cli.reassign_client import elect_leaders

    if election_type is None:
        fail("Missing required option(s): election-type")
    kind = ELECTION_TYPES.get(election_type.upper())
    if kind is None:
        fail(f"Invalid election type {election_type!r}: PREFERRED or UNCLEAN")
    if sum([all_topic_partitions, topic is not None, path_to_json_file is not None]) != 1:
        fail(
            "One and only one of the following options is required: all-topic-partitions, "
            "topic, path-to-json-file"
        )
    partitions: list[TopicPartition] | None = None
    if topic is not None:
        if partition is None:
            fail("Missing required option(s): partition")
        partitions = [(topic, partition)]
    elif partition is not None:
        fail("Option partition is only allowed if topic is used")
    elif path_to_json_file is not None:
        partitions = _json_partitions(path_to_json_file)
    with admin_client(bootstrap_server, command_config) as client:
        outcomes = elect_leaders(client, kind, partitions)
    name = election_type.upper()
    done = [tp for tp, (code, _) in sorted(outcomes.items()) if code == 0]
    noop = [tp for tp, (code, _) in sorted(outcomes.items()) if code == ELECTION_NOT_NEEDED]
    failed = {tp: o for tp, o in sorted(outcomes.items()) if o[0] not in (0, ELECTION_NOT_NEEDED)}
    if done:
        typer.echo(
            f"Successfully completed leader election ({name}) for partitions "
            f"{', '.join(map(partition_name, done))}"
        )
    if noop:
        typer.echo(
            f"Valid replica already elected for partitions {', '.join(map(partition_name, noop))}"
        )
    if failed:
        from rafka.cli.kafka_client import error_name

        for tp, (code, message) in failed.items():
            detail = f": {message}" if message else ""
            typer.echo(
                f"Error completing leader election ({name}) for partition: "
                f"{partition_name(tp)}: {error_name(code)}{detail}"
            )
        fail(f"{len(failed)} replica(s) could not be elected")
