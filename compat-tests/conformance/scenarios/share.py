"""(m) Share groups (KIP-932) through raw requests: heartbeats a member gets wrong, a member's
share session acquiring, accepting, releasing and rejecting records, redelivery, acknowledging
what it does not hold, stale session epochs, and describing and leaving the group."""

from __future__ import annotations

import uuid
from typing import Any

import raw
import raw_share as share
from context import Context
from raw_client import RawClient
from raw_share import ACCEPT, REJECT, RELEASE

TOPIC = "share"
GROUP = "share-group"


class Session:
    """One member's share session, on its own connection (a session lives on one): each
    request takes the next epoch (0 opens it)."""

    def __init__(self, bootstrap: str, member: str, topic_id: uuid.UUID) -> None:
        self.bootstrap, self.member, self.topic_id = bootstrap, member, topic_id
        self.client = RawClient(bootstrap)
        self.epoch = 0

    def fetch(self, acks: share.Acks = ()) -> dict[str, Any]:  # type: ignore[assignment]
        answer = share.fetch(self.bootstrap, GROUP, self.member, self.epoch, self.topic_id, acks,
                             client=self.client)
        self.epoch += 1
        return answer

    def acknowledge(self, acks: share.Acks, epoch: int | None = None) -> dict[str, Any]:
        answer = share.acknowledge(self.bootstrap, GROUP, self.member,
                                   self.epoch if epoch is None else epoch, self.topic_id, acks,
                                   client=self.client)
        if epoch is None:
            self.epoch += 1
        return answer


def _relative(answer: dict[str, Any], base: int) -> dict[str, Any]:
    """Acquired ranges from the first record produced after warming up; the records' bytes
    left out (their offsets are the acquired ones)."""
    return {
        "error_code": answer["error_code"],
        "partitions": [
            {**p, "records": None,
             "acquired": [(f - base, last - base, count) for f, last, count in p["acquired"]]}
            for p in answer["partitions"]
        ],
    }  # fmt: skip


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC))
    raw.await_partitions(b, TOPIC, 1)
    raw.await_coordinator(b, GROUP)
    member = str(uuid.uuid4())
    for name, answer in [
        ("empty group id", share.heartbeat(b, "", member, 0, (TOPIC,))),
        ("empty member id", share.heartbeat(b, GROUP, "", 0, (TOPIC,))),
        ("first heartbeat without topics", share.heartbeat(b, GROUP, member, 0)),
        ("unknown member at epoch 5", share.heartbeat(b, GROUP, member, 5)),
        ("leave as an unknown member", share.heartbeat(b, GROUP, member, -1)),
    ]:
        ctx.record(f"heartbeat: {name}", answer)
    ctx.record("describe an unknown group", share.describe(b, GROUP))
    joined = raw.until(
        lambda: (answer := share.heartbeat(b, GROUP, member, 0, (TOPIC,)))["error_code"] == 0
        and answer or None,
        "a share group member",
    )
    ctx.record("join", joined["error_code"])
    # Kafka assigns a partition once its share-group state is initialized, a heartbeat or two
    # later (and at a new group epoch); rafka at once. Heartbeat until it is assigned.
    state = {"epoch": joined["member_epoch"], "assigned": joined["assigned"]}

    def assigned() -> list[int] | None:
        answer = share.heartbeat(b, GROUP, member, state["epoch"])
        if answer["error_code"] != 0:
            raise AssertionError(f"heartbeat answered {answer}")
        state["epoch"] = answer["member_epoch"]
        if answer["assigned"] is not None:
            state["assigned"] = answer["assigned"]
        return state["assigned"] or None

    ctx.record("assigned", raw.until(assigned, "an assigned partition", 30))
    topic_id = raw.metadata(b, TOPIC).topic_id
    session = Session(b, member, topic_id)
    base = _warm_up(ctx, session)
    five = raw.batch([(b"k", f"v{i}".encode()) for i in range(5)], ctx.base_ts)
    raw.produce(b, TOPIC, 0, five)
    ctx.record("fetch five records", _relative(session.fetch(), base))
    ctx.record("accept two, release one, reject one", session.acknowledge(
        [(base, base + 1, ACCEPT), (base + 2, base + 2, RELEASE), (base + 3, base + 3, REJECT)]))
    ctx.record("fetch again: the released one", _relative(session.fetch(), base))
    ctx.record("acknowledge a rejected record",
               session.acknowledge([(base + 3, base + 3, ACCEPT)]))
    ctx.record("acknowledge at a wrong session epoch",
               session.acknowledge([(base + 4, base + 4, ACCEPT)], epoch=session.epoch + 5))
    ctx.record("fetch as an unknown member",
               _relative(share.fetch(b, GROUP, str(uuid.uuid4()), 1, topic_id), base))
    ctx.record("fetch and accept the rest",
               _relative(session.fetch([(base + 2, base + 2, ACCEPT),
                                        (base + 4, base + 4, ACCEPT)]), base))
    ctx.record("describe the group", _epochless(share.describe(b, GROUP)))
    session.client.close()
    ctx.record("leave", share.heartbeat(b, GROUP, member, -1))
    ctx.record("describe after leaving", _epochless(share.describe(b, GROUP)))


def _warm_up(ctx: Context, session: Session) -> int:
    """A share partition starts at its end (share.auto.offset.reset=latest) once initialized,
    which a first fetch starts: probe records until one is acquired, accept them, and return
    the offset the next record will take. Not observed: when each broker initializes differs."""
    b = ctx.bootstrap

    def acquired() -> int | None:
        raw.produce(b, TOPIC, 0, raw.batch([(b"probe", b"p")], ctx.base_ts))
        answer = session.fetch()
        ranges = [r for p in answer["partitions"] for r in p["acquired"]]
        if not ranges:
            return None
        session.acknowledge([(first, last, ACCEPT) for first, last, _ in ranges])
        return max(last for _, last, _ in ranges) + 1

    return raw.until(acquired, "a share partition acquiring records", 30)


def _epochless(described: dict[str, Any]) -> dict[str, Any]:
    """The epochs as how they relate: Kafka's assignment after initialization takes one more."""
    group_epoch, assignment_epoch = described.pop("group_epoch"), described.pop("assignment_epoch")
    members = [(epoch == group_epoch, *rest) for epoch, *rest in described.pop("members")]
    return {**described, "assigned at the group epoch": assignment_epoch == group_epoch,
            "members at the group epoch": members}
