"""Records of `__transaction_state` in Kafka's own format (TransactionLogKey/Value), so Kafka's
tools read our log and a cluster can move between rafka and Kafka.

    key    version i16 (= 0) | transactional_id string
    value  v0: version i16 | producer_id i64 | producer_epoch i16 | timeout_ms i32 | status i8 |
               partitions: nullable array of {topic string, partition_ids [i32]} |
               last_update_timestamp_ms i64 | start_timestamp_ms i64
           v1: the same in the flexible encoding (compact arrays and strings, tagged fields),
               with tags 0 previous_producer_id i64, 1 next_producer_id i64 (both default -1)
               and 2 client_transaction_version i16 (default 0)
A null value is a tombstone: the transactional id expired. Like Kafka, v1 is written for
transactions of clients using transaction version 2 (KIP-890), v0 otherwise; both are read.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from msgspec import Struct

from rafka.protocol.field_reader import FieldReader

KEY_VERSION = 0
VALUE_VERSION_V0 = 0
VALUE_VERSION_V1 = 1

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_HEAD = struct.Struct(">hqhib")  # version, producer id, epoch, timeout, status
_TIMESTAMPS = struct.Struct(">qq")
_TAG_PREVIOUS_PRODUCER_ID = 0
_TAG_NEXT_PRODUCER_ID = 1
_TAG_CLIENT_TRANSACTION_VERSION = 2


class TxnRecordError(ValueError):
    """A `__transaction_state` record this codec cannot read."""


class TxnState(IntEnum):
    """Kafka's TransactionState ids, as stored in TransactionLogValue.TransactionStatus."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def display_name(self) -> str:
        """The name DescribeTransactions/ListTransactions use (Kafka's stateName)."""
        return _DISPLAY_NAMES[self]

    @classmethod
    def from_display_name(cls, name: str) -> TxnState | None:
        return _BY_DISPLAY_NAME.get(name)


