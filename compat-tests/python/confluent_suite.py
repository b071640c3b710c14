"""librdkafka through confluent-kafka: the scenarios listed in compat-tests/matrix/scenarios.py,
one JSON line each."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import confluent_kafka
from confluent_kafka import (
    OFFSET_BEGINNING,
    AcknowledgeType,
    Consumer,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    ShareConsumer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from suite_common import (
    RECORDS,
    TXN_BATCH_BYTES,
    TXN_PARTITIONS,
    TXN_TRANSACTIONS,
    WAIT,
    Skip,
    ThreadedMember,
    check,
    check_exactly_once,
    check_rebalance,
    describe,
    describe_share_group,
    no_consumer_protocol,
    numbered,
    run_suite,
    sample_record,
    scenario_functions,
    secured,
    secured_values,
    split_between,
    suite_env,
    txn_pipeline_records,
    wait_for,
)

ENV = suite_env()
BASE = {"bootstrap.servers": ENV.bootstrap, "log_level": 3}  # librdkafka: errors only


_admin: list[AdminClient] = []


def admin() -> AdminClient:
    """One admin client for the suite: a client destroyed while a request is pending fails it."""
    if not _admin:
        _admin.append(AdminClient(dict(BASE)))
    return _admin[0]


def create_topic(topic: str, partitions: int, config: dict[str, str] | None = None) -> None:
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})
    admin().create_topics([new], operation_timeout=WAIT)[topic].result(WAIT)


def produce(records: list[dict[str, Any]], **config: Any) -> None:
    """Produce and wait for every acknowledgement; any delivery error fails the scenario."""
    producer = Producer({**BASE, "acks": "all", **config})
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    for record in records:
        producer.produce(on_delivery=delivered, **record)
        producer.poll(0)
    remaining = producer.flush(WAIT)
    check(remaining == 0, f"{remaining} records unacknowledged after {WAIT:.0f} s")
    check(not errors, f"delivery failed: {errors[:3]}")


def read_all(
    topic: str, count: int, isolation: str = "read_uncommitted", partitions: int = 1
) -> list[Message]:
    """The first `count` records of the first `partitions` partitions, by manual assignment."""
    consumer = Consumer(
        {**BASE, "group.id": f"{ENV.prefix}-unused", "isolation.level": isolation}
        | {"enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        return consume(consumer, count)
    finally:
        consumer.close()


def consume(consumer: Consumer, count: int) -> list[Message]:
    """The next `count` records; poll() hands out one at a time, so exactly `count` are consumed."""
    messages: list[Message] = []
    deadline = time.monotonic() + WAIT
    while len(messages) < count:
        check(time.monotonic() < deadline, f"received {len(messages)} of {count} records")
        message = consumer.poll(0.2)
        if message is not None:
            if message.error():
                raise KafkaException(message.error())
            messages.append(message)
    return messages


def check_nothing_after(topic: str, last_offset: int) -> None:
    """The partition ends right after the last record read: nothing was duplicated."""
    consumer = Consumer({**BASE, "group.id": f"{ENV.prefix}-unused"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=WAIT)
    finally:
        consumer.close()
    check(high == last_offset + 1, f"high watermark {high}, last expected record at {last_offset}")


def text(data: bytes | None) -> str | None:
    return None if data is None else data.decode()


# -- scenarios ------------------------------------------------------------------------------------


def metadata() -> None:
    topic = f"{ENV.prefix}-metadata"
    create_topic(topic, 3)
    meta = admin().list_topics(timeout=WAIT)
    check(len(meta.brokers) == 1, f"expected one broker, got {meta.brokers}")
    broker = next(iter(meta.brokers.values()))
    check(f"{broker.host}:{broker.port}" == ENV.bootstrap, f"broker advertised as {broker}")
    check(meta.cluster_id, "no cluster id")
    check(meta.controller_id == broker.id, f"controller {meta.controller_id}")
    partitions = meta.topics[topic].partitions
    check(len(partitions) == 3, f"partitions {partitions}")
    for partition in partitions.values():
        check(partition.error is None, f"partition {partition.id} error {partition.error}")
        check(partition.leader == broker.id, f"partition {partition.id} leader {partition.leader}")
        check(partition.replicas == [broker.id], f"partition {partition.id} {partition.replicas}")
    cluster = admin().describe_cluster().result(WAIT)
    check(cluster.cluster_id == meta.cluster_id, f"describe_cluster id {cluster.cluster_id}")
    check([n.id for n in cluster.nodes] == [broker.id], f"describe_cluster nodes {cluster.nodes}")


def produce_consume(codec: str) -> str:
    topic = f"{ENV.prefix}-pc-{codec}"
    create_topic(topic, 1)
    sent = [sample_record(i, codec) for i in range(RECORDS)]
    produce(
        [{"topic": topic, "key": k, "value": v, "headers": h} for k, v, h in sent],
        **{"compression.type": codec, "linger.ms": 20},
    )
    got = read_all(topic, len(sent))
    for i, ((key, value, headers), message) in enumerate(zip(sent, got, strict=True)):
        check(message.key() == key, f"record {i} key {message.key()!r} != {key!r}")
        check(message.value() == value, f"record {i} value differs")
        check(message.headers() == headers, f"record {i} headers {message.headers()}")
    check_nothing_after(topic, got[-1].offset())
    return topic


def idempotent_produce() -> str:
    topic = f"{ENV.prefix}-idempotent"
    count = 500
    create_topic(topic, 1)
    produce(
        [{"topic": topic, "key": f"k{i % 5}", "value": f"idem-{i}"} for i in range(count)],
        **{
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            "batch.size": 2048,
            "linger.ms": 2,
        },
    )
    got = read_all(topic, count)
    values = [text(m.value()) for m in got]
    check(values == numbered("idem-", 0, count), "not idem-0..idem-499 exactly once in order")
    check_nothing_after(topic, got[-1].offset())
    return topic


class Member(ThreadedMember):
    """One consumer-group member polling in its own thread."""

    def __init__(self, topic: str, group: str, name: str) -> None:
        super().__init__(name)
        self.topic = topic
        self.consumer = Consumer(
            {
                **BASE,
                "group.id": group,
                "client.id": f"{ENV.prefix}-{name}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 300,
            }
        )

    def subscribe(self) -> None:
        self.consumer.subscribe([self.topic])

    def poll(self) -> list[str]:
        message = self.consumer.poll(0.1)
        if message is not None and not message.error():
            return [message.value().decode()]
        return []


def group_rebalance() -> None:
    topic = group = f"{ENV.prefix}-group"
    partitions, count = 4, 40
    create_topic(topic, partitions)
    produce(
        [{"topic": topic, "partition": i % partitions, "value": f"g-{i}"} for i in range(count)]
    )
    everything = frozenset(range(partitions))
    first, second = Member(topic, group, "first"), Member(topic, group, "second")
    check_rebalance(first, second, everything, count)


class NextGenMember(ThreadedMember):
    """A member of a consumer-protocol group (KIP-848) polling in its own thread. The broker
    assigns and sets the session timeout and heartbeat interval, so none of them is configured
    here (librdkafka refuses them with group.protocol=consumer). It commits what it read,
    synchronously, after every poll; a failed commit is tried again after the next poll."""

    def __init__(self, topic: str, group: str, name: str) -> None:
        super().__init__(name)
        self.topic = topic
        self.uncommitted = False
        # The last failed commit and the last error librdkafka reported, for the report.
        self.commit_error: KafkaError | None = None
        self.client_error: KafkaError | None = None
        self.consumer = Consumer(
            {
                **BASE,
                "group.id": group,
                "group.protocol": "consumer",
                "client.id": f"{ENV.prefix}-{name}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "error_cb": self.on_error,
            }
        )

    def on_error(self, error: KafkaError) -> None:
        self.client_error = error

    def subscribe(self) -> None:
        self.consumer.subscribe([self.topic])

    def poll(self) -> list[str]:
        messages = self.consumer.consume(100, 0.1)
        values = [m.value().decode() for m in messages if not m.error()]
        self.uncommitted = self.uncommitted or bool(values)
        if self.uncommitted:
            try:
                self.consumer.commit(asynchronous=False)
                self.uncommitted = False
            except KafkaException as error:
                if error.args[0].code() == KafkaError._NO_OFFSET:  # nothing left to commit
                    self.uncommitted = False
                else:
                    self.commit_error = error.args[0]
        return values


SHARE_RECORDS, SHARE_BATCH = 200, 10


class ShareLedger:
    """Every delivery of the share-group scenario's records, as (member, delivery count,
    answer), and the acceptances the broker confirmed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: dict[str, list[tuple[str, int, AcknowledgeType]]] = {}
        self.order: list[str] = []
        self.accepted: Counter[str] = Counter()

    def delivered(self, value: str, member: str, count: int, answer: AcknowledgeType) -> None:
        with self.lock:
            self.deliveries.setdefault(value, []).append((member, count, answer))
            self.order.append(f"{value} {member}#{count}:{answer.name}")

    def confirmed(self, values: list[str]) -> None:
        with self.lock:
            self.accepted.update(values)

    def accepted_values(self) -> int:
        with self.lock:
            return len(self.accepted)

    def count(self) -> int:
        with self.lock:
            return len(self.order)

    def since(self, index: int) -> list[str]:
        with self.lock:
            return self.order[index:]

    def verify(self, first: ShareMember, second: ShareMember) -> int:
        """Checks every record's deliveries and acceptance; the number released."""
        wrong: list[str] = []
        released = 0
        for value in numbered("s-", 0, SHARE_RECORDS):
            got = self.deliveries.get(value, [])
            if got and got[0][2] == AcknowledgeType.RELEASE:
                released += 1
                right = (len(got) == 2 and got[0][:2] == (second.name, 1)
                         and got[1][1:] == (2, AcknowledgeType.ACCEPT))  # fmt: skip
            else:
                right = len(got) == 1 and got[0][1:] == (1, AcknowledgeType.ACCEPT)
            if not right or self.accepted[value] != 1:
                shown = [f"{m}#{c}:{a.name}" for m, c, a in got]
                wrong.append(f"{value}={shown} accepted {self.accepted[value]}x")
        more = f" and {len(wrong) - 10} more" if len(wrong) > 10 else ""
        check(not wrong, "records not delivered and accepted as expected (member#delivery "
                         f"count:answer): {wrong[:10]}{more}")  # fmt: skip
        check(released, f"the second member released no record (it read {second.received})")
        check(
            first.accepts and second.accepts,
            f"not both members accepted records: first {first.accepts}, second {second.accepts}",
        )
        return released


