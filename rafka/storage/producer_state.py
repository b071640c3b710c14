"""Per-partition producer state: the broker side of idempotent and transactional producers.

Follows Kafka's ProducerStateManager (KIP-98, KIP-360, KIP-679). For each producer id a partition
remembers its epoch, the metadata of its last 5 batches (to answer retried batches with their
original offsets), the coordinator epoch of its last transaction marker and the first offset of its
ongoing transaction.

Leader append path, for each batch of a produce request in order:
    result = state.check(header)            # no mutation
    if result.accepted: ...assign offsets, append...; state.update(header, first, last, now_ms)
    elif result.is_duplicate: answer with result.duplicate_of offsets, error NONE
    elif result.redundant: (markers only) answer NONE, append nothing
    else: answer result.error_code
Recovery and followers call replay() for batches already in the log, after load_latest_snapshot()
or truncate_to() told them where to start.

The state is kept in Kafka-format snapshot files (see `producer_snapshot`) holding every cached
batch, not only the last as Kafka's do: after a restart (kill -9 included) a client's retry of any
batch it had in flight is answered with its offsets, never OUT_OF_ORDER_SEQUENCE_NUMBER, which
librdkafka's idempotent producer treats as fatal for its oldest unanswered batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping
from enum import IntEnum
from pathlib import Path

from msgspec import Struct, field

from rafka.protocol.records import NO_PRODUCER_EPOCH, NO_SEQUENCE, BatchHeader
from rafka.storage.files import list_files, read_small_file
from rafka.storage.producer_snapshot import (
    CorruptSnapshotError,
    SnapshotEntry,
    decode_snapshot,
    delete_partial_snapshots,
    snapshot_files,
    write_snapshot,
)

# Kafka error codes this module answers with.
NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
# Not returned: Kafka's broker answers a cached duplicate with its original offsets and error NONE,
# and an older duplicate with OUT_OF_ORDER_SEQUENCE_NUMBER.
DUPLICATE_SEQUENCE_NUMBER = 46
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
TRANSACTION_COORDINATOR_FENCED = 52
# Not returned: since Kafka 2.5 (KIP-360) a producer the partition has no state for may start at
# any sequence, so it can continue after retention removed all of its batches.
UNKNOWN_PRODUCER_ID = 59
INVALID_RECORD = 87

NUM_BATCHES_TO_RETAIN = 5
MAX_SEQUENCE = 0x7FFFFFFF
DEFAULT_PRODUCER_ID_EXPIRATION_MS = 86_400_000  # producer.id.expiration.ms


class ControlType(IntEnum):
    """Type of an end-transaction marker (the key of a control record)."""

    ABORT = 0
    COMMIT = 1


class TxnMarker(Struct, frozen=True):
    """The content of an end-transaction control record, decoded by the caller."""

    control_type: ControlType
    coordinator_epoch: int


class CompletedTxn(Struct, frozen=True):
    """A transaction ended by a marker at `last_offset`; feeds the transaction index and LSO."""

    producer_id: int
    first_offset: int
    last_offset: int
    is_aborted: bool


class BatchMetadata(Struct, frozen=True):
    """What is remembered of one appended batch, to recognise its retries."""

    last_sequence: int
    last_offset: int
    offset_delta: int
    timestamp: int

    @property
    def first_sequence(self) -> int:
        if self.last_sequence < 0:
            return NO_SEQUENCE
        return (self.last_sequence - self.offset_delta) % (MAX_SEQUENCE + 1)

    @property
    def first_offset(self) -> int:
        return self.last_offset - self.offset_delta


class AppendCheck(Struct, frozen=True):
    """Verdict of check(): accepted, a duplicate of a cached batch, or a Kafka error code.

    For a duplicate Kafka answers error NONE with base offset `duplicate_of.first_offset` and, on
    LogAppendTime topics, log append time `duplicate_of.timestamp`. A marker that would end
    nothing is `redundant`: answered NONE, not appended.
    """

    error_code: int = NONE
    message: str = ""
    duplicate_of: BatchMetadata | None = None
    redundant: bool = False

    @property
    def accepted(self) -> bool:
        return self.error_code == NONE and self.duplicate_of is None and not self.redundant

    @property
    def is_duplicate(self) -> bool:
        return self.duplicate_of is not None


ACCEPTED = AppendCheck()
_REDUNDANT_MARKER = AppendCheck(redundant=True)


class ProducerInfo(Struct, frozen=True):
    """Read-only view of one producer (what DescribeProducers reports, plus the batch cache)."""

    producer_epoch: int
    last_sequence: int
    last_timestamp: int
    coordinator_epoch: int
    current_txn_start_offset: int  # -1: no ongoing transaction
    batches: tuple[BatchMetadata, ...] = ()


class _ProducerEntry(Struct):
    """One producer id's epoch, open transaction and recently appended batches."""

    epoch: int
    coordinator_epoch: int = -1
    last_timestamp: int = -1
    current_txn_first_offset: int | None = None
    batches: deque[BatchMetadata] = field(
        default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN)
    )

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else NO_SEQUENCE

    def set_epoch(self, epoch: int) -> None:
        # Sequences restart with each epoch, so batches of an older one can no longer match.
        if epoch != self.epoch:
            self.batches.clear()
            self.epoch = epoch

    def find_duplicate(self, header: BatchHeader) -> BatchMetadata | None:
        if header.producer_epoch != self.epoch:
            return None
        first, last = header.base_sequence, header.last_sequence
        for batch in self.batches:
            if batch.first_sequence == first and batch.last_sequence == last:
                return batch
        return None

    def in_current_txn(self, batch: BatchMetadata) -> bool:
        """Whether a cached batch belongs to the transaction still open here."""
        txn = self.current_txn_first_offset
        return txn is not None and batch.first_offset >= txn

    def info(self) -> ProducerInfo:
        txn = self.current_txn_first_offset
        return ProducerInfo(
            producer_epoch=self.epoch,
            last_sequence=self.last_sequence,
            last_timestamp=self.last_timestamp,
            coordinator_epoch=self.coordinator_epoch,
            current_txn_start_offset=-1 if txn is None else txn,
            batches=tuple(self.batches),
        )