_DISPLAY_NAMES = {
    TxnState.EMPTY: "Empty",
    TxnState.ONGOING: "Ongoing",
    TxnState.PREPARE_COMMIT: "PrepareCommit",
    TxnState.PREPARE_ABORT: "PrepareAbort",
    TxnState.COMPLETE_COMMIT: "CompleteCommit",
    TxnState.COMPLETE_ABORT: "CompleteAbort",
    TxnState.DEAD: "Dead",
    TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
_BY_DISPLAY_NAME = {name: state for state, name in _DISPLAY_NAMES.items()}


class TxnLogValue(Struct, frozen=True):
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: tuple[tuple[str, tuple[int, ...]], ...]  # (topic, partition ids), sorted
    last_update_timestamp: int
    start_timestamp: int
    previous_producer_id: int = -1
    next_producer_id: int = -1
    client_transaction_version: int = 0


# -- encoding --------------------------------------------------------------------------------------


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(value: str, flexible: bool) -> bytes:
    raw = value.encode()
    return (_uvarint(len(raw) + 1) if flexible else _I16.pack(len(raw))) + raw


def encode_key(transactional_id: str) -> bytes:
    return _I16.pack(KEY_VERSION) + _string(transactional_id, flexible=False)


def encode_value(value: TxnLogValue, version: int | None = None) -> bytes:
    if version is None:
        version = VALUE_VERSION_V1 if value.client_transaction_version >= 2 else VALUE_VERSION_V0
    if version not in (VALUE_VERSION_V0, VALUE_VERSION_V1):
        raise ValueError(f"unknown TransactionLogValue version {version}")
    flexible = version >= VALUE_VERSION_V1
    out = bytearray(
        _HEAD.pack(version, value.producer_id, value.producer_epoch, value.timeout_ms, value.state)
    )
    partitions = value.partitions
    if value.state == TxnState.EMPTY and not partitions:
        out += b"\x00" if flexible else _I32.pack(-1)  # Kafka writes null for Empty
    else:
        out += _uvarint(len(partitions) + 1) if flexible else _I32.pack(len(partitions))
        for topic, ids in partitions:
            out += _string(topic, flexible)
            out += _uvarint(len(ids) + 1) if flexible else _I32.pack(len(ids))
            for partition in ids:
                out += _I32.pack(partition)
            if flexible:
                out += b"\x00"
    out += _TIMESTAMPS.pack(value.last_update_timestamp, value.start_timestamp)
    if flexible:
        tags = []
        if value.previous_producer_id != -1:
            tags.append((_TAG_PREVIOUS_PRODUCER_ID, _I64.pack(value.previous_producer_id)))
        if value.next_producer_id != -1:
            tags.append((_TAG_NEXT_PRODUCER_ID, _I64.pack(value.next_producer_id)))
        if value.client_transaction_version != 0:
            tags.append(
                (_TAG_CLIENT_TRANSACTION_VERSION, _I16.pack(value.client_transaction_version))
            )
        out += _uvarint(len(tags))
        for tag, data in tags:
            out += _uvarint(tag) + _uvarint(len(data)) + data
    return bytes(out)


# -- decoding --------------------------------------------------------------------------------------


class _Reader(FieldReader):
    def __init__(self, data: bytes | memoryview) -> None:
        super().__init__(data, TxnRecordError)

    def string(self, flexible: bool) -> str:
        length = self.uvarint() - 1 if flexible else self.unpack(_I16)[0]
        if length < 0:
            raise TxnRecordError("null where a string is required")
        try:
            return bytes(self.take(length)).decode()
        except UnicodeDecodeError as exc:
            raise TxnRecordError(f"bad string: {exc}") from None

    def array_length(self, flexible: bool) -> int:
        """-1 for null."""
        count = self.uvarint() - 1 if flexible else self.unpack(_I32)[0]
        if count > len(self.view) - self.pos:
            raise TxnRecordError("array longer than the record")
        return count


def decode_key(data: bytes | memoryview) -> str:
    r = _Reader(data)
    (version,) = r.unpack(_I16)
    if version != KEY_VERSION:
        raise TxnRecordError(f"unknown TransactionLogKey version {version}")
    return r.string(flexible=False)


def decode_value(data: bytes | memoryview) -> TxnLogValue:
    r = _Reader(data)
    version, producer_id, epoch, timeout_ms, status = r.unpack(_HEAD)
    if version not in (VALUE_VERSION_V0, VALUE_VERSION_V1):
        raise TxnRecordError(f"unknown TransactionLogValue version {version}")
    try:
        state = TxnState(status)
    except ValueError:
        raise TxnRecordError(f"unknown transaction status {status}") from None
    flexible = version >= VALUE_VERSION_V1
    partitions = []
    for _ in range(max(r.array_length(flexible), 0)):
        topic = r.string(flexible)
        ids = tuple(r.unpack(_I32)[0] for _ in range(max(r.array_length(flexible), 0)))
        if flexible:
            _skip_tags(r)
        partitions.append((topic, ids))
    last_update, start = r.unpack(_TIMESTAMPS)
    previous = next_id = -1
    client_version = 0
    if flexible:
        for _ in range(r.uvarint()):
            tag = r.uvarint()
            field = r.take(r.uvarint())
            if tag == _TAG_PREVIOUS_PRODUCER_ID and len(field) == 8:
                (previous,) = _I64.unpack(field)
            elif tag == _TAG_NEXT_PRODUCER_ID and len(field) == 8:
                (next_id,) = _I64.unpack(field)
            elif tag == _TAG_CLIENT_TRANSACTION_VERSION and len(field) == 2:
                (client_version,) = _I16.unpack(field)
    return TxnLogValue(
        producer_id,
        epoch,
        timeout_ms,
        state,
        tuple(partitions),
        last_update,
        start,
        previous,
        next_id,
        client_version,
    )


def _skip_tags(r: _Reader) -> None:
    for _ in range(r.uvarint()):
        r.uvarint()
        r.take(r.uvarint())
