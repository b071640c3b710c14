"""Listeners, the security protocol map and the controller quorum voters."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from rafka.broker.config.definitions import SECURITY_PROTOCOLS

# ---------------------------------------------------------------------------------------------
# Endpoints


class Listener(NamedTuple):
    """A listener endpoint; host "" means all interfaces; port 0 means an ephemeral port."""

    name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    @property
    def bind_host(self) -> str | None:
        """Host for asyncio's create_server: None binds every interface (IPv4 and IPv6)."""
        return self.host or None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


class QuorumVoter(NamedTuple):
    node_id: int
    host: str
    port: int


def split_host_port(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]+", port_text):
        raise ValueError(f"{text!r} is not host:port")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not re.fullmatch(r"[0-9A-Za-z\-%._:]*", host):
        raise ValueError(f"invalid host {host!r}")
    return host, port


def parse_protocol_map(text: str) -> dict[str, str]:
    """ "NAME:PROTOCOL,..." with names normalised to upper case, as Kafka's ListenerName does."""
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, protocol = item.partition(":")
        name, protocol = name.strip().upper(), protocol.strip().upper()
        if not sep or not name or protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"{item!r} is not NAME:PROTOCOL with a protocol among "
                f"{', '.join(SECURITY_PROTOCOLS)}"
            )
        if name in mapping:
            raise ValueError(f"listener name {name} is mapped twice")
        mapping[name] = protocol
    return mapping


def parse_listeners(text: str, protocols: Mapping[str, str]) -> list[Listener]:
    """Parse "NAME://host:port,..."; each name needs a security protocol in `protocols`."""
    listeners: list[Listener] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, address = item.partition("://")
        name = name.strip().upper()
        if not sep or not name:
            raise ValueError(f"{item!r} is not NAME://host:port")
        host, port = split_host_port(address)
        if name not in protocols:
            raise ValueError(
                f"listener {name} has no security protocol in listener.security.protocol.map"
            )
        if any(existing.name == name for existing in listeners):
            raise ValueError(f"listener name {name} appears twice")
        listeners.append(Listener(name, host, port, protocols[name]))
    return listeners


_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def same_socket(first: Listener, second: Listener) -> bool:
    if first.port == 0 or first.port != second.port:
        return False
    return first.host == second.host or bool({first.host, second.host} & _WILDCARDS)


def parse_voters(items: Iterable[str]) -> list[QuorumVoter]:
    """Parse controller.quorum.voters entries "id@host:port"."""
    voters: list[QuorumVoter] = []
    for item in items:
        node_text, sep, address = item.partition("@")
        if not sep or not re.fullmatch(r"[0-9]+", node_text.strip()):
            raise ValueError(f"{item!r} is not id@host:port")
        host, port = split_host_port(address.strip())
        if not host or port == 0:
            raise ValueError(f"{item!r} needs a host and a non-zero port")
        node_id = int(node_text)
        if any(voter.node_id == node_id for voter in voters):
            raise ValueError(f"voter {node_id} appears twice")
        voters.append(QuorumVoter(node_id, host, port))
    return voters
