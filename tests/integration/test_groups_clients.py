"""Consumer groups with real clients: three members share a 6-partition topic of 30,000 messages
while one member leaves and another joins; nothing is lost and the committed offsets end at the
log end.

For each client (confluent-kafka with the eager range and the cooperative-sticky assignors,
kafka-python, aiokafka) the members run in threads, commit synchronously after every batch (and
retry a failed commit on the next round), and record every value they see. Half the messages are
produced up front; after 10,000 have been consumed the first member closes (LeaveGroup) and a
fourth joins; once the fourth holds partitions the second half is produced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from group_support import Ledger, MemberThread, commit_consumed

from rafka.cli.kafka_client import LATEST, KafkaClient

pytestmark = pytest.mark.timeout(150)

MESSAGES = 30_000
PARTITIONS = 6
TOPIC = "work"
GROUP = "workers"
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 200
BATCH = 200
CHURN_AFTER = 10_000
BROKER_OVERRIDES = {
    "group.min.session.timeout.ms": "1000",
    "group.initial.rebalance.delay.ms": "0",
}


# -- helpers --------------------------------------------------------------------------------------


Member = MemberThread


class ConfluentMember(Member):
    def __init__(
        self,
        name: str,
        bootstrap: str,
        ledger: Ledger,
        strategy: str,
        instance_id: str | None = None,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
    ) -> None:
        super().__init__(name, bootstrap, ledger)
        self.strategy = strategy
        self.instance_id = instance_id
        self.session_timeout_ms = session_timeout_ms
        self.assignments: list[list[int]] = []  # every assignment the group handed out

    def consume(self) -> None:
        config = {
            "bootstrap.servers": self.bootstrap,
            "group.id": GROUP,
            "client.id": self.name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": HEARTBEAT_MS,
            "partition.assignment.strategy": self.strategy,
            "log_level": 2,
        }
        if self.instance_id is not None:
            config["group.instance.id"] = self.instance_id
        consumer = Consumer(config)

        def on_assign(_consumer, partitions) -> None:
            self.assignments.append(sorted(tp.partition for tp in partitions))

        consumer.subscribe([TOPIC], on_assign=on_assign)
        dirty = False
        try:
            while not self.stop_event.is_set():
                messages = consumer.consume(BATCH, 0.1)
                values = [int(m.value()) for m in messages if m.error() is None]
                if values:
                    self.record(values)
                    dirty = True
                if consumer.assignment():
                    self.assigned.set()
                if dirty:
                    dirty = commit_consumed(consumer)
        finally:
            consumer.close()


class KafkaPythonMember(Member):
    def consume(self) -> None:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError as KafkaPythonError

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=GROUP,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            max_poll_records=BATCH,
        )
        consumer.subscribe([TOPIC])
        # kafka-python 3.0.12: a leader that assigned before its coordinator saw the topic's
        # partitions rejoins when they arrive, and if poll() times out during that join the
        # finished join is never applied: it stops heartbeating, its commits fail, and the
        # session expires. The coordinator only sees partitions of subscribed topics, in a
        # metadata answer after subscribe(); topics() fetches one before the first join.
        while TOPIC not in consumer.topics():
            time.sleep(0.05)
        dirty = False
        try:
            while not self.stop_event.is_set():
                # 1 s, not shorter: a join that poll() stopped waiting for is applied only if
                # the member still wants to rejoin, so the fewer joins outlive a poll the better.
                batches = consumer.poll(timeout_ms=1000)
                values = [int(r.value) for records in batches.values() for r in records]
                if values:
                    self.record(values)
                    dirty = True
                if consumer.assignment():
                    self.assigned.set()
                if dirty:
                    try:
                        consumer.commit()
                        dirty = False
                    except KafkaPythonError:
                        pass  # rebalancing: retried on the next round
        finally:
            consumer.close()


class AioKafkaMember(Member):
    def consume(self) -> None:
        asyncio.run(self._consume())

    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.errors import KafkaError as AioKafkaError

        consumer = AIOKafkaConsumer(
            TOPIC,
            bootstrap_servers=self.bootstrap,
            group_id=GROUP,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            max_poll_records=BATCH,
        )
        await consumer.start()
        dirty = False
        try:
            while not self.stop_event.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                values = [int(r.value) for records in batches.values() for r in records]
                if values:
                    self.record(values)
                    dirty = True
                if consumer.assignment():
                    self.assigned.set()
                if dirty:
                    try:
                        await consumer.commit()
                        dirty = False
                    except AioKafkaError:
                        pass
        finally:
            await consumer.stop()


def produce(bootstrap: str, values: range) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 2})
    for value in values:
        producer.produce(TOPIC, str(value).encode(), partition=value % PARTITIONS)
        if value % 5000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)


def committed_and_end(bootstrap: str) -> tuple[dict, dict]:
    with KafkaClient(bootstrap) as client:
        committed = {tp: c.offset for tp, c in client.fetch_offsets(GROUP).items()}
        end = client.list_offsets([(TOPIC, p) for p in range(PARTITIONS)], LATEST)
    return committed, end


MemberFactory = Callable[[str, str, Ledger], Member]

CLIENTS: dict[str, MemberFactory] = {
    "confluent-eager-range": lambda n, b, led: ConfluentMember(n, b, led, "range"),
    "confluent-cooperative-sticky": lambda n, b, led: ConfluentMember(
        n, b, led, "cooperative-sticky"
    ),
    "kafka-python": KafkaPythonMember,
    "aiokafka": AioKafkaMember,
}


# -- the scenario ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client", list(CLIENTS))
def test_members_leave_and_join_while_a_group_reads_everything(broker_factory, client) -> None:
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    make = CLIENTS[client]
    bootstrap = broker.bootstrap
    create_topic(bootstrap)
    half = MESSAGES // 2

    ledger = Ledger()
    members = [make(f"member-{i}", bootstrap, ledger) for i in (1, 2, 3)]
    for member in members:
        member.start()
    try:
        # Every member holds partitions before the first message exists, so each takes part.
        wait_until(lambda: all(m.assigned.is_set() for m in members), 60, "three assignments")
        wait_until(lambda: len(group_members(bootstrap)) == 3, 30, "a group of three")
        produce(bootstrap, range(half))
        leaver = members[0]
        wait_until(
            lambda: ledger.distinct >= CHURN_AFTER and leaver.consumed > 0,
            60,
            f"{CHURN_AFTER} messages",
        )
        leaver.finish()  # closes the consumer: LeaveGroup
        newcomer = make("member-4", bootstrap, ledger)
        members.append(newcomer)
        newcomer.start()
        wait_until(newcomer.assigned.is_set, 60, "the newcomer's first assignment")
        produce(bootstrap, range(half, MESSAGES))

        def done() -> bool:
            if ledger.distinct < MESSAGES:
                return False
            committed, end = committed_and_end(bootstrap)
            return all(committed.get((TOPIC, p)) == end[(TOPIC, p)] for p in range(PARTITIONS))

        wait_until(done, 90, "every message consumed and committed")
        with KafkaClient(bootstrap) as admin:
            _, described = admin.describe_group(GROUP)
        assert described.group_state == "Stable"
        assert sorted(m.client_id for m in described.members) == [
            "member-2",
            "member-3",
            "member-4",
        ]
    finally:
        for member in members:
            member.finish()
    for member in members:
        assert member.error is None, f"{member.name}: {member.error!r}"

    assert set(ledger.counts) == set(range(MESSAGES)), "messages were lost"
    committed, end = committed_and_end(bootstrap)
    assert committed == end, "committed offsets must end at the log end"
    assert leaver.consumed > 0 and newcomer.consumed > 0
    assert sum(m.consumed for m in members[1:3]) > 0
    duplicates = sum(ledger.counts.values()) - MESSAGES
    # At least once: redelivery after a rebalance is allowed, but only of uncommitted batches.
    assert duplicates <= 4 * PARTITIONS * BATCH, duplicates


# -- restarts -------------------------------------------------------------------------------------


def consumed_and_committed(ledger: Ledger, bootstrap: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        if ledger.distinct < count:
            return False
        committed, end = committed_and_end(bootstrap)
        return all(committed.get((TOPIC, p)) == end[(TOPIC, p)] for p in range(PARTITIONS))

    return check


def group_members(bootstrap: str) -> dict[str, str]:
    """client id -> member id, as the coordinator describes the group."""
    with KafkaClient(bootstrap) as client:
        _, described = client.describe_group(GROUP)
    return {m.client_id: m.member_id for m in described.members}


def latest_group_record(bootstrap: str):
    """The group's newest GroupMetadataValue, read from `__consumer_offsets` like any topic."""
    from confluent_kafka import TopicPartition

    from rafka.broker.coordinator.groups.records import GroupKey, decode_key, decode_value
    from rafka.broker.coordinator.placement import partition_for

    with KafkaClient(bootstrap) as client:
        partitions = client.cluster().partitions["__consumer_offsets"]
    partition = partition_for(GROUP, partitions)
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "record-reader",
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    try:
        low, high = reader.get_watermark_offsets(
            TopicPartition("__consumer_offsets", partition), timeout=10
        )
        reader.assign([TopicPartition("__consumer_offsets", partition, low)])
        latest = None
        position = low
        deadline = time.monotonic() + 30
        while position < high - 1 and time.monotonic() < deadline:
            for message in reader.consume(500, 0.5):
                if message.error() is not None:
                    continue
                position = message.offset()
                key = decode_key(message.key())
                if key == GroupKey(GROUP):
                    latest = decode_value(key, message.value())
        return latest
    finally:
        reader.close()


