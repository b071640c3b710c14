"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs through real admin clients, and
topic configs that take effect at once (no restart) and survive a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from admin_support import (
    INVALID_CONFIG,
    INVALID_RECORD,
    INVALID_REQUEST,
    MESSAGE_TOO_LARGE,
    NOT_ENOUGH_REPLICAS,
    QUIET,
    UNKNOWN_TOPIC_OR_PARTITION,
    confluent_admin,
    create_topic,
    error_code,
    kafka_python_admin,
    produce,
    read_all,
    wait_for,
    watermarks,
)
from broker_process import BrokerProcess
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Producer, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)
from kafka.admin import ConfigResource as KafkaConfigResource
from kafka.admin import ConfigResourceType

from rafka.cli.admin_client import OP_SET, RESOURCE_BROKER, AdminClient
from rafka.protocol.records import Compression, iter_batch_headers

pytestmark = pytest.mark.timeout(60)

SET, DELETE = AlterConfigOpType.SET, AlterConfigOpType.DELETE
APPEND, SUBTRACT = AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT


def describe(bootstrap: str, kind: ResourceType, name: str) -> dict:
    admin = confluent_admin(bootstrap)  # kept alive until the answer: destroying it fails it
    (future,) = admin.describe_configs([ConfigResource(kind, name)]).values()
    return future.result(timeout=15)


def alter(bootstrap: str, kind: ResourceType, name: str, *ops, validate_only=False) -> int | None:
    entries = [ConfigEntry(n, v, incremental_operation=op) for n, op, v in ops]
    admin = confluent_admin(bootstrap)
    (future,) = admin.incremental_alter_configs(
        [ConfigResource(kind, name, incremental_configs=entries)], validate_only=validate_only
    ).values()
    return error_code(future)


def source(entry: ConfigEntry) -> ConfigSource:
    return ConfigSource(entry.source)


def topic_value(bootstrap: str, topic: str, name: str) -> str | None:
    return describe(bootstrap, ResourceType.TOPIC, topic)[name].value


# -- DescribeConfigs ------------------------------------------------------------------------------


def test_describe_topic_configs_with_sources_and_synonyms(broker_factory) -> None:
    broker = broker_factory(**{"log.retention.hours": "48"}).start()
    create_topic(broker.bootstrap, "described", configs={"segment.bytes": "1048576"})
    configs = describe(broker.bootstrap, ResourceType.TOPIC, "described")
    segment = configs["segment.bytes"]
    assert (segment.value, source(segment)) == ("1048576", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert not segment.is_read_only and not segment.is_default and not segment.is_sensitive
    assert [(s.name, source(s)) for s in segment.synonyms.values()] == [
        ("segment.bytes", ConfigSource.DYNAMIC_TOPIC_CONFIG),
        ("log.segment.bytes", ConfigSource.DEFAULT_CONFIG),
    ]
    retention = configs["retention.ms"]  # from the broker's static log.retention.hours
    assert (retention.value, source(retention)) == (
        str(48 * 3_600_000),
        ConfigSource.STATIC_BROKER_CONFIG,
    )
    assert retention.synonyms["log.retention.hours"].value == "48"
    policy = configs["cleanup.policy"]
    assert (policy.value, source(policy)) == ("delete", ConfigSource.DEFAULT_CONFIG)
    assert {"max.message.bytes", "min.insync.replicas", "compression.type"} <= set(configs)

    admin = confluent_admin(broker.bootstrap)
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "missing")]).values()
    assert error_code(future) == UNKNOWN_TOPIC_OR_PARTITION


def test_describe_broker_configs(broker_factory) -> None:
    broker = broker_factory(**{"ssl.keystore.password": "secret", "num.partitions": "3"}).start()
    configs = describe(broker.bootstrap, ResourceType.BROKER, "1")
    password = configs["ssl.keystore.password"]
    assert password.is_sensitive and password.value is None
    partitions = configs["num.partitions"]
    assert (partitions.value, source(partitions)) == ("3", ConfigSource.STATIC_BROKER_CONFIG)
    assert partitions.is_read_only
    retention = configs["log.retention.ms"]
    assert not retention.is_read_only  # dynamically alterable
    assert source(configs["log.segment.bytes"]) == ConfigSource.DEFAULT_CONFIG

    admin = kafka_python_admin(broker.bootstrap)
    try:
        described = admin.describe_configs(
            [KafkaConfigResource(ConfigResourceType.BROKER, "1")], config_filter="static"
        )
    finally:
        admin.close()
    static = described["broker"]["1"]
    assert {"num.partitions", "ssl.keystore.password", "log.dirs", "listeners"} <= set(static)
    assert "log.segment.bytes" not in static
    assert static["num.partitions"]["value"] == "3"


