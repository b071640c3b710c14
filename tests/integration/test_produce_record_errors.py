"""Per-record produce errors (KIP-467): a batch rejected for some of its records names them, so
that clients fail only those with INVALID_RECORD and the rest of the batch with their own error.
Expected responses are Apache Kafka 4.3.1's for the same requests."""

from __future__ import annotations

import importlib
import time
from datetime import timedelta
from typing import Any

import pytest
from admin_support import INVALID_RECORD, QUIET, create_topic, read_all, watermarks
from confluent_kafka import KafkaError, Producer
from kafka import KafkaProducer
from kafka.errors import InvalidRecordError
from kafka.errors import KafkaError as KafkaPythonError
from raw_client import RawClient

from rafka.protocol.records import Compression, build_batch

pytestmark = pytest.mark.timeout(90)


def raw_produce(bootstrap: str, version: int, topic: str, records: bytes) -> Any:
    """The one partition response of a Produce request at `version`."""
    request = importlib.import_module(f"kio.schema.produce.v{version}.request")
    response = importlib.import_module(f"kio.schema.produce.v{version}.response")
    produce = request.ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout=timedelta(seconds=10),
        topic_data=(
            request.TopicProduceData(
                name=topic,
                partition_data=(request.PartitionProduceData(index=0, records=records),),
            ),
        ),
    )
    with RawClient(bootstrap) as client:
        answer = client.request(produce, response.ProduceResponse)
    ((partition,),) = [t.partition_responses for t in answer.responses]
    return partition


def batch(keys: list[bytes | None], compression: Compression = Compression.NONE) -> bytes:
    now = int(time.time() * 1000)
    return build_batch([(key, b"v", [], now) for key in keys], compression=compression)


def test_raw_produce_names_the_keyless_records(broker) -> None:
    create_topic(broker.bootstrap, "keyed", configs={"cleanup.policy": "compact"})
    reason = "Compacted topic cannot accept message without key in topic partition keyed-0"
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{reason}')" for i in (1, 3, 4))
    for version in (8, 9, 12):
        for compression in (Compression.NONE, Compression.LZ4):
            answer = raw_produce(
                broker.bootstrap,
                version,
                "keyed",
                batch([b"a", None, b"c", None, None], compression),
            )
            assert answer.error_code == INVALID_RECORD
            assert (answer.base_offset, answer.log_start_offset) == (-1, 0)
            assert [(e.batch_index, e.batch_index_error_message) for e in answer.record_errors] == [
                (1, reason),
                (3, reason),
                (4, reason),
            ]
            assert answer.error_message == (
                "One or more records have been rejected due to 3 record errors in total, and "
                f"only showing the first three errors at most: [{shown}]"
            )
    # Before v8 the response has no record errors: the partition's error alone.
    old = raw_produce(broker.bootstrap, 7, "keyed", batch([None, b"k"]))
    assert (old.error_code, old.base_offset, old.log_start_offset) == (INVALID_RECORD, -1, 0)
    # Nothing of the rejected batches was written; a valid one still is.
    assert raw_produce(broker.bootstrap, 9, "keyed", batch([b"k"])).base_offset == 0
    assert watermarks(broker.bootstrap, "keyed") == (0, 1)


def test_clients_fail_only_the_invalid_records(broker) -> None:
    create_topic(broker.bootstrap, "keyed", configs={"cleanup.policy": "compact"})
    keys = [b"a", None, b"c", None, b"e"]

    # librdkafka: one batch (linger), no retries.
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "linger.ms": 200, "retries": 0, **QUIET}
    )
    reports: dict[int, KafkaError | None] = {}
    for i, key in enumerate(keys):
        producer.produce(
            "keyed", b"v", key=key, partition=0,
            on_delivery=lambda err, _m, i=i: reports.__setitem__(i, err),
        )  # fmt: skip
    assert producer.flush(15) == 0
    codes = [reports[i].code() if reports[i] else None for i in range(len(keys))]
    different = KafkaError._INVALID_DIFFERENT_RECORD
    assert codes == [different, INVALID_RECORD, different, INVALID_RECORD, different]

    # kafka-python: the invalid records carry the broker's reason, the others a generic error.
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=200, retries=0)
    try:
        futures = [kp.send("keyed", value=b"v", key=key, partition=0) for key in keys]
        kp.flush(15)
        errors = [future.exception for future in futures]
    finally:
        kp.close()
    for key, error in zip(keys, errors, strict=True):
        if key is None:
            assert isinstance(error, InvalidRecordError)
            assert "Compacted topic cannot accept message without key" in str(error)
        else:
            assert type(error) is KafkaPythonError
            assert "part of a batch which had one more more invalid records" in str(error)

    # The same keyed records sent alone are written.
    producer.produce("keyed", b"v", key=b"a", partition=0)
    assert producer.flush(15) == 0
    assert [m.key() for m in read_all(broker.bootstrap, "keyed", 1)] == [b"a"]
