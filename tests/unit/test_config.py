"""Broker configuration: .properties syntax, precedence, validation, Kafka defaults (listeners
and the quorum: test_config_topology.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rafka.broker.config import (
    DEFINITIONS,
    ENV_VARS,
    LONG_MAX,
    BrokerConfig,
    ConfigError,
    ConfigType,
    Listener,
    env_var_name,
    kafka_env_key,
    parse_properties,
    render_value,
)


def load(*overrides: str, environ: dict[str, str] | None = None) -> BrokerConfig:
    return BrokerConfig.load(None, list(overrides), environ or {})


def props(text: str) -> dict[str, str]:
    return {key: value for key, value, _ in parse_properties(text)}


# --- .properties syntax ---------------------------------------------------------------------


def test_separators_equals_colon_and_whitespace() -> None:
    parsed = props("a=1\nb: 2\nc 3\nd = 4\n  e\t:\t5\nf:=6\ng = = 7\n")
    assert parsed == {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "=6", "g": "= 7"}


def test_comments_and_blank_lines_are_skipped() -> None:
    text = "# comment\n! also a comment\n   # indented comment\n\n   \nkey=value\n"
    assert props(text) == {"key": "value"}


def test_key_without_value_and_empty_value() -> None:
    assert props("lonely\nempty=\n") == {"lonely": "", "empty": ""}


def test_value_keeps_inner_and_trailing_whitespace_and_separators() -> None:
    assert props("k = a b=c:d  \n")["k"] == "a b=c:d  "


def test_line_continuation_strips_leading_whitespace_of_next_line() -> None:
    text = "listeners=PLAINTEXT://a:1,\\\n    CONTROLLER://b:2\nnext=1\n"
    assert props(text) == {"listeners": "PLAINTEXT://a:1,CONTROLLER://b:2", "next": "1"}


def test_continuation_line_starting_with_hash_is_not_a_comment() -> None:
    assert props("k=a\\\n  #b\n")["k"] == "a#b"


def test_even_number_of_trailing_backslashes_does_not_continue() -> None:
    parsed = props("path=C:\\\\dir\\\\\nother=x\n")
    assert parsed == {"path": "C:\\dir\\", "other": "x"}


def test_comment_ending_in_backslash_does_not_continue() -> None:
    assert props("# comment \\\nkey=value\n") == {"key": "value"}


def test_backslash_at_end_of_file_is_dropped() -> None:
    assert props("k=v\\") == {"k": "v"}


def test_escapes_in_keys_and_values() -> None:
    text = "my\\ key\\:x\\=y=a\\:b\\=c\\\\d\\te\\nf\\u00e9\\u20AC\\q\n"
    assert props(text) == {"my key:x=y": "a:b=c\\d\te\nfé€q"}


def test_malformed_unicode_escape_is_an_error_with_line_number() -> None:
    with pytest.raises(ConfigError, match=r"server.properties:2: malformed \\uXXXX"):
        parse_properties("a=1\nb=\\u12g4\n", "server.properties")


def test_crlf_and_cr_line_endings() -> None:
    assert props("a=1\r\nb=2\rc=3") == {"a": "1", "b": "2", "c": "3"}


def test_line_numbers_point_at_the_logical_line_start() -> None:
    entries = parse_properties("# c\n\na=1\\\n 2\nb=3\n")
    assert [(key, lineno) for key, _, lineno in entries] == [("a", 3), ("b", 5)]


def test_file_later_duplicate_wins_and_latin1_fallback(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_bytes("num.partitions=2\nnum.partitions=3\nbroker.rack=caf\xe9\n".encode("latin-1"))
    config = BrokerConfig.load(path, [], {})
    assert config.num_partitions == 3
    assert config.broker_rack == "café"
    assert config.source_of("num.partitions") == f"{path}:2"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        BrokerConfig.load(tmp_path / "absent.properties", [], {})


# --- precedence -------------------------------------------------------------------------------


def test_file_then_env_then_override(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text("num.partitions=2\ndefault.replication.factor=1\nmessage.max.bytes=1000\n")
    environ = {"RAFKA_NUM_PARTITIONS": "4", "RAFKA_MESSAGE_MAX_BYTES": "2000"}
    config = BrokerConfig.load(path, ["message.max.bytes=3000"], environ)
    assert config.default_replication_factor == 1  # file only
    assert config.num_partitions == 4  # env beats file
    assert config.message_max_bytes == 3000  # override beats env
    assert config.source_of("num.partitions") == "env RAFKA_NUM_PARTITIONS"
    assert config.source_of("message.max.bytes") == "--override"


def test_env_names_are_upper_case_with_underscores() -> None:
    environ = {
        "RAFKA_NODE_ID": "7",
        "RAFKA_LOG_DIRS": "/data/a",
        "RAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "RAFKA_NUM_PARTITIONS": "3",
        "RAFKA_CONTROLLER_QUORUM_VOTERS": "",
    }
    config = load(environ=environ)
    assert config.node_id == 7
    assert config.log_dirs == [Path("/data/a")]
    assert config.auto_create_topics_enable is False
    assert config.get_int("num.partitions") == 3
    assert env_var_name("log.retention.check.interval.ms") == (
        "RAFKA_LOG_RETENTION_CHECK_INTERVAL_MS"
    )
    assert env_var_name("rafka.metrics.port") == "RAFKA_METRICS_PORT"


def test_apache_kafka_image_environment_configures_the_broker() -> None:
    """A compose file written for apache/kafka works with rafka's image swapped in."""
    environ = {
        "KAFKA_NODE_ID": "2",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:19092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://kafka-2:19092",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
        "CLUSTER_ID": "4L6g3nShT-eMCtK--X86sw",
        "KAFKA_HEAP_OPTS": "-Xmx1G",
        "RAFKA_NUM_PARTITIONS": "5",
        "KAFKA_NUM_PARTITIONS": "3",
    }
    config = load(environ=environ)
    assert config.node_id == 2
    assert [v.node_id for v in config.quorum_voters] == [1, 2, 3]
    assert config.log_dirs == [Path("/var/lib/kafka/data")]
    assert config.get_int("offsets.topic.replication.factor") == 3
    assert config.source_of("cluster.id") == "env CLUSTER_ID"
    assert config.num_partitions == 5  # RAFKA_ beats KAFKA_
    assert config.source_of("node.id") == "env KAFKA_NODE_ID"
    assert config.warnings == ["Environment variable KAFKA_HEAP_OPTS sets up a JVM; it is ignored"]
    assert kafka_env_key("KAFKA_SOME__KEY___X_Y") == "some_key-x.y"


