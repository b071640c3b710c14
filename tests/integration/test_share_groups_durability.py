"""Share-partition state survives a crash (issue 20, done-when 2, single node): two Java
KafkaShareConsumers consume 10,000 records while the broker is killed with SIGKILL and
restarted on the same log directory. The state is in `__share_group_state`, and an
acknowledgement is answered only once its record is committed, so:

* no record whose acknowledgement the broker confirmed before the kill (ACCEPT) is delivered
  again after the restart;
* a record whose RELEASE was confirmed comes back with its delivery count raised (2+), never
  with a fresh count; delivery counts of one record never go backwards;
* no record is lost: every record is accepted, which the durable state shows at the end (its
  start offset past the last record, ReadShareGroupState).

An acknowledgement the kill cut off fails on the client ("ack-failed", a disconnect) whether
or not the broker had committed it: such a record is either delivered again after the restart
(the write was lost) or not (it was accepted), as with Kafka. The consumers' confirmed
acceptances plus those cut off therefore cover every record, and the durable state decides.

Consumers report confirmed acknowledgements through their AcknowledgementCommitCallback
("acked OFFSET/KIND"); values equal offsets here (one producer, one partition, from 0).
Membership and share sessions are in memory: the consumers join again after the restart.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from cluster import wait_until
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.read_share_group_state.v0.request import (
    PartitionData,
    ReadShareGroupStateRequest,
    ReadStateData,
)
from kio.schema.read_share_group_state.v0.response import ReadShareGroupStateResponse
from raw_client import RawClient
from test_share_groups_java import GROUP, TOPIC, ShareMember, produce, share_classpath
from test_share_groups_raw import acquired, find_coordinator, heartbeat, share_fetch

from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(300)

RECORDS = 10_000
RELEASE_MODULUS = 40
LOCK_MS = 3000
DELIVERY_LIMIT = 5  # group.share.delivery.count.limit's default


def confirmed(member: ShareMember) -> list[tuple[int, str]]:
    """(offset, A or R) of each acknowledgement the broker confirmed, in order."""
    out = []
    for line in list(member.output):
        if line.startswith("acked "):
            for token in line.split()[1:]:
                offset, _, kind = token.partition("/")
                out.append((int(offset), kind))
    return out


def cut_off(member: ShareMember) -> set[int]:
    """Offsets of acknowledgements that failed in transport (the kill): the broker may or
    may not have committed them. The Java client reports a ShareAcknowledge cut off as a
    DisconnectException and a ShareFetch carrying acknowledgements as UNKNOWN_SERVER_ERROR
    (Errors.forException of the disconnect). Any other failure is the test's failure."""
    out: set[int] = set()
    for line in list(member.output):
        if line.startswith("ack-failed "):
            assert "DisconnectException" in line or "UnknownServerException" in line, line
            out |= {int(o) for o in re.findall(r"\d+", line.partition("=[")[2])}
    return out


def durable_state(client: RawClient, topic_id: uuid.UUID, group: str = GROUP) -> Any:
    """The share partition's durable state, as ReadShareGroupState (84) answers it (where the
    key's `__share_group_state` partition is led; NOT_COORDINATOR elsewhere)."""
    response = client.request(
        ReadShareGroupStateRequest(
            group_id=group,
            topics=(
                ReadStateData(
                    topic_id=topic_id, partitions=(PartitionData(partition=0, leader_epoch=-1),)
                ),
            ),
        ),
        ReadShareGroupStateResponse,
    )
    (result,) = response.results
    (partition,) = result.partitions
    return partition


def durable_start(addresses: list[str], topic_id: uuid.UUID, group: str = GROUP) -> int:
    """The durable share-partition start offset, from whichever of `addresses` coordinates
    it (-1 while none can say)."""
    for address in addresses:
        try:
            with RawClient(address) as client:
                state = durable_state(client, topic_id, group)
        except OSError:
            continue
        if state.error_code == ErrorCode.none:
            return state.start_offset
    return -1


