"""A partition's voter set in its own log: the KRAFT_VOTERS control batches that a leader
appends when the voters change (a reassignment's steps) and a follower replicates, and the
history (rafka.storage.voter_sets) that tells the Raft replica the newest one."""

from __future__ import annotations

from pathlib import Path

import structlog

from rafka.protocol.records import (
    BatchHeader,
    ControlRecordType,
    CorruptRecordError,
    build_control_batch,
    decode_batch,
    read_batch_header,
)
from rafka.protocol.voters_record import decode_voters_record, encode_voters_record
from rafka.storage.log import PartitionLog
from rafka.storage.voter_sets import Voters, VoterSetHistory

log = structlog.get_logger(__name__)

NO_TIMESTAMP = -1


def build_voters_batch(base_offset: int, leader_epoch: int, voters: Voters) -> bytearray:
    # No timestamp, as LEADER_CHANGE: Raft bookkeeping must not answer ListOffsets by time.
    return bytearray(
        build_control_batch(
            ControlRecordType.KRAFT_VOTERS,
            base_offset=base_offset,
            partition_leader_epoch=leader_epoch,
            timestamp=NO_TIMESTAMP,
            value=encode_voters_record(voters),
        )
    )


def voters_in_batch(header: BatchHeader, data: bytes | memoryview) -> Voters | None:
    """The voters a KRAFT_VOTERS control batch names; None for any other batch."""
    if not header.is_control:
        return None
    _, records = decode_batch(data)
    if not records or records[0].key is None or len(records[0].key) < 4:
        return None
    kind = int.from_bytes(records[0].key[2:4], "big", signed=True)
    if kind != ControlRecordType.KRAFT_VOTERS or records[0].value is None:
        return None
    return decode_voters_record(records[0].value)


def load_voter_sets(directory: Path, partition_log: PartitionLog) -> VoterSetHistory:
    def holds_voters(offset: int) -> bool:
        if offset < partition_log.log_start_offset:
            return True  # its segment is gone (retention): the record was there, trust it
        try:
            data = partition_log.read(offset, 1)
            return bool(data) and voters_in_batch(read_batch_header(data), data) is not None
        except (CorruptRecordError, ValueError):
            return False

    def scan() -> list[tuple[int, Voters]]:
        log.warning("voters checkpoint unreadable: rebuilt from the log", directory=str(directory))
        found = []
        for header, data in partition_log.iter_batches(partition_log.log_start_offset):
            voters = voters_in_batch(header, data) if header.is_control else None
            if voters is not None:
                found.append((header.base_offset, voters))
        return found

    return VoterSetHistory.load(directory, partition_log.log_end_offset, holds_voters, scan)