def test_unknown_kafka_style_variable_is_warned() -> None:
    config = load(environ={"KAFKA_BOOTSTRAP_SERVERS": "x:9092"})
    assert config.warnings == [
        "Environment variable KAFKA_BOOTSTRAP_SERVERS (bootstrap.servers) matches no rafka "
        "config key; it is ignored"
    ]


def test_every_key_has_its_own_env_var() -> None:
    assert len(ENV_VARS) == len(DEFINITIONS)


def test_unrelated_environment_is_ignored_and_unknown_rafka_vars_warned() -> None:
    config = load(environ={"HOME": "/root", "RAFKA_LOG_FORMAT": "json", "RAFKA_NUM_PARTITONS": "3"})
    assert config.num_partitions == 1
    assert len(config.warnings) == 1 and "RAFKA_NUM_PARTITONS" in config.warnings[0]


def test_override_value_may_contain_equals_and_must_have_one() -> None:
    assert load("broker.rack=a=b").broker_rack == "a=b"
    with pytest.raises(ConfigError, match="not key=value"):
        load("num.partitions")


def test_unknown_keys_are_kept_and_warned() -> None:
    config = load("zookeeper.connect=zk:2181")
    assert config.unknown == {"zookeeper.connect": "zk:2181"}
    assert config.originals["zookeeper.connect"] == "zk:2181"
    assert any("zookeeper.connect" in warning for warning in config.warnings)


