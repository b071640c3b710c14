"""(a) A fresh topic, three single-record batches with a broker restart between each."""

from __future__ import annotations

import clients
import raw
from context import Context

TOPIC = "restart"


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC))
    raw.await_partitions(b, TOPIC, 1)
    ctx.record("watermarks of the empty partition", raw.watermarks(b, TOPIC))
    for i in range(3):
        if i:
            ctx.restart()
            raw.await_partitions(b, TOPIC, 1)
            ctx.record(f"watermarks after restart {i}", raw.watermarks(b, TOPIC))
        records = raw.batch([(None, b"r%d" % i)], ctx.base_ts + i)
        ctx.record(f"produce {i}", raw.produce(b, TOPIC, 0, records))
        ctx.record(f"watermarks after produce {i}", raw.watermarks(b, TOPIC))
    ctx.record("confluent watermarks", clients.watermarks(b, TOPIC, 0))
    ctx.record("confluent consumed offsets", clients.consume_offsets(b, TOPIC, 0, 0))
    end = raw.watermarks(b, TOPIC)["high"]
    ctx.record("kafka-python consumed offsets", clients.kp_consume_offsets(b, TOPIC, 0, end))
    ctx.record("kafka-python offsets", clients.kp_offsets(b, TOPIC, 0, ctx.base_ts + 1))
    specs = {"max-timestamp": raw.MAX_TIMESTAMP, "earliest-local": raw.EARLIEST_LOCAL,
             "timestamp base+1": ctx.base_ts + 1}
    for name, spec in specs.items():
        ctx.record(f"list offsets {name}", raw.list_offsets(b, TOPIC, 0, spec))

