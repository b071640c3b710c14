"""Fetch sessions (KIP-227): a consumer's Fetch names only the partitions that changed, and the
answer holds only the partitions with something new.

A full fetch (session epoch 0) opens a session holding every partition it asked for; the next
fetches (epochs 1, 2, ...) add or update partitions and forget others, and the broker answers a
partition only when it has records, an error, or a high watermark or log start offset the
fetcher has not been told. Epoch -1 closes the session. As Kafka 4.3's FetchSession, which the
rules here follow: partitions that returned records move to the end of the session's order, so
that a fetch's byte limit does not starve the others; a cache of `max.incremental.fetch.session.
cache.slots` sessions evicts one idle for two minutes, or else one created two minutes ago with
fewer partitions than the new one; when neither exists, the full fetch is answered without a
session and the fetcher keeps sending full fetches. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

INVALID_SESSION_ID = 0
INITIAL_EPOCH, FINAL_EPOCH = 0, -1
# Kafka's fixed minimum age before a session can be evicted for a newer one (FetchManager).
EVICTION_MS = 120_000
# Partitions all sessions may hold (about 100 MB): a session is what a request named, and a
# thousand sessions of requests naming millions of partitions each would not fit in memory.
# Past it, full fetches get no session (as with no free slot) and an incremental fetch that
# would add partitions is refused with INVALID_FETCH_SESSION_EPOCH, which sends the client
# back to a full fetch.
MAX_CACHED_PARTITIONS = 1_000_000

PartitionKey = tuple[Hashable, int]  # (topic name, or topic id from Fetch v13, partition)


def next_epoch(epoch: int) -> int:
    if epoch < 0:
        return FINAL_EPOCH
    return 1 if epoch == 0x7FFFFFFF else epoch + 1


@dataclass(slots=True)
class CachedPartition:
    """What the fetcher asked for last, and what it was last told."""

    fetch_offset: int
    max_bytes: int
    leader_epoch: int
    high_watermark: int = -1
    log_start_offset: int = -1

    def must_answer(self, error: int, records: int, high_watermark: int, log_start: int) -> bool:
        """Whether the answer carries news for this partition; remembers what it tells."""
        news = records > 0
        if self.high_watermark != high_watermark:
            self.high_watermark = high_watermark
            news = True
        if self.log_start_offset != log_start:
            self.log_start_offset = log_start
            news = True
        if error:
            self.high_watermark = -1  # so the next answer without an error is sent too
            news = True
        return news


@dataclass(slots=True)
class FetchSession:
    id: int
    uses_topic_ids: bool
    partitions: dict[PartitionKey, CachedPartition]
    created_ms: float
    last_used_ms: float
    epoch: int = 1  # the epoch the next fetch must carry

    def update(
        self, asked: Iterable[tuple[PartitionKey, int, int, int]], forgotten: list[PartitionKey]
    ) -> None:
        """Add or update the partitions asked for (fetch offset, max bytes, leader epoch), then
        drop the forgotten ones."""
        for key, offset, max_bytes, leader_epoch in asked:
            cached = self.partitions.get(key)
            if cached is None:
                self.partitions[key] = CachedPartition(offset, max_bytes, leader_epoch)
            else:
                cached.fetch_offset, cached.max_bytes = offset, max_bytes
                cached.leader_epoch = leader_epoch
        for key in forgotten:
            self.partitions.pop(key, None)

    def move_to_end(self, keys: list[PartitionKey]) -> None:
        for key in keys:
            cached = self.partitions.pop(key, None)
            if cached is not None:
                self.partitions[key] = cached


@dataclass
class FetchSessionCache:
    max_slots: int
    clock: Callable[[], float] = field(default=lambda: time.monotonic() * 1000)
    sessions: dict[int, FetchSession] = field(default_factory=dict)  # least recently used first
    evictions: int = 0
    max_partitions: int = MAX_CACHED_PARTITIONS

    def get(self, session_id: int) -> FetchSession | None:
        return self.sessions.get(session_id)

    def remove(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)

    def touch(self, session: FetchSession) -> None:
        session.last_used_ms = self.clock()
        if self.sessions.pop(session.id, None) is not None:
            self.sessions[session.id] = session

    def create(
        self, partitions: dict[PartitionKey, CachedPartition], uses_topic_ids: bool
    ) -> int:
        """A new session's id, or INVALID_SESSION_ID when the cache has no room for it."""
        now = self.clock()
        if not self.has_room(len(partitions)):
            return INVALID_SESSION_ID
        if len(self.sessions) >= self.max_slots and not self._evict(len(partitions), now):
            return INVALID_SESSION_ID
        session_id = self._new_id()
        self.sessions[session_id] = FetchSession(session_id, uses_topic_ids, partitions, now, now)
        return session_id

    def _evict(self, size: int, now: float) -> bool:
        if not self.sessions:
            return False
        oldest = next(iter(self.sessions.values()))
        if now - oldest.last_used_ms > EVICTION_MS:
            victim: FetchSession | None = oldest
        else:
            # Kafka's rule for a cache of live sessions: a bigger session displaces the smallest
            # one old enough to be evicted (followers' sessions rank above any consumer's; rafka's
            # followers replicate through Raft and never hold one).
            old = [s for s in self.sessions.values() if now - s.created_ms > EVICTION_MS]
            victim = min(old, key=lambda s: (len(s.partitions), s.id), default=None)
            if victim is not None and len(victim.partitions) >= size:
                victim = None
        if victim is None:
            return False
        del self.sessions[victim.id]
        self.evictions += 1
        return True

    def _new_id(self) -> int:
        while True:
            session_id = random.randint(1, 0x7FFFFFFF)
            if session_id not in self.sessions:
                return session_id

    @property
    def partition_count(self) -> int:
        return sum(len(s.partitions) for s in self.sessions.values())

    def has_room(self, more: int) -> bool:
        return self.partition_count + more <= self.max_partitions
