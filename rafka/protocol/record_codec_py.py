"""Records inside a v2 batch (after decompression), in pure Python: the readable twin of the C
module `_record_codec`. Both must behave identically; tests run the same cases against each.

Each record (integers are zigzag varints: "varint" fits 32 bits, "varlong" 64 bits):
    length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
    keyLength varint | key | valueLength varint | value |
    headersCount varint | [headerKeyLength varint | headerKey | headerValueLength varint | value]
A length of -1 means null (key, value, header value); a header key is never null. `length`
counts the bytes after itself and must match what the fields occupy.

A decoded record is the tuple
    (attributes, timestamp_delta, offset_delta, key, value, ((header_key, header_value), ...)).
Malformed input raises ValueError; nothing is allocated from a length before it is checked
against the bytes that remain. Header keys are UTF-8 decoded with "surrogateescape" (and encoded
the same way), so keys that are not valid UTF-8 (Java accepts them) survive a decode/encode
round trip byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import index

__all__ = ["decode_record_deltas", "decode_records", "encode_records"]

Header = tuple[str, bytes | None]
RecordTuple = tuple[int, int, int, bytes | None, bytes | None, tuple[Header, ...]]
Buffer = bytes | bytearray | memoryview

# The smallest record: length, attributes, timestamp, offset, key, value, header count.
MIN_RECORD_SIZE = 7
_INT8_MIN, _INT8_MAX = -(1 << 7), (1 << 7) - 1
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def decode_records(data: Buffer, count: int, /) -> list[RecordTuple]:
    """Decode exactly `count` records that fill `data` completely."""
    return _decode(data, count, materialize=True)  # type: ignore[return-value]


def decode_record_deltas(data: Buffer, count: int, /) -> list[tuple[int, int]]:
    """(offset_delta, timestamp_delta) of each record; validates as decode_records does but
    builds no keys, values or headers."""
    return _decode(data, count, materialize=False)  # type: ignore[return-value]


def encode_records(records: Iterable[Sequence[object]], /) -> bytes:
    """Encode record tuples (as decode_records returns them) back to bytes."""
    out = bytearray()
    for record in records:
        attributes, timestamp_delta, offset_delta, key, value, headers = record
        body = bytearray()
        body.append(_check_range(attributes, _INT8_MIN, _INT8_MAX, "attributes") & 0xFF)
        _write_varint(body, _check_range(timestamp_delta, _INT64_MIN, _INT64_MAX, "timestamp"))
        _write_varint(body, _check_range(offset_delta, _INT32_MIN, _INT32_MAX, "offset delta"))
        _write_nullable_bytes(body, key)
        _write_nullable_bytes(body, value)
        _write_headers(body, headers)
        _write_varint(out, _check_range(len(body), 0, _INT32_MAX, "record length"))
        out += body
    return bytes(out)


# -- decoding -------------------------------------------------------------------------------------


def _byte_view(data: Buffer) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _check_count(count: int, size: int) -> int:
    count = index(count)
    if count < 0:
        raise ValueError(f"negative record count {count}")
    if count > size // MIN_RECORD_SIZE:
        raise ValueError(f"{count} records cannot fit in {size} bytes")
    return count


def _decode(data: Buffer, count: int, materialize: bool) -> list[tuple]:
    view = _byte_view(data)
    end = len(view)
    count = _check_count(count, end)
    records = []
    pos = 0
    for _ in range(count):
        record, pos = _decode_record(view, pos, end, materialize)
        records.append(record)
    if pos != end:
        raise ValueError(f"{end - pos} trailing bytes after the last record")
    return records


def _decode_record(view: memoryview, pos: int, end: int, materialize: bool) -> tuple[tuple, int]:
    length, pos = _read_varint(view, pos, end, 32)
    if length < 0 or length > end - pos:
        raise ValueError(f"invalid record length {length}")
    record_end = pos + length
    if pos >= record_end:
        raise ValueError("record truncated before its attributes")
    attributes = view[pos] - 256 if view[pos] > _INT8_MAX else view[pos]
    pos += 1
    timestamp_delta, pos = _read_varint(view, pos, record_end, 64)
    offset_delta, pos = _read_varint(view, pos, record_end, 32)
    key, pos = _read_nullable_bytes(view, pos, record_end, "key", materialize)
    value, pos = _read_nullable_bytes(view, pos, record_end, "value", materialize)
    header_count, pos = _read_varint(view, pos, record_end, 32)
    # Each header takes at least two bytes (its two lengths).
    if header_count < 0 or header_count > (record_end - pos) // 2:
        raise ValueError(f"invalid header count {header_count}")
    headers = []
    for _ in range(header_count):
        key_length, pos = _read_varint(view, pos, record_end, 32)
        if key_length < 0 or key_length > record_end - pos:
            raise ValueError(f"invalid header key length {key_length}")
        header_key = view[pos : pos + key_length]
        pos += key_length
        header_value, pos = _read_nullable_bytes(view, pos, record_end, "header value", materialize)
        if materialize:
            headers.append((_decode_header_key(header_key), header_value))
    if pos != record_end:
        raise ValueError(f"record length {length} does not match its fields")
    if not materialize:
        return (offset_delta, timestamp_delta), pos
    record = (attributes, timestamp_delta, offset_delta, key, value, tuple(headers))
    return record, pos


def _decode_header_key(raw: memoryview) -> str:
    return bytes(raw).decode("utf-8", "surrogateescape")


def _read_nullable_bytes(
    view: memoryview, pos: int, end: int, what: str, materialize: bool
) -> tuple[bytes | None, int]:
    length, pos = _read_varint(view, pos, end, 32)
    if length == -1:
        return None, pos
    if length < 0 or length > end - pos:
        raise ValueError(f"invalid {what} length {length}")
    data = bytes(view[pos : pos + length]) if materialize else None
    return data, pos + length


def _read_varint(view: memoryview, pos: int, end: int, bits: int) -> tuple[int, int]:
    """A zigzag varint of at most `bits` bits; rejects truncation and overflow."""
    result = 0
    max_bytes = (bits + 6) // 7
    for shift in range(0, 7 * max_bytes, 7):
        if pos >= end:
            raise ValueError("truncated varint")
        byte = view[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        raise ValueError("varint too long")
    if result >> bits:
        raise ValueError("varint overflows its type")
    return (result >> 1) ^ -(result & 1), pos


# -- encoding -------------------------------------------------------------------------------------


def _check_range(number: object, low: int, high: int, what: str) -> int:
    number = index(number)  # type: ignore[arg-type]
    if not low <= number <= high:
        raise OverflowError(f"{what} {number} out of range")
    return number


def _write_varint(out: bytearray, number: int) -> None:
    """Zigzag varint; `number` is already known to fit 64 bits."""
    zigzag = (number << 1) ^ (number >> 63)
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)


def _write_nullable_bytes(out: bytearray, data: object) -> None:
    if data is None:
        _write_varint(out, -1)
        return
    view = memoryview(data)  # type: ignore[arg-type]
    _write_varint(out, _check_range(view.nbytes, 0, _INT32_MAX, "length"))
    out += view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _write_headers(out: bytearray, headers: Iterable[Sequence[object]]) -> None:
    headers = list(headers)
    _write_varint(out, _check_range(len(headers), 0, _INT32_MAX, "header count"))
    for header_key, header_value in headers:
        if not isinstance(header_key, str):
            raise TypeError(f"header key must be str, not {type(header_key).__name__}")
        encoded = header_key.encode("utf-8", "surrogateescape")
        _write_varint(out, _check_range(len(encoded), 0, _INT32_MAX, "header key length"))
        out += encoded
        _write_nullable_bytes(out, header_value)