# -- IncrementalAlterConfigs and AlterConfigs -----------------------------------------------------


def test_incremental_alter_topic_configs(broker) -> None:
    create_topic(broker.bootstrap, "tuned")
    b = broker.bootstrap
    assert alter(b, ResourceType.TOPIC, "tuned", ("retention.ms", SET, "3600000")) is None
    assert topic_value(b, "tuned", "retention.ms") == "3600000"
    assert alter(b, ResourceType.TOPIC, "tuned", ("cleanup.policy", APPEND, "compact")) is None
    assert topic_value(b, "tuned", "cleanup.policy") == "delete,compact"
    assert alter(b, ResourceType.TOPIC, "tuned", ("cleanup.policy", SUBTRACT, "delete")) is None
    assert topic_value(b, "tuned", "cleanup.policy") == "compact"
    assert alter(b, ResourceType.TOPIC, "tuned", ("retention.ms", DELETE, None)) is None
    retention = describe(b, ResourceType.TOPIC, "tuned")["retention.ms"]
    assert (retention.value, source(retention)) == ("604800000", ConfigSource.DEFAULT_CONFIG)

    assert (
        alter(b, ResourceType.TOPIC, "tuned", ("segment.ms", SET, "1000"), validate_only=True)
        is None
    )
    assert topic_value(b, "tuned", "segment.ms") == "604800000"

    assert alter(b, ResourceType.TOPIC, "tuned", ("retention.ms", APPEND, "5")) == INVALID_CONFIG
    assert alter(b, ResourceType.TOPIC, "tuned", ("retention.ms", SET, "soon")) == INVALID_CONFIG
    assert alter(b, ResourceType.TOPIC, "tuned", ("no.such.config", SET, "1")) == INVALID_CONFIG
    assert alter(b, ResourceType.TOPIC, "nope", ("retention.ms", SET, "1")) == (
        UNKNOWN_TOPIC_OR_PARTITION
    )
    assert topic_value(b, "tuned", "cleanup.policy") == "compact"


def test_empty_list_configs_as_kafka_4(broker_factory) -> None:
    """Kafka 4.x accepts an empty cleanup.policy (SUBTRACT of the last value, SET "", or at
    creation) and then neither deletes nor compacts (KIP-1030); empty elements are refused."""
    broker = broker_factory(**{"log.retention.check.interval.ms": "100"}).start()
    b = broker.bootstrap
    create_topic(b, "forever", configs={"segment.bytes": "16384", "retention.ms": "1"})
    assert alter(b, ResourceType.TOPIC, "forever", ("cleanup.policy", SUBTRACT, "delete")) is None
    policy = describe(b, ResourceType.TOPIC, "forever")["cleanup.policy"]
    assert (policy.value, source(policy)) == ("", ConfigSource.DYNAMIC_TOPIC_CONFIG)

    # Keyless records are fine (not compacted) and retention.ms=1 deletes nothing.
    offsets = produce(b, "forever", [(None, b"r" * 1000)] * 40, **{"batch.size": 4096})
    time.sleep(1.0)  # ten retention checks
    assert watermarks(b, "forever") == (0, offsets[-1] + 1)
    assert len(list((Path(broker.data_dir) / "forever-0").glob("*.log"))) > 1
    # DeleteRecords is refused only on compact-without-delete topics.
    admin = confluent_admin(b)
    (future,) = admin.delete_records([TopicPartition("forever", 0, 5)]).values()
    assert future.result(timeout=15).low_watermark == 5
    # Back to delete: the same checks now apply retention.ms.
    assert alter(b, ResourceType.TOPIC, "forever", ("cleanup.policy", APPEND, "delete")) is None
    assert topic_value(b, "forever", "cleanup.policy") == "delete"
    wait_for(lambda: watermarks(b, "forever")[0] > 5, 10, "retention after APPEND delete")

    assert alter(b, ResourceType.TOPIC, "forever", ("cleanup.policy", SET, "")) is None
    assert topic_value(b, "forever", "cleanup.policy") == ""
    assert alter(b, ResourceType.TOPIC, "forever", ("cleanup.policy", APPEND, "compact")) is None
    for op, value in [(APPEND, ""), (APPEND, ",delete"), (SET, "compact,"), (SET, "Compact")]:
        assert alter(b, ResourceType.TOPIC, "forever", ("cleanup.policy", op, value)) == (
            INVALID_CONFIG
        ), (op, value)
    assert alter(b, ResourceType.TOPIC, "forever", ("cleanup.policy", SUBTRACT, ",")) is None
    assert topic_value(b, "forever", "cleanup.policy") == "compact"
    assert alter(b, ResourceType.TOPIC, "forever",
                 ("cleanup.policy", SET, " compact , compact,delete")) is None  # fmt: skip
    assert topic_value(b, "forever", "cleanup.policy") == "compact,delete"

    create_topic(b, "born-empty", configs={"cleanup.policy": ""})
    assert topic_value(b, "born-empty", "cleanup.policy") == ""
    # Broker level: the same list rules, with INVALID_REQUEST as Kafka answers broker configs.
    assert alter(b, ResourceType.BROKER, "1", ("log.cleanup.policy", SUBTRACT, "delete")) is None
    assert describe(b, ResourceType.BROKER, "1")["log.cleanup.policy"].value == ""
    assert alter(b, ResourceType.BROKER, "1", ("log.cleanup.policy", SET, ",")) == INVALID_REQUEST
    broker.stop()
    broker.start()  # stored empty lists load again
    assert topic_value(broker.bootstrap, "born-empty", "cleanup.policy") == ""
    produce(broker.bootstrap, "born-empty", [(None, b"no key needed")])


