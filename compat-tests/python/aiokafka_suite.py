"""aiokafka: the scenarios listed in compat-tests/matrix/scenarios.py, one JSON line each. Each
scenario is a coroutine run on its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAuthorizationFailedError
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import OffsetAndMetadata
from suite_common import (
    RECORDS,
    TXN_BATCH_BYTES,
    TXN_PARTITIONS,
    TXN_TRANSACTIONS,
    WAIT,
    allow_on_topic,
    check,
    check_exactly_once,
    no_consumer_protocol,
    no_share_consumer,
    numbered,
    quiet_logging,
    run_suite,
    sample_record,
    scenario_functions,
    secured,
    secured_values,
    split_between,
    suite_env,
    txn_pipeline_records,
    wait_for_async,
)

ENV = suite_env()
WAIT_MS = int(WAIT * 1000)
TOPIC_ALREADY_EXISTS = 36
DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source


@contextlib.asynccontextmanager
async def admin() -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=ENV.bootstrap, request_timeout_ms=WAIT_MS)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def create_topic(
    client: AIOKafkaAdminClient, topic: str, partitions: int, configs: dict[str, str] | None = None
) -> int:
    """Creates the topic; returns the error code the broker gave for it."""
    new = NewTopic(topic, partitions, 1, topic_configs=configs or {})
    response = (await client.create_topics([new])).to_object()
    [result] = response["topic_errors"]
    return result["error_code"]


async def new_topic(topic: str, partitions: int) -> None:
    async with admin() as client:
        code = await create_topic(client, topic, partitions)
    check(code == 0, f"creating {topic}: error {code}")


async def produce(records: list[dict[str, Any]], **config: Any) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=ENV.bootstrap, acks="all", **config)
    await producer.start()
    try:
        acks = [await producer.send(**record) for record in records]
        await asyncio.wait_for(asyncio.gather(*acks), WAIT)
    finally:
        await producer.stop()


def consumer(*topics: str, **config: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=ENV.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **config,
    )


async def read_all(
    topic: str, count: int, isolation: str = "read_uncommitted", partitions: int = 1
) -> list[ConsumerRecord]:
    """The first `count` records of the first `partitions` partitions, by manual assignment."""
    reader = consumer(isolation_level=isolation)
    await reader.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        reader.assign(assigned)
        await reader.seek_to_beginning(*assigned)
        return await poll_records(reader, count)
    finally:
        await reader.stop()


async def poll_records(reader: AIOKafkaConsumer, count: int) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + WAIT
    while len(records) < count:
        check(time.monotonic() < deadline, f"received {len(records)} of {count} records")
        batches = await reader.getmany(timeout_ms=200, max_records=count - len(records))
        for batch in batches.values():
            records.extend(batch)
    return records


async def check_nothing_after(topic: str, last_offset: int) -> None:
    """The partition ends right after the last record read: nothing was duplicated."""
    reader = consumer()
    await reader.start()
    try:
        partition = TopicPartition(topic, 0)
        high = (await reader.end_offsets([partition]))[partition]
    finally:
        await reader.stop()
    check(high == last_offset + 1, f"high watermark {high}, last expected record at {last_offset}")


def values(records: list[ConsumerRecord]) -> list[str]:
    return [r.value.decode() for r in records]


# -- scenarios ------------------------------------------------------------------------------------


async def metadata() -> None:
    topic = f"{ENV.prefix}-metadata"
    async with admin() as client:
        check(await create_topic(client, topic, 3) == 0, "create failed")
        cluster = await client.describe_cluster()
        [description] = await client.describe_topics([topic])
        listed = await client.list_topics()
    check(len(cluster["brokers"]) == 1, f"expected one broker, got {cluster['brokers']}")
    broker = cluster["brokers"][0]
    check(f"{broker['host']}:{broker['port']}" == ENV.bootstrap, f"broker advertised as {broker}")
    check(cluster["cluster_id"], "no cluster id")
    check(cluster["controller_id"] == broker["node_id"], f"controller {cluster['controller_id']}")
    check(description["error_code"] == 0, f"topic error {description['error_code']}")
    partitions = description["partitions"]
    check(len(partitions) == 3, f"partitions {partitions}")
    for p in partitions:
        check(p["error_code"] == 0 and p["leader"] == broker["node_id"], f"partition {p}")
        check(p["replicas"] == [broker["node_id"]], f"partition {p}")
    check(topic in listed, "topic not listed")
    producer = AIOKafkaProducer(bootstrap_servers=ENV.bootstrap)
    await producer.start()
    try:
        partition_ids = await producer.partitions_for(topic)
        check(partition_ids == {0, 1, 2}, f"producer sees partitions {partition_ids}")
    finally:
        await producer.stop()


async def produce_consume(codec: str) -> str:
    topic = f"{ENV.prefix}-pc-{codec}"
    await new_topic(topic, 1)
    sent = [sample_record(i, codec) for i in range(RECORDS)]
    await produce(
        [{"topic": topic, "key": k, "value": v, "headers": h} for k, v, h in sent],
        compression_type=None if codec == "none" else codec,
        linger_ms=20,
    )
    got = await read_all(topic, len(sent))
    for i, ((key, value, headers), record) in enumerate(zip(sent, got, strict=True)):
        check(record.key == key, f"record {i} key {record.key!r} != {key!r}")
        check(record.value == value, f"record {i} value differs")
        check(list(record.headers) == headers, f"record {i} headers {record.headers}")
    await check_nothing_after(topic, got[-1].offset)
    return topic


async def idempotent_produce() -> str:
    topic = f"{ENV.prefix}-idempotent"
    count = 500
    await new_topic(topic, 1)
    await produce(
        [
            {"topic": topic, "key": f"k{i % 5}".encode(), "value": f"idem-{i}".encode()}
            for i in range(count)
        ],
        enable_idempotence=True,
        max_batch_size=2048,
        linger_ms=2,
    )
    got = await read_all(topic, count)
    check(values(got) == numbered("idem-", 0, count), "not idem-0..idem-499 exactly once in order")
    await check_nothing_after(topic, got[-1].offset)
    return topic


class Member(ConsumerRebalanceListener):
    """One consumer-group member polling in its own task."""

    def __init__(self, topic: str, group: str, name: str) -> None:
        self.name = name
        self.assignment: frozenset[int] = frozenset()
        self.seen: set[str] = set()
        self.consumer = consumer(
            group_id=group,
            client_id=f"{ENV.prefix}-{name}",
            session_timeout_ms=10000,
            heartbeat_interval_ms=300,
        )
        self.consumer.subscribe([topic], listener=self)
        self.task: asyncio.Task[None] | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.assignment = frozenset()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.assignment = frozenset(p.partition for p in assigned)

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            for batch in (await self.consumer.getmany(timeout_ms=100)).values():
                self.seen.update(r.value.decode() for r in batch)

    def check_alive(self) -> None:
        if self.task is not None and self.task.done() and not self.task.cancelled():
            raise AssertionError(f"member {self.name} failed: {self.task.exception()!r}")

    async def stop(self) -> None:
        if self.task is None:
            return
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.task = None
        await self.consumer.stop()  # leaves the group
        self.assignment = frozenset()


async def group_rebalance() -> None:
    topic = group = f"{ENV.prefix}-group"
    partitions, count = 4, 40
    await new_topic(topic, partitions)
    await produce(
        [
            {"topic": topic, "partition": i % partitions, "value": f"g-{i}".encode()}
            for i in range(count)
        ]
    )
    everything = frozenset(range(partitions))
    first, second = Member(topic, group, "first"), Member(topic, group, "second")

    def watching(condition):
        def watched() -> bool:
            first.check_alive()
            second.check_alive()
            return condition()

        return watched

    try:
        await first.start()
        await wait_for_async(
            watching(lambda: first.assignment == everything), "the first member to own all"
        )
        await second.start()
        await wait_for_async(
            watching(lambda: split_between(first, second, everything)),
            "the partitions to be split between two members",
        )
        await wait_for_async(
            watching(lambda: len(first.seen | second.seen) == count),
            f"the two members to consume all {count} records",
        )
        await second.stop()
        await wait_for_async(
            watching(lambda: first.assignment == everything),
            "the first member to own all partitions after the second left",
        )
    finally:
        await second.stop()
        await first.stop()


async def commit_resume() -> None:
    topic = group = f"{ENV.prefix}-commit"
    partition = TopicPartition(topic, 0)
    await new_topic(topic, 1)
    await produce([{"topic": topic, "value": f"c-{i}".encode()} for i in range(20)])
    first = consumer(topic, group_id=group)
    await first.start()
    try:
        tenth = (await poll_records(first, 10))[9]
        check(tenth.value == b"c-9", f"10th record is {tenth.value!r}")
        committed = tenth.offset + 1
        await first.commit({partition: OffsetAndMetadata(committed, "after-c-9")})
    finally:
        await first.stop()
    async with admin() as client:
        stored = (await client.list_consumer_group_offsets(group)).get(partition)
    check(stored is not None and stored.offset == committed, f"committed {stored}")
    check(stored.metadata == "after-c-9", f"commit metadata {stored.metadata!r}")
    second = consumer(topic, group_id=group)
    await second.start()
    try:
        check(await second.committed(partition) == committed, "committed() disagrees")
        got = await poll_records(second, 10)
        check(got[0].offset == committed, f"resumed at {got[0].offset}, committed {committed}")
        check(values(got) == numbered("c-", 10, 20), f"resumed with {values(got)}")
        await second.commit()
        final = await second.committed(partition)
        check(final == got[-1].offset + 1, f"final committed offset {final}")
    finally:
        await second.stop()


async def admin_topics() -> None:
    topic = f"{ENV.prefix}-admin"
    async with admin() as client:
        check(await create_topic(client, topic, 3) == 0, "create failed")
        broker_id = (await client.describe_cluster())["brokers"][0]["node_id"]
        [description] = await client.describe_topics([topic])
        check(len(description["partitions"]) == 3, f"described {description}")
        for p in description["partitions"]:
            check(p["leader"] == broker_id, f"partition {p}")
        check(topic in await client.list_topics(), "created topic not listed")
        code = await create_topic(client, topic, 3)
        check(code == TOPIC_ALREADY_EXISTS, f"re-creating the topic gave error {code}")
        response = (await client.delete_topics([topic])).to_object()
        [result] = response["topic_error_codes"]
        check(result["error_code"] == 0, f"delete: {result}")
        # Not describe_topics: aiokafka's Metadata request allows auto-creation, which a broker
        # with auto.create.topics.enable (Kafka's default) honours, re-creating the topic.
        await wait_for_async(
            lambda: _not_listed(client, topic), "the deleted topic to leave the list"
        )


async def _not_listed(client: AIOKafkaAdminClient, topic: str) -> bool:
    return topic not in await client.list_topics()


async def admin_configs() -> None:
    topic = f"{ENV.prefix}-configs"
    async with admin() as client:

        async def describe(kind: ConfigResourceType, name: str) -> dict[str, dict[str, Any]]:
            [response] = await client.describe_configs([ConfigResource(kind, name)])
            [resource] = response.to_object()["resources"]
            check(resource["error_code"] == 0, f"describe {name}: {resource['error_message']}")
            return {e["config_names"]: e for e in resource["config_entries"]}

        code = await create_topic(client, topic, 1, {"retention.ms": "3600000"})
        check(code == 0, f"create failed: {code}")
        configs = await describe(ConfigResourceType.TOPIC, topic)
        retention = configs.get("retention.ms", {})
        check(retention.get("config_value") == "3600000", f"retention.ms after create {retention}")
        check(retention["config_source"] == DYNAMIC_TOPIC_CONFIG, f"retention.ms {retention}")
        check(configs["cleanup.policy"]["config_value"] == "delete", "cleanup.policy")
        # aiokafka has only the legacy AlterConfigs (it replaces the topic's whole dynamic config).
        responses = await client.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "7200000"})]
        )
        for response in responses:
            for resource in response.to_object()["resources"]:
                check(resource["error_code"] == 0, f"alter: {resource}")
        altered = (await describe(ConfigResourceType.TOPIC, topic))["retention.ms"]["config_value"]
        check(altered == "7200000", f"retention.ms after alter: {altered}")
        broker_id = (await client.describe_cluster())["brokers"][0]["node_id"]
        broker_configs = await describe(ConfigResourceType.BROKER, str(broker_id))
        check("num.partitions" in broker_configs, "broker config lacks num.partitions")
        await client.delete_topics([topic])


async def transactions() -> str:
    topic = f"{ENV.prefix}-txn"
    await new_topic(topic, 1)
    producer = AIOKafkaProducer(
        bootstrap_servers=ENV.bootstrap, transactional_id=f"{ENV.prefix}-txn"
    )
    await producer.start()
    try:
        for batch, commit in [
            (numbered("committed-", 0, 5), True),
            (numbered("aborted-", 0, 3), False),
            (numbered("committed-", 5, 6), True),
        ]:
            await producer.begin_transaction()
            acks = [await producer.send(topic, value=value.encode()) for value in batch]
            await asyncio.gather(*acks)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()
    committed = values(await read_all(topic, 6, "read_committed"))
    check(committed == numbered("committed-", 0, 6), f"read_committed saw {committed}")
    everything = values(await read_all(topic, 9))
    expected = numbered("committed-", 0, 5) + numbered("aborted-", 0, 3) + ["committed-5"]
    check(everything == expected, f"read_uncommitted saw {everything}")
    return topic


async def txn_pipeline() -> str:
    topic = f"{ENV.prefix}-txn-pipeline"
    await new_topic(topic, TXN_PARTITIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=ENV.bootstrap,
        transactional_id=topic,
        max_batch_size=TXN_BATCH_BYTES,
        linger_ms=0,
    )
    await producer.start()
    sent: list[str] = []
    try:
        for txn in range(TXN_TRANSACTIONS):
            await producer.begin_transaction()
            acks = []
            for partition, value in txn_pipeline_records(txn):
                acks.append(await producer.send(topic, value=value.encode(), partition=partition))
                sent.append(value)
            await asyncio.gather(*acks)
            await producer.commit_transaction()
    finally:
        await producer.stop()
    got = values(await read_all(topic, len(sent), "read_committed", TXN_PARTITIONS))
    check_exactly_once(got, sent)
    return topic


async def secured_roundtrip(scenario: str, bootstrap: str, **security: Any) -> None:
    topic = f"{ENV.prefix}-{scenario}"
    await new_topic(topic, 1)
    await secured_roundtrip_existing(topic, bootstrap, **security)


async def secured_roundtrip_existing(topic: str, bootstrap: str, **security: Any) -> None:
    values = secured_values(ENV.prefix, topic.removeprefix(f"{ENV.prefix}-"))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **security)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security)
    await reader.start()
    try:
        reader.assign([TopicPartition(topic, 0)])
        await reader.seek_to_beginning()
        got: list[bytes] = []
        deadline = time.monotonic() + WAIT
        while len(got) < len(values) and time.monotonic() < deadline:
            for batch in (await reader.getmany(timeout_ms=500)).values():
                got += [record.value for record in batch]
    finally:
        await reader.stop()
    check(got == values, f"read back {len(got)} records, not the {len(values)} produced")


async def refused(bootstrap: str, **security: Any) -> bool:
    probe = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000, **security)
    try:
        await asyncio.wait_for(probe.start(), 10)
    except Exception:  # noqa: BLE001 - KafkaConnectionError, an authentication error...
        return True
    finally:
        with contextlib.suppress(Exception):
            await probe.stop()
    return False


def sasl(mechanism: str, password: str | None = None) -> dict[str, Any]:
    where = secured()
    user, right = where.credentials(mechanism)
    return {"security_protocol": "SASL_SSL", "sasl_mechanism": mechanism,
            "sasl_plain_username": user, "sasl_plain_password": password or right,
            "ssl_context": create_ssl_context(cafile=where.ca)}  # fmt: skip


async def security_sasl_plain() -> None:
    await secured_roundtrip("security-sasl-plain", secured().sasl_ssl, **sasl("PLAIN"))
    check(await refused(secured().sasl_ssl, **sasl("PLAIN", "wrong")),
          "a wrong password was accepted")  # fmt: skip


async def security_sasl_scram() -> None:
    await secured_roundtrip("security-sasl-scram", secured().sasl_ssl, **sasl("SCRAM-SHA-512"))
    check(await refused(secured().sasl_ssl, **sasl("SCRAM-SHA-512", "wrong")),
          "a wrong password was accepted")  # fmt: skip


async def security_mtls() -> None:
    where = secured()
    with_certificate = create_ssl_context(
        cafile=where.ca, certfile=where.client_cert, keyfile=where.client_key
    )
    await secured_roundtrip("security-mtls", where.mtls, security_protocol="SSL",
                            ssl_context=with_certificate)  # fmt: skip
    without = create_ssl_context(cafile=where.ca)
    check(await refused(where.mtls, security_protocol="SSL", ssl_context=without),
          "a client without a certificate was accepted")  # fmt: skip


async def security_acl() -> None:
    where = secured()
    topic = f"{ENV.prefix}-security-acl"
    await new_topic(topic, 1)
    user = f"User:{where.plain[0]}"
    # An ACL for someone else names the topic: from now on it is closed to everyone else.
    allow_on_topic(ENV.bootstrap, topic, "User:compat-someone-else", "WRITE")
    producer = AIOKafkaProducer(bootstrap_servers=where.sasl_ssl, acks="all",
                                request_timeout_ms=10000, **sasl("PLAIN"))  # fmt: skip
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"refused", partition=0), WAIT)
    except TopicAuthorizationFailedError:
        pass
    else:
        raise AssertionError("produce without WRITE was accepted")
    finally:
        await producer.stop()
    allow_on_topic(ENV.bootstrap, topic, user, "WRITE", "READ")
    await secured_roundtrip_existing(topic, where.sasl_ssl, **sasl("PLAIN"))


if __name__ == "__main__":
    quiet_logging()  # aiokafka logs rebalances and retries
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
    run_suite("aiokafka", aiokafka.__version__, scenarios, ENV)
