"""Share-group configs applied per group (KIP-932, as Kafka 4.3.1 applies them), each shown to
change what a real client sees against a real broker whose group.share.* defaults differ:
share.heartbeat.interval.ms and share.session.timeout.ms (a silent member is removed after the
group's timeout, taken at its next heartbeat), share.record.lock.duration.ms (an unacknowledged
record comes back after the group's lock, also to a Java KafkaShareConsumer, the config set with
`rafka configs`), share.delivery.count.limit and share.partition.max.record.locks (changed while
the share partition is loaded), share.renew.acknowledge.enable, and share.isolation.level
(read_committed: never a record of an aborted transaction, nothing past the last stable
offset)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka import Consumer, Producer, TopicPartition
from kio.schema.share_group_describe.v1.request import ShareGroupDescribeRequest
from kio.schema.share_group_describe.v1.response import ShareGroupDescribeResponse
from raw_client import RawClient
from share_support import (
    ACCEPT,
    JAVA_TOPIC,
    RELEASE,
    RENEW,
    ShareMember,
    acquired,
    create_topic,
    describe_offsets,
    find_coordinator,
    heartbeat,
    java_share_broker,
    offsets_of,
    partition_of,
    set_group_config,
    share_classpath,
    share_fetch,
)
from share_support import acknowledge as share_acknowledge
from typer.testing import CliRunner

from rafka.cli.main import app
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import iter_batch_headers

pytestmark = pytest.mark.timeout(180)

TOPIC = "configured"
BROKER_LOCK_MS = 60_000  # the broker's default, far from the groups' 15 s
GROUP_LOCK_MS = 15_000  # group.share.min.record.lock.duration.ms: the smallest a group may set


# -- requests ------------------------------------------------------------------------------------


def acknowledge(
    client: RawClient,
    group: str,
    member: str,
    epoch: int,
    topic_id: uuid.UUID,
    acks: tuple[tuple[int, int, int], ...],
) -> Any:
    """A ShareAcknowledge of partition 0, `acks` (first, last, type): its partition's answer."""
    batches = tuple((f, la, (t,)) for f, la, t in acks)
    response = share_acknowledge(client, group, member, epoch, topic_id, batches)
    assert response.error_code == ErrorCode.none, response
    return partition_of(response)


def delivered(response: Any) -> list[str]:
    """The values of the records a ShareFetch handed out (those in its acquired ranges)."""
    from rafka.protocol.records import decode_batch

    ranges = acquired(response)
    values = []
    for topic in response.responses:
        for p in topic.partitions:
            for pos, header in iter_batch_headers(p.records):
                if header.is_control:
                    continue
                for record in decode_batch(p.records, pos)[1]:
                    if any(f <= record.offset <= la for f, la, _ in ranges):
                        values.append(record.value.decode())
    return values


def members_of(client: RawClient, group: str) -> list[str]:
    described = client.request(
        ShareGroupDescribeRequest(group_ids=(group,), include_authorized_operations=False),
        ShareGroupDescribeResponse,
    )
    return [m.member_id for m in described.groups[0].members]


def configure(client: RawClient, group: str, **configs: str) -> None:
    for key, value in configs.items():
        result = set_group_config(client, group, key.replace("_", "."), value)
        assert result.error_code == ErrorCode.none, result


def join(client: RawClient, group: str, member: str) -> tuple[Any, uuid.UUID]:
    find_coordinator(client, group)
    joined = heartbeat(client, group, member, 0, (TOPIC,))
    assert joined.error_code == ErrorCode.none, joined
    return joined, joined.assignment.topic_partitions[0].topic_id