def test_legacy_alter_configs_replaces_the_whole_set(broker) -> None:
    create_topic(broker.bootstrap, "replaced", configs={"retention.ms": "1000000"})
    admin = confluent_admin(broker.bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, "replaced", set_config={"segment.ms": "500000"})
    (future,) = admin.alter_configs([resource]).values()
    assert error_code(future) is None
    configs = describe(broker.bootstrap, ResourceType.TOPIC, "replaced")
    assert source(configs["segment.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert source(configs["retention.ms"]) == ConfigSource.DEFAULT_CONFIG  # no longer set

    kp = kafka_python_admin(broker.bootstrap)
    try:
        result = kp.alter_configs(
            [KafkaConfigResource(ConfigResourceType.TOPIC, "replaced", {"retention.ms": "7"})],
            incremental=False,
        )
        assert result == {"topic": {"replaced": "OK"}}
        result = kp.alter_configs(
            [KafkaConfigResource(ConfigResourceType.TOPIC, "replaced", {"retention.ms": "x"})],
            incremental=False,
        )
        assert "InvalidConfigurationError" in result["topic"]["replaced"]
    finally:
        kp.close()
    configs = describe(broker.bootstrap, ResourceType.TOPIC, "replaced")
    # kafka-python carries over the other overrides itself on the legacy API.
    assert configs["retention.ms"].value == "7"
    assert configs["segment.ms"].value == "500000"


def test_dynamic_broker_configs(broker) -> None:
    create_topic(broker.bootstrap, "inherits")
    create_topic(broker.bootstrap, "overrides", configs={"retention.ms": "1234"})
    b = broker.bootstrap
    # librdkafka and kafka-python cannot name the cluster-default resource (""); rafka's own
    # admin client sends the same standard IncrementalAlterConfigs request.
    with AdminClient(b) as client:
        client.alter_configs(RESOURCE_BROKER, "", [("log.retention.ms", OP_SET, "7200000")])
    inherited = describe(b, ResourceType.TOPIC, "inherits")["retention.ms"]
    assert (inherited.value, source(inherited)) == (
        "7200000",
        ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG,
    )
    assert topic_value(b, "overrides", "retention.ms") == "1234"
    assert alter(b, ResourceType.BROKER, "1", ("log.retention.ms", SET, "3600000")) is None
    own = describe(b, ResourceType.BROKER, "1")["log.retention.ms"]
    assert (own.value, source(own)) == ("3600000", ConfigSource.DYNAMIC_BROKER_CONFIG)
    with AdminClient(b) as client:
        defaults = client.describe_configs(RESOURCE_BROKER, "")
    assert [(c.name, c.value, c.source) for c in defaults] == [
        ("log.retention.ms", "7200000", "DYNAMIC_DEFAULT_BROKER_CONFIG")
    ]

    assert alter(b, ResourceType.BROKER, "1", ("node.id", SET, "4")) == INVALID_REQUEST
    assert alter(b, ResourceType.BROKER, "1", ("log.retention.ms", SET, "x")) == INVALID_REQUEST

    broker.stop()
    broker.start()
    inherited = describe(broker.bootstrap, ResourceType.TOPIC, "inherits")["retention.ms"]
    assert (inherited.value, source(inherited)) == ("3600000", ConfigSource.DYNAMIC_BROKER_CONFIG)


def test_values_rafka_does_not_implement_are_refused(broker_factory, tmp_path: Path) -> None:
    """A flush interval other than 1 (rafka fsyncs every write), preallocation or a deletion
    delay would be silently ignored: they are refused, on topics and as broker configs, and a
    broker given one does not start; the values rafka implements are taken."""
    broker = broker_factory().start()
    b = broker.bootstrap
    admin = confluent_admin(b)
    topic = NewTopic("lax", 1, 1, config={"flush.messages": "10000"})
    refused = admin.create_topics([topic], operation_timeout=10)["lax"]
    assert error_code(refused) == INVALID_CONFIG
    create_topic(b, "strict", configs={"flush.messages": "1", "flush.ms": "1000"})
    assert topic_value(b, "strict", "flush.messages") == "1"
    assert topic_value(b, "strict", "file.delete.delay.ms") == "0"
    assert alter(b, ResourceType.TOPIC, "strict", ("preallocate", SET, "true")) == INVALID_CONFIG
    assert alter(b, ResourceType.TOPIC, "strict", ("preallocate", SET, "false")) is None
    assert (
        alter(b, ResourceType.BROKER, "1", ("log.flush.interval.messages", SET, "10000"))
        == INVALID_REQUEST
    )
    assert describe(b, ResourceType.BROKER, "1")["log.flush.interval.messages"].value == "1"

    lax = BrokerProcess(tmp_path / "lax", **{"log.preallocate": "true"})
    with pytest.raises(RuntimeError, match="did not become ready"):
        lax.start(timeout=20)
    [line] = [line for line in lax.log_lines if "log.preallocate" in line]
    assert "true is not implemented by rafka" in line, lax.log_lines


# -- configs take effect without a restart --------------------------------------------------------


def test_max_message_bytes_changes_at_once_and_survives_restart(broker) -> None:
    create_topic(broker.bootstrap, "bounded")
    produce(broker.bootstrap, "bounded", [(None, b"x" * 5000)])
    assert alter(broker.bootstrap, ResourceType.TOPIC, "bounded",
                 ("max.message.bytes", SET, "1000")) is None  # fmt: skip

    def refused() -> int | None:
        producer = Producer({"bootstrap.servers": broker.bootstrap, **QUIET})
        errors = []
        producer.produce("bounded", b"x" * 5000, partition=0,
                         on_delivery=lambda err, _m: errors.append(err))  # fmt: skip
        producer.flush(15)
        return errors[0].code() if errors and errors[0] else None

    assert refused() == MESSAGE_TOO_LARGE
    broker.kill()
    broker.start()
    assert refused() == MESSAGE_TOO_LARGE


def test_retention_changes_apply_to_a_running_topic(broker_factory) -> None:
    broker = broker_factory(**{"log.retention.check.interval.ms": "100"}).start()
    create_topic(broker.bootstrap, "shrinking", configs={"segment.bytes": "16384"})
    # Small batches, so that segments roll on size and retention can drop whole ones.
    offsets = produce(
        broker.bootstrap, "shrinking", [(None, b"r" * 1000)] * 60, **{"batch.size": 4096}
    )
    assert watermarks(broker.bootstrap, "shrinking")[0] == 0
    assert alter(broker.bootstrap, ResourceType.TOPIC, "shrinking",
                 ("retention.bytes", SET, "20000")) is None  # fmt: skip
    wait_for(
        lambda: watermarks(broker.bootstrap, "shrinking")[0] > offsets[0], 10, "size retention"
    )
    start = watermarks(broker.bootstrap, "shrinking")[0]
    messages = read_all(broker.bootstrap, "shrinking", offsets[-1] + 1)
    assert messages[0].offset() == start > offsets[0]

    assert alter(broker.bootstrap, ResourceType.TOPIC, "shrinking",
                 ("retention.ms", SET, "1")) is None  # fmt: skip
    end = offsets[-1] + 1
    wait_for(lambda: watermarks(broker.bootstrap, "shrinking")[0] == end, 10, "time retention")


def test_log_append_time_and_recompression(broker) -> None:
    create_topic(broker.bootstrap, "stamped")
    assert alter(
        broker.bootstrap, ResourceType.TOPIC, "stamped",
        ("message.timestamp.type", SET, "LogAppendTime"), ("compression.type", SET, "zstd"),
    ) is None  # fmt: skip
    before = int(time.time() * 1000)
    offsets = produce(
        broker.bootstrap, "stamped", [(b"k%d" % i, b"v" * 200) for i in range(20)],
        **{"compression.type": "lz4"},
    )  # fmt: skip
    messages = read_all(broker.bootstrap, "stamped", offsets[-1] + 1)
    assert [m.value() for m in messages] == [b"v" * 200] * 20
    for message in messages:
        kind, stamp = message.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME and stamp >= before
    segment = Path(broker.data_dir) / "stamped-0" / f"{0:020d}.log"
    codecs = {
        h.compression for _, h in iter_batch_headers(segment.read_bytes()) if not h.is_control
    }
    assert codecs == {Compression.ZSTD}


def test_min_insync_replicas_refuses_acks_all(broker) -> None:
    create_topic(broker.bootstrap, "guarded", configs={"min.insync.replicas": "2"})

    def send(acks: str) -> int | None:
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": acks,
                             "message.timeout.ms": 3000, "retries": 0, **QUIET})  # fmt: skip
        errors = []
        producer.produce("guarded", b"x", partition=0,
                         on_delivery=lambda err, _m: errors.append(err))  # fmt: skip
        producer.flush(15)
        return errors[0].code() if errors and errors[0] else None

    assert send("all") == NOT_ENOUGH_REPLICAS
    assert send("1") is None
    assert alter(broker.bootstrap, ResourceType.TOPIC, "guarded",
                 ("min.insync.replicas", DELETE, None)) is None  # fmt: skip
    assert send("all") is None


