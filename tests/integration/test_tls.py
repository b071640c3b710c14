"""TLS listeners with real clients and real certificates, made by the test (trustme): server
TLS, mTLS, PKCS12 stores, a plaintext request to a TLS listener, untrusted certificates, a
key store that cannot be loaded, and a 3-node cluster whose controller traffic is TLS
(issue 16, done-when 1 and 2 for TLS)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import trustme
from broker_process import BrokerProcess, free_port
from cluster_fixtures import create_topic, running_cluster
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import load_pem_x509_certificate
from kafka import KafkaConsumer, KafkaProducer
from raw_client import RawClient

pytestmark = pytest.mark.timeout(120)

TOPIC = "secret-orders"


class Certificates:
    """A CA, the broker's certificate (localhost, 127.0.0.1), a client's, and a stranger CA."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = trustme.CA(organization_name="rafka tests")
        self.ca_pem = self._write("ca.pem", self.ca.cert_pem.bytes())
        server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.server_pem = self._write("server.pem", server.private_key_and_cert_chain_pem.bytes())
        self.server = server
        client = self.ca.issue_cert(
            "client.example", common_name="app-1", organization_unit_name="payments"
        )
        self.client_key = self._write("client.key", client.private_key_pem.bytes())
        self.client_cert = self._write(
            "client.crt", b"".join(blob.bytes() for blob in client.cert_chain_pems)
        )
        stranger = trustme.CA().issue_cert("127.0.0.1")
        self.stranger_key = self._write("stranger.key", stranger.private_key_pem.bytes())
        self.stranger_cert = self._write("stranger.crt", stranger.cert_chain_pems[0].bytes())

    def _write(self, name: str, data: bytes) -> str:
        path = self.dir / name
        path.write_bytes(data)
        return str(path)

    def server_pkcs12(self, password: bytes) -> str:
        key = serialization.load_pem_private_key(self.server.private_key_pem.bytes(), None)
        chain = [load_pem_x509_certificate(b.bytes()) for b in self.server.cert_chain_pems]
        data = pkcs12.serialize_key_and_certificates(
            b"broker", key, chain[0], chain[1:] or None,
            serialization.BestAvailableEncryption(password),
        )  # fmt: skip
        return self._write("server.p12", data)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


def tls_broker(broker_factory, certs: Certificates, **overrides: str) -> BrokerProcess:
    plain, secure = free_port(), free_port()
    settings = {
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{secure}",
        "ssl.keystore.location": certs.server_pem,
        **overrides,
    }
    broker = broker_factory(port=plain, **settings).start()
    broker.ssl_bootstrap = f"127.0.0.1:{secure}"
    return broker


def roundtrip_confluent(bootstrap: str, **security: str) -> list[bytes]:
    config = {"bootstrap.servers": bootstrap, **security}
    producer = Producer({**config, "enable.idempotence": True})
    for i in range(10):
        producer.produce(TOPIC, b"tls-%d" % i, partition=0)
    assert producer.flush(20) == 0
    consumer = Consumer({**config, "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    values: list[bytes] = []
    while len(values) < 10:
        message = consumer.poll(10)
        assert message is not None, f"only {len(values)} records came back"
        assert message.error() is None, message.error()
        values.append(message.value())
    consumer.close()
    return values


def refused(bootstrap: str, **security: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **security})
    try:
        admin.list_topics(timeout=4)
    except KafkaException:
        return True
    return False


def test_clients_use_tls_and_plaintext_gets_no_kafka_answer(broker_factory, certs) -> None:
    broker = tls_broker(broker_factory, certs)
    tls = {"security.protocol": "SSL", "ssl.ca.location": certs.ca_pem}
    assert roundtrip_confluent(broker.ssl_bootstrap, **tls) == [b"tls-%d" % i for i in range(10)]

    producer = KafkaProducer(
        bootstrap_servers=broker.ssl_bootstrap, security_protocol="SSL", ssl_cafile=certs.ca_pem
    )
    producer.send(TOPIC, b"from kafka-python", partition=0).get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=broker.ssl_bootstrap, security_protocol="SSL", ssl_cafile=certs.ca_pem,
        auto_offset_reset="earliest", consumer_timeout_ms=10_000,
    )  # fmt: skip
    consumer.assign([__import__("kafka").TopicPartition(TOPIC, 0)])
    assert b"from kafka-python" in [record.value for record in consumer]
    consumer.close()

    # Done-when 2: a plaintext request to the TLS listener gets no Kafka answer.
    with RawClient(broker.ssl_bootstrap) as plaintext:
        plaintext.send(18, 0, b"", flexible=False)
        data = b""
        try:
            while chunk := plaintext.sock.recv(4096):
                data += chunk
        except OSError:
            pass
        assert not data.startswith(b"\x00\x00"), f"a Kafka-looking answer: {data[:16]!r}"
    # A client that does not trust the broker's CA is refused, and so is the broker by it.
    assert refused(broker.ssl_bootstrap, **{"security.protocol": "SSL"})


