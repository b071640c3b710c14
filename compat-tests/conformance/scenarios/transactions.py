"""(d) Transactions: commit, abort, an open transaction, commit with offsets; the markers take
offsets, the LSO holds at an open transaction's first offset, read_committed skips the abort."""

from __future__ import annotations

import clients
import raw
from confluent_kafka import Producer, TopicPartition
from context import Context

TOPIC = "transactions"
GROUP = "txn-offsets-group"
LIMIT = clients.LIMIT_S


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC))
    raw.await_partitions(b, TOPIC, 1)
    producer = Producer({"bootstrap.servers": b, "transactional.id": "conformance-txn",
                         "linger.ms": 5, **clients.QUIET})
    producer.init_transactions(LIMIT)

    def transaction(name: str, count: int, end: str) -> None:
        producer.begin_transaction()
        items = [(0, None, b"%s-%d" % (name.encode(), i)) for i in range(count)]
        ctx.record(f"{name}: delivery offsets", clients.produce(b, TOPIC, items, producer))
        ctx.record(f"{name}: watermarks while open", raw.watermarks(b, TOPIC))
        if end == "commit":
            producer.commit_transaction(LIMIT)
        elif end == "abort":
            producer.abort_transaction(LIMIT)
        raw.await_stable(b, TOPIC)
        ctx.record(f"{name}: watermarks after {end}", raw.watermarks(b, TOPIC))

    transaction("txn1", 3, "commit")
    transaction("txn2", 2, "abort")
    transaction("txn3", 2, "commit")
    # One with the consumer group's offsets in it (TxnOffsetCommit), committed.
    producer.begin_transaction()
    ctx.record("txn4: delivery offsets", clients.produce(b, TOPIC, [(0, None, b"t4")], producer))
    member = clients.consumer(b, GROUP)
    try:
        producer.send_offsets_to_transaction(
            [TopicPartition(TOPIC, 0, 3)], member.consumer_group_metadata(), LIMIT
        )
    finally:
        member.close()
    ctx.record("txn4: OffsetFetch before commit", raw.offset_fetch(b, GROUP, TOPIC, [0]))
    producer.commit_transaction(LIMIT)
    raw.await_stable(b, TOPIC)
    ctx.record("txn4: watermarks after commit", raw.watermarks(b, TOPIC))
    visible = raw.until(lambda: _committed(b), "the transaction's offsets", 10)
    ctx.record("txn4: OffsetFetch after commit", visible)
    # Still open at the end: the LSO stays at its first offset.
    producer.begin_transaction()
    ctx.record("txn5: delivery offsets", clients.produce(b, TOPIC, [(0, None, b"t5")], producer))
    ctx.record("txn5: watermarks while open", raw.watermarks(b, TOPIC))
    ctx.record("read_committed consumed offsets", clients.consume_offsets(
        b, TOPIC, 0, 0, **{"isolation.level": "read_committed"}))
    ctx.record("read_uncommitted consumed offsets", clients.consume_offsets(
        b, TOPIC, 0, 0, **{"isolation.level": "read_uncommitted"}))
    ctx.record("kafka-python read_committed offsets", clients.kp_consume_offsets(
        b, TOPIC, 0, raw.watermarks(b, TOPIC)["lso"], isolation_level="read_committed"))
    ctx.record("fetch read_committed", raw.fetch(b, TOPIC, 0, 0, raw.READ_COMMITTED))
    ctx.record("fetch read_uncommitted", raw.fetch(b, TOPIC, 0, 0))
    producer.abort_transaction(LIMIT)
    raw.await_stable(b, TOPIC)
    ctx.record("txn5: watermarks after abort", raw.watermarks(b, TOPIC))
    ctx.record("fetch read_committed after txn5", raw.fetch(b, TOPIC, 0, 0, raw.READ_COMMITTED))


def _committed(bootstrap: str) -> object:
    """The group's offsets once the commit marker made them visible (written after EndTxn)."""
    answer = raw.offset_fetch(bootstrap, GROUP, TOPIC, [0])
    return answer if answer.topics[0].partitions[0].committed_offset >= 0 else None
