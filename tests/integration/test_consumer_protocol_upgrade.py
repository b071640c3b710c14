"""KIP-848's online upgrade with real clients: a classic group of confluent-kafka consumers
(eager `range` assignor) is replaced, member by member, by confluent-kafka consumers with
`group.protocol=consumer`, while records flow and every member commits after each batch.

The first consumer-protocol member's heartbeat converts the classic group into a consumer group
whose remaining classic member keeps consuming through JoinGroup/SyncGroup/Heartbeat, with the
partitions the consumer group's target assignment gives it. Committed offsets are sampled all
along (OffsetFetch through AdminClient) and must never move back; every record is consumed
exactly once; the group ends as a consumer group.
"""

from __future__ import annotations

import threading

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from group_support import Ledger, MemberThread, commit_consumed
from test_consumer_protocol import (
    BATCH,
    BROKER_OVERRIDES,
    GROUP,
    PARTITIONS,
    TOPIC,
    Member,
    all_committed,
    consumer_groups,
    create_topic,
    describe,
    produce,
)

pytestmark = pytest.mark.timeout(180)

UPGRADE_OVERRIDES = {
    **BROKER_OVERRIDES,
    "group.min.session.timeout.ms": "1000",
    "group.initial.rebalance.delay.ms": "0",
}


class ClassicMember(MemberThread):
    """A classic-protocol consumer (eager range assignor): consume a batch, record it, commit."""

    def __init__(self, name: str, bootstrap: str, ledger: Ledger) -> None:
        super().__init__(name, bootstrap, ledger)
        self.partitions: set[int] = set()

    def consume(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": GROUP,
                "client.id": self.name,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 300,
                "partition.assignment.strategy": "range",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "log_level": 2,
            }
        )
        dirty = False


        def on_assign(_consumer, partitions) -> None:
            self.partitions = {tp.partition for tp in partitions}

        def on_revoke(_consumer, _partitions) -> None:
            nonlocal dirty
            if dirty:
                dirty = commit_consumed(consumer)
            self.partitions = set()

        consumer.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke)
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
            consumer.close()


class OffsetSampler(threading.Thread):
    """Samples the group's committed offsets (OffsetFetch) until stopped; records any offset
    that moved back or disappeared."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(name="offset-sampler", daemon=True)
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.stop_event = threading.Event()
        self.latest: dict[int, int] = {}
        self.regressions: list[tuple[int, int, int]] = []
        self.samples = 0

    def run(self) -> None:
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        request = [ConsumerGroupTopicPartitions(GROUP, partitions)]
        while not self.stop_event.wait(0.02):
            try:
                result = self.admin.list_consumer_group_offsets(request)[GROUP].result(10)
            except KafkaException:
                continue  # e.g. the coordinator is busy: sample again
            self.samples += 1
            for tp in result.topic_partitions:
                if tp.error is not None:
                    continue
                before = self.latest.get(tp.partition)
                if before is not None and tp.offset < before:  # moved back, or gone (-1001)
                    self.regressions.append((tp.partition, before, tp.offset))
                if tp.offset >= 0:
                    self.latest[tp.partition] = max(tp.offset, before or 0)

    def finish(self) -> None:
        self.stop_event.set()
        self.join(30)


def split(*members) -> bool:
    owned = [m.partitions for m in members]
    return all(len(p) == PARTITIONS // len(members) for p in owned) and set().union(*owned) == set(
        range(PARTITIONS)
    )


def test_a_classic_group_upgrades_online_without_offsets_moving_back(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(**UPGRADE_OVERRIDES).start()
    bootstrap = broker.bootstrap
    create_topic(bootstrap)
    produce(bootstrap, range(2000))
    ledger = Ledger()
    sampler = OffsetSampler(bootstrap)
    classic = [ClassicMember(f"c{i}", bootstrap, ledger) for i in (1, 2)]
    upgraded = [Member(f"n{i}", bootstrap, ledger) for i in (1, 2)]
    try:
        for member in classic:
            member.start()
        wait_until(lambda: split(*classic), 30, "the classic members' split")
        assert consumer_groups(bootstrap) == {}  # a classic group
        sampler.start()
        produce(bootstrap, range(2000, 4000))

        # The first member is replaced: the classic group becomes a consumer group, with the
        # other classic member still in it on the classic protocol.
        classic[0].finish()
        upgraded[0].start()
        wait_until(lambda: split(classic[1], upgraded[0]), 40, "a classic and a new member")
        described = describe(bootstrap)
        assert described.type == ConsumerGroupType.CONSUMER
        assert sorted(m.client_id for m in described.members) == ["c2", "n1"]
        produce(bootstrap, range(4000, 6000))

        # The second one: only consumer-protocol members are left.
        classic[1].finish()
        upgraded[1].start()
        wait_until(lambda: split(*upgraded), 40, "the new members' split")
        produce(bootstrap, range(6000, 8000))
        wait_until(all_committed(bootstrap, ledger, 8000), 60, "everything committed")
        wait_until(
            lambda: consumer_groups(bootstrap) == {GROUP: "STABLE"}, 30, "a Stable consumer group"
        )
        described = describe(bootstrap)
        assert described.type == ConsumerGroupType.CONSUMER
        assert sorted(m.client_id for m in described.members) == ["n1", "n2"]
    finally:
        sampler.finish()
        for member in classic + upgraded:
            if member.is_alive():
                member.finish()
    assert sampler.samples >= 5
    assert sampler.regressions == []
    counts = ledger.snapshot()
    assert set(counts) == set(range(8000))
    assert [v for v, n in counts.items() if n != 1] == []
    assert all(m.lost == 0 for m in upgraded)
