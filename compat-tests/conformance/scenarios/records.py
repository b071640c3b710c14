"""(j) Record batches a client may send and fetches it may make at the edges: several batches in
one request, a client's base offset, a wrong record count, a legacy message set, a control batch,
a batch over max.message.bytes; fetches from inside a batch, with tiny size limits, at a leader
epoch the broker has not reached, and fetch sessions (KIP-227)."""

from __future__ import annotations

import struct
import zlib

import crc32c
import raw
import raw_admin as admin
from context import Context

from rafka.protocol.records import build_batch

TOPIC = "records"
SMALL = "records-small"
APPEND_TIME = "records-append-time"
COUNT_AT, CRC_AT, CRC_FROM = 57, 17, 21  # in a v2 batch header


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC))
    ctx.record("create with max.message.bytes=1000",
               raw.create_topic(b, SMALL, configs={"max.message.bytes": "1000"}))
    append_time = {"message.timestamp.type": "LogAppendTime"}
    ctx.record("create with LogAppendTime", raw.create_topic(b, APPEND_TIME, configs=append_time))
    for topic in (TOPIC, SMALL, APPEND_TIME):
        raw.await_partitions(b, topic, 1)
    _produce(ctx)
    _fetch(ctx)
    _sessions(ctx)


def _three(ctx: Context, tag: bytes, **kwargs: object) -> bytes:
    return raw.batch([(b"k", tag + b"0"), (b"k", tag + b"1"), (b"k", tag + b"2")], ctx.base_ts,
                     **kwargs)


def _recount(batch: bytes, count: int) -> bytes:
    """The batch claiming `count` records, its CRC made right again."""
    patched = bytearray(batch)
    struct.pack_into(">i", patched, COUNT_AT, count)
    struct.pack_into(">I", patched, CRC_AT, crc32c.crc32c(bytes(patched[CRC_FROM:])))
    return bytes(patched)


def _legacy_message(value: bytes, timestamp: int) -> bytes:
    """One magic 1 message (the message format before v2), as a message set of one."""
    body = struct.pack(">bbqi", 1, 0, timestamp, -1) + struct.pack(">i", len(value)) + value
    message = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", 0, len(message)) + message


def _produce(ctx: Context) -> None:
    b, ts = ctx.bootstrap, ctx.base_ts
    ctx.record("produce a batch", raw.produce(b, TOPIC, 0, _three(ctx, b"a")))
    ctx.record("produce a second batch", raw.produce(b, TOPIC, 0, _three(ctx, b"a2")))
    both = _three(ctx, b"b") + _three(ctx, b"c")
    ctx.record("produce two batches in one request", raw.produce(b, TOPIC, 0, both))
    ctx.record("produce a batch whose base offset is 7",
               raw.produce(b, TOPIC, 0, _three(ctx, b"d", base_offset=7)))
    ctx.record("produce a batch claiming 5 of its 3 records",
               raw.produce(b, TOPIC, 0, _recount(_three(ctx, b"e"), 5)))
    ctx.record("produce a batch claiming 2 of its 3 records",
               raw.produce(b, TOPIC, 0, _recount(_three(ctx, b"f"), 2)))
    ctx.record("produce a legacy (magic 1) message", raw.produce(b, TOPIC, 0,
                                                                 _legacy_message(b"old", ts)))
    control = build_batch([(None, b"\x00\x00\x00\x00\x00\x00", (), ts)], is_control=True)
    ctx.record("produce a control batch", raw.produce(b, TOPIC, 0, control))
    ctx.record("produce no records", raw.produce(b, TOPIC, 0, b""))
    ctx.record("produce a batch over max.message.bytes",
               raw.produce(b, SMALL, 0, raw.batch([(b"k", b"x" * 2000)], ts)))
    ctx.record("produce a batch within max.message.bytes",
               raw.produce(b, SMALL, 0, raw.batch([(b"k", b"x" * 500)], ts)))
    ctx.record("produce to a LogAppendTime topic",
               raw.produce(b, APPEND_TIME, 0, _three(ctx, b"t")))
    ctx.record("fetch from the LogAppendTime topic", raw.fetch(b, APPEND_TIME, 0, 0))
    ctx.record("watermarks after producing", raw.watermarks(b, TOPIC))


def _fetch(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("fetch from inside the second batch", raw.fetch(b, TOPIC, 0, 4))
    for limit in (1, 0):
        ctx.record(f"fetch with a {limit} byte partition limit",
                   raw.fetch(b, TOPIC, 0, 0, partition_max_bytes=limit))
    ctx.record("fetch with a 1 byte response limit",
               raw.fetch(b, TOPIC, 0, 3, max_bytes=1))
    epoch = raw.metadata(b, TOPIC).partitions[0].leader_epoch
    ctx.record("fetch at the leader's epoch",
               raw.fetch(b, TOPIC, 0, 9, current_epoch=epoch))
    ctx.record("fetch at an epoch the leader has not reached",
               raw.fetch(b, TOPIC, 0, 9, current_epoch=epoch + 1))


def _sessions(ctx: Context) -> None:
    # Naming a session that does not exist; the sessions themselves: scenario fetch-sessions.
    b = ctx.bootstrap
    ctx.record("an incremental fetch of an unknown session",
               admin.fetch_session(b, TOPIC, 12345, 1))
    reopened = admin.fetch_session(b, TOPIC, 12345, 0)  # a full fetch, opening a new session
    reopened["session_id"] = reopened["session_id"] != 0  # each broker draws its own
    ctx.record("a fetch naming an unknown session at epoch 0", reopened)
    closed = admin.fetch_session(b, TOPIC, 12345, -1)  # a full fetch without a session
    ctx.record("a fetch closing an unknown session", closed)
