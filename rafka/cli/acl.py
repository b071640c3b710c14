"""`rafka acl`: kafka-acls' flags (--add, --remove, --list with --allow-principal,
--deny-principal, --operation, --topic, --group, --cluster, --transactional-id,
--resource-pattern-type, and the --producer/--consumer conveniences), through the ACL APIs, so
it works against any Kafka-compatible cluster with an authorizer."""

from __future__ import annotations

from typing import Annotated

import typer

from rafka.broker.security.acl import (
    CLUSTER_NAME,
    AclBinding,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from rafka.cli.acl_client import acl_filter, acl_json, create_acls, delete_acls, describe_acls
from rafka.cli.admin_common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    CommandConfigOption,
    JsonOption,
    admin_client,
    fail,
    print_json,
)

Many = Annotated[list[str] | None, typer.Option()]
PATTERNS = {"literal": PatternType.LITERAL, "prefixed": PatternType.PREFIXED,
            "any": PatternType.ANY, "match": PatternType.MATCH}  # fmt: skip


def _operation(name: str) -> Operation:
    key = "".join(c for c in name.upper() if c.isalpha())
    for op in Operation:
        if op.name.replace("_", "") == key and op not in (Operation.UNKNOWN, Operation.ANY):
            return op
    fail(f"unknown operation {name!r} (Read, Write, Create, Delete, Alter, Describe, "
         "ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All)")  # fmt: skip


def _resources(
    topics: list[str], groups: list[str], cluster: bool, transactional_ids: list[str]
) -> list[tuple[ResourceType, str]]:
    return [
        *((ResourceType.TOPIC, t) for t in topics),
        *((ResourceType.GROUP, g) for g in groups),
        *([(ResourceType.CLUSTER, CLUSTER_NAME)] if cluster else []),
        *((ResourceType.TRANSACTIONAL_ID, t) for t in transactional_ids),
    ]


def _print(acls: list[AclBinding]) -> None:
    """Kafka's kafka-acls listing: the ACLs under each resource pattern."""
    by_pattern: dict[tuple, list[AclBinding]] = {}
    for acl in acls:
        key = (acl.resource_type.name, acl.resource_name, acl.pattern_type.name)
        by_pattern.setdefault(key, []).append(acl)
    for (kind, name, pattern), entries in sorted(by_pattern.items()):
        typer.echo(f"Current ACLs for resource `ResourcePattern(resourceType={kind}, "
                   f"name={name}, patternType={pattern})`: ")  # fmt: skip
        for acl in entries:
            typer.echo(f" \t(principal={acl.principal}, host={acl.host}, "
                       f"operation={acl.operation.name}, "
                       f"permissionType={acl.permission.name})")  # fmt: skip
        typer.echo("")


