"""The node's security, built from its configuration by the composition root: TLS and SASL for
its connections to the other nodes' controller listeners, the authorizer over the metadata
image's ACLs, and the SCRAM credentials seeded at first start."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import structlog

from rafka.broker.cluster.cluster_metadata import ClusterMetadata
from rafka.broker.cluster.peers import PeerSasl
from rafka.broker.config import BrokerConfig, ConfigError
from rafka.broker.net import tls
from rafka.broker.net.listener_security import jaas_for
from rafka.broker.node import Node
from rafka.broker.partition.append import AppendError
from rafka.broker.security.acl import AclBinding, Authorizer

log = structlog.get_logger(__name__)


def peer_tls(config: BrokerConfig) -> ssl.SSLContext | None:
    """TLS for this node's connections to the voters, when their controller listener uses it
    (its protocol in listener.security.protocol.map, as Kafka reads it)."""
    names = config.controller_listener_names
    if not names:
        return None
    protocol = config.security_protocol_map.get(names[0], "PLAINTEXT")
    return tls.client_context(config, names[0]) if protocol in ("SSL", "SASL_SSL") else None


def peer_sasl(config: BrokerConfig) -> PeerSasl | None:
    """SASL for this node's connections to the voters when their controller listener uses it:
    sasl.mechanism.controller.protocol (PLAIN) with the username and password of that
    listener's JAAS config, as Kafka's nodes do."""
    names = config.controller_listener_names
    if not names or not config.security_protocol_map.get(names[0], "").startswith("SASL_"):
        return None
    listener = names[0]
    mechanism = config.listener_get(listener, "sasl.mechanism.controller.protocol")
    if mechanism != "PLAIN":
        raise ConfigError(
            "sasl.mechanism.controller.protocol",
            f"Invalid configuration sasl.mechanism.controller.protocol: {mechanism} between "
            "the nodes is not implemented by rafka; use PLAIN (over SASL_SSL)",
        )
    entry = jaas_for(config, listener, mechanism)
    user = entry.options.get("username") if entry else None
    password = entry.options.get("password") if entry else None
    if not user or not password:
        key = f"listener.name.{listener.lower()}.plain.sasl.jaas.config"
        raise ConfigError(
            key, f"Invalid configuration {key}: needs this node's username and password"
        )
    return PeerSasl(mechanism, b"\x00" + user.encode() + b"\x00" + password.encode())


def authorizer_for(config: BrokerConfig, broker: Node) -> Authorizer | None:
    """Kafka's StandardAuthorizer semantics over the ACLs of the metadata image, when
    authorizer.class.name names it; None (everything allowed) otherwise."""
    if not config.get_str("authorizer.class.name"):
        return None
    super_users = [u.strip() for u in (config.get_str("super.users") or "").split(";") if u.strip()]

    def acls() -> Iterable[AclBinding]:
        return broker.metadata.image.acls.values() if broker.metadata is not None else ()

    return Authorizer(acls, super_users, config.get_bool("allow.everyone.if.no.acl.found"))


async def seed_scram_credentials(
    metadata: ClusterMetadata, seeds: dict[tuple[str, str], dict[str, Any]]
) -> None:
    """Create the seeded SCRAM credentials that the metadata log lacks, once this node
    leads the metadata quorum (every node given the same seeds may be the one); a user
    already there keeps the password it has (changed since, perhaps)."""
    while True:
        missing = [
            record for key, record in seeds.items() if key not in metadata.image.scram_credentials
        ]
        if not missing:
            return
        if metadata.caught_up_as_leader():
            try:
                await metadata.propose(missing)
                log.info("SCRAM credentials seeded", users=sorted({r["name"] for r in missing}))
                return
            except AppendError as exc:
                log.warning("seeding SCRAM credentials failed", error=exc.message)
        await metadata.wait_applied(lambda: metadata.caught_up_as_leader(), 1.0)
