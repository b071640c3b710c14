"""Mutated copies of real clients' requests never hurt the broker (issue 16).

Real clients (confluent-kafka: an idempotent producer, a transactional one, a group consumer
that commits, admin requests) talk to a broker through a recording proxy; every request frame
they send is kept. Hypothesis then sends mutated copies — bit flips, truncations, 32-bit fields
set to huge, negative or null counts, spliced bytes — each on a fresh connection. After every
one, a long-open connection must still be answered; at the end the broker has logged no handler
failure (a traceback: bad input must get Kafka's error code or a closed connection) and its
memory has stayed bounded.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import uuid
from pathlib import Path

import pytest
from broker_process import BrokerProcess, free_port
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from raw_client import RawClient

pytestmark = pytest.mark.timeout(600)

# Deterministic (derandomized) in CI; RAFKA_FUZZ_EXAMPLES=100000 for a longer campaign.
EXAMPLES = int(os.environ.get("RAFKA_FUZZ_EXAMPLES", "2000"))
RSS_GROWTH_LIMIT = 100 * 1024 * 1024
TOPIC = "fuzzed"


class RecordingProxy:
    """Relays TCP connections on `port` to the broker and keeps every client-to-broker frame."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.target = target
        self.frames: list[bytes] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", port))
        self.port = port
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        pending = b""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                if not record:
                    continue
                pending += data
                while len(pending) >= 4:
                    (size,) = struct.unpack_from(">i", pending)
                    if len(pending) < 4 + size:
                        break
                    with self._lock:
                        self.frames.append(pending[: 4 + size])
                    pending = pending[4 + size :]
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


def run_real_clients(bootstrap: str) -> None:
    """The requests a typical application makes: admin, idempotent and transactional produce
    (gzip), a group consumer committing offsets."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(30)
    for future in admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, TOPIC)]
    ).values():
        future.result(30)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "compression.type": "gzip"}
    )
    for i in range(20):
        producer.produce(TOPIC, key=b"k%d" % i, value=b"v%d" % i, headers={"h": b"1"})
    assert producer.flush(30) == 0
    transactional = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"fuzz-{uuid.uuid4().hex[:6]}"}
    )
    transactional.init_transactions(30)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "fuzz-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([TOPIC])
    seen = 0
    while seen < 20:
        seen += len(consumer.consume(20, 1.0))
    consumer.commit(asynchronous=False)
    transactional.begin_transaction()
    transactional.produce(TOPIC, b"in a transaction", partition=0)
    transactional.send_offsets_to_transaction(
        [TopicPartition(TOPIC, 0, 1)], consumer.consumer_group_metadata()
    )
    transactional.commit_transaction(30)
    consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10, cached=False)
    consumer.close()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(broker, frames the real clients sent)."""
    port, proxy_port = free_port(), free_port()
    broker = BrokerProcess(
        tmp_path_factory.mktemp("fuzz"),
        port,
        **{"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy_port}"},
    )
    broker.start()
    proxy = RecordingProxy(proxy_port, ("127.0.0.1", port))
    try:
        run_real_clients(f"127.0.0.1:{proxy_port}")
        frames = list(proxy.frames)
    finally:
        proxy.close()
    api_keys = {struct.unpack_from(">h", frame, 4)[0] for frame in frames}
    assert {0, 1, 2, 3, 8, 10, 11, 14, 19, 22, 24, 25, 26, 28, 32} <= api_keys, api_keys
    yield broker, frames
    broker.kill()


# -- mutations -------------------------------------------------------------------------------


@st.composite
def mutated(draw, frames: list[bytes]) -> bytes:
    frame = draw(st.sampled_from(frames))
    body = bytearray(frame[4:])
    kind = draw(st.sampled_from(["flip", "truncate", "int32", "int16", "splice", "varint"]))
    # Past the API key and version (bytes 0-3), so that the mutation reaches the handler.
    at = draw(st.integers(4, max(4, len(body) - 1)))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(4, max(4, len(body) - 1)))
            body[position] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        del body[at:]
    elif kind == "int32":
        value = draw(st.sampled_from([-1, -2, 0, 0x7FFFFFFF, 0x10000000, 65536]))
        body[at : at + 4] = struct.pack(">i", value)
    elif kind == "int16":
        body[at : at + 2] = struct.pack(">h", draw(st.sampled_from([-1, 0x7FFF, 0])))
    elif kind == "splice":
        body[at:at] = draw(st.binary(min_size=1, max_size=64))
    else:  # a compact (flexible) count or length: null, huge
        body[at : at + 1] = draw(st.sampled_from([b"\x00", b"\xff\xff\xff\xff\x0f", b"\x7f"]))
    return struct.pack(">i", len(body)) + bytes(body)


def send_and_forget(bootstrap: str, frame: bytes) -> None:
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(frame)
        sock.settimeout(0.05)
        try:
            sock.recv(65536)  # an answer, a close, or nothing yet: all fine
        except OSError:
            pass


def test_mutated_client_requests_never_hurt_the_broker(recorded) -> None:
    broker, frames = recorded
    pid = broker.process.pid
    healthy = RawClient(broker.bootstrap)
    probe = ApiVersionsRequest(client_software_name="fuzz", client_software_version="1")
    baseline = rss_bytes(pid)
    sent: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize="RAFKA_FUZZ_EXAMPLES" not in os.environ,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(frame=mutated(frames))
    def one(frame: bytes) -> None:
        send_and_forget(broker.bootstrap, frame)
        sent.append(len(frame))
        assert broker.process.poll() is None, "the broker died"
        response = healthy.request(probe, ApiVersionsResponse)
        assert response.error_code == 0

    try:
        one()
    finally:
        healthy.close()
    assert len(sent) >= EXAMPLES // 2
    failures = [line for line in broker.log_lines if '"request failed"' in line]
    assert not failures, "handler failures (tracebacks) on bad input:\n" + "\n".join(
        failures[:5]
    )
    grown = rss_bytes(pid) - baseline
    assert grown < RSS_GROWTH_LIMIT, f"RSS grew by {grown >> 20} MiB over {len(sent)} requests"
