"""kafka-python: the scenarios listed in compat-tests/matrix/scenarios.py, one JSON line each."""

from __future__ import annotations

import time
from typing import Any

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import TopicAlreadyExistsError, TopicAuthorizationFailedError
from kafka.structs import OffsetAndMetadata
from suite_common import (
    RECORDS,
    TXN_BATCH_BYTES,
    TXN_PARTITIONS,
    TXN_TRANSACTIONS,
    WAIT,
    ThreadedMember,
    allow_on_topic,
    check,
    check_exactly_once,
    check_rebalance,
    no_consumer_protocol,
    no_share_consumer,
    numbered,
    quiet_logging,
    run_suite,
    sample_record,
    scenario_functions,
    secured,
    secured_values,
    suite_env,
    txn_pipeline_records,
    wait_for,
)

ENV = suite_env()
WAIT_MS = int(WAIT * 1000)
UNKNOWN_TOPIC_OR_PARTITION = 3
# kafka-python 3.0.12 loses a join whose SyncGroup answer lands after poll()'s timeout expired and
# before the next poll() (the member then never takes its assignment and stops heartbeating). A
# poll long enough for a whole join round trip keeps clear of that client race; poll() returns as
# soon as records arrive, so this costs nothing.
POLL_MS = 1000


def admin() -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=ENV.bootstrap, request_timeout_ms=WAIT_MS)


def create_topic(topic: str, partitions: int, configs: dict[str, str] | None = None) -> None:
    client = admin()
    try:
        client.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
    finally:
        client.close()


def produce(records: list[dict[str, Any]], **config: Any) -> None:
    producer = KafkaProducer(bootstrap_servers=ENV.bootstrap, acks="all", **config)
    try:
        futures = [producer.send(**record) for record in records]
        producer.flush(WAIT)
        for future in futures:
            future.get(WAIT)
    finally:
        producer.close(WAIT)


def consumer(**config: Any) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=ENV.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **config,
    )


def read_all(
    topic: str, count: int, isolation: str = "read_uncommitted", partitions: int = 1
) -> list[ConsumerRecord]:
    """The first `count` records of the first `partitions` partitions, by manual assignment."""
    reader = consumer(isolation_level=isolation)
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        reader.assign(assigned)
        reader.seek_to_beginning(*assigned)
        return poll_records(reader, count)
    finally:
        reader.close()


