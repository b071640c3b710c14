"""Envelope (58): an admin request another node forwarded to this controller with the client's
principal and address (KIP-590). Served only on controller listeners, which admit the voters
only; the inner request is handled as the client's, ACLs and all."""

from __future__ import annotations

import ipaddress
from typing import Any

from rafka.broker.net.dispatch import RequestContext
from rafka.protocol.errors import ErrorCode


def make_handler():
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        assert ctx.dispatcher is not None
        try:
            principal = bytes(request.request_principal or b"").decode()
            host = str(ipaddress.ip_address(bytes(request.client_host_address)))
        except ValueError:
            principal, host = "", ""
        kind, sep, name = principal.partition(":")
        if not (ctx.control_plane and sep and kind and name and host):
            return {
                "response_data": None,
                "error_code": ErrorCode.principal_deserialization_failure,
            }
        inner = await ctx.dispatcher.enveloped(bytes(request.request_data), principal, host)
        if inner is None:
            return {"response_data": None, "error_code": ErrorCode.invalid_request}
        return {"response_data": inner, "error_code": ErrorCode.none}

    return handle
