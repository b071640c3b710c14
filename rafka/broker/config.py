"""Broker configuration: Kafka's keys and defaults, loaded from file < env RAFKA_<KEY> < --override.

Where rafka departs from Kafka's defaults it says so in the definition's doc line:
- zero-config single node: node.id=1, process.roles=broker,controller, a listener on
  localhost:9092, data under ./rafka-data, and an in-process one-voter quorum when
  controller.quorum.voters is empty;
- durability (DESIGN principle 5): log.flush.interval.messages=1, i.e. fsync before acknowledging
  (group commit makes one fsync cover every append since the last);
- internal topics: 8 partitions instead of 50 (see _INTERNAL_TOPIC_PARTITIONS);
- single-node mode uses the values of Kafka's own quickstart server.properties for internal
  topic replication (1) and the initial rebalance delay (0): Kafka's defaults need 3 nodes.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar, overload

log = logging.getLogger(__name__)

ENV_PREFIX = "RAFKA_"
# RAFKA_ variables that configure something other than the broker config (see rafka.broker.logs).
RESERVED_ENV_VARS = frozenset({"RAFKA_LOG_FORMAT", "RAFKA_LOG_LEVEL", "RAFKA_BOOTSTRAP_SERVER"})

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
_HOUR_MS = 3_600_000
_MINUTE_MS = 60_000

# Kafka's 50 partitions per internal topic are sized for large clusters. Each rafka partition is a
# Raft group with its own files, fsyncs and tick work, created when the first group or transactional
# producer appears, so 50 would make a laptop's first consumer pay for 50 partitions. One partition
# would put all coordination on one node of a cluster and can never be raised later (the count fixes
# the key -> partition mapping). 8 spreads coordinators over the 3-5 node clusters rafka targets.
_INTERNAL_TOPIC_PARTITIONS = 8

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


class ConfigError(ValueError):
    """A configuration value or combination is invalid; the message is one line naming the key."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