def poll_records(reader: KafkaConsumer, count: int) -> list[ConsumerRecord]:
    """Exactly the next `count` records (max_records keeps poll from taking more)."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + WAIT
    while len(records) < count:
        check(time.monotonic() < deadline, f"received {len(records)} of {count} records")
        for batch in reader.poll(timeout_ms=POLL_MS, max_records=count - len(records)).values():
            records.extend(batch)
    return records


def check_nothing_after(topic: str, last_offset: int) -> None:
    """The partition ends right after the last record read: nothing was duplicated."""
    reader = consumer()
    try:
        partition = TopicPartition(topic, 0)
        high = reader.end_offsets([partition])[partition]
    finally:
        reader.close()
    check(high == last_offset + 1, f"high watermark {high}, last expected record at {last_offset}")


def values(records: list[ConsumerRecord]) -> list[str]:
    return [r.value.decode() for r in records]


# -- scenarios ------------------------------------------------------------------------------------


def metadata() -> None:
    topic = f"{ENV.prefix}-metadata"
    create_topic(topic, 3)
    client = admin()
    try:
        cluster = client.describe_cluster()
        [description] = client.describe_topics([topic])
        listed = client.list_topics()
    finally:
        client.close()
    check(len(cluster["brokers"]) == 1, f"expected one broker, got {cluster['brokers']}")
    broker = cluster["brokers"][0]
    check(f"{broker['host']}:{broker['port']}" == ENV.bootstrap, f"broker advertised as {broker}")
    check(cluster["cluster_id"], "no cluster id")
    check(cluster["controller_id"] == broker["broker_id"], f"controller {cluster['controller_id']}")
    check(description["error_code"] == 0, f"topic error {description['error_code']}")
    partitions = description["partitions"]
    check(len(partitions) == 3, f"partitions {partitions}")
    for p in partitions:
        check(p["error_code"] == 0, f"partition {p}")
        check(p["leader_id"] == broker["broker_id"], f"partition {p}")
        check(p["replica_nodes"] == [broker["broker_id"]], f"partition {p}")
    check(topic in listed, "topic not listed")
    producer = KafkaProducer(bootstrap_servers=ENV.bootstrap)
    try:
        check(producer.partitions_for(topic) == {0, 1, 2}, "producer sees other partitions")
    finally:
        producer.close(WAIT)


def produce_consume(codec: str) -> str:
    topic = f"{ENV.prefix}-pc-{codec}"
    create_topic(topic, 1)
    sent = [sample_record(i, codec) for i in range(RECORDS)]
    produce(
        [{"topic": topic, "key": k, "value": v, "headers": h} for k, v, h in sent],
        compression_type=None if codec == "none" else codec,
        linger_ms=20,
    )
    got = read_all(topic, len(sent))
    for i, ((key, value, headers), record) in enumerate(zip(sent, got, strict=True)):
        check(record.key == key, f"record {i} key {record.key!r} != {key!r}")
        check(record.value == value, f"record {i} value differs")
        check(list(record.headers) == headers, f"record {i} headers {record.headers}")
    check_nothing_after(topic, got[-1].offset)
    return topic


def idempotent_produce() -> str:
    topic = f"{ENV.prefix}-idempotent"
    count = 500
    create_topic(topic, 1)
    produce(
        [
            {"topic": topic, "key": f"k{i % 5}".encode(), "value": f"idem-{i}".encode()}
            for i in range(count)
        ],
        enable_idempotence=True,
        max_in_flight_requests_per_connection=5,
        batch_size=2048,
        linger_ms=2,
    )
    got = read_all(topic, count)
    check(values(got) == numbered("idem-", 0, count), "not idem-0..idem-499 exactly once in order")
    check_nothing_after(topic, got[-1].offset)
    return topic


class Member(ThreadedMember):
    """One consumer-group member polling in its own thread."""

    def __init__(self, topic: str, group: str, name: str) -> None:
        super().__init__(name)
        self.topic = topic
        # Subscribed at construction, as kafka-python's docs show, so that the first metadata
        # request already names the topic.
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=ENV.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            group_id=group,
            client_id=f"{ENV.prefix}-{name}",
            session_timeout_ms=10000,
            heartbeat_interval_ms=300,
        )

    def poll(self) -> list[str]:
        batches = self.consumer.poll(timeout_ms=POLL_MS).values()
        return [r.value.decode() for batch in batches for r in batch]


def group_rebalance() -> None:
    topic = group = f"{ENV.prefix}-group"
    partitions, count = 4, 40
    create_topic(topic, partitions)
    produce(
        [
            {"topic": topic, "partition": i % partitions, "value": f"g-{i}".encode()}
            for i in range(count)
        ]
    )
    everything = frozenset(range(partitions))
    first, second = Member(topic, group, "first"), Member(topic, group, "second")
    check_rebalance(first, second, everything, count, error_text=repr)


def commit_resume() -> None:
    topic = group = f"{ENV.prefix}-commit"
    partition = TopicPartition(topic, 0)
    create_topic(topic, 1)
    produce([{"topic": topic, "value": f"c-{i}".encode()} for i in range(20)])
    first = consumer(group_id=group)
    try:
        first.subscribe([topic])
        tenth = poll_records(first, 10)[9]
        check(tenth.value == b"c-9", f"10th record is {tenth.value!r}")
        committed = tenth.offset + 1
        first.commit({partition: OffsetAndMetadata(committed, "after-c-9", -1)})
    finally:
        first.close()
    second = consumer(group_id=group)
    try:
        stored = second.committed(partition, metadata=True)
        check(stored is not None and stored.offset == committed, f"committed {stored}")
        check(stored.metadata == "after-c-9", f"commit metadata {stored.metadata!r}")
        second.subscribe([topic])
        got = poll_records(second, 10)
        check(got[0].offset == committed, f"resumed at {got[0].offset}, committed {committed}")
        check(values(got) == numbered("c-", 10, 20), f"resumed with {values(got)}")
        second.commit()
        final = second.committed(partition)
        check(final == got[-1].offset + 1, f"final committed offset {final}")
    finally:
        second.close()


def admin_topics() -> None:
    topic = f"{ENV.prefix}-admin"
    client = admin()
    try:
        client.create_topics([NewTopic(topic, 3, 1)])
        broker_id = client.describe_cluster()["brokers"][0]["broker_id"]
        [description] = client.describe_topics([topic])
        check(len(description["partitions"]) == 3, f"described {description}")
        for p in description["partitions"]:
            check(p["leader_id"] == broker_id, f"partition {p}")
        check(topic in client.list_topics(), "created topic not listed")
        try:
            client.create_topics([NewTopic(topic, 3, 1)])
            raise AssertionError("creating an existing topic succeeded")
        except TopicAlreadyExistsError:
            pass
        client.delete_topics([topic], timeout_ms=WAIT_MS)
        wait_for(lambda: topic not in client.list_topics(), "the deleted topic to leave the list")
        [gone] = client.describe_topics([topic])
        check(gone["error_code"] == UNKNOWN_TOPIC_OR_PARTITION, f"deleted topic described {gone}")
    finally:
        client.close()


def admin_configs() -> None:
    topic = f"{ENV.prefix}-configs"
    client = admin()
    try:
        client.create_topics([NewTopic(topic, 1, 1, topic_configs={"retention.ms": "3600000"})])

        def describe(kind: ConfigResourceType, name: str) -> dict[str, dict[str, Any]]:
            described = client.describe_configs([ConfigResource(kind, name)], config_filter="all")
            return described[kind.name.lower()][name]

        configs = describe(ConfigResourceType.TOPIC, topic)
        retention = configs.get("retention.ms", {})
        check(retention.get("value") == "3600000", f"retention.ms after create: {retention}")
        check(retention["config_source"] == "DYNAMIC_TOPIC_CONFIG", f"retention.ms {retention}")
        check(configs["cleanup.policy"]["value"] == "delete", "cleanup.policy")
        client.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    topic,
                    configs={"retention.ms": (AlterConfigOp.SET, "7200000")},
                )
            ],
            incremental=True,
        )
        altered = describe(ConfigResourceType.TOPIC, topic)["retention.ms"]["value"]
        check(altered == "7200000", f"retention.ms after alter: {altered}")
        broker_id = client.describe_cluster()["brokers"][0]["broker_id"]
        broker_configs = describe(ConfigResourceType.BROKER, str(broker_id))
        check("num.partitions" in broker_configs, "broker config lacks num.partitions")
        client.delete_topics([topic], timeout_ms=WAIT_MS)
    finally:
        client.close()


def transactions() -> str:
    topic = f"{ENV.prefix}-txn"
    create_topic(topic, 1)
    producer = KafkaProducer(bootstrap_servers=ENV.bootstrap, transactional_id=f"{ENV.prefix}-txn")
    try:
        producer.init_transactions()
        for batch, commit in [
            (numbered("committed-", 0, 5), True),
            (numbered("aborted-", 0, 3), False),
            (numbered("committed-", 5, 6), True),
        ]:
            producer.begin_transaction()
            for value in batch:
                producer.send(topic, value=value.encode())
            producer.flush(WAIT)
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close(WAIT)
    committed = values(read_all(topic, 6, "read_committed"))
    check(committed == numbered("committed-", 0, 6), f"read_committed saw {committed}")
    everything = values(read_all(topic, 9))
    expected = numbered("committed-", 0, 5) + numbered("aborted-", 0, 3) + ["committed-5"]
    check(everything == expected, f"read_uncommitted saw {everything}")
    return topic


def txn_pipeline() -> str:
    topic = f"{ENV.prefix}-txn-pipeline"
    create_topic(topic, TXN_PARTITIONS)
    producer = KafkaProducer(
        bootstrap_servers=ENV.bootstrap,
        transactional_id=topic,
        batch_size=TXN_BATCH_BYTES,
        linger_ms=0,
    )
    sent: list[str] = []
    try:
        producer.init_transactions()
        for txn in range(TXN_TRANSACTIONS):
            producer.begin_transaction()
            acks = []
            for partition, value in txn_pipeline_records(txn):
                acks.append(producer.send(topic, value=value.encode(), partition=partition))
                sent.append(value)
            producer.commit_transaction()  # flushes first
            for ack in acks:
                ack.get(WAIT)
    finally:
        producer.close(WAIT)
    check_exactly_once(values(read_all(topic, len(sent), "read_committed", TXN_PARTITIONS)), sent)
    return topic


def secured_roundtrip(scenario: str, bootstrap: str, **security: Any) -> None:
    topic = f"{ENV.prefix}-{scenario}"
    create_topic(topic, 1)
    secured_roundtrip_existing(topic, bootstrap, **security)


def secured_roundtrip_existing(topic: str, bootstrap: str, **security: Any) -> None:
    values = secured_values(ENV.prefix, topic.removeprefix(f"{ENV.prefix}-"))
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **security)
    try:
        futures = [producer.send(topic, value, partition=0) for value in values]
        producer.flush(WAIT)
        for future in futures:
            future.get(WAIT)
    finally:
        producer.close(WAIT)
    reader = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security)
    try:
        reader.assign([TopicPartition(topic, 0)])
        reader.seek_to_beginning()
        got: list[bytes] = []
        deadline = time.monotonic() + WAIT
        while len(got) < len(values) and time.monotonic() < deadline:
            for batch in reader.poll(timeout_ms=POLL_MS).values():
                got += [record.value for record in batch]
    finally:
        reader.close()
    check(got == values, f"read back {len(got)} records, not the {len(values)} produced")


def refused(bootstrap: str, **security: Any) -> bool:
    """The client cannot reach the broker's metadata: it raises, or never sees a broker."""
    try:
        probe = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000,
                              api_version_auto_timeout_ms=5000, **security)  # fmt: skip
    except Exception:  # noqa: BLE001 - NoBrokersAvailable, an authentication error...
        return True
    try:
        probe.topics()
    except Exception:  # noqa: BLE001
        return True
    finally:
        probe.close()
    return False


