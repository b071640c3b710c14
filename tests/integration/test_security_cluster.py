"""A 3-node cluster secured end to end (issue 16, done-when 3): clients on SASL_PLAINTEXT (PLAIN
and SCRAM-SHA-512), the traffic between the nodes on SASL_SSL, ACLs on. A SCRAM user and ACLs
created through one node hold on every node and after a node restarts: they are records of the
replicated metadata log."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
import trustme
from broker_process import BrokerProcess, free_port
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

pytestmark = pytest.mark.timeout(240)

PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule required"
TOPIC = "payments"


def start_all(nodes: list[BrokerProcess]) -> None:
    """A lone node never becomes ready (no quorum): start them together."""
    errors: list[BaseException] = []

    def start(node: BrokerProcess) -> None:
        try:
            node.start(90)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors


@pytest.fixture
def secured_cluster(tmp_path: Path):
    ca = trustme.CA()
    (tmp_path / "node.pem").write_bytes(
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.bytes()
    )
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    client_ports = {n: free_port() for n in (1, 2, 3)}
    controller_ports = {n: free_port() for n in (1, 2, 3)}
    voters = ",".join(f"{n}@127.0.0.1:{p}" for n, p in controller_ports.items())
    nodes = []
    for n in (1, 2, 3):
        settings = {
            "node.id": str(n),
            "listeners": f"CLIENTS://127.0.0.1:{client_ports[n]},"
                         f"CONTROLLER://127.0.0.1:{controller_ports[n]}",
            "advertised.listeners": f"CLIENTS://127.0.0.1:{client_ports[n]}",
            "listener.security.protocol.map": "CLIENTS:SASL_PLAINTEXT,CONTROLLER:SASL_SSL",
            "inter.broker.listener.name": "CLIENTS",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.voters": voters,
            "listener.name.clients.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            "listener.name.clients.plain.sasl.jaas.config":
                f'{PLAIN_MODULE} user_admin="admin-secret";',
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                f'{PLAIN_MODULE} username="node" password="node-secret" '
                'user_node="node-secret";',
            "ssl.keystore.location": str(tmp_path / "node.pem"),
            "ssl.truststore.location": str(tmp_path / "ca.pem"),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin",
            "group.initial.rebalance.delay.ms": "0",
        }  # fmt: skip
        nodes.append(BrokerProcess(tmp_path / f"node{n}", client_ports[n], **settings))
    start_all(nodes)
    try:
        yield nodes
    finally:
        for node in nodes:
            node.kill()


def wait_for_acls_everywhere(nodes: list[BrokerProcess], count: int) -> None:
    """Until every node's own DescribeAcls shows `count` ACLs: each node applies the metadata
    log as it learns it is committed, a moment after the controller answered CreateAcls (the
    SCRAM user, created before them, is there by then too)."""
    from rafka.cli.client_security import CURRENT, ClientSecurity
    from rafka.cli.kafka_client import Connection

    any_acl = {"resource_type_filter": 1, "resource_name_filter": None,
               "pattern_type_filter": 1, "principal_filter": None, "host_filter": None,
               "operation": 1, "permission_type": 1}  # fmt: skip
    token = CURRENT.set(ClientSecurity("SASL_PLAINTEXT", "PLAIN", "admin", "admin-secret"))
    try:
        for node in nodes:
            deadline = time.monotonic() + 30
            while True:
                connection = Connection("127.0.0.1", node.port, "acl-check", 10)
                try:
                    answer = connection.send(29, 3, any_acl)
                finally:
                    connection.close()
                if sum(len(r.acls) for r in answer.resources) >= count:
                    break
                assert time.monotonic() < deadline, f"node at {node.bootstrap} lacks the ACLs"
                time.sleep(0.05)
    finally:
        CURRENT.reset(token)


def client(node: BrokerProcess, mechanism: str, user: str, password: str, **extra) -> dict:
    return {"bootstrap.servers": node.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
            "log_level": 0, **extra}  # fmt: skip


def roundtrip(config: dict, topic: str) -> list[bytes]:
    values = [uuid.uuid4().hex.encode() for _ in range(5)]
    producer = Producer({**config, "acks": "all"})
    for value in values:
        producer.produce(topic, value, partition=0)
    assert producer.flush(30) == 0
    consumer = Consumer({**config, "group.id": "bobs", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: list[bytes] = []
    while not set(values) <= set(seen):
        message = consumer.poll(15)
        assert message is not None and message.error() is None, message and message.error()
        seen.append(message.value())
    consumer.close()
    return values


def test_users_and_acls_replicate_and_survive_a_restart(secured_cluster) -> None:
    one, two, three = secured_cluster
    admin = AdminClient(client(one, "PLAIN", "admin", "admin-secret"))
    admin.create_topics([NewTopic(TOPIC, 1, 3)])[TOPIC].result(30)
    bob = UserScramCredentialUpsertion(
        "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"bob-secret"
    )
    for future in admin.alter_user_scram_credentials([bob]).values():
        future.result(30)
    bindings = [
        AclBinding(ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL, "User:bob", "*",
                   operation, AclPermissionType.ALLOW)
        for operation in (AclOperation.WRITE, AclOperation.READ)
    ]  # fmt: skip
    # librdkafka's consumer looks its group's coordinator up even when it assigns partitions.
    group_read = AclBinding(ResourceType.GROUP, "bobs", ResourcePatternType.LITERAL, "User:bob",
                            "*", AclOperation.READ, AclPermissionType.ALLOW)  # fmt: skip
    bindings.append(group_read)
    for future in admin.create_acls(bindings).values():
        future.result(30)
    wait_for_acls_everywhere(secured_cluster, len(bindings))

    # Through node 3 only: bob's SCRAM credential and ACLs are there too.
    as_bob = client(three, "SCRAM-SHA-512", "bob", "bob-secret")
    assert roundtrip(as_bob, TOPIC)
    errors: list[KafkaError] = []
    producer = Producer({**as_bob, "message.timeout.ms": 10000})
    producer.produce("elsewhere", b"x", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(20)
    assert [e.code() for e in errors if e is not None] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]

    # Node 2 restarted: it reads them back from its metadata log.
    two.stop()
    two.start(90)
    assert roundtrip(client(two, "SCRAM-SHA-512", "bob", "bob-secret"), TOPIC)