def _in_sequence(last_sequence: int, next_sequence: int) -> bool:
    return next_sequence == last_sequence + 1 or (
        next_sequence == 0 and last_sequence == MAX_SEQUENCE
    )


class ProducerStateManager:
    """Producer id -> state for one partition, with Kafka-format snapshots in its directory."""

    def __init__(
        self,
        partition_dir: Path,
        max_producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ) -> None:
        self.partition_dir = Path(partition_dir)
        self.max_producer_id_expiration_ms = max_producer_id_expiration_ms
        self._producers: dict[int, _ProducerEntry] = {}
        # One past the last offset whose batch has been applied (Kafka's mapEndOffset).
        self._end_offset = 0
        # Producer id -> first offset of its ongoing transaction: the last stable offset is read
        # on every fetch, so it must not walk every producer.
        self._ongoing: dict[int, int] = {}

    # --- views -------------------------------------------------------------------------------

    @property
    def end_offset(self) -> int:
        return self._end_offset

    @property
    def producers(self) -> Mapping[int, ProducerInfo]:
        """A copy of the current state; cheap enough for DescribeProducers, not for the hot path."""
        return {pid: entry.info() for pid, entry in self._producers.items()}

    def producer(self, producer_id: int) -> ProducerInfo | None:
        entry = self._producers.get(producer_id)
        return None if entry is None else entry.info()

    @property
    def first_undecided_offset(self) -> int | None:
        """First offset of the oldest ongoing transaction (bounds the last stable offset)."""
        return min(self._ongoing.values()) if self._ongoing else None

    @property
    def ongoing_transactions(self) -> Mapping[int, int]:
        """Producer id -> first offset of its ongoing transaction."""
        return self._ongoing

    # --- leader validation -------------------------------------------------------------------

    def check(
        self,
        header: BatchHeader,
        marker: TxnMarker | None = None,
        *,
        transaction_version: int = 0,
    ) -> AppendCheck:
        """Validate a batch a leader is about to append; never changes state.

        Data batches come from clients (full validation). Control batches come from the
        transaction coordinator's WriteTxnMarkers and need their decoded `marker`;
        `transaction_version` is that request's field (>= 2: markers carry a bumped epoch).
        """
        if header.producer_id < 0:
            return ACCEPTED
        if header.is_control:
            return self._check_marker(header, self._require_marker(header, marker),
                                      transaction_version)
        return self._check_data_batch(header)

    def _check_data_batch(self, header: BatchHeader) -> AppendCheck:
        pid, epoch, first_seq = header.producer_id, header.producer_epoch, header.base_sequence
        if first_seq < 0:
            return AppendCheck(INVALID_RECORD, f"invalid sequence number {first_seq} in record "
                               f"batch with producerId {pid}")
        entry = self._producers.get(pid)
        if entry is None:
            return ACCEPTED  # KIP-360: no state for this producer, any first sequence goes
        duplicate = entry.find_duplicate(header)
        if duplicate is not None:
            if not header.is_transactional or entry.in_current_txn(duplicate):
                return AppendCheck(duplicate_of=duplicate)
            # The cached batch's transaction already has its marker, so this is no retry: a
            # client reusing an aborted batch's sequence numbers at the same epoch (transaction
            # version 1). Answering it as a duplicate would acknowledge records never stored.
            return AppendCheck(OUT_OF_ORDER_SEQUENCE_NUMBER, f"sequence numbers {first_seq}.."
                               f"{header.last_sequence} of producer {pid} at epoch {epoch} "
                               f"belong to a batch whose transaction has ended")
        if epoch < entry.epoch:
            return AppendCheck(INVALID_PRODUCER_EPOCH, f"epoch of producer {pid} is {epoch}, "
                               f"which is smaller than the last seen epoch {entry.epoch}")
        if epoch != entry.epoch:
            if first_seq != 0 and entry.epoch != NO_PRODUCER_EPOCH:
                return AppendCheck(OUT_OF_ORDER_SEQUENCE_NUMBER, f"invalid sequence number "
                                   f"{first_seq} for new epoch {epoch} of producer {pid} "
                                   f"(current epoch {entry.epoch}); a new epoch starts at 0")
        elif entry.epoch != NO_PRODUCER_EPOCH and not _in_sequence(entry.last_sequence, first_seq):
            return AppendCheck(OUT_OF_ORDER_SEQUENCE_NUMBER, f"out of order sequence number for "
                               f"producer {pid}: {first_seq} (incoming), {entry.last_sequence} "
                               f"(current end)")
        if entry.current_txn_first_offset is not None and not header.is_transactional:
            return AppendCheck(INVALID_TXN_STATE, f"expected a transactional write from producer "
                               f"{pid}, which has an ongoing transaction")
        return ACCEPTED

    def _check_marker(
        self, header: BatchHeader, marker: TxnMarker, transaction_version: int
    ) -> AppendCheck:
        entry = self._producers.get(header.producer_id)
        if entry is None:
            return ACCEPTED
        epoch = header.producer_epoch
        # TV2 coordinators bump the epoch for every marker; older ones reuse the txn's epoch.
        stale = epoch <= entry.epoch if transaction_version >= 2 else epoch < entry.epoch
        retried = (transaction_version >= 2 and epoch == entry.epoch
                   and entry.current_txn_first_offset is None)
        if stale and not retried:
            return AppendCheck(INVALID_PRODUCER_EPOCH, f"marker epoch {epoch} of producer "
                               f"{header.producer_id} is stale (current {entry.epoch})")
        if entry.coordinator_epoch > marker.coordinator_epoch:
            return AppendCheck(TRANSACTION_COORDINATOR_FENCED, f"coordinator epoch "
                               f"{marker.coordinator_epoch} is older than "
                               f"{entry.coordinator_epoch}")
        if (entry.current_txn_first_offset is None and epoch == entry.epoch
                and marker.coordinator_epoch == entry.coordinator_epoch):
            # Nothing of this producer is undecided here and the marker teaches no newer epoch:
            # a retry of a marker already written, or a stale one. Kafka appends it again; not
            # appending keeps one marker per transaction, and success lets a retry complete.
            return _REDUNDANT_MARKER
        return ACCEPTED

    # --- applying batches --------------------------------------------------------------------

    def update(
        self,
        header: BatchHeader,
        first_offset: int,
        last_offset: int,
        append_time_ms: int,
        marker: TxnMarker | None = None,
    ) -> CompletedTxn | None:
        """Record a batch the leader appended at [first_offset, last_offset] after check().

        The remembered timestamp is the batch's max timestamp, as Kafka keeps it: append_time_ms
        when the header says LogAppendTime (or has no timestamp), else header.max_timestamp.
        """
        if last_offset - first_offset != header.last_offset_delta:
            raise ValueError(f"offsets [{first_offset}, {last_offset}] do not match the batch's "
                             f"offset delta {header.last_offset_delta}")
        timestamp = header.max_timestamp
        if header.is_log_append_time or timestamp < 0:
            timestamp = append_time_ms
        return self._apply(header, first_offset, last_offset, timestamp, marker)

    def replay(
        self, header: BatchHeader, append_time_ms: int, marker: TxnMarker | None = None
    ) -> CompletedTxn | None:
        """Apply a batch already in the log (recovery, followers) without validating it.

        The stored max timestamp is used (for LogAppendTime batches it is the append time);
        append_time_ms only stands in when the batch has none.
        """
        timestamp = header.max_timestamp if header.max_timestamp >= 0 else append_time_ms
        return self._apply(header, header.base_offset, header.last_offset, timestamp, marker)

    def _apply(
        self,
        header: BatchHeader,
        first_offset: int,
        last_offset: int,
        timestamp: int,
        marker: TxnMarker | None,
    ) -> CompletedTxn | None:
        self._end_offset = max(self._end_offset, last_offset + 1)
        if header.producer_id < 0:
            return None
        if header.is_control:
            if header.records_count == 0:
                return None  # the cleaner removed the marker's transaction entirely
            return self._apply_marker(header, self._require_marker(header, marker),
                                      first_offset, timestamp)
        entry = self._entry_for(header.producer_id, header.producer_epoch)
        entry.set_epoch(header.producer_epoch)
        entry.batches.append(BatchMetadata(
            header.last_sequence, last_offset, last_offset - first_offset, timestamp))
        entry.last_timestamp = timestamp
        if header.is_transactional and entry.current_txn_first_offset is None:
            entry.current_txn_first_offset = first_offset
            self._ongoing[header.producer_id] = first_offset
        return None

    def _apply_marker(
        self, header: BatchHeader, marker: TxnMarker, offset: int, timestamp: int
    ) -> CompletedTxn | None:
        entry = self._entry_for(header.producer_id, header.producer_epoch)
        completed = None
        if entry.current_txn_first_offset is not None:
            completed = CompletedTxn(header.producer_id, entry.current_txn_first_offset, offset,
                                     marker.control_type == ControlType.ABORT)
        entry.set_epoch(header.producer_epoch)
        entry.coordinator_epoch = marker.coordinator_epoch
        entry.current_txn_first_offset = None
        self._ongoing.pop(header.producer_id, None)
        entry.last_timestamp = timestamp
        return completed

    def _entry_for(self, producer_id: int, epoch: int) -> _ProducerEntry:
        entry = self._producers.get(producer_id)
        if entry is None:
            entry = self._producers[producer_id] = _ProducerEntry(epoch)
        return entry

    @staticmethod
    def _require_marker(header: BatchHeader, marker: TxnMarker | None) -> TxnMarker:
        if marker is None:
            raise ValueError(f"control batch of producer {header.producer_id} needs its decoded "
                             "transaction marker")
        return marker

    # --- expiration --------------------------------------------------------------------------

    def remove_expired_producers(self, now_ms: int) -> None:
        """Forget producers idle for producer.id.expiration.ms, unless in a transaction."""
        expired = [
            pid for pid, entry in self._producers.items()
            if entry.current_txn_first_offset is None
            and now_ms - entry.last_timestamp >= self.max_producer_id_expiration_ms
        ]
        for pid in expired:
            del self._producers[pid]

    # --- snapshots ---------------------------------------------------------------------------

    def snapshot_offsets(self) -> list[int]:
        """Offsets of the snapshot files in the partition directory, ascending."""
        return sorted(snapshot_files(self.partition_dir))

    def take_snapshot(self, offset: int) -> Path:
        """Write the state for all batches below `offset` (temp file, fsync, rename, fsync dir)."""
        if offset < self._end_offset:
            raise ValueError(
                f"snapshot offset {offset} is below the applied end {self._end_offset}")
        return write_snapshot(self.partition_dir, offset, self._snapshot_entries())

    def _snapshot_entries(self) -> list[SnapshotEntry]:
        """One entry per cached batch, oldest first (see `producer_snapshot`): the last one is
        the entry Kafka writes, the earlier ones let a restarted broker still answer a retry of
        any cached batch with its offsets."""
        entries = []
        for pid in sorted(self._producers):
            e = self._producers[pid]
            txn = -1 if e.current_txn_first_offset is None else e.current_txn_first_offset
            cached = [(b.last_sequence, b.last_offset, b.offset_delta, b.timestamp)
                      for b in e.batches] or [(NO_SEQUENCE, -1, 0, e.last_timestamp)]
            # Kafka's entry carries the producer's last timestamp (a marker may be newer).
            cached[-1] = (*cached[-1][:3], e.last_timestamp)
            entries.extend(
                SnapshotEntry(pid, e.epoch, seq, offset, delta, timestamp, e.coordinator_epoch, txn)
                for seq, offset, delta, timestamp in cached
            )
        return entries

    def load_latest_snapshot(
        self, log_start_offset: int, log_end_offset: int, names: Collection[str] | None = None
    ) -> int:
        """Reset the state to the newest valid snapshot at or below log_end_offset.

        Deletes newer snapshots, corrupt ones and leftover temp files. Returns the offset from
        which the caller must replay the log into replay(): the snapshot's offset (not below
        log_start_offset), or log_start_offset when there is no usable snapshot. `names`: the
        directory's files if the caller has listed them already.
        """
        self._producers.clear()
        self._ongoing.clear()
        if names is None:
            names = list_files(self.partition_dir)
        delete_partial_snapshots(self.partition_dir, names)
        files = snapshot_files(self.partition_dir, names)
        for offset in sorted(files, reverse=True):
            path = files[offset]
            if offset > log_end_offset:
                path.unlink(missing_ok=True)
                continue
            try:
                entries = decode_snapshot(read_small_file(path))
            except CorruptSnapshotError:
                path.unlink(missing_ok=True)
                continue
            self._load_entries(entries)
            self._end_offset = max(offset, log_start_offset)
            return self._end_offset
        self._end_offset = log_start_offset
        return log_start_offset

    def _load_entries(self, entries: Iterable[SnapshotEntry]) -> None:
        """Entries of one producer id come oldest batch first; the last one carries the state."""
        for s in entries:
            entry = self._producers.get(s.producer_id)
            if entry is None:
                entry = self._producers[s.producer_id] = _ProducerEntry(s.producer_epoch)
            entry.set_epoch(s.producer_epoch)
            entry.coordinator_epoch = s.coordinator_epoch
            entry.last_timestamp = s.timestamp
            entry.current_txn_first_offset = (s.current_txn_first_offset
                                              if s.current_txn_first_offset >= 0 else None)
            if entry.current_txn_first_offset is not None:
                self._ongoing[s.producer_id] = entry.current_txn_first_offset
            else:
                self._ongoing.pop(s.producer_id, None)
            if s.last_offset >= 0:
                entry.batches.append(
                    BatchMetadata(s.last_sequence, s.last_offset, s.offset_delta, s.timestamp))

    def truncate_to(self, offset: int, log_start_offset: int) -> int:
        """Forget state of batches at or above `offset` after the log was truncated there.

        Drops snapshots above `offset` and reloads the newest one left. Returns the offset from
        which the caller must replay the log up to `offset` (== offset: nothing to replay).
        """
        for snap_offset, path in snapshot_files(self.partition_dir).items():
            if snap_offset > offset:
                path.unlink(missing_ok=True)
        if offset >= self._end_offset:
            return offset  # nothing at or above `offset` was ever applied
        return self.load_latest_snapshot(log_start_offset, offset)

    def delete_snapshots_before(self, offset: int) -> None:
        """Delete snapshots below `offset` (the log start moved); in-memory state stays."""
        for snap_offset, path in snapshot_files(self.partition_dir).items():
            if snap_offset < offset:
                path.unlink(missing_ok=True)
