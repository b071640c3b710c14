"""The share groups of one broker: membership, share sessions and share-partition states,
with the timers of acquisition locks and member sessions on the event loop.

Share-partition states are durable through a `SharePersister` (the share coordinator on
`__share_group_state`): a state is loaded (or, new, initialized at the high watermark and
written) before its partition is fetched in a leader epoch, and every change of a record's
durable state (acknowledged, archived, released with its delivery count) and of the start
offset is written; acknowledgements are answered once their write is committed. Acquisitions
are not persisted (Kafka neither): after a restart or failover acquired records are available
again with the delivery count of the last write. Members are written by the group coordinator
(`group_records`); share sessions stay in memory and are opened again after a restart.

A loaded state is what this broker believes durable, which the group coordinator may replace
meanwhile (share-group offsets altered or deleted, only while the group has no members). As
Kafka's share-partition leader, this one forgets a group's states once the last of the group's
share sessions here closes (so the next fetch reads what the offsets became), and its writes
carry the state epoch they were read in: a write of a replaced state is FENCED_STATE_EPOCH, and
a failed write drops the state too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Protocol

import structlog

from rafka.broker.share.group import ShareGroups
from rafka.broker.share.partition_state import SharePartitionState
from rafka.broker.share.sessions import ShareSession, ShareSessions
from rafka.broker.share.state_records import CREATE_STATE_EPOCH, PersistedShareState, ShareKey
from rafka.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

__all__ = ["ShareConfig", "ShareKey", "SharePersister", "ShareService"]


class SharePersister(Protocol):
    async def read(
        self, key: ShareKey, leader_epoch: int = -1
    ) -> tuple[ErrorCode, PersistedShareState | None]:
        """The durable state of a share partition (None: it has none yet), or an error; read
        by the leader of `leader_epoch`, which fences older leaders' writes."""
        ...

    async def write(
        self,
        key: ShareKey,
        leader_epoch: int,
        start_offset: int,
        changes: dict[int, tuple[int, int]],
        *,
        state_epoch: int,
    ) -> ErrorCode:
        """Persist the changed (delivery state, count) per offset and the start offset of a
        state read in `state_epoch` (FENCED_STATE_EPOCH once the state has been replaced)."""
        ...


