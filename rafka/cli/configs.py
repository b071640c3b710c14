"""`rafka configs`: describe and alter topic, broker and group configs (like kafka-configs.sh).

A resource is `--topic NAME`, `--broker ID`, `--broker-defaults` (the cluster-wide dynamic
broker defaults) or `--group ID` (a group's configs, e.g. share.auto.offset.reset).
`describe` shows the overrides (dynamic configs) unless `--all` asks for every config;
`alter` uses IncrementalAlterConfigs, so only the named configs change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from rafka.cli.admin_common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    CommandConfigOption,
    JsonOption,
    admin_client,
    command_app,
    fail,
    parse_config_pairs,
    parse_names,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from rafka.cli.admin_client import ConfigInfo

app = command_app("configs", "Describe and alter topic and broker configs.")

TopicOption = Annotated[str | None, typer.Option("--topic", "-t", help="A topic.")]
BrokerOption = Annotated[int | None, typer.Option("--broker", help="A broker id.")]
DefaultsOption = Annotated[
    bool, typer.Option("--broker-defaults", help="The cluster-wide dynamic broker defaults.")
]
GroupOption = Annotated[
    str | None,
    typer.Option(
        "--group", help="A consumer or share group (kafka-configs' --entity-type groups)."
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option("--user", help="A SCRAM user (kafka-configs' --entity-type users)."),
]
# What `describe` shows without --all: the configs set on the resource itself.
_OVERRIDE_SOURCES = {
    "topic": {"DYNAMIC_TOPIC_CONFIG"},
    "broker": {"DYNAMIC_BROKER_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG"},
    "group": {"GROUP_CONFIG"},
}


def _resource(
    topic: str | None, broker: int | None, defaults: bool, group: str | None = None
) -> tuple[str, int, str]:
    """(kind, resource type, resource name) from the exclusive resource options."""
    from rafka.cli.admin_client import RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC

    chosen = (topic is not None) + (broker is not None) + defaults + (group is not None)
    if chosen != 1:
        fail("give exactly one of --topic, --broker, --broker-defaults or --group")
    if group is not None:
        return "group", RESOURCE_GROUP, group
    if topic is not None:
        return "topic", RESOURCE_TOPIC, topic
    if broker is not None:
        return "broker", RESOURCE_BROKER, str(broker)
    return "broker", RESOURCE_BROKER, ""


def _is_override(config: ConfigInfo, sources: set[str]) -> bool:
    """Whether the config itself is set at a dynamic level. A broker key takes its source from
    its highest synonym (log.retention.hours from a dynamic log.retention.ms), so the synonyms
    decide when the broker sent them."""
    if not config.synonyms:
        return config.source in sources
    return any(s["name"] == config.name and s["source"] in sources for s in config.synonyms)


def _label(kind: str, name: str) -> str:
    if kind in ("topic", "group"):
        return f"{kind} {name}"
    return f"broker {name}" if name else "the broker defaults"


@app.command("describe")
def describe(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    topic: TopicOption = None,
    broker: BrokerOption = None,
    broker_defaults: DefaultsOption = False,
    group: GroupOption = None,
    user: UserOption = None,
    all_configs: Annotated[
        bool, typer.Option("--all", help="Every config with its value, not just overrides.")
    ] = False,
    synonyms: Annotated[
        bool, typer.Option("--synonyms", help="Show where each value comes from, in order.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Show a topic's, broker's or SCRAM user's configs."""
    if user is not None:
        return _describe_user(bootstrap_server, command_config, user, topic, broker,
                              broker_defaults, json_output)  # fmt: skip
    kind, resource_type, name = _resource(topic, broker, broker_defaults, group)
    with admin_client(bootstrap_server, command_config) as client:
        # Synonyms tell a key set on the resource from one whose synonym is (see _is_override).
        configs = client.describe_configs(resource_type, name, synonyms=True)
    if not all_configs and name:
        configs = [c for c in configs if _is_override(c, _OVERRIDE_SOURCES[kind])]
    rows: list[dict[str, Any]] = [
        {
            "name": c.name,
            "value": c.value,
            "source": c.source,
            "read_only": c.read_only,
            "sensitive": c.sensitive,
            **({"synonyms": c.synonyms} if synonyms else {}),
        }
        for c in configs
    ]
    if json_output:
        print_json({"resource": kind, "name": name, "configs": rows})
        return
    what = "Configs" if all_configs else "Dynamic configs"
    typer.echo(f"{what} for {_label(kind, name)}:")
    headers = ["NAME", "VALUE", "SOURCE", "READ-ONLY", "SENSITIVE"]
    table = [
        [
            r["name"],
            "(sensitive)" if r["sensitive"] else ("null" if r["value"] is None else r["value"]),
            r["source"],
            str(r["read_only"]).lower(),
            str(r["sensitive"]).lower(),
        ]
        for r in rows
    ]
    if synonyms:
        headers.append("SYNONYMS")
        for row, r in zip(table, rows, strict=True):
            row.append(", ".join(f"{s['source']}:{s['name']}={s['value']}" for s in r["synonyms"]))
    print_table(headers, table)


