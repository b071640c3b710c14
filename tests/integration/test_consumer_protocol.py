"""The consumer group protocol (KIP-848) with real clients: confluent-kafka consumers with
`group.protocol=consumer` against broker processes. The broker assigns (no client-side
strategy); members commit synchronously after every batch they processed (and on revocation).

* Two members split four partitions, a third joins and the first leaves, while every record is
  consumed exactly once.
* The group survives a broker crash: its members keep their partitions and epochs (nothing is
  lost or reassigned), committed offsets come back, and consumption resumes where it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka import (
    Consumer,
    ConsumerGroupType,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from group_support import Ledger, MemberThread, commit_consumed

from rafka.cli.kafka_client import LATEST, KafkaClient

pytestmark = pytest.mark.timeout(150)

TOPIC = "orders"
GROUP = "next-gen"
PARTITIONS = 4
BATCH = 100
BROKER_OVERRIDES = {
    "group.consumer.heartbeat.interval.ms": "300",
    "group.consumer.min.heartbeat.interval.ms": "100",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "1000",
}


class Member(MemberThread):
    """One consumer (group.protocol=consumer): consume a batch, record it, commit it."""

    def __init__(self, name: str, bootstrap: str, ledger: Ledger) -> None:
        super().__init__(name, bootstrap, ledger)
        self.partitions: set[int] = set()
        self.lost = 0  # partitions the client had to give up without revoking (fenced)

    def consume(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": GROUP,
                "group.protocol": "consumer",
                "client.id": self.name,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "log_level": 2,
            }
        )
        dirty = False


        def on_assign(_consumer, partitions) -> None:
            self.partitions |= {tp.partition for tp in partitions}

        def on_revoke(_consumer, partitions) -> None:
            nonlocal dirty
            if dirty:
                dirty = commit_consumed(consumer)
            self.partitions -= {tp.partition for tp in partitions}

        def on_lost(_consumer, partitions) -> None:
            self.lost += len(partitions)
            self.partitions -= {tp.partition for tp in partitions}

        consumer.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        try:
            while not self.stop_event.is_set():
                messages = consumer.consume(BATCH, 0.1)
                values = [int(m.value()) for m in messages if m.error() is None]
                if values:
                    self.ledger.add(values)
                    dirty = True
                if dirty:
                    dirty = commit_consumed(consumer)
        finally:
            consumer.close()  # leaves the group: member epoch -1


def create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)


def produce(bootstrap: str, values: range) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 2})
    for value in values:
        producer.produce(TOPIC, str(value).encode(), partition=value % PARTITIONS)
    assert producer.flush(60) == 0


def all_committed(bootstrap: str, ledger: Ledger, count: int) -> Callable[[], bool]:
    def check() -> bool:
        if len(ledger.snapshot()) < count:
            return False
        with KafkaClient(bootstrap) as client:
            committed = {tp: c.offset for tp, c in client.fetch_offsets(GROUP).items()}
            end = client.list_offsets([(TOPIC, p) for p in range(PARTITIONS)], LATEST)
        return all(committed.get((TOPIC, p)) == end[(TOPIC, p)] for p in range(PARTITIONS))

    return check


def consumer_groups(bootstrap: str) -> dict[str, str]:
    """group id -> state, of the groups ListGroups (v5) lists as consumer-protocol groups."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(10)
    return {g.group_id: g.state.name for g in listed.valid}