class ConfigType(IntEnum):
    """Config value types; the values are DescribeConfigs' ConfigType codes."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    PASSWORD = 9


_INT_RANGES = {
    ConfigType.SHORT: (-(2**15), 2**15 - 1),
    ConfigType.INT: (-(2**31), INT_MAX),
    ConfigType.LONG: (-(2**63), LONG_MAX),
}


@dataclass(frozen=True, slots=True)
class ConfigDef:
    """One broker config: its type, default, one-line doc and, if any, its topic-level synonym."""

    name: str
    type: ConfigType
    default: Any
    doc: str
    topic_config: str | None = None
    min: float | None = None
    max: float | None = None
    choices: frozenset[str] | None = None  # allowed values (for a LIST: of each element)
    check: Callable[[Any], str | None] | None = None  # extra rule; returns a reason when invalid

    @property
    def sensitive(self) -> bool:
        return self.type is ConfigType.PASSWORD


def _gzip_level(value: int) -> str | None:
    return None if value == -1 or 1 <= value <= 9 else "must be -1 or between 1 and 9"


def _cluster_id(value: str | None) -> str | None:
    # Kafka cluster ids are 16-byte UUIDs in URL-safe base64 without padding (22 characters).
    if value is None or re.fullmatch(r"[A-Za-z0-9_-]{21}[AQgw]", value):
        return None
    return "must be a Kafka cluster id: 22 characters of URL-safe base64 (16 bytes)"


def _define(*defs: ConfigDef) -> dict[str, ConfigDef]:
    return {d.name: d for d in defs}


_B, _S, _I, _SH, _L, _D, _LI, _P = (
    ConfigType.BOOLEAN, ConfigType.STRING, ConfigType.INT, ConfigType.SHORT, ConfigType.LONG,
    ConfigType.DOUBLE, ConfigType.LIST, ConfigType.PASSWORD,
)  # fmt: skip

# fmt: off
D = ConfigDef
DEFINITIONS: dict[str, ConfigDef] = _define(
    # --- node identity and roles
    D("node.id", _I, 1, "Id of this node in the cluster (rafka: 1 for zero config).", min=0),
    D("broker.id", _I, -1, "Legacy alias of node.id; if set it must equal node.id."),
    D("process.roles", _LI, ["broker", "controller"],
      "Roles of this node (rafka default: both, as a combined node).",
      choices=frozenset({"broker", "controller"})),
    D("cluster.id", _S, None,
      "Expected cluster id (rafka); a new data directory is formatted with it.", check=_cluster_id),
    D("broker.rack", _S, None, "Rack of this broker, for rack-aware replica placement."),
    # --- listeners
    D("listeners", _S, "PLAINTEXT://localhost:9092",
      "Listeners as NAME://host:port; an empty host binds all interfaces (rafka: localhost)."),
    D("advertised.listeners", _S, None,
      "Listeners published to clients and other brokers, if different from listeners."),
    D("listener.security.protocol.map", _S,
      "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
      "Security protocol of each listener name, as NAME:PROTOCOL pairs."),
    D("controller.listener.names", _S, None, "Names of the controller quorum's listeners."),
    D("inter.broker.listener.name", _S, None,
      "Listener used between brokers; if unset, the one named by security.inter.broker.protocol."),
    D("security.inter.broker.protocol", _S, "PLAINTEXT",
      "Security protocol between brokers, when inter.broker.listener.name is unset.",
      choices=frozenset(SECURITY_PROTOCOLS)),
    # --- controller quorum (cluster metadata Raft)
    D("controller.quorum.voters", _LI, [],
      "Controller voters as id@host:port; empty means a one-voter quorum of this node (rafka)."),
    D("controller.quorum.bootstrap.servers", _LI, [],
      "host:port of controllers to discover the quorum from."),
    D("controller.quorum.election.timeout.ms", _I, 1000,
      "Time without a leader before a voter starts an election.", min=0),
    D("controller.quorum.fetch.timeout.ms", _I, 2000,
      "Time without a successful fetch from the leader before a voter becomes a candidate.", min=0),
    D("controller.quorum.election.backoff.max.ms", _I, 1000,
      "Maximum backoff before a new election.", min=0),
    D("controller.quorum.append.linger.ms", _I, 25,
      "Time the leader waits to batch metadata appends.", min=0),
    D("controller.quorum.request.timeout.ms", _I, 2000, "Timeout of quorum requests.", min=0),
    D("controller.quorum.retry.backoff.ms", _I, 20, "Backoff before retrying a quorum request.",
      min=0),
    D("metadata.log.dir", _S, None, "Cluster metadata log directory; default: first log dir."),
    # --- sockets and connections
    D("socket.request.max.bytes", _I, 104857600, "Largest request the broker accepts.", min=1),
    D("socket.send.buffer.bytes", _I, 102400, "SO_SNDBUF of broker sockets; -1 = OS default."),
    D("socket.receive.buffer.bytes", _I, 102400, "SO_RCVBUF of broker sockets; -1 = OS default."),
    D("socket.listen.backlog.size", _I, 50, "Listen backlog of broker sockets.", min=1),
    D("socket.connection.setup.timeout.ms", _L, 1000,
      "Time for a connection to another node to be set up before a fresh attempt "
      "(rafka: 1000, fixed; Kafka: 10000, growing to 30000).", min=1),
    D("connections.max.idle.ms", _L, 600000, "Idle connections are closed after this time."),
    D("max.connections", _I, INT_MAX, "Maximum connections across all listeners.", min=0),
    # --- log storage
    D("log.dir", _S, "./rafka-data", "Data directory when log.dirs is unset (rafka default)."),
    D("log.dirs", _S, None, "Comma-separated data directories; overrides log.dir."),
    D("num.partitions", _I, 1, "Default partition count of new topics.", min=1),
    D("default.replication.factor", _I, 1, "Default replication factor of new topics.", min=1),
    D("auto.create.topics.enable", _B, True, "Create topics on first metadata request or produce."),
    D("delete.topic.enable", _B, True, "Allow deleting topics."),
    D("message.max.bytes", _I, 1048588, "Largest record batch the broker accepts.",
      topic_config="max.message.bytes", min=0),
    D("log.segment.bytes", _I, 1073741824, "Size at which a log segment is rolled.",
      topic_config="segment.bytes", min=1048576),
    D("log.roll.ms", _L, None, "Age at which a segment is rolled; if unset, log.roll.hours.",
      topic_config="segment.ms", min=1),
    D("log.roll.hours", _I, 168, "Age in hours at which a segment is rolled; below log.roll.ms.",
      min=1),
    D("log.roll.jitter.ms", _L, None, "Maximum random jitter subtracted from the roll time.",
      topic_config="segment.jitter.ms", min=0),
    D("log.roll.jitter.hours", _I, 0, "Roll jitter in hours; below log.roll.jitter.ms.", min=0),
    D("log.retention.ms", _L, None,
      "Time a segment is kept; -1 = forever; if unset, log.retention.minutes.",
      topic_config="retention.ms"),
    D("log.retention.minutes", _I, None,
      "Retention in minutes, below log.retention.ms; if unset, log.retention.hours."),
    D("log.retention.hours", _I, 168, "Retention in hours, below log.retention.ms and .minutes."),
    D("log.retention.bytes", _L, -1, "Partition size beyond which old segments are deleted; -1 = "
      "no limit.", topic_config="retention.bytes"),
    D("log.retention.check.interval.ms", _L, 300000, "How often retention is enforced.", min=1),
    D("log.cleanup.policy", _LI, ["delete"], "Cleanup policy of old segments: delete, compact.",
      topic_config="cleanup.policy", choices=frozenset({"delete", "compact"})),
    D("log.index.size.max.bytes", _I, 10485760, "Maximum size of a segment's offset index.",
      topic_config="segment.index.bytes", min=4),
    D("log.index.interval.bytes", _I, 4096, "Bytes of log between two offset index entries.",
      topic_config="index.interval.bytes", min=0),
    D("log.flush.interval.messages", _L, 1,
      "Appends between fsyncs (rafka: 1 = fsync before acknowledging, group-committed).",
      topic_config="flush.messages", min=1),
    D("log.flush.interval.ms", _L, None,
      "Maximum time unflushed data is held; if unset, log.flush.scheduler.interval.ms.",
      topic_config="flush.ms", min=0),
    D("log.flush.scheduler.interval.ms", _L, LONG_MAX, "How often logs are checked for a flush."),
    D("log.flush.offset.checkpoint.interval.ms", _I, 60000,
      "How often the recovery point is checkpointed.", min=0),
    D("log.segment.delete.delay.ms", _L, 60000, "Delay before a deleted segment's files go.",
      topic_config="file.delete.delay.ms", min=0),
    D("log.preallocate", _B, False, "Preallocate segment files.", topic_config="preallocate"),
    D("log.message.timestamp.type", _S, "CreateTime",
      "Record timestamps: producer's CreateTime or broker's LogAppendTime.",
      topic_config="message.timestamp.type", choices=frozenset({"CreateTime", "LogAppendTime"})),
    D("log.message.timestamp.before.max.ms", _L, LONG_MAX,
      "How far a CreateTime timestamp may lie in the past.",
      topic_config="message.timestamp.before.max.ms", min=0),
    D("log.message.timestamp.after.max.ms", _L, 3600000,
      "How far a CreateTime timestamp may lie in the future.",
      topic_config="message.timestamp.after.max.ms", min=0),
    D("min.insync.replicas", _I, 1, "Replicas that must have a write for acks=all to succeed.",
      topic_config="min.insync.replicas", min=1),
    D("compression.type", _S, "producer",
      "Compression of stored batches; producer keeps the producer's codec.",
      topic_config="compression.type",
      choices=frozenset({"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"})),
    D("compression.gzip.level", _I, -1, "gzip level when compression.type=gzip.",
      topic_config="compression.gzip.level", check=_gzip_level),
    D("compression.lz4.level", _I, 9, "lz4 level when compression.type=lz4.",
      topic_config="compression.lz4.level", min=1, max=17),
    D("compression.zstd.level", _I, 3, "zstd level when compression.type=zstd.",
      topic_config="compression.zstd.level", min=-131072, max=22),
    D("unclean.leader.election.enable", _B, False,
      "Allow a replica that may have lost writes to become leader.",
      topic_config="unclean.leader.election.enable"),
    # --- log cleaner (compaction)
    D("log.cleaner.enable", _B, True, "Run the log cleaner (compaction)."),
    D("log.cleaner.threads", _I, 1, "Threads of the log cleaner.", min=0),
    D("log.cleaner.backoff.ms", _L, 15000, "Sleep of the cleaner when nothing is cleanable.",
      min=0),
    D("log.cleaner.delete.retention.ms", _L, 86400000, "How long tombstones are kept.",
      topic_config="delete.retention.ms", min=0),
    D("log.cleaner.min.compaction.lag.ms", _L, 0, "Minimum age of a record before compaction.",
      topic_config="min.compaction.lag.ms", min=0),
    D("log.cleaner.max.compaction.lag.ms", _L, LONG_MAX,
      "Maximum age of a record before it is eligible for compaction.",
      topic_config="max.compaction.lag.ms", min=1),
    D("log.cleaner.min.cleanable.ratio", _D, 0.5, "Dirty ratio at which a log is compacted.",
      topic_config="min.cleanable.dirty.ratio", min=0, max=1),
    # --- replication
    D("replica.fetch.max.bytes", _I, 1048576, "Bytes fetched per partition by a follower.", min=0),
    D("replica.fetch.response.max.bytes", _I, 10485760,
      "Bytes fetched per follower fetch response.", min=0),
    D("replica.fetch.wait.max.ms", _I, 500, "Maximum wait of a follower fetch."),
    D("replica.fetch.min.bytes", _I, 1, "Minimum bytes of a follower fetch response."),
    D("replica.fetch.backoff.ms", _I, 1000, "Sleep after a follower fetch error.", min=0),
    D("replica.lag.time.max.ms", _L, 30000,
      "A follower that has not caught up for this long leaves the ISR."),
    D("replica.socket.timeout.ms", _I, 30000, "Socket timeout of follower fetches."),
    D("broker.session.timeout.ms", _I, 9000,
      "A broker the controller has not heard from for this long is fenced (offline).", min=1),
    D("broker.heartbeat.interval.ms", _I, 2000, "Interval of broker liveness checks.", min=1),
    D("auto.leader.rebalance.enable", _B, True,
      "Move leadership back to each partition's preferred replica once it is caught up."),
    D("leader.imbalance.check.interval.seconds", _L, 300,
      "Interval of the preferred-leader check.", min=1),
    # --- group coordinator
    D("offsets.topic.num.partitions", _I, _INTERNAL_TOPIC_PARTITIONS,
      "Partitions of __consumer_offsets (rafka: 8, Kafka: 50).", min=1),
    D("offsets.topic.replication.factor", _SH, 3,
      "Replication factor of __consumer_offsets (single node: 1).", min=1),
    D("offsets.topic.segment.bytes", _I, 104857600, "Segment size of __consumer_offsets.", min=1),
    D("offsets.retention.minutes", _I, 10080, "Offsets of empty groups expire after this.",
      min=1),
    D("offsets.retention.check.interval.ms", _L, 600000, "How often stale offsets are removed.",
      min=1),
    D("offsets.commit.timeout.ms", _I, 5000, "How long an offset commit waits for replication.",
      min=1),
    D("offset.metadata.max.bytes", _I, 4096, "Largest metadata string of an offset commit."),
    D("group.initial.rebalance.delay.ms", _I, 3000,
      "Wait for more members before a new group's first rebalance (single node: 0)."),
    D("group.min.session.timeout.ms", _I, 6000, "Smallest session timeout a member may ask."),
    D("group.max.session.timeout.ms", _I, 1800000, "Largest session timeout a member may ask."),
    D("group.max.size", _I, INT_MAX, "Maximum members of a classic group.", min=1),
    D("group.coordinator.rebalance.protocols", _LI, ["classic", "consumer"],
      "Enabled group protocols.", choices=frozenset({"classic", "consumer", "share", "streams"})),
    D("group.consumer.session.timeout.ms", _I, 45000, "Session timeout of consumer-protocol "
      "members.", min=1),
    D("group.consumer.min.session.timeout.ms", _I, 45000,
      "Smallest consumer-protocol session timeout.", min=1),
    D("group.consumer.max.session.timeout.ms", _I, 60000,
      "Largest consumer-protocol session timeout.", min=1),
    D("group.consumer.heartbeat.interval.ms", _I, 5000,
      "Heartbeat interval of consumer-protocol members.", min=1),
    D("group.consumer.min.heartbeat.interval.ms", _I, 5000,
      "Smallest consumer-protocol heartbeat interval.", min=1),
    D("group.consumer.max.heartbeat.interval.ms", _I, 15000,
      "Largest consumer-protocol heartbeat interval.", min=1),
    # --- transactions and idempotence
    D("transaction.state.log.num.partitions", _I, _INTERNAL_TOPIC_PARTITIONS,
      "Partitions of __transaction_state (rafka: 8, Kafka: 50).", min=1),
    D("transaction.state.log.replication.factor", _SH, 3,
      "Replication factor of __transaction_state (single node: 1).", min=1),
    D("transaction.state.log.min.isr", _I, 2,
      "min.insync.replicas of __transaction_state (single node: 1).", min=1),
    D("transaction.state.log.segment.bytes", _I, 104857600,
      "Segment size of __transaction_state.", min=1),
    D("transaction.max.timeout.ms", _I, 900000, "Largest transaction timeout a producer may ask.",
      min=1),
    D("transactional.id.expiration.ms", _I, 604800000,
      "Idle transactional ids expire after this.", min=1),
    D("producer.id.expiration.ms", _I, 86400000,
      "Idle idempotent producer ids expire after this.", min=1),
    D("transaction.abort.timed.out.transaction.cleanup.interval.ms", _I, 10000,
      "How often timed-out transactions are aborted.", min=1),
    D("transaction.remove.expired.transaction.cleanup.interval.ms", _I, 3600000,
      "How often expired transactional ids are removed.", min=1),
    # --- TLS (values are sensitive: never described or logged)
    D("ssl.keystore.location", _S, None, "Key store file of SSL listeners."),
    D("ssl.keystore.password", _P, None, "Password of the key store."),
    D("ssl.key.password", _P, None, "Password of the private key in the key store."),
    D("ssl.truststore.location", _S, None, "Trust store file."),
    D("ssl.truststore.password", _P, None, "Password of the trust store."),
    # --- rafka-specific
    D("rafka.metrics.port", _I, 0,
      "Port of the Prometheus /metrics HTTP endpoint (rafka); 0 disables it.", min=0, max=65535),
    D("rafka.metrics.host", _S, "localhost", "Interface of the Prometheus endpoint (rafka)."),
)
del D
# fmt: on

# Single-node mode (no controller.quorum.voters): Kafka's defaults here would leave internal topics
# uncreatable (RF 3 on one node) or slow a laptop's first consumer; these are the values Kafka's own
# quickstart server.properties sets for a single node.
SINGLE_NODE_DEFAULTS: dict[str, Any] = {
    "offsets.topic.replication.factor": 1,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "group.initial.rebalance.delay.ms": 0,
}


def env_var_name(key: str) -> str:
    """RAFKA_<KEY>: dots to underscores, upper case; rafka's own "rafka." keys drop that prefix."""
    bare = key.removeprefix("rafka.")
    return ENV_PREFIX + bare.replace(".", "_").replace("-", "_").upper()


