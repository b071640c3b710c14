"""ACL evaluation as Kafka's StandardAuthorizer does it (rafka/broker/security/acl.py)."""

from __future__ import annotations

import pytest

from rafka.broker.security.acl import (
    CLUSTER_NAME,
    AclBinding,
    AclError,
    AclFilter,
    Authorizer,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)

TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = Permission.ALLOW, Permission.DENY


def acl(name, operation, permission=ALLOW, principal="User:alice", host="*", kind=TOPIC,
        pattern=LITERAL) -> AclBinding:  # fmt: skip
    return AclBinding(kind, name, pattern, principal, host, operation, permission)


def authorizer(*acls: AclBinding, super_users=(), allow_if_none=False) -> Authorizer:
    return Authorizer(lambda: acls, super_users, allow_if_none)


def test_allow_then_deny_wins() -> None:
    auth = authorizer(acl("orders", Operation.WRITE))
    assert auth.authorize("User:alice", "10.0.0.1", Operation.WRITE, TOPIC, "orders")
    assert not auth.authorize("User:bob", "10.0.0.1", Operation.WRITE, TOPIC, "orders")
    assert not auth.authorize("User:alice", "10.0.0.1", Operation.READ, TOPIC, "orders")
    denied = authorizer(acl("orders", Operation.WRITE), acl("*", Operation.ALL, DENY))
    assert not denied.authorize("User:alice", "10.0.0.1", Operation.WRITE, TOPIC, "orders")


def test_implied_describe_and_describe_configs() -> None:
    auth = authorizer(acl("orders", Operation.READ), acl("orders", Operation.ALTER_CONFIGS))
    assert auth.authorize("User:alice", "h", Operation.DESCRIBE, TOPIC, "orders")
    assert auth.authorize("User:alice", "h", Operation.DESCRIBE_CONFIGS, TOPIC, "orders")
    # A DENY of READ does not deny DESCRIBE.
    mixed = authorizer(acl("orders", Operation.DESCRIBE), acl("orders", Operation.READ, DENY))
    assert mixed.authorize("User:alice", "h", Operation.DESCRIBE, TOPIC, "orders")


def test_prefixed_wildcards_hosts_and_principals() -> None:
    auth = authorizer(
        acl("pay-", Operation.READ, pattern=PREFIXED),
        acl("*", Operation.DESCRIBE, principal="User:*"),
        acl("audit", Operation.READ, host="10.0.0.9"),
    )
    assert auth.authorize("User:alice", "h", Operation.READ, TOPIC, "pay-eu")
    assert not auth.authorize("User:alice", "h", Operation.READ, TOPIC, "payments"[:2])
    assert auth.authorize("User:carol", "h", Operation.DESCRIBE, TOPIC, "anything")
    assert auth.authorize("User:alice", "10.0.0.9", Operation.READ, TOPIC, "audit")
    assert not auth.authorize("User:alice", "10.0.0.8", Operation.READ, TOPIC, "audit")


def test_super_users_and_no_acl_found() -> None:
    auth = authorizer(super_users=["User:admin"])
    assert auth.authorize("User:admin", "h", Operation.ALTER, CLUSTER, CLUSTER_NAME)
    assert not auth.authorize("User:alice", "h", Operation.READ, TOPIC, "orders")
    assert authorizer(allow_if_none=True).authorize("User:x", "h", Operation.READ, TOPIC, "t")
    # Some ACL names the resource: allow.everyone.if.no.acl.found no longer applies.
    named = authorizer(acl("t", Operation.READ, principal="User:bob"), allow_if_none=True)
    assert not named.authorize("User:x", "h", Operation.READ, TOPIC, "t")


def test_authorized_operations_bits() -> None:
    auth = authorizer(acl("g", Operation.READ, kind=GROUP))
    bits = auth.authorized_operations("User:alice", "h", GROUP, "g")
    assert bits == (1 << Operation.READ) | (1 << Operation.DESCRIBE)


def test_filters() -> None:
    read = acl("pay-", Operation.READ, pattern=PREFIXED)
    any_filter = AclFilter(ResourceType.ANY, None, PatternType.ANY, None, None, Operation.ANY,
                           Permission.ANY)  # fmt: skip
    assert any_filter.matches(read)
    match = AclFilter(TOPIC, "pay-eu", PatternType.MATCH, None, None, Operation.ANY,
                      Permission.ANY)  # fmt: skip
    assert match.matches(read)
    literal = AclFilter(TOPIC, "pay-eu", PatternType.LITERAL, None, None, Operation.ANY,
                        Permission.ANY)  # fmt: skip
    assert not literal.matches(read)


@pytest.mark.parametrize(
    "bad",
    [
        acl("kafka", Operation.ALTER, kind=CLUSTER),
        acl("*", Operation.READ, pattern=PREFIXED),
        acl("t", Operation.ANY),
        acl("t", Operation.READ, principal="alice"),
        AclBinding(TOPIC, "t", PatternType.MATCH, "User:a", "*", Operation.READ, ALLOW),
    ],
)
def test_acls_kafka_refuses(bad: AclBinding) -> None:
    with pytest.raises(AclError):
        bad.check()


def test_authorize_any_resource_of_a_type() -> None:
    """Kafka's authorizeByResourceType (InitProducerId's WRITE on any topic, KIP-679)."""

    def may_write_some_topic(*acls: AclBinding, principal="User:alice", host="h", **kw) -> bool:
        return authorizer(*acls, **kw).authorize_any(principal, host, Operation.WRITE, TOPIC)

    assert may_write_some_topic(acl("orders", Operation.WRITE))
    assert may_write_some_topic(acl("pay-", Operation.ALL, pattern=PREFIXED))
    assert may_write_some_topic(acl("*", Operation.WRITE, principal="User:*"))
    # Only the operation itself (or ALL) counts: no implication, no other type, host, user.
    assert not may_write_some_topic(acl("orders", Operation.READ))
    assert not may_write_some_topic(acl("orders", Operation.WRITE, kind=GROUP))
    assert not may_write_some_topic(acl("orders", Operation.WRITE, host="10.0.0.9"))
    assert not may_write_some_topic(acl("orders", Operation.WRITE), principal="User:bob")
    # A DENY that covers the whole ALLOW pattern cancels it; a narrower one does not.
    assert not may_write_some_topic(
        acl("orders", Operation.WRITE), acl("orders", Operation.WRITE, DENY)
    )
    assert not may_write_some_topic(
        acl("pay-eu", Operation.WRITE), acl("pay", Operation.ALL, DENY, pattern=PREFIXED)
    )
    assert may_write_some_topic(
        acl("pay-", Operation.WRITE, pattern=PREFIXED), acl("pay-eu", Operation.WRITE, DENY)
    )
    assert may_write_some_topic(
        acl("a", Operation.WRITE), acl("b", Operation.WRITE), acl("a", Operation.WRITE, DENY)
    )
    # A DENY of every topic wins over everything but super users.
    everything_denied = (acl("orders", Operation.WRITE), acl("*", Operation.WRITE, DENY))
    assert not may_write_some_topic(*everything_denied)
    assert may_write_some_topic(
        *everything_denied, principal="User:admin", super_users=["User:admin"]
    )
    # No ACL at all: allow.everyone.if.no.acl.found decides.
    assert not may_write_some_topic()
    assert may_write_some_topic(allow_if_none=True)
