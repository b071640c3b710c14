"""SaslHandshake (17) and SaslAuthenticate (36): a client on a SASL listener picks a mechanism,
then exchanges tokens until authenticated. A failure answers SASL_AUTHENTICATION_FAILED and
closes the connection; before success the dispatcher serves nothing but these and ApiVersions.
"""

from __future__ import annotations

from typing import Any

import structlog

from rafka.broker.broker import Broker
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.sasl import (
    MAX_TOKEN_BYTES,
    PLAIN,
    SCRAM_MECHANISMS,
    PlainServer,
    SaslFailed,
    ScramCredential,
    ScramServer,
)
from rafka.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)


def make_handshake_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        connection = ctx.connection
        security = connection.security
        mechanisms = list(security.mechanisms)
        if not security.sasl or connection.authenticated or connection.sasl_server is not None:
            return {"error_code": ErrorCode.illegal_sasl_state, "mechanisms": mechanisms}
        mechanism = request.mechanism
        if mechanism not in security.mechanisms:
            connection.close_after_reply = True
            return {"error_code": ErrorCode.unsupported_sasl_mechanism, "mechanisms": mechanisms}
        if mechanism == PLAIN:
            connection.sasl_server = PlainServer(security.plain_users)
        else:
            connection.sasl_server = ScramServer(mechanism, _scram_lookup(broker, mechanism))
        # v0: the tokens follow without Kafka headers; v1: inside SaslAuthenticate requests.
        connection.sasl_raw = ctx.api_version == 0
        return {"error_code": ErrorCode.none, "mechanisms": mechanisms}

    return handle


def make_authenticate_handler():
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        connection = ctx.connection
        server = connection.sasl_server
        if not connection.security.sasl or connection.authenticated:
            # As Kafka's KafkaApis: refused, and the connection goes on serving.
            return _failed(
                ErrorCode.illegal_sasl_state,
                "SaslAuthenticate request received after successful authentication",
            )
        if server is None:  # a SASL listener, before any handshake: the exchange is broken
            connection.close_after_reply = True
            return _failed(ErrorCode.illegal_sasl_state, "No SASL exchange in progress")
        token = bytes(request.auth_bytes)
        try:
            if len(token) > MAX_TOKEN_BYTES:
                raise SaslFailed("SASL token too large")
            answer = server.step(token)
        except SaslFailed as exc:
            log.info("authentication failed", peer=connection.peer, reason=str(exc))
            connection.sasl_server = None
            connection.close_after_reply = True
            return _failed(ErrorCode.sasl_authentication_failed, str(exc))
        if server.done:
            connection.authenticated = True
            connection.principal = f"User:{server.user}"
            connection.sasl_server = None
        return {
            "error_code": ErrorCode.none,
            "error_message": None,
            "auth_bytes": answer,
            "session_lifetime": 0,
        }

    return handle


def _failed(code: ErrorCode, message: str) -> dict[str, Any]:
    return {"error_code": code, "error_message": message, "auth_bytes": b"", "session_lifetime": 0}


def _scram_lookup(broker: Broker, mechanism: str):
    assert mechanism in SCRAM_MECHANISMS

    def lookup(user: str) -> ScramCredential | None:
        if broker.metadata is None:
            return None
        return broker.metadata.image.scram_credentials.get((user, mechanism))

    return lookup
