"""Topic configs and dynamic broker configs as Kafka's admin APIs see them.

Which topic configs exist, their types, documentation and broker-level synonyms (Kafka's
ServerTopicConfigSynonyms), which broker configs can change at runtime, how values are validated,
and how DescribeConfigs reports each value: its source (topic override, dynamic per-broker,
dynamic cluster default, static file/env/override, default) and its synonyms in precedence order.

Dynamic broker configs live in the metadata image by resource name: "" is the cluster-wide
default, "<node id>" one broker. The effective broker config overlays them on the static one.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

import structlog
from msgspec import Struct, field

from rafka.broker.config import (
    DEFINITIONS,
    NOT_IMPLEMENTED,
    BrokerConfig,
    ConfigDef,
    ConfigError,
    ConfigType,
    parse_value,
    render_value,
)
from rafka.protocol.errors import ErrorCode
from rafka.storage.config import LOG_CONFIG_KEYS, parse_topic_config

log = structlog.get_logger(__name__)


class ConfigSource(IntEnum):
    """DescribeConfigs' config_source codes."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    GROUP_CONFIG = 8


class ResourceType(IntEnum):
    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    GROUP = 32


class ConfigRequestError(Exception):
    """A config change or lookup Kafka answers with `code` and `message`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TopicConfigDef(Struct, frozen=True):
    """A topic config key: its type, documentation and broker synonyms."""

    name: str
    type: ConfigType
    doc: str
    synonyms: tuple[str, ...] = ()  # broker configs supplying the default, by precedence
    default: str | None = None  # for topic configs without a broker synonym


# Topic configs whose broker default comes from several keys (Kafka's ServerTopicConfigSynonyms).
_MULTI_SYNONYMS = {
    "retention.ms": ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
    "segment.ms": ("log.roll.ms", "log.roll.hours"),
    "segment.jitter.ms": ("log.roll.jitter.ms", "log.roll.jitter.hours"),
    "flush.ms": ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
}
# Broker keys that stand for one another (Kafka's DynamicBrokerConfig.brokerConfigSynonyms).
_BROKER_SYNONYM_GROUPS = list(_MULTI_SYNONYMS.values())

# Topic configs with no broker default: described, not acted on by rafka, so only their default
# is taken (a throttle or tiered storage asked for and silently not given would mislead).
_TOPIC_ONLY = (
    TopicConfigDef(
        "leader.replication.throttled.replicas", ConfigType.LIST,
        "Replicas whose log replication is throttled on the leader side.", default="",
    ),
    TopicConfigDef(
        "follower.replication.throttled.replicas", ConfigType.LIST,
        "Replicas whose log replication is throttled on the follower side.", default="",
    ),
    TopicConfigDef(
        "remote.storage.enable", ConfigType.BOOLEAN,
        "Tiered storage for the topic (not supported by rafka).", default="false",
    ),
    TopicConfigDef(
        "local.retention.ms", ConfigType.LONG,
        "Local retention with tiered storage; -2 means retention.ms.", default="-2",
    ),
    TopicConfigDef(
        "local.retention.bytes", ConfigType.LONG,
        "Local retention with tiered storage; -2 means retention.bytes.", default="-2",
    ),
)  # fmt: skip


def _topic_configs() -> dict[str, TopicConfigDef]:
    defs: dict[str, TopicConfigDef] = {}
    for broker_name, definition in DEFINITIONS.items():
        topic_name = definition.topic_config
        if topic_name is None:
            continue
        synonyms = _MULTI_SYNONYMS.get(topic_name, (broker_name,))
        defs[topic_name] = TopicConfigDef(topic_name, definition.type, definition.doc, synonyms)
    for extra in _TOPIC_ONLY:
        defs[extra.name] = extra
    return dict(sorted(defs.items()))


TOPIC_CONFIGS: dict[str, TopicConfigDef] = _topic_configs()

# Broker configs AlterConfigs may change at runtime: the topic defaults (applied to every
# partition without an override; as in Kafka only the first synonym, e.g. log.retention.ms but
# not log.retention.hours) and the cleaner's pacing.
DYNAMIC_BROKER_CONFIGS = frozenset(
    {d.synonyms[0] for d in TOPIC_CONFIGS.values() if d.synonyms} | {"log.cleaner.backoff.ms"}
)


# -- validation ---------------------------------------------------------------------------------


def validate_topic_config(name: str, value: str | None) -> None:
    """Raise ConfigRequestError unless `name` is a topic config and `value` valid for it."""
    definition = TOPIC_CONFIGS.get(name)
    if definition is None:
        raise ConfigRequestError(ErrorCode.invalid_config, f"Unknown topic config name: {name}")
    if value is None:
        raise ConfigRequestError(
            ErrorCode.invalid_request, f"Null value not supported for topic configs: {name}"
        )
    if definition.type is ConfigType.LIST and definition.synonyms:
        _check_list(name, value, DEFINITIONS[definition.synonyms[0]], ErrorCode.invalid_config)
    try:
        _check_type(definition.type, value)
        if name in LOG_CONFIG_KEYS:
            # Topic-level ranges (e.g. segment.bytes) are LogConfig's, not the broker key's.
            parsed = parse_topic_config(name, value)
        elif definition.synonyms:
            parsed = parse_value(DEFINITIONS[definition.synonyms[0]], value)
        if definition.synonyms:
            _check_implemented(definition.synonyms[0], parsed)
        elif _canonical(definition.type, value) != definition.default:
            raise ValueError("not implemented by rafka: only its default is taken")
    except ValueError as exc:
        raise ConfigRequestError(
            ErrorCode.invalid_config, f"Invalid value {value} for configuration {name}: {exc}"
        ) from None


def validate_topic_configs(configs: Mapping[str, str | None]) -> None:
    for name, value in configs.items():
        validate_topic_config(name, value)


def _check_type(kind: ConfigType, value: str) -> None:
    """Kafka's type check, with its messages, before any range check."""
    text = value.strip()
    if kind is ConfigType.BOOLEAN and text.lower() not in ("true", "false"):
        raise ValueError("Expected value to be either true or false")
    if kind in (ConfigType.INT, ConfigType.LONG, ConfigType.SHORT):
        try:
            int(text)
        except ValueError:
            raise ValueError(f"Not a number of type {kind.name}") from None
    if kind is ConfigType.DOUBLE:
        try:
            float(text)
        except ValueError:
            raise ValueError("Not a number of type DOUBLE") from None


