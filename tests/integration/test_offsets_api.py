"""ListOffsets and OffsetForLeaderEpoch against a real broker, with real clients and raw requests.

As on Kafka, a partition's first record is offset 0 and a restart burns no offset: a single node
writes no Raft leader-change batch.
"""

from __future__ import annotations

import datetime
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kio.schema.fetch.v12 import request as fetch_req
from kio.schema.fetch.v12.response import FetchResponse
from kio.schema.list_offsets.v7 import request as list_offsets_req
from kio.schema.list_offsets.v7.response import ListOffsetsResponse
from kio.schema.metadata.v12 import request as metadata_req
from kio.schema.metadata.v12.response import MetadataResponse
from kio.schema.offset_for_leader_epoch.v4 import request as ofle_req
from kio.schema.offset_for_leader_epoch.v4.response import OffsetForLeaderEpochResponse
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v9.response import ProduceResponse
from raw_client import RawClient

from rafka.protocol.records import Compression, build_batch, iter_batch_headers

pytestmark = pytest.mark.timeout(60)

UNKNOWN_TOPIC_OR_PARTITION = 3
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75  # Kafka: 75 (76 is UNSUPPORTED_COMPRESSION_TYPE)
QUIET = {"log_level": 3}  # librdkafka: errors only

# Timestamps half an hour ahead of now (within message.timestamp.after.max.ms, 1 h by
# default); the tests that need older timestamps say so.
BASE_TS = int(time.time() * 1000) + 1_800_000


def offset_for_leader_epoch(
    client: RawClient, topic: str, leader_epoch: int, current_leader_epoch: int = -1
) -> Any:
    request = ofle_req.OffsetForLeaderEpochRequest(
        replica_id=-1,
        topics=(
            ofle_req.OffsetForLeaderTopic(
                topic=topic,
                partitions=(
                    ofle_req.OffsetForLeaderPartition(
                        partition=0,
                        current_leader_epoch=current_leader_epoch,
                        leader_epoch=leader_epoch,
                    ),
                ),
            ),
        ),
    )
    response = client.request(request, OffsetForLeaderEpochResponse)
    (topic_result,) = response.topics
    (partition,) = topic_result.partitions
    return partition


def list_offsets_raw(
    client: RawClient, topic: str, timestamp: int, current_leader_epoch: int = -1
) -> Any:
    request = list_offsets_req.ListOffsetsRequest(
        replica_id=-1,
        isolation_level=0,
        topics=(
            list_offsets_req.ListOffsetsTopic(
                name=topic,
                partitions=(
                    list_offsets_req.ListOffsetsPartition(
                        partition_index=0,
                        current_leader_epoch=current_leader_epoch,
                        timestamp=timestamp,
                    ),
                ),
            ),
        ),
    )
    (topic_result,) = client.request(request, ListOffsetsResponse).topics
    (partition,) = topic_result.partitions
    return partition