def test_mutual_tls(broker_factory, certs) -> None:
    broker = tls_broker(
        broker_factory, certs,
        **{"listener.name.ssl.ssl.client.auth": "required",
           "ssl.truststore.location": certs.ca_pem},
    )  # fmt: skip
    tls = {"security.protocol": "SSL", "ssl.ca.location": certs.ca_pem}
    with_cert = {**tls, "ssl.certificate.location": certs.client_cert,
                 "ssl.key.location": certs.client_key}  # fmt: skip
    assert len(roundtrip_confluent(broker.ssl_bootstrap, **with_cert)) == 10
    assert refused(broker.ssl_bootstrap, **tls)  # no certificate
    stranger = {**tls, "ssl.certificate.location": certs.stranger_cert,
                "ssl.key.location": certs.stranger_key}  # fmt: skip
    assert refused(broker.ssl_bootstrap, **stranger)  # a certificate nobody vouches for
    # client.auth is set for the SSL listener only: the plaintext one still serves.
    assert not refused(broker.bootstrap)


def test_pkcs12_key_store(broker_factory, certs) -> None:
    broker = tls_broker(
        broker_factory, certs,
        **{"ssl.keystore.type": "PKCS12",
           "ssl.keystore.location": certs.server_pkcs12(b"changeit"),
           "ssl.keystore.password": "changeit"},
    )  # fmt: skip
    tls = {"security.protocol": "SSL", "ssl.ca.location": certs.ca_pem}
    assert len(roundtrip_confluent(broker.ssl_bootstrap, **tls)) == 10


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"ssl.keystore.location": "/nonexistent/broker.pem"}, "No such file"),
        ({"ssl.keystore.location": None}, "needs a key store"),
        ({"ssl.client.auth": "required"}, "needs a trust store"),
    ],
    ids=["missing-file", "no-key-store", "mtls-without-trust-store"],
)
def test_a_key_store_that_cannot_be_loaded_stops_the_broker_in_one_line(
    tmp_path, certs, setting, message
) -> None:
    settings = {
        "listeners": f"SSL://127.0.0.1:{free_port()}",
        "security.inter.broker.protocol": "SSL",
        "log.dirs": str(tmp_path),
        "ssl.keystore.location": certs.server_pem,
        **setting,
    }
    args = [sys.executable, "-m", "rafka", "broker"]
    for key, value in settings.items():
        if value is not None:
            args += ["--override", f"{key}={value}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("rafka: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_a_cluster_whose_controller_traffic_is_tls(tmp_path, certs) -> None:
    tls = {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
        "ssl.keystore.location": certs.server_pem,
        "ssl.truststore.location": certs.ca_pem,
        "listener.name.controller.ssl.client.auth": "required",
    }
    with running_cluster(tmp_path, 3, **tls) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        cluster.wait_for_full_isr(TOPIC, [0])
        values = roundtrip_confluent(cluster.bootstrap)
        assert values == [b"tls-%d" % i for i in range(10)]
