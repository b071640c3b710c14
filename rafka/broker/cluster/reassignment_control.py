"""The controller's side of partition reassignment (Kafka's AlterPartitionReassignments and
ListPartitionReassignments): which targets it accepts, the metadata records that start, cancel
and finish a reassignment, and what ListPartitionReassignments shows.

The partition's leader moves its Raft voters to the target (reassignment.py); once it reports
the target, and only the target, in sync (AlterPartition), the controller records the
reassignment done and the replicas that left are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rafka.broker.cluster.cluster_metadata import MetadataImage, TopicImage
from rafka.protocol.errors import ErrorCode


class ReassignmentRefused(Exception):
    """A partition's reassignment Kafka refuses with `code`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_partition(topic: TopicImage | None, name: str, index: int) -> TopicImage:
    if topic is None:
        raise ReassignmentRefused(
            ErrorCode.unknown_topic_or_partition, f"Unable to find a topic named {name}."
        )
    if not 0 <= index < topic.partition_count:
        raise ReassignmentRefused(
            ErrorCode.unknown_topic_or_partition, f"Unable to find partition {name}:{index}."
        )
    return topic


def check_target(
    image: MetadataImage,
    topic: TopicImage,
    index: int,
    target: tuple[int, ...],
    allow_replication_factor_change: bool = True,
) -> None:
    """Kafka's checks of a manual assignment: not empty, each broker registered and listed
    once (a fenced broker is registered: its replica catches up once it is back)."""
    if not target:
        raise ReassignmentRefused(
            ErrorCode.invalid_replica_assignment,
            "The manual partition assignment includes an empty replica list.",
        )
    seen: set[int] = set()
    for broker_id in sorted(target):
        if broker_id not in image.brokers:
            raise ReassignmentRefused(
                ErrorCode.invalid_replica_assignment,
                f"The manual partition assignment includes broker {broker_id}, but no such "
                f"broker is registered.",
            )
        if broker_id in seen:
            raise ReassignmentRefused(
                ErrorCode.invalid_replica_assignment,
                f"The manual partition assignment includes the broker {broker_id} more than once.",
            )
        seen.add(broker_id)
    if not allow_replication_factor_change:
        known = topic.reassignments.get(index)
        before = len(known.original) if known is not None else len(topic.replicas[index])
        if before != len(target):
            raise ReassignmentRefused(
                ErrorCode.invalid_replication_factor,
                f"The replication factor is changed from {before} to {len(target)}",
            )


def check_cancel(topic: TopicImage, index: int) -> None:
    known = topic.reassignments.get(index)
    if known is None or known.cancelled:
        raise ReassignmentRefused(
            ErrorCode.no_reassignment_in_progress,
            "No partition reassignment is in progress for this topic-partition.",
        )


def reassign_record(topic: TopicImage, targets: dict[int, tuple[int, ...]]) -> dict[str, Any]:
    return {
        "type": "reassign_partitions",
        "id": str(topic.topic_id),
        "partitions": [{"partition": i, "target": list(t)} for i, t in sorted(targets.items())],
    }


def cancel_record(topic: TopicImage, indexes: Iterable[int]) -> dict[str, Any]:
    return {
        "type": "cancel_reassignments",
        "id": str(topic.topic_id),
        "partitions": sorted(indexes),
    }


def done_record(topic: TopicImage, index: int, isr: Iterable[int]) -> dict[str, Any] | None:
    """The record finishing a partition's reassignment if `isr` (its leader's report) is
    exactly the target: the leader reports that only once its Raft voters are the target."""
    known = topic.reassignments.get(index)
    if known is None or set(isr) != set(known.target):
        return None
    return {
        "type": "reassignment_done",
        "id": str(topic.topic_id),
        "partition": index,
        "replicas": list(known.target),
    }


def done_already(topic: TopicImage, indexes: Iterable[int]) -> list[dict[str, Any]]:
    """Reassignments whose target is in sync as last reported (a shrink to replicas already
    in sync, or a cancel before any voter moved): no new report would come to finish them."""
    records = []
    for index in indexes:
        state = topic.states.get(index)
        record = None if state is None else done_record(topic, index, state.isr)
        if record is not None:
            records.append(record)
    return records


def ongoing(topic: TopicImage, indexes: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """ListPartitionReassignments' entries of a topic (cancelled ones are not shown): adding
    are the target's new brokers, removing every hosting broker outside the target."""
    wanted = sorted(topic.reassignments) if indexes is None else indexes
    entries = []
    for index in wanted:
        known = topic.reassignments.get(index)
        if known is None or known.cancelled:
            continue
        replicas = topic.replicas[index]
        entries.append(
            {
                "partition_index": index,
                "replicas": list(replicas),
                "adding_replicas": [n for n in known.target if n not in known.original],
                "removing_replicas": [n for n in replicas if n not in known.target],
            }
        )
    return entries