class ShareMember(ThreadedMember):
    """One ShareConsumer (KIP-932) polling in its own thread, explicit acknowledgement, 10 records
    a poll (max.poll.records, a soft bound in librdkafka). It accepts every record, except that a
    releasing member releases those whose number ends in 3 on their first delivery; after each
    poll it commits its acknowledgements with commit_sync (ShareAcknowledge), and the
    acknowledgement commit callback (called in this thread, from poll, commit_sync or close)
    confirms the acceptances the broker answered without an error."""

    def __init__(self, topic: str, group: str, name: str, releases: bool, ledger: ShareLedger):
        super().__init__(name)
        self.topic = topic
        self.releases = releases
        self.ledger = ledger
        self.client_id = f"{ENV.prefix}-{name}"
        self.probes = self.received = self.accepts = 0
        self.accepting: dict[tuple[int, int], str] = {}  # (partition, offset) -> value
        # The last failed acknowledgement, fetch error and client error, for the report.
        self.ack_error: str | None = None
        self.fetch_error: KafkaError | None = None
        self.client_error: KafkaError | None = None
        self.consumer = ShareConsumer(
            {
                **BASE,
                "group.id": group,
                "client.id": self.client_id,
                "share.acknowledgement.mode": "explicit",
                "max.poll.records": SHARE_BATCH,
                "error_cb": self.on_error,
            }
        )

    def on_error(self, error: KafkaError) -> None:
        self.client_error = error

    def subscribe(self) -> None:
        self.consumer.set_acknowledgement_commit_callback(self.on_commit)
        self.consumer.subscribe([self.topic])

    def assigned(self) -> list[int]:
        return []  # the broker assigns; ShareConsumer does not say what (see ShareGroupDescribe)

    def poll(self) -> list[str]:
        records = 0
        for message in self.consumer.poll(0.1):
            if message.error():  # librdkafka acknowledged it already (KIP-932 preview notes)
                self.fetch_error = message.error()
                continue
            records += 1
            value, count = message.value().decode(), message.delivery_count() or 0
            release = self.releases and count == 1 and value.startswith("s-") and value[-1] == "3"
            answer = AcknowledgeType.RELEASE if release else AcknowledgeType.ACCEPT
            self.consumer.acknowledge(message, answer)
            if value.startswith("probe-"):
                self.probes += 1
                continue
            self.received += 1
            self.ledger.delivered(value, self.name, count, answer)
            if answer == AcknowledgeType.ACCEPT:
                self.accepting[(message.partition(), message.offset())] = value
        if records:
            try:
                for partition, failure in self.consumer.commit_sync(WAIT).items():
                    if failure is not None:
                        self.ack_error = f"{partition.topic}[{partition.partition}]: {failure}"
            except KafkaException as error:
                self.ack_error = f"commit_sync: {error}"
        return []

    def on_commit(self, offsets: dict[TopicPartition, set[int]], failure: Any) -> None:
        """The broker's answer to acknowledgements: the offsets it accepted are confirmed."""
        confirmed = []
        for partition, numbers in offsets.items():
            for offset in numbers:
                value = self.accepting.pop((partition.partition, offset), None)
                if value is not None:
                    confirmed.append(value)
        if failure is not None:
            shown = {f"{tp.topic}[{tp.partition}]": sorted(o) for tp, o in offsets.items()}
            self.ack_error = f"{shown}: {failure}"
            return
        self.ledger.confirmed(confirmed)
        self.accepts += len(confirmed)

    def errors(self) -> str:
        errors = {"acknowledgement": self.ack_error, "fetch": self.fetch_error,
                  "client": self.client_error}  # fmt: skip
        found = [f"{kind} error {error}" for kind, error in errors.items() if error is not None]
        return f"; {self.name}: {', '.join(found)}" if found else ""