def test_compacted_topic_refuses_records_without_key(broker) -> None:
    create_topic(broker.bootstrap, "keyed")
    produce(broker.bootstrap, "keyed", [(None, b"fine while delete")])
    assert alter(broker.bootstrap, ResourceType.TOPIC, "keyed",
                 ("cleanup.policy", SET, "compact")) is None  # fmt: skip
    producer = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0, **QUIET})
    errors = []
    producer.produce("keyed", b"no key", partition=0, on_delivery=lambda e, _m: errors.append(e))
    producer.produce("keyed", b"v", key=b"k", partition=0, on_delivery=lambda e, _m: None)
    producer.flush(15)
    assert errors and errors[0] is not None and errors[0].code() == INVALID_RECORD


def test_kafka_python_incremental_alter_and_describe(broker) -> None:
    create_topic(broker.bootstrap, "kp-tuned", configs={"retention.ms": "60000"})
    admin = kafka_python_admin(broker.bootstrap)
    resource = KafkaConfigResource

    def topic_configs() -> dict:
        described = admin.describe_configs([resource(ConfigResourceType.TOPIC, "kp-tuned")])
        return described["topic"]["kp-tuned"]

    try:
        assert {n: c["value"] for n, c in topic_configs().items()} == {"retention.ms": "60000"}
        result = admin.alter_configs(
            [
                resource(
                    ConfigResourceType.TOPIC,
                    "kp-tuned",
                    {"cleanup.policy": ("APPEND", "compact"), "segment.ms": "120000"},
                )
            ],
            incremental=True,
        )
        assert result == {"topic": {"kp-tuned": "OK"}}
        assert {n: c["value"] for n, c in topic_configs().items()} == {
            "retention.ms": "60000",
            "cleanup.policy": "delete,compact",
            "segment.ms": "120000",
        }
        assert topic_configs()["segment.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        refused = admin.alter_configs(
            [resource(ConfigResourceType.TOPIC, "kp-tuned", {"retention.ms": ("APPEND", "5")})],
            incremental=True,
        )
        assert "InvalidConfigurationError" in refused["topic"]["kp-tuned"]
        admin.reset_configs(
            [resource(ConfigResourceType.TOPIC, "kp-tuned", ["retention.ms", "segment.ms"])]
        )
        assert {n: c["value"] for n, c in topic_configs().items()} == {
            "cleanup.policy": "delete,compact"
        }
    finally:
        admin.close()
