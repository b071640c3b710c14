"""(h) Admin requests a tool sends to a running cluster: adding partitions, altering and describing
configs, leader-epoch lookups, deleting offsets and groups, describing producers, elections."""

from __future__ import annotations

from typing import Any

import raw
import raw_admin as admin
from context import Context
from raw_admin import APPEND, DELETE, PREFERRED, SET, SUBTRACT, UNCLEAN

TOPIC = "admin"
MISSING = "no-such-topic"
GROUP = "admin-group"
# Topic configs with the same default on both brokers, and one that does not exist. Left out:
# rafka's documented departures (file.delete.delay.ms, flush.messages, ...), and
# min.insync.replicas, which Kafka 4.x describes as a cluster-wide dynamic default: its
# controller writes one when eligible leader replicas (KIP-966) are on, and rafka has none.
DESCRIBED = [
    "cleanup.policy", "compression.type", "max.message.bytes", "message.timestamp.type",
    "retention.bytes", "retention.ms", "segment.bytes", "segment.ms", "no.such.config",
]  # fmt: skip


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC, 2))
    raw.await_partitions(b, TOPIC, 2)
    records = raw.batch([(b"k", b"a"), (b"k", b"b"), (b"k", b"c")], ctx.base_ts)
    ctx.record("produce 3 records", raw.produce(b, TOPIC, 0, records))
    _partitions(ctx)
    _configs(ctx)
    _leader_epochs(ctx)
    _groups(ctx)
    _producers(ctx)
    _elections(ctx)
    _reads(ctx)


def _partition_count(bootstrap: str, topic: str) -> int:
    return len(raw.metadata(bootstrap, topic).partitions)


