"""Kafka's broker config keys as rafka defines them: type, default, bounds, doc line."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from msgspec import Struct

log = logging.getLogger(__name__)





INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

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


INT_RANGES = {
    ConfigType.SHORT: (-(2**15), 2**15 - 1),
    ConfigType.INT: (-(2**31), INT_MAX),
    ConfigType.LONG: (-(2**63), LONG_MAX),
}


class ConfigDef(Struct, frozen=True):
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


MIGRATION_POLICIES = ("bidirectional", "upgrade", "downgrade", "disabled")


def _migration_policy(value: str) -> str | None:
    # Kafka compares case-insensitively (ConfigDef.CaseInsensitiveValidString).
    if value.lower() in MIGRATION_POLICIES:
        return None
    return f"must be one of {', '.join(MIGRATION_POLICIES)}"


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
    D("controller.quorum.append.linger.ms", _I, 0,
      "Time the leader waits to batch metadata appends (rafka: 0, at once; Kafka: 25).", min=0),
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
    D("max.connections", _I, INT_MAX,
      "Maximum client connections across all listeners (controller listeners not counted); "
      "the next is closed at once.", min=0),
    D("max.connections.per.ip", _I, INT_MAX, "Maximum connections from one address.", min=0),
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
    D("log.segment.delete.delay.ms", _L, 0,
      "Delay before a deleted segment's files go (rafka: 0, at once; Kafka: 60000).",
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
    D("replica.fetch.max.bytes", _I, 8388608,
      "Bytes fetched per partition by a follower (rafka: 8388608; Kafka: 1048576, which costs "
      "rafka a quarter of its 3-node acks=all throughput: a follower fsyncs before each fetch).",
      min=0),
    D("max.incremental.fetch.session.cache.slots", _I, 1000,
      "Fetch sessions (KIP-227) the broker keeps; a consumer beyond them sends full fetches.",
      min=0),
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
    D("group.consumer.assignors", _LI, ["uniform", "range"],
      "Server-side assignors of the consumer protocol, the default first."),
    D("group.consumer.heartbeat.interval.ms", _I, 5000,
      "Heartbeat interval of consumer-protocol members.", min=1),
    D("group.consumer.min.heartbeat.interval.ms", _I, 5000,
      "Smallest consumer-protocol heartbeat interval.", min=1),
    D("group.consumer.max.heartbeat.interval.ms", _I, 15000,
      "Largest consumer-protocol heartbeat interval.", min=1),
    D("group.consumer.migration.policy", _S, "bidirectional",
      "Online conversion of non-empty groups between the classic and the consumer protocol: "
      "bidirectional, upgrade, downgrade or disabled (empty groups always convert).",
      check=_migration_policy),
    # --- share groups (KIP-932; issue 20's first slice: state in memory only)
    D("group.share.session.timeout.ms", _I, 45000, "Session timeout of share group members.",
      min=1),
    D("group.share.heartbeat.interval.ms", _I, 5000, "Heartbeat interval of share group "
      "members.", min=1),
    D("group.share.record.lock.duration.ms", _I, 30000, "Acquisition lock of a record "
      "delivered to a share group member.", min=1000, max=3600000),
    D("group.share.delivery.count.limit", _I, 5, "Deliveries of a record to a share group "
      "before it is archived.", min=2, max=10),
    D("group.share.partition.max.record.locks", _I, 2000, "In-flight records of a share "
      "partition.", min=100),
    D("group.share.max.size", _I, 200, "Maximum members of a share group.", min=1, max=1000),
    D("group.share.max.share.sessions", _I, 2000, "Share sessions a broker keeps.", min=1),
    # --- share coordinator (KIP-932: share-partition states in __share_group_state)
    D("share.coordinator.state.topic.num.partitions", _I, _INTERNAL_TOPIC_PARTITIONS,
      "Partitions of __share_group_state (rafka: 8, Kafka: 50).", min=1),
    D("share.coordinator.state.topic.replication.factor", _SH, 3,
      "Replication factor of __share_group_state (single node: 1).", min=1),
    D("share.coordinator.state.topic.min.isr", _SH, 2,
      "min.insync.replicas of __share_group_state (single node: 1).", min=1),
    D("share.coordinator.snapshot.update.records.per.snapshot", _I, 500,
      "Update records a share partition's state gets between two snapshot records.",
      min=0, max=500),
    D("share.coordinator.state.topic.prune.interval.ms", _I, 300000,
      "How often __share_group_state is pruned below the states' latest snapshots.", min=1),
    D("share.coordinator.cold.partition.snapshot.interval.ms", _I, 300000,
      "How often share partitions not updated meanwhile get a fresh snapshot (so that "
      "pruning passes their old one).", min=1),
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
    # --- TLS, for SSL and SASL_SSL listeners and for connections to the controller listeners;
    # each may be set for one listener as listener.name.<listener>.<key>. Passwords and keys are
    # sensitive: never described or logged.
    D("ssl.keystore.type", _S, "PEM",
      "PEM or PKCS12 (rafka default PEM; Kafka's JKS is Java's own format).",
      choices=frozenset({"PEM", "PKCS12"})),
    D("ssl.keystore.location", _S, None,
      "Key store file: PEM with the private key and the certificate chain, or PKCS12."),
    D("ssl.keystore.password", _P, None, "Password of a PKCS12 key store."),
    D("ssl.key.password", _P, None, "Password of the private key (PEM: the encrypted key)."),
    D("ssl.keystore.key", _P, None, "Private key in PEM, inline (instead of a file)."),
    D("ssl.keystore.certificate.chain", _P, None, "Certificate chain in PEM, inline."),
    D("ssl.truststore.type", _S, "PEM", "PEM or PKCS12.",
      choices=frozenset({"PEM", "PKCS12"})),
    D("ssl.truststore.location", _S, None, "Trust store file: CA certificates (PEM or PKCS12)."),
    D("ssl.truststore.password", _P, None, "Password of a PKCS12 trust store."),
    D("ssl.truststore.certificates", _P, None, "Trusted certificates in PEM, inline."),
    D("ssl.client.auth", _S, "none",
      "Client certificates: none, requested (verified when given) or required (mTLS).",
      choices=frozenset({"none", "requested", "required"})),
    D("ssl.enabled.protocols", _LI, ["TLSv1.2", "TLSv1.3"], "TLS versions accepted.",
      choices=frozenset({"TLSv1.2", "TLSv1.3"})),
    D("ssl.protocol", _S, "TLSv1.3", "Highest TLS version (Kafka's SSLContext protocol).",
      choices=frozenset({"TLSv1.2", "TLSv1.3", "TLS"})),
    D("ssl.cipher.suites", _LI, [], "TLS 1.2 cipher suites (OpenSSL names); empty: defaults."),
    D("ssl.principal.mapping.rules", _S, "DEFAULT",
      "Client certificate to principal: DEFAULT (User:<distinguished name>)."),
    D("ssl.endpoint.identification.algorithm", _S, "https",
      "Host name check of the other nodes' certificates: https, or empty to skip it."),
    # --- authorization
    D("authorizer.class.name", _S, "",
      "ACLs: org.apache.kafka.metadata.authorizer.StandardAuthorizer (Kafka's, as rafka "
      "implements it); empty: every request is allowed.",
      choices=frozenset({"", "org.apache.kafka.metadata.authorizer.StandardAuthorizer"})),
    D("super.users", _S, "", "Principals allowed everything, separated by ';' (User:admin)."),
    D("allow.everyone.if.no.acl.found", _B, False,
      "Allow a request on a resource that no ACL names."),
    # --- SASL, for SASL_PLAINTEXT and SASL_SSL listeners; also settable per listener
    D("sasl.enabled.mechanisms", _LI, ["GSSAPI"],
      "SASL mechanisms served (rafka: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)."),
    D("sasl.mechanism.inter.broker.protocol", _S, "GSSAPI",
      "Mechanism brokers use toward each other (rafka: PLAIN)."),
    D("sasl.mechanism.controller.protocol", _S, "GSSAPI",
      "Mechanism nodes use toward the controller listeners (rafka: PLAIN)."),
    D("plain.sasl.jaas.config", _P, None,
      'PlainLoginModule options: user_<name>="<password>" (users), username/password (this '
      "node's own, toward the others); usually set per listener."),
    D("scram-sha-256.sasl.jaas.config", _P, None, "ScramLoginModule options (per listener)."),
    D("scram-sha-512.sasl.jaas.config", _P, None, "ScramLoginModule options (per listener)."),
    # --- rafka-specific
    D("rafka.metrics.port", _I, 0,
      "Port of the Prometheus /metrics HTTP endpoint (rafka); 0 disables it.", min=0, max=65535),
    D("rafka.metrics.host", _S, "localhost", "Interface of the Prometheus endpoint (rafka)."),
)
del D
# fmt: on


class Unimplemented(Struct, frozen=True):
    """A key rafka knows but implements for some values only: the default, `served`, and no
    other. Any other value stops the broker (and is refused as a topic config) with one line
    saying `why`, rather than a setting that silently does nothing. Kafka's own default, where
    rafka's differs (`kafka_default`), is taken as rafka's, with a warning: configs written
    for Kafka restate it (Testcontainers' KafkaContainer sets log.flush.interval.messages to
    Long.MAX_VALUE, Kafka's default)."""

    why: str
    served: tuple[Any, ...] = ()
    kafka_default: Any = None

    def serves(self, definition: ConfigDef, value: Any) -> bool:
        return value == definition.default or value in self.served or self.restates_kafka(value)

    def restates_kafka(self, value: Any) -> bool:
        return self.kafka_default is not None and value == self.kafka_default


NOT_IMPLEMENTED: dict[str, Unimplemented] = {
    "log.flush.interval.messages": Unimplemented(
        "rafka fsyncs every write before acknowledging it (group commit); fsyncing less often "
        "is not implemented",
        kafka_default=LONG_MAX,
    ),
    "log.preallocate": Unimplemented("segment files are not preallocated"),
    "log.segment.delete.delay.ms": Unimplemented(
        "segment files are deleted at once (readers keep the descriptors they opened)",
        kafka_default=60000,
    ),
    "log.cleaner.threads": Unimplemented("the log cleaner runs on one thread"),
    "controller.quorum.append.linger.ms": Unimplemented(
        "the metadata quorum appends at once (group commit batches its fsyncs)",
        kafka_default=25,
    ),
    "replica.fetch.response.max.bytes": Unimplemented(
        "a follower's fetch response is limited per partition only (replica.fetch.max.bytes)"
    ),
    "replica.fetch.min.bytes": Unimplemented(
        "a leader answers a follower's fetch as soon as it has any record"
    ),
    "replica.fetch.backoff.ms": Unimplemented(
        "a follower retries a failed fetch after controller.quorum.retry.backoff.ms"
    ),
    "replica.socket.timeout.ms": Unimplemented(
        "a follower's fetch times out after replica.fetch.wait.max.ms plus "
        "controller.quorum.request.timeout.ms"
    ),
    "unclean.leader.election.enable": Unimplemented(
        "a Raft election only picks a replica holding every committed record"
    ),
    "sasl.mechanism.inter.broker.protocol": Unimplemented(
        "the nodes authenticate to each other with sasl.mechanism.controller.protocol (PLAIN)",
        served=("PLAIN",),
    ),
}
# SASL mechanisms rafka serves (Kafka's GSSAPI and OAUTHBEARER are not implemented).
SASL_MECHANISMS_SERVED = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})
# Security protocols of the listeners rafka serves.
SERVED_SECURITY_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})
# Keys that may also be set for one listener: listener.name.<listener, lower case>.<key>.
LISTENER_PREFIXABLE = frozenset(
    name
    for name in DEFINITIONS
    if name.startswith(("ssl.", "sasl.")) or name.endswith(".sasl.jaas.config")
)
LISTENER_PREFIX = "listener.name."


def is_listener_key(key: str) -> bool:
    """listener.name.<listener>.<key> with a key that may be set per listener."""
    if not key.startswith(LISTENER_PREFIX):
        return False
    listener, _, name = key[len(LISTENER_PREFIX) :].partition(".")
    return bool(listener) and name in LISTENER_PREFIXABLE

# Single-node mode (no controller.quorum.voters): Kafka's defaults here would leave internal topics
# uncreatable (RF 3 on one node) or slow a laptop's first consumer; these are the values Kafka's own
# quickstart server.properties sets for a single node.
SINGLE_NODE_DEFAULTS: dict[str, Any] = {
    "offsets.topic.replication.factor": 1,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "share.coordinator.state.topic.replication.factor": 1,
    "share.coordinator.state.topic.min.isr": 1,
    "group.initial.rebalance.delay.ms": 0,
}
