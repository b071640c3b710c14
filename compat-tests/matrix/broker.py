"""The broker side: the rafka broker run.py starts, the APIs a broker advertises, and the
batches rafka stored for a scenario, checked against what the client claimed to send."""

from __future__ import annotations

import socket
import struct
import sys
from pathlib import Path

from matrix import LOGS, ROOT
from matrix.security import SecuritySetup

sys.path.insert(0, str(ROOT / "tests"))
from broker_process import (  # noqa: E402 - the tests' broker fixture, reused
    BrokerProcess,
    free_port,
)

BROKER_OVERRIDES = {
    # Kafka's default delays a new group's first rebalance by 3 s; test brokers set 0.
    "group.initial.rebalance.delay.ms": "0",
    # Consumer-protocol members heartbeat every 5 s by default, and a reassignment takes a few
    # heartbeats; test brokers shorten the interval (Kafka checks it against the minimum).
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.min.heartbeat.interval.ms": "100",
}


def start_broker(data_dir: Path, security: SecuritySetup) -> tuple[BrokerProcess, dict]:
    """A rafka broker on free ports with data in `data_dir` (tests/broker_process.py), with the
    security scenarios' listeners and SCRAM user; returns it and the suites' security env."""
    plain, sasl, mtls = free_port(), free_port(), free_port()
    settings = {**BROKER_OVERRIDES, **security.broker_settings(plain, sasl, mtls)}
    broker = BrokerProcess(data_dir, plain, **settings).start()
    security.create_scram_user(broker.bootstrap)
    return broker, security.suite_env(sasl, mtls)


def save_broker_log(broker: BrokerProcess) -> Path:
    log = LOGS / "broker.log"
    log.write_text("\n".join(broker.log_lines) + "\n")
    return log


def api_versions(bootstrap: str) -> dict[int, tuple[int, int]]:
    """ApiVersions v0 by hand: {api_key: (min, max)} as the broker advertises them."""
    host, port = bootstrap.rsplit(":", 1)
    client_id = b"rafka-compat"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _read_exactly(conn, 4))[0]
        payload = _read_exactly(conn, size)
    _correlation, error, count = struct.unpack_from(">ihi", payload)
    if error:
        raise RuntimeError(f"ApiVersions failed with error {error}")
    return {
        key: (low, high)
        for key, low, high in (
            struct.unpack_from(">hhh", payload, 10 + 6 * i) for i in range(count)
        )
    }


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data


def check_stored(data_dir: Path, scenario: str, topic: str) -> str | None:
    """What the broker stored for the scenario's topic, checked against what the client claimed
    to send; returns the problem, or None."""
    from rafka.protocol.records import iter_batch_headers

    batches = []
    for segment in sorted((data_dir / f"{topic}-0").glob("*.log")):
        batches += [header for _, header in iter_batch_headers(segment.read_bytes())]
    data = [b for b in batches if not b.is_control]
    if not data:
        return "no data batches stored"
    if scenario.startswith("produce-consume-"):
        codec = scenario.removeprefix("produce-consume-")
        stored = sorted({b.compression.name.lower() for b in data})
        if stored != [codec]:
            return f"stored batches are compressed with {stored}, not {codec}"
    elif scenario == "idempotent-produce":
        if not all(b.has_producer_id for b in data):
            return "stored batches carry no producer id: the client did not produce idempotently"
        for before, after in zip(data, data[1:], strict=False):
            same = (before.producer_id, before.producer_epoch) == (
                after.producer_id,
                after.producer_epoch,
            )
            if same and after.base_sequence != before.last_sequence + 1:
                return f"sequence gap: {before.last_sequence} then {after.base_sequence}"
    elif scenario == "transactions":
        if not all(b.is_transactional for b in data):
            return "stored data batches are not transactional"
        markers = [b for b in batches if b.is_control and b.has_producer_id]
        if len(markers) != 3:
            return f"{len(markers)} transaction markers stored, expected 3"
    elif scenario == "txn-pipeline":
        if not all(b.is_transactional for b in data):
            return "stored data batches are not transactional"
        for before, after in zip([None, *data], data, strict=False):
            producer = (after.producer_id, after.producer_epoch)
            if before is None or (before.producer_id, before.producer_epoch) != producer:
                if after.base_sequence != 0:
                    return f"producer {producer} starts at sequence {after.base_sequence}"
            elif after.base_sequence != before.last_sequence + 1:
                return f"sequence gap: {before.last_sequence} then {after.base_sequence}"
        markers = [b for b in batches if b.is_control and b.has_producer_id]
        if len(markers) != 20:
            return f"{len(markers)} transaction markers stored, expected 20"
    return None
