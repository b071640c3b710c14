"""Produce-path rules that need the records themselves, not only the batch header.

Most batches stay opaque (DESIGN principle 4). Records are decoded only when a topic config asks
for it, as Kafka's LogValidator does:
- a compacted topic (cleanup.policy contains compact) rejects records without a key
  (INVALID_RECORD), since compaction keeps the latest record per key. As in Kafka (KIP-467) the
  error lists each invalid record's index in the batch, so that clients fail only those records
  with INVALID_RECORD and the others of the batch with an error of their own;
- a CreateTime topic rejects records whose timestamp lies more than
  message.timestamp.before.max.ms before or message.timestamp.after.max.ms after the broker's
  clock (INVALID_TIMESTAMP, each such record listed). The header's max timestamp answers the
  default case (no lower bound) without decoding;
- compression.type other than "producer" recompresses a batch whose codec differs.
One check needs only a few bytes: LZ4 frames must have independent blocks, as Kafka requires
(its clients cannot read dependent-block frames), so the frame header's flag byte is checked.
"""

from __future__ import annotations

from msgspec import Struct

from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import (
    ATTR_COMPRESSION_MASK,
    HEADER_SIZE,
    BatchHeader,
    Compression,
    CorruptRecordError,
    build_batch,
    decode_batch,
    read_batch_header,
)
from rafka.storage.config import LogConfig

NO_TIMESTAMP = -1
LONG_MAX = 2**63 - 1
_LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"
_LZ4_BLOCK_INDEPENDENCE = 0x20

_CODECS = {
    "uncompressed": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}


class RecordError(Struct, frozen=True):
    """One invalid record: its index in the batch and why (Produce v8+'s record_errors)."""

    batch_index: int
    message: str


class RecordValidationError(ValueError):
    def __init__(
        self, code: ErrorCode, message: str, record_errors: tuple[RecordError, ...] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.record_errors = record_errors


def _rejected(errors: list[RecordError]) -> RecordValidationError:
    # Kafka's summary message, word for word: its clients show it for the partition.
    shown = ", ".join(
        f"RecordError(batchIndex={e.batch_index}, message='{e.message}')" for e in errors[:3]
    )
    return RecordValidationError(
        ErrorCode.invalid_record,
        f"One or more records have been rejected due to {len(errors)} record errors in total, "
        f"and only showing the first three errors at most: [{shown}]",
        tuple(errors),
    )


def target_codec(config: LogConfig) -> Compression | None:
    """The codec batches are stored with; None keeps the producer's."""
    return _CODECS.get(config.compression_type)


def compression_level(config: LogConfig, codec: Compression) -> int | None:
    if codec == Compression.GZIP:
        return None if config.compression_gzip_level == -1 else config.compression_gzip_level
    if codec == Compression.LZ4:
        return config.compression_lz4_level
    if codec == Compression.ZSTD:
        return config.compression_zstd_level
    return None


def validate_records(
    buf: bytearray,
    pos: int,
    header: BatchHeader,
    config: LogConfig,
    partition_name: str,
    now_ms: int,
) -> tuple[bytearray, BatchHeader] | None:
    """Check the batch at `pos` against the topic's configs; returns a rewritten batch (a new
    buffer holding only it) when it must be recompressed, None when the bytes stay as they are.
    Raises RecordValidationError with Kafka's error code."""
    if header.compression == Compression.LZ4:
        _check_lz4_frame(buf, pos + HEADER_SIZE)
    codec = target_codec(config)
    # Compared as ints: an unknown codec (5-7) must fail in decode_batch, not here.
    recompress = codec is not None and int(codec) != header.attributes & ATTR_COMPRESSION_MASK
    earliest, latest = _timestamp_bounds(config, now_ms)
    check_times = not config.log_append_time and (
        config.message_timestamp_before_max_ms < LONG_MAX or header.max_timestamp > latest
    )
    if not (config.compact_enabled or recompress or check_times):
        return None
    try:
        _, records = decode_batch(buf, pos)
    except CorruptRecordError as exc:
        raise RecordValidationError(ErrorCode.corrupt_message, str(exc)) from None
    if check_times:
        out_of_range = [
            RecordError(
                i,
                f"Timestamp {record.timestamp} of message with offset {record.offset} is out of "
                f"range. The timestamp should be within [{earliest}, {latest}]",
            )
            for i, record in enumerate(records)
            if record.timestamp != NO_TIMESTAMP and not earliest <= record.timestamp <= latest
        ]
        if out_of_range:
            raise RecordValidationError(
                ErrorCode.invalid_timestamp,
                "One or more records have been rejected due to invalid timestamp",
                tuple(out_of_range),
            )
    if config.compact_enabled:
        keyless = (
            f"Compacted topic cannot accept message without key in topic partition {partition_name}"
        )
        errors = [RecordError(i, keyless) for i, record in enumerate(records) if record.key is None]
        if errors:
            raise _rejected(errors)
    if not recompress:
        return None
    assert codec is not None
    rebuilt = bytearray(
        build_batch(
            records,
            base_offset=header.base_offset,
            compression=codec,
            compression_level=compression_level(config, codec),
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
            partition_leader_epoch=header.partition_leader_epoch,
            is_transactional=header.is_transactional,
            base_timestamp=header.base_timestamp,
            max_timestamp=header.max_timestamp,
            last_offset_delta=header.last_offset_delta,
        )
    )
    return rebuilt, read_batch_header(rebuilt, 0)


def _timestamp_bounds(config: LogConfig, now_ms: int) -> tuple[int, int]:
    """The CreateTime range a record may carry (the upper bound kept within an i64)."""
    earliest = now_ms - config.message_timestamp_before_max_ms
    latest = min(now_ms + config.message_timestamp_after_max_ms, LONG_MAX)
    return earliest, latest


def _check_lz4_frame(buf: bytearray, start: int) -> None:
    frame = buf[start : start + 5]
    if len(frame) < 5 or frame[:4] != _LZ4_FRAME_MAGIC:
        raise RecordValidationError(ErrorCode.corrupt_message, "LZ4 batch is not an LZ4 frame")
    if not frame[4] & _LZ4_BLOCK_INDEPENDENCE:
        raise RecordValidationError(
            ErrorCode.corrupt_message, "LZ4 frames with dependent blocks are not supported"
        )