# --- type validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ("node.id=abc", "expected a whole number"),
        ("node.id=1_0", "expected a whole number"),
        ("node.id=-1", "at least 0"),
        ("num.partitions=2147483648", "out of range"),
        ("auto.create.topics.enable=yes", "expected true or false"),
        ("log.cleaner.min.cleanable.ratio=1.5", "at most 1"),
        ("log.cleaner.min.cleanable.ratio=half", "expected a number"),
        ("log.segment.bytes=1000", "at least 1048576"),
        ("compression.type=brotli", "must be one of"),
        ("log.cleanup.policy=delete,shred", "must be one of"),
        ("log.message.timestamp.type=createtime", "must be one of"),
        ("compression.gzip.level=0", "-1 or between 1 and 9"),
        ("offsets.topic.replication.factor=40000", "out of range"),
        ("cluster.id=not-a-uuid", "Kafka cluster id"),
    ],
)
def test_bad_values_raise_one_line_naming_the_key(setting: str, reason: str) -> None:
    key = setting.partition("=")[0]
    with pytest.raises(ConfigError) as info:
        load(setting)
    message = str(info.value)
    assert info.value.key == key
    assert f"configuration {key}" in message and reason in message
    assert "\n" not in message


def test_error_from_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text("# broker\nnode.id=1\nnum.partitions=many\n")
    with pytest.raises(ConfigError, match=rf"num.partitions \({path}:3\)"):
        BrokerConfig.load(path, [], {})


def test_values_are_trimmed_and_booleans_case_insensitive() -> None:
    config = load(
        "num.partitions= 3 ", "delete.topic.enable= FALSE", "log.cleanup.policy= compact ,delete"
    )
    assert config.num_partitions == 3
    assert config.delete_topic_enable is False
    assert config.cleanup_policy == ["compact", "delete"]


def test_sensitive_values_are_hidden_in_errors_and_describe() -> None:
    config = load("ssl.keystore.password=hunter2")
    entry = next(e for e in config.describe() if e.name == "ssl.keystore.password")
    assert entry.is_sensitive and entry.value is None and not entry.is_default
    assert "hunter2" not in repr(config)
    with pytest.raises(ConfigError) as refused:
        load("listener.name.ssl.ssl.client.auth=hunter2")
    assert "hunter2" in str(refused.value)  # not sensitive: shown
    with pytest.raises(ConfigError) as refused:
        load("listener.name.ssl.ssl.keystore.type=secret-type")
    assert DEFINITIONS["ssl.keystore.password"].type is ConfigType.PASSWORD


@pytest.mark.parametrize(
    "settings",
    [
        ("listeners=PLAINTEXT://:9092,SASL_SSL://:9093",),
        (
            "listeners=PLAINTEXT://:9092,EXT://:9093",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,EXT:SASL_PLAINTEXT",
        ),
    ],
)
def test_what_rafka_does_not_implement_is_refused_in_one_line(settings) -> None:
    """Never a setting that silently does nothing: a TLS listener served in plaintext."""
    with pytest.raises(ConfigError) as refused:
        load(*settings)
    message = str(refused.value)
    assert "\n" not in message
    assert "not implement" in message


@pytest.mark.parametrize(
    "setting",
    [
        "log.flush.interval.messages=10000",
        "log.preallocate=true",
        "log.segment.delete.delay.ms=30000",
        "log.cleaner.threads=4",
        "controller.quorum.append.linger.ms=10",
        "replica.fetch.response.max.bytes=20971520",
        "replica.fetch.min.bytes=1024",
        "replica.fetch.backoff.ms=500",
        "replica.socket.timeout.ms=60000",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        "unclean.leader.election.enable=true",
    ],
)
def test_a_value_rafka_does_not_implement_is_refused_in_one_line(setting) -> None:
    """A key rafka recognises stops the broker when set to a value it would ignore (fsync less
    often, threads it does not start), naming the key, the value and what rafka does."""
    key, _, value = setting.partition("=")
    with pytest.raises(ConfigError) as refused:
        load(setting)
    message = str(refused.value)
    assert "\n" not in message
    assert key in message and f"{value} is not implemented by rafka: " in message


