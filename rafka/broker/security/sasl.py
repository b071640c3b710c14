"""SASL mechanisms as exchanges of tokens: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802,
RFC 7677), the server's side for clients and the client's side for this node's connections to
the others. No sockets: `step` takes the peer's token and returns ours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable

from msgspec import Struct

PLAIN = "PLAIN"
SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_SHA_512 = "SCRAM-SHA-512"
SCRAM_MECHANISMS = {SCRAM_SHA_256: "sha256", SCRAM_SHA_512: "sha512"}
IMPLEMENTED = frozenset({PLAIN, *SCRAM_MECHANISMS})
# Kafka's floor and default for SCRAM iterations (AlterUserScramCredentials refuses fewer).
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
MAX_TOKEN_BYTES = 64 * 1024


class SaslFailed(Exception):
    """Authentication failed; the message is what the client is told."""


class ScramCredential(Struct, frozen=True):
    """What the cluster keeps of a SCRAM password: never the password itself."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


def scram_credential(
    mechanism: str, salted_password: bytes, salt: bytes, iterations: int
) -> ScramCredential:
    """From what AlterUserScramCredentials carries (the client salts the password)."""
    digest = SCRAM_MECHANISMS[mechanism]
    client_key = hmac.digest(salted_password, b"Client Key", digest)
    return ScramCredential(
        salt,
        hashlib.new(digest, client_key).digest(),
        hmac.digest(salted_password, b"Server Key", digest),
        iterations,
    )


def scram_record(name: str, mechanism: str, credential: ScramCredential) -> dict[str, object]:
    """The metadata-log record of a SCRAM credential (Kafka's UserScramCredentialRecord)."""
    return {
        "type": "scram_credential",
        "name": name,
        "mechanism": mechanism,
        "salt": base64.b64encode(credential.salt).decode(),
        "stored_key": base64.b64encode(credential.stored_key).decode(),
        "server_key": base64.b64encode(credential.server_key).decode(),
        "iterations": credential.iterations,
    }


def salt_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(SCRAM_MECHANISMS[mechanism], password.encode(), salt, iterations)


