"""Reading the fields of Kafka's internal records (the keys and values of __consumer_offsets,
__transaction_state and __share_group_state) and of responses decoded by hand: fixed-size
integers, unsigned varints and tagged fields, with a short buffer reported as the caller's
error type rather than a struct.error or an IndexError."""

from __future__ import annotations

import struct
import uuid

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class FieldReader:
    def __init__(self, data: bytes | memoryview, error: type[Exception] = ValueError) -> None:
        self.view = memoryview(data)
        self.pos = 0
        self.error = error

    def take(self, size: int) -> memoryview:
        end = self.pos + size
        if size < 0 or end > len(self.view):
            raise self.error("record truncated")
        chunk = self.view[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.take(fmt.size))

    def i16(self) -> int:
        return _I16.unpack(self.take(2))[0]

    def i32(self) -> int:
        return _I32.unpack(self.take(4))[0]

    def i64(self) -> int:
        return _I64.unpack(self.take(8))[0]

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(bytes=bytes(self.take(16)))

    def uvarint(self) -> int:
        result = 0
        for shift in range(0, 35, 7):
            byte = self.take(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
        raise self.error("varint too long")

    def tags(self) -> dict[int, memoryview]:
        """A flexible version's tagged fields, by tag."""
        found = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            found[tag] = self.take(self.uvarint())
        return found
