"""The share groups of one broker, in memory: membership, share sessions and share-partition
states, with the timers of acquisition locks and member sessions on the event loop.

First slice (issue 20): nothing here is written anywhere. A restart forgets the groups, every
share-partition start offset and every acknowledgement (Kafka keeps them in
`__share_group_state`); the next fetch starts again at `share.auto.offset.reset` (latest).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from rafka.broker.share.group import ShareGroups
from rafka.broker.share.partition_state import SharePartitionState
from rafka.broker.share.sessions import ShareSessions

ShareKey = tuple[str, uuid.UUID, int]  # group id, topic id, partition index


@dataclass(frozen=True, slots=True)
class ShareConfig:
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 5000
    record_lock_duration_ms: int = 30000
    delivery_count_limit: int = 5
    partition_max_record_locks: int = 2000
    max_size: int = 200
    max_share_sessions: int = 2000


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class ShareService:
    def __init__(self, config: ShareConfig, clock: Callable[[], int] = monotonic_ms) -> None:
        self.config = config
        self.clock = clock
        self.groups = ShareGroups(
            config.session_timeout_ms, config.heartbeat_interval_ms, config.max_size
        )
        self.sessions = ShareSessions(config.max_share_sessions)
        self.partitions: dict[ShareKey, SharePartitionState] = {}
        self._waiters: set[asyncio.Future[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None

    # -- share partitions --------------------------------------------------------------------

    def share_partition(
        self, group_id: str, topic_id: uuid.UUID, index: int, initial_start: Callable[[], int]
    ) -> SharePartitionState:
        """The group's state of a partition, created at `initial_start()` on first use."""
        key = (group_id, topic_id, index)
        state = self.partitions.get(key)
        if state is None:
            state = self.partitions[key] = SharePartitionState(
                initial_start(),
                lock_duration_ms=self.config.record_lock_duration_ms,
                delivery_limit=self.config.delivery_count_limit,
                max_in_flight=self.config.partition_max_record_locks,
            )
        return state

    def release_member(self, group_id: str, member_id: str) -> None:
        """A member's share session closed or the member left: its acquired records go back."""
        released = False
        for (group, _, _), state in self.partitions.items():
            if group == group_id:
                released |= state.release_member(member_id)
        if released:
            self.notify()

    def member_gone(self, group_id: str, member_id: str) -> None:
        self.sessions.close(group_id, member_id)
        self.release_member(group_id, member_id)

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
        for state in self.partitions.values():
            woke |= state.expire(now)
        for group_id, member_id in self.groups.expire(now):
            self.member_gone(group_id, member_id)
        if woke:
            self.notify()
        self.reschedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        self.notify()