@pytest.mark.parametrize(
    "setting",
    [
        "log.flush.interval.messages=1",
        "log.flush.interval.ms=1000",  # every write is fsynced: any bound is met
        "log.preallocate=false",
        "log.segment.delete.delay.ms=0",
        "log.cleaner.threads=1",
        "replica.fetch.min.bytes=1",
        "replica.socket.timeout.ms=30000",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
    ],
)
def test_the_values_rafka_implements_are_accepted(setting) -> None:
    key, _, value = setting.partition("=")
    config = load(setting)
    assert render_value(config.get(key)) == value
    assert not any(key in warning for warning in config.warnings)


@pytest.mark.parametrize(
    "setting",
    [
        "log.flush.interval.messages=9223372036854775807",  # Testcontainers' KafkaContainer
        "log.segment.delete.delay.ms=60000",
        "controller.quorum.append.linger.ms=25",
    ],
)
def test_kafkas_own_default_is_taken_as_rafkas_with_a_warning(setting) -> None:
    """Configs written for Kafka restate its defaults; where rafka's differ, the broker starts
    and says in one line what it does instead."""
    key, _, value = setting.partition("=")
    [warning] = [w for w in load(setting).warnings if key in w]
    assert f"{key}={value} (Kafka's default) is taken as rafka's" in warning


def test_rafka_defaults_say_what_rafka_does() -> None:
    config = load()
    assert config.get("log.segment.delete.delay.ms") == 0  # Kafka: 60000
    assert config.get("controller.quorum.append.linger.ms") == 0  # Kafka: 25
    assert config.get("log.flush.interval.messages") == 1  # Kafka: Long.MAX_VALUE
    assert config.get("replica.fetch.max.bytes") == 8 * 1024 * 1024  # Kafka: 1 MiB


def test_metrics_endpoint_is_configured_by_port_and_host() -> None:
    config = load("rafka.metrics.port=9404", "rafka.metrics.host=0.0.0.0")
    assert config.metrics_enabled and config.metrics_port == 9404
    assert config.metrics_host == "0.0.0.0"
    assert load().metrics_host == "localhost"
    with pytest.raises(ConfigError, match="rafka.metrics.port"):
        load("rafka.metrics.port=65536")


def test_valid_cluster_id_is_accepted() -> None:
    assert load("cluster.id=MkU3OEVBNTcwNTJENDM2Qg").cluster_id == "MkU3OEVBNTcwNTJENDM2Qg"


# --- defaults -----------------------------------------------------------------------------------


KAFKA_DEFAULTS = {
    "num.partitions": 1,
    "default.replication.factor": 1,
    "auto.create.topics.enable": True,
    "delete.topic.enable": True,
    "socket.request.max.bytes": 104857600,
    "message.max.bytes": 1048588,
    "log.segment.bytes": 1073741824,
    "log.roll.hours": 168,
    "log.retention.hours": 168,
    "log.retention.bytes": -1,
    "log.retention.check.interval.ms": 300000,
    "log.cleanup.policy": ["delete"],
    "log.index.interval.bytes": 4096,
    "log.index.size.max.bytes": 10485760,
    "log.message.timestamp.type": "CreateTime",
    "log.message.timestamp.after.max.ms": 3600000,
    "compression.type": "producer",
    "min.insync.replicas": 1,
    "replica.lag.time.max.ms": 30000,
    "log.cleaner.enable": True,
    "producer.id.expiration.ms": 86400000,
    "transactional.id.expiration.ms": 604800000,
    "transaction.max.timeout.ms": 900000,
    "unclean.leader.election.enable": False,
    "controller.quorum.election.timeout.ms": 1000,
    "controller.quorum.fetch.timeout.ms": 2000,
}


