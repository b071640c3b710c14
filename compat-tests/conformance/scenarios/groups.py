"""(c) Consumer groups: two groups (kafka-python, confluent) consume 4 partitions and commit;
simple commits by raw request; committed offsets read back by every client."""

from __future__ import annotations

import clients
import raw
from context import Context

TOPIC = "groups"
PARTITIONS, PER_PARTITION = 4, 25


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC, PARTITIONS))
    raw.await_partitions(b, TOPIC, PARTITIONS)
    items = [(p, b"k%d" % i, b"v%d" % i) for p in range(PARTITIONS) for i in range(PER_PARTITION)]
    reports = clients.produce(b, TOPIC, items)
    ctx.record("confluent delivery offsets per partition", _by_partition(reports))
    ends = [raw.watermarks(b, TOPIC, p)["high"] for p in range(PARTITIONS)]
    ctx.record("high watermarks", ends)
    for group, consume in (("kp-group", clients.kp_group_consume_commit),
                           ("confluent-group", clients.group_consume_commit)):
        raw.await_coordinator(b, group)
        seen = consume(b, group, TOPIC, ends)
        ctx.record(f"{group}: consumed offsets", seen)
        ctx.record(f"{group}: OffsetFetch", raw.offset_fetch(b, group, TOPIC, range(PARTITIONS)))
        ctx.record(f"{group}: confluent committed", clients.committed(b, group, TOPIC, PARTITIONS))
        ctx.record(f"{group}: kafka-python committed",
                   clients.kp_committed(b, group, TOPIC, PARTITIONS))
    group = "simple-group"
    raw.await_coordinator(b, group)
    commits = {0: 5, 1: PER_PARTITION, 2: 0, 3: 1000}  # beyond the end is allowed
    ctx.record("simple commit", raw.offset_commit(b, group, TOPIC, commits))
    ctx.record("simple OffsetFetch", raw.offset_fetch(b, group, TOPIC, range(PARTITIONS)))
    ctx.record("OffsetFetch of a group that never committed",
               raw.offset_fetch(b, "never-committed", TOPIC, range(PARTITIONS)))


def _by_partition(reports: list[tuple[int, int, str | None]]) -> dict[int, object]:
    found: dict[int, list[object]] = {}
    for partition, offset, error in reports:
        found.setdefault(partition, []).append(offset if error is None else error)
    return found
