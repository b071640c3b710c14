"""A follower's copy of its leader's log: the batches it fetched appended as they came (offsets
and epochs already assigned), a diverging suffix cut; the producer state and the
aborted-transaction index follow either way, so that the follower can take over as leader with
idempotence and transactions intact. The replica decides when (Raft's AppendRecords and
TruncateLog actions) and reports the new log end to Raft.
"""

from __future__ import annotations

import structlog

from rafka.broker.partition.clock import now_ms
from rafka.broker.partition.voters import voters_in_batch
from rafka.protocol.records import (
    CorruptRecordError,
    UnsupportedMagicError,
    crc_ok,
    iter_batch_headers,
)
from rafka.storage.log import PartitionLog
from rafka.storage.producer_state import ProducerStateManager
from rafka.storage.txn_index import TransactionIndex, replay_batch, replay_into
from rafka.storage.voter_sets import VoterSetHistory

log = structlog.get_logger(__name__)


def append_fetched(
    log_: PartitionLog,
    producers: ProducerStateManager,
    txn_index: TransactionIndex,
    records: bytes,
    partition_name: str,
    voter_sets: VoterSetHistory | None = None,
) -> bool:
    """Append what a follower fetched from the leader, batch by batch, up to the first batch
    that does not fit the log end or fails its CRC, replaying each into the producer state;
    a voters record goes into `voter_sets` (durably) before the log holds it. False when the
    records do not parse at all (nothing appended)."""
    buf = memoryview(bytes(records))
    try:
        batches = list(iter_batch_headers(buf))
    except (CorruptRecordError, UnsupportedMagicError) as exc:
        log.error("bad records from the leader", partition=partition_name, error=str(exc))
        return False
    timestamp = now_ms()
    for pos, header in batches:
        if header.base_offset != log_.log_end_offset or not crc_ok(buf, pos, header):
            log.error(
                "fetched batch does not fit the log",
                partition=partition_name,
                base_offset=header.base_offset,
                log_end_offset=log_.log_end_offset,
            )
            break
        data = buf[pos : pos + header.size]
        if header.is_control and voter_sets is not None:
            try:
                voters = voters_in_batch(header, data)
            except CorruptRecordError as exc:
                log.error("bad voters record from the leader", partition=partition_name,
                          base_offset=header.base_offset, error=str(exc))
                break
            if voters is not None:
                voter_sets.record(header.base_offset, voters)
        last = header.base_offset + header.last_offset_delta
        segment_before = log_.active_segment
        log_.append(
            data,
            header.base_offset,
            last,
            header.max_timestamp,
            last,
            header.partition_leader_epoch,
            timestamp,
        )
        if log_.active_segment is not segment_before:
            producers.take_snapshot(header.base_offset)
        replay_batch(header, data, producers, txn_index, log_.active_segment.base_offset)
    return True


def truncate_diverging(
    log_: PartitionLog,
    producers: ProducerStateManager,
    txn_index: TransactionIndex,
    end_offset: int,
) -> int:
    """Drop a diverging suffix (never below the high watermark: the replica checks) and
    rebuild the producer state and aborted-transaction index for the shorter log; returns the
    new log end."""
    log_.truncate_to(end_offset)
    end = log_.log_end_offset
    replay_from = producers.truncate_to(end, log_.log_start_offset)
    txn_index.truncate_to(end)
    replay_into(log_, producers, txn_index, replay_from)
    return end


def reset_log(
    log_: PartitionLog,
    producers: ProducerStateManager,
    txn_index: TransactionIndex,
    start_offset: int,
) -> None:
    """Delete the whole log and restart it empty at `start_offset`: the leader's log starts
    there and ours ends below it (a replica added to a partition whose head retention deleted,
    or one away for longer than the retention). The producer state and aborted-transaction
    index go with the data, as when Kafka's follower truncates fully."""
    log_.truncate_fully_and_start_at(start_offset)
    producers.truncate_to(start_offset, start_offset)
    txn_index.truncate_to(0)
    txn_index.delete_below(start_offset)
