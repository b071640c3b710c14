"""Produce-path record rules of rafka.broker.record_validation."""

from __future__ import annotations

import pytest

from rafka.broker.record_validation import RecordError, RecordValidationError, validate_records
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import (
    HEADER_SIZE,
    Compression,
    build_batch,
    decode_batch,
    read_batch_header,
)
from rafka.storage.config import LogConfig

NOW = 10_000  # the broker's clock; the batches below are stamped 1000 + i

def batch(records, compression: Compression = Compression.NONE) -> bytearray:
    return bytearray(
        build_batch(
            [(k, v, (("h", b"1"),), 1000 + i) for i, (k, v) in enumerate(records)],
            compression=compression,
            producer_id=5,
            producer_epoch=1,
            base_sequence=40,
        )
    )


def test_default_topics_leave_batches_alone() -> None:
    buf = batch([(None, b"v")], Compression.GZIP)
    assert validate_records(buf, 0, read_batch_header(buf), LogConfig(), "t-0", NOW) is None


def test_compacted_topic_rejects_records_without_key() -> None:
    config = LogConfig(cleanup_policy="compact")
    ok = batch([(b"k", b"v"), (b"k2", None)])
    assert validate_records(ok, 0, read_batch_header(ok), config, "t-0", NOW) is None
    bad = batch([(b"k", b"v"), (None, b"v"), (None, None)], Compression.GZIP)
    with pytest.raises(RecordValidationError) as raised:
        validate_records(bad, 0, read_batch_header(bad), config, "t-0", NOW)
    assert raised.value.code == ErrorCode.invalid_record
    # KIP-467: every keyless record by its index in the batch, with Kafka's wording.
    reason = "Compacted topic cannot accept message without key in topic partition t-0"
    assert raised.value.record_errors == (RecordError(1, reason), RecordError(2, reason))
    assert raised.value.message.startswith(
        "One or more records have been rejected due to 2 record errors in total, and only "
        f"showing the first three errors at most: [RecordError(batchIndex=1, message='{reason}')"
    )


def test_the_summary_shows_three_record_errors_at_most() -> None:
    config = LogConfig(cleanup_policy="compact,delete")
    bad = batch([(None, b"v")] * 5)
    with pytest.raises(RecordValidationError) as raised:
        validate_records(bad, 0, read_batch_header(bad), config, "t-0", NOW)
    assert [e.batch_index for e in raised.value.record_errors] == [0, 1, 2, 3, 4]
    assert "5 record errors in total" in raised.value.message
    assert raised.value.message.count("RecordError(") == 3


@pytest.mark.parametrize(
    ("topic_codec", "expected"),
    [("zstd", Compression.ZSTD), ("uncompressed", Compression.NONE), ("lz4", Compression.LZ4)],
)
def test_recompression_keeps_records_and_producer_fields(topic_codec, expected) -> None:
    buf = batch([(b"a", b"x" * 100), (b"b", b"y" * 100)], Compression.GZIP)
    header = read_batch_header(buf)
    out = validate_records(buf, 0, header, LogConfig(compression_type=topic_codec), "t-0", NOW)
    assert out is not None
    rebuilt, new_header = out
    assert new_header.compression == expected
    for field in ("producer_id", "producer_epoch", "base_sequence", "last_offset_delta",
                  "base_timestamp", "max_timestamp", "records_count"):  # fmt: skip
        assert getattr(new_header, field) == getattr(header, field), field
    assert [(r.key, r.value, r.timestamp, r.headers) for r in decode_batch(rebuilt)[1]] == [
        (r.key, r.value, r.timestamp, r.headers) for r in decode_batch(buf)[1]
    ]


def test_same_codec_is_not_recompressed() -> None:
    buf = batch([(b"a", b"x")], Compression.SNAPPY)
    config = LogConfig(compression_type="snappy")
    assert validate_records(buf, 0, read_batch_header(buf), config, "t-0", NOW) is None


def _lz4_batch() -> bytearray:
    return bytearray(build_batch([(b"k", b"v" * 100, (), 1)], compression=Compression.LZ4))


def test_lz4_frames_with_independent_blocks_pass() -> None:
    batch = _lz4_batch()
    assert validate_records(batch, 0, read_batch_header(batch), LogConfig(), "t-0", NOW) is None


def test_lz4_frames_with_dependent_blocks_are_refused_like_kafka() -> None:
    batch = _lz4_batch()
    batch[HEADER_SIZE + 4] &= ~0x20  # clear the block-independence flag
    with pytest.raises(RecordValidationError) as raised:
        validate_records(batch, 0, read_batch_header(batch), LogConfig(), "t-0", NOW)
    assert raised.value.code == ErrorCode.corrupt_message


def test_create_times_out_of_range_are_listed_as_invalid_timestamps() -> None:
    hour = 3_600_000
    records = [(b"k", b"ok"), (b"k", b"future"), (b"k", b"ok"), (b"k", b"future")]
    buf = bytearray(
        build_batch([(k, v, (), 1000 if v == b"ok" else 1000 + 2 * hour) for k, v in records])
    )
    with pytest.raises(RecordValidationError) as caught:
        validate_records(buf, 0, read_batch_header(buf), LogConfig(), "t-0", 1000)
    assert caught.value.code is ErrorCode.invalid_timestamp
    assert [e.batch_index for e in caught.value.record_errors] == [1, 3]
    assert "should be within [" in caught.value.record_errors[0].message
    # LogAppendTime topics stamp records themselves; a later clock lets them through.
    append_time = LogConfig(message_timestamp_type="LogAppendTime")
    assert validate_records(buf, 0, read_batch_header(buf), append_time, "t-0", 1000) is None
    assert validate_records(buf, 0, read_batch_header(buf), LogConfig(), "t-0", 2 * hour) is None
    # A lower bound is checked record by record.
    recent = LogConfig(message_timestamp_before_max_ms=500)
    with pytest.raises(RecordValidationError) as caught:
        validate_records(buf, 0, read_batch_header(buf), recent, "t-0", 2 * hour + 1000)
    assert [e.batch_index for e in caught.value.record_errors] == [0, 2]
