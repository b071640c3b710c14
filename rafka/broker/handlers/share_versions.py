"""The share-group APIs (KIP-932) and the versions served, as Kafka 4.2/4.3 serves them: read by
apis.py, which advertises them before the share handlers are imported (at the first share
request), and by those handlers' registrations."""

from __future__ import annotations

from collections.abc import Mapping

from rafka.broker.net.dispatch import ApiSpec, Handler

SHARE_GROUP_HEARTBEAT = 76
SHARE_GROUP_DESCRIBE = 77
SHARE_FETCH = 78
SHARE_ACKNOWLEDGE = 79
INITIALIZE_SHARE_GROUP_STATE = 83
READ_SHARE_GROUP_STATE = 84
WRITE_SHARE_GROUP_STATE = 85
DELETE_SHARE_GROUP_STATE = 86
READ_SHARE_GROUP_STATE_SUMMARY = 87
DESCRIBE_SHARE_GROUP_OFFSETS = 90
ALTER_SHARE_GROUP_OFFSETS = 91
DELETE_SHARE_GROUP_OFFSETS = 92

# API key -> (min version, max version).
SHARE_API_VERSIONS: dict[int, tuple[int, int]] = {
    SHARE_GROUP_HEARTBEAT: (1, 1),
    SHARE_GROUP_DESCRIBE: (1, 1),
    SHARE_FETCH: (1, 2),
    SHARE_ACKNOWLEDGE: (1, 2),
    INITIALIZE_SHARE_GROUP_STATE: (0, 0),
    READ_SHARE_GROUP_STATE: (0, 0),
    WRITE_SHARE_GROUP_STATE: (0, 0),
    DELETE_SHARE_GROUP_STATE: (0, 0),
    READ_SHARE_GROUP_STATE_SUMMARY: (0, 1),
    DESCRIBE_SHARE_GROUP_OFFSETS: (0, 1),
    ALTER_SHARE_GROUP_OFFSETS: (0, 0),
    DELETE_SHARE_GROUP_OFFSETS: (0, 0),
}


def share_specs(handlers: Mapping[int, Handler]) -> dict[int, ApiSpec]:
    """The API table's entries of these share APIs, at the versions served."""
    return {key: ApiSpec(*SHARE_API_VERSIONS[key], handler) for key, handler in handlers.items()}