def acl(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    add: Annotated[bool, typer.Option("--add", help="Add the ACLs described.")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the ACLs matching.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the ACLs matching.")] = False,
    topic: Annotated[list[str] | None, typer.Option("--topic", help="Topic (or '*').")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="Group (or '*').")] = None,
    cluster: Annotated[bool, typer.Option("--cluster", help="The cluster resource.")] = False,
    transactional_id: Annotated[
        list[str] | None, typer.Option("--transactional-id", help="Transactional id.")
    ] = None,
    pattern_type: Annotated[
        str | None,
        typer.Option(
            "--resource-pattern-type",
            help="literal (default), prefixed; for --list/--remove also any, match.",
        ),
    ] = None,  # fmt: skip
    allow_principal: Annotated[
        list[str] | None, typer.Option("--allow-principal", help="e.g. User:alice")
    ] = None,
    deny_principal: Annotated[list[str] | None, typer.Option("--deny-principal")] = None,
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host")] = None,
    deny_host: Annotated[list[str] | None, typer.Option("--deny-host")] = None,
    operation: Annotated[
        list[str] | None, typer.Option("--operation", help="Read, Write, Describe, All, ...")
    ] = None,
    principal: Annotated[
        list[str] | None, typer.Option("--principal", help="With --list: only these.")
    ] = None,
    producer: Annotated[
        bool, typer.Option("--producer", help="WRITE, DESCRIBE, CREATE on the topics.")
    ] = False,
    consumer: Annotated[
        bool, typer.Option("--consumer", help="READ, DESCRIBE on the topics, READ on the groups.")
    ] = False,
    idempotent: Annotated[bool, typer.Option("--idempotent", help="With --producer.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Accepted: never asks.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Add, remove or list ACLs, like kafka-acls."""
    if [add, remove, list_].count(True) != 1:
        fail("give exactly one of --add, --remove, --list")
    resources = _resources(topic or [], group or [], cluster, transactional_id or [])
    pattern = PATTERNS.get((pattern_type or ("literal" if add else "any")).lower())
    if pattern is None or (add and pattern not in (PatternType.LITERAL, PatternType.PREFIXED)):
        fail(f"--resource-pattern-type {pattern_type!r}: literal or prefixed"
             + ("" if add else ", any or match"))  # fmt: skip
    with admin_client(bootstrap_server, command_config) as client:
        if list_:
            queries = [acl_filter(t, n, pattern) for t, n in resources] or [acl_filter()]
            found = [a for q in queries for a in describe_acls(client, q)
                     if not principal or a.principal in principal]  # fmt: skip
            print_json([acl_json(a) for a in found]) if json_output else _print(found)
            return
        wanted = _entries(resources, pattern, allow_principal, deny_principal, allow_host,
                          deny_host, operation, producer, consumer, idempotent, add)  # fmt: skip
        if add:
            create_acls(client, wanted)
            typer.echo(f"Added {len(wanted)} ACL(s).") if not json_output else print_json(
                [acl_json(a) for a in wanted])  # fmt: skip
        else:
            queries = [acl_filter(a.resource_type, a.resource_name, a.pattern_type, a.principal,
                                a.host, a.operation, a.permission) for a in wanted]  # fmt: skip
            removed = delete_acls(client, queries)
            if json_output:
                print_json([acl_json(a) for a in removed])
            else:
                typer.echo(f"Removed {len(removed)} ACL(s).")


def _entries(
    resources: list[tuple[ResourceType, str]], pattern: PatternType,
    allow_principal: list[str] | None, deny_principal: list[str] | None,
    allow_host: list[str] | None, deny_host: list[str] | None, operation: list[str] | None,
    producer: bool, consumer: bool, idempotent: bool, add: bool,
) -> list[AclBinding]:  # fmt: skip
    """The ACLs the flags describe: each principal × host × operation × resource."""
    if not resources:
        fail("name a resource: --topic, --group, --cluster or --transactional-id")
    grants = [(p, Permission.ALLOW, allow_host or ["*"]) for p in allow_principal or []]
    grants += [(p, Permission.DENY, deny_host or ["*"]) for p in deny_principal or []]
    if not grants:
        fail("give --allow-principal or --deny-principal")
    per_resource: list[tuple[ResourceType, str, Operation]] = []
    for kind, name in resources:
        ops = [_operation(o) for o in operation or []]
        if producer and kind is ResourceType.TOPIC:
            ops += [Operation.WRITE, Operation.DESCRIBE, Operation.CREATE]
        if producer and kind is ResourceType.TRANSACTIONAL_ID:
            ops += [Operation.WRITE, Operation.DESCRIBE]
        if consumer and kind is ResourceType.TOPIC:
            ops += [Operation.READ, Operation.DESCRIBE]
        if consumer and kind is ResourceType.GROUP:
            ops += [Operation.READ]
        per_resource += [(kind, name, op) for op in dict.fromkeys(ops)]
    if producer and idempotent:
        per_resource.append((ResourceType.CLUSTER, CLUSTER_NAME, Operation.IDEMPOTENT_WRITE))
    if not per_resource:
        fail("give --operation, or --producer/--consumer")
    return [
        AclBinding(kind, name, pattern, who, host, op, permission)
        for who, permission, hosts in grants
        for host in hosts
        for kind, name, op in per_resource
    ]
