"""Share groups (KIP-932) in `rafka group`, as Kafka's kafka-share-groups.sh shows and changes
them: ShareGroupDescribe (77) for members and state, DescribeShareGroupOffsets (90) for each
share partition's start offset and lag, AlterShareGroupOffsets (91) to reset them and
DeleteShareGroupOffsets (92) to forget a topic's. ListGroups and DeleteGroups serve share groups
as any other (rafka.cli.group).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import typer

from rafka.cli.admin_common import print_table

if TYPE_CHECKING:
    from rafka.cli.kafka_client import KafkaClient

NO_ERROR = 0
GROUP_ID_NOT_FOUND = 69
UNINITIALIZED = -1
INACTIVE_STATES = ("Empty", "Dead")
# COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR (kio, which
# names them, is imported only when a command runs).
_RETRIABLE = frozenset({14, 15, 16})


def group_call(
    client: KafkaClient, group_id: str, api_key: int, data: dict[str, Any], error_of: Callable
) -> Any:
    """Send to the group's coordinator, retrying while it moves or loads."""
    deadline = time.monotonic() + 10.0
    while True:
        node = client.find_coordinator(group_id)
        response = client.call(api_key, data, node)
        if error_of(response) not in _RETRIABLE or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def describe_share_group(client: KafkaClient, group_id: str) -> tuple[int, Any] | None:
    """(coordinator, ShareGroupDescribe's DescribedGroup) of a share group; None if the
    coordinator does not serve share groups or `group_id` is not one."""
    from rafka.cli.kafka_client import SHARE_GROUP_DESCRIBE, KafkaClientError, error_name

    try:
        client.version(SHARE_GROUP_DESCRIBE, client.find_coordinator(group_id))
    except KafkaClientError:
        return None  # no share groups there
    response = group_call(
        client,
        group_id,
        SHARE_GROUP_DESCRIBE,
        {"group_ids": [group_id], "include_authorized_operations": False},
        lambda r: r.groups[0].error_code,
    )
    described = response.groups[0]
    if described.error_code == GROUP_ID_NOT_FOUND:
        return None
    if described.error_code != NO_ERROR:
        raise KafkaClientError(f"group {group_id!r}: {error_name(described.error_code)}")
    return client.find_coordinator(group_id), described


def share_offsets(
    client: KafkaClient, group_id: str, partitions: Iterable[tuple[str, int]] | None = None
) -> dict[tuple[str, int], dict[str, int | None]]:
    """Each share partition's start offset, leader epoch and lag (None where unknown): of every
    partition the group has state for, or of `partitions`."""
    from rafka.cli.kafka_client import DESCRIBE_SHARE_GROUP_OFFSETS, KafkaClientError, error_name

    topics = None
    if partitions is not None:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, []).append(partition)
        topics = [{"topic_name": t, "partitions": sorted(ps)} for t, ps in by_topic.items()]
    response = group_call(
        client,
        group_id,
        DESCRIBE_SHARE_GROUP_OFFSETS,
        {"groups": [{"group_id": group_id, "topics": topics}]},
        lambda r: r.groups[0].error_code,
    )
    group = response.groups[0]
    if group.error_code != NO_ERROR:
        raise KafkaClientError(
            f"DescribeShareGroupOffsets for {group_id!r}: {error_name(group.error_code)}"
        )
    out: dict[tuple[str, int], dict[str, int | None]] = {}
    for t in group.topics:
        for p in t.partitions:
            if p.error_code != NO_ERROR:
                raise KafkaClientError(
                    f"DescribeShareGroupOffsets {t.topic_name}-{p.partition_index}: "
                    f"{error_name(p.error_code)}"
                )
            known = p.start_offset != UNINITIALIZED
            lag = getattr(p, "lag", UNINITIALIZED)
            out[(t.topic_name, p.partition_index)] = {
                "start_offset": p.start_offset if known else None,
                "leader_epoch": p.leader_epoch if known else None,
                "lag": lag if known and lag != UNINITIALIZED else None,
            }
    return out


def alter_share_offsets(
    client: KafkaClient, group_id: str, offsets: dict[tuple[str, int], int]
) -> dict[tuple[str, int], int]:
    """Set share-partition start offsets (the group must have no members); the error code of
    each partition."""
    from rafka.cli.kafka_client import ALTER_SHARE_GROUP_OFFSETS, KafkaClientError

    topics: dict[str, list[dict[str, int]]] = {}
    for (topic, partition), offset in sorted(offsets.items()):
        topics.setdefault(topic, []).append({"partition_index": partition, "start_offset": offset})
    response = group_call(
        client,
        group_id,
        ALTER_SHARE_GROUP_OFFSETS,
        {
            "group_id": group_id,
            "topics": [{"topic_name": t, "partitions": ps} for t, ps in topics.items()],
        },
        lambda r: r.error_code,
    )
    if response.error_code != NO_ERROR:
        raise KafkaClientError(_top_error(group_id, response))
    return {
        (t.topic_name, p.partition_index): p.error_code
        for t in response.responses
        for p in t.partitions
    }


