"""What an append to a partition answers (AppendResult, or AppendError carrying Kafka's error
code), and the checks a client's produce batch passes before the leader appends it.

The batch stays opaque: only the 61-byte header and the CRC are read here; the topic's record
rules (record_validation) decode records only when a config asks for it.
"""

from __future__ import annotations

from msgspec import Struct

from rafka.broker.record_validation import RecordError, RecordValidationError, validate_records
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import (
    BatchHeader,
    CorruptRecordError,
    UnsupportedMagicError,
    crc_ok,
    iter_batch_headers,
)
from rafka.storage.config import LogConfig


class AppendError(Exception):
    def __init__(
        self,
        code: ErrorCode,
        message: str,
        record_errors: tuple[RecordError, ...] = (),
        log_start_offset: int = -1,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.record_errors = record_errors  # the invalid records of the batch (KIP-467)
        self.log_start_offset = log_start_offset


class AppendResult(Struct, frozen=True):
    """Where an appended batch landed, as ProduceResponse reports it."""

    base_offset: int
    last_offset: int
    log_append_time: int  # -1 unless the topic uses LogAppendTime
    log_start_offset: int
    duplicate: bool = False


def check_produce_batch(
    records: bytes, max_message_bytes: int, log_start_offset: int = -1
) -> tuple[bytearray, int, BatchHeader]:
    """The batch of one produce request for one partition, as a mutable buffer, its position
    and its header, once its header and CRC hold; raises AppendError otherwise.

    As Kafka: the request's shape (one batch, magic 2), its size and CRC are checked first and
    refused without a log start offset; the batch's own fields (base offset, record count,
    control flag) are its LogValidator's checks, whose refusals carry `log_start_offset`."""
    buf = bytearray(records)
    try:
        batches = list(iter_batch_headers(buf))
    except UnsupportedMagicError as exc:
        # Produce v3+ may only carry magic 2 batches (Kafka's ProduceRequest.validateRecords).
        raise AppendError(ErrorCode.invalid_record, str(exc)) from None
    except CorruptRecordError as exc:
        raise AppendError(ErrorCode.corrupt_message, str(exc)) from None
    if len(batches) != 1:
        # Produce v3+ carries exactly one batch per partition, as Kafka enforces.
        raise AppendError(ErrorCode.invalid_record, "a produce request must hold exactly one batch")
    pos, header = batches[0]
    if header.size > max_message_bytes:
        raise AppendError(
            ErrorCode.message_too_large,
            f"batch of {header.size} bytes exceeds max.message.bytes {max_message_bytes}",
        )
    if not crc_ok(buf, pos, header):
        raise AppendError(ErrorCode.corrupt_message, "record batch CRC mismatch")
    if header.base_offset != 0:
        raise AppendError(
            ErrorCode.invalid_record,
            f"the base offset of a produced batch must be 0, not {header.base_offset}",
            log_start_offset=log_start_offset,
        )
    if header.records_count == 0 or header.records_count != header.last_offset_delta + 1:
        raise AppendError(
            ErrorCode.invalid_record,
            "batch record count mismatch",
            log_start_offset=log_start_offset,
        )
    if header.is_control:
        raise AppendError(
            ErrorCode.invalid_record,
            "clients may not produce control batches",
            log_start_offset=log_start_offset,
        )
    return buf, pos, header


def validate_produce_records(
    buf: bytearray,
    pos: int,
    header: BatchHeader,
    config: LogConfig,
    *,
    partition_name: str,
    max_message_bytes: int,
    log_start_offset: int,
    now_ms: int,
) -> tuple[bytearray, int, BatchHeader]:
    """Apply the topic's record rules to the batch; returns it, or the recompressed batch (at
    position 0 of a new buffer) when the topic's compression.type asks for another codec."""
    try:
        rewritten = validate_records(buf, pos, header, config, partition_name, now_ms)
    except RecordValidationError as exc:
        # Kafka answers a rejection of some records with the log start offset too.
        start = log_start_offset if exc.record_errors else -1
        raise AppendError(exc.code, exc.message, exc.record_errors, start) from None
    if rewritten is None:
        return buf, pos, header
    buf, header = rewritten  # recompressed to the topic's compression.type
    if header.size > max_message_bytes:
        raise AppendError(
            ErrorCode.message_too_large,
            f"recompressed batch of {header.size} bytes exceeds max.message.bytes "
            f"{max_message_bytes}",
        )
    return buf, 0, header
