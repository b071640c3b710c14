"""How the `rafka` client commands reach a secured cluster: Kafka's client keys from a
`--command-config` file (or the console tools' --producer.config/--consumer.config and
properties), applied to every connection the command opens: TLS, then SASL (PLAIN or
SCRAM-SHA-256/512) after ApiVersions, as Kafka's clients do.

Keys: security.protocol; sasl.mechanism with sasl.jaas.config (username and password of the
PlainLoginModule or ScramLoginModule) or rafka's shorthand sasl.username/sasl.password;
ssl.truststore.location (PEM, or ssl.truststore.type=PKCS12 with cryptography installed),
ssl.truststore.certificates, ssl.keystore.location (PEM key and chain) and ssl.key.password,
ssl.endpoint.identification.algorithm. Other keys are named in one warning and ignored.
"""

from __future__ import annotations

import contextvars
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rafka.broker.security.jaas import parse_jaas
from rafka.broker.security.sasl import PLAIN, SCRAM_MECHANISMS

SECURITY_KEYS = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "sasl.jaas.config",
        "sasl.username",
        "sasl.password",
        "ssl.truststore.location",
        "ssl.truststore.type",
        "ssl.truststore.password",
        "ssl.truststore.certificates",
        "ssl.keystore.location",
        "ssl.keystore.type",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
    }
)
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


class ClientSecurityError(ValueError):
    """The client configuration cannot be used; the message is the one line to show."""


@dataclass(frozen=True, slots=True)
class ClientSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str = PLAIN
    username: str | None = None
    password: str | None = None
    ssl_context: ssl.SSLContext | None = None
    check_hostname: bool = True

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")


PLAINTEXT = ClientSecurity()
# The security of the connections this command opens (one command per process).
CURRENT: contextvars.ContextVar[ClientSecurity] = contextvars.ContextVar(
    "client_security", default=PLAINTEXT
)


def read_command_config(path: Path) -> dict[str, str]:
    # Imported here: the health probe imports this module and must stay light.
    from rafka.broker.config.properties import read_properties_file

    try:
        return {key: value for key, value, _ in read_properties_file(path)}
    except OSError as exc:
        raise ClientSecurityError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ClientSecurityError(str(exc)) from None


def security_from(props: Mapping[str, str]) -> ClientSecurity:
    protocol = props.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise ClientSecurityError(f"security.protocol {protocol!r} is not one of {PROTOCOLS}")
    context = _ssl_context(props) if protocol in ("SSL", "SASL_SSL") else None
    if not protocol.startswith("SASL_"):
        return ClientSecurity(protocol, ssl_context=context)
    mechanism = props.get("sasl.mechanism", "GSSAPI").upper()
    if mechanism != PLAIN and mechanism not in SCRAM_MECHANISMS:
        raise ClientSecurityError(
            f"sasl.mechanism {mechanism} is not supported by rafka's commands "
            "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
        )
    username, password = props.get("sasl.username"), props.get("sasl.password")
    if "sasl.jaas.config" in props:
        try:
            options = parse_jaas(props["sasl.jaas.config"]).options
        except ValueError as exc:
            raise ClientSecurityError(f"sasl.jaas.config: {exc}") from None
        username, password = options.get("username"), options.get("password")
    if not username or not password:
        raise ClientSecurityError(
            "SASL needs a username and password (sasl.jaas.config, or sasl.username and "
            "sasl.password)"
        )
    check = props.get("ssl.endpoint.identification.algorithm", "https") != ""
    return ClientSecurity(protocol, mechanism, username, password, context, check)


def _ssl_context(props: Mapping[str, str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = props.get("ssl.endpoint.identification.algorithm", "https") != ""
    try:
        if "ssl.truststore.certificates" in props:
            context.load_verify_locations(cadata=props["ssl.truststore.certificates"])
        elif "ssl.truststore.location" in props:
            if props.get("ssl.truststore.type", "PEM").upper() == "PKCS12":
                raise ClientSecurityError(
                    "ssl.truststore.type=PKCS12: rafka's commands read PEM trust stores"
                )
            context.load_verify_locations(cafile=props["ssl.truststore.location"])
        else:
            context.load_default_certs()
        if "ssl.keystore.location" in props:
            if props.get("ssl.keystore.type", "PEM").upper() != "PEM":
                raise ClientSecurityError("ssl.keystore.type: rafka's commands read PEM key stores")
            context.load_cert_chain(
                props["ssl.keystore.location"], password=props.get("ssl.key.password")
            )
    except (OSError, ssl.SSLError) as exc:
        raise ClientSecurityError(f"TLS settings: {exc}") from None
    return context


def use_client_security(command_config: Path | None, props: Mapping[str, str]) -> None:
    """The console tools: a --command-config file, then security keys given as properties
    (--producer-property security.protocol=SSL ...), which win, as in Kafka's tools."""
    merged = read_command_config(command_config) if command_config is not None else {}
    merged.update({key: value for key, value in props.items() if key in SECURITY_KEYS})
    if any(key in SECURITY_KEYS for key in merged):
        CURRENT.set(security_from(merged))
