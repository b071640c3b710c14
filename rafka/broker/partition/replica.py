"""One partition replica on this broker: its log, its producer state and its Raft state.

The append path keeps batches opaque: it validates the 61-byte header and the CRC, checks the
producer's sequence, patches `baseOffset` and `partitionLeaderEpoch` (outside the CRC) and appends
the bytes as they came. Durability is the group-commit flusher's job; this class turns flushed
offsets into Raft progress and wakes whoever waits on them (acks=1 on the local fsync, acks=all and
consumers on the high watermark).

Beside it: opening from disk (recovery), the leader's log copied on a follower (follower), the
flushed offset (durability), the futures it wakes (waiters), the checks of a client's batch
(append) and the transactional side (transactions).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

import structlog

from rafka.broker.flusher import GroupCommitFlusher
from rafka.broker.partition.append import (
    AppendError,
    AppendResult,
    check_produce_batch,
    validate_produce_records,
)
from rafka.broker.partition.clock import now_ms, raft_clock_ms
from rafka.broker.partition.durability import Durability
from rafka.broker.partition.follower import append_fetched, reset_log, truncate_diverging
from rafka.broker.partition.recovery import RecoveredReplica, recover_replica
from rafka.broker.partition.transactions import Transactions
from rafka.broker.partition.voters import build_voters_batch
from rafka.broker.partition.waiters import DataListeners, OffsetWaiters
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import (
    BatchHeader,
    build_control_batch,
    patch_base_offset,
    patch_leader_epoch,
    set_log_append_time,
)
from rafka.replication.log import PartitionLogView
from rafka.replication.raft import (
    Action,
    AppendLeaderChange,
    AppendRecords,
    AppendVoters,
    HighWatermarkAdvanced,
    PersistQuorumState,
    QuorumState,
    RaftConfig,
    RaftReplica,
    ResetLog,
    Role,
    RoleChanged,
    SendMessage,
    TruncateLog,
)
from rafka.storage.config import LogConfig
from rafka.storage.log import PartitionLog
from rafka.storage.producer_snapshot import snapshot_file_name
from rafka.storage.producer_state import ProducerStateManager, TxnMarker
from rafka.storage.quorum_state import StoredQuorumState, write_quorum_state
from rafka.storage.txn_index import TransactionIndex
from rafka.storage.voter_sets import VoterSetHistory

log = structlog.get_logger(__name__)

CONTROL_LEADER_CHANGE = 2
NO_TIMESTAMP = -1


class ReplicationHooks:
    """What a partition's Raft actions need from outside it; the replication manager fills
    these in. The defaults serve a one-voter group, which never sends a message."""

    def send(self, partition: Partition, action: SendMessage) -> None:
        raise RuntimeError(f"{partition.name}: no network to send {action.message!r}")

    def reschedule(self, partition: Partition) -> None:
        pass

    def role_changed(self, partition: Partition, change: RoleChanged) -> None:
        pass

    def persist_quorum_state(self, partition: Partition, state: QuorumState) -> None:
        """Make `state` durable before anything the partition does after it reaches another
        node; here by writing it at once (the replication manager writes off the event loop
        and holds the partition's messages until the write is done)."""
        partition.write_quorum_state(state)


NO_REPLICATION = ReplicationHooks()


class Partition:
    def __init__(
        self,
        topic: str,
        index: int,
        topic_id: uuid.UUID,
        directory: Path,
        log: PartitionLog,
        producers: ProducerStateManager,
        txn_index: TransactionIndex,
        raft: RaftReplica,
        flusher: GroupCommitFlusher,
        voter_sets: VoterSetHistory | None = None,
    ) -> None:
        self.topic = topic
        self.index = index
        self.topic_id = topic_id
        self.directory = directory
        self.log = log
        self.producers = producers
        self.txn_index = txn_index
        self.raft = raft
        self.voter_sets = voter_sets or VoterSetHistory(directory / "voters-checkpoint")
        self._flusher = flusher
        self._durability = Durability(log)
        self._transactions = Transactions(log, producers, txn_index)
        self.offline: ErrorCode | None = None
        # Told when a storage error takes this replica offline (the metadata log's stops the
        # broker).
        self.on_storage_failed: Callable[[OSError], None] | None = None
        self._hw_waiters = OffsetWaiters()
        self._led_epoch: int | None = None  # the epoch this replica leads, for the state log
        self._data_listeners = DataListeners()
        self.on_high_watermark: Callable[[Partition], None] | None = None
        self.hooks: ReplicationHooks = NO_REPLICATION
        self.replica_lag_time_max_ms = 30_000  # replica.lag.time.max.ms
        self._producer_id_expiration_ms = 86_400_000
        self._raft_waiters: list[asyncio.Future[None]] = []  # confirm_leadership
        # A lone voter's quorum state not yet written: it waits for the next flush.
        self._pending_quorum: QuorumState | None = None

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
        recovered = recover_replica(
            f"{topic}-{index}",
            directory,
            config,
            node_id=node_id,
            voters=voters,
            recovery_point=recovery_point,
            log_start_offset=log_start_offset,
            high_watermark=high_watermark,
            clean_shutdown=clean_shutdown,
            producer_id_expiration_ms=producer_id_expiration_ms,
            raft_config=raft_config,
        )
        partition = cls(
            topic,
            index,
            topic_id,
            directory,
            recovered.log,
            recovered.producers,
            recovered.txn_index,
            recovered.raft,
            flusher,
            recovered.voter_sets,
        )
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
        try:
            while queue:
                action = queue.popleft()
                if isinstance(action, SendMessage):
                    self.hooks.send(self, action)
                elif isinstance(action, PersistQuorumState):
                    self.hooks.persist_quorum_state(self, action.state)
                elif isinstance(action, AppendLeaderChange):
                    queue.extend(self._append_leader_change(action))
                elif isinstance(action, AppendVoters):
                    queue.extend(self._append_voters(action))
                elif isinstance(action, AppendRecords):
                    queue.extend(self._append_replicated(action.records))
                elif isinstance(action, TruncateLog):
                    queue.extend(self._truncate(action.end_offset))
                elif isinstance(action, ResetLog):
                    queue.extend(self._reset(action.start_offset))
                elif isinstance(action, HighWatermarkAdvanced):
                    self._high_watermark_advanced(action.high_watermark)
                elif isinstance(action, RoleChanged):
                    self._role_changed(action)
        except OSError as error:
            # A write the log or the quorum state could not make (a full disk): what follows
            # from it must not happen, and nothing on this replica can be trusted to.
            self.storage_failed(error, "write")
        self.hooks.reschedule(self)
        waiters, self._raft_waiters = self._raft_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def write_quorum_state(self, state: QuorumState) -> None:
        """Write the quorum state durably (temp file, fsync, rename, fsync dir); blocking."""
        write_quorum_state(
            self.directory,
            StoredQuorumState(state.epoch, state.voted_for, state.leader_id),
            sorted(self.raft.voters),
        )

    def persist_with_next_flush(self, state: QuorumState) -> None:
        """A lone voter's quorum state goes to disk just before its log's next fsync (and at
        close). Nothing it does in the new epoch is durable, let alone committed, before the
        epoch is; a crash before then loses an epoch nothing was written in, which the next
        start simply elects again. So thousands of single-replica partitions electing at a
        start (an fsync pair each: ~40 s for 10,000) write only when first written to."""
        self._pending_quorum = state

    def _store_pending_quorum(self) -> None:
        pending = self._pending_quorum
        if pending is not None:
            self.write_quorum_state(pending)
            if self._pending_quorum is pending:
                self._pending_quorum = None

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
                async with asyncio.timeout(remaining):
                    await waiter
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

    def _append_voters(self, action: AppendVoters) -> list[Action]:
        base = self.log.log_end_offset
        batch = build_voters_batch(base, action.epoch, action.voters)
        self.voter_sets.record(base, action.voters)  # durable before the log holds the record
        self.log.append(batch, base, base, NO_TIMESTAMP, base, action.epoch, now_ms())
        self._flusher.request(self)
        log.info(
            "partition voters changed",
            partition=self.name,
            voters=[voter for voter, _ in action.voters],
            offset=base,
            leader_epoch=action.epoch,
        )
        return self.raft.on_local_append(self.log.log_end_offset)

    def _append_replicated(self, records: bytes) -> list[Action]:
        """A follower appends what it fetched from the leader (see follower.append_fetched)."""
        if self.offline is not None:
            return []
        if append_fetched(
            self.log, self.producers, self.txn_index, records, self.name, self.voter_sets
        ):
            self._flusher.request(self)
        return self.raft.on_local_append(self.log.log_end_offset)

    def _truncate(self, end_offset: int) -> list[Action]:
        """Drop a diverging suffix (see follower.truncate_diverging); nothing past the cut is
        durable any more."""
        end = truncate_diverging(self.log, self.producers, self.txn_index, end_offset)
        self.voter_sets.truncate_from(end)
        self._durability.truncated(end)
        log.info("log truncated", partition=self.name, end_offset=end)
        return self.raft.on_truncated(end)

    def _reset(self, start_offset: int) -> list[Action]:
        """Restart the log empty at the leader's log start (see follower.reset_log)."""
        reset_log(self.log, self.producers, self.txn_index, start_offset)
        self._durability.truncated(start_offset)
        log.info(
            "log restarted at the leader's log start",
            partition=self.name,
            log_start_offset=start_offset,
        )
        return self.raft.on_log_reset(start_offset)

    def _role_changed(self, change: RoleChanged) -> None:
        # As Kafka's state-change log: who leads a partition, from when, is what an operator
        # (and the fault suite's timelines) need to follow a failover.
        if change.role is Role.LEADER:
            # A single replica leads by itself (thousands at each start): no news there.
            (log.info if len(self.raft.voters) > 1 else log.debug)(
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
            self._hw_waiters.fail(ErrorCode.not_leader_or_follower, "leadership moved")
        self.hooks.role_changed(self, change)

    def _high_watermark_advanced(self, high_watermark: int) -> None:
        # Waiting fetches first: their tasks run, and their responses go out, before the acks
        # of the writes that woke them (a record reaches its consumers ~50 µs sooner).
        self._data_listeners.wake()
        self._hw_waiters.release(high_watermark)
        if self.on_high_watermark is not None:
            self.on_high_watermark(self)

    # -- group commit callbacks (Flushable) ---------------------------------------------------

    @property
    def flushed_offset(self) -> int:
        return self._durability.flushed_offset

    def flush_blocking(self) -> int:
        self._store_pending_quorum()  # the epoch before anything appended in it
        return self._durability.flush_blocking()

    def on_flushed(self, end_offset: int) -> None:
        flushed = self._durability.flushed(end_offset)
        if flushed is not None:
            self.apply(self.raft.on_flushed(self.raft.node_id, flushed))

    def sync_point(self) -> tuple[int, int]:
        return self._durability.sync_point()

    def synced(self, point: tuple[int, int]) -> bool:
        flushed = self._durability.synced(point)
        if flushed == -1:
            return False
        if flushed is not None:
            self.apply(self.raft.on_flushed(self.raft.node_id, flushed))
        return True

    def on_flush_failed(self, error: OSError) -> None:
        self.storage_failed(error, "fsync")

    def storage_failed(self, error: OSError, during: str) -> None:
        """An I/O error on this replica's files: it goes offline (KAFKA_STORAGE_ERROR) until
        the broker restarts and recovers the log from disk, as Kafka takes a failed log
        directory offline. DESIGN: fsync errors are fatal for the partition; never retry and
        pretend it worked. A failed write is treated alike: a retry would need to know what
        the failure left behind."""
        if self.offline is ErrorCode.kafka_storage_error:
            return  # already failed, waiters and all: one line per replica
        log.error(
            "partition offline after a storage error",
            partition=self.name,
            during=during,
            error=str(error),
        )
        self.offline = ErrorCode.kafka_storage_error
        self._durability.fail(ErrorCode.kafka_storage_error, str(error))
        self._hw_waiters.fail(ErrorCode.kafka_storage_error, str(error))
        if self.on_storage_failed is not None:
            self.on_storage_failed(error)

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
        self._check_writable()
        buf, pos, header = check_produce_batch(
            records, max_message_bytes, self.log.log_start_offset
        )
        config = self.log.config
        if required_acks == -1 and config.min_insync_replicas > 1:  # the leader is in sync
            in_sync = len(self.in_sync_replicas())
            if in_sync < config.min_insync_replicas:
                raise AppendError(
                    ErrorCode.not_enough_replicas,
                    f"the {in_sync} in-sync replicas of {self.name} are fewer than "
                    f"min.insync.replicas {config.min_insync_replicas}",
                    log_start_offset=self.log.log_start_offset,
                )
        buf, pos, header = validate_produce_records(
            buf,
            pos,
            header,
            config,
            partition_name=self.name,
            max_message_bytes=max_message_bytes,
            log_start_offset=self.log.log_start_offset,
            now_ms=now_ms(),
        )

        check = self.producers.check(header)
        if check.duplicate_of is not None:
            original = check.duplicate_of
            # Kafka answers a retried batch with the original's timestamp as its append time,
            # whatever the topic's timestamp type (UnifiedLog's duplicate LogAppendInfo).
            append_time = original.timestamp
            return AppendResult(
                original.first_offset,
                original.last_offset,
                append_time,
                self.log.log_start_offset,
                duplicate=True,
            )
        if not check.accepted:
            # Kafka answers the producer state's refusals with the log start offset too.
            raise AppendError(
                ErrorCode(check.error_code),
                check.message,
                log_start_offset=self.log.log_start_offset,
            )

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
        try:
            self.log.append(buf, base, last, max_timestamp, last, self.raft.epoch, timestamp)
            if self.log.active_segment is not segment_before:
                # As Kafka does at each roll: recovery then replays at most one segment.
                self.producers.take_snapshot(base)
        except OSError as error:
            self.storage_failed(error, "append")
            raise AppendError(
                ErrorCode.kafka_storage_error, f"{self.name} is offline: {error.strerror}"
            ) from None
        self.producers.update(header, base, last, timestamp)
        self._flusher.request(self)
        self.apply(self.raft.on_local_append(self.log.log_end_offset))
        return AppendResult(base, last, append_time, self.log.log_start_offset)

    def wait_flushed(self, offset: int) -> asyncio.Future[None]:
        """Resolves once the local log is fsynced past `offset` (acks=1)."""
        return self._durability.wait_flushed(offset, self.offline)

    def wait_committed(self, offset: int) -> asyncio.Future[None]:
        """Resolves once the high watermark passes `offset` (acks=all)."""
        return self._hw_waiters.wait(self.high_watermark, offset + 1, self.offline)

    def in_sync_replicas(self) -> list[int]:
        """Kafka's ISR as the leader sees it: itself and every voter that fetched up to its log
        end within replica.lag.time.max.ms and has fetched at all within the fetch timeout (a
        follower fetches at least every half of it: one silent that long is stopped or cut
        off, which Kafka's controller learns by controlled shutdown or fencing). A follower
        that reconnects is in sync again only once it has caught up (RaftReplica)."""
        raft = self.raft
        return raft.in_sync_voters(
            raft_clock_ms(), self.replica_lag_time_max_ms, raft.config.fetch_timeout_ms
        )

    def has_read_lease(self) -> bool:
        """This replica leads and no other can have been elected since a majority last fetched
        (see RaftReplica.has_read_lease): a coordinator may answer from its own state."""
        return self.offline is None and self.raft.has_read_lease(raft_clock_ms())

    def leader_error(self, current_leader_epoch: int) -> ErrorCode:
        """Kafka's check for leader-only requests carrying the client's view of the epoch."""
        if self.offline is not None:
            return self.offline
        raft = self.raft  # once per partition of every Fetch: no property chains
        if raft.role is not Role.LEADER:
            return ErrorCode.not_leader_or_follower
        if current_leader_epoch >= 0:
            epoch = raft.state.epoch
            if current_leader_epoch < epoch:
                return ErrorCode.fenced_leader_epoch
            if current_leader_epoch > epoch:
                return ErrorCode.unknown_leader_epoch
        return ErrorCode.none

    def _check_writable(self) -> None:
        if self.offline is not None:
            raise AppendError(self.offline, "partition is offline")
        if not self.raft.is_leader:
            raise AppendError(ErrorCode.not_leader_or_follower, "not the leader")

    # -- fetch ------------------------------------------------------------------------------------

    def data_listener(self, future: asyncio.Future[bool] | None = None) -> asyncio.Future[bool]:
        """Resolves at the next high-watermark advance (wakes long-polling fetches); `future`:
        one shared with other partitions, resolved by the first to advance."""
        return self._data_listeners.listen(future)

    def discard_listener(self, future: asyncio.Future[bool]) -> None:
        self._data_listeners.discard(future)

    # -- transactions ---------------------------------------------------------------------------

    @property
    def last_stable_offset(self) -> int:
        """The first offset of the oldest undecided transaction, capped by the high watermark:
        read_committed consumers read below it."""
        return self._transactions.last_stable_offset(self.raft.high_watermark)

    def aborted_transactions(self, fetch_offset: int, upper_bound: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions a read_committed fetch of
        [fetch_offset, upper_bound) must filter out."""
        return self._transactions.aborted_transactions(fetch_offset, upper_bound)

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
        batch = self._transactions.marker_batch(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit,
            leader_epoch=self.raft.epoch,
            transaction_version=transaction_version,
        )
        if batch is None:
            return None
        buf, header, timestamp, marker = batch
        return self._append_coordinator_bytes(buf, header, timestamp, marker).base_offset

    def append_coordinator_batch(self, records: bytes) -> AppendResult:
        """Append a batch a coordinator built (TxnOffsetCommit's transactional offsets):
        trusted bytes, no sequence numbers, but a fenced producer epoch is refused."""
        self._check_writable()
        buf, header = self._transactions.coordinator_batch(records)
        return self._append_coordinator_bytes(buf, header, now_ms(), None)

    def _append_coordinator_bytes(
        self, buf: bytearray, header: BatchHeader, timestamp: int, marker: TxnMarker | None
    ) -> AppendResult:
        base, last = self._transactions.append(buf, header, timestamp, marker, self.raft.epoch)
        self._flusher.request(self)
        self.apply(self.raft.on_local_append(self.log.log_end_offset))
        return AppendResult(base, last, -1, self.log.log_start_offset)

    # -- lifecycle --------------------------------------------------------------------------------

    def snapshot_producers(self) -> None:
        """Snapshot the producer state at the log end (at a clean shutdown, so the next start
        replays nothing), unless the snapshot for that offset is already there."""
        end = self.log.log_end_offset
        if not os.path.exists(self.directory / snapshot_file_name(end)):
            self.producers.take_snapshot(end)

    def close(self) -> None:
        self._store_pending_quorum()
        self.log.close()

    # -- moving between log dirs (AlterReplicaLogDirs) ----------------------------------------

    def prepare_final_copy(self) -> None:
        """Every file of the directory current with memory, so that a copy taken before the
        next append opens as after a clean shutdown: quorum state, index files, leader epochs,
        a producer snapshot at the log end."""
        self._store_pending_quorum()
        self.log.write_files_for_copy()
        self.snapshot_producers()

    def replace_storage(self, directory: Path, moved: RecoveredReplica) -> PartitionLog:
        """Continue on the copy in `directory` (same offsets, fsynced): the Raft state, waiters
        and listeners stay. Returns the old log, to be released."""
        old = self.log
        self.directory = directory
        self.log = moved.log
        self.producers = moved.producers
        self.txn_index = moved.txn_index
        self.voter_sets = moved.voter_sets
        self._durability.rebind(moved.log)
        self._transactions = Transactions(moved.log, moved.producers, moved.txn_index)
        self.raft.log = PartitionLogView(moved.log, moved.voter_sets)
        return old
