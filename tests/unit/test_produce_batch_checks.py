"""check_produce_batch: Kafka's order and codes for a produced batch's refusals. The request's
shape (magic 2, one batch) is refused without a log start offset; the batch's own fields (base
offset, record count, control flag), which Kafka's LogValidator checks, with it."""

from __future__ import annotations

import struct
import zlib

import pytest

from rafka.broker.partition.append import AppendError, check_produce_batch
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import build_batch

LOG_START = 40


def batch(**kwargs: object) -> bytes:
    return build_batch([(b"k", b"v", (), 1000), (b"k", b"w", (), 1001)], **kwargs)


def legacy_message() -> bytes:
    body = struct.pack(">bbqii", 1, 0, 1000, -1, 3) + b"old"
    message = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", 0, len(message)) + message


def refusal(records: bytes) -> tuple[ErrorCode, int]:
    with pytest.raises(AppendError) as refused:
        check_produce_batch(records, 1 << 20, LOG_START)
    return refused.value.code, refused.value.log_start_offset


def test_a_plain_batch_passes() -> None:
    _, pos, header = check_produce_batch(batch(), 1 << 20, LOG_START)
    assert (pos, header.records_count) == (0, 2)


def test_the_requests_shape_is_refused_without_a_log_start_offset() -> None:
    assert refusal(legacy_message()) == (ErrorCode.invalid_record, -1)
    assert refusal(batch() + batch()) == (ErrorCode.invalid_record, -1)
    assert refusal(b"") == (ErrorCode.invalid_record, -1)


def test_the_batchs_own_fields_are_refused_with_the_log_start_offset() -> None:
    assert refusal(batch(base_offset=7)) == (ErrorCode.invalid_record, LOG_START)
    assert refusal(batch(is_control=True)) == (ErrorCode.invalid_record, LOG_START)