def sasl(mechanism: str, password: str | None = None) -> dict[str, Any]:
    where = secured()
    user, right = where.credentials(mechanism)
    return {"security_protocol": "SASL_SSL", "sasl_mechanism": mechanism,
            "sasl_plain_username": user, "sasl_plain_password": password or right,
            "ssl_cafile": where.ca}  # fmt: skip


def security_sasl_plain() -> None:
    secured_roundtrip("security-sasl-plain", secured().sasl_ssl, **sasl("PLAIN"))
    check(refused(secured().sasl_ssl, **sasl("PLAIN", "wrong")), "a wrong password was accepted")


def security_sasl_scram() -> None:
    secured_roundtrip("security-sasl-scram", secured().sasl_ssl, **sasl("SCRAM-SHA-512"))
    check(refused(secured().sasl_ssl, **sasl("SCRAM-SHA-512", "wrong")),
          "a wrong password was accepted")  # fmt: skip


def security_mtls() -> None:
    where = secured()
    tls = {"security_protocol": "SSL", "ssl_cafile": where.ca}
    secured_roundtrip("security-mtls", where.mtls, **tls, ssl_certfile=where.client_cert,
                      ssl_keyfile=where.client_key)  # fmt: skip
    check(refused(where.mtls, **tls), "a client without a certificate was accepted")


