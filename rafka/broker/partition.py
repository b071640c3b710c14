"""One partition replica on this broker: its log, its producer state and its Raft state.

The append path keeps batches opaque: it validates the 61-byte header and the CRC, checks the
producer's sequence, patches `baseOffset` and `partitionLeaderEpoch` (outside the CRC) and appends
the bytes as they came. Durability is the group-commit flusher's job; this class turns flushed
offsets into Raft progress and wakes whoever waits on them (acks=1 on the local fsync, acks=all and
consumers on the high watermark).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from rafka.broker.flusher import GroupCommitFlusher
from rafka.broker.record_validation import RecordError, RecordValidationError, validate_records
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import (
    BatchHeader,
    CorruptRecordError,
    UnsupportedMagicError,
    build_control_batch,
    crc_ok,
    iter_batch_headers,
    patch_base_offset,
    patch_leader_epoch,
    read_batch_header,
    set_log_append_time,
)
from rafka.replication.log import PartitionLogView
from rafka.replication.raft import (
    Action,
    AppendLeaderChange,
    AppendRecords,
    HighWatermarkAdvanced,
    PersistQuorumState,
    QuorumState,
    RaftConfig,
    RaftReplica,
    Role,
    RoleChanged,
    SendMessage,
    TruncateLog,
)
from rafka.storage.config import LogConfig
from rafka.storage.log import PartitionLog
from rafka.storage.producer_state import ControlType, ProducerStateManager, TxnMarker
from rafka.storage.quorum_state import FILE_NAME as QUORUM_STATE_FILE
from rafka.storage.quorum_state import (
    StoredQuorumState,
    read_quorum_state,
    write_quorum_state,
)
from rafka.storage.txn_index import AbortedTxn, TransactionIndex, replay_batch, replay_into

log = structlog.get_logger(__name__)

CONTROL_LEADER_CHANGE = 2
NO_TIMESTAMP = -1


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def raft_clock_ms() -> int:
    """The Raft state machines' clock: monotonic, so a wall-clock step never fires a timer."""
    return time.monotonic_ns() // 1_000_000


class ReplicationHooks:
    """What a partition's Raft actions need from outside it; the replication manager fills
    these in. The defaults serve a one-voter group, which never sends a message."""

    def send(self, partition: Partition, action: SendMessage) -> None:
        raise RuntimeError(f"{partition.name}: no network to send {action.message!r}")

    def reschedule(self, partition: Partition) -> None:
        pass

    def role_changed(self, partition: Partition, change: RoleChanged) -> None:
        pass


NO_REPLICATION = ReplicationHooks()