@app.command("alter")
def alter(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    topic: TopicOption = None,
    broker: BrokerOption = None,
    broker_defaults: DefaultsOption = False,
    group: GroupOption = None,
    user: UserOption = None,
    add_config: Annotated[
        list[str] | None,
        typer.Option(
            "--add-config", metavar="K=V,...", help="Set configs (list values as k=\\[a,b])."
        ),
    ] = None,
    delete_config: Annotated[
        list[str] | None,
        typer.Option("--delete-config", metavar="K,...", help="Remove config overrides."),
    ] = None,
    append_config: Annotated[
        list[str] | None,
        typer.Option("--append-config", metavar="K=V,...", help="Add items to list configs."),
    ] = None,
    subtract_config: Annotated[
        list[str] | None,
        typer.Option(
            "--subtract-config", metavar="K=V,...", help="Remove items from list configs."
        ),
    ] = None,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Only check the change; apply nothing.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Set, delete, append to or subtract from a topic's or broker's configs, or a SCRAM
    user's credentials (--user with --add-config 'SCRAM-SHA-256=[password=...]')."""
    from rafka.cli.admin_client import OP_APPEND, OP_DELETE, OP_SET, OP_SUBTRACT

    if user is not None:
        if topic is not None or broker is not None or broker_defaults or group is not None:
            fail("give exactly one of --topic, --broker, --broker-defaults, --group or --user")
        return _alter_user(bootstrap_server, command_config, user, add_config or [],
                           delete_config or [], json_output)  # fmt: skip

    kind, resource_type, name = _resource(topic, broker, broker_defaults, group)
    try:
        operations: list[tuple[str, int, str | None]] = [
            (k, OP_SET, v) for k, v in parse_config_pairs(add_config or []).items()
        ]
        operations += [
            (k, OP_APPEND, v) for k, v in parse_config_pairs(append_config or []).items()
        ]
        operations += [
            (k, OP_SUBTRACT, v) for k, v in parse_config_pairs(subtract_config or []).items()
        ]
    except ValueError as exc:
        fail(str(exc))
    operations += [(k, OP_DELETE, None) for k in parse_names(delete_config or [])]
    if not operations:
        fail("nothing to alter: give --add-config, --delete-config, --append-config or "
             "--subtract-config")  # fmt: skip
    names = [op[0] for op in operations]
    if len(set(names)) != len(names):
        fail("a config may appear only once per command")
    with admin_client(bootstrap_server, command_config) as client:
        client.alter_configs(resource_type, name, operations, validate_only)
    if json_output:
        print_json(
            {
                "resource": kind,
                "name": name,
                "validate_only": validate_only,
                "operations": [
                    {
                        "name": n,
                        "operation": ["SET", "DELETE", "APPEND", "SUBTRACT"][op],
                        "value": v,
                    }
                    for n, op, v in operations
                ],
            }
        )
    elif validate_only:
        typer.echo(f"Validated the config change for {_label(kind, name)}; nothing applied.")
    else:
        typer.echo(f"Completed updating config for {_label(kind, name)}.")


def _describe_user(
    bootstrap_server: str, command_config: Any, user: str, topic: str | None,
    broker: int | None, broker_defaults: bool, json_output: bool,
) -> None:  # fmt: skip
    from rafka.cli.scram_users import describe_users

    if topic is not None or broker is not None or broker_defaults:
        fail("give exactly one of --topic, --broker, --broker-defaults or --user")
    with admin_client(bootstrap_server, command_config) as client:
        found = describe_users(client, None if user == "" else [user])
    if json_output:
        print_json({"resource": "user", "users": {
            u: [{"mechanism": m, "iterations": i} for m, i in infos]
            for u, infos in found.items()}})  # fmt: skip
        return
    for name, infos in found.items():
        listed = ",".join(f"{m}=iterations={i}" for m, i in infos)
        typer.echo(f"SCRAM credential configs for user-principal '{name}' are {listed}")


def _alter_user(
    bootstrap_server: str, command_config: Any, user: str, add_config: list[str],
    delete_config: list[str], json_output: bool,
) -> None:  # fmt: skip
    from rafka.cli.scram_users import alter_users, parse_scram_settings

    try:
        upserts = [(user, s) for text in add_config for s in parse_scram_settings(text)]
    except ValueError as exc:
        fail(str(exc))
    deletes = [(user, m) for m in parse_names(delete_config)]
    if not upserts and not deletes:
        fail("nothing to alter: give --add-config or --delete-config")
    with admin_client(bootstrap_server, command_config) as client:
        alter_users(client, upserts, deletes)
    if json_output:
        print_json({"resource": "user", "name": user,
                    "added": [s.mechanism for _, s in upserts],
                    "deleted": [m for _, m in deletes]})  # fmt: skip
    else:
        typer.echo(f"Completed updating config for user {user}.")