def delete_share_offsets(
    client: KafkaClient, group_id: str, topics: list[str]
) -> dict[str, str | None]:
    """Forget the share-partition states of topics (the group must have no members): each
    topic's error message, None if deleted."""
    from rafka.cli.kafka_client import DELETE_SHARE_GROUP_OFFSETS, KafkaClientError, error_name

    response = group_call(
        client,
        group_id,
        DELETE_SHARE_GROUP_OFFSETS,
        {"group_id": group_id, "topics": [{"topic_name": t} for t in topics]},
        lambda r: r.error_code,
    )
    if response.error_code != NO_ERROR:
        raise KafkaClientError(_top_error(group_id, response))
    return {
        t.topic_name: None
        if t.error_code == NO_ERROR
        else (t.error_message or error_name(t.error_code))
        for t in response.responses
    }


def _top_error(group_id: str, response: Any) -> str:
    from rafka.cli.kafka_client import error_name

    reason = error_name(response.error_code)
    if response.error_message:
        reason += f" ({response.error_message})"
    return f"group {group_id!r}: {reason}"


# -- describe ------------------------------------------------------------------------------------


def _partitions(assignment: Any) -> list[dict[str, Any]]:
    if assignment is None:
        return []
    return sorted(
        (
            {"topic": t.topic_name, "partition": p}
            for t in assignment.topic_partitions
            for p in t.partitions
        ),
        key=lambda tp: (tp["topic"], tp["partition"]),
    )


def share_view(client: KafkaClient, group_id: str, coordinator: int, described: Any) -> dict:
    """What `rafka group describe` shows of a share group, as plain data."""
    offsets = share_offsets(client, group_id)
    host, port = client.cluster().brokers.get(coordinator, ("", -1))
    return {
        "group": group_id,
        "exists": described.group_state != "Dead",
        "type": "share",
        "state": described.group_state,
        "protocol_type": "share",
        "assignment_strategy": described.assignor_name,
        "group_epoch": described.group_epoch,
        "assignment_epoch": described.assignment_epoch,
        "coordinator": {"id": coordinator, "host": host, "port": port},
        "members": [
            {
                "member_id": m.member_id,
                "client_id": m.client_id,
                "host": m.client_host,
                "rack_id": m.rack_id,
                "member_epoch": m.member_epoch,
                "subscribed_topic_names": list(m.subscribed_topic_names),
                "assignment": _partitions(m.assignment),
            }
            for m in described.members
        ],
        "offsets": [
            {"topic": topic, "partition": partition, **info}
            for (topic, partition), info in sorted(offsets.items())
        ],
    }


def _assignment_string(partitions: list[dict[str, Any]]) -> str | None:
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp["topic"], []).append(tp["partition"])
    if not by_topic:
        return None
    return ";".join(
        f"{topic}:{','.join(str(p) for p in sorted(ps))}" for topic, ps in sorted(by_topic.items())
    )


def print_share_group(d: dict[str, Any], *, members: bool, state: bool, verbose: bool) -> None:
    """kafka-share-groups.sh --describe's tables: offsets (the default), --members or --state;
    --verbose adds leader epochs, member epochs, group and assignment epochs."""
    if d["state"] in INACTIVE_STATES and not state:
        typer.echo(f"Share group '{d['group']}' has no active members.")
    if state:
        c = d["coordinator"]
        coordinator = f"{c['host']}:{c['port']} ({c['id']})"
        if verbose:
            print_table(
                ["GROUP", "COORDINATOR (ID)", "STATE", "GROUP-EPOCH", "ASSIGNMENT-EPOCH",
                 "#MEMBERS"],
                [[d["group"], coordinator, d["state"], d["group_epoch"], d["assignment_epoch"],
                  len(d["members"])]],
            )  # fmt: skip
        else:
            print_table(
                ["GROUP", "COORDINATOR (ID)", "STATE", "#MEMBERS"],
                [[d["group"], coordinator, d["state"], len(d["members"])]],
            )
    elif members:
        headers = ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
        if verbose:
            headers.append("MEMBER-EPOCH")
        headers.append("ASSIGNMENT")
        rows = []
        for m in d["members"]:
            row = [d["group"], m["member_id"], m["host"], m["client_id"], len(m["assignment"])]
            if verbose:
                row.append(m["member_epoch"])
            rows.append([*row, _assignment_string(m["assignment"])])
        print_table(headers, rows)
    else:
        headers = ["GROUP", "TOPIC", "PARTITION"]
        if verbose:
            headers.append("LEADER-EPOCH")
        headers += ["START-OFFSET", "LAG"]
        rows = []
        for o in d["offsets"]:
            row = [d["group"], o["topic"], o["partition"]]
            if verbose:
                row.append(o["leader_epoch"])
            rows.append([*row, o["start_offset"], o["lag"]])
        print_table(headers, rows)