def _check_list(name: str, value: str, definition: ConfigDef, code: ErrorCode) -> None:
    """Kafka 4.x's check of a list config whose elements are choices (cleanup.policy): a blank
    value is the empty list and valid; an empty element is not, nor an unknown one."""
    if definition.choices is None or not value.strip():
        return
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise ConfigRequestError(code, f"Configuration '{name}' values must not be empty.")
    for item in items:
        if item not in definition.choices:
            raise ConfigRequestError(
                code,
                f"Invalid value {item} for configuration {name}: String must be one of: "
                f"{', '.join(sorted(definition.choices))}",
            )


def _canonical(kind: ConfigType, value: str) -> str:
    """A checked topic value as Kafka describes it (list elements trimmed, true/false)."""
    if kind is ConfigType.LIST:
        return normalized_list(value)
    if kind is ConfigType.BOOLEAN:
        return value.strip().lower()
    if kind in (ConfigType.INT, ConfigType.LONG, ConfigType.SHORT):
        return str(int(value.strip()))
    return value.strip()


def _check_implemented(broker_key: str, value: object) -> None:
    """ValueError if `value` of `broker_key` (or its topic config) asks for what rafka does not
    implement (definitions.NOT_IMPLEMENTED)."""
    unimplemented = NOT_IMPLEMENTED.get(broker_key)
    if unimplemented is not None and not unimplemented.serves(DEFINITIONS[broker_key], value):
        raise ValueError(f"not implemented by rafka: {unimplemented.why}")


def normalized_list(value: str) -> str:
    """A list config's value as Kafka describes it: elements trimmed, duplicates dropped."""
    return ",".join(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))


