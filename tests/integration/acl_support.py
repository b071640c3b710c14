"""A broker with ACLs for the authorization tests: a SASL_PLAINTEXT listener with PLAIN users
`admin` (a super user), `alice` and `bob` (passwords `<name>-secret`), StandardAuthorizer, and a
PLAINTEXT listener for nothing but the broker's own readiness (its ANONYMOUS principal has no
ACLs, so it is refused everything). Clients are confluent-kafka, as `<user>`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from broker_process import BrokerProcess, free_port
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

USERS = ("admin", "alice", "bob")
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    + " ".join(f'user_{user}="{user}-secret"' for user in USERS)
    + ";"
)


def acl_broker(data_dir: Path, **overrides: str) -> BrokerProcess:
    plain, sasl = free_port(), free_port()
    broker = BrokerProcess(
        data_dir,
        plain,
        **{
            "listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin",
            **overrides,
        },
    )
    broker.sasl_bootstrap = f"127.0.0.1:{sasl}"  # type: ignore[attr-defined]
    return broker


def as_user(broker: BrokerProcess, user: str, **extra: Any) -> dict[str, Any]:
    """confluent-kafka settings of a client authenticated as `user`."""
    return {
        "bootstrap.servers": broker.sasl_bootstrap,  # type: ignore[attr-defined]
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": f"{user}-secret",
        "log_level": 0,
        **extra,
    }


def admin(broker: BrokerProcess, user: str = "admin") -> AdminClient:
    return AdminClient(as_user(broker, user))


def allow(
    broker: BrokerProcess,
    user: str,
    resource_type: ResourceType,
    name: str,
    operation: AclOperation,
    permission: AclPermissionType = AclPermissionType.ALLOW,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
) -> None:
    """Create one ACL as the super user and wait for it."""
    binding = AclBinding(resource_type, name, pattern, f"User:{user}", "*", operation, permission)
    client = admin(broker)  # kept until the futures are done: a destroyed client fails them
    for future in client.create_acls([binding]).values():
        future.result(20)


def deny(broker: BrokerProcess, user: str, resource_type: ResourceType, name: str,
         operation: AclOperation) -> None:  # fmt: skip
    allow(broker, user, resource_type, name, operation, AclPermissionType.DENY)


def delete_all(broker: BrokerProcess) -> None:
    wanted = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
        AclPermissionType.ANY,
    )  # fmt: skip
    client = admin(broker)
    for future in client.delete_acls([wanted]).values():
        future.result(20)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create_topics(broker: BrokerProcess, *names: str) -> None:
    """One-partition topics, created by the super user."""
    client = admin(broker)
    for future in client.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        future.result(20)


def produce(broker: BrokerProcess, topic: str, count: int) -> None:
    """`count` records m0, m1, ... produced by the super user."""
    producer = Producer(as_user(broker, "admin"))
    for i in range(count):
        producer.produce(topic, f"m{i}".encode())
    assert producer.flush(20) == 0
