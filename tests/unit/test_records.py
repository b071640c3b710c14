"""Whole record batches: build/decode, interoperability with other clients, control batches."""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import aiokafka.record.default_records as aiokafka_records
import kafka.codec
import kafka.record.default_records as kafka_records
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.leader_change_message.v0.data import LeaderChangeMessage, Voter
from kio.serial import entity_writer
from kio.static.primitive import i16, i32

from rafka.protocol import record_codec, record_codec_py
from rafka.protocol.records import (
    ATTR_CONTROL,
    ATTR_DELETE_HORIZON,
    ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL,
    CRC_OFFSET,
    HEADER_SIZE,
    Compression,
    ControlRecordType,
    CorruptRecordError,
    LeaderChange,
    Record,
    build_batch,
    build_control_batch,
    compute_crc,
    crc_ok,
    decode_batch,
    encode_leader_change_message,
    parse_control_record_type,
    parse_leader_change_message,
    patch_base_offset,
    patch_leader_epoch,
    read_batch_header,
    record_timestamps_and_offsets,
    set_log_append_time,
)

IMPLEMENTATIONS = ["c", "python"]
CODECS = list(Compression)
KAFKA_PYTHON_CODECS = [
    c
    for c, available in [
        (Compression.NONE, True),
        (Compression.GZIP, kafka.codec.has_gzip()),
        (Compression.SNAPPY, kafka.codec.has_snappy()),
        (Compression.LZ4, kafka.codec.has_lz4()),
        (Compression.ZSTD, kafka.codec.has_zstd()),
    ]
    if available
]


def load(name: str) -> ModuleType:
    """The implementation called `name`; a missing C build fails under CI and skips elsewhere."""
    if name == "python":
        return record_codec_py
    try:
        from rafka.protocol import _record_codec
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the C record codec is not built: {exc}")
        pytest.skip("the C record codec is not built")
    return _record_codec


@contextmanager
def codec_in_use(name: str) -> Iterator[None]:
    """Make records.py use the implementation `name` (patched where records.py looks it up)."""
    impl = load(name)
    names = ("decode_records", "decode_record_deltas", "encode_records")
    saved = {n: getattr(record_codec, n) for n in names}
    for n in names:
        setattr(record_codec, n, getattr(impl, n))
    try:
        yield
    finally:
        for n, function in saved.items():
            setattr(record_codec, n, function)


def fix_crc(batch: bytearray) -> None:
    """Recompute the CRC of the one batch that fills `batch`, whatever its header says."""
    struct.pack_into(">I", batch, CRC_OFFSET, compute_crc(batch, 0, len(batch)))


def as_tuples(records: list[Record]) -> list[tuple]:
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in records]


nullable_bytes = st.none() | st.binary(max_size=40)
headers = st.lists(st.tuples(st.text(max_size=8), nullable_bytes), max_size=3).map(tuple)
timestamps = st.integers(0, 1 << 42)
input_records = st.lists(st.tuples(nullable_bytes, nullable_bytes, headers, timestamps), max_size=6)
SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)


# -- build and decode -----------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("compression", CODECS)
@SETTINGS
@given(records=input_records, base_offset=st.integers(0, 1 << 40))
def test_build_then_decode_round_trips(
    impl: str, compression: Compression, records: list[tuple], base_offset: int
) -> None:
    with codec_in_use(impl):
        batch = build_batch(records, base_offset=base_offset, compression=compression)
        header, decoded = decode_batch(batch)
        offsets_and_times = record_timestamps_and_offsets(batch)
    assert header.size == len(batch)
    assert header.compression == compression
    assert header.records_count == len(records)
    assert header.base_offset == base_offset
    expected = [
        (base_offset + i, timestamp, key, value, hdrs)
        for i, (key, value, hdrs, timestamp) in enumerate(records)
    ]
    assert as_tuples(decoded) == expected
    assert offsets_and_times == [(offset, ts) for offset, ts, *_ in expected]
    if records:
        assert header.last_offset_delta == len(records) - 1
        assert header.base_timestamp == records[0][3]
        assert header.max_timestamp == max(r[3] for r in records)


def test_header_fields_and_attributes_are_written() -> None:
    batch = build_batch(
        [(b"k", b"v", (), 1000)],
        base_offset=5,
        producer_id=42,
        producer_epoch=3,
        base_sequence=7,
        partition_leader_epoch=9,
        is_transactional=True,
        log_append_time=True,
        compression=Compression.ZSTD,
    )
    header = read_batch_header(batch)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 3, 7)
    assert header.partition_leader_epoch == 9
    assert header.attributes == Compression.ZSTD | ATTR_TRANSACTIONAL | ATTR_TIMESTAMP_TYPE
    assert header.batch_length == len(batch) - 12
    assert crc_ok(batch, 0, header)


