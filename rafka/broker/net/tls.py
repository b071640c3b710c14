"""TLS for SSL listeners and for this node's connections to the controller listeners.

Kafka's keys, read per listener (listener.name.<listener>.ssl.* over ssl.*): key stores in PEM
(a file with the private key and the chain, or both inline) or PKCS12, trust stores likewise,
ssl.client.auth for mTLS, the TLS versions and TLS 1.2 cipher suites. The stdlib's ssl module
loads certificates from files only, so inline PEM and converted PKCS12 pass through a private
temporary file that is deleted at once. A misconfiguration is a ConfigError naming the key: the
broker refuses to start with one line.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rafka.broker.config import BrokerConfig, ConfigError

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
# Java's X500Principal names (RFC 2253) for the attributes certificates carry.
_RDN_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
ANONYMOUS = "User:ANONYMOUS"


def server_context(config: BrokerConfig, listener: str) -> ssl.SSLContext:
    """The context an SSL listener accepts connections with."""
    get = _getter(config, listener)
    if get("ssl.principal.mapping.rules") != "DEFAULT":
        raise ConfigError(
            "ssl.principal.mapping.rules",
            "Invalid configuration ssl.principal.mapping.rules: only DEFAULT is implemented",
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _set_versions(context, get)
    if not _load_keystore(context, get):
        raise ConfigError(
            "ssl.keystore.location",
            f"Invalid configuration ssl.keystore.location: listener {listener} uses TLS and "
            "needs a key store (ssl.keystore.location, or ssl.keystore.key and "
            "ssl.keystore.certificate.chain)",
        )
    client_auth = get("ssl.client.auth")
    if client_auth != "none":
        if not _load_truststore(context, get):
            raise ConfigError(
                "ssl.truststore.location",
                f"Invalid configuration ssl.truststore.location: ssl.client.auth={client_auth} "
                f"on listener {listener} needs a trust store for the clients' certificates",
            )
        context.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" else ssl.CERT_OPTIONAL
    return context


def client_context(config: BrokerConfig, listener: str) -> ssl.SSLContext:
    """The context this node connects to other nodes' `listener` with (their controller
    listener): their certificates checked against the trust store, ours shown if we have one."""
    get = _getter(config, listener)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _set_versions(context, get)
    if not _load_truststore(context, get):
        context.load_default_certs()
    _load_keystore(context, get)
    context.check_hostname = bool(get("ssl.endpoint.identification.algorithm"))
    return context


def principal_of(ssl_object: Any) -> str:
    """User:<distinguished name> of a verified client certificate (Kafka's DEFAULT rule), else
    User:ANONYMOUS."""
    certificate = ssl_object.getpeercert() if ssl_object is not None else None
    if not certificate:
        return ANONYMOUS
    parts = []
    for rdn in reversed(certificate.get("subject", ())):
        parts.append(
            "+".join(f"{_RDN_NAMES.get(name, name)}={_escape(value)}" for name, value in rdn)
        )
    return f"User:{','.join(parts)}" if parts else ANONYMOUS


def _escape(value: str) -> str:
    escaped = "".join(f"\\{c}" if c in ',+"\\<>;=' else c for c in value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def _getter(config: BrokerConfig, listener: str):
    return lambda name: config.listener_get(listener, name)


def _set_versions(context: ssl.SSLContext, get) -> None:
    enabled = sorted(_VERSIONS[v] for v in get("ssl.enabled.protocols"))
    if not enabled:
        raise ConfigError(
            "ssl.enabled.protocols", "Invalid configuration ssl.enabled.protocols: empty"
        )
    highest = get("ssl.protocol")
    context.minimum_version = enabled[0]
    context.maximum_version = enabled[-1]
    if highest == "TLSv1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    suites = get("ssl.cipher.suites")
    if suites:
        try:
            context.set_ciphers(":".join(suites))
        except ssl.SSLError:
            raise ConfigError(
                "ssl.cipher.suites",
                "Invalid configuration ssl.cipher.suites: no cipher suite rafka knows "
                f"(OpenSSL names): {', '.join(suites)}",
            ) from None


def _load_keystore(context: ssl.SSLContext, get) -> bool:
    """Loads our key and chain; False when none is configured."""
    location, key = get("ssl.keystore.location"), get("ssl.keystore.key")
    chain = get("ssl.keystore.certificate.chain")
    key_password = get("ssl.key.password")
    try:
        if get("ssl.keystore.type") == "PKCS12":
            if location is None:
                return False
            pem = _pkcs12_keystore(Path(location), get("ssl.keystore.password"))
            with _private_file(pem) as path:
                context.load_cert_chain(path)
            return True
        if key is not None or chain is not None:
            if key is None or chain is None:
                raise ConfigError(
                    "ssl.keystore.key",
                    "Invalid configuration ssl.keystore.key: ssl.keystore.key and "
                    "ssl.keystore.certificate.chain go together",
                )
            with _private_file(f"{key.strip()}\n{chain.strip()}\n".encode()) as path:
                context.load_cert_chain(path, password=key_password)
            return True
        if location is None:
            return False
        context.load_cert_chain(location, password=key_password)
        return True
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            "ssl.keystore.location",
            f"Invalid configuration ssl.keystore.location: the key store cannot be loaded "
            f"({_reason(exc)})",
        ) from None


def _load_truststore(context: ssl.SSLContext, get) -> bool:
    location, inline = get("ssl.truststore.location"), get("ssl.truststore.certificates")
    try:
        if inline is not None:
            context.load_verify_locations(cadata=inline)
            return True
        if location is None:
            return False
        if get("ssl.truststore.type") == "PKCS12":
            cadata = _pkcs12_certificates(Path(location), get("ssl.truststore.password"))
            context.load_verify_locations(cadata=cadata)
        else:
            context.load_verify_locations(cafile=location)
        return True
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            "ssl.truststore.location",
            f"Invalid configuration ssl.truststore.location: the trust store cannot be loaded "
            f"({_reason(exc)})",
        ) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, ssl.SSLError):
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _pkcs12_module():
    try:
        from cryptography.hazmat.primitives.serialization import pkcs12
    except ImportError:
        raise ConfigError(
            "ssl.keystore.type",
            "Invalid configuration ssl.keystore.type: PKCS12 stores need the cryptography "
            "package (pip install 'rafka[pkcs12]'), or use PEM",
        ) from None
    return pkcs12


def _pkcs12_keystore(location: Path, password: str | None) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pkcs12 = _pkcs12_module()
    key, certificate, extra = pkcs12.load_key_and_certificates(
        location.read_bytes(), password.encode() if password else None
    )
    if key is None or certificate is None:
        raise ValueError("the PKCS12 store holds no private key with its certificate")
    encoding = serialization.Encoding.PEM
    pem = key.private_bytes(
        encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for cert in [certificate, *(extra or [])]:
        pem += cert.public_bytes(encoding)
    return pem


def _pkcs12_certificates(location: Path, password: str | None) -> str:
    from cryptography.hazmat.primitives import serialization

    pkcs12 = _pkcs12_module()
    store = pkcs12.load_pkcs12(location.read_bytes(), password.encode() if password else None)
    certificates = [c.certificate for c in store.additional_certs]
    if store.cert is not None:
        certificates.append(store.cert.certificate)
    if not certificates:
        raise ValueError("the PKCS12 trust store holds no certificate")
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A file only this process can read, removed when the block ends (ssl loads from files)."""
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="rafka-tls-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield path
    finally:
        os.unlink(path)