def share_group() -> None:
    """Two ShareConsumers in one share group: what it asserts is in matrix/scenarios.py. The
    group's membership is read with ShareGroupDescribe sent by hand, since librdkafka has no
    share-group admin operations."""
    if not hasattr(confluent_kafka, "ShareConsumer"):
        raise Skip(f"confluent-kafka {confluent_kafka.version()} has no share consumer (KIP-932)")
    topic = group = f"{ENV.prefix}-share"
    create_topic(topic, 1)
    producer = Producer({**BASE, "acks": "all", "linger.ms": 5})
    ledger = ShareLedger()
    first = ShareMember(topic, group, "first", False, ledger)
    second = ShareMember(topic, group, "second", True, ledger)
    members = (first, second)

    def wait(condition: Callable[[], bool], what: Callable[[], str]) -> None:
        """Polls `condition` (other threads change what it reads) for up to WAIT seconds,
        failing at once when a member failed, and saying on a timeout what was seen and the
        members' last errors."""
        deadline = time.monotonic() + WAIT
        while not condition():
            for member in members:
                if member.error is not None:
                    raise AssertionError(f"member {member.name} failed: {describe(member.error)}")
            if time.monotonic() > deadline:
                errors = "".join(m.errors() for m in members)
                raise AssertionError(f"timed out after {WAIT:.0f} s waiting for {what()}{errors}")
            time.sleep(0.02)

    try:
        first.start()
        second.start()
        # The share partition starts at its end offset when a member first fetches it: once each
        # member has a probe, both fetch and nothing produced later is missed.
        probes = [0]

        def probed() -> bool:
            if first.probes and second.probes:
                return True
            producer.produce(topic, f"probe-{probes[0]}".encode(), partition=0)
            producer.flush(WAIT)
            probes[0] += 1
            time.sleep(0.1)
            return False

        wait(probed, lambda: f"each member to receive a probe record (first {first.probes}, "
                             f"second {second.probes} of {probes[0]})")  # fmt: skip
        expected = {m.client_id: {(topic, 0)} for m in members}
        owned: dict[str, Any] = {}

        def described() -> bool:
            owned.clear()
            try:
                owned.update(describe_share_group(ENV.bootstrap, group))
            except AssertionError as error:
                owned["error"] = str(error)
            return owned == expected

        wait(described, lambda: f"ShareGroupDescribe to show both members assigned the "
                                f"partition (shows {owned})")  # fmt: skip
        for batch in range(SHARE_RECORDS // SHARE_BATCH):
            for value in numbered("s-", batch * SHARE_BATCH, (batch + 1) * SHARE_BATCH):
                producer.produce(topic, value.encode(), partition=0)
            check(producer.flush(WAIT) == 0, "records unacknowledged")  # one batch of 10
        wait(lambda: ledger.accepted_values() == SHARE_RECORDS
             or any(m.ack_error for m in members),
             lambda: f"every record to be accepted ({ledger.accepted_values()} of "
                     f"{SHARE_RECORDS})")  # fmt: skip
        failed = "".join(m.errors() for m in members if m.ack_error)
        check(not failed, f"an acknowledgement failed ({ledger.accepted_values()} of "
                          f"{SHARE_RECORDS} accepted){failed}")  # fmt: skip
        delivered = ledger.count()
        time.sleep(1)
        check(
            ledger.count() == delivered,
            f"delivered again after all were accepted: {ledger.since(delivered)}",
        )
    finally:
        second.stop()
        first.stop()
    for member in members:
        if member.error is not None:
            raise AssertionError(f"member {member.name} failed: {describe(member.error)}")
    released = ledger.verify(first, second)
    print(f"share-group: first accepted {first.accepts}, second {second.accepts}; {released} "
          "released and redelivered", file=sys.stderr)  # fmt: skip


def group_summary(description: Any) -> str:
    """A ConsumerGroupDescription as type, state and each member's partitions."""
    members = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
               for m in description.members}  # fmt: skip
    return f"type {description.type.name}, state {description.state.name}, members {members}"


