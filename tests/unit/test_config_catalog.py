"""Topic and dynamic broker configs as DescribeConfigs reports them (config_catalog)."""

from __future__ import annotations

import pytest

from rafka.broker.config import BrokerConfig
from rafka.broker.config_catalog import (
    DYNAMIC_BROKER_CONFIGS,
    TOPIC_CONFIGS,
    BrokerConfigs,
    ConfigRequestError,
    ConfigSource,
    describe_broker,
    describe_broker_defaults,
    describe_topic,
    validate_broker_config,
    validate_topic_config,
)
from rafka.protocol.errors import ErrorCode


def layers(static: dict | None = None, node: dict | None = None, default: dict | None = None):
    dynamic = {"1": node or {}, "": default or {}}
    return BrokerConfigs.of(BrokerConfig.from_dict(static or {}), 1, dynamic)


def by_name(described):
    return {c.name: c for c in described}


def test_topic_value_comes_from_the_highest_layer() -> None:
    configs = layers(static={"log.retention.hours": 48}, default={"log.segment.bytes": "2097152"})
    topic = by_name(describe_topic({"cleanup.policy": "compact"}, configs))
    assert (topic["cleanup.policy"].value, topic["cleanup.policy"].source) == (
        "compact",
        ConfigSource.DYNAMIC_TOPIC_CONFIG,
    )
    assert (topic["retention.ms"].value, topic["retention.ms"].source) == (
        str(48 * 3_600_000),
        ConfigSource.STATIC_BROKER_CONFIG,
    )
    assert topic["retention.ms"].synonyms == (
        ("log.retention.hours", "48", ConfigSource.STATIC_BROKER_CONFIG),
    )
    segment = topic["segment.bytes"]
    assert (segment.value, segment.source) == (
        "2097152",
        ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG,
    )
    assert [s[2] for s in segment.synonyms] == [
        ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG,
        ConfigSource.DEFAULT_CONFIG,
    ]
    assert topic["remote.storage.enable"].value == "false"
    assert set(topic) == set(TOPIC_CONFIGS)


def test_per_broker_layer_beats_the_cluster_default() -> None:
    configs = layers(node={"log.retention.ms": "1000"}, default={"log.retention.ms": "2000"})
    broker = by_name(describe_broker(configs))
    retention = broker["log.retention.ms"]
    assert (retention.value, retention.source, retention.read_only) == (
        "1000",
        ConfigSource.DYNAMIC_BROKER_CONFIG,
        False,
    )
    assert broker["log.retention.hours"].read_only  # only the first synonym is dynamic
    assert broker["node.id"].read_only
    assert by_name(describe_topic({}, configs))["retention.ms"].value == "1000"
    defaults = describe_broker_defaults(configs)
    assert [(c.name, c.value, c.source) for c in defaults] == [
        ("log.retention.ms", "2000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)
    ]


def test_sensitive_values_are_never_described() -> None:
    configs = layers(node={"ssl.keystore.password": "secret"})
    password = by_name(describe_broker(configs))["ssl.keystore.password"]
    assert password.sensitive and password.value is None
    assert all(value is None for _, value, _ in password.synonyms)


@pytest.mark.parametrize(
    ("name", "value", "code", "message"),
    [
        ("no.such", "1", ErrorCode.invalid_config, "Unknown topic config name: no.such"),
        ("retention.ms", "soon", ErrorCode.invalid_config, "Not a number of type LONG"),
        ("segment.bytes", "10", ErrorCode.invalid_config, "at least 14"),
        ("compression.type", "brotli", ErrorCode.invalid_config, "must be one of"),
        ("preallocate", "maybe", ErrorCode.invalid_config, "either true or false"),
        # Values rafka would ignore: fsyncing less often, preallocating, delaying deletion.
        (
            "flush.messages",
            "10000",
            ErrorCode.invalid_config,
            "Invalid value 10000 for configuration flush.messages: not implemented by rafka: "
            "rafka fsyncs every write",
        ),
        ("preallocate", "true", ErrorCode.invalid_config, "not implemented by rafka"),
        ("file.delete.delay.ms", "30000", ErrorCode.invalid_config, "not implemented by rafka"),
        (
            "unclean.leader.election.enable",
            "true",
            ErrorCode.invalid_config,
            "not implemented by rafka: a Raft election only picks",
        ),
        # Topic-only configs rafka does not act on: tiered storage, replication throttles.
        ("remote.storage.enable", "true", ErrorCode.invalid_config, "not implemented by rafka"),
        ("local.retention.ms", "1000", ErrorCode.invalid_config, "not implemented by rafka"),
        (
            "leader.replication.throttled.replicas",
            "0:1,0:2",
            ErrorCode.invalid_config,
            "not implemented by rafka",
        ),
        ("retention.ms", None, ErrorCode.invalid_request, "Null value"),
        # Kafka 4.x's list rules: an empty element is refused, an unknown one named.
        (
            "cleanup.policy",
            "compact,",
            ErrorCode.invalid_config,
            "Configuration 'cleanup.policy' values must not be empty.",
        ),
        (
            "cleanup.policy",
            "delete,Compact",
            ErrorCode.invalid_config,
            "Invalid value Compact for configuration cleanup.policy: String must be one of: "
            "compact, delete",
        ),
    ],
)
def test_topic_config_validation(name, value, code, message) -> None:
    with pytest.raises(ConfigRequestError) as raised:
        validate_topic_config(name, value)
    assert raised.value.code == code and message in raised.value.message


def test_broker_config_validation() -> None:
    validate_broker_config("log.retention.ms", "1000")
    validate_broker_config("some.plugin.setting", "x")  # unknown names are kept, as Kafka does
    assert "log.cleaner.backoff.ms" in DYNAMIC_BROKER_CONFIGS
    for name, value, code in [
        ("node.id", "2", ErrorCode.invalid_request),
        ("log.retention.ms", "x", ErrorCode.invalid_request),
        ("log.segment.bytes", "10", ErrorCode.invalid_request),
        ("log.flush.interval.messages", "10000", ErrorCode.invalid_request),
        ("log.preallocate", "true", ErrorCode.invalid_request),
    ]:
        with pytest.raises(ConfigRequestError) as raised:
            validate_broker_config(name, value)
        assert raised.value.code == code, name


def test_the_values_rafka_implements_are_valid_topic_configs() -> None:
    for name, value in [
        ("flush.messages", "1"),
        ("flush.ms", "1000"),  # every write is fsynced: any bound is met
        ("preallocate", "false"),
        ("file.delete.delay.ms", "0"),
        ("file.delete.delay.ms", "60000"),  # Kafka's default, taken as rafka's
        ("flush.messages", "9223372036854775807"),
        ("remote.storage.enable", "False"),
        ("local.retention.bytes", "-2"),
        ("follower.replication.throttled.replicas", " "),
    ]:
        validate_topic_config(name, value)
    validate_broker_config("log.flush.interval.messages", "1")


def test_empty_list_configs_are_valid_and_described_normalized() -> None:
    validate_topic_config("cleanup.policy", "")
    validate_topic_config("cleanup.policy", " ")
    validate_broker_config("log.cleanup.policy", "")
    with pytest.raises(ConfigRequestError) as raised:
        validate_broker_config("log.cleanup.policy", ",")
    assert raised.value.code == ErrorCode.invalid_request
    described = by_name(describe_topic({"cleanup.policy": " compact, compact "}, layers()))
    assert described["cleanup.policy"].value == "compact"
    assert by_name(describe_topic({"cleanup.policy": ""}, layers()))["cleanup.policy"].value == ""
