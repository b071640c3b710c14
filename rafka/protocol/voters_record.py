"""The value of a KRAFT_VOTERS control record (Kafka's VotersRecord, version 0): the voter set
of a Raft group, written in the group's own log when it changes (KIP-853).

    Version i16 | Voters: compact array of {VoterId i32 | VoterDirectoryId uuid |
      Endpoints: compact array of {Name, Host: compact strings | Port u16 | tagged} |
      KRaftVersionFeature: {MinSupportedVersion i16 | MaxSupportedVersion i16 | tagged} |
      tagged} | tagged

A partition's voters are reached through the brokers' registrations, so rafka writes no
endpoints. A voter without a directory id has the zero UUID, as in Kafka.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable

from rafka.protocol.frames import write_uvarint
from rafka.protocol.records import (
    CorruptRecordError,
    _read_unsigned_varint,
    _skip_tagged_fields,
)

VOTERS_RECORD_VERSION = 0
_VERSION = struct.Struct(">h")
_VOTER_ID = struct.Struct(">i")
_FEATURE = struct.Struct(">hh")
_PORT = struct.Struct(">H")
_ZERO_UUID = bytes(16)
# The kraft.version range a voter claims: 0..1, what Kafka 4 writes.
_KRAFT_VERSIONS = (0, 1)

Voters = tuple[tuple[int, str | None], ...]


def encode_voters_record(voters: Iterable[tuple[int, str | None]]) -> bytes:
    entries = sorted(voters, key=lambda voter: voter[0])
    out = bytearray(_VERSION.pack(VOTERS_RECORD_VERSION))
    write_uvarint(out, len(entries) + 1)
    for voter_id, directory_id in entries:
        out += _VOTER_ID.pack(voter_id)
        out += _directory_bytes(directory_id)
        write_uvarint(out, 1)  # no endpoints
        out += _FEATURE.pack(*_KRAFT_VERSIONS)
        out.append(0)  # KRaftVersionFeature's tagged fields
        out.append(0)  # the voter's tagged fields
    out.append(0)
    return bytes(out)


def decode_voters_record(value: bytes | bytearray | memoryview) -> Voters:
    """The voters, by id; CorruptRecordError if the value does not parse."""
    view = memoryview(value)
    if len(view) < _VERSION.size:
        raise CorruptRecordError("voters record too short")
    (version,) = _VERSION.unpack_from(view)
    if version != VOTERS_RECORD_VERSION:
        raise CorruptRecordError(f"unknown voters record version {version}")
    pos = _VERSION.size
    count, pos = _read_unsigned_varint(view, pos)
    # Each voter takes at least 25 bytes: a count past what the value holds is corrupt.
    if count - 1 > (len(view) - pos) // 25:
        raise CorruptRecordError("voters array longer than the record")
    voters = []
    for _ in range(count - 1):
        if len(view) - pos < _VOTER_ID.size + 16:
            raise CorruptRecordError("voters record truncated")
        (voter_id,) = _VOTER_ID.unpack_from(view, pos)
        directory = bytes(view[pos + 4 : pos + 20])
        pos += 20
        endpoints, pos = _read_unsigned_varint(view, pos)
        for _ in range(max(endpoints - 1, 0)):
            for _ in range(2):  # name, host
                length, pos = _read_unsigned_varint(view, pos)
                pos += max(length - 1, 0)
            pos = _skip_tagged_fields(view, pos + _PORT.size)
        pos = _skip_tagged_fields(view, pos + _FEATURE.size)
        pos = _skip_tagged_fields(view, pos)
        if pos > len(view):
            raise CorruptRecordError("voters record truncated")
        directory_id = None if directory == _ZERO_UUID else str(uuid.UUID(bytes=directory))
        voters.append((voter_id, directory_id))
    pos = _skip_tagged_fields(view, pos)
    if pos != len(view):
        raise CorruptRecordError("trailing bytes after voters record")
    return tuple(voters)


def _directory_bytes(directory_id: str | None) -> bytes:
    if directory_id is None:
        return _ZERO_UUID
    return uuid.UUID(directory_id).bytes
