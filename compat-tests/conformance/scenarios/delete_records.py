"""(b) 100 records in four batches, DeleteRecords(50), then every way of asking for offsets."""

from __future__ import annotations

import clients
import raw
from context import Context

TOPIC = "delete-records"
BATCHES, PER_BATCH = 4, 25


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC))
    raw.await_partitions(b, TOPIC, 1)
    for i in range(BATCHES):
        base = i * PER_BATCH
        values = [(None, b"v%d" % (base + j)) for j in range(PER_BATCH)]
        records = raw.batch(values, ctx.base_ts + base)
        ctx.record(f"produce batch {i}", raw.produce(b, TOPIC, 0, records))
    ctx.record("watermarks", raw.watermarks(b, TOPIC))
    ctx.record("confluent delete_records(50)", clients.admin_delete_records(b, TOPIC, 0, 50))
    ctx.record("watermarks after delete", raw.watermarks(b, TOPIC))
    ctx.record("confluent list_offsets", clients.admin_list_offsets(b, TOPIC, 0))
    by_time = clients.kp_offsets(b, TOPIC, 0, ctx.base_ts + 10)
    ctx.record("kafka-python offsets (timestamp base+10)", by_time)
    specs = {
        "earliest": raw.EARLIEST, "latest": raw.LATEST, "max-timestamp": raw.MAX_TIMESTAMP,
        "earliest-local": raw.EARLIEST_LOCAL, "timestamp base+10 (deleted)": ctx.base_ts + 10,
        "timestamp base+60": ctx.base_ts + 60, "timestamp beyond the last": ctx.base_ts + 1000,
    }
    for name, spec in specs.items():
        ctx.record(f"list offsets {name}", raw.list_offsets(b, TOPIC, 0, spec))
    consumed = clients.consume_offsets(b, TOPIC, 0, 0, **{"auto.offset.reset": "earliest"})
    ctx.record("confluent consume from 0 (reset to earliest)", [consumed[0], len(consumed)])
    ctx.record("fetch at 10 (deleted)", raw.fetch(b, TOPIC, 0, 10))
    ctx.record("fetch at 50", raw.fetch(b, TOPIC, 0, 50))
    ctx.record("delete_records(200) beyond the HW", raw.delete_records(b, TOPIC, 0, 200))
    ctx.record("delete_records(40) below the low watermark", raw.delete_records(b, TOPIC, 0, 40))
    ctx.record("delete_records(60) mid-batch", raw.delete_records(b, TOPIC, 0, 60))
    ctx.record("fetch at 60", raw.fetch(b, TOPIC, 0, 60))
    ctx.record("delete_records(-1) to the HW", raw.delete_records(b, TOPIC, 0, -1))
    ctx.record("watermarks after delete to the HW", raw.watermarks(b, TOPIC))
    ctx.record("confluent watermarks", clients.watermarks(b, TOPIC, 0))