def describe(bootstrap: str):
    """The group as ConsumerGroupDescribe (API 69) shows it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([GROUP])[GROUP].result(10)


def test_members_join_and_leave_and_every_record_is_consumed_once(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    bootstrap = broker.bootstrap
    create_topic(bootstrap)
    produce(bootstrap, range(4000))
    ledger = Ledger()
    first, second = Member("m1", bootstrap, ledger), Member("m2", bootstrap, ledger)
    first.start()
    second.start()
    third = Member("m3", bootstrap, ledger)
    try:
        wait_until(lambda: len(first.partitions) == len(second.partitions) == 2, 30, "a split")
        assert first.partitions | second.partitions == set(range(PARTITIONS))
        third.start()
        wait_until(lambda: third.partitions, 30, "the third member's partitions")
        produce(bootstrap, range(4000, 8000))
        first.finish()  # leaves: its partitions move to the others
        wait_until(
            lambda: second.partitions | third.partitions == set(range(PARTITIONS)),
            30,
            "the first member's partitions taken over",
        )
        assert not second.partitions & third.partitions
        produce(bootstrap, range(8000, 12000))
        wait_until(all_committed(bootstrap, ledger, 12000), 60, "everything committed")
        assert consumer_groups(bootstrap) == {GROUP: "STABLE"}
        described = describe(bootstrap)
        assert described.type == ConsumerGroupType.CONSUMER
        assert described.state.name == "STABLE"
        assert {m.client_id for m in described.members} == {"m2", "m3"}
        owned = [tp.partition for m in described.members for tp in m.assignment.topic_partitions]
        assert sorted(owned) == list(range(PARTITIONS))
    finally:
        for member in (first, second, third):
            if member.is_alive():
                member.finish()
    counts = ledger.snapshot()
    assert set(counts) == set(range(12000))
    assert [v for v, n in counts.items() if n != 1] == []
    assert first.lost == second.lost == third.lost == 0


def test_the_group_and_its_offsets_survive_a_broker_crash(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    bootstrap = broker.bootstrap
    create_topic(bootstrap)
    produce(bootstrap, range(3000))
    ledger = Ledger()
    members = [Member(f"m{i}", bootstrap, ledger) for i in (1, 2)]
    for member in members:
        member.start()
    try:
        wait_until(all_committed(bootstrap, ledger, 3000), 60, "the first half")
        wait_until(lambda: all(len(m.partitions) == 2 for m in members), 30, "a split")
        before = ledger.snapshot()
        partitions = [set(m.partitions) for m in members]

        broker.kill()  # SIGKILL: only what reached the log counts
        broker.start()

        # The coordinator replayed the group: its members heartbeat on at their epochs.
        wait_until(lambda: consumer_groups(bootstrap) == {GROUP: "STABLE"}, 10, "the group")
        produce(bootstrap, range(3000, 6000))
        wait_until(all_committed(bootstrap, ledger, 6000), 60, "the second half")
        assert [set(m.partitions) for m in members] == partitions
        assert all(m.lost == 0 for m in members)
    finally:
        for member in members:
            member.finish()
    counts = ledger.snapshot()
    assert set(counts) == set(range(6000))
    # Nothing committed before the crash was read again after it.
    assert {v: counts[v] for v in range(3000)} == before
    assert [v for v, n in counts.items() if n != 1] == []


def test_a_regex_subscription_picks_up_a_new_topic(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    bootstrap = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("orders-eu", 2, 1)])["orders-eu"].result(30)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "by-pattern",
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 500,
            "log_level": 2,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 2})
    try:
        consumer.subscribe(["^orders-.*"])  # the broker resolves the regex (KIP-848)
        seen: set[tuple[str, str]] = set()
        producer.produce("orders-eu", b"eu")
        producer.flush(30)
        deadline = time.monotonic() + 30
        created = False
        while len(seen) < 2 and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                seen.add((message.topic(), message.value().decode()))
            if seen and not created:
                admin.create_topics([NewTopic("orders-us", 1, 1)])["orders-us"].result(30)
                producer.produce("orders-us", b"us")
                producer.flush(30)
                created = True
        assert seen == {("orders-eu", "eu"), ("orders-us", "us")}
    finally:
        consumer.close()


def test_a_transaction_commits_a_consumer_protocol_members_offsets(broker_factory) -> None:
    """Exactly-once with a KIP-848 consumer: the producer sends the consumer's offsets with its
    group metadata (member id and epoch) in TxnOffsetCommit, and they count once the
    transaction commits; a member the group does not know is refused."""
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    bootstrap = broker.bootstrap
    create_topic(bootstrap)
    produce(bootstrap, range(40))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "group.protocol": "consumer",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "log_level": 2,
        }
    )
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": "pipeline", "log_level": 2}
    )
    try:
        consumer.subscribe([TOPIC])
        seen = 0
        deadline = time.monotonic() + 30
        while seen < 40 and time.monotonic() < deadline:
            seen += sum(m.error() is None for m in consumer.consume(40, 0.2))
        assert seen == 40
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce("orders-out", b"done")
        positions = consumer.position(consumer.assignment())
        metadata = consumer.consumer_group_metadata()
        producer.send_offsets_to_transaction(positions, metadata, 30)
        producer.commit_transaction(30)
        committed = consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], 10)
        assert sorted((tp.partition, tp.offset) for tp in committed) == [
            (p, 10) for p in range(PARTITIONS)
        ]
    finally:
        consumer.close()
    # The member has left: its metadata names no member of the group any more.
    producer.begin_transaction()
    with pytest.raises(KafkaException) as refused:
        producer.send_offsets_to_transaction(positions, metadata, 30)
    assert refused.value.args[0].code() == KafkaError.UNKNOWN_MEMBER_ID