def fetch_raw(client: RawClient, topic: str, fetch_offset: int, current_leader_epoch: int) -> Any:
    request = fetch_req.FetchRequest(
        replica_id=-1,
        max_wait=datetime.timedelta(milliseconds=0),
        min_bytes=0,
        topics=(
            fetch_req.FetchTopic(
                topic=topic,
                partitions=(
                    fetch_req.FetchPartition(
                        partition=0,
                        current_leader_epoch=current_leader_epoch,
                        fetch_offset=fetch_offset,
                        partition_max_bytes=1 << 20,
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
    )
    (topic_result,) = client.request(request, FetchResponse).responses
    (partition,) = topic_result.partitions
    return partition


def partition_leader_epoch(client: RawClient, topic: str) -> int:
    request = metadata_req.MetadataRequest(
        topics=(metadata_req.MetadataRequestTopic(topic_id=None, name=topic),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    (topic_meta,) = client.request(request, MetadataResponse).topics
    assert topic_meta.error_code == 0
    (partition,) = topic_meta.partitions
    return partition.leader_epoch


# -- client helpers ---------------------------------------------------------------------------


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=10)


def produce_one_batch(
    bootstrap: str, topic: str, timestamps: list[int], compression: str = "none"
) -> None:
    """Records with explicit CreateTime timestamps in exactly one batch (built here, since a
    client's linger can still split a batch)."""
    batch = build_batch(
        [(None, b"value-%d" % i, (), ts) for i, ts in enumerate(timestamps)],
        compression=Compression[compression.upper()],
    )
    request = ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout=timedelta(seconds=10),
        topic_data=(
            TopicProduceData(
                name=topic, partition_data=(PartitionProduceData(index=0, records=batch),)
            ),
        ),
    )
    client = RawClient(bootstrap)
    try:
        response = client.request(request, ProduceResponse)
    finally:
        client.close()
    [partition] = response.responses[0].partition_responses
    assert partition.error_code == 0


def produce_values(bootstrap: str, topic: str, count: int, prefix: str = "v") -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **QUIET})
    for i in range(count):
        producer.produce(topic, value=f"{prefix}{i}".encode(), partition=0)
    assert producer.flush(15) == 0


def batch_record_counts(data_dir: Path, topic: str) -> list[tuple[int, int, bool]]:
    """(base offset, record count, is control) of every batch on disk, in offset order."""
    found = []
    for segment in sorted((data_dir / f"{topic}-0").glob("*.log")):
        data = segment.read_bytes()
        for _, header in iter_batch_headers(data):
            found.append((header.base_offset, header.records_count, header.is_control))
    return found


def make_consumer(bootstrap: str, **config: Any) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-manual-assignment",
            "enable.auto.commit": False,
            **QUIET,
            **config,
        }
    )


def offset_for_time(consumer: Consumer, topic: str, timestamp: int) -> int:
    (result,) = consumer.offsets_for_times([TopicPartition(topic, 0, timestamp)], timeout=10)
    assert result.error is None
    return result.offset


# Batch A: ten records, one batch, timestamps rising by 10 except a peak at index 5.
BATCH_A = [BASE_TS + d for d in (0, 10, 20, 30, 40, 500, 60, 70, 80, 90)]
# Batch B: three records whose timestamps are lower than batch A's largest.
BATCH_B = [BASE_TS + d for d in (50, 51, 52)]
# Offsets: batch A at 0..9 (peak at 5); batch B at 10..12; end offset 13.


def produce_batches_a_and_b(broker: Any, topic: str, compression: str = "none") -> None:
    create_topic(broker.bootstrap, topic)
    produce_one_batch(broker.bootstrap, topic, BATCH_A, compression)
    produce_one_batch(broker.bootstrap, topic, BATCH_B, compression)
    assert batch_record_counts(broker.data_dir, topic) == [
        (0, 10, False),
        (10, 3, False),
    ]


# -- ListOffsets ------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_confluent_offsets_for_times_and_watermarks(broker, compression: str) -> None:
    produce_batches_a_and_b(broker, "times", compression)
    consumer = make_consumer(broker.bootstrap)
    try:
        assert consumer.get_watermark_offsets(TopicPartition("times", 0), timeout=10) == (0, 13)
        assert offset_for_time(consumer, "times", BASE_TS - 60_000) == 0
        assert offset_for_time(consumer, "times", BASE_TS) == 0
        assert offset_for_time(consumer, "times", BASE_TS + 1) == 1
        # In the middle of batch A: the first record at or after the target, not the batch base.
        assert offset_for_time(consumer, "times", BASE_TS + 35) == 4
        # The first record in log order with timestamp >= target is the peak, not batch B.
        assert offset_for_time(consumer, "times", BASE_TS + 45) == 5
        assert offset_for_time(consumer, "times", BASE_TS + 500) == 5
        # Beyond every record: no offset.
        assert offset_for_time(consumer, "times", BASE_TS + 501) == -1
    finally:
        consumer.close()


def test_kafka_python_beginning_end_and_times(broker) -> None:
    produce_batches_a_and_b(broker, "kp-times")
    tp = KafkaTopicPartition("kp-times", 0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: 13}
        found = consumer.offsets_for_times({tp: BASE_TS + 35})[tp]
        assert (found.offset, found.timestamp) == (4, BASE_TS + 40)
        assert found.leader_epoch == 1
        found = consumer.offsets_for_times({tp: BASE_TS + 90})[tp]
        assert (found.offset, found.timestamp) == (5, BASE_TS + 500)
        assert consumer.offsets_for_times({tp: BASE_TS + 501}) == {tp: None}
    finally:
        consumer.close()