def test_committed_offsets_and_membership_survive_a_broker_crash(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    bootstrap = broker.bootstrap
    create_topic(bootstrap)
    first = 6000
    produce(bootstrap, range(first))
    ledger = Ledger()
    members = [ConfluentMember(f"member-{i}", bootstrap, ledger, "range") for i in (1, 2)]
    for member in members:
        member.start()
    try:
        wait_until(consumed_and_committed(ledger, bootstrap, first), 60, "the first batch")
        wait_until(lambda: len(group_members(bootstrap)) == 2, 30, "both members")
        committed_before, _ = committed_and_end(bootstrap)
        members_before = group_members(bootstrap)
        counts_before = dict(ledger.counts)

        broker.kill()  # SIGKILL: only what reached the log counts
        broker.start()

        # Straight after the restart the coordinator knows the group's members again...
        assert group_members(bootstrap) == members_before
        # ...and its committed offsets.
        assert committed_and_end(bootstrap)[0] == committed_before

        produce(bootstrap, range(first, 2 * first))
        wait_until(consumed_and_committed(ledger, bootstrap, 2 * first), 60, "the second batch")
    finally:
        for member in members:
            member.finish()
    for member in members:
        assert member.error is None, f"{member.name}: {member.error!r}"
    assert set(ledger.counts) == set(range(2 * first))
    # No committed message was read again after the restart.
    assert {v: ledger.counts[v] for v in range(first)} == counts_before


def test_static_member_restarted_within_session_timeout_causes_no_rebalance(
    broker_factory,
) -> None:
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    bootstrap = broker.bootstrap
    create_topic(bootstrap)
    produce(bootstrap, range(600))
    ledger = Ledger()

    def static(name: str, instance: str) -> ConfluentMember:
        return ConfluentMember(
            name, bootstrap, ledger, "range", instance_id=instance, session_timeout_ms=10000
        )

    a, b = static("a", "instance-a"), static("b", "instance-b")
    a.start()
    b.start()
    restarted = None
    try:
        wait_until(lambda: ledger.distinct == 600, 60, "the first messages")
        wait_until(lambda: a.assigned.is_set() and b.assigned.is_set(), 30, "assignments")
        wait_until(lambda: len(group_members(bootstrap)) == 2, 30, "both members")
        before = latest_group_record(bootstrap)
        members_before = group_members(bootstrap)
        b_assignments = list(b.assignments)

        a.finish()  # a static member closes without LeaveGroup
        assert group_members(bootstrap) == members_before, "the static member must stay"
        restarted = static("a", "instance-a")
        restarted.start()
        wait_until(restarted.assigned.is_set, 30, "the restarted member's assignment")

        after = latest_group_record(bootstrap)
        members_after = group_members(bootstrap)
        assert after.generation == before.generation, "a rebalance happened"
        assert members_after["b"] == members_before["b"]
        assert members_after["a"] != members_before["a"]  # the new instance got a new member id
        assert restarted.assignments == [a.assignments[-1]]  # it took its old partitions back
        produce(bootstrap, range(600, 1200))
        wait_until(lambda: ledger.distinct == 1200, 30, "the later messages")
        assert b.assignments == b_assignments, "the other member saw a rebalance"
    finally:
        for member in (a, b, restarted):
            if member is not None:
                member.finish()
