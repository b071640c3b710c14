"""The pure parts of `rafka produce` / `rafka consume`: Kafka's partitioner hash, the line reader,
the message formatter, the consumer protocol's encodings and range assignment, and decoding of
fetched batches (aborted transactions and control batches dropped)."""

from __future__ import annotations

import pytest
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from rafka.cli.console_client import FetchedPartition
from rafka.cli.console_consumer import Formatter
from rafka.cli.console_fetcher import Message, decode_messages
from rafka.cli.console_group import (
    decode_subscription,
    encode_assignment,
    encode_subscription,
    range_assign,
)
from rafka.cli.console_producer import LineFormat
from rafka.cli.console_records import InputError, murmur2
from rafka.cli.kafka_client import decode_assignment
from rafka.protocol.records import ControlRecordType, build_batch, build_control_batch


@pytest.mark.parametrize("key", [b"", b"a", b"ab", b"abc", b"21", b"foobar", b"k" * 37])
def test_murmur2_is_kafkas(key: bytes) -> None:
    assert murmur2(key) == kafka_python_murmur2(key)


def test_line_reader_splits_headers_key_and_value_as_kafka_does() -> None:
    fmt = LineFormat.from_properties({"parse.key": "true", "parse.headers": "true",
                                      "null.marker": "-"})
    assert fmt.parse(b"a:1,b:-\tk\tv\tw", 1) == (b"k", b"v\tw", [("a", b"1"), ("b", None)])
    assert fmt.parse(b"-\t-\t-", 2) == (None, None, [])
    with pytest.raises(InputError, match="No header key separator found in pair 'x'"):
        fmt.parse(b"x\tk\tv", 3)
    with pytest.raises(InputError, match="No key separator found on line number 4"):
        fmt.parse(b"a:1\tkv", 4)
    lenient = LineFormat.from_properties({"parse.key": "true", "ignore.error": "true"})
    assert lenient.parse(b"just a value", 5) == (None, b"just a value", [])
    with pytest.raises(InputError, match="may not be equal"):
        LineFormat.from_properties({"headers.separator": ":"})


def _message(**fields: object) -> Message:
    base = dict(topic="t", partition=2, offset=7, timestamp=5, timestamp_type="CreateTime",
                key=b"k", value=b"v", headers=(("h", b"1"), ("n", None)))
    return Message(**{**base, **fields})  # type: ignore[arg-type]


def test_formatter_prints_fields_in_kafkas_order() -> None:
    every = Formatter.from_properties({f"print.{f}": "true" for f in
                                       ("timestamp", "partition", "offset", "headers", "key")})
    assert every.format(_message()) == b"CreateTime:5\tPartition:2\tOffset:7\th:1,n:null\tk\tv\n"
    assert Formatter().format(_message(value=None)) == b"null\n"
    keyed = Formatter.from_properties({"print.key": "true", "key.separator": "=",
                                       "null.literal": "NULL", "print.headers": "true"})
    assert keyed.format(_message(key=None, headers=())) == b"NO_HEADERS=NULL=v\n"


def test_consumer_protocol_encodings_and_range_assignment() -> None:
    assert decode_subscription(encode_subscription(["a", "b"])) == ["a", "b"]
    assignment = encode_assignment([("b", 1), ("a", 0), ("b", 0)])
    assert decode_assignment(assignment) == [("a", 0), ("b", 0), ("b", 1)]
    assigned = range_assign({"m2": ["t"], "m1": ["t", "u"], "m3": ["t"]}, {"t": 7, "u": 2})
    assert assigned == {
        "m1": [("t", 0), ("t", 1), ("t", 2), ("u", 0), ("u", 1)],
        "m2": [("t", 3), ("t", 4)],
        "m3": [("t", 5), ("t", 6)],
    }


def test_fetched_batches_decode_from_the_position_and_skip_aborted_records() -> None:
    plain = build_batch([(b"k", b"a", (), 1), (None, b"b", (), 2)], base_offset=0)
    aborted = build_batch([(None, b"gone", (), 3)], base_offset=2, producer_id=9,
                          producer_epoch=0, is_transactional=True)
    marker = build_control_batch(ControlRecordType.ABORT, producer_id=9, producer_epoch=0,
                                 base_offset=3, timestamp=4)
    kept = build_batch([(None, b"c", (), 5)], base_offset=4, producer_id=9, producer_epoch=0,
                       is_transactional=True)
    data = plain + aborted + marker + kept + plain[:30]  # a batch cut short at the end
    part = FetchedPartition("t", 0, 0, 5, [(9, 2)], data)
    messages, end = decode_messages(part, 1, read_committed=True)
    assert [m.value for m in messages] == [b"b", b"c"] and end == 5
    messages, _ = decode_messages(part, 0, read_committed=False)
    assert [m.value for m in messages] == [b"a", b"b", b"gone", b"c"]