def test_record_objects_keep_their_offsets_and_the_last_offset_can_be_kept() -> None:
    """What compaction needs: gaps in offsets, and the original lastOffsetDelta."""
    records = [
        Record(offset=101, timestamp=5, key=b"a", value=b"1", headers=(("h", None),)),
        Record(offset=104, timestamp=3, key=b"b", value=None),
    ]
    batch = build_batch(
        records, base_offset=100, last_offset_delta=9, delete_horizon_ms=77, producer_id=8
    )
    header, decoded = decode_batch(batch)
    assert header.last_offset_delta == 9
    assert header.records_count == 2
    assert header.attributes & ATTR_DELETE_HORIZON
    assert header.base_timestamp == 77
    assert decoded == records
    kafka_batch = kafka_records.DefaultRecordBatch(batch)
    assert [r.offset for r in kafka_batch] == [101, 104]


def test_offsets_that_do_not_increase_are_refused() -> None:
    with pytest.raises(ValueError):
        build_batch([Record(5, 0, None, None), Record(5, 0, None, None)], base_offset=0)
    with pytest.raises(ValueError):
        build_batch([Record(4, 0, None, None)], base_offset=5)


def test_an_empty_batch_keeps_the_given_last_offset() -> None:
    batch = build_batch([], base_offset=10, last_offset_delta=4, producer_id=1, base_sequence=0)
    header, records = decode_batch(batch)
    assert (header.records_count, header.last_offset_delta, records) == (0, 4, [])
    assert header.base_timestamp == header.max_timestamp == -1


def test_decode_at_a_position_inside_a_larger_buffer() -> None:
    first = build_batch([(b"a", b"1", (), 1)], base_offset=0)
    second = build_batch([(b"b", b"2", (), 2)], base_offset=1, compression=Compression.GZIP)
    log = memoryview(b"".join([first, second]))
    header, records = decode_batch(log, len(first))
    assert header.base_offset == 1
    assert as_tuples(records) == [(1, 2, b"b", b"2", ())]
    assert record_timestamps_and_offsets(log, len(first)) == [(1, 2)]


# -- interoperability with kafka-python and aiokafka -----------------------------------------------

INTEROP_RECORDS = [
    (b"key-0", b"value-0", (("trace", b"abc"), ("empty", b""), ("null", None)), 1_700_000_000_000),
    (None, b"no key", (), 1_700_000_000_005),
    (b"", None, (("h\u00e9", b"\x00\xff"),), 1_699_999_999_990),
    (b"big", bytes(range(256)) * 400, (), 1_700_000_000_010),
]


