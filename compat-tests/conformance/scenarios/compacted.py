"""(f) A compacted topic refuses keyless records: the error code, KIP-467 record_errors, and
what a client is told. Also a LogAppendTime topic (the broker's clock is normalised away)."""

from __future__ import annotations

import clients
import raw
from context import Context

TOPIC = "compacted"
APPEND_TIME_TOPIC = "log-append-time"


def run(ctx: Context) -> None:
    b, ts = ctx.bootstrap, ctx.base_ts
    ctx.record("create", raw.create_topic(b, TOPIC, configs={"cleanup.policy": "compact"}))
    raw.await_partitions(b, TOPIC, 1)
    keyless = raw.batch([(None, b"no key")], ts)
    ctx.record("produce one keyless record", raw.produce(b, TOPIC, 0, keyless))
    mixed = raw.batch([(b"a", b"1"), (None, b"2"), (b"c", b"3"), (None, b"4")], ts)
    ctx.record("produce keyed, keyless, keyed, keyless", raw.produce(b, TOPIC, 0, mixed))
    keyed = raw.batch([(b"a", b"1"), (b"b", b"2")], ts)
    ctx.record("produce two keyed records", raw.produce(b, TOPIC, 0, keyed))
    items = [(0, b"k", b"keyed"), (0, None, b"keyless")]
    one_batch = {"linger.ms": 200, "retries": 0}  # both records in one batch, refused together
    ctx.record("confluent: keyed then keyless", clients.produce(b, TOPIC, items, **one_batch))
    ctx.record("watermarks", raw.watermarks(b, TOPIC))

    ctx.record("create LogAppendTime topic", raw.create_topic(
        b, APPEND_TIME_TOPIC, configs={"message.timestamp.type": "LogAppendTime"}))
    raw.await_partitions(b, APPEND_TIME_TOPIC, 1)
    ctx.record("produce with LogAppendTime", raw.produce(b, APPEND_TIME_TOPIC, 0, keyed))
    ctx.record("watermarks (LogAppendTime)", raw.watermarks(b, APPEND_TIME_TOPIC))