def test_kafka_defaults() -> None:
    config = load()
    assert {key: config.get(key) for key in KAFKA_DEFAULTS} == KAFKA_DEFAULTS
    assert all(not config.is_set(key) for key in KAFKA_DEFAULTS)


def test_rafka_zero_config_defaults() -> None:
    config = load()
    assert config.node_id == 1
    assert config.process_roles == ["broker", "controller"]
    assert config.is_broker and config.is_controller
    assert config.listeners == [Listener("PLAINTEXT", "localhost", 9092, "PLAINTEXT")]
    assert config.advertised_listeners == config.listeners
    assert config.log_dirs == [Path("rafka-data")]
    assert config.metadata_log_dir == Path("rafka-data")
    assert config.is_single_node and config.voter_ids == [1] and config.quorum_voters == []
    assert config.flush_interval_messages == 1  # fsync before acknowledging (DESIGN)
    assert config.offsets_topic_num_partitions == 8
    assert config.transaction_state_log_num_partitions == 8
    assert config.metrics_port == 0 and not config.metrics_enabled
    assert config.cluster_id is None


def test_log_dirs_overrides_log_dir() -> None:
    assert load("log.dir=/one").log_dirs == [Path("/one")]
    assert load("log.dir=/one", "log.dirs= /two ").log_dirs == [Path("/two")]
    assert load("log.dirs=/d", "metadata.log.dir=/d").metadata_log_dir == Path("/d")
    # Several log directories (JBOD); the metadata log in the first unless metadata.log.dir.
    several = load("log.dirs=/two, /three")
    assert several.log_dirs == [Path("/two"), Path("/three")]
    assert several.metadata_log_dir == Path("/two")
    assert load("log.dirs=/d", "metadata.log.dir=/m").metadata_log_dir == Path("/m")
    with pytest.raises(ConfigError, match="log.dirs"):
        load("log.dirs= , ")
    with pytest.raises(ConfigError, match="twice"):
        load("log.dirs=/a,/a")


def test_broker_id_is_an_alias_of_node_id() -> None:
    assert load("broker.id=5").node_id == 5
    assert load("broker.id=5", "node.id=5").node_id == 5
    with pytest.raises(ConfigError, match="broker.id"):
        load("broker.id=5", "node.id=6")


def test_from_dict_accepts_python_values(tmp_path: Path) -> None:
    config = BrokerConfig.from_dict(
        {"log.dirs": tmp_path, "auto.create.topics.enable": False,
         "log.cleanup.policy": ["compact"], "num.partitions": 3}
    )
    assert config.log_dirs == [tmp_path]
    assert config.auto_create_topics_enable is False
    assert config.cleanup_policy == ["compact"]
    assert config.get_int("num.partitions") == 3
    with pytest.raises(TypeError):
        config.get_bool("num.partitions")


# --- derived time settings ---------------------------------------------------------------------

HOUR = 3_600_000


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ((), 168 * HOUR),
        (("log.retention.hours=1",), HOUR),
        (("log.retention.hours=1", "log.retention.minutes=5"), 5 * 60_000),
        (("log.retention.hours=1", "log.retention.minutes=5", "log.retention.ms=1234"), 1234),
        (("log.retention.ms=-1",), -1),
        (("log.retention.ms=-5",), -1),
        (("log.retention.hours=-1",), -1),
        (("log.retention.minutes=-1", "log.retention.hours=2"), -1),
    ],
)
def test_retention_ms_precedence(settings: tuple[str, ...], expected: int) -> None:
    config = load(*settings)
    assert config.retention_ms == expected
    assert config.topic_defaults()["retention.ms"] == str(expected)


