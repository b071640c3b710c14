"""ACLs and their evaluation, as Kafka's StandardAuthorizer does it, sans I/O.

An ACL allows or denies a principal (`User:alice`, `User:*`) from a host (`*` or an address) an
operation on resources named literally (`orders`, `*` for all) or by prefix. A request is
allowed when the principal is a super user, or when some ALLOW ACL matches and no DENY ACL does
(DENY wins); a resource that no ACL names at all is allowed only with
allow.everyone.if.no.acl.found. READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS
implies DESCRIBE_CONFIGS; ALL covers every operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import IntEnum

from msgspec import Struct

CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


# What an ALLOW of the key also allows (Kafka's implied operations).
_IMPLIES = {
    Operation.READ: {Operation.DESCRIBE},
    Operation.WRITE: {Operation.DESCRIBE},
    Operation.DELETE: {Operation.DESCRIBE},
    Operation.ALTER: {Operation.DESCRIBE},
    Operation.ALTER_CONFIGS: {Operation.DESCRIBE_CONFIGS},
}
# The operations each resource type has (for the *_authorized_operations bit fields).
OPERATIONS_OF = {
    ResourceType.TOPIC: (
        Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE, Operation.DELETE,
        Operation.ALTER, Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS,
    ),
    ResourceType.GROUP: (Operation.READ, Operation.DESCRIBE, Operation.DELETE),
    ResourceType.CLUSTER: (
        Operation.CREATE, Operation.CLUSTER_ACTION, Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS, Operation.IDEMPOTENT_WRITE, Operation.ALTER, Operation.DESCRIBE,
    ),
    ResourceType.TRANSACTIONAL_ID: (Operation.DESCRIBE, Operation.WRITE),
}  # fmt: skip


class AclError(ValueError):
    """An ACL or filter Kafka would refuse; the message is for the client."""


class AclBinding(Struct, frozen=True):
    """One ACL: a resource pattern and an access control entry."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def check(self) -> None:
        """Refuse what Kafka refuses in CreateAcls."""
        if self.resource_type in (ResourceType.ANY, ResourceType.UNKNOWN):
            raise AclError("Invalid resource type")
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise AclError("Invalid pattern type: ACLs are LITERAL or PREFIXED")
        if self.operation in (Operation.ANY, Operation.UNKNOWN):
            raise AclError("Invalid operation")
        if self.permission not in (Permission.ALLOW, Permission.DENY):
            raise AclError("Invalid permission type")
        if not self.resource_name:
            raise AclError("Resource name must not be empty")
        if self.resource_type is ResourceType.CLUSTER and self.resource_name != CLUSTER_NAME:
            raise AclError(f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
        if self.pattern_type is PatternType.PREFIXED and self.resource_name == WILDCARD:
            raise AclError("A PREFIXED pattern cannot be the wildcard '*'")
        kind, sep, name = self.principal.partition(":")
        if not sep or not kind or not name:
            raise AclError(f"Could not parse principal from `{self.principal}`")
        if not self.host:
            raise AclError("Host must not be empty")

    def names(self, resource_name: str) -> bool:
        """Whether this ACL's pattern covers a resource of its type named `resource_name`."""
        if self.pattern_type is PatternType.LITERAL:
            return self.resource_name in (WILDCARD, resource_name)
        return resource_name.startswith(self.resource_name)


class AclFilter(Struct, frozen=True):
    """DescribeAcls and DeleteAcls filters: ANY (or None for strings) matches anything; the
    MATCH pattern type matches the ACLs that would apply to the named resource."""

    resource_type: ResourceType
    resource_name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: Operation
    permission: Permission

    def matches(self, acl: AclBinding) -> bool:
        if self.resource_type is not ResourceType.ANY and acl.resource_type != self.resource_type:
            return False
        if not self._pattern_matches(acl):
            return False
        if self.principal is not None and acl.principal != self.principal:
            return False
        if self.host is not None and acl.host != self.host:
            return False
        if self.operation is not Operation.ANY and acl.operation != self.operation:
            return False
        return self.permission is Permission.ANY or acl.permission == self.permission

    def _pattern_matches(self, acl: AclBinding) -> bool:
        if self.pattern_type is PatternType.MATCH:
            return self.resource_name is None or acl.names(self.resource_name)
        if self.pattern_type is not PatternType.ANY and acl.pattern_type != self.pattern_type:
            return False
        return self.resource_name is None or acl.resource_name == self.resource_name

    def check(self) -> None:
        if self.resource_type is ResourceType.UNKNOWN:
            raise AclError("Invalid resource type filter")
        if self.pattern_type is PatternType.UNKNOWN:
            raise AclError("Invalid pattern type filter")
        if self.operation is Operation.UNKNOWN or self.permission is Permission.UNKNOWN:
            raise AclError("Invalid operation or permission type filter")


class Authorizer:
    """Evaluates requests against the ACLs `acls()` returns (the metadata image's, as applied)."""

    def __init__(
        self,
        acls: Callable[[], Iterable[AclBinding]],
        super_users: Iterable[str] = (),
        allow_if_no_acl_found: bool = False,
    ) -> None:
        self._acls = acls
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl_found = allow_if_no_acl_found

    def authorize(
        self,
        principal: str,
        host: str,
        operation: Operation,
        resource_type: ResourceType,
        resource_name: str,
    ) -> bool:
        if principal in self.super_users:
            return True
        applicable = [
            acl
            for acl in self._acls()
            if acl.resource_type == resource_type and acl.names(resource_name)
        ]
        if not applicable:
            return self.allow_if_no_acl_found
        mine = [
            acl
            for acl in applicable
            if acl.principal in (principal, WILDCARD_PRINCIPAL) and acl.host in (WILDCARD, host)
        ]
        if any(
            acl.permission is Permission.DENY and acl.operation in (Operation.ALL, operation)
            for acl in mine
        ):
            return False
        return any(
            acl.permission is Permission.ALLOW
            and (
                acl.operation in (Operation.ALL, operation)
                or operation in _IMPLIES.get(acl.operation, ())
            )
            for acl in mine
        )

    def authorize_any(
        self, principal: str, host: str, operation: Operation, resource_type: ResourceType
    ) -> bool:
        """Whether the principal may do `operation` on at least one resource of the type, as
        Kafka's Authorizer.authorizeByResourceType (KIP-679's idempotent producers: WRITE on
        any topic). No implied operations here; an ALLOW counts unless a DENY covers its
        whole pattern (the same literal name, or a prefix of it)."""
        # A made-up name lets super users, literal-`*` ALLOWs and allow-if-no-ACL through.
        if self.authorize(principal, host, operation, resource_type, "hardcode"):
            return True
        allowed: list[AclBinding] = []
        denied_literals: set[str] = set()
        denied_prefixes: set[str] = set()
        for acl in self._acls():
            if (
                acl.resource_type != resource_type
                or acl.host not in (WILDCARD, host)
                or acl.principal not in (principal, WILDCARD_PRINCIPAL)
                or acl.operation not in (Operation.ALL, operation)
            ):
                continue
            if acl.permission is Permission.DENY:
                if acl.pattern_type is PatternType.PREFIXED:
                    denied_prefixes.add(acl.resource_name)
                elif acl.resource_name == WILDCARD:
                    return False
                else:
                    denied_literals.add(acl.resource_name)
            elif acl.permission is Permission.ALLOW:
                allowed.append(acl)
        if any(a.pattern_type is PatternType.LITERAL and a.resource_name == WILDCARD
               for a in allowed):  # fmt: skip
            return True
        for acl in allowed:
            name = acl.resource_name
            if acl.pattern_type is PatternType.LITERAL and name in denied_literals:
                continue
            if not any(name[:end] in denied_prefixes for end in range(1, len(name) + 1)):
                return True
        return False

    def authorized_operations(
        self, principal: str, host: str, resource_type: ResourceType, resource_name: str
    ) -> int:
        """Kafka's bit field of the operations allowed (bit n for operation code n)."""
        bits = 0
        for operation in OPERATIONS_OF.get(resource_type, ()):
            if self.authorize(principal, host, operation, resource_type, resource_name):
                bits |= 1 << operation
        return bits


def acl_record(acl_id: str, acl: AclBinding) -> dict[str, object]:
    """The metadata-log record of an ACL (Kafka's AccessControlEntryRecord, as JSON)."""
    return {
        "type": "acl",
        "id": acl_id,
        "resource_type": int(acl.resource_type),
        "resource_name": acl.resource_name,
        "pattern_type": int(acl.pattern_type),
        "principal": acl.principal,
        "host": acl.host,
        "operation": int(acl.operation),
        "permission": int(acl.permission),
    }


def acl_from_record(record: dict) -> AclBinding:
    return AclBinding(
        ResourceType(record["resource_type"]),
        record["resource_name"],
        PatternType(record["pattern_type"]),
        record["principal"],
        record["host"],
        Operation(record["operation"]),
        Permission(record["permission"]),
    )
