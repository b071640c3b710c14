"""Producer state across a restart: what a snapshot (at a segment roll or a clean shutdown) brings
back must let the broker answer retries exactly as it would have without the restart.

A client keeps up to 5 batches in flight per partition and, after a lost connection, retries the
ones it has no answer for, oldest first. Each of them may already be in the log: the broker must
recognise all of them (Kafka's error NONE with the original offsets), not only the last one. An
OUT_OF_ORDER_SEQUENCE_NUMBER for the oldest is fatal to librdkafka's idempotent producer.
"""

from __future__ import annotations

from pathlib import Path

from rafka.protocol.records import BatchHeader
from rafka.storage.producer_snapshot import (
    SnapshotEntry,
    decode_snapshot,
    snapshot_file_name,
    write_snapshot,
)
from rafka.storage.producer_state import (
    NUM_BATCHES_TO_RETAIN,
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    ProducerStateManager,
)

P, Q = 7, 8
T0 = 1_700_000_000_000


def batch(seq: int, count: int, *, pid: int = P, base_offset: int = 0) -> BatchHeader:
    return BatchHeader(
        base_offset=base_offset, batch_length=100, partition_leader_epoch=0, magic=2, crc=0,
        attributes=0, last_offset_delta=count - 1, base_timestamp=T0 + seq,
        max_timestamp=T0 + seq, producer_id=pid, producer_epoch=0, base_sequence=seq,
        records_count=count,
    )


def append(state: ProducerStateManager, header: BatchHeader, offset: int) -> int:
    """Append as a leader does; returns the next offset."""
    assert state.check(header).accepted
    last = offset + header.last_offset_delta
    state.update(header, offset, last, T0)
    return last + 1


def test_every_cached_batch_is_a_duplicate_after_reloading_a_snapshot(tmp_path: Path) -> None:
    state = ProducerStateManager(tmp_path)
    offset, seq, sent = 0, 0, []
    for count in (3, 1, 4, 2, 5, 1):  # one more batch than the cache keeps
        header = batch(seq, count)
        sent.append((header, offset))
        offset = append(state, header, offset)
        seq += count
    offset = append(state, batch(0, 2, pid=Q), offset)
    state.take_snapshot(offset)

    reloaded = ProducerStateManager(tmp_path)
    assert reloaded.load_latest_snapshot(0, offset) == offset
    assert reloaded.producers == state.producers
    for header, first in sent[-NUM_BATCHES_TO_RETAIN:]:
        verdict = reloaded.check(header)
        assert verdict.is_duplicate, (header.base_sequence, verdict)
        original = verdict.duplicate_of
        assert original is not None
        assert (original.first_offset, original.last_offset) == (
            first, first + header.last_offset_delta)
    # As on a broker that never restarted: older than the cache is out of order, and the
    # producer continues after its last sequence.
    assert reloaded.check(sent[0][0]).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert reloaded.check(batch(seq, 1)).accepted


def test_retry_of_a_batch_before_the_roll_snapshot_is_a_duplicate_after_a_crash(
    tmp_path: Path,
) -> None:
    """The failure seen in test_acked_writes_survive_kill_9: two batches of P had no answer
    when the broker was killed; another producer's batch had rolled the segment after them, and
    the roll's snapshot is where recovery starts replaying. The retry of the older one must be
    recognised, as the newer one is."""
    state = ProducerStateManager(tmp_path)
    offset = append(state, batch(0, 333), 0)
    b1, b1_offset = batch(333, 1), offset
    offset = append(state, b1, offset)
    b2, b2_offset = batch(334, 145), offset
    offset = append(state, b2, offset)
    state.take_snapshot(offset)  # the roll, before the batch that started the new segment
    roll_batch = batch(0, 10, pid=Q, base_offset=offset)
    append(state, roll_batch, offset)

    recovered = ProducerStateManager(tmp_path)  # kill -9: recovery replays the log tail
    replay_from = recovered.load_latest_snapshot(0, roll_batch.last_offset + 1)
    assert replay_from == roll_batch.base_offset
    recovered.replay(roll_batch, T0)
    for header, first in ((b1, b1_offset), (b2, b2_offset)):
        verdict = recovered.check(header)
        assert verdict.is_duplicate, (header.base_sequence, verdict)
        assert verdict.duplicate_of is not None
        assert verdict.duplicate_of.first_offset == first
    assert recovered.check(batch(479, 1)).accepted


def test_a_reader_keeping_one_entry_per_producer_gets_what_kafka_writes(tmp_path: Path) -> None:
    """Kafka's loader keeps the last entry it reads for a producer id: from our snapshot that
    is the producer's last batch and last timestamp, the one entry Kafka itself would write."""
    state = ProducerStateManager(tmp_path)
    offset = 0
    for seq in range(0, 12, 2):
        offset = append(state, batch(seq, 2), offset)
    offset = append(state, batch(0, 1, pid=Q), offset)
    path = state.take_snapshot(offset)

    last_entry_wins = {e.producer_id: e for e in decode_snapshot(path.read_bytes())}
    for pid, info in state.producers.items():
        last = info.batches[-1]
        assert last_entry_wins[pid] == SnapshotEntry(
            producer_id=pid, producer_epoch=info.producer_epoch,
            last_sequence=last.last_sequence, last_offset=last.last_offset,
            offset_delta=last.offset_delta, timestamp=info.last_timestamp,
            coordinator_epoch=info.coordinator_epoch, current_txn_first_offset=-1,
        )


def test_a_snapshot_with_one_entry_per_producer_still_loads(tmp_path: Path) -> None:
    """Snapshots written by Kafka, or by rafka before it kept every cached batch."""
    write_snapshot(tmp_path, 40, [SnapshotEntry(P, 3, 19, 39, 9, T0, -1, -1)])
    assert (tmp_path / snapshot_file_name(40)).exists()
    state = ProducerStateManager(tmp_path)
    assert state.load_latest_snapshot(0, 40) == 40
    info = state.producer(P)
    assert info is not None
    assert (info.producer_epoch, info.last_sequence, len(info.batches)) == (3, 19, 1)
