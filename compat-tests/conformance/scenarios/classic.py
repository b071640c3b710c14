"""(i) The classic group protocol's answers to a member that gets things wrong: bad session
timeouts, unknown members, stale generations, foreign protocols, commits from outside the group,
and the group's state through join, sync, leave and rejoin."""

from __future__ import annotations

import raw
import raw_admin as admin
import raw_groups as groups
from context import Context
from raw_groups import Members, subscription

TOPIC = "classic"
GROUP = "classic-group"
RANGE = (("range", subscription(TOPIC)),)


def run(ctx: Context) -> None:
    groups.prepare(ctx, TOPIC, GROUP)
    members = Members()
    _refused_joins(ctx, members)
    member, generation = _join_and_sync(ctx, members)
    _stale_and_foreign(ctx, members, member, generation)
    _commits(ctx, member, generation)
    _leave_and_rejoin(ctx, members, member, generation)


def _refused_joins(ctx: Context, members: Members) -> None:
    b = ctx.bootstrap
    ctx.record("join with an empty group id",
               groups.join(b, members, "", protocols=RANGE)[2])
    ctx.record("join with a 1 ms session timeout",
               groups.join(b, members, GROUP, protocols=RANGE, session_ms=1)[2])
    ctx.record("join with a 31 minute session timeout",
               groups.join(b, members, GROUP, protocols=RANGE, session_ms=31 * 60_000)[2])
    ctx.record("join a new group as an unknown member",
               groups.join(b, members, GROUP, "ghost", protocols=RANGE)[2])
    ctx.record("join without protocols", groups.join(b, members, GROUP)[2])
    # Kafka's join that creates the group answers before the group's record commits, and
    # DescribeGroups reads what has committed: wait for the group to show (at most 5 s).
    ctx.record("describe the group after refused joins", _settled(b))


def _join_and_sync(ctx: Context, members: Members) -> tuple[str, int]:
    b = ctx.bootstrap
    member, _, answer = groups.join(b, members, GROUP, protocols=RANGE)
    ctx.record("join without a member id", answer)
    member, generation, answer = groups.join(b, members, GROUP, member, protocols=RANGE)
    ctx.record("join with the member id", answer)
    ctx.record("heartbeat before the sync", groups.heartbeat(b, GROUP, member, generation))
    ctx.record("sync at another generation", groups.sync(b, GROUP, member, generation + 5))
    ctx.record("sync as an unknown member", groups.sync(b, GROUP, "ghost", generation))
    ctx.record("sync with another protocol type",
               groups.sync(b, GROUP, member, generation, protocol_type="other"))
    ctx.record("sync with another protocol name",
               groups.sync(b, GROUP, member, generation, protocol_name="roundrobin"))
    ctx.record("sync as the leader",
               groups.sync(b, GROUP, member, generation, {member: b"assigned"}))
    ctx.record("describe the stable group", admin.describe_group(b, GROUP))
    return member, generation


def _stale_and_foreign(ctx: Context, members: Members, member: str, generation: int) -> None:
    b = ctx.bootstrap
    ctx.record("heartbeat", groups.heartbeat(b, GROUP, member, generation))
    ctx.record("heartbeat at another generation",
               groups.heartbeat(b, GROUP, member, generation + 5))
    ctx.record("heartbeat as an unknown member", groups.heartbeat(b, GROUP, "ghost", generation))
    ctx.record("heartbeat to an unknown group",
               groups.heartbeat(b, "no-such-group", member, generation))
    ctx.record("join with another protocol type",
               groups.join(b, members, GROUP, protocol_type="other", protocols=RANGE)[2])
    ctx.record("join with no protocol in common",
               groups.join(b, members, GROUP, member,
                           protocols=(("roundrobin", subscription(TOPIC)),))[2])
    ctx.record("delete the group while it has a member", admin.delete_group(b, GROUP))


def _commits(ctx: Context, member: str, generation: int) -> None:
    b = ctx.bootstrap
    ctx.record("commit as the member",
               groups.commit(b, GROUP, member, generation, TOPIC, 1))
    ctx.record("commit at another generation",
               groups.commit(b, GROUP, member, generation + 5, TOPIC, 2))
    ctx.record("commit as an unknown member",
               groups.commit(b, GROUP, "ghost", generation, TOPIC, 3))
    ctx.record("simple commit to a group with a member",
               [p.error_code for p in raw.offset_commit(b, GROUP, TOPIC, {0: 4})])
    ctx.record("OffsetFetch after the commits", raw.offset_fetch(b, GROUP, TOPIC, [0]))


def _leave_and_rejoin(ctx: Context, members: Members, member: str, generation: int) -> None:
    b = ctx.bootstrap
    ctx.record("leave as an unknown member", groups.leave(b, members, GROUP, ["ghost"]))
    ctx.record("leave", groups.leave(b, members, GROUP, [member]))
    ctx.record("describe the group after leaving", admin.describe_group(b, GROUP))
    ctx.record("heartbeat after leaving", groups.heartbeat(b, GROUP, member, generation))
    ctx.record("simple commit to the empty group",
               [p.error_code for p in raw.offset_commit(b, GROUP, TOPIC, {0: 5})])
    again, _, answer = groups.join(b, members, GROUP, protocols=RANGE)
    again, generation, answer = groups.join(b, members, GROUP, again, protocols=RANGE)
    ctx.record("join again", answer)
    ctx.record("sync again", groups.sync(b, GROUP, again, generation, {again: b"again"}))
    ctx.record("leave again", groups.leave(b, members, GROUP, [again]))


def _settled(bootstrap: str) -> dict:
    return raw.settled(lambda: admin.describe_group(bootstrap, GROUP),
                       lambda answer: answer["group_state"] != "Dead")