def consumer_protocol() -> None:
    major, minor = (int(part) for part in confluent_kafka.libversion()[0].split(".")[:2])
    if (major, minor) < (2, 12):
        no_consumer_protocol(f"librdkafka {confluent_kafka.libversion()[0]}: GA from 2.12")
    topic = group = f"{ENV.prefix}-next-gen"
    partitions, count = 4, 40
    create_topic(topic, partitions)

    def produce_records(start: int, stop: int) -> None:
        produce([{"topic": topic, "partition": i % partitions, "value": f"n-{i}"}
                 for i in range(start, stop)])  # fmt: skip

    produce_records(0, count // 2)
    everything = frozenset(range(partitions))
    first, second = NextGenMember(topic, group, "first"), NextGenMember(topic, group, "second")
    members = (first, second)
    last: dict[str, object] = {}  # what the last check saw, for the report

    def wait(condition: Callable[[], bool], what: str) -> None:
        """wait_for, failing at once when a member failed, and reporting on a timeout what the
        last check saw and the members' last errors."""

        def watched() -> bool:
            for member in members:
                if member.error is not None:
                    raise AssertionError(f"member {member.name} failed: {member.error}")
            return condition()

        last.clear()
        try:
            wait_for(watched, what)
        except AssertionError as timeout:
            errors = {f"{m.name} {kind}": str(error) for m in members
                      for kind, error in (("commit", m.commit_error), ("client", m.client_error))
                      if error is not None}  # fmt: skip
            seen = {m.name: sorted(m.assignment) for m in members}
            raise AssertionError(f"{timeout}; members own {seen}; last seen {last or '-'}; "
                                 f"last errors {errors or '-'}") from None  # fmt: skip

    def described_as_split() -> bool:
        """ConsumerGroupDescribe shows a consumer-protocol group of the two members, each with
        the partitions it reports."""
        description = admin().describe_consumer_groups([group])[group].result(WAIT)
        last["described"] = group_summary(description)
        owned = {m.client_id: frozenset(tp.partition for tp in m.assignment.topic_partitions)
                 for m in description.members}  # fmt: skip
        reported = {f"{ENV.prefix}-{m.name}": m.assignment for m in members}
        return description.type == ConsumerGroupType.CONSUMER and owned == reported

    ends: dict[int, int] = {}

    def committed_at_end() -> bool:
        request = ConsumerGroupTopicPartitions(group)
        listed = admin().list_consumer_group_offsets([request])[group].result(WAIT)
        committed = {tp.partition: tp.offset for tp in listed.topic_partitions if tp.topic == topic}
        last.update(committed=committed, ends=ends)
        return committed == ends

    def split() -> bool:
        return split_between(first, second, everything) and len(first.assignment) == 2

    try:
        first.start()
        wait(lambda: first.assignment == everything, "the first member to own all 4 partitions")
        second.start()
        wait(split, "the partitions to be split 2/2 between the two members")
        wait(described_as_split, "ConsumerGroupDescribe to show the split")
        produce_records(count // 2, count)
        expected = {f"n-{i}" for i in range(count)}
        wait(lambda: first.seen | second.seen == expected, f"the members to read all {count}")
        check(second.seen, "the second member read none of the records produced after the split")
        second.stop()
        wait(lambda: first.assignment == everything,
             "the first member to own all partitions after the second left")  # fmt: skip
        consumer = Consumer({**BASE, "group.id": f"{ENV.prefix}-unused"})
        try:
            for p in range(partitions):
                ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), WAIT)[1]
        finally:
            consumer.close()
        check(sum(ends.values()) == count, f"end offsets {ends}")
        wait(committed_at_end, "the committed offsets to reach the end of every partition")
    finally:
        second.stop()
        first.stop()
    if first.error is not None:
        raise AssertionError(f"member first failed: {first.error}")