def _admin_list_offset(admin: AdminClient, topic: str, spec: OffsetSpec) -> Any:
    futures = admin.list_offsets({TopicPartition(topic, 0): spec}, request_timeout=10)
    (future,) = futures.values()
    return future.result(timeout=15)


def test_admin_list_offsets_specs_including_max_timestamp(broker) -> None:
    produce_batches_a_and_b(broker, "admin-times")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    assert _admin_list_offset(admin, "admin-times", OffsetSpec.earliest()).offset == 0
    assert _admin_list_offset(admin, "admin-times", OffsetSpec.latest()).offset == 13
    # KIP-734: the record with the largest timestamp, found inside a batch (not its last record).
    peak = _admin_list_offset(admin, "admin-times", OffsetSpec.max_timestamp())
    assert (peak.offset, peak.timestamp) == (5, BASE_TS + 500)
    at = _admin_list_offset(admin, "admin-times", OffsetSpec.for_timestamp(BASE_TS + 35))
    assert (at.offset, at.timestamp) == (4, BASE_TS + 40)
    beyond = _admin_list_offset(admin, "admin-times", OffsetSpec.for_timestamp(BASE_TS + 501))
    assert beyond.offset == -1


def test_list_offsets_empty_topic(broker) -> None:
    create_topic(broker.bootstrap, "empty")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    assert _admin_list_offset(admin, "empty", OffsetSpec.earliest()).offset == 0
    # The leader's election took no offset.
    assert _admin_list_offset(admin, "empty", OffsetSpec.latest()).offset == 0
    with RawClient(broker.bootstrap) as client:
        result = list_offsets_raw(client, "empty", BASE_TS)
        assert (result.error_code, result.offset, result.timestamp) == (0, -1, -1)


def test_offsets_for_times_finds_create_times_older_than_the_election(broker) -> None:
    """Records whose CreateTime is older than the partition's leader election (replayed or
    backfilled data) are still found by timestamp."""
    create_topic(broker.bootstrap, "old-times")
    old = 1_000_000_000_000  # 2001
    produce_one_batch(broker.bootstrap, "old-times", [old + 10 * i for i in range(10)])
    consumer = make_consumer(broker.bootstrap)
    try:
        assert offset_for_time(consumer, "old-times", old + 35) == 4
        assert offset_for_time(consumer, "old-times", old + 91) == -1
    finally:
        consumer.close()


def test_max_timestamp_after_restart_is_a_data_record(broker) -> None:
    """Records stamped now, then a restart: the answer is still the record with the largest
    timestamp. Clients are made per call so none outlives the test."""
    create_topic(broker.bootstrap, "max-restart")
    now = int(time.time() * 1000)
    produce_one_batch(broker.bootstrap, "max-restart", [now, now + 2, now + 1])
    broker.stop()
    broker.start()
    peak = _admin_list_offset(
        AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET}),
        "max-restart",
        OffsetSpec.max_timestamp(),
    )
    assert (peak.offset, peak.timestamp) == (1, now + 2)


# -- OffsetForLeaderEpoch and leader-epoch fencing -------------------------------------------


