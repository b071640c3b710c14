"""The record-level codec: the C extension and its pure-Python twin pass the same tests."""

from __future__ import annotations

import os
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rafka.protocol import record_codec, record_codec_py

IMPLEMENTATIONS = ["c", "python"]


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


def zigzag_varint(number: int) -> bytes:
    zigzag = (number << 1) ^ (number >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def raw_record(*fields: bytes) -> bytes:
    """A record from pre-encoded fields, prefixed with the correct length."""
    body = b"".join(fields)
    return zigzag_varint(len(body)) + body


nullable_bytes = st.none() | st.binary(max_size=64)
header_keys = st.text(max_size=16)
headers = st.lists(st.tuples(header_keys, nullable_bytes), max_size=4).map(tuple)
record_tuples = st.tuples(
    st.integers(-128, 127),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.integers(-(1 << 31), (1 << 31) - 1),
    nullable_bytes,
    nullable_bytes,
    headers,
)
record_lists = st.lists(record_tuples, max_size=8)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_known_record_encodes_to_known_bytes(impl: str) -> None:
    codec = load(impl)
    # length 8 | attributes 0 | timestamp 0 | offset 0 | key null | value "hi" | no headers
    expected = bytes.fromhex("10 00 00 00 01 04 6869 00")
    assert codec.encode_records([(0, 0, 0, None, b"hi", ())]) == expected
    assert codec.decode_records(expected, 1) == [(0, 0, 0, None, b"hi", ())]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_headers_and_negative_numbers_encode_as_zigzag(impl: str) -> None:
    codec = load(impl)
    record = (-1, -2, 3, b"", None, (("k", b"v"), ("n", None)))
    expected = raw_record(
        b"\xff",  # attributes -1
        zigzag_varint(-2),
        zigzag_varint(3),
        zigzag_varint(0),  # empty key
        zigzag_varint(-1),  # null value
        zigzag_varint(2),
        zigzag_varint(1) + b"k" + zigzag_varint(1) + b"v",
        zigzag_varint(1) + b"n" + zigzag_varint(-1),
    )
    assert codec.encode_records([record]) == expected
    assert codec.decode_records(expected, 1) == [record]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@given(records=record_lists)
def test_round_trip(impl: str, records: list[tuple]) -> None:
    codec = load(impl)
    data = codec.encode_records(records)
    assert codec.decode_records(data, len(records)) == records
    assert codec.decode_record_deltas(data, len(records)) == [(r[2], r[1]) for r in records]


@given(records=record_lists)
def test_both_implementations_encode_identically(records: list[tuple]) -> None:
    c_codec, py_codec = load("c"), load("python")
    data = py_codec.encode_records(records)
    assert c_codec.encode_records(records) == data
    assert c_codec.decode_records(data, len(records)) == py_codec.decode_records(data, len(records))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_accepts_any_bytes_like_input(impl: str) -> None:
    codec = load(impl)
    records = [(0, 1, 0, b"k", b"v", (("h", b"x"),)), (0, 2, 1, None, None, ())]
    data = codec.encode_records(records)
    for form in (bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        assert codec.decode_records(form, 2) == records


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_encode_accepts_lists_generators_and_buffers(impl: str) -> None:
    codec = load(impl)
    expected = codec.encode_records([(0, 0, 0, b"k", b"v", (("h", b"x"),))])
    generated = (r for r in [[0, 0, 0, bytearray(b"k"), memoryview(b"v"), [["h", b"x"]]]])
    assert codec.encode_records(generated) == expected
    assert codec.encode_records([(0, 0, 0, b"k", b"v", iter([("h", b"x")]))]) == expected


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_header_keys_that_are_not_utf8_round_trip_byte_for_byte(impl: str) -> None:
    codec = load(impl)
    data = raw_record(b"\x00\x00\x00\x01\x01\x02", zigzag_varint(2) + b"\xff\xfe" + b"\x01")
    [record] = codec.decode_records(data, 1)
    assert record[5] == (("\udcff\udcfe", None),)
    assert codec.encode_records([record]) == data


# -- malformed input ----------------------------------------------------------------------------

VALID = raw_record(b"\x00\x00\x00\x01\x04hi\x00")

MALFORMED = {
    "empty with a record expected": (b"", 1),
    "truncated": (VALID[:-1], 1),
    "trailing garbage": (VALID + b"\x00", 1),
    "count too high": (VALID + VALID, 3),
    "count too low": (VALID + VALID, 1),
    "negative count": (VALID, -1),
    "huge count": (VALID * 100, 1 << 40),
    "truncated length varint": (b"\x80", 1),
    "record length beyond buffer": (zigzag_varint(100) + VALID[1:], 1),
    "negative record length": (zigzag_varint(-1) + VALID[1:], 1),
    "record length too long for fields": (raw_record(b"\x00\x00\x00\x01\x04hi\x00\x00"), 1),
    "record length too short for fields": (zigzag_varint(7) + VALID[1:-1] + b"\x00", 1),
    "record without attributes": (raw_record(b""), 1),
    "truncated timestamp varlong": (raw_record(b"\x00\x80\x80"), 1),
    "varint longer than 5 bytes": (raw_record(b"\x00\x00\x80\x80\x80\x80\x80\x00\x01\x01\x00"), 1),
    "varint overflowing 32 bits": (raw_record(b"\x00\x00\x80\x80\x80\x80\x10\x01\x01\x00"), 1),
    "varlong longer than 10 bytes": (
        raw_record(b"\x00" + b"\x80" * 10 + b"\x00\x00\x01\x01\x00"),
        1,
    ),
    "varlong overflowing 64 bits": (raw_record(b"\x00" + b"\x80" * 9 + b"\x02\x00\x01\x01\x00"), 1),
    "key length beyond record": (raw_record(b"\x00\x00\x00" + zigzag_varint(50) + b"\x01\x00"), 1),
    "key length -2": (raw_record(b"\x00\x00\x00" + zigzag_varint(-2) + b"\x01\x00"), 1),
    "value length -5": (raw_record(b"\x00\x00\x00\x01" + zigzag_varint(-5) + b"\x00"), 1),
    "negative header count": (raw_record(b"\x00\x00\x00\x01\x01" + zigzag_varint(-1)), 1),
    "header count beyond record": (raw_record(b"\x00\x00\x00\x01\x01" + zigzag_varint(1000)), 1),
    "null header key": (raw_record(b"\x00\x00\x00\x01\x01\x02" + zigzag_varint(-1) + b"\x01"), 1),
    "header value beyond record": (
        raw_record(b"\x00\x00\x00\x01\x01\x02\x02k" + zigzag_varint(9) + b"x"),
        1,
    ),
}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_raises_value_error(impl: str, case: str) -> None:
    codec = load(impl)
    data, count = MALFORMED[case]
    with pytest.raises(ValueError):
        codec.decode_records(data, count)
    with pytest.raises(ValueError):
        codec.decode_record_deltas(data, count)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_largest_varints_decode(impl: str) -> None:
    codec = load(impl)
    record = (127, (1 << 63) - 1, -(1 << 31), None, None, ())
    data = codec.encode_records([record])
    # The 64-bit timestamp takes all 10 bytes and the 32-bit offset all 5.
    assert len(data) == 1 + 1 + 10 + 5 + 1 + 1 + 1
    assert codec.decode_records(data, 1) == [record]


BAD_RECORDS = [
    ([(128, 0, 0, None, None, ())], OverflowError),
    ([(0, 1 << 63, 0, None, None, ())], OverflowError),
    ([(0, 0, 1 << 31, None, None, ())], OverflowError),
    ([(0, 0, 0.5, None, None, ())], TypeError),
    ([(0, 0, 0, "text", None, ())], TypeError),
    ([(0, 0, 0, None, 5, ())], TypeError),
    ([(0, 0, 0, None, None, ((b"bytes-key", b"v"),))], TypeError),
    ([(0, 0, 0, None, None, (("k", "text"),))], TypeError),
    ([(0, 0, 0, None, None, (("k",),))], ValueError),
    ([(0, 0, 0, None, None)], ValueError),
    ([(0, 0, 0, None, None, 5)], TypeError),
    ([5], TypeError),
    (5, TypeError),
]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(("records", "error"), BAD_RECORDS)
def test_encode_rejects_bad_records(impl: str, records: object, error: type) -> None:
    codec = load(impl)
    with pytest.raises(error):
        codec.encode_records(records)


# -- fuzzing: mutated input never crashes, and both implementations agree ------------------------


def outcome(codec: ModuleType, data: bytes, count: int) -> object:
    try:
        return codec.decode_records(data, count), codec.decode_record_deltas(data, count)
    except ValueError:
        return "ValueError"


mutations = st.lists(
    st.tuples(
        st.sampled_from(["set", "insert", "delete"]), st.integers(0, 1 << 16), st.integers(0, 255)
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, byte in edits:
        if not out and kind != "insert":
            continue
        pos = where % (len(out) + 1 if kind == "insert" else len(out))
        if kind == "set":
            out[pos] = byte
        elif kind == "insert":
            out.insert(pos, byte)
        else:
            del out[pos]
    return bytes(out)


@given(
    records=st.lists(record_tuples, min_size=1, max_size=4),
    edits=mutations,
    extra=st.integers(-1, 1),
)
def test_mutated_records_raise_value_error_or_decode_the_same_in_both(
    records: list[tuple], edits: list[tuple[str, int, int]], extra: int
) -> None:
    c_codec, py_codec = load("c"), load("python")
    data = mutate(py_codec.encode_records(records), edits)
    count = len(records) + extra
    assert outcome(c_codec, data, count) == outcome(py_codec, data, count)


@given(data=st.binary(max_size=64), count=st.integers(0, 10))
def test_random_bytes_raise_value_error_or_decode_the_same_in_both(data: bytes, count: int) -> None:
    assert outcome(load("c"), data, count) == outcome(load("python"), data, count)


def test_record_codec_selects_an_implementation() -> None:
    expected = "python" if os.environ.get("RAFKA_PURE_PYTHON") == "1" else "c"
    if expected == "c" and not os.environ.get("CI"):
        try:
            from rafka.protocol import _record_codec  # noqa: F401
        except ImportError:
            expected = "python"
    assert record_codec.IMPLEMENTATION == expected