def check_no_loss_or_redelivery(
    members: list[ShareMember],
    records: int,
    accepted_before: set[int],
    released_before: set[int],
    marks: list[int],
) -> None:
    """Done-when 2's claims, once the durable start offset is past the last record."""
    accepted = {o for m in members for o, kind in confirmed(m) if kind == "A"}
    uncertain = set().union(*(cut_off(m) for m in members))
    # None lost: every record was accepted, or its acknowledgement was cut off by the kill and
    # the durable state (start offset past every record) says it was committed.
    assert accepted | uncertain == set(range(records)), sorted(
        set(range(records)) - accepted - uncertain
    )[:20]
    deliveries = [d for m in members for d in m.snapshot()]
    # Nothing was archived instead of accepted: no record came near the delivery limit.
    assert max(d for _, d, _ in deliveries) < DELIVERY_LIMIT - 1
    after = [d for m, mark in zip(members, marks, strict=True) for d in m.snapshot()[mark:]]
    again = sorted({value for value, _, _ in after} & accepted_before)
    assert not again, f"accepted before the kill, delivered again: {again[:20]}"
    assert after, "nothing was delivered after the restart"
    # A confirmed release is durable: the record comes back with its count raised.
    fresh = sorted(v for v, d, _ in after if v in released_before and d < 2)
    assert not fresh, f"released before the kill, delivered afresh: {fresh[:20]}"
    # Per consumer, one record's delivery counts never go backwards.
    for member in members:
        last: dict[int, int] = {}
        for value, delivery, _ in member.snapshot():
            assert delivery >= last.get(value, 0), (member.name, value, delivery, last[value])
            last[value] = delivery
    print(
        f"accepted before the kill {len(accepted_before)}, released {len(released_before)}, "
        f"deliveries after {len(after)}, acknowledgements cut off {len(uncertain)}"
    )


def test_share_state_survives_kill_9(broker_factory) -> None:
    classpath = share_classpath()
    broker = broker_factory(
        **{
            "group.share.record.lock.duration.ms": str(LOCK_MS),
            "group.share.heartbeat.interval.ms": "500",
        }
    ).start()
    bootstrap = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    with RawClient(bootstrap) as client:
        # The share-partition start offset (latest) is set, and persisted, before producing.
        find_coordinator(client)
        joined = heartbeat(client, "init", 0, (TOPIC,))
        topic_id = joined.assignment.topic_partitions[0].topic_id
        assert acquired(share_fetch(client, "init", 0, topic_id)) == []
        assert heartbeat(client, "init", -1).error_code == ErrorCode.none
    produce(bootstrap, range(RECORDS), 1000)

    members = [
        ShareMember("c1", bootstrap, classpath, "accept", str(RELEASE_MODULUS)),
        ShareMember("c2", bootstrap, classpath, "accept", str(RELEASE_MODULUS)),
    ]
    try:

        def accepted() -> set[int]:
            return {o for m in members for o, kind in confirmed(m) if kind == "A"}

        wait_until(
            lambda: len(accepted()) >= RECORDS // 3,
            120,
            f"a third of the records accepted ({len(accepted())}; "
            f"{[m.output[-3:] for m in members]})",
        )
        broker.kill()
        accepted_before = accepted()
        released_before = {o for m in members for o, kind in confirmed(m) if kind == "R"}
        marks = [len(m.snapshot()) for m in members]
        broker.start()

        wait_until(
            lambda: durable_start([bootstrap], topic_id) == RECORDS,
            120,
            f"every record acknowledged durably ({len(accepted())} of {RECORDS} confirmed; "
            f"{[m.output[-3:] for m in members]})",
        )
        for member in members:
            member.finish()
    except AssertionError:
        # What the broker warned of and what the consumers said besides acknowledgements.
        print("\n".join(line for line in broker.log_lines if '"error"' in line or "warn" in line))
        for m in members:
            print(m.name, [line[:300] for line in m.output if not line.startswith("acked")][-8:])
        raise
    finally:
        for member in members:
            member.kill()

    check_no_loss_or_redelivery(members, RECORDS, accepted_before, released_before, marks)
