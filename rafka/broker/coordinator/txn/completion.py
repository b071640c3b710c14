"""Completing decided transactions, and the transactions the coordinator ends on its own.

Once a PrepareCommit/PrepareAbort record is committed the outcome is decided: the markers go to
every partition of the transaction, then the Complete* record is written, retried until it
sticks or the shard is no longer ours (the next coordinator replays the Prepare* record and
completes it). A transaction open past its timeout, or still open when its producer calls
InitProducerId again, is aborted under a bumped epoch the same way. A periodic sweep finds the
timed-out transactions and expires the transactional ids idle for transactional.id.expiration.ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from rafka.broker.coordinator.txn.markers import RETRY_BACKOFF_S, write_markers
from rafka.broker.coordinator.txn.metadata import (
    COMPLETED,
    MAX_PRODUCER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    PREPARED,
    TxnMetadata,
)
from rafka.broker.coordinator.txn.records import TxnState
from rafka.broker.coordinator.txn.shard import TxnShard
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.coordinator.txn.context import TxnContext

log = structlog.get_logger(__name__)


class TxnCompletion:
    def __init__(self, coordinator: TxnContext) -> None:
        self.coordinator = coordinator
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Per transaction being completed: resolves once it is Complete* (or given up).
        self._completions: dict[int, asyncio.Future[None]] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="txn-timeouts")

    async def stop(self) -> None:
        tasks = [t for t in (self._sweeper, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def resume(self, shard: TxnShard) -> None:
        """A shard just loaded: decided transactions whose markers may be missing finish now."""
        for txn in list(shard.txns.values()):
            if txn.state in PREPARED:
                self._spawn(self._complete(shard, txn), f"complete {txn.transactional_id}")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- completion: markers, then Complete* ----------------------------------------------------

    def start_completion(self, shard: TxnShard, txn: TxnMetadata) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._completions[id(txn)] = done
        self._spawn(self._complete(shard, txn), f"complete {txn.transactional_id}")
        return done

    def fence_and_abort(self, shard: TxnShard, txn: TxnMetadata) -> None:
        """Abort an ongoing transaction under a bumped epoch (timeout, or InitProducerId)."""
        txn.pending = True  # before the task runs: concurrent requests must see it

        async def run() -> None:
            epoch = txn.producer_epoch
            target = txn.evolve(
                state=TxnState.PREPARE_ABORT,
                producer_epoch=min(epoch + 1, MAX_PRODUCER_EPOCH),
                last_producer_epoch=epoch,
                last_update_timestamp=self.coordinator.wall_clock(),
            )
            code = await shard.write(txn, target)
            if code is ErrorCode.none:
                log.info(
                    "transaction aborted by the coordinator",
                    transactional_id=txn.transactional_id,
                    producer_id=txn.producer_id,
                    producer_epoch=txn.producer_epoch,
                )
                self.start_completion(shard, txn)
            else:
                log.warning(
                    "could not abort transaction",
                    transactional_id=txn.transactional_id,
                    error=code.name,
                )

        self._spawn(run(), f"fence {txn.transactional_id}")

    def _keep_trying(self, shard: TxnShard) -> Callable[[], bool]:
        return lambda: self.coordinator.running and shard.active and shard.still_leader()

    async def _complete(self, shard: TxnShard, txn: TxnMetadata) -> None:
        commit = txn.state is TxnState.PREPARE_COMMIT
        keep_trying = self._keep_trying(shard)
        try:
            written = await write_markers(
                self.coordinator.broker,
                set(txn.partitions),
                txn.producer_id,
                txn.producer_epoch,
                shard.coordinator_epoch,
                commit,
                txn.client_transaction_version,
                keep_trying,
            )
            if not written:
                return
            while keep_trying():
                if txn.state not in PREPARED or shard.txns.get(txn.transactional_id) is not txn:
                    return
                target = txn.evolve(
                    state=TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT,
                    partitions=set(),
                    last_update_timestamp=self.coordinator.wall_clock(),
                )
                if txn.next_producer_id != NO_PRODUCER_ID:  # TV2: the epoch ran out
                    target.previous_producer_id = txn.producer_id
                    target.producer_id = txn.next_producer_id
                    target.producer_epoch = 0
                    target.next_producer_id = NO_PRODUCER_ID
                    target.last_producer_epoch = NO_PRODUCER_EPOCH
                code = await shard.write(txn, target)
                if code is ErrorCode.none:
                    return
                log.warning(
                    "could not complete transaction; retrying",
                    transactional_id=txn.transactional_id,
                    error=code.name,
                )
                await asyncio.sleep(RETRY_BACKOFF_S)
        finally:
            done = self._completions.pop(id(txn), None)
            if done is not None and not done.done():
                done.set_result(None)

    # -- timeouts and expiration ------------------------------------------------------------

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        abort_every = self.coordinator.config.abort_interval_ms / 1000
        next_removal = loop.time() + self.coordinator.config.remove_interval_ms / 1000
        while self.coordinator.running:
            await asyncio.sleep(abort_every)
            try:
                self.abort_timed_out_transactions()
                if loop.time() >= next_removal:
                    self.remove_expired_transactional_ids()
                    next_removal = loop.time() + self.coordinator.config.remove_interval_ms / 1000
            except Exception:  # one bad transaction must not stop the sweeps
                log.exception("transaction sweep failed")

    def abort_timed_out_transactions(self) -> int:
        now = self.coordinator.wall_clock()
        aborted = 0
        for shard in list(self.coordinator.shards.values()):
            if not shard.active or not shard.still_leader():
                continue
            for txn in list(shard.txns.values()):
                if (
                    txn.state is TxnState.ONGOING
                    and not txn.pending
                    and txn.start_timestamp + txn.timeout_ms < now
                ):
                    log.info(
                        "transaction timed out",
                        transactional_id=txn.transactional_id,
                        timeout_ms=txn.timeout_ms,
                    )
                    self.fence_and_abort(shard, txn)
                    aborted += 1
        return aborted

    def remove_expired_transactional_ids(self) -> int:
        now = self.coordinator.wall_clock()
        expiration_ms = self.coordinator.config.id_expiration_ms
        removed = 0
        for shard in list(self.coordinator.shards.values()):
            if not shard.active or not shard.still_leader():
                continue
            for txn in list(shard.txns.values()):
                if (
                    txn.state in COMPLETED
                    and not txn.pending
                    and txn.last_update_timestamp + expiration_ms <= now
                ):
                    txn.pending = True
                    self._spawn(shard.write(txn, None), f"expire {txn.transactional_id}")
                    removed += 1
        if removed:
            log.info("transactional ids expired", count=removed)
        return removed