def commit_resume() -> None:
    topic = group = f"{ENV.prefix}-commit"
    partition = TopicPartition(topic, 0)
    create_topic(topic, 1)
    produce([{"topic": topic, "value": f"c-{i}"} for i in range(20)])
    config = {**BASE, "group.id": group, "enable.auto.commit": False}
    config["auto.offset.reset"] = "earliest"
    consumer = Consumer(config)
    try:
        consumer.subscribe([topic])
        tenth = consume(consumer, 10)[9]
        check(tenth.value() == b"c-9", f"10th record is {tenth.value()!r}")
        committed = tenth.offset() + 1
        offset = TopicPartition(topic, 0, committed, metadata="after-c-9")
        result = consumer.commit(offsets=[offset], asynchronous=False)
        check(all(p.error is None for p in result), f"commit: {result}")
    finally:
        consumer.close()
    consumer = Consumer(config)
    try:
        [stored] = consumer.committed([partition], timeout=WAIT)
        check(stored.offset == committed, f"committed offset {stored.offset}, expected {committed}")
        check(stored.metadata == "after-c-9", f"commit metadata {stored.metadata!r}")
        consumer.subscribe([topic])
        got = consume(consumer, 10)
        check(got[0].offset() == committed, f"resumed at {got[0].offset()}, committed {committed}")
        values = [text(m.value()) for m in got]
        check(values == numbered("c-", 10, 20), f"resumed with {values}")
        consumer.commit(asynchronous=False)
        [final] = consumer.committed([partition], timeout=WAIT)
        check(final.offset == got[-1].offset() + 1, f"final committed offset {final.offset}")
    finally:
        consumer.close()


