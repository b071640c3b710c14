"""From a request frame to a response frame: header, API/version check, decode, handle, encode."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from msgspec import Struct

from rafka.broker.metrics.counters import RequestDurations
from rafka.broker.net.server import Connection
from rafka.broker.security.acl import (
    CLUSTER_NAME,
    OPERATIONS_OF,
    Authorizer,
    Operation,
    ResourceType,
)
from rafka.broker.security.sasl import MAX_TOKEN_BYTES, SaslFailed
from rafka.protocol.errors import ErrorCode, ProtocolError
from rafka.protocol.frames import RequestHeader, decode_request_header, frame, response_header
from rafka.protocol.messages import (
    build,
    decode_request_body,
    encode_response_body,
    request_class,
    response_class,
)

log = structlog.get_logger(__name__)

API_VERSIONS_KEY = 18
SASL_HANDSHAKE_KEY = 17
SASL_AUTHENTICATE_KEY = 36
# What a SASL listener serves before the client has authenticated (anything else closes).
BEFORE_AUTHENTICATION = frozenset({API_VERSIONS_KEY, SASL_HANDSHAKE_KEY, SASL_AUTHENTICATE_KEY})
_API_KEY = struct.Struct(">h")
_KEY_AND_VERSION = struct.Struct(">hh")
_CORRELATION = struct.Struct(">i")

# A handler gets the decoded request and returns the response as a plain dict (built into the
# request's version by kio), raw response body bytes (hand-written encoders), or None (no reply).
Handler = Callable[["RequestContext", Any], Awaitable[dict[str, Any] | bytes | list[bytes] | None]]


class LazyHandler:
    """A handler built at its API's first request: `build` imports what the API needs (the group,
    transaction and share coordinators are a third of the broker's imports), so a broker starts
    without what its clients may never use."""

    __slots__ = ("_build", "_handler")

    def __init__(self, build: Callable[[], Handler]) -> None:
        self._build: Callable[[], Handler] | None = build
        self._handler: Handler | None = None

    def __call__(
        self, ctx: RequestContext, request: Any
    ) -> Awaitable[dict[str, Any] | bytes | list[bytes] | None]:
        handler = self._handler
        if handler is None:
            assert self._build is not None
            handler = self._handler = self._build()
            self._build = None
        return handler(ctx, request)


class ApiSpec(Struct, frozen=True):
    """An API's served versions and its handler."""

    min_version: int
    max_version: int
    handler: Handler
    # What ApiVersions reports as the floor, when it must differ from what we serve (see apis.py).
    advertised_min_version: int | None = None
    # Served by the controller: another broker forwards the request there (Kafka's forwarding).
    forwarded: bool = False


# Given the API key and version, the decoded request, its frame (header and body, as received)
# and its context: the response from the controller, or None to serve the request here (this
# node is the controller, or none is known).
Forwarder = Callable[[int, int, Any, bytes, "RequestContext"], Awaitable[Any | None]]


