"""The transaction coordinator (KIP-98, with KIP-890's fixes).

A transactional id belongs to one `__transaction_state` partition (Java's String.hashCode, as
for groups); the leader of that partition coordinates it through a TxnShard. A transaction
moves Empty/Complete* -> Ongoing (AddPartitionsToTxn, AddOffsetsToTxn) -> PrepareCommit or
PrepareAbort (EndTxn, or the coordinator aborting it) -> CompleteCommit/CompleteAbort; the
decision is the Prepare* record, so once it is committed the coordinator (or the next one,
after replaying the log) writes the markers to every partition of the transaction and then the
Complete* record, however often it crashes in between. That completion, the coordinator's own
aborts and the expiry of idle ids are completion.py's; this module answers the requests.

Fencing. InitProducerId bumps the producer epoch of the id; a transaction still open then is
aborted under the new epoch first, so every partition of it refuses the old epoch. Requests
with an older epoch get PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before the versions that know
it). A transaction open longer than its timeout is aborted the same way.

KIP-890. Part 1: a transactional produce to a partition not yet in the transaction is refused
(INVALID_TXN_STATE) instead of starting a transaction the coordinator does not know about
(`verify`). Part 2 (EndTxn v5, transaction version 2): every transaction ends with an epoch bump
that the client learns from the EndTxn response, and its markers carry the bumped epoch, so a
late EndTxn or produce of the finished transaction cannot touch the next one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import structlog
from msgspec import Struct

from rafka.broker.coordinator.internal_topic import (
    OFFSETS_TOPIC,
    TXN_TOPIC,
    CoordinatorLocation,
    InternalTopicCoordinator,
)
from rafka.broker.coordinator.txn.completion import TxnCompletion
from rafka.broker.coordinator.txn.context import TxnConfig
from rafka.broker.coordinator.txn.metadata import (
    COMPLETED,
    MAX_PRODUCER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    PREPARED,
    TopicPartition,
    TxnMetadata,
)
from rafka.broker.coordinator.txn.records import TxnState
from rafka.broker.coordinator.txn.shard import TxnShard
from rafka.broker.partition.clock import now_ms
from rafka.broker.partition.replica import Partition
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.coordinator.txn.context import TxnNode

log = structlog.get_logger(__name__)

# How long EndTxn waits for the markers and the Complete* record before answering anyway (the
# outcome is decided by then; the completion goes on in the background). Waiting means the
# data is visible when the producer learns of its commit, and its next transaction is not
# refused with CONCURRENT_TRANSACTIONS while the previous one completes.
END_TXN_MARKER_WAIT_S = 5.0
_IMPLICIT_ADD_ATTEMPTS = 100
_IMPLICIT_ADD_BACKOFF_S = 0.01


class TxnError(Exception):
    """A request-level error of the coordinator."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code


class InitResult(Struct, frozen=True):
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