def admin_topics() -> None:
    topic = f"{ENV.prefix}-admin"
    client = admin()
    create_topic(topic, 3)
    broker_id = client.describe_cluster().result(WAIT).nodes[0].id
    description = client.describe_topics(TopicCollection([topic]))[topic].result(WAIT)
    check(len(description.partitions) == 3, f"described {description.partitions}")
    for info in description.partitions:
        check(info.leader.id == broker_id, f"partition {info.id} leader {info.leader}")
    check(topic in client.list_topics(timeout=WAIT).topics, "created topic not listed")
    try:
        create_topic(topic, 3)
        raise AssertionError("creating an existing topic succeeded")
    except KafkaException as error:
        code = error.args[0].code()
        check(code == KafkaError.TOPIC_ALREADY_EXISTS, f"re-create: {error}")
    client.delete_topics([topic], operation_timeout=WAIT)[topic].result(WAIT)
    wait_for(
        lambda: topic not in client.list_topics(timeout=WAIT).topics,
        "the deleted topic to leave the list",
    )
    try:
        client.describe_topics(TopicCollection([topic]))[topic].result(WAIT)
        raise AssertionError("describing a deleted topic succeeded")
    except KafkaException as error:
        code = error.args[0].code()
        check(code == KafkaError.UNKNOWN_TOPIC_OR_PART, f"describe deleted: {error}")


