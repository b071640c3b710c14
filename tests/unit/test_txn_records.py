"""`__transaction_state` records in Kafka's TransactionLogKey/Value format."""

from __future__ import annotations

import struct

import pytest

from rafka.broker.coordinator.txn.metadata import TxnMetadata
from rafka.broker.coordinator.txn.records import (
    TxnLogValue,
    TxnRecordError,
    TxnState,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)


def test_key_is_version_zero_and_a_string() -> None:
    assert encode_key("tx") == b"\x00\x00\x00\x02tx"
    assert decode_key(encode_key("pipeline-ü")) == "pipeline-ü"
    with pytest.raises(TxnRecordError):
        decode_key(b"\x00\x01\x00\x02tx")


def test_v0_value_layout_matches_kafka() -> None:
    value = TxnLogValue(
        producer_id=7,
        producer_epoch=3,
        timeout_ms=60000,
        state=TxnState.ONGOING,
        partitions=(("a", (0, 2)),),
        last_update_timestamp=1000,
        start_timestamp=900,
    )
    expected = (
        struct.pack(">hqhib", 0, 7, 3, 60000, 1)
        + struct.pack(">i", 1)
        + struct.pack(">h", 1) + b"a"
        + struct.pack(">iii", 2, 0, 2)
        + struct.pack(">qq", 1000, 900)
    )
    assert encode_value(value) == expected
    assert decode_value(expected) == value


def test_empty_state_writes_null_partitions() -> None:
    value = TxnLogValue(1, 0, 1000, TxnState.EMPTY, (), 5, -1)
    data = encode_value(value)
    assert data[17:21] == struct.pack(">i", -1)
    assert decode_value(data) == value


def test_v1_roundtrip_with_tagged_fields() -> None:
    value = TxnLogValue(
        producer_id=9,
        producer_epoch=32766,
        timeout_ms=10,
        state=TxnState.PREPARE_COMMIT,
        partitions=(("t1", (1,)), ("t2", (0, 3))),
        last_update_timestamp=2,
        start_timestamp=1,
        previous_producer_id=8,
        next_producer_id=10,
        client_transaction_version=2,
    )
    data = encode_value(value)
    assert struct.unpack_from(">h", data)[0] == 1
    assert decode_value(data) == value
    # Defaults are not written as tags, and a v1 value without tags reads as the defaults.
    plain = TxnLogValue(9, 1, 10, TxnState.EMPTY, (), 2, -1)
    assert decode_value(encode_value(plain, version=1)) == plain
    assert encode_value(plain, version=1).endswith(b"\x00")


def test_unknown_tags_are_skipped_and_bad_values_refused() -> None:
    value = TxnLogValue(9, 1, 10, TxnState.COMPLETE_ABORT, (), 2, 1, client_transaction_version=2)
    data = encode_value(value)
    # Replace the tag section (one tag: 2) by two tags, one unknown.
    head = data[: -5]
    with_unknown = head + b"\x02" + b"\x02\x02\x00\x02" + b"\x07\x01\xff"
    assert decode_value(with_unknown) == value
    with pytest.raises(TxnRecordError):
        decode_value(data[:10])
    with pytest.raises(TxnRecordError):
        decode_value(struct.pack(">hqhib", 0, 1, 1, 1, 42) + b"\xff\xff\xff\xff" + b"\x00" * 16)
    with pytest.raises(TxnRecordError):
        decode_value(struct.pack(">hqhib", 5, 1, 1, 1, 1))


def test_metadata_roundtrip_through_the_value() -> None:
    txn = TxnMetadata(
        "tx",
        producer_id=5,
        producer_epoch=2,
        timeout_ms=3000,
        state=TxnState.ONGOING,
        partitions={("b", 1), ("a", 0), ("b", 0)},
        start_timestamp=10,
        last_update_timestamp=11,
    )
    value = txn.to_value()
    assert value.partitions == (("a", (0,)), ("b", (0, 1)))
    back = TxnMetadata.from_value("tx", decode_value(encode_value(value)))
    assert back == txn


def test_state_display_names_are_kafkas() -> None:
    assert [s.display_name for s in TxnState] == [
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
        "Dead",
        "PrepareEpochFence",
    ]
    assert TxnState.from_display_name("Ongoing") is TxnState.ONGOING
    assert TxnState.from_display_name("ongoing") is None