class AppendError(Exception):
    def __init__(
        self,
        code: ErrorCode,
        message: str,
        record_errors: tuple[RecordError, ...] = (),
        log_start_offset: int = -1,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.record_errors = record_errors  # the invalid records of the batch (KIP-467)
        self.log_start_offset = log_start_offset


@dataclass(slots=True, frozen=True)
class AppendResult:
    base_offset: int
    last_offset: int
    log_append_time: int  # -1 unless the topic uses LogAppendTime
    log_start_offset: int
    duplicate: bool = False


class Partition:
    def __init__(
        self,
        topic: str,
        index: int,
        topic_id: uuid.UUID,
        directory: Path,
        log: PartitionLog,
        producers: ProducerStateManager,
        raft: RaftReplica,
        flusher: GroupCommitFlusher,
    ) -> None:
        self.topic = topic
        self.index = index
        self.topic_id = topic_id
        self.directory = directory
        self.log = log
        self.producers = producers
        self.raft = raft
        self._flusher = flusher
        # Recovered bytes may sit in the page cache only; the first flush after open claims them.
        self.flushed_offset = 0
        # Truncations, numbered, and where each cut the log: an fsync that ran across a cut
        # proves nothing past it (see on_flushed).
        self._truncations = 0
        self._cuts: list[tuple[int, int]] = []
        self._flush_generation = 0
        self.offline: ErrorCode | None = None
        self._seq = itertools.count()
        self._flush_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._hw_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._led_epoch: int | None = None  # the epoch this replica leads, for the state log
        self._data_listeners: set[asyncio.Future[None]] = set()
        self.on_high_watermark: Callable[[Partition], None] | None = None
        self.txn_index = TransactionIndex(directory)  # replaced by the loaded one in open()
        self.hooks: ReplicationHooks = NO_REPLICATION
        self.replica_lag_time_max_ms = 30_000  # replica.lag.time.max.ms
        self._producer_id_expiration_ms = 86_400_000
        self._raft_waiters: list[asyncio.Future[None]] = []  # confirm_leadership

    @classmethod
    def open(
        cls,
        topic: str,
        index: int,
        topic_id: uuid.UUID,
        directory: Path,
        config: LogConfig,
        *,
        node_id: int,
        voters: frozenset[int],
        flusher: GroupCommitFlusher,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        high_watermark: int = 0,
        clean_shutdown: bool = False,
        producer_id_expiration_ms: int = 86_400_000,
        raft_config: RaftConfig | None = None,
    ) -> Partition:
        partition_log = PartitionLog.open(
            directory,
            config,
            recovery_point=recovery_point,
            log_start_offset=log_start_offset,
            clean_shutdown=clean_shutdown,
            now_ms=now_ms(),
        )
        stored = read_quorum_state(directory)
        lost_end = _drop_epochs_never_entered(partition_log, directory, stored.epoch)
        producers = ProducerStateManager(directory, producer_id_expiration_ms)
        replay_from = producers.load_latest_snapshot(
            partition_log.log_start_offset, partition_log.log_end_offset
        )
        txn_index = TransactionIndex.load(
            directory, partition_log.segments[0].base_offset, partition_log.log_end_offset
        )
        replay_into(partition_log, producers, txn_index, replay_from)
        raft = RaftReplica(
            node_id,
            voters,
            QuorumState(stored.epoch, stored.voted_for, stored.leader_id),
            PartitionLogView(partition_log),
            # A checkpoint above the recovered log end means data was lost: never claim it.
            min(high_watermark, partition_log.log_end_offset),
            config=raft_config,
            now_ms=raft_clock_ms(),
            lost_end_offset=max(partition_log.lost_end_offset, high_watermark, lost_end),
        )
        if raft.impaired:
            log.error(
                "storage lost acknowledged records: this replica neither votes nor stands for "
                "election until it has fetched them back from a leader",
                partition=f"{topic}-{index}",
                log_end_offset=partition_log.log_end_offset,
                lost_end_offset=max(partition_log.lost_end_offset, high_watermark, lost_end),
            )
        partition = cls(topic, index, topic_id, directory, partition_log, producers, raft, flusher)
        partition.txn_index = txn_index
        partition._producer_id_expiration_ms = producer_id_expiration_ms
        return partition

    # -- identity and offsets ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.index}"

    @property
    def leader_epoch(self) -> int:
        return self.raft.epoch

    @property
    def is_leader(self) -> bool:
        return self.raft.is_leader

    @property
    def leader_id(self) -> int:
        leader = self.raft.leader_id
        return -1 if leader is None else leader

    @property
    def high_watermark(self) -> int:
        return self.raft.high_watermark

    @property
    def durable_high_watermark(self) -> int:
        """The high watermark as far as this replica has fsynced it: what a checkpoint may
        claim is committed in the log found after a crash."""
        return min(self.raft.high_watermark, self.log.recovery_point)

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    # -- Raft ---------------------------------------------------------------------------------

    def elect(self) -> None:
        """Stand for election now; with this node as the only voter it wins at once."""
        self.apply(self.raft.start_election())

    def apply(self, actions: list[Action]) -> None:
        """Carry out the Raft replica's actions in order; log changes are reported back to it
        before anything after them runs, and their own actions are carried out in turn."""
        queue = deque(actions)
        while queue:
            action = queue.popleft()
            if isinstance(action, SendMessage):
                self.hooks.send(self, action)
            elif isinstance(action, PersistQuorumState):
                state = action.state
                write_quorum_state(
                    self.directory,
                    StoredQuorumState(state.epoch, state.voted_for, state.leader_id),
                    sorted(self.raft.voters),
                )
            elif isinstance(action, AppendLeaderChange):
                queue.extend(self._append_leader_change(action))
            elif isinstance(action, AppendRecords):
                queue.extend(self._append_replicated(action.records))
            elif isinstance(action, TruncateLog):
                queue.extend(self._truncate(action.end_offset))
            elif isinstance(action, HighWatermarkAdvanced):
                self._high_watermark_advanced(action.high_watermark)
            elif isinstance(action, RoleChanged):
                self._role_changed(action)
        self.hooks.reschedule(self)
        waiters, self._raft_waiters = self._raft_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def confirm_leadership(self, timeout_s: float) -> bool:
        """Whether this replica still leads, confirmed by a majority of voters (a Raft read
        barrier): a coordinator then answers reads from its own state. False if it does not
        lead, stops leading, or no majority confirms within `timeout_s`."""
        raft = self.raft
        barrier, actions = raft.read_barrier(raft_clock_ms())
        if barrier < 0:
            return False
        self.apply(actions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not raft.read_confirmed(barrier):
            remaining = deadline - loop.time()
            if self.offline is not None or not raft.is_leader or remaining <= 0:
                return False
            # Woken by every step of the replica (a follower's fetch among them).
            waiter: asyncio.Future[None] = loop.create_future()
            self._raft_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                return False
        return True

    def _append_leader_change(self, action: AppendLeaderChange) -> list[Action]:
        # No timestamp (-1): a Raft bookkeeping entry must not answer ListOffsets by time, hold
        # back time retention or decide segment rolls.
        batch = bytearray(
            build_control_batch(
                CONTROL_LEADER_CHANGE,
                base_offset=self.log.log_end_offset,
                partition_leader_epoch=action.epoch,
                timestamp=NO_TIMESTAMP,
                leader_id=action.leader_id,
                voters=action.voters,
            )
        )
        base = self.log.log_end_offset
        self.log.append(batch, base, base, NO_TIMESTAMP, base, action.epoch, now_ms())
        self._flusher.request(self)
        return self.raft.on_local_append(self.log.log_end_offset)

    def _append_replicated(self, records: bytes) -> list[Action]:
        """A follower appends what it fetched from the leader, batch by batch as they came
        (offsets and epochs already assigned), and replays them into its producer state so it
        can take over as leader with idempotence and transactions intact."""
        if self.offline is not None:
            return []
        buf = memoryview(bytes(records))
        try:
            batches = list(iter_batch_headers(buf))
        except (CorruptRecordError, UnsupportedMagicError) as exc:
            log.error("bad records from the leader", partition=self.name, error=str(exc))
            return self.raft.on_local_append(self.log.log_end_offset)
        timestamp = now_ms()
        for pos, header in batches:
            if header.base_offset != self.log.log_end_offset or not crc_ok(buf, pos, header):
                log.error(
                    "fetched batch does not fit the log",
                    partition=self.name,
                    base_offset=header.base_offset,
                    log_end_offset=self.log.log_end_offset,
                )
                break
            data = buf[pos : pos + header.size]
            last = header.base_offset + header.last_offset_delta
            segment_before = self.log.active_segment
            self.log.append(
                data,
                header.base_offset,
                last,
                header.max_timestamp,
                last,
                header.partition_leader_epoch,
                timestamp,
            )
            if self.log.active_segment is not segment_before:
                self.producers.take_snapshot(header.base_offset)
            replay_batch(
                header,
                data,
                self.producers,
                self.txn_index,
                self.log.active_segment.base_offset,
            )
        self._flusher.request(self)
        return self.raft.on_local_append(self.log.log_end_offset)

    def _truncate(self, end_offset: int) -> list[Action]:
        """Drop a diverging suffix (never below the high watermark: the replica checks) and
        rebuild the producer state and aborted-transaction index for the shorter log."""
        self.log.truncate_to(end_offset)
        end = self.log.log_end_offset
        replay_from = self.producers.truncate_to(end, self.log.log_start_offset)
        self.txn_index.truncate_to(end)
        replay_into(self.log, self.producers, self.txn_index, replay_from)
        self.flushed_offset = min(self.flushed_offset, end)
        self._truncations += 1
        self._cuts.append((self._truncations, end))
        log.info("log truncated", partition=self.name, end_offset=end)
        return self.raft.on_truncated(end)

    def _role_changed(self, change: RoleChanged) -> None:
        # As Kafka's state-change log: who leads a partition, from when, is what an operator
        # (and the fault suite's timelines) need to follow a failover.
        if change.role is Role.LEADER:
            log.info(
                "partition leadership taken",
                partition=self.name,
                leader_epoch=change.epoch,
                log_end_offset=self.log_end_offset,
            )
        elif self._led_epoch is not None:
            log.info(
                "partition leadership lost",
                partition=self.name,
                leader_epoch=self._led_epoch,
                role=change.role.value,
                leader=change.leader_id,
            )
        self._led_epoch = change.epoch if change.role is Role.LEADER else None
        if change.role is not Role.LEADER:
            # Writes of a lost leadership may never commit here: clients retry at the new leader
            # (idempotent producers without duplicates).
            error = AppendError(ErrorCode.not_leader_or_follower, "leadership moved")
            for _, _, future in self._hw_waiters:
                if not future.done():
                    future.set_exception(error)
            self._hw_waiters.clear()
        self.hooks.role_changed(self, change)

    def _high_watermark_advanced(self, high_watermark: int) -> None:
        _release(self._hw_waiters, high_watermark)
        listeners, self._data_listeners = self._data_listeners, set()
        for future in listeners:
            if not future.done():
                future.set_result(None)
        if self.on_high_watermark is not None:
            self.on_high_watermark(self)

    # -- group commit callbacks (Flushable) ---------------------------------------------------

    def flush_blocking(self) -> int:
        # The flusher never runs two flushes of one log at once and reads this attribute only
        # after the flush returns, so the worker thread may write it.
        self._flush_generation = self._truncations
        return self.log.flush()

    def on_flushed(self, end_offset: int) -> None:
        # A truncation while the fsync ran (a follower meeting a diverging leader) makes its end
        # offset stale: that offset may now hold a record appended after the cut, which this
        # fsync did not cover. Without the clamp, the stale end would mark the new records
        # durable and hide their real fsync (ignored as "not beyond flushed_offset"), and a
        # follower, which fetches only from its durable end, would never fetch again.
        if self._cuts:  # rare: the group commit of every append passes here
            since = [end for number, end in self._cuts if number > self._flush_generation]
            self._cuts.clear()
            end_offset = min([end_offset, *since])
        if end_offset <= self.flushed_offset:
            return
        self.flushed_offset = end_offset
        _release(self._flush_waiters, end_offset)
        self.apply(self.raft.on_flushed(self.raft.node_id, end_offset))

    def on_flush_failed(self, error: OSError) -> None:
        # DESIGN: fsync errors are fatal for the partition; never retry and pretend it worked.
        log.error("partition offline after fsync failure", partition=self.name, error=str(error))
        self.offline = ErrorCode.kafka_storage_error
        for waiters in (self._flush_waiters, self._hw_waiters):
            for _, _, future in waiters:
                if not future.done():
                    future.set_exception(AppendError(ErrorCode.kafka_storage_error, str(error)))
            waiters.clear()

    # -- produce --------------------------------------------------------------------------------

    def append_records(
        self,
        records: bytes,
        *,
        max_message_bytes: int,
        log_append_time: bool,
        required_acks: int = 1,
    ) -> AppendResult:
        """Validate and append one produce request's records for this partition (leader only)."""
        if self.offline is not None:
            raise AppendError(self.offline, "partition is offline")
        if not self.raft.is_leader:
            raise AppendError(ErrorCode.not_leader_or_follower, "not the leader")
        buf = bytearray(records)
        try:
            batches = list(iter_batch_headers(buf))
        except UnsupportedMagicError as exc:
            raise AppendError(ErrorCode.unsupported_for_message_format, str(exc)) from None
        except CorruptRecordError as exc:
            raise AppendError(ErrorCode.corrupt_message, str(exc)) from None
        if len(batches) != 1:
            # Produce v3+ carries exactly one batch per partition, as Kafka enforces.
            raise AppendError(
                ErrorCode.invalid_record, "a produce request must hold exactly one batch"
            )
        pos, header = batches[0]
        if header.size > max_message_bytes:
            raise AppendError(
                ErrorCode.message_too_large,
                f"batch of {header.size} bytes exceeds max.message.bytes {max_message_bytes}",
            )
        if not crc_ok(buf, pos, header):
            raise AppendError(ErrorCode.corrupt_message, "record batch CRC mismatch")
        if header.records_count == 0 or header.records_count != header.last_offset_delta + 1:
            raise AppendError(ErrorCode.invalid_record, "batch record count mismatch")
        if header.is_control:
            raise AppendError(ErrorCode.invalid_record, "clients may not produce control batches")
        config = self.log.config
        if required_acks == -1 and config.min_insync_replicas > 1:  # the leader is in sync
            in_sync = len(self.in_sync_replicas())
            if in_sync < config.min_insync_replicas:
                raise AppendError(
                    ErrorCode.not_enough_replicas,
                    f"the {in_sync} in-sync replicas of {self.name} are fewer than "
                    f"min.insync.replicas {config.min_insync_replicas}",
                )
        try:
            rewritten = validate_records(buf, pos, header, config, self.name, now_ms())
        except RecordValidationError as exc:
            # Kafka answers a rejection of some records with the log start offset too.
            start = self.log.log_start_offset if exc.record_errors else -1
            raise AppendError(exc.code, exc.message, exc.record_errors, start) from None
        if rewritten is not None:  # recompressed to the topic's compression.type
            buf, header = rewritten
            pos = 0
            if header.size > max_message_bytes:
                raise AppendError(
                    ErrorCode.message_too_large,
                    f"recompressed batch of {header.size} bytes exceeds max.message.bytes "
                    f"{max_message_bytes}",
                )

        check = self.producers.check(header)
        if check.duplicate_of is not None:
            original = check.duplicate_of
            append_time = original.timestamp if log_append_time else -1
            return AppendResult(
                original.first_offset,
                original.last_offset,
                append_time,
                self.log.log_start_offset,
                duplicate=True,
            )
        if not check.accepted:
            raise AppendError(ErrorCode(check.error_code), check.message)

        timestamp = now_ms()
        base = self.log.log_end_offset
        patch_base_offset(buf, pos, base)
        patch_leader_epoch(buf, pos, self.raft.epoch)
        append_time = -1
        max_timestamp = header.max_timestamp
        if log_append_time:
            # The returned header carries the append time, which producer state remembers.
            header = set_log_append_time(buf, pos, header, timestamp)
            append_time = max_timestamp = timestamp
        last = base + header.last_offset_delta
        segment_before = self.log.active_segment
        self.log.append(buf, base, last, max_timestamp, last, self.raft.epoch, timestamp)
        if self.log.active_segment is not segment_before:
            # As Kafka does at each roll: recovery then replays at most one segment.
            self.producers.take_snapshot(base)
        self.producers.update(header, base, last, timestamp)
        self._flusher.request(self)
        self.apply(self.raft.on_local_append(self.log.log_end_offset))
        return AppendResult(base, last, append_time, self.log.log_start_offset)

    def wait_flushed(self, offset: int) -> asyncio.Future[None]:
        """Resolves once the local log is fsynced past `offset` (acks=1)."""
        return self._wait(self._flush_waiters, self.flushed_offset, offset + 1)

    def wait_committed(self, offset: int) -> asyncio.Future[None]:
        """Resolves once the high watermark passes `offset` (acks=all)."""
        return self._wait(self._hw_waiters, self.high_watermark, offset + 1)

    def _wait(
        self, waiters: list[tuple[int, int, asyncio.Future[None]]], current: int, target: int
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.offline is not None:
            future.set_exception(AppendError(self.offline, "partition is offline"))
        elif current >= target:
            future.set_result(None)
        else:
            heapq.heappush(waiters, (target, next(self._seq), future))
        return future

    def in_sync_replicas(self) -> list[int]:
        """Kafka's ISR as the leader sees it: itself and every voter that fetched up to its log
        end within replica.lag.time.max.ms. Empty unless this replica leads."""
        if not self.raft.is_leader:
            return []
        now = raft_clock_ms()
        lag = self.replica_lag_time_max_ms
        return sorted(
            node
            for node, progress in self.raft.voter_progress().items()
            if node == self.raft.node_id or now - progress.last_caught_up_ms <= lag
        )

    def has_read_lease(self) -> bool:
        """This replica leads and no other can have been elected since a majority last fetched
        (see RaftReplica.has_read_lease): a coordinator may answer from its own state."""
        return self.offline is None and self.raft.has_read_lease(raft_clock_ms())

    def leader_error(self, current_leader_epoch: int) -> ErrorCode:
        """Kafka's check for leader-only requests carrying the client's view of the epoch."""
        if self.offline is not None:
            return self.offline
        if not self.raft.is_leader:
            return ErrorCode.not_leader_or_follower
        if current_leader_epoch >= 0:
            if current_leader_epoch < self.leader_epoch:
                return ErrorCode.fenced_leader_epoch
            if current_leader_epoch > self.leader_epoch:
                return ErrorCode.unknown_leader_epoch
        return ErrorCode.none

    # -- fetch ------------------------------------------------------------------------------------

    def data_listener(self) -> asyncio.Future[None]:
        """Resolves at the next high-watermark advance (wakes long-polling fetches)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._data_listeners.add(future)
        return future

    def discard_listener(self, future: asyncio.Future[None]) -> None:
        self._data_listeners.discard(future)

    # -- transactions ---------------------------------------------------------------------------

    @property
    def last_stable_offset(self) -> int:
        """The first offset of the oldest undecided transaction, capped by the high watermark:
        read_committed consumers read below it."""
        high_watermark = self.raft.high_watermark
        undecided = self.producers.first_undecided_offset
        return high_watermark if undecided is None else min(undecided, high_watermark)

    def aborted_transactions(self, fetch_offset: int, upper_bound: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions a read_committed fetch of
        [fetch_offset, upper_bound) must filter out."""
        return [
            (e.producer_id, e.first_offset)
            for e in self.txn_index.collect(fetch_offset, upper_bound)
        ]

    def append_txn_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        coordinator_epoch: int,
        commit: bool,
        *,
        transaction_version: int = 0,
    ) -> int | None:
        """Append a COMMIT or ABORT control batch for a producer (WriteTxnMarkers); returns
        its offset, or None when the producer has no transaction here for it to end and the
        marker carries no newer epoch (nothing appended). Waiting for it to commit is the
        caller's business."""
        self._check_writable()
        control = ControlType.COMMIT if commit else ControlType.ABORT
        timestamp = now_ms()
        buf = bytearray(
            build_control_batch(
                int(control),
                timestamp=timestamp,
                base_offset=self.log.log_end_offset,
                partition_leader_epoch=self.raft.epoch,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                coordinator_epoch=coordinator_epoch,
            )
        )
        header = read_batch_header(buf)
        marker = TxnMarker(control, coordinator_epoch)
        check = self.producers.check(header, marker, transaction_version=transaction_version)
        if check.redundant:
            return None
        if not check.accepted:
            raise AppendError(ErrorCode(check.error_code), check.message)
        return self._append_coordinator_bytes(buf, header, timestamp, marker).base_offset

    def append_coordinator_batch(self, records: bytes) -> AppendResult:
        """Append a batch a coordinator built (TxnOffsetCommit's transactional offsets):
        trusted bytes, no sequence numbers, but a fenced producer epoch is refused."""
        self._check_writable()
        buf = bytearray(records)
        header = read_batch_header(buf)
        if header.producer_id >= 0:
            known = self.producers.producer(header.producer_id)
            if known is not None and header.producer_epoch < known.producer_epoch:
                raise AppendError(
                    ErrorCode.invalid_producer_epoch,
                    f"epoch {header.producer_epoch} of producer {header.producer_id} is older "
                    f"than {known.producer_epoch}",
                )
        return self._append_coordinator_bytes(buf, header, now_ms(), None)

    def _check_writable(self) -> None:
        if self.offline is not None:
            raise AppendError(self.offline, "partition is offline")
        if not self.raft.is_leader:
            raise AppendError(ErrorCode.not_leader_or_follower, "not the leader")

    def _append_coordinator_bytes(
        self, buf: bytearray, header: BatchHeader, timestamp: int, marker: TxnMarker | None
    ) -> AppendResult:
        base = self.log.log_end_offset
        last = base + header.last_offset_delta
        patch_base_offset(buf, 0, base)
        patch_leader_epoch(buf, 0, self.raft.epoch)
        segment_before = self.log.active_segment
        self.log.append(buf, base, last, header.max_timestamp, last, self.raft.epoch, timestamp)
        if self.log.active_segment is not segment_before:
            self.producers.take_snapshot(base)
        completed = self.producers.update(header, base, last, timestamp, marker)
        if completed is not None and completed.is_aborted:
            undecided = self.producers.first_undecided_offset
            self.txn_index.delete_below(self.log.segments[0].base_offset)
            self.txn_index.append(
                AbortedTxn(
                    completed.producer_id,
                    completed.first_offset,
                    completed.last_offset,
                    last + 1 if undecided is None else undecided,
                ),
                self.log.active_segment.base_offset,
            )
        self._flusher.request(self)
        self.apply(self.raft.on_local_append(self.log.log_end_offset))
        return AppendResult(base, last, -1, self.log.log_start_offset)

    # -- lifecycle --------------------------------------------------------------------------------

    def snapshot_producers(self) -> None:
        self.producers.take_snapshot(self.log.log_end_offset)

    def close(self) -> None:
        self.log.close()


def _drop_epochs_never_entered(log_: PartitionLog, directory: Path, quorum_epoch: int) -> int:
    """Cut batches whose leader epoch is above the epoch in the quorum state, which is fsynced
    before a replica appends anything of a new epoch: such an epoch is a flipped byte (the CRC
    does not cover it), and a vote claiming it would beat logs holding committed records.
    Returns the log end before the cut (what storage had), 0 if nothing was cut."""
    if not (directory / QUORUM_STATE_FILE).exists():
        return 0
    first_bad = next(
        (e.start_offset for e in log_.leader_epochs.entries if e.epoch > quorum_epoch), None
    )
    if first_bad is None:
        return 0
    end = log_.log_end_offset
    log.error(
        "log holds a leader epoch above the quorum state's: cutting it as corrupt",
        directory=str(directory),
        quorum_epoch=quorum_epoch,
        latest_epoch=log_.leader_epochs.latest_epoch,
        truncated_to=first_bad,
        log_end_offset=end,
    )
    log_.truncate_to(first_bad)
    return end


def _release(waiters: list[tuple[int, int, asyncio.Future[None]]], reached: int) -> None:
    while waiters and waiters[0][0] <= reached:
        _, _, future = heapq.heappop(waiters)
        if not future.done():
            future.set_result(None)
