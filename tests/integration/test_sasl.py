"""SASL with real clients (issue 16, done-when 1 for SASL): PLAIN users from the listener's JAAS
config, SCRAM-SHA-256/512 users created with AlterUserScramCredentials (kept in the metadata
log across a restart, described without secrets), SASL_SSL, wrong passwords refused with
SASL_AUTHENTICATION_FAILED and a closed connection, nothing served before authentication."""

from __future__ import annotations

import uuid

import pytest
import trustme
from broker_process import BrokerProcess, free_port
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka import KafkaProducer
from kio.schema.metadata.v12.request import MetadataRequest
from raw_client import RawClient, encode

pytestmark = pytest.mark.timeout(120)

TOPIC = "authenticated"
PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'user_alice="alice-secret" user_admin="admin-secret";'
)


def sasl_broker(broker_factory, data_dir=None, ports=None, **overrides: str) -> BrokerProcess:
    plain, secure = ports or (free_port(), free_port())
    settings = {
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{secure}",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        **overrides,
    }
    broker = broker_factory(data_dir, port=plain, **settings).start()
    broker.sasl_bootstrap = f"127.0.0.1:{secure}"
    broker.ports = (plain, secure)
    return broker


def sasl(mechanism: str, user: str, password: str, protocol: str = "SASL_PLAINTEXT") -> dict:
    return {"security.protocol": protocol, "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password}  # fmt: skip


def roundtrip(bootstrap: str, security: dict, count: int = 5) -> list[bytes]:
    producer = Producer({"bootstrap.servers": bootstrap, **security})
    values = [uuid.uuid4().hex.encode() for _ in range(count)]
    for value in values:
        producer.produce(TOPIC, value, partition=0)
    assert producer.flush(20) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", **security})  # fmt: skip
    consumer.subscribe([TOPIC])
    seen: list[bytes] = []
    while not set(values) <= set(seen):
        message = consumer.poll(15)
        assert message is not None, f"consumed {len(seen)} records"
        assert message.error() is None, message.error()
        seen.append(message.value())
    consumer.close()
    return values


def refused(bootstrap: str, security: dict) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **security})
    try:
        admin.list_topics(timeout=4)
    except KafkaException:
        return True
    return False


def test_plain_users_from_the_jaas_config(broker_factory) -> None:
    broker = sasl_broker(broker_factory)
    assert roundtrip(broker.sasl_bootstrap, sasl("PLAIN", "alice", "alice-secret"))
    assert refused(broker.sasl_bootstrap, sasl("PLAIN", "alice", "wrong"))
    assert refused(broker.sasl_bootstrap, sasl("PLAIN", "mallory", "alice-secret"))
    assert refused(broker.sasl_bootstrap, {"security.protocol": "PLAINTEXT"})
    # kafka-python (SaslHandshake, then SaslAuthenticate or v0's bare tokens).
    producer = KafkaProducer(
        bootstrap_servers=broker.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN", sasl_plain_username="admin", sasl_plain_password="admin-secret",
    )  # fmt: skip
    producer.send(TOPIC, b"from kafka-python", partition=0).get(timeout=20)
    producer.close()


def test_nothing_is_served_before_authentication(broker_factory) -> None:
    broker = sasl_broker(broker_factory)
    with RawClient(broker.sasl_bootstrap) as client:
        request = MetadataRequest(
            topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
        )
        client.send(3, 12, encode(request), flexible=True)
        assert client.closed_by_peer(5.0)


def test_scram_users_are_created_kept_and_described_without_secrets(broker_factory) -> None:
    broker = sasl_broker(broker_factory)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    upserts = [
        UserScramCredentialUpsertion(
            "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"bob-secret"
        ),
        UserScramCredentialUpsertion(
            "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"carol-secret"
        ),
    ]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(20)
    assert roundtrip(broker.sasl_bootstrap, sasl("SCRAM-SHA-256", "bob", "bob-secret"))
    assert roundtrip(broker.sasl_bootstrap, sasl("SCRAM-SHA-512", "carol", "carol-secret"))
    assert refused(broker.sasl_bootstrap, sasl("SCRAM-SHA-256", "bob", "wrong"))
    assert refused(broker.sasl_bootstrap, sasl("SCRAM-SHA-512", "bob", "bob-secret"))
    assert refused(broker.sasl_bootstrap, sasl("SCRAM-SHA-256", "nobody", "x"))

    described = admin.describe_user_scram_credentials(["bob", "carol"])
    bob = described["bob"].result(20).scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in bob] == [(ScramMechanism.SCRAM_SHA_256, 8192)]
    with pytest.raises(KafkaException, match="nonexistent"):
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(20)
    with pytest.raises(KafkaException, match="iterations"):
        admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"pw",
        )])["dave"].result(20)  # fmt: skip

    # The credentials are in the metadata log: a restarted broker has them.
    broker.stop()
    again = sasl_broker(broker_factory, broker.data_dir, broker.ports)
    assert roundtrip(again.sasl_bootstrap, sasl("SCRAM-SHA-512", "carol", "carol-secret"))
    admin = AdminClient({"bootstrap.servers": again.bootstrap})
    deletion = UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([deletion])["carol"].result(20)
    assert refused(again.sasl_bootstrap, sasl("SCRAM-SHA-512", "carol", "carol-secret"))