ENV_VARS: dict[str, str] = {env_var_name(name): name for name in DEFINITIONS}
assert len(ENV_VARS) == len(DEFINITIONS), "two config keys map to the same environment variable"

# apache/kafka's container image convention, so that compose files written for it work with the
# image swapped: KAFKA_<KEY> with '_' for '.', '__' for '_' and '___' for '-', and CLUSTER_ID.
KAFKA_ENV_PREFIX = "KAFKA_"
# Variables of that image that set up its JVM or its scripts, not the broker.
KAFKA_JVM_ENV_VARS = frozenset(
    {
        "KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS", "KAFKA_JMX_PORT", "KAFKA_JMX_HOSTNAME",
        "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_LOG4J_OPTS",
        "KAFKA_LOG4J_ROOT_LOGLEVEL", "KAFKA_LOG4J_LOGGERS", "KAFKA_TOOLS_LOG4J_LOGLEVEL",
        "KAFKA_VERSION", "KAFKA_HOME", "KAFKA_DEBUG",
    }
)  # fmt: skip


def kafka_env_key(var: str) -> str:
    """KAFKA_LOG_RETENTION_HOURS -> log.retention.hours; '__' is '_', '___' is '-'."""
    name = var.removeprefix(KAFKA_ENV_PREFIX).lower()
    return re.sub("_{1,3}", lambda run: _KAFKA_ENV_SEPARATORS[len(run.group())], name)


