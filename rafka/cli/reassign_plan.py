"""kafka-reassign-partitions' files and plans, without I/O: the reassignment JSON
({"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3],"log_dirs":["any","any"]}]}),
the topics-to-move JSON ({"version":1,"topics":[{"topic":"t"}]}), and the proposal --generate
makes (Kafka's rack-unaware round-robin placement)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

TopicPartition = tuple[str, int]
ANY_LOG_DIR = "any"


class PlanError(ValueError):
    """A file or argument kafka-reassign-partitions would refuse; the message says why."""


def partition_name(tp: TopicPartition) -> str:
    return f"{tp[0]}-{tp[1]}"


def _document(text: str, what: str) -> dict:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PlanError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PlanError(f"{what} must be a JSON object")
    version = document.get("version", 1)
    if version != 1:
        raise PlanError(f"Not supported version field value {version}")
    return document


def parse_reassignment(text: str) -> dict[TopicPartition, list[int]]:
    """The target replicas of each partition in a reassignment JSON, in file order."""
    document = _document(text, "the reassignment JSON")
    entries = document.get("partitions")
    if not isinstance(entries, list) or not entries:
        raise PlanError("Partition reassignment list cannot be empty")
    targets: dict[TopicPartition, list[int]] = {}
    duplicates: list[str] = []
    repeated_replicas: list[str] = []
    for entry in entries:
        try:
            tp = (str(entry["topic"]), int(entry["partition"]))
            replicas = [int(node) for node in entry["replicas"]]
        except (KeyError, TypeError, ValueError):
            raise PlanError(
                f"each partition needs a topic, a partition and replicas: {entry!r}"
            ) from None
        log_dirs = entry.get("log_dirs")
        if log_dirs is not None:
            if len(log_dirs) != len(replicas):
                raise PlanError(
                    f"Size of replicas list {replicas} is different from size of log dirs "
                    f"list {log_dirs} for partition {partition_name(tp)}"
                )
            if any(d != ANY_LOG_DIR for d in log_dirs):
                raise PlanError(
                    f"log_dirs of {partition_name(tp)}: moving replicas between log "
                    f'directories is not supported; use "any"'
                )
        if tp in targets:
            duplicates.append(partition_name(tp))
        if len(set(replicas)) != len(replicas):
            shown = ",".join(str(n) for n in sorted({n for n in replicas if replicas.count(n) > 1}))
            repeated_replicas.append(f"{partition_name(tp)} contains multiple entries for {shown}")
        targets[tp] = replicas
    if duplicates:
        raise PlanError(
            f"Partition reassignment contains duplicate topic partitions: {','.join(duplicates)}"
        )
    if repeated_replicas:
        raise PlanError(
            "Partition replica lists may not contain duplicate entries: "
            + ". ".join(repeated_replicas)
        )
    return targets


def parse_topics_to_move(text: str) -> list[str]:
    document = _document(text, "the topics-to-move JSON")
    entries = document.get("topics")
    if not isinstance(entries, list) or not entries:
        raise PlanError("the topics-to-move JSON lists no topics")
    try:
        topics = [str(entry["topic"]) for entry in entries]
    except (KeyError, TypeError):
        raise PlanError('each entry of "topics" needs a "topic"') from None
    repeated = sorted({t for t in topics if topics.count(t) > 1})
    if repeated:
        raise PlanError(
            f"List of topics to reassign contains duplicate entries: {', '.join(repeated)}"
        )
    return topics


def parse_broker_list(text: str) -> list[int]:
    try:
        brokers = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise PlanError(f"--broker-list {text!r}: expected broker ids such as 1,2,3") from None
    if not brokers:
        raise PlanError("--broker-list names no broker")
    repeated = sorted({b for b in brokers if brokers.count(b) > 1})
    if repeated:
        raise PlanError(f"Broker list contains duplicate entries: {', '.join(map(str, repeated))}")
    return brokers


def reassignment_json(assignment: Mapping[TopicPartition, list[int]]) -> str:
    """The JSON kafka-reassign-partitions prints and reads, partitions in topic order."""
    partitions = [
        {
            "topic": topic,
            "partition": index,
            "replicas": list(replicas),
            "log_dirs": [ANY_LOG_DIR] * len(replicas),
        }
        for (topic, index), replicas in sorted(assignment.items())
    ]
    return json.dumps({"version": 1, "partitions": partitions}, separators=(",", ":"))


def propose(
    current: Mapping[TopicPartition, list[int]],
    brokers: list[int],
    rng: random.Random | None = None,
) -> dict[TopicPartition, list[int]]:
    """A new placement of every topic's partitions over `brokers`, keeping each topic's
    replication factor: the first replicas go round the brokers from a random start; the
    others follow at a shift that grows each time the first replicas have gone round once,
    so that followers spread too (Kafka's rack-unaware placement)."""
    rng = rng or random.Random()
    ordered = sorted(brokers)
    count = len(ordered)
    by_topic: dict[str, list[int]] = {}
    for topic, index in current:
        by_topic.setdefault(topic, []).append(index)
    proposal: dict[TopicPartition, list[int]] = {}
    for topic, indexes in sorted(by_topic.items()):
        factor = len(current[(topic, min(indexes))])
        if factor > count:
            raise PlanError(f"Replication factor: {factor} larger than available brokers: {count}.")
        start = rng.randrange(count)
        shift = rng.randrange(count)
        for index in sorted(indexes):
            if index > 0 and index % count == 0:
                shift += 1
            first = (index + start) % count
            replicas = [ordered[first]]
            for nth in range(factor - 1):
                step = 1 + (shift + nth) % (count - 1)
                replicas.append(ordered[(first + step) % count])
            proposal[(topic, index)] = replicas
    return proposal
