"""Group configs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs on config resource
type GROUP (32), as Kafka 4.x serves them (KIP-848, KIP-932).

A group's configs are dynamic overrides of the group coordinator's broker-wide settings (its
synonyms: share.session.timeout.ms of group.share.session.timeout.ms, ...), kept in the metadata
log ("group_configs" records) whether or not the group exists. Each value is checked as Kafka
4.3's GroupConfig does: its type and floor, then the bounds the broker sets (Kafka's
group.share.min/max.* keys; rafka has not got them, so Kafka's defaults stand), and a session
timeout must exceed the heartbeat interval.

What rafka acts on, per group, as Kafka 4.3.1 does (`ShareGroupSettings`): the share-group
configs share.auto.offset.reset (where new share partitions start), share.session.timeout.ms and
share.heartbeat.interval.ms (membership), share.record.lock.duration.ms,
share.delivery.count.limit, share.partition.max.record.locks, share.isolation.level and
share.renew.acknowledge.enable (the share partitions). Kafka reads them at each use, so a change
reaches share partitions already loaded at their next acquisition, release or acknowledgement,
and members at their next heartbeat. Kafka 4.3.1 also clamps a stored value into the broker's
current bounds when it is used; here the bounds are fixed, so a value that passed the checks is
always within them. Of the consumer-group configs (KIP-848), consumer.session.timeout.ms and
consumer.heartbeat.interval.ms apply to the group's consumer-protocol members from their next
heartbeat (classic members keep the session timeout they joined with, as in Kafka). The other
consumer.*, the streams.* and share.assignment.interval.ms configs are described with their
defaults; altering one is refused with INVALID_CONFIG until rafka applies it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import structlog
from msgspec import Struct

from rafka.broker.config import DEFINITIONS, ConfigType, render_value
from rafka.broker.config_catalog import ConfigRequestError, ConfigSource, DescribedConfig
from rafka.broker.node import StorageNode
from rafka.broker.topic_admin import broker_configs, propose_metadata
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:  # the share service is imported with the first share request (apis.py)
    from rafka.broker.share.service import ShareConfig

log = structlog.get_logger(__name__)

SHARE_AUTO_OFFSET_RESET = "share.auto.offset.reset"
SHARE_ISOLATION_LEVEL = "share.isolation.level"
SHARE_RENEW_ACKNOWLEDGE_ENABLE = "share.renew.acknowledge.enable"
# The integer share-group configs rafka applies, each with the ShareConfig field it overrides.
SHARE_INT_FIELDS = {
    "share.session.timeout.ms": "session_timeout_ms",
    "share.heartbeat.interval.ms": "heartbeat_interval_ms",
    "share.record.lock.duration.ms": "record_lock_duration_ms",
    "share.delivery.count.limit": "delivery_count_limit",
    "share.partition.max.record.locks": "partition_max_record_locks",
}
# The consumer-group configs rafka acts on (the group coordinator reads them at each heartbeat).
CONSUMER_SESSION_TIMEOUT = "consumer.session.timeout.ms"
CONSUMER_HEARTBEAT_INTERVAL = "consumer.heartbeat.interval.ms"
CONSUMER_APPLIED = frozenset({CONSUMER_SESSION_TIMEOUT, CONSUMER_HEARTBEAT_INTERVAL})
# The group configs rafka acts on; altering another one is refused (INVALID_CONFIG).
APPLIED = frozenset(
    {SHARE_AUTO_OFFSET_RESET, SHARE_ISOLATION_LEVEL, SHARE_RENEW_ACKNOWLEDGE_ENABLE}
    | set(SHARE_INT_FIELDS)
    | CONSUMER_APPLIED
)
# Kafka's cross-check: each group type's session timeout must exceed its heartbeat interval.
SESSION_AND_HEARTBEAT = tuple(
    (f"{kind}.session.timeout.ms", f"{kind}.heartbeat.interval.ms")
    for kind in ("consumer", "share", "streams")
)
_RESET_FORMAT = re.compile(r"by_duration:(.*)")
# ISO-8601 durations as Java's Duration.parse reads them (days, hours, minutes, seconds).
_DURATION = re.compile(
    r"([-+]?)P(?:([-+]?[0-9]+)D)?"
    r"(T(?:([-+]?[0-9]+)H)?(?:([-+]?[0-9]+)M)?(?:([-+]?[0-9]+)(?:[.,]([0-9]{0,9}))?S)?)?",
    re.IGNORECASE,
)


class GroupConfigDef(Struct, frozen=True):
    """A group config key: its type, documentation and default."""

    name: str
    type: ConfigType
    doc: str
    default: str  # when no broker key is its synonym
    synonym: str | None = None  # the broker config it overrides
    at_least: int | None = None  # Kafka's ConfigDef floor ("Value must be at least N")
    # Kafka's broker-side bounds: (broker key, its default).
    lower: tuple[str, int] | None = None
    upper: tuple[str, int] | None = None
    check: Callable[[str], str | None] | None = None  # an error message, or None


def _reset_error(value: str) -> str | None:
    if value in ("earliest", "latest"):
        return None
    match = _RESET_FORMAT.fullmatch(value)
    if match is not None:
        seconds = parse_duration(match.group(1))
        if seconds is not None and seconds >= 0:
            return None
    return (
        f"Invalid value `{value}` for configuration {SHARE_AUTO_OFFSET_RESET}. The value must "
        "be either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."
    )


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"String must be one of: {', '.join(choices)}"

    return check


def parse_duration(text: str) -> float | None:
    """Seconds of an ISO-8601 duration (PnDTnHnMn.nS, as Java's Duration.parse), or None."""
    match = _DURATION.fullmatch(text)
    if match is None or match.group(0).upper().endswith("T"):
        return None
    sign, days, time_part, hours, minutes, secs, fraction = match.groups()
    if days is None and not time_part:
        return None
    total = 86400 * int(days or 0) + 3600 * int(hours or 0) + 60 * int(minutes or 0)
    if secs is not None:
        whole = int(secs)
        part = int((fraction or "0").ljust(9, "0")) / 1e9
        total += whole - part if secs.startswith("-") else whole + part
    return -total if sign == "-" else total


_I, _S, _B = ConfigType.INT, ConfigType.STRING, ConfigType.BOOLEAN

# In the order Kafka 4.3 describes them.
GROUP_CONFIGS: dict[str, GroupConfigDef] = {
    d.name: d
    for d in (
        GroupConfigDef(
            "consumer.session.timeout.ms", _I,
            "The timeout to detect client failures when using the consumer group protocol.",
            "45000", "group.consumer.session.timeout.ms", at_least=1,
            lower=("group.consumer.min.session.timeout.ms", 45000),
            upper=("group.consumer.max.session.timeout.ms", 60000),
        ),
        GroupConfigDef(
            "consumer.assignment.interval.ms", _I,
            "The interval between assignment updates for a consumer group.", "1000",
            "group.consumer.assignment.interval.ms", at_least=0,
        ),
        GroupConfigDef(
            SHARE_AUTO_OFFSET_RESET, _S,
            "The strategy to initialize the share-partition start offset: earliest, latest or "
            "by_duration:<duration> (ISO-8601, PnDTnHnMn.nS, not negative).",
            "latest", check=_reset_error,
        ),
        GroupConfigDef(
            SHARE_RENEW_ACKNOWLEDGE_ENABLE, _B,
            "Whether the renew acknowledge type is enabled for the share group.", "true",
        ),
        GroupConfigDef(
            "streams.initial.rebalance.delay.ms", _I,
            "The amount of time the group coordinator will wait for more streams clients to "
            "join a new group before performing the first rebalance.",
            "3000", "group.streams.initial.rebalance.delay.ms", at_least=0,
        ),
        GroupConfigDef(
            "share.session.timeout.ms", _I,
            "The timeout to detect client failures when using the share group protocol.",
            "45000", "group.share.session.timeout.ms", at_least=1,
            lower=("group.share.min.session.timeout.ms", 45000),
            upper=("group.share.max.session.timeout.ms", 60000),
        ),
        GroupConfigDef(
            "streams.assignment.interval.ms", _I,
            "The interval between assignment updates for a streams group.", "1000",
            "group.streams.assignment.interval.ms", at_least=0,
        ),
        GroupConfigDef(
            "share.heartbeat.interval.ms", _I,
            "The heartbeat interval given to the members of a share group.",
            "5000", "group.share.heartbeat.interval.ms", at_least=1,
            lower=("group.share.min.heartbeat.interval.ms", 5000),
            upper=("group.share.max.heartbeat.interval.ms", 15000),
        ),
        GroupConfigDef(
            "streams.heartbeat.interval.ms", _I,
            "The heartbeat interval given to the members.",
            "5000", "group.streams.heartbeat.interval.ms", at_least=1,
            lower=("group.streams.min.heartbeat.interval.ms", 5000),
            upper=("group.streams.max.heartbeat.interval.ms", 15000),
        ),
        GroupConfigDef(
            "share.delivery.count.limit", _I,
            "The maximum number of delivery attempts for a record delivered to a share group.",
            "5", "group.share.delivery.count.limit", at_least=2,
            lower=("group.share.min.delivery.count.limit", 2),
            upper=("group.share.max.delivery.count.limit", 10),
        ),
        GroupConfigDef(
            "consumer.heartbeat.interval.ms", _I,
            "The heartbeat interval given to the members of a consumer group.",
            "5000", "group.consumer.heartbeat.interval.ms", at_least=1,
            lower=("group.consumer.min.heartbeat.interval.ms", 5000),
            upper=("group.consumer.max.heartbeat.interval.ms", 15000),
        ),
        GroupConfigDef(
            "share.record.lock.duration.ms", _I,
            "The record acquisition lock duration in milliseconds for share groups.",
            "30000", "group.share.record.lock.duration.ms", at_least=1000,
            lower=("group.share.min.record.lock.duration.ms", 15000),
            upper=("group.share.max.record.lock.duration.ms", 60000),
        ),
        GroupConfigDef(
            "share.assignment.interval.ms", _I,
            "The interval between assignment updates for a share group.", "1000",
            "group.share.assignment.interval.ms", at_least=0,
        ),
        GroupConfigDef(
            SHARE_ISOLATION_LEVEL, _S,
            "Controls how to read records written transactionally: read_committed or "
            "read_uncommitted.",
            "read_uncommitted", check=_one_of("read_committed", "read_uncommitted"),
        ),
        GroupConfigDef(
            "streams.session.timeout.ms", _I,
            "The timeout to detect client failures when using the streams group protocol.",
            "45000", "group.streams.session.timeout.ms", at_least=1,
            lower=("group.streams.min.session.timeout.ms", 45000),
            upper=("group.streams.max.session.timeout.ms", 60000),
        ),
        GroupConfigDef(
            "share.partition.max.record.locks", _I,
            "Share-group record lock limit per share-partition.",
            "2000", "group.share.partition.max.record.locks", at_least=100,
            lower=("group.share.min.partition.max.record.locks", 100),
            upper=("group.share.max.partition.max.record.locks", 4000),
        ),
        GroupConfigDef(
            "streams.num.standby.replicas", _I, "The number of standby replicas for each task.",
            "0", "group.streams.num.standby.replicas", at_least=0,
            upper=("group.streams.max.standby.replicas", 2),
        ),
    )
}  # fmt: skip


# -- values ------------------------------------------------------------------------------------


def _broker_value(node: StorageNode, key: str) -> str | None:
    """The broker's effective value of `key` as Kafka renders it, None if rafka lacks the key."""
    if key not in DEFINITIONS:
        return None
    return render_value(broker_configs(node).effective.get(key))


def _default(node: StorageNode, definition: GroupConfigDef) -> tuple[str, str]:
    """(synonym name, value) of the broker-wide default a group config overrides."""
    if definition.synonym is None:
        return definition.name, definition.default
    value = _broker_value(node, definition.synonym)
    return definition.synonym, definition.default if value is None else value


def _bound(node: StorageNode, bound: tuple[str, int]) -> int:
    value = _broker_value(node, bound[0])
    return bound[1] if value is None else int(value)


def validate(node: StorageNode, name: str, value: str) -> None:
    """Kafka's GroupConfig checks of one value; ConfigRequestError INVALID_CONFIG if it fails."""
    definition = GROUP_CONFIGS.get(name)
    if definition is None:
        raise ConfigRequestError(ErrorCode.invalid_config, f"Unknown group config name: {name}")

    def invalid(reason: str) -> ConfigRequestError:
        return ConfigRequestError(
            ErrorCode.invalid_config, f"Invalid value {value} for configuration {name}: {reason}"
        )

    if definition.type is ConfigType.INT:
        try:
            number = int(value.strip())
        except ValueError:
            raise invalid("Not a number of type INT") from None
        if definition.at_least is not None and number < definition.at_least:
            raise invalid(f"Value must be at least {definition.at_least}")
        if definition.lower is not None and number < _bound(node, definition.lower):
            raise ConfigRequestError(
                ErrorCode.invalid_config,
                f"{name} must be greater than or equal to {definition.lower[0]}",
            )
        if definition.upper is not None and number > _bound(node, definition.upper):
            raise ConfigRequestError(
                ErrorCode.invalid_config,
                f"{name} must be less than or equal to {definition.upper[0]}",
            )
    elif definition.type is ConfigType.BOOLEAN:
        if value.strip().lower() not in ("true", "false"):
            raise invalid("Expected value to be either true or false")
    elif definition.check is not None:
        error = definition.check(value.strip() if name != SHARE_AUTO_OFFSET_RESET else value)
        if error is not None:
            raise invalid(error)
    if name not in APPLIED:
        # Accepted and not acted on would be silently ignored: refused until rafka applies it.
        raise ConfigRequestError(
            ErrorCode.invalid_config,
            f"rafka does not implement the group config {name} yet: of the group configs only "
            f"{', '.join(sorted(APPLIED))} take effect",
        )


def _check_session_exceeds_heartbeat(node: StorageNode, configs: Mapping[str, str]) -> None:
    """Kafka's cross-check of a group's session timeout and heartbeat interval, each its
    override or else the broker's default. Only where the group sets one of them: rafka lets
    the broker's own defaults lie outside Kafka's bounds (tests use short heartbeats)."""
    for session, heartbeat in SESSION_AND_HEARTBEAT:
        if session not in configs and heartbeat not in configs:
            continue
        values = [
            int(configs[key]) if key in configs else int(_default(node, GROUP_CONFIGS[key])[1])
            for key in (session, heartbeat)
        ]
        if values[0] <= values[1]:
            raise ConfigRequestError(
                ErrorCode.invalid_config, f"{session} must be greater than {heartbeat}"
            )


def describe(node: StorageNode, group_id: str) -> list[DescribedConfig]:
    """Every group config of `group_id`: its override, else the broker-wide default."""
    if not group_id:
        raise ConfigRequestError(ErrorCode.invalid_request, "Group name must not be empty")
    overrides = _overrides(node).get(group_id, {})
    described = []
    for name, definition in GROUP_CONFIGS.items():
        default = (*_default(node, definition), ConfigSource.DEFAULT_CONFIG)
        if name in overrides:
            value, source = overrides[name], ConfigSource.GROUP_CONFIG
            synonyms: tuple[tuple[str, str | None, ConfigSource], ...] = (
                (name, value, source),
                default,
            )
        else:
            value, source, synonyms = default[1], ConfigSource.DEFAULT_CONFIG, (default,)
        described.append(
            DescribedConfig(
                name, value, source, False, False, definition.type, definition.doc, synonyms
            )
        )
    return described


def _overrides(node: StorageNode) -> Mapping[str, Mapping[str, str]]:
    assert node.metadata is not None
    return node.metadata.image.group_configs


def group_config(node: StorageNode, group_id: str, name: str) -> str:
    """The effective value of one group config of `group_id`."""
    value = _overrides(node).get(group_id, {}).get(name)
    return value if value is not None else _default(node, GROUP_CONFIGS[name])[1]


def current_values(node: StorageNode, group_id: str) -> dict[str, str | None]:
    """Every group config's effective value (what APPEND/SUBTRACT start from)."""
    return {c.name: c.value for c in describe(node, group_id)}


async def alter(
    node: StorageNode,
    group_id: str,
    change: Callable[[dict[str, str]], dict[str, str]],
    validate_only: bool,
) -> None:
    """Apply `change` to the group's overrides, check them and record them in the metadata log
    (on the controller, where AlterConfigs and IncrementalAlterConfigs are forwarded)."""
    if not group_id:
        raise ConfigRequestError(
            ErrorCode.invalid_request, "Default group resources are not allowed."
        )
    assert node.metadata is not None
    async with node.topic_lock:
        updated = change(dict(_overrides(node).get(group_id, {})))
        for name, value in updated.items():
            validate(node, name, value)
        _check_session_exceeds_heartbeat(node, updated)
        if validate_only:
            return
        await propose_metadata(
            node, [{"type": "group_configs", "group": group_id, "configs": updated}]
        )
    log.info("group configs altered", group=group_id, configs=sorted(updated))


# -- applying them -----------------------------------------------------------------------------


class ShareGroupSettings:
    """The share-group settings in force for a group: its group configs over the broker's
    group.share.* keys (`defaults`). Called at each use (as Kafka's GroupConfigManager is
    consulted), so it is a dictionary lookup unless the group's overrides changed since."""

    def __init__(self, node: StorageNode, defaults: ShareConfig) -> None:
        self._node = node
        self._defaults = defaults
        # Group id -> (the overrides evaluated, the settings): a metadata record replaces a
        # group's overrides mapping, so its identity says whether they changed.
        self._evaluated: dict[str, tuple[Mapping[str, str], ShareConfig]] = {}

    def __call__(self, group_id: str) -> ShareConfig:
        overrides = _overrides(self._node).get(group_id)
        if not overrides:
            self._evaluated.pop(group_id, None)
            return self._defaults
        evaluated = self._evaluated.get(group_id)
        if evaluated is not None and evaluated[0] is overrides:
            return evaluated[1]
        settings = share_settings(self._defaults, overrides)
        self._evaluated[group_id] = (overrides, settings)
        return settings


def share_settings(defaults: ShareConfig, overrides: Mapping[str, str]) -> ShareConfig:
    """`defaults` with a group's (checked) share-group config overrides applied."""
    changes: dict[str, object] = {
        field: int(overrides[name].strip())
        for name, field in SHARE_INT_FIELDS.items()
        if name in overrides
    }
    if SHARE_ISOLATION_LEVEL in overrides:
        changes["read_committed"] = overrides[SHARE_ISOLATION_LEVEL].strip() == "read_committed"
    if SHARE_RENEW_ACKNOWLEDGE_ENABLE in overrides:
        enabled = overrides[SHARE_RENEW_ACKNOWLEDGE_ENABLE].strip().lower()
        changes["renew_acknowledge_enabled"] = enabled == "true"
    return dataclasses.replace(defaults, **changes) if changes else defaults