_KAFKA_ENV_SEPARATORS = {1: ".", 2: "_", 3: "-"}


# ---------------------------------------------------------------------------------------------
# Java .properties syntax


_WHITESPACE = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def parse_properties(text: str, origin: str = "<properties>") -> list[tuple[str, str, int]]:
    """Parse Java .properties text into (key, value, line number) in file order.

    Follows java.util.Properties.load: # and ! comments, key=value / key:value / key value,
    continuation lines (an odd number of trailing backslashes), escapes \\t \\n \\r \\f \\uXXXX,
    any other escaped character stands for itself.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    entries: list[tuple[str, str, int]] = []
    index = 0
    while index < len(lines):
        lineno = index + 1
        line = lines[index].lstrip(_WHITESPACE)
        index += 1
        if not line or line[0] in "#!":
            continue  # comment lines never continue, even when ending in a backslash
        while _continues(line):
            line = line[:-1]
            if index >= len(lines):
                break
            line += lines[index].lstrip(_WHITESPACE)
            index += 1
        key, value = _split_key_value(line)
        entries.append((_unescape(key, origin, lineno), _unescape(value, origin, lineno), lineno))
    return entries


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_key_value(line: str) -> tuple[str, str]:
    escaped = False
    has_separator = False
    key_end = len(line)
    value_start = len(line)
    for pos, char in enumerate(line):
        if not escaped and char in "=:":
            key_end, value_start, has_separator = pos, pos + 1, True
            break
        if not escaped and char in _WHITESPACE:
            key_end, value_start = pos, pos + 1
            break
        escaped = char == "\\" and not escaped
    # Skip whitespace around the separator; a key ended by whitespace may still have one = or :.
    while value_start < len(line):
        char = line[value_start]
        if char in _WHITESPACE:
            value_start += 1
        elif not has_separator and char in "=:":
            has_separator = True
            value_start += 1
        else:
            break
    return line[:key_end], line[value_start:]


def _unescape(raw: str, origin: str, lineno: int) -> str:
    if "\\" not in raw:
        return raw
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        char = raw[pos]
        pos += 1
        if char != "\\":
            out.append(char)
            continue
        if pos >= len(raw):
            break  # a lone trailing backslash (at end of file) stands for nothing
        char = raw[pos]
        pos += 1
        if char == "u":
            digits = raw[pos : pos + 4]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise ConfigError(None, f"{origin}:{lineno}: malformed \\uXXXX escape")
            out.append(chr(int(digits, 16)))
            pos += 4
        else:
            out.append(_ESCAPES.get(char, char))
    return "".join(out)


def read_properties_file(path: Path) -> list[tuple[str, str, int]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(None, f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(None, f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # what Java's Properties.load(InputStream) assumes
    return parse_properties(text, str(path))


# ---------------------------------------------------------------------------------------------
# Values


def parse_value(definition: ConfigDef, raw: str) -> Any:
    """Parse and validate one value as Kafka's ConfigDef does (trimmed); ValueError says why."""
    text = raw.strip()
    kind = definition.type
    value: Any
    if kind is ConfigType.BOOLEAN:
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise ValueError("expected true or false")
        value = lowered == "true"
    elif kind in _INT_RANGES:
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ValueError(f"expected a whole number ({kind.name.lower()})")
        value = int(text)
        low, high = _INT_RANGES[kind]
        if not low <= value <= high:
            raise ValueError(f"out of range for a {kind.name.lower()}")
    elif kind is ConfigType.DOUBLE:
        try:
            value = float(text.replace("_", "!"))  # Java rejects 1_0; make float() reject it too
        except ValueError:
            raise ValueError("expected a number") from None
    elif kind is ConfigType.LIST:
        value = [item.strip() for item in text.split(",") if item.strip()]
    else:
        value = text
    _check(definition, value)
    return value