def test_sasl_ssl(broker_factory, tmp_path) -> None:
    ca = trustme.CA()
    server = tmp_path / "server.pem"
    server.write_bytes(ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.bytes())
    ca_pem = tmp_path / "ca.pem"
    ca_pem.write_bytes(ca.cert_pem.bytes())
    plain, secure = free_port(), free_port()
    broker = broker_factory(
        port=plain,
        **{
            "listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{secure}",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
            "ssl.keystore.location": str(server),
        },
    ).start()
    security = {**sasl("PLAIN", "alice", "alice-secret", "SASL_SSL"),
                "ssl.ca.location": str(ca_pem)}  # fmt: skip
    assert roundtrip(f"127.0.0.1:{secure}", security)
    assert refused(f"127.0.0.1:{secure}", {**security, "sasl.password": "nope"})
    assert broker.process is not None


def test_a_read_of_the_partition_after_auth_failure_gets_nothing(broker_factory) -> None:
    """A client whose authentication failed is cut off: its consumer sees no record."""
    broker = sasl_broker(broker_factory)
    roundtrip(broker.sasl_bootstrap, sasl("PLAIN", "alice", "alice-secret"))
    consumer = Consumer({"bootstrap.servers": broker.sasl_bootstrap, "group.id": "x",
                         "log_level": 0, **sasl("PLAIN", "alice", "bad")})  # fmt: skip
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    message = consumer.poll(3)
    assert message is None or message.error() is not None
    consumer.close()


def test_handshake_v0_then_bare_tokens(broker_factory) -> None:
    """Old clients: SaslHandshake v0, then the PLAIN token with no Kafka header, answered by a
    bare (empty) token; then Kafka requests as usual. A wrong password closes the connection."""
    from kio.schema.metadata.v12.response import MetadataResponse
    from kio.schema.sasl_handshake.v0.request import SaslHandshakeRequest
    from kio.schema.sasl_handshake.v0.response import SaslHandshakeResponse

    broker = sasl_broker(broker_factory)
    for password, accepted in ((b"alice-secret", True), (b"wrong", False)):
        with RawClient(broker.sasl_bootstrap) as client:
            answer = client.request(SaslHandshakeRequest(mechanism="PLAIN"), SaslHandshakeResponse)
            assert answer.error_code == 0 and "PLAIN" in answer.mechanisms
            token = b"\x00alice\x00" + password
            client.send_raw(len(token).to_bytes(4, "big") + token)
            if not accepted:
                assert client.closed_by_peer(5.0)
                continue
            assert client.read_exactly(4) == b"\x00\x00\x00\x00"  # the empty server token
            request = MetadataRequest(
                topics=None, allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            )  # fmt: skip
            assert client.request(request, MetadataResponse).brokers


def test_a_cluster_whose_traffic_between_nodes_is_sasl_ssl(tmp_path) -> None:
    """Raft, replication and forwarding go to the controller listeners: SASL_SSL with PLAIN,
    each node presenting the credentials of that listener's JAAS config."""
    from cluster_fixtures import create_topic, running_cluster

    ca = trustme.CA()
    server = tmp_path / "node.pem"
    server.write_bytes(ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.bytes())
    ca_pem = tmp_path / "ca.pem"
    ca_pem.write_bytes(ca.cert_pem.bytes())
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="node" password="node-secret" user_node="node-secret";'
    )
    settings = {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": jaas,
        "ssl.keystore.location": str(server),
        "ssl.truststore.location": str(ca_pem),
    }
    with running_cluster(tmp_path / "cluster", 3, **settings) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        cluster.wait_for_full_isr(TOPIC, [0])
        assert roundtrip(cluster.bootstrap, {})
        # A client cannot use the controller listener without the nodes' credentials.
        controller = f"127.0.0.1:{cluster.controller_ports[1]}"
        security = {**sasl("PLAIN", "node", "wrong", "SASL_SSL"), "ssl.ca.location": str(ca_pem)}
        assert refused(controller, security)
