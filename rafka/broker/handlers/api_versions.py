"""ApiVersions: what this broker speaks, so clients pick versions both sides know."""

from __future__ import annotations

from typing import Any

from rafka.broker.handlers.share_versions import SHARE_FETCH
from rafka.broker.net.dispatch import Dispatcher, RequestContext

TRANSACTION_VERSION = 2
SHARE_VERSION = 1  # Kafka's share.version feature level that enables share groups
# The feature set never changes at run time, so one epoch serves (clients keep the newest).
FINALIZED_FEATURES_EPOCH = 1


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


def transaction_features() -> dict[str, Any]:
    """ApiVersions (v3+) features: transaction version 2 is served and enabled, so clients
    that know KIP-890 part 2 (Java 4.x) bump the epoch with every transaction."""
    return {
        "supported_features": [
            {"name": "transaction.version", "min_version": 0, "max_version": TRANSACTION_VERSION}
        ],
        "finalized_features_epoch": FINALIZED_FEATURES_EPOCH,
        "finalized_features": [
            {
                "name": "transaction.version",
                "max_version_level": TRANSACTION_VERSION,
                "min_version_level": TRANSACTION_VERSION,
            }
        ],
    }


def with_share_features(features: dict[str, Any], dispatcher: Dispatcher) -> dict[str, Any]:
    """ApiVersions' features plus share.version (supported 0-1, finalized 1) where the share
    APIs are served."""
    if SHARE_FETCH not in dispatcher.apis:
        return features
    return {
        **features,
        "supported_features": [
            *features["supported_features"],
            {"name": "share.version", "min_version": 0, "max_version": SHARE_VERSION},
        ],
        "finalized_features": [
            *features["finalized_features"],
            {
                "name": "share.version",
                "max_version_level": SHARE_VERSION,
                "min_version_level": SHARE_VERSION,
            },
        ],
    }
