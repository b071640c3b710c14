"""(e) Error codes for requests a broker must refuse (or answer with an empty result)."""

from __future__ import annotations

from typing import Any

import raw
from context import Context
from kio.schema.metadata.v12 import request as metadata_req
from kio.schema.metadata.v12.response import MetadataResponse
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_authenticate.v2.response import SaslAuthenticateResponse
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest
from kio.schema.sasl_handshake.v1.response import SaslHandshakeResponse
from raw_client import RawClient

TOPIC = "errors"
PROBES = "errors-probes"
MISSING = "no-such-topic"
HOUR_MS = 3_600_000


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC))
    raw.await_partitions(b, TOPIC, 1)
    good = raw.batch([(b"k", b"v0"), (b"k", b"v1"), (b"k", b"v2")], ctx.base_ts)
    ctx.record("produce 3 records", raw.produce(b, TOPIC, 0, good))
    _produce(ctx, good)
    _offsets(ctx)
    _admin(ctx)
    _sasl_on_plaintext(ctx)
    ctx.record("watermarks at the end", raw.watermarks(b, TOPIC))


def _sasl_on_plaintext(ctx: Context) -> None:
    """SASL requests on a listener without SASL: refused, and the connection still serves."""
    for name, body, response in (
        ("SaslHandshake", SaslHandshakeRequest(mechanism="PLAIN"), SaslHandshakeResponse),
        ("SaslAuthenticate", SaslAuthenticateRequest(auth_bytes=b"\0u\0p"),
         SaslAuthenticateResponse),
    ):
        with RawClient(ctx.bootstrap) as client:
            answer = client.request(body, response, client_id="conformance")
            ctx.record(f"{name} on a PLAINTEXT listener",
                       (answer.error_code, list(getattr(answer, "mechanisms", ())),
                        _still_serves(client)))


def _still_serves(client: RawClient) -> Any:
    body = metadata_req.MetadataRequest(
        topics=(), allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    try:
        return len(client.request(body, MetadataResponse, client_id="conformance").brokers)
    except (OSError, EOFError, ConnectionError) as exc:
        return f"connection closed ({type(exc).__name__})"


def _produce(ctx: Context, good: bytes) -> None:
    b, ts = ctx.bootstrap, ctx.base_ts
    ctx.record("produce to an unknown topic", raw.produce(b, MISSING, 0, good))
    ctx.record("produce to partition 7 of 1", raw.produce(b, TOPIC, 7, good))
    ctx.record("produce with acks=2", raw.produce(b, TOPIC, 0, good, acks=2))
    corrupt = bytearray(good)
    corrupt[-1] ^= 0xFF  # the last record's last byte: the CRC no longer matches
    ctx.record("produce with a bad CRC", raw.produce(b, TOPIC, 0, bytes(corrupt)))
    # Probes one broker might accept: each on its own partition, so that an append stays local.
    ctx.record("create", raw.create_topic(b, PROBES, 4))
    raw.await_partitions(b, PROBES, 4)
    future = raw.batch([(b"k", b"future")], ts + 3 * HOUR_MS)
    ctx.record("produce 3 h in the future", raw.produce(b, PROBES, 0, future))
    unknown = raw.batch([(b"k", b"seq")], ts, producer_id=987_654, producer_epoch=0,
                        base_sequence=5)
    ctx.record("idempotent produce, unknown producer, sequence 5",
               raw.produce(b, PROBES, 1, unknown))
    txn = raw.batch([(b"k", b"txn")], ts, producer_id=987_655, producer_epoch=0,
                    base_sequence=0, is_transactional=True)
    ctx.record("transactional batch outside a transaction", raw.produce(b, PROBES, 2, txn))
    raw.produce_acks0(b, PROBES, 3, good)
    ctx.record("watermarks after the probes",
               [raw.watermarks(b, PROBES, p) for p in range(4)])


def _offsets(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("list offsets, partition 7 of 1", raw.list_offsets(b, TOPIC, 7, raw.LATEST))
    ctx.record("list offsets, unknown topic", raw.list_offsets(b, MISSING, 0, raw.LATEST))
    ctx.record("list offsets, timestamp beyond every record",
               raw.list_offsets(b, TOPIC, 0, ctx.base_ts + HOUR_MS))
    ctx.record("list offsets, timestamp -7", raw.list_offsets(b, TOPIC, 0, -7))
    high = raw.watermarks(b, TOPIC)["high"]
    ctx.record("fetch at the HW", raw.fetch(b, TOPIC, 0, high))
    ctx.record("fetch at HW+1", raw.fetch(b, TOPIC, 0, high + 1))
    ctx.record("fetch at -5", raw.fetch(b, TOPIC, 0, -5))
    ctx.record("fetch partition 7 of 1", raw.fetch(b, TOPIC, 7, 0))
    ctx.record("fetch unknown topic", raw.fetch(b, MISSING, 0, 0))
    ctx.record("delete_records beyond the HW", raw.delete_records(b, TOPIC, 0, high + 1))
    ctx.record("delete_records -7", raw.delete_records(b, TOPIC, 0, -7))
    ctx.record("delete_records partition 7 of 1", raw.delete_records(b, TOPIC, 7, 0))
    ctx.record("delete_records unknown topic", raw.delete_records(b, MISSING, 0, 0))
    raw.await_coordinator(b, "errors-group")
    ctx.record("commit for an unknown topic", raw.offset_commit(b, "errors-group", MISSING, {0: 1}))
    ctx.record("commit for partition 7 of 1", raw.offset_commit(b, "errors-group", TOPIC, {7: 1}))
    ctx.record("commit offset -5", raw.offset_commit(b, "errors-group", TOPIC, {0: -5}))
    ctx.record("OffsetFetch after those commits",
               raw.offset_fetch(b, "errors-group", TOPIC, [0, 7]))
    ctx.record("OffsetFetch, unknown topic", raw.offset_fetch(b, "errors-group", MISSING, [0]))


def _admin(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create an existing topic", raw.create_topic(b, TOPIC))
    ctx.record("create with 0 partitions", raw.create_topic(b, "zero-partitions", 0))
    ctx.record("create with replication 3 on 1 broker", raw.create_topic(b, "rf3", 1, 3))
    ctx.record("create an invalid name", raw.create_topic(b, "bad/name"))
    ctx.record("create with an unknown config",
               raw.create_topic(b, "bad-config", configs={"no.such.config": "1"}))
    ctx.record("create with an invalid config value",
               raw.create_topic(b, "bad-value", configs={"cleanup.policy": "sometimes"}))
    ctx.record("delete an unknown topic", raw.delete_topic(b, MISSING))
    ctx.record("metadata of an unknown topic", raw.metadata(b, MISSING))
