"""(n) Topics created, described and deleted the ways tools do: defaults (-1), replica
assignments, validate_only, names at the limits, Metadata by id and for every topic, and
deletes by id."""

from __future__ import annotations

import uuid

import raw
import raw_topics as topics
from context import Context

TOPIC = "topics"


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create with the broker's defaults (-1, -1)", raw.create_topic(b, TOPIC, -1, -1))
    raw.await_partitions(b, TOPIC, 1)
    ctx.record("create, validate only", raw.create_topic(b, "validated", 3, validate_only=True))
    ctx.record("metadata after validate only", topics.metadata(b, ["validated"]))
    ctx.record("create with an assignment",
               raw.create_topic(b, "assigned", -1, -1, assignments={0: [1], 1: [1]}))
    ctx.record("create with an assignment and a partition count",
               raw.create_topic(b, "both", 2, -1, assignments={0: [1], 1: [1]}))
    ctx.record("create with an assignment skipping partition 1",
               raw.create_topic(b, "gap", -1, -1, assignments={0: [1], 2: [1]}))
    ctx.record("create with an assignment to broker 7",
               raw.create_topic(b, "far", -1, -1, assignments={0: [7]}))
    ctx.record("create with a replica listed twice",
               raw.create_topic(b, "twice", -1, -1, assignments={0: [1, 1]}))
    ctx.record("create named with 249 characters", raw.create_topic(b, "n" * 249))
    ctx.record("create named with 250 characters", raw.create_topic(b, "n" * 250))
    ctx.record("create named '.'", raw.create_topic(b, "."))
    ctx.record("create named '..'", raw.create_topic(b, ".."))
    ctx.record("create a name colliding with one (a.b and a_b)",
               [raw.create_topic(b, "a.b"), raw.create_topic(b, "a_b")])
    ctx.record("create __consumer_offsets", raw.create_topic(b, "__consumer_offsets"))
    raw.await_partitions(b, "assigned", 2)
    ctx.record("metadata of an assigned topic", topics.metadata(b, ["assigned"]))
    topic_id = raw.metadata(b, TOPIC).topic_id
    ctx.record("metadata by topic id", topics.metadata(b, ids=[topic_id]))
    ctx.record("metadata by an unknown topic id", topics.metadata(b, ids=[uuid.uuid4()]))
    ctx.record("metadata of an invalid name", topics.metadata(b, ["bad/name"]))
    ctx.record("metadata of no topics", topics.metadata(b, []))
    everything = [t for t in topics.metadata(b) if not str(t["name"]).startswith("__")]
    ctx.record("metadata of every topic, internal ones left out", everything)
    ctx.record("delete by an unknown topic id", topics.delete_by_id(b, uuid.uuid4()))
    ctx.record("delete by topic id", topics.delete_by_id(b, topic_id))
    ctx.record("metadata after deleting by id", topics.metadata(b, [TOPIC]))
