"""(q) Static membership in the classic protocol (KIP-345): a member with a group.instance.id
joins without MEMBER_ID_REQUIRED, a restarted one takes its place under a new member id without
a rebalance (its old id is fenced), and requests that name the instance under the wrong member
id are refused (Kafka's validateMember: the named instance must be this member's); leaving by
instance id. One member at a time: a second one would hold the JoinGroup of the first until it
rejoins."""

from __future__ import annotations

import raw_admin as admin
import raw_groups as groups
from context import Context
from raw_groups import Members, subscription

TOPIC = "static"
GROUP = "static-group"
RANGE = (("range", subscription(TOPIC)),)
ROUNDROBIN = (("roundrobin", subscription(TOPIC)),)
INSTANCE = "instance-1"


def run(ctx: Context) -> None:
    b = groups.prepare(ctx, TOPIC, GROUP)
    members = Members()
    first, generation, answer = groups.join(b, members, GROUP, protocols=RANGE,
                                            instance=INSTANCE)
    ctx.record("a static member's first join", answer)
    ctx.record("sync as the leader", groups.sync(b, GROUP, first, generation,
                                                 {first: b"assigned"}, instance=INSTANCE))
    ctx.record("heartbeat", groups.heartbeat(b, GROUP, first, generation, INSTANCE))
    ctx.record("heartbeat without the instance id",
               groups.heartbeat(b, GROUP, first, generation))
    ctx.record("heartbeat naming another instance",
               groups.heartbeat(b, GROUP, first, generation, "instance-2"))
    ctx.record("commit", groups.commit(b, GROUP, first, generation, TOPIC, 1, INSTANCE))

    # The member restarts: it joins again under its instance id, without a member id.
    second, generation2, answer = groups.join(b, members, GROUP, protocols=RANGE,
                                              instance=INSTANCE)
    ctx.record("the restarted member joins", (answer, generation2 == generation))
    ctx.record("the old member id heartbeats",
               groups.heartbeat(b, GROUP, first, generation, INSTANCE))
    ctx.record("the old member id syncs", groups.sync(b, GROUP, first, generation,
                                                      instance=INSTANCE))
    ctx.record("the old member id commits",
               groups.commit(b, GROUP, first, generation, TOPIC, 2, INSTANCE))
    ctx.record("the new member id syncs",
               groups.sync(b, GROUP, second, generation2, instance=INSTANCE))
    ctx.record("the new member id heartbeats",
               groups.heartbeat(b, GROUP, second, generation2, INSTANCE))
    ctx.record("join under the instance with an unknown member id",
               groups.join(b, members, GROUP, "ghost", protocols=RANGE, instance=INSTANCE)[2])
    ctx.record("join under the instance with the old member id",
               groups.join(b, members, GROUP, first, protocols=RANGE, instance=INSTANCE)[2])
    ctx.record("describe the group", admin.describe_group(b, GROUP))

    # Leaving: by the wrong member id, by an unknown instance, then by instance id alone.
    ctx.record("leave under the instance with the old member id",
               groups.leave(b, members, GROUP, [first], [INSTANCE]))
    ctx.record("leave as an unknown instance",
               groups.leave(b, members, GROUP, [""], ["instance-9"]))
    ctx.record("leave by instance id alone", groups.leave(b, members, GROUP, [""], [INSTANCE]))
    ctx.record("describe the group after leaving", admin.describe_group(b, GROUP))
    ctx.record("the member heartbeats after leaving",
               groups.heartbeat(b, GROUP, second, generation2, INSTANCE))

    # Back after leaving: a new generation. Then a restart offering only a protocol the group
    # does not use: refused (the group has one member, but its protocol stands).
    third, generation3, answer = groups.join(b, members, GROUP, protocols=RANGE,
                                             instance=INSTANCE)
    ctx.record("join again after leaving", (answer, generation3 > generation2))
    ctx.record("sync again", groups.sync(b, GROUP, third, generation3, {third: b"again"},
                                         instance=INSTANCE))
    ctx.record("a restart offering another protocol only", groups.join(
        b, members, GROUP, protocols=ROUNDROBIN, instance=INSTANCE)[2])
    ctx.record("leave at the end", groups.leave(b, members, GROUP, [""], [INSTANCE]))
