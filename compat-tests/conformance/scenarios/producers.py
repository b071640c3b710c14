"""(k) Idempotent and transactional producers that get things wrong: duplicate and out-of-order
sequences, stale epochs, writes to partitions never added, transactions ended twice or at a
fenced epoch, timeouts above the broker's maximum (transactions v1 request versions)."""

from __future__ import annotations

import raw
import raw_admin as admin
import raw_txn as txn
from context import Context

TOPIC = "producers"
TXN = "conformance-txn"
GROUP = "producers-group"
MISSING = "no-such-topic"


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC, 2))
    raw.await_partitions(b, TOPIC, 2)
    _idempotent(ctx)
    admin.await_transaction_coordinator(b, TXN)
    raw.await_coordinator(b, GROUP)
    _transactional(ctx)


def _idempotent(ctx: Context) -> None:
    b = ctx.bootstrap
    # Kafka's producer id manager answers COORDINATOR_LOAD_IN_PROGRESS until it has a block.
    pid, epoch, answer = raw.until(
        lambda: (found := txn.init_producer_id(b, None))[0] >= 0 and found or None,
        "a producer id",
    )
    ctx.record("init an idempotent producer", answer)

    def send(sequence: int, producer_epoch: int = epoch, count: int = 2) -> object:
        values = [(b"k", f"s{sequence + i}".encode()) for i in range(count)]
        records = raw.batch(values, ctx.base_ts, producer_id=pid, producer_epoch=producer_epoch,
                            base_sequence=sequence)
        return raw.produce(b, TOPIC, 0, records)

    ctx.record("sequence 0", send(0))
    ctx.record("sequence 0 again (a retry)", send(0))
    ctx.record("sequence 5 (a gap)", send(5))
    ctx.record("sequence 2", send(2))
    ctx.record("sequence 1 (overlapping)", send(1))
    ctx.record("sequence 0 again, now older", send(0))
    ctx.record("a newer epoch at sequence 0", send(0, epoch + 1))
    ctx.record("the older epoch again", send(4, epoch))
    ctx.record("a newer epoch at sequence 3", send(3, epoch + 2))
    ctx.record("watermarks after the idempotent writes", raw.watermarks(b, TOPIC))


def _transactional(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("init with a timeout above the maximum",
               txn.init_producer_id(b, TXN, 3_600_001)[2])
    pid, epoch, answer = txn.init_producer_id(b, TXN)
    ctx.record("init a transactional producer", answer)
    producer = (pid, epoch)
    stale = (pid, epoch - 1)
    ahead = (pid, epoch + 1)

    def send(partition: int, sequence: int, producer_epoch: int = epoch) -> object:
        records = raw.batch([(b"t", f"t{sequence}".encode())], ctx.base_ts, producer_id=pid,
                            producer_epoch=producer_epoch, base_sequence=sequence,
                            is_transactional=True)
        return raw.produce(b, TOPIC, partition, records, transactional_id=TXN)

    ctx.record("commit with no transaction begun", txn.end_txn(b, TXN, producer, True))
    ctx.record("abort with no transaction begun", txn.end_txn(b, TXN, producer, False))
    ctx.record("write to a partition never added", send(1, 0))
    ctx.record("add an unknown topic's partition", txn.add_partitions(b, TXN, producer, MISSING,
                                                                      [0]))
    ctx.record("add partition 9 of 2", txn.add_partitions(b, TXN, producer, TOPIC, [9]))
    ctx.record("add a partition at a later epoch", txn.add_partitions(b, TXN, ahead, TOPIC, [0]))
    ctx.record("add a partition as another producer",
               txn.add_partitions(b, TXN, (pid + 1, epoch), TOPIC, [0]))
    ctx.record("add a partition for an unknown transactional id",
               txn.add_partitions(b, "no-such-txn", producer, TOPIC, [0]))
    ctx.record("add partition 0", txn.add_partitions(b, TXN, producer, TOPIC, [0]))
    ctx.record("add partition 0 again", txn.add_partitions(b, TXN, producer, TOPIC, [0]))
    ctx.record("write to the added partition", send(0, 0))
    ctx.record("write to the added partition at a later epoch", send(0, 0, epoch + 1))
    ctx.record("add the group's offsets", txn.add_offsets(b, TXN, producer, GROUP))
    ctx.record("commit an offset in the transaction",
               txn.txn_offset_commit(b, TXN, producer, GROUP, TOPIC, 1))
    ctx.record("commit an offset at a later epoch",
               txn.txn_offset_commit(b, TXN, ahead, GROUP, TOPIC, 2))
    ctx.record("end at a later epoch", txn.end_txn(b, TXN, ahead, True))
    ctx.record("commit", txn.end_txn(b, TXN, producer, True))
    raw.await_stable(b, TOPIC)
    _await_completed(b, TXN)
    ctx.record("commit again (a retry)", txn.end_txn(b, TXN, producer, True))
    ctx.record("abort the committed transaction", txn.end_txn(b, TXN, producer, False))
    ctx.record("OffsetFetch of the committed offset", raw.offset_fetch(b, GROUP, TOPIC, [0]))
    ctx.record("watermarks after the transaction", raw.watermarks(b, TOPIC))
    _, _, again = txn.init_producer_id(b, TXN)
    ctx.record("init the transactional id again", again)
    ctx.record("add a partition at the fenced epoch",
               txn.add_partitions(b, TXN, producer, TOPIC, [1]))
    ctx.record("end at the fenced epoch", txn.end_txn(b, TXN, producer, True))
    ctx.record("add the group's offsets at the fenced epoch",
               txn.add_offsets(b, TXN, producer, GROUP))
    ctx.record("commit an offset at the fenced epoch",
               txn.txn_offset_commit(b, TXN, producer, GROUP, TOPIC, 3))
    ctx.record("commit an offset at the fenced epoch, version 3",
               txn.txn_offset_commit(b, TXN, producer, GROUP, TOPIC, 3, version=3))
    ctx.record("write at the fenced epoch", send(0, 1))
    ctx.record("end at an epoch never given", txn.end_txn(b, TXN, stale, True)
               if epoch > 0 else "epoch 0: none below")


def _await_completed(b: str, transactional_id: str) -> None:
    """Kafka's coordinator answers EndTxn in PrepareCommit and completes once every marker is
    written (the group's offsets partition too): until then a retry is CONCURRENT_TRANSACTIONS."""

    def completed() -> bool | None:
        states = {t.transactional_id: t.transaction_state
                  for t in admin.list_transactions(b).transaction_states}
        return states.get(transactional_id) == "CompleteCommit" or None

    raw.until(completed, f"transaction {transactional_id} to complete", 10)