class PlainServer:
    """One message: authzid NUL user NUL password, checked against the configured users."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users
        self.done = False
        self.user: str | None = None

    def step(self, token: bytes) -> bytes:
        parts = token.split(b"\x00")
        if len(parts) != 3:
            raise SaslFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        authzid, user, password = (p.decode("utf-8", "replace") for p in parts)
        if not user or not password:
            raise SaslFailed("Authentication failed: username or password is empty")
        if authzid and authzid != user:
            raise SaslFailed("Authentication failed: Client requested an authorization id")
        expected = self._users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise SaslFailed("Authentication failed: Invalid username or password")
        self.done, self.user = True, user
        return b""


def _attributes(message: bytes) -> dict[str, str]:
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslFailed("Invalid SCRAM message: not UTF-8") from None
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if sep and len(name) == 1:
            out[name] = value
    return out


def _saslname(value: str) -> str:
    return value.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    """client-first, server-first, client-final, server-final (RFC 5802 section 3)."""

    def __init__(
        self, mechanism: str, credentials: Callable[[str], ScramCredential | None]
    ) -> None:
        self._digest = SCRAM_MECHANISMS[mechanism]
        self._credentials = credentials
        self._state = "first"
        self.done = False
        self.user: str | None = None

    def step(self, token: bytes) -> bytes:
        if self._state == "first":
            return self._first(token)
        if self._state == "final":
            return self._final(token)
        raise SaslFailed("Unexpected SCRAM message after the exchange ended")

    def _first(self, token: bytes) -> bytes:
        header, sep, bare = token.partition(b",")
        gs2 = header + sep
        authzid, sep2, bare = bare.partition(b",")
        if not sep or not sep2 or not header.startswith((b"n", b"y")):
            raise SaslFailed("Invalid SCRAM client-first message")
        attrs = _attributes(bare)
        user, nonce = attrs.get("n"), attrs.get("r")
        if not user or not nonce:
            raise SaslFailed("Invalid SCRAM client-first message: no user or nonce")
        self.user = _saslname(user)
        if authzid and _saslname(authzid.decode("utf-8", "replace")[2:]) != self.user:
            raise SaslFailed("Authentication failed: Client requested an authorization id")
        credential = self._credentials(self.user)
        self._credential = credential
        # An unknown user gets a made-up salt, so the exchange runs on and fails at the proof
        # without telling which users exist.
        salt = credential.salt if credential else secrets.token_bytes(16)
        iterations = credential.iterations if credential else MIN_ITERATIONS
        self._nonce = nonce + secrets.token_hex(16)
        self._server_first = (
            f"r={self._nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        ).encode()
        self._client_first_bare = bare
        self._gs2 = gs2 + authzid + b","
        self._state = "final"
        return self._server_first

    def _final(self, token: bytes) -> bytes:
        self._state = "ended"
        without_proof, sep, proof_part = token.rpartition(b",p=")
        attrs = _attributes(without_proof)
        # Kafka (3.8.1+) accepts a nonce that ends with ours: librdkafka before 2.6.1 prepends
        # its own nonce a second time, and the distributions still ship such versions.
        if not sep or not attrs.get("r", "").endswith(self._nonce):
            raise SaslFailed("Invalid SCRAM client-final message: nonce mismatch")
        if base64.b64decode(attrs.get("c", "")) != self._gs2:
            raise SaslFailed("Invalid SCRAM client-final message: channel binding mismatch")
        auth_message = self._client_first_bare + b"," + self._server_first + b"," + without_proof
        credential = self._credential
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError:
            raise SaslFailed("Invalid SCRAM client-final message: proof") from None
        if credential is None:
            raise SaslFailed("Authentication failed during authentication due to invalid "
                             "credentials with SASL mechanism")  # fmt: skip
        signature = hmac.digest(credential.stored_key, auth_message, self._digest)
        if len(proof) != len(signature):
            raise SaslFailed("Authentication failed: invalid proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(
            hashlib.new(self._digest, client_key).digest(), credential.stored_key
        ):
            raise SaslFailed("Authentication failed during authentication due to invalid "
                             "credentials with SASL mechanism")  # fmt: skip
        server_signature = hmac.digest(credential.server_key, auth_message, self._digest)
        self.done = True
        return b"v=" + base64.b64encode(server_signature)


class PlainClient:
    """This node's side of PLAIN toward another node."""

    def __init__(self, user: str, password: str) -> None:
        self._token = b"\x00" + user.encode() + b"\x00" + password.encode()

    def first(self) -> bytes:
        return self._token


class ScramClient:
    """The client's side of SCRAM: client-first, then client-final from the server-first,
    then the server's signature checked (a server that does not know the password cannot
    forge it)."""

    def __init__(self, mechanism: str, user: str, password: str) -> None:
        self._digest = SCRAM_MECHANISMS[mechanism]
        self._mechanism = mechanism
        self._password = password
        self._nonce = secrets.token_hex(16)
        escaped = user.replace("=", "=3D").replace(",", "=2C")
        self._first_bare = f"n={escaped},r={self._nonce}".encode()

    def first(self) -> bytes:
        return b"n,," + self._first_bare

    def final(self, server_first: bytes) -> bytes:
        attrs = _attributes(server_first)
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s"), attrs.get("i", "")
        if not nonce.startswith(self._nonce) or nonce == self._nonce or not salt:
            raise SaslFailed("the server's SCRAM first message does not extend our nonce")
        if not iterations.isdigit() or int(iterations) < MIN_ITERATIONS:
            raise SaslFailed("the server asked for too few SCRAM iterations")
        salted = salt_password(self._mechanism, self._password, base64.b64decode(salt),
                               int(iterations))  # fmt: skip
        without_proof = b"c=biws,r=" + nonce.encode()
        auth_message = self._first_bare + b"," + server_first + b"," + without_proof
        client_key = hmac.digest(salted, b"Client Key", self._digest)
        stored_key = hashlib.new(self._digest, client_key).digest()
        signature = hmac.digest(stored_key, auth_message, self._digest)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self._digest)
        self._expected = hmac.digest(server_key, auth_message, self._digest)
        return without_proof + b",p=" + base64.b64encode(proof)

    def verify(self, server_final: bytes) -> None:
        signature = _attributes(server_final).get("v", "")
        if not hmac.compare_digest(base64.b64decode(signature), self._expected):
            raise SaslFailed("the server's SCRAM signature is wrong")
