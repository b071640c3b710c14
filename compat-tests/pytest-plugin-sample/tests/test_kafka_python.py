"""An application's tests with kafka-python against the plugin's brokers."""

from __future__ import annotations

import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from rafka.testing import RafkaBroker


def send_all(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for value in values:
        producer.send(topic, value).get(timeout=15)
    producer.close()


def read_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,  # ends the iteration if records stop coming
    )
    values: list[bytes] = []
    for message in consumer:
        values.append(message.value)
        if len(values) == count:
            break
    consumer.close()
    return values


def test_round_trip_on_the_session_broker(kafka_bootstrap: str) -> None:
    topic = f"events-{uuid.uuid4().hex[:8]}"
    sent = [f"event {i}".encode() for i in range(10)]
    send_all(kafka_bootstrap, topic, sent)
    assert sorted(read_all(kafka_bootstrap, topic, len(sent))) == sorted(sent)


def test_per_test_broker_has_its_own_port_and_directory(
    rafka_broker_per_test: RafkaBroker, kafka_bootstrap: str
) -> None:
    assert rafka_broker_per_test.bootstrap != kafka_bootstrap
    assert rafka_broker_per_test.log_dir.is_dir()
    admin = KafkaAdminClient(bootstrap_servers=rafka_broker_per_test.bootstrap)
    admin.create_topics([NewTopic("invoices", num_partitions=1, replication_factor=1)])
    assert "invoices" in admin.list_topics()
    admin.close()


def test_data_survives_a_broker_restart(rafka_broker_per_test: RafkaBroker) -> None:
    send_all(rafka_broker_per_test.bootstrap, "ledger", [b"1", b"2", b"3"])
    rafka_broker_per_test.restart()  # clean stop, same port and data
    # Two partitions (rafka_overrides in pyproject.toml): order holds only within one.
    assert sorted(read_all(rafka_broker_per_test.bootstrap, "ledger", 3)) == [b"1", b"2", b"3"]


def test_factory_starts_brokers_with_their_own_config(rafka_broker_factory) -> None:
    wide = rafka_broker_factory({"num.partitions": 4})
    send_all(wide.bootstrap, "wide", [b"w"])
    consumer = KafkaConsumer(bootstrap_servers=wide.bootstrap)
    assert consumer.partitions_for_topic("wide") == {0, 1, 2, 3}
    consumer.close()