class RequestContext(Struct):
    """What a handler knows of a request besides its body."""

    header: RequestHeader
    connection: Connection
    # Whether the request came in on a controller listener, where the other nodes' Raft and
    # replication traffic is served (issue 16: clients cannot reach the control plane).
    control_plane: bool = False
    # The dispatcher of the listener the request came in on (ApiVersions lists its APIs).
    dispatcher: Dispatcher | None = None

    @property
    def acls_apply(self) -> bool:
        """Whether authorize() can refuse anything here (handlers skip their checks if not)."""
        return (
            self.dispatcher is not None
            and self.dispatcher.authorizer is not None
            and not self.control_plane
        )

    def authorize(self, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        """Whether the connection's principal may do `operation` on the resource. Everything
        is allowed without an authorizer, and on controller listeners, which serve the voters
        only (the nodes' own requests)."""
        authorizer = self.dispatcher.authorizer if self.dispatcher is not None else None
        if authorizer is None or self.control_plane:
            return True
        connection = self.connection
        return authorizer.authorize(
            connection.principal, connection.peer_host, operation, resource_type, name
        )

    def authorized_operations(self, resource_type: ResourceType, name: str) -> int:
        """Kafka's bit field for include_*_authorized_operations (every operation of the type
        without an authorizer)."""
        authorizer = self.dispatcher.authorizer if self.dispatcher is not None else None
        if authorizer is None or self.control_plane:
            return sum(1 << op for op in OPERATIONS_OF.get(resource_type, ()))
        return authorizer.authorized_operations(
            self.connection.principal, self.connection.peer_host, resource_type, name
        )

    def serves_node_traffic(self) -> bool:
        """Whether Raft requests and replica fetches are served here: on controller listeners
        (the voters only), and on a broker-only node's inter-broker listener to principals
        with CLUSTER_ACTION on the cluster (Kafka's check of a replica fetch)."""
        if self.control_plane:
            return True
        return (
            self.dispatcher is not None
            and self.dispatcher.serves_nodes
            and self.authorize(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)
        )

    @property
    def api_version(self) -> int:
        return self.header.api_version


class Dispatcher:
    def __init__(
        self,
        apis: dict[int, ApiSpec],
        gate: asyncio.Event | None = None,
        forwarder: Forwarder | None = None,
        turns_away: Callable[[str | None], bool] | None = None,
        control_plane: bool = False,
        admits: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.apis = apis
        self.control_plane = control_plane
        # Given a peer's address: whether it may use this listener (controller listeners admit
        # the voters only).
        self.admits = admits
        # ACLs (None: authorization disabled, everything allowed).
        self.authorizer: Authorizer | None = None
        # Client listeners hold requests until the broker has joined the cluster.
        self.gate = gate
        self.forwarder = forwarder
        # Given a request's client id: whether to close its connection instead of answering
        # (a broker cut off from the controller sends clients to the other brokers).
        self.turns_away = turns_away
        # rafka_request_duration_seconds, when metrics are enabled.
        self.durations: RequestDurations | None = None
        # A broker-only node's inter-broker listener: the other nodes' Raft traffic is served.
        self.serves_nodes = False

    def for_clients(
        self,
        control_plane_apis: set[int],
        gate: asyncio.Event | None,
        turns_away: Callable[[str | None], bool] | None,
    ) -> Dispatcher:
        """The dispatcher of client listeners: the APIs between the nodes left out (not
        advertised by ApiVersions, and a request for one closes the connection, as Kafka does
        for an API its listener does not expose), behind the gate until the broker joined."""
        apis = {key: spec for key, spec in self.apis.items() if key not in control_plane_apis}
        clients = Dispatcher(apis, gate, self.forwarder, turns_away, control_plane=False)
        clients.authorizer = self.authorizer
        clients.durations = self.durations
        return clients

    def with_node_traffic(self, node_apis: dict[int, ApiSpec]) -> Dispatcher:
        """This client dispatcher plus `node_apis` (Raft), with replica fetches served: a
        broker-only node's inter-broker listener, its only door for the other nodes (it has
        no controller listener). Node requests there are authorized (serves_node_traffic)."""
        apis = {**self.apis, **node_apis}
        combined = Dispatcher(apis, self.gate, self.forwarder, self.turns_away)
        combined.authorizer = self.authorizer
        combined.durations = self.durations
        combined.serves_nodes = True
        return combined

    def supported_versions(self) -> list[tuple[int, int, int]]:
        """(api key, min, max) as ApiVersions advertises them."""
        return [
            (
                key,
                s.min_version if s.advertised_min_version is None else s.advertised_min_version,
                s.max_version,
            )
            for key, s in sorted(self.apis.items())
        ]

    async def __call__(self, frame_body: memoryview, connection: Connection) -> Any:
        if not connection.authenticated:  # a SASL listener's connection, until it has
            if connection.sasl_raw:  # after SaslHandshake v0: a bare token, no Kafka header
                return self._raw_sasl_token(frame_body, connection)
            if len(frame_body) >= 2:
                (api_key,) = _API_KEY.unpack_from(frame_body, 0)
                if api_key not in BEFORE_AUTHENTICATION:
                    connection.abort(f"api {api_key} before SASL authentication")
                    return None
        decoded = self._decode(frame_body)
        if isinstance(decoded, str):
            connection.abort(decoded)
            return None
        if decoded is None:  # an ApiVersions this broker cannot parse: Kafka's v0 answer
            (correlation_id,) = _CORRELATION.unpack_from(frame_body, 4)
            return self.unsupported_api_versions_response(correlation_id)
        api_key, version, spec, header, request = decoded
        if self.admits is not None and connection.admitted is None:
            connection.admitted = await self.admits(connection.peer_host)
        if connection.admitted is False:
            connection.abort("not a voter: controller listeners serve the other nodes only")
            return None
        if self.gate is not None and not self.gate.is_set():
            await self.gate.wait()
        if self.turns_away is not None and self.turns_away(header.client_id):
            connection.abort("cut off from the controller: other brokers serve clients", warn=False)
            return None
        context = RequestContext(header, connection, self.control_plane, self)
        durations = self.durations
        started = time.perf_counter() if durations is not None else 0.0
        try:
            if spec.forwarded and self.forwarder is not None:
                frame_bytes = bytes(frame_body)
                forwarded = await self.forwarder(api_key, version, request, frame_bytes, context)
                if forwarded is not None:
                    return encode_frame(api_key, version, header.correlation_id, forwarded)
            result = await spec.handler(context, request)
            if result is None:
                return None
            return encode_frame(api_key, version, header.correlation_id, result)
        finally:
            if durations is not None:  # from the request's turn to its encoded response
                durations.observe(api_key, time.perf_counter() - started, self.control_plane)

    async def enveloped(self, inner: bytes, principal: str, client_host: str) -> bytes | None:
        """A request another node forwarded in an Envelope (Kafka's KIP-590): served as the
        client that sent it, its principal and address checked against the ACLs (the
        envelope came on a controller listener, where nothing else is). Returns the response
        frame without its size prefix, or None (acks=0, or a malformed inner request)."""
        client = ForwardedClient(principal, client_host)
        answer = await self._serve_as_client(memoryview(inner), client)
        if answer is None:
            return None
        framed = b"".join(answer) if isinstance(answer, list) else answer
        return framed[4:]

    async def _serve_as_client(self, frame_body: memoryview, client: Any) -> Any:
        decoded = self._decode(frame_body)
        if decoded is None or isinstance(decoded, str):
            return None
        api_key, version, spec, header, request = decoded
        result = await spec.handler(RequestContext(header, client, False, self), request)
        return (
            None
            if result is None
            else encode_frame(api_key, version, header.correlation_id, result)
        )

    def _decode(
        self, frame_body: memoryview
    ) -> tuple[int, int, ApiSpec, RequestHeader, Any] | str | None:
        """(api key, version, spec, header, request); why the frame is refused (the connection
        is closed); or None for an ApiVersions at a version this broker does not serve."""
        if len(frame_body) < 8:
            return "request shorter than a header"
        api_key, version = _KEY_AND_VERSION.unpack_from(frame_body, 0)
        spec = self.apis.get(api_key)
        if spec is None:
            return f"unknown api key {api_key}"
        if not spec.min_version <= version <= spec.max_version:
            if api_key == API_VERSIONS_KEY:
                return None
            return f"unsupported version {version} of api {api_key}"
        request_cls = request_class(api_key, version)
        if request_cls is None:
            return f"no schema for api {api_key} v{version}"
        try:
            header = decode_request_header(frame_body, request_cls.__flexible__)
            request = decode_request_body(request_cls, frame_body, header.size)
        except ProtocolError as exc:
            return str(exc)
        return api_key, version, spec, header, request

    def _raw_sasl_token(self, token: memoryview, connection: Connection) -> bytes | None:
        """SaslHandshake v0's unframed exchange (old clients): the answer is a bare token; a
        failure closes the connection, as Kafka does."""
        server = connection.sasl_server
        try:
            if server is None or len(token) > MAX_TOKEN_BYTES:
                raise SaslFailed("unexpected SASL token")
            answer = server.step(bytes(token))
        except SaslFailed as exc:
            connection.abort(f"SASL authentication failed: {exc}", warn=False)
            return None
        if server.done:
            connection.sasl_raw = False
            connection.authenticated = True
            connection.principal = f"User:{server.user}"
            connection.sasl_server = None
        return frame(len(answer)) + answer

    def unsupported_api_versions_response(self, correlation_id: int) -> bytes:
        """Kafka answers an ApiVersions it cannot parse in v0 form, listing what it supports."""
        body = encode_response_body(
            build(
                response_class(API_VERSIONS_KEY, 0),
                {
                    "error_code": ErrorCode.unsupported_version,
                    "api_keys": [
                        {"api_key": k, "min_version": lo, "max_version": hi}
                        for k, lo, hi in self.supported_versions()
                    ],
                },
            )
        )
        header = response_header(correlation_id, flexible=False)
        return frame(len(header) + len(body)) + header + body


class ForwardedClient:
    """What a handler sees of the client behind an enveloped request: its principal and
    address; the envelope's connection is the forwarding node's, not this client's."""

    closed = False
    listener = ""
    authenticated = True
    close_after_reply = False

    def __init__(self, principal: str, host: str) -> None:
        self.principal = principal
        self.peer_host = host
        self.peer = f"{host} (forwarded)"

    def abort(self, reason: str, *, warn: bool = True) -> None:
        (log.warning if warn else log.debug)("forwarded request refused", reason=reason)


def encode_frame(
    api_key: int, version: int, correlation_id: int, result: dict[str, Any] | bytes | list[bytes]
) -> bytes | list[bytes]:
    response_cls = response_class(api_key, version)
    # ApiVersions responses always use header v0 so that any client can read the error.
    flexible_header = response_cls.__flexible__ and api_key != API_VERSIONS_KEY
    header = response_header(correlation_id, flexible_header)
    if isinstance(result, dict):
        result = encode_response_body(build(response_cls, result))
    elif not isinstance(result, (bytes, list)):  # a response entity (a forwarded answer)
        result = encode_response_body(result)
    if isinstance(result, list):
        size = len(header) + sum(len(part) for part in result)
        return [frame(size), header, *result]
    return frame(len(header) + len(result)) + header + result