def _check(definition: ConfigDef, value: Any) -> None:
    if definition.min is not None and value < definition.min:
        raise ValueError(f"must be at least {_number(definition.min)}")
    if definition.max is not None and value > definition.max:
        raise ValueError(f"must be at most {_number(definition.max)}")
    if definition.choices is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in definition.choices:
                raise ValueError(f"must be one of {', '.join(sorted(definition.choices))}")
    if definition.check is not None and (reason := definition.check(value)) is not None:
        raise ValueError(reason)


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def render_value(value: Any) -> str | None:
    """A value as Kafka renders it in DescribeConfigs."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def _to_raw(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Endpoints


class Listener(NamedTuple):
    """A listener endpoint; host "" means all interfaces; port 0 means an ephemeral port."""

    name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    @property
    def bind_host(self) -> str | None:
        """Host for asyncio's create_server: None binds every interface (IPv4 and IPv6)."""
        return self.host or None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


class QuorumVoter(NamedTuple):
    node_id: int
    host: str
    port: int


def _split_host_port(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]+", port_text):
        raise ValueError(f"{text!r} is not host:port")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not re.fullmatch(r"[0-9A-Za-z\-%._:]*", host):
        raise ValueError(f"invalid host {host!r}")
    return host, port


def parse_protocol_map(text: str) -> dict[str, str]:
    """ "NAME:PROTOCOL,..." with names normalised to upper case, as Kafka's ListenerName does."""
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, protocol = item.partition(":")
        name, protocol = name.strip().upper(), protocol.strip().upper()
        if not sep or not name or protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"{item!r} is not NAME:PROTOCOL with a protocol among "
                f"{', '.join(SECURITY_PROTOCOLS)}"
            )
        if name in mapping:
            raise ValueError(f"listener name {name} is mapped twice")
        mapping[name] = protocol
    return mapping


