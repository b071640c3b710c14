"""(g) Consumer-protocol commits at a lagging member epoch (Kafka 4.3, KIP-1251): two members
share a topic through raw ConsumerGroupHeartbeats; the first one's commits at its older epoch
count for the partitions it kept, not for one it gave up, and never at a newer epoch. Then a
transaction commits a librdkafka consumer-protocol member's offsets (TxnOffsetCommit). Last, the
rebalance timeout: -1 is "not given", 0 fences a member as soon as it is told to revoke."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import clients
import raw
from confluent_kafka import Consumer, Producer, TopicPartition
from context import Context
from kio.schema.consumer_group_heartbeat.v1 import request as hb_req
from kio.schema.consumer_group_heartbeat.v1.response import ConsumerGroupHeartbeatResponse
from kio.schema.offset_commit.v9 import request as commit_req
from kio.schema.offset_commit.v9.response import OffsetCommitResponse
from kio.static.primitive import i32Timedelta

TOPIC, GROUP, TXN_GROUP = "member-epochs", "epochs-group", "epochs-txn-group"
PARTITIONS = 4


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC, PARTITIONS))
    raw.await_partitions(b, TOPIC, PARTITIONS)
    raw.await_coordinator(b, GROUP)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    joined = _heartbeat(b, first, 0, subscribe=True)
    ctx.record("first joins", joined.error_code)
    topic_id = raw.metadata(b, TOPIC).topic_id
    given = _partitions(joined) or []
    e1, owned = _until(b, first, topic_id, joined.member_epoch, given, lambda r, o: len(o) == 4)
    ctx.record("second joins", _heartbeat(b, second, 0, subscribe=True).error_code)
    # The first member is told to give two partitions up, at its epoch, then moves on.
    revoking, kept = _until(b, first, topic_id, e1, owned, lambda r, o: len(o) == 2)
    ctx.record("first revokes at its epoch", revoking == e1)
    e2, kept = _until(b, first, topic_id, e1, kept, lambda r, o: r.member_epoch > e1)
    gone = sorted(set(range(PARTITIONS)) - set(kept))
    ctx.record("first keeps two at a newer epoch", (len(kept), e2 > e1))
    for name, epoch, partitions in (
        ("current epoch, kept partitions", e2, kept),
        ("older epoch, kept partitions", e1, kept),
        ("older epoch, one partition given up", e1, [*kept, gone[0]]),
        ("newer epoch", e2 + 1, kept),
        ("an epoch before any", e1 - 1, kept),
    ):
        ctx.record(f"commit: {name}", _commit(b, first, epoch, partitions))
    ctx.record("second leaves", _heartbeat(b, second, -1).error_code)
    e3, _ = _until(b, first, topic_id, e2, kept, lambda r, o: len(o) == PARTITIONS)
    ctx.record("first takes all at a newer epoch", e3 > e2)
    ctx.record("commit: lagging, partitions kept", _commit(b, first, e2, kept))
    ctx.record("commit: lagging, partitions that came later", _commit(b, first, e2, gone))
    ctx.record("first leaves", _heartbeat(b, first, -1).error_code)
    ctx.record("transaction with a consumer-protocol member's offsets", _transaction(b))
    for name, observed in _rebalance_timeouts(b, topic_id):
        ctx.record(name, observed)


def _rebalance_timeouts(b: str, topic_id: uuid.UUID) -> list[tuple[str, Any]]:
    """Only -1 means "no rebalance timeout given" (refused in a first heartbeat); 0 is a
    timeout, so a member told to revoke partitions is fenced as soon as it is told."""
    group = "epochs-timeout-group"
    raw.await_coordinator(b, group)
    unset = _heartbeat(b, str(uuid.uuid4()), 0, subscribe=True, group=group,
                       rebalance_timeout_ms=-1)
    hasty = str(uuid.uuid4())
    joined = _heartbeat(b, hasty, 0, subscribe=True, group=group, rebalance_timeout_ms=0)
    observed = [("first heartbeat, rebalance timeout -1", unset.error_code),
                ("first heartbeat, rebalance timeout 0", joined.error_code)]
    epoch, owned = _until(b, hasty, topic_id, joined.member_epoch, _partitions(joined) or [],
                          lambda r, o: len(o) == PARTITIONS, group)
    _heartbeat(b, str(uuid.uuid4()), 0, subscribe=True, group=group)

    def told_to_revoke() -> Any:
        answer = _heartbeat(b, hasty, epoch, owned=(topic_id, owned), group=group)
        shrunk = answer.error_code != 0 or len(_partitions(answer) or owned) < len(owned)
        return answer if shrunk else None

    told = raw.until(told_to_revoke, "the 0 ms member to be told to revoke", 20)
    observed.append(("0 ms member told to revoke", (told.error_code, len(_partitions(told) or []))))

    # Kafka fences from a timer task that races the next heartbeat, so ask until it refuses:
    # the observation is the refusal, not which of the two came first.
    def refused() -> Any:
        answer = _heartbeat(b, hasty, told.member_epoch, owned=(topic_id, owned), group=group)
        return answer.error_code or None

    observed.append(("0 ms member fenced, then heartbeats",
                     raw.until(refused, "the 0 ms member to be fenced", 20)))
    return observed


def _heartbeat(
    b: str, member: str, epoch: int, *, subscribe: bool = False,
    owned: tuple[uuid.UUID, list[int]] | None = None, group: str = GROUP,
    rebalance_timeout_ms: int | None = None,
) -> Any:
    if rebalance_timeout_ms is None:
        rebalance_timeout_ms = 30000 if subscribe else -1
    body = hb_req.ConsumerGroupHeartbeatRequest(
        group_id=group, member_id=member, member_epoch=epoch,
        subscribed_topic_names=(TOPIC,) if subscribe else None,
        rebalance_timeout=i32Timedelta.parse(timedelta(milliseconds=rebalance_timeout_ms)),
        topic_partitions=() if subscribe else None if owned is None else (
            hb_req.TopicPartitions(topic_id=owned[0], partitions=tuple(owned[1])),),
    )
    return raw.request(b, body, ConsumerGroupHeartbeatResponse)


def _until(b: str, member: str, topic_id: uuid.UUID, epoch: int, owned: list[int],
           done: Any, group: str = GROUP) -> tuple[int, list[int]]:
    """Heartbeat as `member`, taking what each answer assigns, until `done(answer, owned)`;
    returns the epoch and the partitions then."""
    state = {"epoch": epoch, "owned": owned}

    def step() -> tuple[int, list[int]] | None:
        answer = _heartbeat(
            b, member, state["epoch"], owned=(topic_id, state["owned"]), group=group)
        if answer.error_code != 0:
            raise AssertionError(f"heartbeat answered {answer.error_code}: {answer.error_message}")
        state["epoch"] = answer.member_epoch
        fresh = _partitions(answer)
        if fresh is not None:  # else unchanged
            state["owned"] = fresh
        return (state["epoch"], state["owned"]) if done(answer, state["owned"]) else None

    return raw.until(step, f"member {member} to reconcile", 20)


def _partitions(answer: Any) -> list[int] | None:
    if answer.assignment is None:
        return None
    return sorted(p for t in answer.assignment.topic_partitions for p in t.partitions)


def _commit(b: str, member: str, epoch: int, partitions: list[int]) -> list[int]:
    body = commit_req.OffsetCommitRequest(
        group_id=GROUP, generation_id_or_member_epoch=epoch, member_id=member,
        group_instance_id=None,
        topics=(commit_req.OffsetCommitRequestTopic(
            name=TOPIC,
            partitions=tuple(
                commit_req.OffsetCommitRequestPartition(
                    partition_index=p, committed_offset=1, committed_leader_epoch=-1,
                    committed_metadata=None)
                for p in partitions),
        ),),
    )
    response = raw.request(b, body, OffsetCommitResponse)
    return sorted({p.error_code for t in response.topics for p in t.partitions})


def _transaction(b: str) -> list[tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": b, "group.id": TXN_GROUP,
                         "group.protocol": "consumer", "enable.auto.commit": False,
                         **clients.QUIET})
    producer = Producer({"bootstrap.servers": b, "transactional.id": "epochs-txn",
                         **clients.QUIET})
    try:
        consumer.subscribe([TOPIC])

        def assigned() -> bool | None:
            consumer.poll(0.1)  # the heartbeats run in the background; this serves callbacks
            return len(consumer.assignment()) == PARTITIONS or None

        raw.until(assigned, "the consumer's assignment", 30)
        producer.init_transactions(clients.LIMIT_S)
        producer.begin_transaction()
        offsets = [TopicPartition(TOPIC, p, 7) for p in range(PARTITIONS)]
        producer.send_offsets_to_transaction(
            offsets, consumer.consumer_group_metadata(), clients.LIMIT_S)
        producer.commit_transaction(clients.LIMIT_S)
        committed = consumer.committed(
            [TopicPartition(TOPIC, p) for p in range(PARTITIONS)], clients.LIMIT_S)
        return sorted((tp.partition, tp.offset) for tp in committed)
    finally:
        consumer.close()