def admin_configs() -> None:
    topic = f"{ENV.prefix}-configs"
    client = admin()
    create_topic(topic, 1, {"retention.ms": "3600000"})
    resource = ConfigResource(ResourceType.TOPIC, topic)

    def describe() -> dict[str, ConfigEntry]:
        return client.describe_configs([resource])[resource].result(WAIT)

    configs = describe()
    retention = configs.get("retention.ms")
    check(retention is not None and retention.value == "3600000", f"retention.ms {retention}")
    check(
        retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
        f"retention.ms source {retention.source}",
    )
    check(
        configs["cleanup.policy"].value == "delete", f"cleanup.policy {configs['cleanup.policy']}"
    )
    change = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    client.incremental_alter_configs([change])[change].result(WAIT)
    altered = describe()["retention.ms"].value
    check(altered == "7200000", f"retention.ms after alter: {altered}")
    broker_id = client.describe_cluster().result(WAIT).nodes[0].id
    broker = ConfigResource(ResourceType.BROKER, str(broker_id))
    broker_configs = client.describe_configs([broker])[broker].result(WAIT)
    check("num.partitions" in broker_configs, "broker config lacks num.partitions")
    client.delete_topics([topic], operation_timeout=WAIT)[topic].result(WAIT)


def transactions() -> str:
    topic = f"{ENV.prefix}-txn"
    create_topic(topic, 1)
    producer = Producer({**BASE, "transactional.id": f"{ENV.prefix}-txn"})
    producer.init_transactions(WAIT)
    for values, commit in [
        (numbered("committed-", 0, 5), True),
        (numbered("aborted-", 0, 3), False),
        (numbered("committed-", 5, 6), True),
    ]:
        producer.begin_transaction()
        for value in values:
            producer.produce(topic, value=value)
        producer.flush(WAIT)
        if commit:
            producer.commit_transaction(WAIT)
        else:
            producer.abort_transaction(WAIT)
    committed = [text(m.value()) for m in read_all(topic, 6, "read_committed")]
    check(committed == numbered("committed-", 0, 6), f"read_committed saw {committed}")
    everything = [text(m.value()) for m in read_all(topic, 9, "read_uncommitted")]
    expected = numbered("committed-", 0, 5) + numbered("aborted-", 0, 3) + ["committed-5"]
    check(everything == expected, f"read_uncommitted saw {everything}")
    return topic


def txn_pipeline() -> str:
    topic = f"{ENV.prefix}-txn-pipeline"
    create_topic(topic, TXN_PARTITIONS)
    producer = Producer(
        {**BASE, "transactional.id": topic, "linger.ms": 0, "batch.size": TXN_BATCH_BYTES}
    )
    producer.init_transactions(WAIT)
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    sent: list[str] = []
    for txn in range(TXN_TRANSACTIONS):
        producer.begin_transaction()
        for partition, value in txn_pipeline_records(txn):
            producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
            sent.append(value)
        producer.commit_transaction(WAIT)  # flushes first
        check(not errors, f"transaction {txn}: delivery failed: {errors[:3]}")
    got = read_all(topic, len(sent), "read_committed", TXN_PARTITIONS)
    check_exactly_once([text(m.value()) or "" for m in got], sent)
    return topic


def secured_roundtrip(scenario: str, security: dict[str, Any], bootstrap: str) -> None:
    """Create the scenario's topic, produce SECURED_RECORDS through `bootstrap` with `security`
    and read them back there."""
    topic = f"{ENV.prefix}-{scenario}"
    create_topic(topic, 1)
    secured_transfer(topic, scenario, security, bootstrap)