def validate_broker_config(name: str, value: str | None) -> None:
    """Kafka's rules for dynamic broker configs: known static keys are refused, values are
    checked, and names Kafka does not know are kept as they are (plugins read custom ones)."""
    if value is None:
        raise ConfigRequestError(
            ErrorCode.invalid_request, f"Null value not supported for : {name}"
        )
    definition = DEFINITIONS.get(name)
    if definition is None:
        return
    if name not in DYNAMIC_BROKER_CONFIGS:
        raise ConfigRequestError(
            ErrorCode.invalid_request, f"Cannot update these configs dynamically: [{name}]"
        )
    if definition.type is ConfigType.LIST:
        _check_list(name, value, definition, ErrorCode.invalid_request)
    try:
        _check_type(definition.type, value)
        _check_implemented(name, parse_value(definition, value))
    except ValueError as exc:
        # Kafka answers a bad broker config value with INVALID_REQUEST (topics: INVALID_CONFIG).
        raise ConfigRequestError(
            ErrorCode.invalid_request, f"Invalid value {value} for configuration {name}: {exc}"
        ) from None


def is_list_config(resource_type: ResourceType, name: str) -> bool:
    """Whether APPEND/SUBTRACT apply (Kafka allows them on LIST configs only)."""
    if resource_type is ResourceType.TOPIC:
        definition = TOPIC_CONFIGS.get(name)
        return definition is not None and definition.type is ConfigType.LIST
    broker_def = DEFINITIONS.get(name)
    return broker_def is not None and broker_def.type is ConfigType.LIST


# -- broker configs: static + dynamic -----------------------------------------------------------


