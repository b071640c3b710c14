"""(l) ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848) refusing what a member gets
wrong: missing fields in a first heartbeat, unknown assignors, bad regular expressions, members
and epochs the group does not know, a group of the other protocol; and what describing answers.
Then static members (group.instance.id): a static leave (epoch -2) keeps the member's place for
its instance, which a new member id takes over; an instance still held is refused."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import raw
import raw_groups as groups
from context import Context
from kio.schema.consumer_group_describe.v1.request import ConsumerGroupDescribeRequest
from kio.schema.consumer_group_describe.v1.response import ConsumerGroupDescribeResponse
from kio.schema.consumer_group_heartbeat.v1 import request as hb_req
from kio.schema.consumer_group_heartbeat.v1.response import ConsumerGroupHeartbeatResponse
from kio.static.primitive import i32Timedelta
from raw_groups import Members, subscription

TOPIC = "consumer-errors"
GROUP = "consumer-errors-group"
CLASSIC = "consumer-errors-classic"
STATIC = "consumer-errors-static"
UNSET: Any = object()


def _heartbeat(
    b: str,
    member: str,
    epoch: int,
    *,
    group: str = GROUP,
    topics: Any = (TOPIC,),
    regex: str | None = None,
    assignor: str | None = None,
    rebalance_ms: int = 30_000,
    owned: Any = (),
    instance: str | None = None,
) -> Any:
    body = hb_req.ConsumerGroupHeartbeatRequest(
        group_id=group, member_id=member, member_epoch=epoch, instance_id=instance,
        subscribed_topic_names=topics, subscribed_topic_regex=regex, server_assignor=assignor,
        rebalance_timeout=i32Timedelta.parse(timedelta(milliseconds=rebalance_ms)),
        topic_partitions=owned,
    )  # fmt: skip
    answer = raw.request(b, body, ConsumerGroupHeartbeatResponse)
    return {
        "error_code": answer.error_code,
        "member_epoch": answer.member_epoch,
        # How many partitions: which ones follow the members' random ids.
        "assigned": None if answer.assignment is None else sum(
            len(t.partitions) for t in answer.assignment.topic_partitions),
    }  # fmt: skip


def _describe(b: str, group: str) -> Any:
    body = ConsumerGroupDescribeRequest(group_ids=(group,), include_authorized_operations=False)
    answer = raw.request(b, body, ConsumerGroupDescribeResponse).groups[0]
    return {
        **groups.modern_group(answer),
        "members": sorted(
            (m.member_epoch, tuple(m.subscribed_topic_names), m.subscribed_topic_regex,
             m.instance_id or "", m.rack_id or "", m.client_id, m.member_type,
             sum(len(t.partitions) for t in m.assignment.topic_partitions),
             sum(len(t.partitions) for t in m.target_assignment.topic_partitions))
            for m in answer.members
        ),  # fmt: skip
    }


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC, 2))
    raw.await_partitions(b, TOPIC, 2)
    raw.await_coordinator(b, GROUP)
    member = str(uuid.uuid4())
    for name, answer in [
        ("empty group id", _heartbeat(b, member, 0, group="")),
        ("empty member id", _heartbeat(b, "", 0)),
        ("first heartbeat without topics", _heartbeat(b, member, 0, topics=None)),
        ("first heartbeat without owned partitions", _heartbeat(b, member, 0, owned=None)),
        ("unknown assignor", _heartbeat(b, member, 0, assignor="no-such-assignor")),
        ("invalid regular expression", _heartbeat(b, member, 0, topics=None, regex="[")),
        ("negative epoch below -2", _heartbeat(b, member, -3)),
        ("unknown member at epoch 5", _heartbeat(b, member, 5)),
        ("leave as an unknown member", _heartbeat(b, member, -1)),
    ]:
        ctx.record(f"heartbeat: {name}", answer)
    ctx.record("describe after the refusals", _describe(b, GROUP))
    joined = _heartbeat(b, member, 0, assignor="range")
    ctx.record("join with the range assignor", joined)
    epoch = joined["member_epoch"]
    ctx.record("heartbeat at an epoch ahead", _heartbeat(b, member, epoch + 3, owned=None))
    ctx.record("heartbeat at the epoch", _heartbeat(b, member, epoch, owned=None))
    ctx.record("describe the group", _describe(b, GROUP))
    ctx.record("describe an unknown group", _describe(b, "no-such-group"))
    ctx.record("rejoin at epoch 0 with the same member id", _heartbeat(b, member, 0))
    ctx.record("leave", _heartbeat(b, member, -1, owned=None))
    ctx.record("describe after leaving", _describe(b, GROUP))

    raw.await_coordinator(b, CLASSIC)
    members = Members()
    classic_protocols = (("range", subscription(TOPIC)),)
    classic, _, _ = groups.join(b, members, CLASSIC, protocols=classic_protocols)
    classic, generation, _ = groups.join(b, members, CLASSIC, classic, protocols=classic_protocols)
    groups.sync(b, CLASSIC, classic, generation, {classic: b""})
    ctx.record("join a classic group of other clients",
               _heartbeat(b, str(uuid.uuid4()), 0, group=CLASSIC))
    ctx.record("describe a classic group", _describe(b, CLASSIC))
    _static(ctx)


def _static(ctx: Context) -> None:
    b = ctx.bootstrap
    raw.await_coordinator(b, STATIC)
    first, second, third, plain = (str(uuid.uuid4()) for _ in range(4))
    joined = _heartbeat(b, first, 0, group=STATIC, instance="i-1")
    ctx.record("static: join", joined)
    epoch = joined["member_epoch"]
    ctx.record("static: leave for now (epoch -2)",
               _heartbeat(b, first, -2, group=STATIC, instance="i-1", owned=None))
    ctx.record("static: describe after the static leave", _describe(b, STATIC))
    ctx.record("static: the old member id heartbeats",
               _heartbeat(b, first, epoch, group=STATIC, owned=None))
    ctx.record("static: another member id takes the instance over",
               _heartbeat(b, second, 0, group=STATIC, instance="i-1"))
    ctx.record("static: a third while the instance is held",
               _heartbeat(b, third, 0, group=STATIC, instance="i-1"))
    ctx.record("static: describe with the instance taken over", _describe(b, STATIC))
    ctx.record("static: leave for good (epoch -1)",
               _heartbeat(b, second, -1, group=STATIC, instance="i-1", owned=None))
    # Kafka 4.3 computes a group's target assignment at most once a second
    # (group.consumer.assignment.interval.ms; rafka at once): from here on, epochs and
    # assignments depend on how fast the steps run, so only the errors are compared.
    ctx.record("static: the third joins the instance now free",
               _heartbeat(b, third, 0, group=STATIC, instance="i-1")["error_code"])
    ctx.record("static: a member without an instance id joins",
               _heartbeat(b, plain, 0, group=STATIC)["error_code"])
    for name, answer in [
        ("epoch -2 without an instance id", _heartbeat(b, plain, -2, group=STATIC, owned=None)),
        ("an empty instance id", _heartbeat(b, plain, 0, group=STATIC, instance="")),
        ("epoch -2 under another member's instance id",
         _heartbeat(b, plain, -2, group=STATIC, instance="i-1", owned=None)),
    ]:
        ctx.record(f"static: {name}", answer)
    ctx.record("static: the members at the end", sorted(
        (m[3], m[6]) for m in _describe(b, STATIC)["members"]))