@dataclass(frozen=True, slots=True)
class ShareConfig:
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 5000
    record_lock_duration_ms: int = 30000
    delivery_count_limit: int = 5
    partition_max_record_locks: int = 2000
    max_size: int = 200
    max_share_sessions: int = 2000
    # Group configs only (share.isolation.level, share.renew.acknowledge.enable).
    read_committed: bool = False
    renew_acknowledge_enabled: bool = True


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class ShareService:
    def __init__(
        self,
        config: ShareConfig,
        persister: SharePersister | None = None,
        clock: Callable[[], int] = monotonic_ms,
    ) -> None:
        self.config = config
        self.persister = persister
        self.clock = clock
        self.groups = ShareGroups(
            config.session_timeout_ms, config.heartbeat_interval_ms, config.max_size
        )
        self.sessions = ShareSessions(config.max_share_sessions)
        self.partitions: dict[ShareKey, SharePartitionState] = {}
        self._waiters: set[asyncio.Future[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._locks: dict[ShareKey, asyncio.Lock] = {}
        self._persisted_start: dict[ShareKey, int] = {}
        self._background: set[asyncio.Task[ErrorCode | None]] = set()
        # Where a new share partition starts when its group's share.auto.offset.reset is not
        # `latest` (None: latest), set by the share admin handlers (group configs).
        self.start_offsets: Callable[[ShareKey], int | None] | None = None
        # A group's settings: its group configs over `config` (None: `config` for every
        # group), set by the share handlers.
        self.group_settings: Callable[[str], ShareConfig] | None = None
        # Told of each group whose members timed out (its new epoch is to be written).
        self.on_group_changed: Callable[[str], None] | None = None

    def settings(self, group_id: str) -> ShareConfig:
        """The settings in force for `group_id` now. Read at each use, as Kafka does, so a
        changed group config reaches loaded share partitions at their next acquisition,
        release or acknowledgement (records already acquired keep their lock's deadline)."""
        return self.config if self.group_settings is None else self.group_settings(group_id)

    def partition(self, key: ShareKey) -> SharePartitionState | None:
        """The loaded state of `key`, with its group's current lock duration, delivery limit
        and in-flight limit."""
        state = self.partitions.get(key)
        if state is not None:
            self._configure(key[0], state)
        return state

    def _configure(self, group_id: str, state: SharePartitionState) -> None:
        settings = self.settings(group_id)
        state.lock_duration_ms = settings.record_lock_duration_ms
        state.delivery_limit = settings.delivery_count_limit
        state.max_in_flight = settings.partition_max_record_locks

    # -- durable state -----------------------------------------------------------------------

    def _lock(self, key: ShareKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _new_state(self, start_offset: int) -> SharePartitionState:
        return SharePartitionState(
            start_offset,
            lock_duration_ms=self.config.record_lock_duration_ms,
            delivery_limit=self.config.delivery_count_limit,
            max_in_flight=self.config.partition_max_record_locks,
        )

    async def load(
        self, key: ShareKey, leader_epoch: int, initial_start: Callable[[], int]
    ) -> ErrorCode:
        """Make the state of `key` ready to serve in `leader_epoch` of its topic partition:
        kept if loaded in that epoch, else read from the persister (a new one is written at
        `initial_start()` first). A retriable error while the state cannot be read."""
        state = self.partitions.get(key)
        if state is not None and state.leader_epoch == leader_epoch:
            return ErrorCode.none
        async with self._lock(key):
            state = self.partitions.get(key)
            if state is not None and state.leader_epoch == leader_epoch:
                return ErrorCode.none
            if state is not None:
                self.drop(key)
            if self.persister is None:
                state = self._new_state(self.initial_offset(key, initial_start))
            else:
                code, persisted = await self.persister.read(key, leader_epoch)
                if code is not ErrorCode.none:
                    return code
                if persisted is None:
                    start = self.initial_offset(key, initial_start)
                    code = await self.persister.write(
                        key, leader_epoch, start, {}, state_epoch=CREATE_STATE_EPOCH
                    )
                    if code is not ErrorCode.none:
                        return code
                    # Read back for the epoch the coordinator gave it.
                    code, persisted = await self.persister.read(key, leader_epoch)
                    if code is not ErrorCode.none:
                        return code
                    if persisted is None:  # deleted again meanwhile: the next fetch retries
                        return ErrorCode.coordinator_not_available
                state = SharePartitionState.restored(
                    persisted.start_offset,
                    persisted.records,
                    lock_duration_ms=self.config.record_lock_duration_ms,
                    delivery_limit=self.config.delivery_count_limit,
                    max_in_flight=self.config.partition_max_record_locks,
                )
                state.state_epoch = persisted.state_epoch
            state.leader_epoch = leader_epoch
            self._configure(key[0], state)
            self._persisted_start[key] = state.start_offset
            self.partitions[key] = state
            return ErrorCode.none

    def initial_offset(self, key: ShareKey, latest: Callable[[], int]) -> int:
        """The start offset of a new share partition: `latest()` (its high watermark) unless
        the group's share.auto.offset.reset names another (earliest, by_duration)."""
        chosen = None if self.start_offsets is None else self.start_offsets(key)
        return latest() if chosen is None else chosen

    async def persist(self, key: ShareKey) -> ErrorCode:
        """Write what changed in `key`'s state since its last write; NONE once committed (also
        when another write committed the changes meanwhile). A failed write drops the state,
        which the next fetch loads again from what is durable."""
        state = self.partitions.get(key)
        if self.persister is None or state is None:
            return ErrorCode.none
        async with self._lock(key):
            if self.partitions.get(key) is not state:
                return ErrorCode.not_leader_or_follower  # dropped after a failed write
            changes = state.take_changes()
            start = state.start_offset
            if not changes and start == self._persisted_start.get(key):
                return ErrorCode.none
            code = await self.persister.write(
                key, state.leader_epoch, start, changes, state_epoch=state.state_epoch
            )
            if code is not ErrorCode.none:
                # FENCED_STATE_EPOCH: the offsets were altered or deleted meanwhile; the state
                # is read again, as after any failed write.
                log.warning("share state write failed", group=key[0], topic_id=str(key[1]),
                            partition=key[2], error=code.name)  # fmt: skip
                if self.partitions.get(key) is state:
                    self.drop(key)
                return code
            self._persisted_start[key] = start
            return ErrorCode.none

    def persist_later(self, key: ShareKey) -> None:
        """Write releases nobody waits for (lock expiries, members leaving) in the background."""
        if self.persister is None:
            return
        self._background_task(self.persist(key))

    def _background_task(self, work: Coroutine[None, None, ErrorCode | None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def replace_state(
        self, key: ShareKey, write: Callable[[], Awaitable[ErrorCode]]
    ) -> ErrorCode:
        """Run `write`, which replaces or deletes `key`'s durable state (share-group offsets
        altered or deleted), after any write of its in-memory state, and forget that: the next
        fetch here loads the new one."""
        async with self._lock(key):
            code = await write()
            self.partitions.pop(key, None)
            self._persisted_start.pop(key, None)
        self.notify()
        return code

    def drop(self, key: ShareKey) -> None:
        """Forget a share partition's in-memory state (a new leader epoch, a failed write)."""
        self.partitions.pop(key, None)
        self._persisted_start.pop(key, None)
        self.notify()

    # -- share partitions --------------------------------------------------------------------

    def release_member(self, group_id: str, member_id: str) -> None:
        """A member's share session closed or the member left: its acquired records go back.
        Once the group has no share session here, its states are forgotten (Kafka's
        onGroupEmpty): its offsets may be altered now, and the next fetch must see that."""
        released = False
        for key, state in list(self.partitions.items()):
            if key[0] != group_id:
                continue
            self._configure(group_id, state)  # the delivery limit a release checks
            if state.release_member(member_id):
                released = True
                self.persist_later(key)
        if released:
            self.notify()
        if self.persister is not None and not self._has_sessions(group_id):
            for key, state in list(self.partitions.items()):
                if key[0] == group_id:
                    self._background_task(self._forget(key, state))

    def _has_sessions(self, group_id: str) -> bool:
        return any(group == group_id for group, _ in self.sessions.sessions)

    async def _forget(self, key: ShareKey, state: SharePartitionState) -> ErrorCode | None:
        """Drop `state` once what changed in it is written, unless a session of its group
        opened meanwhile (it is then still in use)."""
        code = await self.persist(key)
        if self.partitions.get(key) is state and not self._has_sessions(key[0]):
            self.drop(key)
        return code

    def forget_topic(self, topic_id: uuid.UUID) -> None:
        """A deleted topic: its share partitions here are gone (Kafka's onDeleted listener),
        with nothing more to write."""
        for key in [k for k in self.partitions if k[1] == topic_id]:
            self.drop(key)
        for key in [k for k in self._locks if k[1] == topic_id]:
            del self._locks[key]

    def member_gone(self, group_id: str, member_id: str) -> None:
        self.sessions.close(group_id, member_id)
        self.release_member(group_id, member_id)

    def session_disconnected(self, session: ShareSession) -> None:
        """The connection that opened `session` closed: as Kafka, the session ends and the
        member's acquired records go back at once (not when their locks expire). A session
        the member opened again meanwhile (on another connection) stays."""
        key = (session.group_id, session.member_id)
        if self.sessions.sessions.get(key) is session:
            self.member_gone(*key)
            self.reschedule()

    # -- waking fetches and timers -----------------------------------------------------------

    def availability(self) -> asyncio.Future[None]:
        """Resolved when records become available again (released, lock expired)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        return future

    def discard(self, future: asyncio.Future[None]) -> None:
        self._waiters.discard(future)
        future.cancel()

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def reschedule(self) -> None:
        """Arm the timer for the earliest lock expiry or member session timeout."""
        deadlines = [
            d for d in (s.next_deadline() for s in self.partitions.values()) if d is not None
        ]
        member_deadline = self.groups.next_deadline()
        if member_deadline is not None:
            deadlines.append(member_deadline)
        at = min(deadlines) if deadlines else None
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            delay = max(at - self.clock(), 0) / 1000
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = self._timer_at = None
        now = self.clock()
        woke = False
        for key, state in list(self.partitions.items()):
            self._configure(key[0], state)  # the delivery limit an expiry checks
            if state.expire(now):
                woke = True
                self.persist_later(key)
        changed = set()
        for group_id, member_id in self.groups.expire(now):
            self.member_gone(group_id, member_id)
            changed.add(group_id)
        if self.on_group_changed is not None:
            for group_id in sorted(changed):
                self.on_group_changed(group_id)
        if woke:
            self.notify()
        self.reschedule()

    def stop(self) -> None:
        for task in self._background:
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        self.notify()
