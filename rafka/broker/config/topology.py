"""The node's listeners and quorum, derived across keys: the security protocol of every listener,
the controller, broker and advertised listeners, the inter-broker listener, and the checks that
they and controller.quorum.voters fit the node's process.roles.

These read a BrokerConfig through `Settings` and raise `Invalid` naming the key to blame;
BrokerConfig turns that into a ConfigError with the key's source.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from rafka.broker.config.definitions import SECURITY_PROTOCOLS
from rafka.broker.config.endpoints import (
    Listener,
    QuorumVoter,
    parse_listeners,
    parse_protocol_map,
    same_socket,
)


class Settings(Protocol):
    """The typed reads of a BrokerConfig these derivations need."""

    def get(self, name: str) -> Any: ...
    def get_str(self, name: str) -> str | None: ...
    def is_set(self, name: str) -> bool: ...


class Invalid(Exception):
    """A cross-key check failed; `key` is the configuration reported."""

    def __init__(self, key: str, reason: object) -> None:
        super().__init__(key, reason)
        self.key = key
        self.reason = reason


class ListenerLayout(NamedTuple):
    security_protocol_map: dict[str, str]
    controller_listener_names: list[str]
    listeners: list[Listener]
    advertised_broker: list[Listener]  # advertised non-controller listeners, host "" kept
    inter_broker_listener_name: str


def resolve_listeners(settings: Settings, is_broker: bool) -> ListenerLayout:
    try:
        protocols = parse_protocol_map(settings.get("listener.security.protocol.map"))
    except ValueError as exc:
        raise Invalid("listener.security.protocol.map", exc) from None
    names_raw = settings.get_str("controller.listener.names") or ""
    controller_listener_names = [n.strip().upper() for n in names_raw.split(",") if n.strip()]
    if not settings.is_set("listener.security.protocol.map"):
        # As Kafka does with KRaft: controller listeners default to PLAINTEXT unless TLS/SASL
        # is in use somewhere.
        secure = set(SECURITY_PROTOCOLS) - {"PLAINTEXT"}
        listener_names = {
            item.partition("://")[0].strip().upper()
            for item in settings.get("listeners").split(",")
        }
        if not (secure & (set(controller_listener_names) | listener_names)):
            for name in controller_listener_names:
                protocols.setdefault(name, "PLAINTEXT")

    try:
        listeners = parse_listeners(settings.get("listeners"), protocols)
    except ValueError as exc:
        raise Invalid("listeners", exc) from None
    for index, first in enumerate(listeners):
        for second in listeners[index + 1 :]:
            if same_socket(first, second):
                raise Invalid(
                    "listeners",
                    f"{first.name} and {second.name} use the same port on overlapping addresses",
                )
    names = {lst.name for lst in listeners}
    for name in controller_listener_names:
        if name not in protocols:
            raise Invalid(
                "controller.listener.names",
                f"{name} has no security protocol in listener.security.protocol.map",
            )

    advertised_text = settings.get_str("advertised.listeners")
    try:
        advertised = (
            listeners if advertised_text is None else parse_listeners(advertised_text, protocols)
        )
    except ValueError as exc:
        raise Invalid("advertised.listeners", exc) from None
    if any(lst.host == "0.0.0.0" for lst in advertised):
        raise Invalid("advertised.listeners", "cannot advertise 0.0.0.0; use a routable address")
    controller_names = set(controller_listener_names)
    advertised_broker = [lst for lst in advertised if lst.name not in controller_names]

    inter_name = settings.get_str("inter.broker.listener.name")
    if inter_name is not None and settings.is_set("security.inter.broker.protocol"):
        raise Invalid(
            "inter.broker.listener.name",
            "set either it or security.inter.broker.protocol, not both",
        )
    inter_broker_listener_name = (
        inter_name or settings.get("security.inter.broker.protocol")
    ).upper()

    if is_broker:
        advertised_names = {lst.name for lst in advertised_broker}
        if not advertised_names:
            raise Invalid(
                "listeners",
                "there must be at least one broker listener "
                "(not named in controller.listener.names)",
            )
        if not advertised_names <= names:
            raise Invalid(
                "advertised.listeners",
                f"names {', '.join(sorted(advertised_names - names))} are not in listeners",
            )
        if inter_broker_listener_name not in advertised_names:
            key = (
                "inter.broker.listener.name"
                if inter_name is not None
                else "security.inter.broker.protocol"
            )
            raise Invalid(
                key,
                f"listener {inter_broker_listener_name} is not among "
                f"the broker listeners {', '.join(sorted(advertised_names))}",
            )
    return ListenerLayout(
        protocols,
        controller_listener_names,
        listeners,
        advertised_broker,
        inter_broker_listener_name,
    )


def validate_quorum(
    layout: ListenerLayout,
    voters: list[QuorumVoter],
    node_id: int,
    *,
    is_broker: bool,
    is_controller: bool,
    single_node: bool,
) -> None:
    """controller.quorum.voters and the controller listeners against the node's roles."""
    voter_ids = {voter.node_id for voter in voters}
    names = {lst.name for lst in layout.listeners}
    controller_names = set(layout.controller_listener_names)
    if not is_controller:
        if single_node:
            raise Invalid(
                "controller.quorum.voters",
                "a broker-only node needs the controller quorum: set it or "
                "controller.quorum.bootstrap.servers",
            )
        if node_id in voter_ids:
            raise Invalid(
                "controller.quorum.voters", f"must not contain broker-only node {node_id}"
            )
        if not controller_names:
            raise Invalid(
                "controller.listener.names",
                "must name the controllers' listener on a broker-only node",
            )
        if controller_names & names:
            raise Invalid(
                "controller.listener.names",
                "must not appear in listeners on a broker-only node",
            )
        return
    if voter_ids and node_id not in voter_ids:
        raise Invalid(
            "controller.quorum.voters", f"must contain this controller's node.id {node_id}"
        )
    if controller_names - names:
        raise Invalid(
            "controller.listener.names",
            f"{', '.join(sorted(controller_names - names))} not in listeners",
        )
    if not single_node and not controller_names:
        # A one-voter in-process quorum (rafka single-node mode) needs no controller listener.
        raise Invalid(
            "controller.listener.names",
            "must name a listener of this controller (e.g. CONTROLLER)",
        )
    if not is_broker and len(names - controller_names) > 0:
        raise Invalid("listeners", "a controller-only node may only have controller listeners")
