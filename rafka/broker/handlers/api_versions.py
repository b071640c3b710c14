"""ApiVersions: what this broker speaks, so clients pick versions both sides know."""

from __future__ import annotations

from typing import Any

from rafka.broker.handlers.share_groups import with_share_features
from rafka.broker.handlers.txn import transaction_features
from rafka.broker.net.dispatch import RequestContext


def make_handler():
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        # Each listener lists what it serves: client listeners leave out the control plane.
        dispatcher = ctx.dispatcher
        assert dispatcher is not None  # the dispatcher always sets it
        return {
            "error_code": 0,
            "api_keys": [
                {"api_key": key, "min_version": lo, "max_version": hi}
                for key, lo, hi in dispatcher.supported_versions()
            ],
            "throttle_time": 0,
            **with_share_features(transaction_features(), dispatcher),
        }

    return handle