def test_retention_ms_wins_even_when_hours_come_from_a_stronger_source(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text("log.retention.ms=5000\n")
    assert BrokerConfig.load(path, ["log.retention.hours=1"], {}).retention_ms == 5000


def test_zero_retention_is_rejected() -> None:
    with pytest.raises(ConfigError, match="log.retention.ms"):
        load("log.retention.ms=0")
    with pytest.raises(ConfigError, match="log.retention.minutes"):
        load("log.retention.minutes=0")


def test_segment_ms_from_roll_ms_or_hours() -> None:
    assert load().segment_ms == 168 * HOUR
    assert load("log.roll.hours=2").segment_ms == 2 * HOUR
    assert load("log.roll.hours=2", "log.roll.ms=60000").segment_ms == 60000
    assert load("log.roll.jitter.hours=1").segment_jitter_ms == HOUR
    assert load("log.roll.jitter.hours=1", "log.roll.jitter.ms=5").segment_jitter_ms == 5


def test_flush_ms_falls_back_to_scheduler_interval() -> None:
    assert load().flush_interval_ms == LONG_MAX
    assert load("log.flush.scheduler.interval.ms=1000").flush_interval_ms == 1000
    assert load("log.flush.interval.ms=10").flush_interval_ms == 10


# --- topic defaults and describe ---------------------------------------------------------------


def test_topic_defaults_map_broker_keys_to_topic_names() -> None:
    config = load(
        "message.max.bytes=2000000",
        "log.segment.bytes=2097152",
        "log.roll.hours=1",
        "log.retention.minutes=30",
        "log.retention.bytes=5000",
        "log.cleanup.policy=compact,delete",
        "log.message.timestamp.type=LogAppendTime",
        "compression.type=zstd",
        "min.insync.replicas=2",
        "log.flush.interval.messages=1",
        "log.flush.interval.ms=50",
        "log.index.interval.bytes=8192",
        "log.segment.delete.delay.ms=0",
    )
    defaults = config.topic_defaults()
    assert {name: defaults[name] for name in (
        "max.message.bytes", "segment.bytes", "segment.ms", "retention.ms", "retention.bytes",
        "cleanup.policy", "message.timestamp.type", "compression.type", "min.insync.replicas",
        "flush.messages", "flush.ms", "index.interval.bytes", "file.delete.delay.ms",
    )} == {
        "max.message.bytes": "2000000",
        "segment.bytes": "2097152",
        "segment.ms": str(HOUR),
        "retention.ms": str(30 * 60_000),
        "retention.bytes": "5000",
        "cleanup.policy": "compact,delete",
        "message.timestamp.type": "LogAppendTime",
        "compression.type": "zstd",
        "min.insync.replicas": "2",
        "flush.messages": "1",
        "flush.ms": "50",
        "index.interval.bytes": "8192",
        "file.delete.delay.ms": "0",
    }
    assert "num.partitions" not in defaults and "log.retention.hours" not in defaults


def test_topic_defaults_with_kafka_defaults() -> None:
    defaults = load().topic_defaults()
    assert defaults["retention.ms"] == "604800000"
    assert defaults["segment.ms"] == "604800000"
    assert defaults["flush.ms"] == str(LONG_MAX)
    assert defaults["min.cleanable.dirty.ratio"] == "0.5"
    assert defaults["preallocate"] == "false"
    assert all(isinstance(value, str) for value in defaults.values())


def test_describe_lists_every_known_config_with_defaults_marked() -> None:
    entries = {entry.name: entry for entry in load("num.partitions=3").describe()}
    assert set(entries) == set(DEFINITIONS)
    assert entries["num.partitions"].value == "3" and not entries["num.partitions"].is_default
    hours = entries["log.retention.hours"]
    assert hours.value == "168" and hours.is_default
    assert entries["log.retention.ms"].value is None
    assert entries["process.roles"].value == "broker,controller"
    assert all(entry.doc for entry in entries.values())