@pytest.mark.parametrize("compression", KAFKA_PYTHON_CODECS)
def test_kafka_python_reads_our_batches(compression: Compression) -> None:
    batch = build_batch(INTEROP_RECORDS, base_offset=1000, compression=compression)
    theirs = kafka_records.DefaultRecordBatch(batch)
    assert theirs.validate_crc()
    assert theirs.compression_type == compression
    decoded = [(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in theirs]
    expected = [(1000 + i, ts, k, v, h) for i, (k, v, h, ts) in enumerate(INTEROP_RECORDS)]
    assert decoded == expected


@pytest.mark.parametrize("compression", CODECS)
def test_aiokafka_reads_our_batches(compression: Compression) -> None:
    batch = build_batch(INTEROP_RECORDS, base_offset=1000, compression=compression)
    theirs = aiokafka_records.DefaultRecordBatch(batch)
    assert theirs.validate_crc()
    decoded = [(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in theirs]
    expected = [(1000 + i, ts, k, v, h) for i, (k, v, h, ts) in enumerate(INTEROP_RECORDS)]
    assert decoded == expected


def expected_from(records: list[tuple]) -> list[tuple]:
    return [(i, ts, k, v, h) for i, (k, v, h, ts) in enumerate(records)]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("compression", KAFKA_PYTHON_CODECS)
def test_we_read_kafka_python_batches(impl: str, compression: Compression) -> None:
    builder = kafka_records.DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=False,
        producer_id=77,
        producer_epoch=1,
        base_sequence=10,
        batch_size=1 << 20,
    )
    for offset, (key, value, hdrs, ts) in enumerate(INTEROP_RECORDS):
        builder.append(offset, ts, key, value, list(hdrs))
    batch = bytes(builder.build())
    with codec_in_use(impl):
        header, records = decode_batch(batch)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (77, 1, 10)
    assert as_tuples(records) == expected_from(INTEROP_RECORDS)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("compression", CODECS)
@SETTINGS
@given(records=input_records.filter(bool))
def test_we_read_aiokafka_batches(impl: str, compression: Compression, records: list) -> None:
    builder = aiokafka_records.DefaultRecordBatchBuilder(2, compression, 0, -1, -1, -1, 1 << 24)
    for offset, (key, value, hdrs, ts) in enumerate(records):
        builder.append(offset, ts, key, value, list(hdrs))
    with codec_in_use(impl):
        _, decoded = decode_batch(bytes(builder.build()))
    assert as_tuples(decoded) == expected_from(records)


# -- corruption -----------------------------------------------------------------------------------


def test_crc_mismatch_is_detected_anywhere_the_crc_covers() -> None:
    batch = build_batch(INTEROP_RECORDS, compression=Compression.LZ4)
    for pos in (21, 30, HEADER_SIZE, len(batch) - 1):
        corrupt = bytearray(batch)
        corrupt[pos] ^= 0x01
        with pytest.raises(CorruptRecordError, match="CRC"):
            decode_batch(corrupt)


def test_patching_offset_and_epoch_keeps_the_crc_valid() -> None:
    batch = bytearray(build_batch(INTEROP_RECORDS))
    patch_base_offset(batch, 0, 123456)
    patch_leader_epoch(batch, 0, 7)
    header, records = decode_batch(batch)
    assert (header.base_offset, header.partition_leader_epoch) == (123456, 7)
    assert records[0].offset == 123456


def test_truncated_batches_are_corrupt() -> None:
    batch = build_batch(INTEROP_RECORDS)
    for size in (0, 10, HEADER_SIZE - 1, HEADER_SIZE, len(batch) - 1):
        with pytest.raises(CorruptRecordError):
            decode_batch(batch[:size])
        with pytest.raises(CorruptRecordError):
            record_timestamps_and_offsets(batch[:size])


@pytest.mark.parametrize("codec_id", [5, 6, 7])
def test_unknown_compression_codecs_are_corrupt(codec_id: int) -> None:
    batch = bytearray(build_batch(INTEROP_RECORDS))
    struct.pack_into(">h", batch, 21, codec_id)
    fix_crc(batch)
    with pytest.raises(CorruptRecordError, match="codec"):
        decode_batch(batch)


def test_a_record_count_that_disagrees_with_the_records_is_corrupt() -> None:
    batch = bytearray(build_batch(INTEROP_RECORDS))
    struct.pack_into(">i", batch, 57, len(INTEROP_RECORDS) + 1)
    fix_crc(batch)
    with pytest.raises(CorruptRecordError):
        decode_batch(batch)


@pytest.mark.parametrize("compression", [c for c in CODECS if c != Compression.NONE])
def test_decompression_is_bounded_by_max_uncompressed(compression: Compression) -> None:
    batch = build_batch([(None, b"\x00" * 100_000, (), 0)], compression=compression)
    assert len(decode_batch(batch, max_uncompressed=200_000)[1][0].value) == 100_000
    with pytest.raises(CorruptRecordError):
        decode_batch(batch, max_uncompressed=50_000)
    with pytest.raises(CorruptRecordError):
        record_timestamps_and_offsets(batch, max_uncompressed=50_000)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("compression", CODECS)
@SETTINGS
@given(
    records=input_records.filter(bool),
    edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=3),
    cut=st.integers(0, 8),
)
def test_mutated_batches_raise_corrupt_record_error_and_never_crash(
    impl: str, compression: Compression, records: list, edits: list, cut: int
) -> None:
    """Mutations behind a recomputed CRC, so they reach the decompressor and the record parser."""
    batch = bytearray(build_batch(records, compression=compression))
    for where, byte in edits:
        pos = HEADER_SIZE + where % (len(batch) - HEADER_SIZE)
        batch[pos] = byte
    if cut:
        del batch[-cut:]
        struct.pack_into(">i", batch, 8, len(batch) - 12)
    fix_crc(batch)
    with codec_in_use(impl):
        for decode in (decode_batch, record_timestamps_and_offsets):
            try:
                decode(batch, 0, 1 << 20)
            except CorruptRecordError:
                pass


@SETTINGS
@given(data=st.binary(min_size=HEADER_SIZE, max_size=200))
def test_random_bytes_never_crash_the_batch_decoder(data: bytes) -> None:
    batch = bytearray(data)
    batch[16] = 2  # magic v2, so the header parser lets it through to the records
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    struct.pack_into(">h", batch, 21, batch[22] & 0x07)
    fix_crc(batch)
    try:
        decode_batch(batch, 0, 1 << 20)
    except CorruptRecordError:
        pass


# -- LogAppendTime --------------------------------------------------------------------------------