class TransactionCoordinator(InternalTopicCoordinator[TxnShard]):
    topic = TXN_TOPIC
    kind = "transaction"
    error_type = TxnError

    def __init__(
        self,
        broker: TxnNode,
        config: TxnConfig | None = None,
        wall_clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__(broker)
        self.config = config or TxnConfig.from_broker_config(broker.config)
        self.wall_clock = wall_clock
        self._add_locks: dict[str, list[Any]] = {}  # id -> [lock, users]
        self.completion = TxnCompletion(self)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        self.sync_leadership()
        self.completion.start()

    async def stop(self) -> None:
        self._running = False
        await self.completion.stop()
        for shard in list(self.shards.values()):
            self._unload(shard)

    @property
    def running(self) -> bool:
        return self._running

    def _new_shard(self, index: int, partition: Partition) -> TxnShard:
        return TxnShard(index, partition)

    def _on_loaded(self, shard: TxnShard) -> None:
        self.completion.resume(shard)

    # -- placement ----------------------------------------------------------------------------

    def _default_partitions(self) -> int:
        return self.config.state_partitions

    def is_local(self, transactional_id: str) -> bool:
        """Whether this broker holds the transaction state partition of the id at all."""
        topic = self.broker.topic(TXN_TOPIC)
        if topic is None:
            return True  # no transaction exists anywhere yet
        partition = self.broker.partition(TXN_TOPIC, self.partition_for(transactional_id))
        return partition is not None and partition.is_leader

    def _topic_settings(self) -> tuple[int, int, dict[str, str]]:
        return (
            self.config.state_partitions,
            self.config.replication_factor,
            {
                "cleanup.policy": "compact",
                "compression.type": "uncompressed",
                "min.insync.replicas": str(self.config.min_isr),
                "segment.bytes": str(self.config.segment_bytes),
            },
        )

    async def ensure_topic(self) -> None:
        await self._ensure_topic()

    async def find_coordinator(self, transactional_id: str) -> CoordinatorLocation:
        return await self._locate(transactional_id, "transaction state topic")

    # -- InitProducerId -----------------------------------------------------------------------

    async def init_producer_id(
        self,
        transactional_id: str,
        timeout_ms: int,
        expected_producer_id: int = NO_PRODUCER_ID,
        expected_epoch: int = NO_PRODUCER_EPOCH,
    ) -> InitResult:
        if not transactional_id:
            return InitResult(ErrorCode.invalid_request)
        if not 0 < timeout_ms <= self.config.max_timeout_ms:
            return InitResult(ErrorCode.invalid_transaction_timeout)
        try:
            shard = self.shard_for(transactional_id)
        except TxnError as exc:
            return InitResult(exc.code)
        txn = shard.txns.get(transactional_id)
        if txn is None:
            producer_id = await self.broker.metadata.allocate_producer_id()
            if not shard.active:
                return InitResult(ErrorCode.not_coordinator)
            txn = shard.txns.get(transactional_id)
            if txn is None:
                txn = TxnMetadata(
                    transactional_id,
                    producer_id,
                    NO_PRODUCER_EPOCH,
                    timeout_ms,
                    last_update_timestamp=self.wall_clock(),
                )
                shard.txns[transactional_id] = txn
        if txn.pending or txn.state in PREPARED or txn.state is TxnState.PREPARE_EPOCH_FENCE:
            return InitResult(ErrorCode.concurrent_transactions)
        if txn.state is TxnState.ONGOING:
            # Abort it under a bumped epoch first; the producer retries and bumps again.
            self.completion.fence_and_abort(shard, txn)
            return InitResult(ErrorCode.concurrent_transactions)
        if txn.state not in COMPLETED:
            return InitResult(ErrorCode.concurrent_transactions)
        if expected_producer_id != NO_PRODUCER_ID and txn.producer_epoch != NO_PRODUCER_EPOCH:
            # KIP-360: a producer recovering with its current id and epoch.
            retry_of_bump = (
                expected_producer_id == txn.producer_id
                and expected_epoch == txn.last_producer_epoch
            ) or (
                expected_producer_id == txn.previous_producer_id
                and expected_epoch >= MAX_PRODUCER_EPOCH - 1
            )
            if retry_of_bump:
                return InitResult(ErrorCode.none, txn.producer_id, txn.producer_epoch)
            if expected_producer_id != txn.producer_id or expected_epoch != txn.producer_epoch:
                return InitResult(ErrorCode.producer_fenced)
        now = self.wall_clock()
        target = txn.evolve(
            timeout_ms=timeout_ms,
            state=TxnState.EMPTY,
            partitions=set(),
            start_timestamp=-1,
            last_update_timestamp=now,
            client_transaction_version=0,
            next_producer_id=NO_PRODUCER_ID,
        )
        if txn.epoch_exhausted:
            target.previous_producer_id = txn.producer_id
            target.producer_id = await self.broker.metadata.allocate_producer_id()
            target.producer_epoch = 0
            target.last_producer_epoch = NO_PRODUCER_EPOCH
            if txn.pending or txn.state not in COMPLETED:
                return InitResult(ErrorCode.concurrent_transactions)
        else:
            target.producer_epoch = txn.producer_epoch + 1
            target.last_producer_epoch = txn.producer_epoch
        code = await shard.write(txn, target)
        if code is not ErrorCode.none:
            if txn.producer_epoch == NO_PRODUCER_EPOCH and shard.txns.get(transactional_id) is txn:
                del shard.txns[transactional_id]  # never written: forget it
            return InitResult(code)
        log.info(
            "transactional producer initialised",
            transactional_id=transactional_id,
            producer_id=txn.producer_id,
            producer_epoch=txn.producer_epoch,
        )
        return InitResult(ErrorCode.none, txn.producer_id, txn.producer_epoch)

    # -- AddPartitionsToTxn / AddOffsetsToTxn ---------------------------------------------------

    async def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> ErrorCode:
        """Add partitions to the id's ongoing transaction (starting one if none is open)."""
        wanted = set(partitions)
        shard = self.shard_for(transactional_id)
        txn = shard.txns.get(transactional_id)
        code = self._check_producer(txn, producer_id, producer_epoch)
        if code is not ErrorCode.none:
            return code
        assert txn is not None
        if txn.pending or txn.state in PREPARED or txn.state is TxnState.PREPARE_EPOCH_FENCE:
            return ErrorCode.concurrent_transactions
        if txn.state is TxnState.ONGOING and wanted <= txn.partitions:
            return ErrorCode.none
        if txn.state is not TxnState.ONGOING and txn.state not in COMPLETED:
            return ErrorCode.invalid_txn_state
        now = self.wall_clock()
        target = txn.evolve(
            state=TxnState.ONGOING,
            partitions=txn.partitions | wanted,
            last_update_timestamp=now,
            start_timestamp=now if txn.state in COMPLETED else txn.start_timestamp,
        )
        return await shard.write(txn, target)

    def verify(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        topic: str,
        partition: int,
    ) -> tuple[ErrorCode, str | None]:
        """KIP-890 part 1: may this producer write transactional data to this partition?

        (NONE, None) if the partition is in the id's ongoing transaction under this producer
        id and epoch. A transaction state partition led by another broker cannot be asked
        in-process, so that case is let through.
        """
        if not self.is_local(transactional_id):
            return ErrorCode.none, None
        try:
            shard = self.shard_for(transactional_id)
        except TxnError as exc:
            if exc.code is ErrorCode.not_coordinator:
                return ErrorCode.invalid_txn_state, "no transaction state for the id"
            return ErrorCode.not_enough_replicas, "transaction coordinator not ready"
        txn = shard.txns.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return ErrorCode.invalid_txn_state, "producer id does not match the transactional id"
        if producer_epoch != txn.producer_epoch:
            return (
                ErrorCode.invalid_producer_epoch,
                f"producer epoch {producer_epoch} is not the current one {txn.producer_epoch}",
            )
        if txn.state is not TxnState.ONGOING or (topic, partition) not in txn.partitions:
            return ErrorCode.invalid_txn_state, "Partition was not added to the transaction"
        return ErrorCode.none, None

    def current_producer(self, transactional_id: str) -> tuple[int, int] | None:
        """(producer id, epoch) the coordinator holds for the id, if it coordinates it."""
        try:
            txn = self.shard_for(transactional_id).txns.get(transactional_id)
        except TxnError:
            return None
        return None if txn is None else (txn.producer_id, txn.producer_epoch)

    @staticmethod
    def _check_producer(
        txn: TxnMetadata | None, producer_id: int, producer_epoch: int
    ) -> ErrorCode:
        if txn is None or txn.producer_id != producer_id:
            return ErrorCode.invalid_producer_id_mapping
        if txn.producer_epoch != producer_epoch:
            return ErrorCode.producer_fenced
        return ErrorCode.none

    async def add_implicitly(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partition: TopicPartition,
    ) -> tuple[ErrorCode, str | None]:
        """Transaction version 2 (Produce v12, TxnOffsetCommit v5): the write itself adds its
        partition to the transaction. Adds of one id run one at a time, in arrival order, so
        the produce that asked first also appends first."""
        entry = self._add_locks.setdefault(transactional_id, [asyncio.Lock(), 0])
        lock: asyncio.Lock = entry[0]
        entry[1] += 1
        try:
            async with lock:
                code, message = self.verify(
                    transactional_id, producer_id, producer_epoch, *partition
                )
                if code is not ErrorCode.invalid_txn_state:
                    return code, message
                for _ in range(_IMPLICIT_ADD_ATTEMPTS):
                    try:
                        code = await self.add_partitions(
                            transactional_id, producer_id, producer_epoch, [partition]
                        )
                    except TxnError as exc:
                        code = exc.code
                    if code is not ErrorCode.concurrent_transactions:
                        break
                    await asyncio.sleep(_IMPLICIT_ADD_BACKOFF_S)  # the previous end completing
                return code, None
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._add_locks[transactional_id]

    # -- EndTxn ---------------------------------------------------------------------------------

    async def end_txn(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        transaction_version: int = 0,
    ) -> InitResult:
        """Commit or abort; with transaction version 2 the answer carries the bumped epoch."""
        shard = self.shard_for(transactional_id)
        txn = shard.txns.get(transactional_id)
        if txn is None:
            return InitResult(ErrorCode.invalid_producer_id_mapping)
        prepared = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        complete = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        tv2 = transaction_version >= 2
        # TV2: a retry carries the epoch the transaction had before its end bumped it.
        retry = (
            tv2
            and producer_id == txn.producer_id
            and producer_epoch == txn.last_producer_epoch
            and txn.state in (prepared, complete)
        ) or (
            tv2
            and producer_id == txn.previous_producer_id
            and txn.state is complete
            and producer_epoch >= MAX_PRODUCER_EPOCH - 1
        )
        current = InitResult(ErrorCode.none, txn.producer_id, txn.producer_epoch)
        if retry:
            if txn.state is prepared or txn.pending:
                return InitResult(ErrorCode.concurrent_transactions)
            return current
        code = self._check_producer(txn, producer_id, producer_epoch)
        if code is not ErrorCode.none:
            return InitResult(code)
        if txn.pending or txn.state is TxnState.PREPARE_EPOCH_FENCE:
            return InitResult(ErrorCode.concurrent_transactions)
        if txn.state is prepared:
            return InitResult(ErrorCode.concurrent_transactions)
        if txn.state is complete and not tv2:
            return current  # TV1: the retry of an EndTxn that succeeded
        empty_abort = tv2 and not commit and txn.state in COMPLETED
        if txn.state is not TxnState.ONGOING and not empty_abort:
            return InitResult(ErrorCode.invalid_txn_state)
        now = self.wall_clock()
        target = txn.evolve(state=prepared, last_update_timestamp=now)
        if empty_abort:
            target.partitions = set()
            target.start_timestamp = now
        if tv2:
            target.client_transaction_version = transaction_version
            target.last_producer_epoch = txn.producer_epoch
            if txn.epoch_exhausted:
                state_before = txn.state
                target.next_producer_id = await self.broker.metadata.allocate_producer_id()
                if txn.pending or txn.state is not state_before:
                    return InitResult(ErrorCode.concurrent_transactions)
            target.producer_epoch = min(txn.producer_epoch + 1, MAX_PRODUCER_EPOCH)
        code = await shard.write(txn, target)
        if code is not ErrorCode.none:
            return InitResult(code)
        done = self.completion.start_completion(shard, txn)
        await asyncio.wait([done], timeout=END_TXN_MARKER_WAIT_S)
        if txn.next_producer_id != NO_PRODUCER_ID:
            return InitResult(ErrorCode.none, txn.next_producer_id, 0)
        return InitResult(ErrorCode.none, txn.producer_id, txn.producer_epoch)

    # -- describing and listing -----------------------------------------------------------------

    def describe(self, transactional_id: str) -> tuple[ErrorCode, TxnMetadata | None]:
        try:
            shard = self.shard_for(transactional_id)
        except TxnError as exc:
            return exc.code, None
        txn = shard.txns.get(transactional_id)
        if txn is None:
            return ErrorCode.transactional_id_not_found, None
        return ErrorCode.none, txn

    def list_transactions(
        self,
        states: set[str],
        producer_ids: set[int],
        min_duration_ms: int = -1,
        pattern: str | None = None,
    ) -> tuple[ErrorCode, list[str], list[TxnMetadata]]:
        """(error, unknown state filters, matching transactions)."""
        self.sync_leadership()
        unknown = [s for s in states if TxnState.from_display_name(s) is None]
        wanted = {TxnState.from_display_name(s) for s in states} - {None}
        regex = re.compile(pattern) if pattern else None
        if self.any_loading():
            return ErrorCode.coordinator_load_in_progress, unknown, []
        now = self.wall_clock()
        out = []
        for shard in self.shards.values():
            for txn in shard.txns.values():
                if states and txn.state not in wanted:
                    continue
                if producer_ids and txn.producer_id not in producer_ids:
                    continue
                if min_duration_ms >= 0 and (
                    txn.state is not TxnState.ONGOING
                    or now - txn.start_timestamp < min_duration_ms
                ):
                    continue
                if regex is not None and not regex.fullmatch(txn.transactional_id):
                    continue
                out.append(txn)
        return ErrorCode.none, unknown, sorted(out, key=lambda t: t.transactional_id)

    # -- offsets partition ------------------------------------------------------------------------

    def offsets_partition_for(self, group_id: str) -> TopicPartition:
        return OFFSETS_TOPIC, self.broker.groups.partition_for(group_id)
