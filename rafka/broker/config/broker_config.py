"""BrokerConfig: the merged layers (defaults < file < environment < overrides), validated."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar, overload

from rafka.broker.config.definitions import (
    DEFINITIONS,
    HOUR_MS,
    LISTENER_PREFIX,
    MINUTE_MS,
    NOT_IMPLEMENTED,
    SASL_MECHANISMS_SERVED,
    SERVED_SECURITY_PROTOCOLS,
    SINGLE_NODE_DEFAULTS,
    ConfigError,
    is_listener_key,
)
from rafka.broker.config.endpoints import Listener, QuorumVoter, parse_voters, split_host_port
from rafka.broker.config.environment import (
    ENV_PREFIX,
    ENV_VARS,
    KAFKA_ENV_PREFIX,
    KAFKA_JVM_ENV_VARS,
    RESERVED_ENV_VARS,
    kafka_env_key,
)
from rafka.broker.config.properties import read_properties_file
from rafka.broker.config.topology import Invalid, resolve_listeners, validate_quorum
from rafka.broker.config.values import parse_value, render_value, to_raw

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# BrokerConfig


class ConfigEntry(NamedTuple):
    """One broker config for DescribeConfigs; value is None when null or sensitive."""

    name: str
    value: str | None
    is_default: bool
    is_sensitive: bool
    doc: str


T = TypeVar("T")


class _Setting(Generic[T]):
    """A typed read-only attribute backed by BrokerConfig.get(name)."""

    def __init__(self, name: str) -> None:
        if name not in DEFINITIONS:
            raise KeyError(name)
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Setting[T]: ...
    @overload
    def __get__(self, obj: BrokerConfig, owner: type) -> T: ...
    def __get__(self, obj: BrokerConfig | None, owner: type) -> T | _Setting[T]:
        if obj is None:
            return self
        return obj.get(self.name)  # type: ignore[no-any-return]


class BrokerConfig:
    """The broker's resolved configuration. Build it with load() or from_dict()."""

    # Resolved at construction (see _resolve).
    is_broker: bool
    is_controller: bool
    listeners: list[Listener]
    controller_listener_names: list[str]
    security_protocol_map: dict[str, str]
    inter_broker_listener_name: str
    log_dirs: list[Path]
    metadata_log_dir: Path

    def __init__(self, given: Mapping[str, tuple[str, str]]) -> None:
        """given: key -> (raw value, source description), already merged by precedence."""
        self.originals: dict[str, str] = {key: raw for key, (raw, _) in given.items()}
        self.unknown: dict[str, str] = {}
        self.warnings: list[str] = []
        self._sources: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        self._single_node = False  # decided in _resolve, once the quorum keys are parsed
        # (listener name, key) -> value of listener.name.<listener>.<key>
        self._per_listener: dict[tuple[str, str], Any] = {}
        for key, (raw, source) in given.items():
            definition = DEFINITIONS.get(key)
            if definition is None and self._take_listener_key(key, raw, source):
                continue
            if definition is None:
                self.unknown[key] = raw
                self._warn(
                    f"The configuration '{key}' was supplied ({source}) but isn't a known "
                    "config; it is ignored"
                )
                continue
            try:
                self._values[key] = parse_value(definition, raw)
            except ValueError as exc:
                shown = "[hidden]" if definition.sensitive else repr(raw.strip())
                raise ConfigError(
                    key, f"Invalid value {shown} for configuration {key} ({source}): {exc}"
                ) from None
            self._sources[key] = source
        self._resolve()

    def _take_listener_key(self, key: str, raw: str, source: str) -> bool:
        """listener.name.<listener>.<key> for a key in LISTENER_PREFIXABLE: kept, parsed."""
        if not is_listener_key(key):
            return False
        listener, _, name = key[len(LISTENER_PREFIX) :].partition(".")
        definition = DEFINITIONS[name]
        try:
            value = parse_value(definition, raw)
        except ValueError as exc:
            shown = "[hidden]" if definition.sensitive else repr(raw.strip())
            raise ConfigError(
                key, f"Invalid value {shown} for configuration {key} ({source}): {exc}"
            ) from None
        self._per_listener[(listener.upper(), name)] = value
        self._sources[key] = source
        return True

    def listener_get(self, listener: str, name: str) -> Any:
        """`name` as set for `listener` (listener.name.<listener>.<name>), else as set for all."""
        key = (listener.upper(), name)
        if key in self._per_listener:
            return self._per_listener[key]
        return self.get(name)

    # --- construction

    @classmethod
    def load(
        cls,
        properties_file: Path | None = None,
        overrides: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> BrokerConfig:
        """Merge a properties file < KAFKA_<KEY> (apache/kafka's image convention) < RAFKA_<KEY>
        environment variables < "key=value" overrides."""
        environ = os.environ if environ is None else environ
        given: dict[str, tuple[str, str]] = {}
        early_warnings: list[str] = []
        if properties_file is not None:
            for key, value, lineno in read_properties_file(properties_file):
                given[key] = (value, f"{properties_file}:{lineno}")
        kafka_style = [(v, x) for v, x in environ.items() if v.startswith(KAFKA_ENV_PREFIX)]
        if "CLUSTER_ID" in environ:
            kafka_style.append(("CLUSTER_ID", environ["CLUSTER_ID"]))
        for var, value in sorted(kafka_style):
            if var in KAFKA_JVM_ENV_VARS:
                early_warnings.append(f"Environment variable {var} sets up a JVM; it is ignored")
                continue
            key = "cluster.id" if var == "CLUSTER_ID" else kafka_env_key(var)
            if key not in DEFINITIONS and not is_listener_key(key):
                early_warnings.append(
                    f"Environment variable {var} ({key}) matches no rafka config key; "
                    "it is ignored"
                )
                continue
            given[key] = (value, f"env {var}")
        for var, value in environ.items():
            if not var.startswith(ENV_PREFIX) or var in RESERVED_ENV_VARS:
                continue
            key = ENV_VARS.get(var)
            if key is None:
                early_warnings.append(
                    f"Environment variable {var} matches no rafka config key; it is ignored"
                )
                continue
            given[key] = (value, f"env {var}")
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(None, f"--override {item!r} is not key=value")
            given[key.strip()] = (value, "--override")
        for message in early_warnings:
            log.warning(message)
        config = cls(given)
        config.warnings[:0] = early_warnings
        return config

    @classmethod
    def from_dict(cls, values: Mapping[str, object] | None = None) -> BrokerConfig:
        """Build from Python values (bools, numbers, lists, paths): for tests and embedding."""
        given = {key: (to_raw(value), "from_dict") for key, value in (values or {}).items()}
        return cls(given)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    # --- generic access

    def get(self, name: str) -> Any:
        """Typed value of a known key: the configured value, else its (mode-dependent) default."""
        if name in self._values:
            return self._values[name]
        definition = DEFINITIONS[name]
        if self._single_node and name in SINGLE_NODE_DEFAULTS:
            return SINGLE_NODE_DEFAULTS[name]
        return definition.default

    def get_int(self, name: str) -> int:
        value = self.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} is not an integer config")
        return value

    def get_bool(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise TypeError(f"{name} is not a boolean config")
        return value

    def get_str(self, name: str) -> str | None:
        value = self.get(name)
        return None if value is None else str(value)

    def is_set(self, name: str) -> bool:
        """Whether a known key was given explicitly (file, environment, override)."""
        return name in self._values

    def source_of(self, name: str) -> str | None:
        """Where an explicitly set key came from ("path:line", "env RAFKA_X", "--override")."""
        return self._sources.get(name)

    def describe(self) -> list[ConfigEntry]:
        """Every known broker config, for DescribeConfigs (sensitive values are None)."""
        entries = []
        for name, definition in DEFINITIONS.items():
            value = None if definition.sensitive else render_value(self.get(name))
            entries.append(
                ConfigEntry(
                    name, value, not self.is_set(name), definition.sensitive, definition.doc
                )
            )
        return entries

    def topic_defaults(self) -> dict[str, str]:
        """Topic config name -> this broker's default for it, as Kafka's server default property."""
        defaults = {
            definition.topic_config: render_value(self.get(name))
            for name, definition in DEFINITIONS.items()
            if definition.topic_config is not None
        }
        # Topic configs whose broker default is derived from several keys.
        defaults["retention.ms"] = str(self.retention_ms)
        defaults["segment.ms"] = str(self.segment_ms)
        defaults["segment.jitter.ms"] = str(self.segment_jitter_ms)
        defaults["flush.ms"] = str(self.flush_interval_ms)
        return {name: value for name, value in defaults.items() if value is not None}

    # --- resolution and cross-key validation

    def _resolve(self) -> None:
        voters_raw: list[str] = self.get("controller.quorum.voters")
        bootstrap_raw: list[str] = self.get("controller.quorum.bootstrap.servers")
        self._single_node = not voters_raw and not bootstrap_raw
        try:
            self._voters = parse_voters(voters_raw)
        except ValueError as exc:
            raise self._error("controller.quorum.voters", exc) from None
        try:
            self._bootstrap = [split_host_port(item) for item in bootstrap_raw]
        except ValueError as exc:
            raise self._error("controller.quorum.bootstrap.servers", exc) from None
        self._resolve_node_id()
        self._resolve_roles()
        self._resolve_topology()
        self._resolve_storage()
        self._validate_timing()
        self._refuse_unimplemented()

    def _refuse_unimplemented(self) -> None:
        for key, unimplemented in sorted(NOT_IMPLEMENTED.items()):
            value = self._values.get(key, DEFINITIONS[key].default)
            if not unimplemented.serves(DEFINITIONS[key], value):
                raise self._error(
                    key, f"{render_value(value)} is not implemented by rafka: {unimplemented.why}"
                )
            if value != DEFINITIONS[key].default and unimplemented.restates_kafka(value):
                self._warn(
                    f"{key}={render_value(value)} (Kafka's default) is taken as rafka's "
                    f"{render_value(DEFINITIONS[key].default)}: {unimplemented.why}"
                )
        for listener in self.listeners:
            protocol = listener.security_protocol
            if protocol not in SERVED_SECURITY_PROTOCOLS:
                raise self._error(
                    "listeners",
                    f"listener {listener.name} uses {protocol}, which rafka does not implement",
                )
            if protocol.startswith("SASL_"):
                mechanisms = self.listener_get(listener.name, "sasl.enabled.mechanisms")
                unserved = sorted(set(mechanisms) - SASL_MECHANISMS_SERVED)
                if unserved or not mechanisms:
                    raise self._error(
                        "sasl.enabled.mechanisms",
                        f"listener {listener.name}: rafka does not implement "
                        f"{', '.join(unserved) or 'an empty list'}; it serves PLAIN, "
                        "SCRAM-SHA-256 and SCRAM-SHA-512",
                    )

    def _error(self, key: str, reason: object) -> ConfigError:
        source = self._sources.get(key)
        where = f" ({source})" if source else ""
        return ConfigError(key, f"Invalid configuration {key}{where}: {reason}")

    def _resolve_node_id(self) -> None:
        broker_id = self.get_int("broker.id")
        if broker_id != -1:
            if not self.is_set("node.id"):
                if broker_id < 0:
                    raise self._error("broker.id", "must be -1 or at least 0")
                self._values["node.id"] = broker_id
                self._sources["node.id"] = self._sources["broker.id"]
            elif broker_id != self.node_id:
                raise self._error(
                    "broker.id", f"{broker_id} differs from node.id {self.node_id}; set only one"
                )

    def _resolve_roles(self) -> None:
        roles: list[str] = self.get("process.roles")
        if not roles:
            raise self._error("process.roles", "must contain broker, controller or both")
        if len(set(roles)) != len(roles):
            raise self._error("process.roles", "lists a role twice")
        self.is_broker = "broker" in roles
        self.is_controller = "controller" in roles

    def _resolve_topology(self) -> None:
        """Listeners and the quorum against the roles (topology.py), with the key's source."""
        try:
            layout = resolve_listeners(self, self.is_broker)
            validate_quorum(
                layout,
                self._voters,
                self.node_id,
                is_broker=self.is_broker,
                is_controller=self.is_controller,
                single_node=self._single_node,
            )
        except Invalid as exc:
            raise self._error(exc.key, exc.reason) from None
        self.security_protocol_map = layout.security_protocol_map
        self.controller_listener_names = layout.controller_listener_names
        self.listeners = layout.listeners
        self._advertised_broker = layout.advertised_broker
        self.inter_broker_listener_name = layout.inter_broker_listener_name

    def _resolve_storage(self) -> None:
        key = "log.dirs" if self.is_set("log.dirs") else "log.dir"
        raw = self.get_str(key) or ""
        dirs = [Path(item.strip()).expanduser() for item in raw.split(",") if item.strip()]
        if not dirs:
            raise self._error(key, "at least one log directory is required")
        if len(set(dirs)) != len(dirs):
            raise self._error(key, "lists a directory twice")
        self.log_dirs = dirs
        # Several directories (JBOD): partitions are spread over them and moved between them
        # with AlterReplicaLogDirs; the metadata log lives in metadata.log.dir (default: the
        # first), which may also be a directory of its own, holding nothing else.
        metadata_dir = self.get_str("metadata.log.dir")
        self.metadata_log_dir = Path(metadata_dir).expanduser() if metadata_dir else dirs[0]

    def _validate_timing(self) -> None:
        retention = self.retention_ms
        if retention != -1 and retention < 1:
            raise self._error(self._retention_key(), "retention must be -1 (unlimited) or >= 1 ms")
        if self.get_int("replica.fetch.wait.max.ms") > self.replica_lag_time_max_ms:
            raise self._error(
                "replica.fetch.wait.max.ms", "must not exceed replica.lag.time.max.ms"
            )

    def _retention_key(self) -> str:
        for key in ("log.retention.ms", "log.retention.minutes"):
            if self.get(key) is not None:
                return key
        return "log.retention.hours"

    # --- derived values

    @property
    def is_single_node(self) -> bool:
        """No controller quorum configured: this node is a one-voter quorum of its own."""
        return self._single_node

    @property
    def quorum_voters(self) -> list[QuorumVoter]:
        """Configured controller voters; empty in single-node mode (see voter_ids)."""
        return list(self._voters)

    @property
    def voter_ids(self) -> list[int]:
        """Node ids of the metadata quorum's voters ([node.id] in single-node mode)."""
        return [voter.node_id for voter in self._voters] or [self.node_id]

    @property
    def quorum_bootstrap_servers(self) -> list[tuple[str, int]]:
        return list(self._bootstrap)

    @property
    def broker_listeners(self) -> list[Listener]:
        """Listeners serving clients and brokers (all but the controller listeners)."""
        return [lst for lst in self.listeners if lst.name not in self.controller_listener_names]

    @property
    def controller_listeners(self) -> list[Listener]:
        return [lst for lst in self.listeners if lst.name in self.controller_listener_names]

    @property
    def advertised_listeners(self) -> list[Listener]:
        """Broker endpoints to publish; an empty host becomes this machine's host name.

        A listener on port 0 is advertised with port 0: the daemon must substitute the bound port.
        """
        hostname: str | None = None
        result = []
        for lst in self._advertised_broker:
            if not lst.host:
                hostname = hostname or socket.gethostname()
                lst = lst._replace(host=hostname)
            result.append(lst)
        return result

    @property
    def inter_broker_listener(self) -> Listener:
        by_name = {lst.name: lst for lst in self.advertised_listeners}
        return by_name[self.inter_broker_listener_name]

    @property
    def retention_ms(self) -> int:
        """log.retention.ms, else .minutes, else .hours; any negative value means -1 (forever)."""
        millis = self.get("log.retention.ms")
        if millis is None:
            minutes = self.get("log.retention.minutes")
            millis = (
                minutes * MINUTE_MS
                if minutes is not None
                else self.get_int("log.retention.hours") * HOUR_MS
            )
        return -1 if millis < 0 else int(millis)

    @property
    def segment_ms(self) -> int:
        """log.roll.ms, else log.roll.hours."""
        millis = self.get("log.roll.ms")
        return int(millis) if millis is not None else self.get_int("log.roll.hours") * HOUR_MS

    @property
    def segment_jitter_ms(self) -> int:
        millis = self.get("log.roll.jitter.ms")
        if millis is not None:
            return int(millis)
        return self.get_int("log.roll.jitter.hours") * HOUR_MS

    @property
    def flush_interval_ms(self) -> int:
        """log.flush.interval.ms, else log.flush.scheduler.interval.ms."""
        millis = self.get("log.flush.interval.ms")
        if millis is not None:
            return int(millis)
        return self.get_int("log.flush.scheduler.interval.ms")

    @property
    def offsets_retention_ms(self) -> int:
        return self.get_int("offsets.retention.minutes") * MINUTE_MS

    @property
    def metrics_enabled(self) -> bool:
        return self.metrics_port != 0

    node_id = _Setting[int]("node.id")
    process_roles = _Setting[list[str]]("process.roles")
    cluster_id = _Setting[str | None]("cluster.id")
    broker_rack = _Setting[str | None]("broker.rack")
    quorum_election_timeout_ms = _Setting[int]("controller.quorum.election.timeout.ms")
    quorum_fetch_timeout_ms = _Setting[int]("controller.quorum.fetch.timeout.ms")
    quorum_election_backoff_max_ms = _Setting[int]("controller.quorum.election.backoff.max.ms")
    quorum_append_linger_ms = _Setting[int]("controller.quorum.append.linger.ms")
    quorum_request_timeout_ms = _Setting[int]("controller.quorum.request.timeout.ms")
    quorum_retry_backoff_ms = _Setting[int]("controller.quorum.retry.backoff.ms")
    socket_request_max_bytes = _Setting[int]("socket.request.max.bytes")
    socket_send_buffer_bytes = _Setting[int]("socket.send.buffer.bytes")
    socket_receive_buffer_bytes = _Setting[int]("socket.receive.buffer.bytes")
    socket_listen_backlog_size = _Setting[int]("socket.listen.backlog.size")
    connections_max_idle_ms = _Setting[int]("connections.max.idle.ms")
    max_connections = _Setting[int]("max.connections")
    num_partitions = _Setting[int]("num.partitions")
    default_replication_factor = _Setting[int]("default.replication.factor")
    auto_create_topics_enable = _Setting[bool]("auto.create.topics.enable")
    delete_topic_enable = _Setting[bool]("delete.topic.enable")
    message_max_bytes = _Setting[int]("message.max.bytes")
    segment_bytes = _Setting[int]("log.segment.bytes")
    retention_bytes = _Setting[int]("log.retention.bytes")
    retention_check_interval_ms = _Setting[int]("log.retention.check.interval.ms")
    cleanup_policy = _Setting[list[str]]("log.cleanup.policy")
    segment_index_bytes = _Setting[int]("log.index.size.max.bytes")
    index_interval_bytes = _Setting[int]("log.index.interval.bytes")
    flush_interval_messages = _Setting[int]("log.flush.interval.messages")
    flush_offset_checkpoint_interval_ms = _Setting[int]("log.flush.offset.checkpoint.interval.ms")
    file_delete_delay_ms = _Setting[int]("log.segment.delete.delay.ms")
    preallocate = _Setting[bool]("log.preallocate")
    message_timestamp_type = _Setting[str]("log.message.timestamp.type")
    message_timestamp_before_max_ms = _Setting[int]("log.message.timestamp.before.max.ms")
    message_timestamp_after_max_ms = _Setting[int]("log.message.timestamp.after.max.ms")
    min_insync_replicas = _Setting[int]("min.insync.replicas")
    compression_type = _Setting[str]("compression.type")
    unclean_leader_election_enable = _Setting[bool]("unclean.leader.election.enable")
    log_cleaner_enable = _Setting[bool]("log.cleaner.enable")
    log_cleaner_backoff_ms = _Setting[int]("log.cleaner.backoff.ms")
    replica_fetch_max_bytes = _Setting[int]("replica.fetch.max.bytes")
    replica_fetch_response_max_bytes = _Setting[int]("replica.fetch.response.max.bytes")
    replica_fetch_wait_max_ms = _Setting[int]("replica.fetch.wait.max.ms")
    replica_fetch_min_bytes = _Setting[int]("replica.fetch.min.bytes")
    replica_fetch_backoff_ms = _Setting[int]("replica.fetch.backoff.ms")
    replica_lag_time_max_ms = _Setting[int]("replica.lag.time.max.ms")
    offsets_topic_num_partitions = _Setting[int]("offsets.topic.num.partitions")
    offsets_topic_replication_factor = _Setting[int]("offsets.topic.replication.factor")
    offsets_topic_segment_bytes = _Setting[int]("offsets.topic.segment.bytes")
    offsets_retention_check_interval_ms = _Setting[int]("offsets.retention.check.interval.ms")
    offsets_commit_timeout_ms = _Setting[int]("offsets.commit.timeout.ms")
    offset_metadata_max_bytes = _Setting[int]("offset.metadata.max.bytes")
    group_initial_rebalance_delay_ms = _Setting[int]("group.initial.rebalance.delay.ms")
    group_min_session_timeout_ms = _Setting[int]("group.min.session.timeout.ms")
    group_max_session_timeout_ms = _Setting[int]("group.max.session.timeout.ms")
    group_max_size = _Setting[int]("group.max.size")
    transaction_state_log_num_partitions = _Setting[int]("transaction.state.log.num.partitions")
    transaction_state_log_replication_factor = _Setting[int](
        "transaction.state.log.replication.factor"
    )
    transaction_state_log_min_isr = _Setting[int]("transaction.state.log.min.isr")
    transaction_state_log_segment_bytes = _Setting[int]("transaction.state.log.segment.bytes")
    transaction_max_timeout_ms = _Setting[int]("transaction.max.timeout.ms")
    transactional_id_expiration_ms = _Setting[int]("transactional.id.expiration.ms")
    producer_id_expiration_ms = _Setting[int]("producer.id.expiration.ms")
    metrics_port = _Setting[int]("rafka.metrics.port")
    metrics_host = _Setting[str]("rafka.metrics.host")

    def __repr__(self) -> str:
        shown = {
            key: ("[hidden]" if DEFINITIONS[key].sensitive else render_value(value))
            for key, value in self._values.items()
        }
        return f"BrokerConfig({shown!r})"