def secured_transfer(topic: str, scenario: str, security: dict[str, Any], bootstrap: str) -> None:
    config = {**BASE, "bootstrap.servers": bootstrap, **security}
    values = secured_values(ENV.prefix, scenario)
    producer = Producer({**config, "acks": "all"})
    for value in values:
        producer.produce(topic, value, partition=0)
    check(producer.flush(WAIT) == 0, "records unacknowledged over the secured listener")
    consumer = Consumer({**config, "group.id": f"{ENV.prefix}-{scenario}",
                         "enable.auto.commit": False})  # fmt: skip
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = [m.value() for m in consume(consumer, len(values))]
    finally:
        consumer.close()
    check(got == values, f"read back {got[:3]}... instead of the {len(values)} records")


def refused(bootstrap: str, security: dict[str, Any]) -> bool:
    client = AdminClient({**BASE, "bootstrap.servers": bootstrap, "log_level": 0, **security})
    try:
        client.list_topics(timeout=5)
    except KafkaException:
        return True
    return False


def sasl(mechanism: str, password: str | None = None) -> dict[str, Any]:
    where = secured()
    user, right = where.credentials(mechanism)
    return {"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password or right,
            "ssl.ca.location": where.ca}  # fmt: skip


def security_sasl_plain() -> None:
    secured_roundtrip("security-sasl-plain", sasl("PLAIN"), secured().sasl_ssl)
    check(refused(secured().sasl_ssl, sasl("PLAIN", "wrong")), "a wrong password was accepted")


def security_sasl_scram() -> None:
    secured_roundtrip("security-sasl-scram", sasl("SCRAM-SHA-512"), secured().sasl_ssl)
    check(refused(secured().sasl_ssl, sasl("SCRAM-SHA-512", "wrong")),
          "a wrong password was accepted")  # fmt: skip


def security_mtls() -> None:
    where = secured()
    tls = {"security.protocol": "SSL", "ssl.ca.location": where.ca}
    with_certificate = {**tls, "ssl.certificate.location": where.client_cert,
                        "ssl.key.location": where.client_key}  # fmt: skip
    secured_roundtrip("security-mtls", with_certificate, where.mtls)
    check(refused(where.mtls, tls), "a client without a certificate was accepted")


def create_acls(bindings: list[AclBinding]) -> None:
    for future in admin().create_acls(bindings).values():
        future.result(WAIT)


def topic_acl(topic: str, principal: str, operation: AclOperation) -> AclBinding:
    return AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*",
                      operation, AclPermissionType.ALLOW)  # fmt: skip


def security_acl() -> None:
    where = secured()
    topic = f"{ENV.prefix}-security-acl"
    create_topic(topic, 1)
    user = f"User:{where.plain[0]}"
    # An ACL for someone else names the topic: from now on it is closed to everyone else.
    create_acls([topic_acl(topic, "User:compat-someone-else", AclOperation.WRITE)])
    errors: list[KafkaError] = []
    producer = Producer({**BASE, **sasl("PLAIN"), "bootstrap.servers": where.sasl_ssl,
                         "message.timeout.ms": 10000})  # fmt: skip
    producer.produce(topic, b"refused", partition=0,
                     on_delivery=lambda error, _m: errors.append(error))  # fmt: skip
    producer.flush(WAIT)
    codes = [e.code() for e in errors if e is not None]
    check(codes == [KafkaError.TOPIC_AUTHORIZATION_FAILED], f"produce without WRITE: {errors}")
    create_acls([topic_acl(topic, user, AclOperation.WRITE),
                 topic_acl(topic, user, AclOperation.READ)])  # fmt: skip
    secured_transfer(topic, "security-acl", sasl("PLAIN"), where.sasl_ssl)


if __name__ == "__main__":
    version = f"{confluent_kafka.version()} (librdkafka {confluent_kafka.libversion()[0]})"
    scenarios = scenario_functions(
        produce_consume,
        metadata=metadata,
        idempotent_produce=idempotent_produce,
        group_rebalance=group_rebalance,
        commit_resume=commit_resume,
        consumer_protocol=consumer_protocol,
        share_group=share_group,
        admin_topics=admin_topics,
        admin_configs=admin_configs,
        transactions=transactions,
        txn_pipeline=txn_pipeline,
        security_sasl_plain=security_sasl_plain,
        security_sasl_scram=security_sasl_scram,
        security_mtls=security_mtls,
        security_acl=security_acl,
    )
    run_suite("confluent-kafka", version, scenarios, ENV)