def parse_listeners(text: str, protocols: Mapping[str, str]) -> list[Listener]:
    """Parse "NAME://host:port,..."; each name needs a security protocol in `protocols`."""
    listeners: list[Listener] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, address = item.partition("://")
        name = name.strip().upper()
        if not sep or not name:
            raise ValueError(f"{item!r} is not NAME://host:port")
        host, port = _split_host_port(address)
        if name not in protocols:
            raise ValueError(
                f"listener {name} has no security protocol in listener.security.protocol.map"
            )
        if any(existing.name == name for existing in listeners):
            raise ValueError(f"listener name {name} appears twice")
        listeners.append(Listener(name, host, port, protocols[name]))
    return listeners


_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def _same_socket(first: Listener, second: Listener) -> bool:
    if first.port == 0 or first.port != second.port:
        return False
    return first.host == second.host or bool({first.host, second.host} & _WILDCARDS)


def parse_voters(items: Iterable[str]) -> list[QuorumVoter]:
    """Parse controller.quorum.voters entries "id@host:port"."""
    voters: list[QuorumVoter] = []
    for item in items:
        node_text, sep, address = item.partition("@")
        if not sep or not re.fullmatch(r"[0-9]+", node_text.strip()):
            raise ValueError(f"{item!r} is not id@host:port")
        host, port = _split_host_port(address.strip())
        if not host or port == 0:
            raise ValueError(f"{item!r} needs a host and a non-zero port")
        node_id = int(node_text)
        if any(voter.node_id == node_id for voter in voters):
            raise ValueError(f"voter {node_id} appears twice")
        voters.append(QuorumVoter(node_id, host, port))
    return voters


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
        for key, (raw, source) in given.items():
            definition = DEFINITIONS.get(key)
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
            if key not in DEFINITIONS:
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
        given = {key: (_to_raw(value), "from_dict") for key, value in (values or {}).items()}
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
            self._bootstrap = [_split_host_port(item) for item in bootstrap_raw]
        except ValueError as exc:
            raise self._error("controller.quorum.bootstrap.servers", exc) from None
        self._resolve_node_id()
        self._resolve_roles()
        self._resolve_listeners()
        self._validate_quorum()
        self._resolve_storage()
        self._validate_timing()

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

    def _resolve_listeners(self) -> None:
        try:
            protocols = parse_protocol_map(self.get("listener.security.protocol.map"))
        except ValueError as exc:
            raise self._error("listener.security.protocol.map", exc) from None
        names_raw = self.get_str("controller.listener.names") or ""
        self.controller_listener_names = [
            n.strip().upper() for n in names_raw.split(",") if n.strip()
        ]
        if not self.is_set("listener.security.protocol.map"):
            # As Kafka does with KRaft: controller listeners default to PLAINTEXT unless TLS/SASL
            # is in use somewhere.
            secure = set(SECURITY_PROTOCOLS) - {"PLAINTEXT"}
            listener_names = {
                item.partition("://")[0].strip().upper()
                for item in self.get("listeners").split(",")
            }
            if not (secure & (set(self.controller_listener_names) | listener_names)):
                for name in self.controller_listener_names:
                    protocols.setdefault(name, "PLAINTEXT")
        self.security_protocol_map = protocols

        try:
            self.listeners = parse_listeners(self.get("listeners"), protocols)
        except ValueError as exc:
            raise self._error("listeners", exc) from None
        for index, first in enumerate(self.listeners):
            for second in self.listeners[index + 1 :]:
                if _same_socket(first, second):
                    raise self._error(
                        "listeners",
                        f"{first.name} and {second.name} use the same "
                        "port on overlapping addresses",
                    )
        names = {lst.name for lst in self.listeners}
        for name in self.controller_listener_names:
            if name not in protocols:
                raise self._error(
                    "controller.listener.names",
                    f"{name} has no security protocol in listener.security.protocol.map",
                )

        advertised_text = self.get_str("advertised.listeners")
        try:
            advertised = (
                self.listeners
                if advertised_text is None
                else parse_listeners(advertised_text, protocols)
            )
        except ValueError as exc:
            raise self._error("advertised.listeners", exc) from None
        if any(lst.host == "0.0.0.0" for lst in advertised):
            raise self._error(
                "advertised.listeners", "cannot advertise 0.0.0.0; use a routable address"
            )
        controller_names = set(self.controller_listener_names)
        self._advertised_broker = [lst for lst in advertised if lst.name not in controller_names]

        inter_name = self.get_str("inter.broker.listener.name")
        if inter_name is not None and self.is_set("security.inter.broker.protocol"):
            raise self._error(
                "inter.broker.listener.name",
                "set either it or security.inter.broker.protocol, not both",
            )
        self.inter_broker_listener_name = (
            inter_name or self.get("security.inter.broker.protocol")
        ).upper()

        if self.is_broker:
            advertised_names = {lst.name for lst in self._advertised_broker}
            if not advertised_names:
                raise self._error(
                    "listeners",
                    "there must be at least one broker listener "
                    "(not named in controller.listener.names)",
                )
            if not advertised_names <= names:
                raise self._error(
                    "advertised.listeners",
                    f"names {', '.join(sorted(advertised_names - names))} are not in listeners",
                )
            if self.inter_broker_listener_name not in advertised_names:
                key = (
                    "inter.broker.listener.name"
                    if inter_name is not None
                    else "security.inter.broker.protocol"
                )
                raise self._error(
                    key,
                    f"listener {self.inter_broker_listener_name} is not among "
                    f"the broker listeners {', '.join(sorted(advertised_names))}",
                )

    def _validate_quorum(self) -> None:
        voter_ids = {voter.node_id for voter in self._voters}
        names = {lst.name for lst in self.listeners}
        controller_names = set(self.controller_listener_names)
        if not self.is_controller:
            if self._single_node:
                raise self._error(
                    "controller.quorum.voters",
                    "a broker-only node needs the controller quorum: set it or "
                    "controller.quorum.bootstrap.servers",
                )
            if self.node_id in voter_ids:
                raise self._error(
                    "controller.quorum.voters", f"must not contain broker-only node {self.node_id}"
                )
            if not controller_names:
                raise self._error(
                    "controller.listener.names",
                    "must name the controllers' listener on a broker-only node",
                )
            if controller_names & names:
                raise self._error(
                    "controller.listener.names",
                    "must not appear in listeners on a broker-only node",
                )
            return
        if voter_ids and self.node_id not in voter_ids:
            raise self._error(
                "controller.quorum.voters", f"must contain this controller's node.id {self.node_id}"
            )
        if controller_names - names:
            raise self._error(
                "controller.listener.names",
                f"{', '.join(sorted(controller_names - names))} not in listeners",
            )
        if not self._single_node and not controller_names:
            # A one-voter in-process quorum (rafka single-node mode) needs no controller listener.
            raise self._error(
                "controller.listener.names",
                "must name a listener of this controller (e.g. CONTROLLER)",
            )
        if not self.is_broker and len(names - controller_names) > 0:
            raise self._error(
                "listeners", "a controller-only node may only have controller listeners"
            )

    def _resolve_storage(self) -> None:
        key = "log.dirs" if self.is_set("log.dirs") else "log.dir"
        raw = self.get_str(key) or ""
        dirs = [Path(item.strip()).expanduser() for item in raw.split(",") if item.strip()]
        if not dirs:
            raise self._error(key, "at least one log directory is required")
        if len(set(dirs)) != len(dirs):
            raise self._error(key, "lists a directory twice")
        self.log_dirs = dirs
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
                minutes * _MINUTE_MS
                if minutes is not None
                else self.get_int("log.retention.hours") * _HOUR_MS
            )
        return -1 if millis < 0 else int(millis)

    @property
    def segment_ms(self) -> int:
        """log.roll.ms, else log.roll.hours."""
        millis = self.get("log.roll.ms")
        return int(millis) if millis is not None else self.get_int("log.roll.hours") * _HOUR_MS

    @property
    def segment_jitter_ms(self) -> int:
        millis = self.get("log.roll.jitter.ms")
        if millis is not None:
            return int(millis)
        return self.get_int("log.roll.jitter.hours") * _HOUR_MS

    @property
    def flush_interval_ms(self) -> int:
        """log.flush.interval.ms, else log.flush.scheduler.interval.ms."""
        millis = self.get("log.flush.interval.ms")
        if millis is not None:
            return int(millis)
        return self.get_int("log.flush.scheduler.interval.ms")

    @property
    def offsets_retention_ms(self) -> int:
        return self.get_int("offsets.retention.minutes") * _MINUTE_MS

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
