"""What a listener asks of its clients: its security protocol, the SASL mechanisms it serves
and, for PLAIN, its users (from listener.name.<listener>.plain.sasl.jaas.config, as Kafka reads
them). Read once at start; a JAAS value that does not parse stops the broker in one line."""

from __future__ import annotations

from msgspec import Struct, field

from rafka.broker.config import BrokerConfig, ConfigError
from rafka.broker.security.jaas import JaasEntry, parse_jaas
from rafka.broker.security.sasl import PLAIN


class ListenerSecurity(Struct, frozen=True):
    """How a listener authenticates its clients."""

    protocol: str = "PLAINTEXT"
    mechanisms: tuple[str, ...] = ()
    plain_users: dict[str, str] = field(default_factory=dict)

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")


PLAINTEXT = ListenerSecurity()


def jaas_for(config: BrokerConfig, listener: str, mechanism: str) -> JaasEntry | None:
    """listener.name.<listener>.<mechanism>.sasl.jaas.config (or the key without the listener)."""
    key = f"{mechanism.lower()}.sasl.jaas.config"
    value = config.listener_get(listener, key)
    if value is None:
        return None
    try:
        return parse_jaas(value)
    except ValueError as exc:
        message = f"Invalid configuration {key} (listener {listener}): {exc}"
        raise ConfigError(key, message) from None


def listener_security(config: BrokerConfig, listener: str, protocol: str) -> ListenerSecurity:
    if not protocol.startswith("SASL_"):
        return ListenerSecurity(protocol)
    mechanisms = tuple(config.listener_get(listener, "sasl.enabled.mechanisms"))
    users: dict[str, str] = {}
    if PLAIN in mechanisms:
        entry = jaas_for(config, listener, PLAIN)
        users = entry.plain_users if entry is not None else {}
        if not users:
            key = f"listener.name.{listener.lower()}.plain.sasl.jaas.config"
            raise ConfigError(
                key,
                f"Invalid configuration {key}: listener {listener} serves PLAIN and needs its "
                'users (user_<name>="<password>")',
            )
    return ListenerSecurity(protocol, mechanisms, users)