def test_offset_for_leader_epoch_across_restart(broker) -> None:
    create_topic(broker.bootstrap, "epochs")
    produce_values(broker.bootstrap, "epochs", 5)  # offsets 0..4
    with RawClient(broker.bootstrap) as client:
        first_epoch = partition_leader_epoch(client, "epochs")
        current = offset_for_leader_epoch(client, "epochs", first_epoch, first_epoch)
        assert (current.error_code, current.leader_epoch, current.end_offset) == (
            0,
            first_epoch,
            5,
        )

    broker.stop()
    broker.start()  # same data dir and port; the partition's leader epoch goes up
    with RawClient(broker.bootstrap) as client:
        epoch = partition_leader_epoch(client, "epochs")
        assert epoch > first_epoch
        # The new epoch has no batch yet; as on Kafka it starts at the log end.
        empty = offset_for_leader_epoch(client, "epochs", epoch, epoch)
        assert (empty.error_code, empty.leader_epoch, empty.end_offset) == (0, epoch, 5)
        between = offset_for_leader_epoch(client, "epochs", epoch - 1, epoch)
        assert (between.leader_epoch, between.end_offset) == (first_epoch, 5)
    produce_values(broker.bootstrap, "epochs", 3, prefix="after")  # 5..7
    with RawClient(broker.bootstrap) as client:
        latest = offset_for_leader_epoch(client, "epochs", epoch, epoch)
        assert (latest.error_code, latest.leader_epoch, latest.end_offset) == (0, epoch, 8)
        # The old epoch ended where the new epoch's first batch began.
        older = offset_for_leader_epoch(client, "epochs", first_epoch, epoch)
        assert (older.error_code, older.leader_epoch, older.end_offset) == (0, first_epoch, 5)
        # Unfenced request (current -1) answers too.
        unfenced = offset_for_leader_epoch(client, "epochs", first_epoch)
        assert (unfenced.error_code, unfenced.end_offset) == (0, 5)
        # An epoch above every known one is undefined, without an error.
        future = offset_for_leader_epoch(client, "epochs", epoch + 5)
        assert (future.error_code, future.leader_epoch, future.end_offset) == (0, -1, -1)

        stale = offset_for_leader_epoch(client, "epochs", first_epoch, first_epoch)
        assert stale.error_code == FENCED_LEADER_EPOCH
        ahead = offset_for_leader_epoch(client, "epochs", epoch, epoch + 1)
        assert ahead.error_code == UNKNOWN_LEADER_EPOCH

        # Fetch and ListOffsets fence the same way.
        assert fetch_raw(client, "epochs", 1, first_epoch).error_code == FENCED_LEADER_EPOCH
        assert fetch_raw(client, "epochs", 1, epoch + 1).error_code == UNKNOWN_LEADER_EPOCH
        fresh = fetch_raw(client, "epochs", 1, epoch)
        assert (fresh.error_code, fresh.high_watermark) == (0, 8)
        assert len(fresh.records) > 0
        stale_list = list_offsets_raw(client, "epochs", -1, first_epoch)
        assert stale_list.error_code == FENCED_LEADER_EPOCH
        assert list_offsets_raw(client, "epochs", -1, epoch + 1).error_code == UNKNOWN_LEADER_EPOCH
        ok = list_offsets_raw(client, "epochs", -1, epoch)
        assert (ok.error_code, ok.offset, ok.leader_epoch) == (0, 8, epoch)


def test_unknown_topic_answers_unknown_topic_or_partition(broker) -> None:
    with RawClient(broker.bootstrap) as client:
        assert list_offsets_raw(client, "missing", -1).error_code == UNKNOWN_TOPIC_OR_PARTITION
        result = offset_for_leader_epoch(client, "missing", 1)
        assert result.error_code == UNKNOWN_TOPIC_OR_PARTITION
        assert fetch_raw(client, "missing", 0, -1).error_code == UNKNOWN_TOPIC_OR_PARTITION


def test_consumer_keeps_position_across_restart(broker) -> None:
    """librdkafka validates its position with OffsetForLeaderEpoch when the leader epoch moves."""
    create_topic(broker.bootstrap, "resume")
    produce_values(broker.bootstrap, "resume", 5)
    consumer = make_consumer(broker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        consumer.assign([TopicPartition("resume", 0, 0)])
        before = _consume(consumer, 5)
        assert [m.offset() for m in before] == [0, 1, 2, 3, 4]
        broker.stop()
        broker.start()
        produce_values(broker.bootstrap, "resume", 3, prefix="after")
        after = _consume(consumer, 3)
        assert [m.value() for m in after] == [b"after0", b"after1", b"after2"]
        assert [m.offset() for m in after] == [5, 6, 7]
        assert after[0].leader_epoch() > before[0].leader_epoch()
    finally:
        consumer.close()


def _consume(consumer: Consumer, count: int, timeout: float = 20.0) -> list[Any]:
    messages = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            assert error.code() == KafkaError._PARTITION_EOF or not error.fatal(), error
            assert error.code() != KafkaError._AUTO_OFFSET_RESET, error
            continue
        messages.append(message)
    assert len(messages) == count, f"got {len(messages)} of {count} messages"
    return messages