def produce(bootstrap: str, values: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for value in values:
        producer.produce(TOPIC, value.encode(), partition=0)
    assert producer.flush(30) == 0


def fetch_until_acquired(
    client: RawClient, group: str, member: str, epoch: int, topic_id: uuid.UUID, within: float
) -> tuple[Any, int]:
    """Long-poll until records are acquired (bounded by `within` seconds): (response, next
    share-session epoch)."""
    deadline = time.monotonic() + within
    while True:
        response = share_fetch(client, group, member, epoch, topic_id, wait_ms=5000)
        epoch += 1
        if acquired(response) or time.monotonic() > deadline:
            return response, epoch


# -- tests ---------------------------------------------------------------------------------------


def test_heartbeat_interval_and_session_timeout_per_group(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(
        **{"group.share.session.timeout.ms": "600000"}  # a silent member stays 10 minutes
    ).start()
    create_topic(broker.bootstrap, TOPIC)
    with RawClient(broker.bootstrap) as client:
        configure(client, "short", share_heartbeat_interval_ms="7000")
        plain, _ = join(client, "plain", "p")
        assert plain.heartbeat_interval == timedelta(milliseconds=5000)  # the broker's
        short, _ = join(client, "short", "s")
        assert short.heartbeat_interval == timedelta(milliseconds=7000)

        # Set while the member is in the group: its next heartbeat takes the new timeout.
        configure(client, "short", share_session_timeout_ms="45000")
        again = heartbeat(client, "short", "s", short.member_epoch)
        assert again.error_code == ErrorCode.none
        silent_since = time.monotonic()
        assert heartbeat(client, "plain", "p", plain.member_epoch).error_code == ErrorCode.none

        wait_until(lambda: members_of(client, "short") == [], 60, "the silent member removed")
        elapsed = time.monotonic() - silent_since
        assert 44 <= elapsed < 50, elapsed
        assert members_of(client, "plain") == ["p"]  # the broker's 10 minutes


def test_lock_duration_delivery_limit_record_locks_and_renew_per_group(broker_factory) -> None:
    broker: BrokerProcess = broker_factory(
        **{"group.share.record.lock.duration.ms": str(BROKER_LOCK_MS)}
    ).start()
    create_topic(broker.bootstrap, TOPIC)
    produce(broker.bootstrap, ["0", "1", "2"])
    with RawClient(broker.bootstrap) as client:
        # share.record.lock.duration.ms: a record nobody acknowledges comes back after the
        # group's 15 s, not the broker's 60 s.
        configure(
            client, "locks",
            share_auto_offset_reset="earliest", share_record_lock_duration_ms=str(GROUP_LOCK_MS),
        )  # fmt: skip
        _, topic_id = join(client, "locks", "a")
        join(client, "locks", "b")
        first = share_fetch(client, "locks", "a", 0, topic_id, wait_ms=5000)
        locked_at = time.monotonic()
        assert acquired(first) == [(0, 2, 1)]
        assert first.acquisition_lock_timeout == timedelta(milliseconds=GROUP_LOCK_MS)
        again, epoch = fetch_until_acquired(client, "locks", "b", 0, topic_id, within=40)
        assert acquired(again) == [(0, 2, 2)]
        assert 14 <= time.monotonic() - locked_at < 25

        # share.renew.acknowledge.enable=false: RENEW is refused; other types are not.
        configure(client, "locks", share_renew_acknowledge_enable="false")
        refused = acknowledge(client, "locks", "b", epoch, topic_id, ((0, 2, RENEW),))
        assert refused.error_code == ErrorCode.invalid_record_state
        assert refused.error_message == "Renewing acquisition locks is not enabled for the group."
        accepted = acknowledge(client, "locks", "b", epoch + 1, topic_id, ((0, 2, ACCEPT),))
        assert accepted.error_code == ErrorCode.none

        # share.delivery.count.limit, changed while the share partition is loaded: offset 0 is
        # delivered a third time under the broker's limit (5); once the group's limit is 2, a
        # record released after its second delivery is archived.
        configure(client, "limits", share_auto_offset_reset="earliest")
        _, topic_id = join(client, "limits", "m")
        epoch = 0
        for delivery in (1, 2, 3):
            got = share_fetch(client, "limits", "m", epoch, topic_id, wait_ms=5000, max_records=1)
            assert acquired(got) == [(0, 0, delivery)]
            ack = ACCEPT if delivery == 3 else RELEASE
            answer = acknowledge(client, "limits", "m", epoch + 1, topic_id, ((0, 0, ack),))
            assert answer.error_code == ErrorCode.none
            epoch += 2
        configure(client, "limits", share_delivery_count_limit="2")
        for delivery in (1, 2):
            got = share_fetch(client, "limits", "m", epoch, topic_id, wait_ms=5000, max_records=1)
            assert acquired(got) == [(1, 1, delivery)]
            released = acknowledge(client, "limits", "m", epoch + 1, topic_id, ((1, 1, RELEASE),))
            assert released.error_code == ErrorCode.none
            epoch += 2
        got = share_fetch(client, "limits", "m", epoch, topic_id, wait_ms=5000, max_records=1)
        assert acquired(got) == [(2, 2, 1)]  # offset 1 was archived, not delivered a third time
        start = offsets_of(describe_offsets(client, "limits", {TOPIC: (0,)}))[(TOPIC, 0)][0]
        assert start == 2

        # share.partition.max.record.locks: at most 100 records in flight for this group, the
        # broker's 2,000 for another.
        produce(broker.bootstrap, [str(n) for n in range(3, 303)])
        configure(client, "capped", share_auto_offset_reset="earliest")
        _, topic_id = join(client, "capped", "m")
        configure(client, "capped", share_partition_max_record_locks="100")
        assert acquired(share_fetch(client, "capped", "m", 0, topic_id, wait_ms=5000)) == [
            (0, 99, 1)
        ]
        configure(client, "uncapped", share_auto_offset_reset="earliest")
        _, topic_id = join(client, "uncapped", "m")
        assert acquired(share_fetch(client, "uncapped", "m", 0, topic_id, wait_ms=5000)) == [
            (0, 302, 1)
        ]


def test_read_committed_share_group(broker_factory) -> None:
    broker: BrokerProcess = broker_factory().start()
    bootstrap = broker.bootstrap
    create_topic(bootstrap, TOPIC)
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": "share-txn"})
    txn.init_transactions(30)
    txn.begin_transaction()
    for n in range(3):
        txn.produce(TOPIC, f"aborted-{n}".encode(), partition=0)
    txn.flush(30)
    txn.abort_transaction(30)
    txn.begin_transaction()
    for n in range(3):
        txn.produce(TOPIC, f"committed-{n}".encode(), partition=0)
    txn.commit_transaction(30)
    produce(bootstrap, ["plain-0"])
    txn.begin_transaction()  # left open: the last stable offset stays at its first record
    for n in range(2):
        txn.produce(TOPIC, f"open-{n}".encode(), partition=0)
    assert txn.flush(30) == 0
    produce(bootstrap, ["plain-1"])

    with RawClient(bootstrap) as client:
        configure(client, "uncommitted", share_auto_offset_reset="earliest")
        _, topic_id = join(client, "uncommitted", "m")
        everything, _ = collect(client, "uncommitted", topic_id, 10)
        assert sorted(everything) == sorted(
            [f"aborted-{n}" for n in range(3)]
            + [f"committed-{n}" for n in range(3)]
            + ["plain-0", "open-0", "open-1", "plain-1"]
        )

        configure(
            client, "committed",
            share_auto_offset_reset="earliest", share_isolation_level="read_committed",
        )  # fmt: skip
        _, topic_id = join(client, "committed", "m")
        first, epoch = collect(client, "committed", topic_id, 4)
        assert first == ["committed-0", "committed-1", "committed-2", "plain-0"]
        # Nothing past the open transaction, plain-1 included, until it commits.
        assert acquired(share_fetch(client, "committed", "m", epoch, topic_id, wait_ms=1000)) == []
        txn.commit_transaction(30)
        rest, epoch = collect(client, "committed", topic_id, 3, epoch + 1)
        assert rest == ["open-0", "open-1", "plain-1"]
        # Every record accepted, the aborted ones and the markers archived: the start offset
        # is the partition's end.
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
        _, end = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        consumer.close()

        def settled() -> bool:
            start, _, lag = offsets_of(describe_offsets(client, "committed"))[(TOPIC, 0)]
            return start == end and lag == 0

        wait_until(settled, 10, "the start offset at the end")


def collect(
    client: RawClient, group: str, topic_id: uuid.UUID, count: int, epoch: int = 0
) -> tuple[list[str], int]:
    """The values member "m" is handed until it has `count` (within 20 s), each fetch
    accepting what the one before acquired: (values, next share-session epoch). Transaction
    markers are written after EndTxn answers, so what is stable may come in steps."""
    values: list[str] = []
    acks: tuple[tuple[int, int], ...] = ()
    deadline = time.monotonic() + 20
    while len(values) < count and time.monotonic() < deadline:
        response = share_fetch(client, group, "m", epoch, topic_id, acks=acks, wait_ms=2000)
        epoch += 1
        values += delivered(response)
        acks = tuple((f, la) for f, la, _ in acquired(response))
    if acks:
        answer = acknowledge(
            client, group, "m", epoch, topic_id, tuple((f, la, ACCEPT) for f, la in acks)
        )
        assert answer.error_code == ErrorCode.none
        epoch += 1
    return values, epoch


def test_java_share_consumer_gets_held_records_back_after_the_groups_lock(broker_factory):
    classpath = share_classpath()
    broker = java_share_broker(broker_factory, BROKER_LOCK_MS)
    bootstrap = broker.bootstrap
    group = "java-locks"
    configured = CliRunner().invoke(
        app,
        [
            "configs", "alter", "--group", group, "--bootstrap-server", bootstrap,
            "--add-config",
            f"share.record.lock.duration.ms={GROUP_LOCK_MS},share.auto.offset.reset=earliest",
        ],
    )  # fmt: skip
    assert configured.exit_code == 0, configured.output
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for value in range(50):
        producer.produce(JAVA_TOPIC, str(value).encode(), partition=0)
    assert producer.flush(30) == 0
    members: list[ShareMember] = []
    try:
        holder = ShareMember("holder", bootstrap, classpath, "hold", group=group)
        members.append(holder)
        wait_until(holder.snapshot, 60, f"the holder's records ({holder.output[-5:]})")
        held_at = time.monotonic()
        held = {value for value, _, _ in holder.snapshot()}
        taker = ShareMember("taker", bootstrap, classpath, "accept", group=group)
        members.append(taker)

        def accepted() -> dict[int, int]:
            return {value: d for value, d, how in taker.snapshot() if how == "A"}

        wait_until(lambda: held <= set(accepted()), 40, f"the held records ({taker.output[-5:]})")
        elapsed = time.monotonic() - held_at
        assert 10 <= elapsed < 30, elapsed  # the group's 15 s lock, not the broker's 60 s
        assert all(accepted()[value] == 2 for value in held)
        taker.finish()
    finally:
        for member in members:
            member.kill()