def security_acl() -> None:
    where = secured()
    topic = f"{ENV.prefix}-security-acl"
    create_topic(topic, 1)
    user = f"User:{where.plain[0]}"
    # An ACL for someone else names the topic: from now on it is closed to everyone else.
    allow_on_topic(ENV.bootstrap, topic, "User:compat-someone-else", "WRITE")
    producer = KafkaProducer(bootstrap_servers=where.sasl_ssl, acks="all", max_block_ms=10000,
                             **sasl("PLAIN"))  # fmt: skip
    try:
        producer.send(topic, b"refused", partition=0).get(WAIT)
    except TopicAuthorizationFailedError:
        pass
    else:
        raise AssertionError("produce without WRITE was accepted")
    finally:
        producer.close(WAIT)
    allow_on_topic(ENV.bootstrap, topic, user, "WRITE", "READ")
    secured_roundtrip_existing(topic, where.sasl_ssl, **sasl("PLAIN"))


if __name__ == "__main__":
    quiet_logging()  # kafka-python logs every rebalance as an error
    scenarios = scenario_functions(
        produce_consume,
        metadata=metadata,
        idempotent_produce=idempotent_produce,
        group_rebalance=group_rebalance,
        commit_resume=commit_resume,
        consumer_protocol=no_consumer_protocol,
        share_group=no_share_consumer,
        admin_topics=admin_topics,
        admin_configs=admin_configs,
        transactions=transactions,
        txn_pipeline=txn_pipeline,
        security_sasl_plain=security_sasl_plain,
        security_sasl_scram=security_sasl_scram,
        security_mtls=security_mtls,
        security_acl=security_acl,
    )
    run_suite("kafka-python", kafka.__version__, scenarios, ENV)