def _partitions(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("add partitions: 1 of 2", admin.create_partitions(b, TOPIC, 1))
    ctx.record("add partitions: 2 of 2", admin.create_partitions(b, TOPIC, 2))
    ctx.record("add partitions: unknown topic", admin.create_partitions(b, MISSING, 3))
    ctx.record("add partitions: 3, validate only",
               admin.create_partitions(b, TOPIC, 3, validate_only=True))
    # The add to 2 reaches Kafka's metadata after the controller answers: wait for it.
    ctx.record("partitions after validate only",
               raw.settled(lambda: _partition_count(b, TOPIC), lambda n: n == 2))
    ctx.record("add partitions: 4 with one assignment",
               admin.create_partitions(b, TOPIC, 4, assignments=[[1]]))
    ctx.record("add partitions: 3 on broker 99",
               admin.create_partitions(b, TOPIC, 3, assignments=[[99]]))
    ctx.record("add partitions: 3 on broker 1 twice",
               admin.create_partitions(b, TOPIC, 3, assignments=[[1, 1]]))
    ctx.record("add partitions: 3", admin.create_partitions(b, TOPIC, 3))
    raw.await_partitions(b, TOPIC, 3)
    ctx.record("partitions after adding", _partition_count(b, TOPIC))
    one = raw.batch([(b"k", b"new")], ctx.base_ts)
    ctx.record("produce to the new partition", raw.produce(b, TOPIC, 2, one))


def _configs(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("alter: unknown topic",
               admin.alter_configs(b, MISSING, [("retention.ms", SET, "1000")]))
    ctx.record("alter: unknown config",
               admin.alter_configs(b, TOPIC, [("no.such.config", SET, "1")]))
    ctx.record("alter: invalid value",
               admin.alter_configs(b, TOPIC, [("retention.ms", SET, "soon")]))
    ctx.record("alter: value out of range",
               admin.alter_configs(b, TOPIC, [("min.insync.replicas", SET, "0")]))
    ctx.record("alter: APPEND to a config that is not a list",
               admin.alter_configs(b, TOPIC, [("retention.ms", APPEND, "5")]))
    ctx.record("alter: the same config twice",
               admin.alter_configs(b, TOPIC, [("retention.ms", SET, "1000"),
                                              ("retention.ms", SET, "2000")]))
    ctx.record("alter: SET without a value",
               admin.alter_configs(b, TOPIC, [("retention.ms", SET, None)]))
    ctx.record("alter: DELETE a config never set",
               admin.alter_configs(b, TOPIC, [("segment.ms", DELETE, None)]))
    ctx.record("alter: retention.ms, validate only",
               admin.alter_configs(b, TOPIC, [("retention.ms", SET, "3600000")],
                                   validate_only=True))
    ctx.record("describe after validate only", admin.describe_configs(b, TOPIC, ["retention.ms"]))
    ctx.record("alter: retention.ms and max.message.bytes",
               admin.alter_configs(b, TOPIC, [("retention.ms", SET, "3600000"),
                                              ("max.message.bytes", SET, "2000000")]))
    ctx.record("alter: SUBTRACT compact from the default cleanup.policy",
               admin.alter_configs(b, TOPIC, [("cleanup.policy", SUBTRACT, "compact")]))
    ctx.record("alter: APPEND compact to cleanup.policy",
               admin.alter_configs(b, TOPIC, [("cleanup.policy", APPEND, "compact")]))
    # Kafka's brokers apply a topic's configs from the metadata log after the controller
    # answers the alter: wait (at most 5 s) for the describe to show the values just set.
    ctx.record("describe chosen configs", _settled_configs(b, DESCRIBED, {
        "cleanup.policy": "delete,compact", "retention.ms": "3600000",
        "max.message.bytes": "2000000"}))
    ctx.record("alter: DELETE retention.ms",
               admin.alter_configs(b, TOPIC, [("retention.ms", DELETE, None)]))
    ctx.record("describe retention.ms after DELETE",
               _settled_configs(b, ["retention.ms"], {"retention.ms": "604800000"}))
    ctx.record("describe an unknown topic", admin.describe_configs(b, MISSING, ["retention.ms"]))
    ctx.record("describe broker 99",
               admin.describe_configs(b, "99", ["log.retention.ms"], admin.BROKER_RESOURCE))
    ctx.record("alter broker: a static config",
               admin.alter_configs(b, "1", [("node.id", SET, "7")], admin.BROKER_RESOURCE))
    ctx.record("alter broker: an invalid value",
               admin.alter_configs(b, "1", [("log.retention.ms", SET, "x")],
                                   admin.BROKER_RESOURCE))


def _leader_epochs(ctx: Context) -> None:
    b = ctx.bootstrap
    # Leader epochs count elections, which the two brokers hold at different moments: ask
    # for the current one (from Metadata) and the next.
    epoch = raw.metadata(b, TOPIC).partitions[0].leader_epoch
    ctx.record("end offset of the current epoch",
               admin.offset_for_leader_epoch(b, TOPIC, 0, epoch))
    ctx.record("end offset of an epoch not reached yet",
               admin.offset_for_leader_epoch(b, TOPIC, 0, epoch + 1))
    ctx.record("current epoch ahead of the leader's",
               admin.offset_for_leader_epoch(b, TOPIC, 0, epoch, current_epoch=epoch + 1))
    ctx.record("end offset, partition 7", admin.offset_for_leader_epoch(b, TOPIC, 7, epoch))
    ctx.record("end offset, unknown topic", admin.offset_for_leader_epoch(b, MISSING, 0, 0))


def _groups(ctx: Context) -> None:
    b = ctx.bootstrap
    raw.await_coordinator(b, GROUP)
    ctx.record("commit", raw.offset_commit(b, GROUP, TOPIC, {0: 2, 1: 0, 2: 1}))
    ctx.record("describe a group with offsets only", admin.describe_group(b, GROUP))
    ctx.record("describe an unknown group", admin.describe_group(b, "no-such-group"))
    ctx.record("delete offsets of partitions 0, 9 and 2",
               admin.offset_delete(b, GROUP, TOPIC, [0, 9, 2]))
    ctx.record("delete offsets of an unknown topic",
               admin.offset_delete(b, GROUP, MISSING, [0]))
    ctx.record("delete offsets of an unknown group",
               admin.offset_delete(b, "no-such-group", TOPIC, [0]))
    ctx.record("OffsetFetch after deleting", raw.offset_fetch(b, GROUP, TOPIC, [0, 1]))
    ctx.record("delete the group", admin.delete_group(b, GROUP))
    ctx.record("delete it again", admin.delete_group(b, GROUP))
    ctx.record("OffsetFetch of the deleted group", raw.offset_fetch(b, GROUP, TOPIC, [0, 1]))


def _producers(ctx: Context) -> None:
    b = ctx.bootstrap
    idempotent = raw.batch([(b"k", b"i0"), (b"k", b"i1")], ctx.base_ts, producer_id=4242,
                           producer_epoch=3, base_sequence=0)
    ctx.record("idempotent produce", raw.produce(b, TOPIC, 1, idempotent))
    ctx.record("describe producers", _relative(admin.describe_producers(b, TOPIC, 1), ctx.base_ts))
    ctx.record("describe producers of an idle partition", admin.describe_producers(b, TOPIC, 2))
    ctx.record("describe producers, partition 7", admin.describe_producers(b, TOPIC, 7))
    ctx.record("describe producers, unknown topic", admin.describe_producers(b, MISSING, 0))


def _relative(partition: Any, base_ts: int) -> dict[str, Any]:
    """The producers' last timestamps relative to the run's base (a record's timestamp)."""
    return {
        "error_code": partition.error_code,
        "active_producers": [
            {
                "producer_epoch": p.producer_epoch,
                "last_sequence": p.last_sequence,
                "last_timestamp": p.last_timestamp - base_ts,
                "coordinator_epoch": p.coordinator_epoch,
                "current_txn_start_offset": p.current_txn_start_offset,
            }
            for p in partition.active_producers
        ],
    }


def _elections(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("preferred election", admin.elect_leaders(b, TOPIC, [0, 1], PREFERRED))
    ctx.record("unclean election", admin.elect_leaders(b, TOPIC, [0], UNCLEAN))
    ctx.record("preferred election, partition 7", admin.elect_leaders(b, TOPIC, [7], PREFERRED))
    ctx.record("preferred election, unknown topic",
               admin.elect_leaders(b, MISSING, [0], PREFERRED))


def _reads(ctx: Context) -> None:
    b = ctx.bootstrap
    # The answer to the request that creates it differs: Kafka creates the topic through its
    # controller after answering (UNKNOWN_TOPIC_OR_PARTITION), rafka before (the topic).
    raw.metadata(b, "auto-created", auto_create=True)
    raw.await_partitions(b, "auto-created", 1)
    ctx.record("metadata of the auto-created topic", raw.metadata(b, "auto-created"))
    ctx.record("metadata that would auto-create an invalid name",
               raw.metadata(b, "bad/name", auto_create=True))
    ctx.record("describe topic partitions", admin.describe_topic_partitions(b, TOPIC))
    ctx.record("describe topic partitions, 2 at a time",
               admin.describe_topic_partitions(b, TOPIC, limit=2))
    ctx.record("describe topic partitions, unknown topic",
               admin.describe_topic_partitions(b, MISSING))
    ctx.record("list groups", admin.list_groups(b))
    raw.await_coordinator(b, "listed")
    ctx.record("commit for a listed group", raw.offset_commit(b, "listed", TOPIC, {0: 1}))
    ctx.record("list groups after a commit", admin.list_groups(b))
    ctx.record("list Empty groups", admin.list_groups(b, states=("Empty",)))
    ctx.record("list Stable groups", admin.list_groups(b, states=("Stable",)))
    ctx.record("list consumer-type groups", admin.list_groups(b, types=("consumer",)))
    ctx.record("list classic-type groups", admin.list_groups(b, types=("classic",)))
    ctx.record("find the coordinator of an unknown transactional id",
               admin.find_coordinator(b, "no-such-txn", 1).error_code in {0, 15})
    admin.await_transaction_coordinator(b, "no-such-txn")
    ctx.record("describe an unknown transactional id",
               admin.describe_transaction(b, "no-such-txn"))
    ctx.record("list transactions", admin.list_transactions(b))


def _settled_configs(b: str, keys: list[str], values: dict[str, str]) -> Any:
    def shows(answer: Any) -> bool:
        found = {c.name: c.value for c in answer["configs"]}
        return all(found.get(k) == v for k, v in values.items())

    return raw.settled(lambda: admin.describe_configs(b, TOPIC, keys), shows)