def test_set_log_append_time_updates_attribute_max_timestamp_and_crc() -> None:
    batch = bytearray(build_batch(INTEROP_RECORDS, compression=Compression.GZIP))
    before = read_batch_header(batch)
    after = set_log_append_time(batch, 0, before, 1_800_000_000_000)
    assert after == read_batch_header(batch)
    assert after.is_log_append_time
    assert after.max_timestamp == 1_800_000_000_000
    assert after.base_timestamp == before.base_timestamp  # records are not rewritten
    assert after.compression == Compression.GZIP
    assert crc_ok(batch, 0, after)
    _, records = decode_batch(batch)
    assert {r.timestamp for r in records} == {1_800_000_000_000}
    assert {ts for _, ts in record_timestamps_and_offsets(batch)} == {1_800_000_000_000}
    theirs = kafka_records.DefaultRecordBatch(bytes(batch))
    assert theirs.validate_crc()
    assert theirs.timestamp_type == 1
    assert {r.timestamp for r in theirs} == {1_800_000_000_000}


def test_set_log_append_time_at_a_position_in_a_buffer() -> None:
    first = build_batch([(b"a", b"1", (), 1)])
    buf = bytearray(first + build_batch([(b"b", b"2", (), 2)], base_offset=1))
    header = read_batch_header(buf, len(first))
    set_log_append_time(buf, len(first), header, 99)
    assert decode_batch(buf, 0)[0].max_timestamp == 1
    assert as_tuples(decode_batch(buf, len(first))[1]) == [(1, 99, b"b", b"2", ())]


# -- control batches ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [ControlRecordType.ABORT, ControlRecordType.COMMIT])
def test_transaction_markers(kind: ControlRecordType) -> None:
    batch = build_control_batch(
        kind,
        timestamp=1234,
        base_offset=50,
        producer_id=9,
        producer_epoch=2,
        coordinator_epoch=5,
        partition_leader_epoch=3,
    )
    header, [record] = decode_batch(batch)
    assert header.attributes == ATTR_CONTROL | ATTR_TRANSACTIONAL
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (9, 2, -1)
    assert record.key == struct.pack(">hh", 0, kind)
    assert record.value == struct.pack(">hi", 0, 5)  # EndTxnMarker: version, coordinatorEpoch
    assert parse_control_record_type(batch) == kind
    [theirs] = list(kafka_records.DefaultRecordBatch(batch))
    assert theirs.abort == (kind == ControlRecordType.ABORT)
    assert theirs.commit == (kind == ControlRecordType.COMMIT)


def test_leader_change_batch_matches_kafkas_schema() -> None:
    batch = build_control_batch(
        ControlRecordType.LEADER_CHANGE,
        timestamp=1,
        base_offset=3,
        partition_leader_epoch=4,
        leader_id=2,
        voters=[1, 2, 3],
        granting_voters=[2, 3],
    )
    header, [record] = decode_batch(batch)
    assert header.is_control and not header.is_transactional
    assert header.partition_leader_epoch == 4
    assert parse_control_record_type(batch) == ControlRecordType.LEADER_CHANGE
    expected = io.BytesIO()
    entity_writer(LeaderChangeMessage)(
        expected,
        LeaderChangeMessage(
            version=i16(0),
            leader_id=i32(2),
            voters=tuple(Voter(voter_id=i32(v)) for v in (1, 2, 3)),
            granting_voters=tuple(Voter(voter_id=i32(v)) for v in (2, 3)),
        ),
    )
    assert record.value == expected.getvalue()
    assert parse_leader_change_message(record.value) == LeaderChange(2, (1, 2, 3), (2, 3))


def test_leader_change_parser_skips_tagged_fields() -> None:
    value = bytearray(struct.pack(">hi", 0, 7))
    value += b"\x02" + struct.pack(">i", 7) + b"\x01\x05\x02ab"  # one voter with a tagged field
    value += b"\x01"  # no granting voters
    value += b"\x01\x00\x00"  # one empty tagged field
    assert parse_leader_change_message(value) == LeaderChange(7, (7,), ())


@pytest.mark.parametrize(
    "value",
    [
        b"",
        encode_leader_change_message(1, [1, 2])[:-1],
        encode_leader_change_message(1, [1]) + b"\x00",
        struct.pack(">hi", 0, 1) + b"\xff\xff\xff\xff\x0f",
    ],
)
def test_malformed_leader_change_messages_are_corrupt(value: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        parse_leader_change_message(value)


def test_parse_control_record_type_rejects_data_batches() -> None:
    with pytest.raises(CorruptRecordError):
        parse_control_record_type(build_batch([(b"k", b"v", (), 0)]))


def test_other_control_types_need_an_explicit_value() -> None:
    with pytest.raises(ValueError):
        build_control_batch(ControlRecordType.SNAPSHOT_HEADER, timestamp=0)
    batch = build_control_batch(ControlRecordType.SNAPSHOT_HEADER, timestamp=0, value=b"\x00")
    assert parse_control_record_type(batch) == ControlRecordType.SNAPSHOT_HEADER
