"""CreateAcls, DescribeAcls and DeleteAcls with real clients: only a principal with ALTER
(DESCRIBE) on the cluster may change (read) ACLs; they are kept in the metadata log across a
restart; without an authorizer the APIs answer SECURITY_DISABLED (issue 16)."""

from __future__ import annotations

import pytest
from acl_support import acl_broker, admin, allow
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from kafka.admin import (
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePatternFilter,
)
from kafka.admin import ResourceType as KpResourceType
from kafka.errors import ClusterAuthorizationFailedError, SecurityDisabledError

pytestmark = pytest.mark.timeout(120)

EVERYTHING = AclBindingFilter(
    ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
    AclPermissionType.ANY,
)  # fmt: skip


def kp_everything() -> ACLFilter:
    pattern = ResourcePatternFilter(KpResourceType.ANY, None, ACLResourcePatternType.ANY)
    return ACLFilter(principal=None, host="*", operation=ACLOperation.ANY,
                     permission_type=ACLPermissionType.ANY, resource_pattern=pattern)  # fmt: skip


def described(client: AdminClient) -> set[tuple]:
    bindings = client.describe_acls(EVERYTHING).result(20)  # `client` lives until here
    return {(b.restype, b.name, b.resource_pattern_type, b.principal, b.operation,
             b.permission_type) for b in bindings}  # fmt: skip


@pytest.fixture
def acl_broker_process(tmp_path):
    """Killed by PID whatever the test did (it restarts it)."""
    broker = acl_broker(tmp_path / "data")
    yield broker
    broker.kill()


def test_acls_are_created_described_kept_and_deleted(acl_broker_process) -> None:
    broker = acl_broker_process.start()
    allow(broker, "alice", ResourceType.TOPIC, "orders", AclOperation.WRITE)
    allow(broker, "bob", ResourceType.TOPIC, "pay-", AclOperation.READ,
          pattern=ResourcePatternType.PREFIXED)  # fmt: skip
    expected = {
        (ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice",
         AclOperation.WRITE, AclPermissionType.ALLOW),
        (ResourceType.TOPIC, "pay-", ResourcePatternType.PREFIXED, "User:bob",
         AclOperation.READ, AclPermissionType.ALLOW),
    }  # fmt: skip
    assert described(admin(broker)) == expected

    # Not the super user: no DESCRIBE or ALTER on the cluster.
    # kafka-python raises the error (confluent-kafka's describe_acls hands back an empty list).
    alice_kp = KafkaAdminClient(
        bootstrap_servers=broker.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN", sasl_plain_username="alice", sasl_plain_password="alice-secret",
    )  # fmt: skip
    with pytest.raises(ClusterAuthorizationFailedError):
        alice_kp.describe_acls(kp_everything())
    alice_kp.close()
    alice = admin(broker, "alice")
    binding = AclBinding(ResourceType.TOPIC, "x", ResourcePatternType.LITERAL, "User:alice",
                         "*", AclOperation.READ, AclPermissionType.ALLOW)  # fmt: skip
    with pytest.raises(KafkaException):
        for future in alice.create_acls([binding]).values():
            future.result(20)

    broker.stop()
    broker.start()
    assert described(admin(broker)) == expected
    wanted = AclBindingFilter(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, None,
                              None, AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    client = admin(broker)
    deleted = client.delete_acls([wanted])[wanted].result(20)
    assert [b.name for b in deleted] == ["orders"]
    assert {row[1] for row in described(admin(broker))} == {"pay-"}


def test_without_an_authorizer_the_acl_apis_are_disabled(broker) -> None:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    with pytest.raises(SecurityDisabledError):
        client.describe_acls(kp_everything())
    client.close()