class BrokerConfigs(Struct):
    """The layers of one broker's configuration, highest precedence first."""

    static: BrokerConfig
    node_id: int
    dynamic_node: dict[str, str] = field(default_factory=dict)
    dynamic_default: dict[str, str] = field(default_factory=dict)
    _effective: BrokerConfig | None = None

    @classmethod
    def of(
        cls, static: BrokerConfig, node_id: int, dynamic: Mapping[str, Mapping[str, str]]
    ) -> BrokerConfigs:
        return cls(
            static,
            node_id,
            dict(dynamic.get(str(node_id), {})),
            dict(dynamic.get("", {})),
        )

    @property
    def effective(self) -> BrokerConfig:
        """The static config with the dynamic layers applied. Changes are checked before they
        are stored, but a later static change could make stored ones clash: then the dynamic
        layers are ignored (and logged) rather than failing the broker."""
        if self._effective is None:
            try:
                self._effective = overlay(self.static, self.dynamic_default, self.dynamic_node)
            except ConfigError as exc:
                log.error("dynamic broker configs ignored", error=str(exc))
                self._effective = self.static
        return self._effective

    def topic_defaults(self) -> dict[str, str]:
        return self.effective.topic_defaults()

    def layers(self, name: str) -> list[tuple[str, str | None, ConfigSource]]:
        """(name, value, source) of `name` in every layer that sets it, highest first; the
        default last if it is not null."""
        out: list[tuple[str, str | None, ConfigSource]] = []
        definition = DEFINITIONS.get(name)
        sensitive = definition is not None and definition.sensitive
        if name in self.dynamic_node:
            value = None if sensitive else self.dynamic_node[name]
            out.append((name, value, ConfigSource.DYNAMIC_BROKER_CONFIG))
        if name in self.dynamic_default:
            value = None if sensitive else self.dynamic_default[name]
            out.append((name, value, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
        if definition is None:
            return out  # a custom dynamic config
        if self.static.is_set(name):
            value = None if sensitive else render_value(self.static.get(name))
            out.append((name, value, ConfigSource.STATIC_BROKER_CONFIG))
        else:
            default = self.static.get(name)  # the (single-node aware) default
            if default is not None:
                out.append((name, render_value(default), ConfigSource.DEFAULT_CONFIG))
        return out

    def synonym_layers(self, names: tuple[str, ...]) -> list[tuple[str, str | None, ConfigSource]]:
        return [layer for name in names for layer in self.layers(name)]


def overlay(
    static: BrokerConfig, dynamic_default: Mapping[str, str], dynamic_node: Mapping[str, str]
) -> BrokerConfig:
    if not dynamic_default and not dynamic_node:
        return static
    given = {
        key: (raw, static.source_of(key) or "static config")
        for key, raw in static.originals.items()
        if key in DEFINITIONS
    }
    for key, value in dynamic_default.items():
        if key in DEFINITIONS:  # names rafka does not know are stored, not applied
            given[key] = (value, "dynamic default broker config")
    for key, value in dynamic_node.items():
        if key in DEFINITIONS:
            given[key] = (value, "dynamic broker config")
    return BrokerConfig(given)


def broker_synonyms(name: str) -> tuple[str, ...]:
    for group in _BROKER_SYNONYM_GROUPS:
        if name in group:
            return group
    return (name,)


def check_overlay(
    static: BrokerConfig, dynamic_default: Mapping[str, str], dynamic_node: Mapping[str, str]
) -> None:
    """Raise ConfigRequestError if the layers together are not a valid broker config."""
    try:
        overlay(static, dynamic_default, dynamic_node)
    except ConfigError as exc:
        raise ConfigRequestError(ErrorCode.invalid_config, str(exc)) from None


# -- DescribeConfigs ----------------------------------------------------------------------------


class DescribedConfig(Struct, frozen=True):
    """One config as DescribeConfigs reports it."""

    name: str
    value: str | None
    source: ConfigSource
    read_only: bool
    sensitive: bool
    type: ConfigType
    doc: str
    synonyms: tuple[tuple[str, str | None, ConfigSource], ...]


def describe_topic(overrides: Mapping[str, str], broker: BrokerConfigs) -> list[DescribedConfig]:
    """Every topic config with its effective value, as Kafka's DescribeConfigs on a topic."""
    defaults = broker.topic_defaults()
    described = []
    for name, definition in TOPIC_CONFIGS.items():
        synonyms = broker.synonym_layers(definition.synonyms)
        if name in overrides:
            value: str | None = overrides[name]
            if value is not None and _has_choices(definition):
                value = normalized_list(value)
            synonyms.insert(0, (name, value, ConfigSource.DYNAMIC_TOPIC_CONFIG))
        else:
            value = defaults.get(name, definition.default)
        source = synonyms[0][2] if synonyms else ConfigSource.DEFAULT_CONFIG
        described.append(
            DescribedConfig(
                name, value, source, False, False, definition.type, definition.doc,
                tuple(synonyms),
            )
        )  # fmt: skip
    return described


def _has_choices(definition: TopicConfigDef) -> bool:
    if definition.type is not ConfigType.LIST or not definition.synonyms:
        return False
    return DEFINITIONS[definition.synonyms[0]].choices is not None


def describe_broker(broker: BrokerConfigs) -> list[DescribedConfig]:
    """Every broker config of this node with its effective value and where it came from."""
    effective = broker.effective
    described = [
        _custom(name, value, source, broker) for name, value, source in _custom_configs(broker)
    ]
    for name, definition in DEFINITIONS.items():
        synonyms = broker.synonym_layers(broker_synonyms(name))
        value = None if definition.sensitive else render_value(effective.get(name))
        source = synonyms[0][2] if synonyms else ConfigSource.DEFAULT_CONFIG
        described.append(
            DescribedConfig(
                name, value, source, name not in DYNAMIC_BROKER_CONFIGS, definition.sensitive,
                definition.type, definition.doc, tuple(synonyms),
            )
        )  # fmt: skip
    return described


def _custom_configs(broker: BrokerConfigs) -> list[tuple[str, str, ConfigSource]]:
    """Dynamic configs rafka has no definition for: stored and described, not applied."""
    found = {
        name: (value, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)
        for name, value in broker.dynamic_default.items()
        if name not in DEFINITIONS
    }
    for name, value in broker.dynamic_node.items():
        if name not in DEFINITIONS:
            found[name] = (value, ConfigSource.DYNAMIC_BROKER_CONFIG)
    return [(name, value, source) for name, (value, source) in sorted(found.items())]


def _custom(name: str, value: str, source: ConfigSource, broker: BrokerConfigs) -> DescribedConfig:
    return DescribedConfig(
        name, value, source, False, False, ConfigType.STRING, "", tuple(broker.layers(name))
    )


def describe_broker_defaults(broker: BrokerConfigs) -> list[DescribedConfig]:
    """The cluster-wide dynamic defaults only, as Kafka describes the "" broker resource."""
    described = []
    for name, value in sorted(broker.dynamic_default.items()):
        definition = DEFINITIONS.get(name)
        if definition is None:
            described.append(
                _custom(name, value, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, broker)
            )
            continue
        synonyms = [
            layer
            for layer in broker.synonym_layers(broker_synonyms(name))
            if layer[2] is not ConfigSource.DYNAMIC_BROKER_CONFIG
        ]
        described.append(
            DescribedConfig(
                name, None if definition.sensitive else value,
                ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, False, definition.sensitive,
                definition.type, definition.doc, tuple(synonyms),
            )
        )  # fmt: skip
    return described
