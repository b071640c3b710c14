"""The state of one share partition (a share group's view of one topic partition), sans-I/O:
every call that depends on time takes `now_ms`, so tests drive the clock.

Offsets below the share-partition start offset (SPSO) are done with. Offsets in
[start_offset, end_offset) are in flight, each in one of Kafka's record states: AVAILABLE (may be
acquired), ACQUIRED (locked to one member until its acquisition lock expires), ACKNOWLEDGED
(accepted) or ARCHIVED (rejected, past the delivery limit, or never deliverable: control records
and gaps). Offsets at or past end_offset have never been acquired. Delivery counts rise with each
acquisition; a record released (by RELEASE, a lock expiry or its member leaving) becomes
AVAILABLE again unless it was delivered `delivery_limit` times, then it is ARCHIVED. The start
offset moves past every leading ACKNOWLEDGED or ARCHIVED record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import IntEnum

from msgspec import Struct

from rafka.protocol.errors import ErrorCode


class RecordState(IntEnum):
    """Kafka's record states (the ids its share-group state records use)."""

    AVAILABLE = 0
    ACQUIRED = 1
    ACKNOWLEDGED = 2
    ARCHIVED = 4


class AckType(IntEnum):
    """AcknowledgementBatch.AcknowledgeTypes: 0 gap, 1 accept, 2 release, 3 reject, 4 renew
    (renew: ShareFetch/ShareAcknowledge v2, KIP-1222)."""

    GAP = 0
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3
    RENEW = 4


class InFlight(Struct):
    state: RecordState
    delivery_count: int
    member_id: str | None = None
    deadline_ms: int = 0


class AcquiredRange(Struct, frozen=True):
    """AcquiredRecords of a ShareFetch response: consecutive offsets with one delivery count."""

    first_offset: int
    last_offset: int
    delivery_count: int


class BatchSpan(Struct, frozen=True):
    """The offsets a record batch of the fetched data covers."""

    base_offset: int
    last_offset: int
    is_control: bool = False
    # Of a transaction that aborted, read for a read_committed group: never delivered.
    aborted: bool = False


class AckBatch(Struct, frozen=True):
    """One AcknowledgementBatch: one type for the whole range, or one per offset."""

    first_offset: int
    last_offset: int
    types: tuple[int, ...]


class AckError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SharePartitionState:
    def __init__(
        self,
        start_offset: int,
        *,
        lock_duration_ms: int,
        delivery_limit: int,
        max_in_flight: int,
    ) -> None:
        self.start_offset = start_offset
        self.end_offset = start_offset
        self.lock_duration_ms = lock_duration_ms
        self.delivery_limit = delivery_limit
        self.max_in_flight = max_in_flight
        self.records: dict[int, InFlight] = {}
        # Offsets whose durable state (delivery state, count) changed since `take_changes`.
        self.dirty: set[int] = set()
        self.leader_epoch = -1  # of the topic partition this state was loaded in
        # Of the durable state it was loaded from: its writes carry it, so that once the
        # offsets are altered (the state epoch raised) they are fenced.
        self.state_epoch = 0

    @classmethod
    def restored(
        cls,
        start_offset: int,
        records: dict[int, tuple[int, int]],
        *,
        lock_duration_ms: int,
        delivery_limit: int,
        max_in_flight: int,
    ) -> SharePartitionState:
        """The state as persisted: (delivery state, count) per offset at or past the start.
        Offsets between the start and the last persisted one without an entry were at most
        acquired (not persisted): they are AVAILABLE with no delivery."""
        state = cls(
            start_offset,
            lock_duration_ms=lock_duration_ms,
            delivery_limit=delivery_limit,
            max_in_flight=max_in_flight,
        )
        kept = {o: r for o, r in records.items() if o >= start_offset}
        if kept:
            state.end_offset = max(kept) + 1
            for offset in range(start_offset, state.end_offset):
                code, count = kept.get(offset, (RecordState.AVAILABLE, 0))
                state.records[offset] = InFlight(RecordState(code), count)
        state._advance_start()
        return state

    # -- reading ---------------------------------------------------------------------------

    def state_of(self, offset: int) -> RecordState | None:
        """An in-flight record's state; None below the start offset or never acquired."""
        record = self.records.get(offset)
        return None if record is None else record.state

    def delivery_count(self, offset: int) -> int:
        record = self.records.get(offset)
        return 0 if record is None else record.delivery_count

    def next_deadline(self) -> int | None:
        """When the earliest acquisition lock expires."""
        deadlines = [
            r.deadline_ms for r in self.records.values() if r.state is RecordState.ACQUIRED
        ]
        return min(deadlines) if deadlines else None

    def acquirable_from(self, high_watermark: int) -> int | None:
        """The lowest offset a fetch could acquire now: the first AVAILABLE in-flight record,
        else the first never acquired one below the high watermark (within the in-flight cap)."""
        available = [
            offset for offset, r in self.records.items() if r.state is RecordState.AVAILABLE
        ]
        if available:
            return min(available)
        if self.end_offset < high_watermark and self._room() > 0:
            return self.end_offset
        return None

    def take_changes(self) -> dict[int, tuple[int, int]]:
        """(delivery state, count) of the offsets changed since the last call, as they are to
        be persisted: an offset acquired again meanwhile is AVAILABLE with the count before
        that acquisition (acquisitions are not persisted)."""
        changes: dict[int, tuple[int, int]] = {}
        for offset in self.dirty:
            record = self.records.get(offset)
            if offset < self.start_offset or record is None:
                continue
            if record.state is RecordState.ACQUIRED:
                changes[offset] = (RecordState.AVAILABLE, record.delivery_count - 1)
            else:
                changes[offset] = (record.state, record.delivery_count)
        self.dirty.clear()
        return changes

    def _room(self) -> int:
        return self.max_in_flight - (self.end_offset - self.start_offset)

    # -- changes ---------------------------------------------------------------------------

    def move_start(self, log_start_offset: int) -> None:
        """Records deleted from the log (retention, DeleteRecords) are skipped."""
        if log_start_offset <= self.start_offset:
            return
        for offset in [o for o in self.records if o < log_start_offset]:
            del self.records[offset]
        self.start_offset = log_start_offset
        self.end_offset = max(self.end_offset, log_start_offset)

    def acquire(
        self,
        member_id: str,
        spans: Iterable[BatchSpan],
        high_watermark: int,
        max_records: int,
        now_ms: int,
    ) -> list[AcquiredRange]:
        """Acquire for `member_id` up to `max_records` records among the fetched batches
        `spans`: AVAILABLE in-flight records and never acquired ones below the high watermark.
        Control records and aborted transactions' records are archived, never delivered."""
        self.expire(now_ms)
        deadline = now_ms + self.lock_duration_ms
        ranges: list[AcquiredRange] = []
        taken = 0
        for span in spans:
            undeliverable = span.is_control or span.aborted
            for offset in range(max(span.base_offset, self.start_offset), span.last_offset + 1):
                if taken >= max_records:
                    break
                record = self.records.get(offset)
                if record is not None:
                    if record.state is not RecordState.AVAILABLE:
                        continue
                    if undeliverable:
                        # Available (released before the group turned read_committed, or a
                        # gap of a restored state): archived as when first seen.
                        self._settle(record, RecordState.ARCHIVED)
                        self.dirty.add(offset)
                        continue
                elif offset < self.end_offset or offset >= high_watermark:
                    continue  # settled earlier (or absent from the log), or not committed yet
                elif self._room() <= 0:
                    break
                else:
                    # Offsets the log no longer has (compaction) between end_offset and here.
                    self.end_offset = offset + 1
                    if undeliverable:
                        self.records[offset] = InFlight(RecordState.ARCHIVED, 0)
                        self.dirty.add(offset)
                        continue
                    record = self.records[offset] = InFlight(RecordState.AVAILABLE, 0)
                record.state = RecordState.ACQUIRED
                record.delivery_count += 1
                record.member_id = member_id
                record.deadline_ms = deadline
                taken += 1
                last = ranges[-1] if ranges else None
                if (
                    last is not None
                    and last.last_offset == offset - 1
                    and last.delivery_count == record.delivery_count
                ):
                    ranges[-1] = AcquiredRange(last.first_offset, offset, last.delivery_count)
                else:
                    ranges.append(AcquiredRange(offset, offset, record.delivery_count))
        self._advance_start()
        return ranges

    def acknowledge(self, member_id: str, batches: Sequence[AckBatch], now_ms: int) -> None:
        """Apply a member's acknowledgements, all or nothing: every offset must be ACQUIRED by
        that member (INVALID_RECORD_STATE otherwise, an expired lock included)."""
        self.expire(now_ms)
        changes: list[tuple[int, InFlight, AckType]] = []
        previous_last = -1
        for batch in batches:
            span = batch.last_offset - batch.first_offset + 1
            if span <= 0 or batch.first_offset <= previous_last:
                raise AckError(ErrorCode.invalid_request, "acknowledgement batches out of order")
            if len(batch.types) not in (1, span):
                raise AckError(ErrorCode.invalid_request, "acknowledge types do not match")
            try:
                types = [AckType(t) for t in batch.types]
            except ValueError:
                raise AckError(ErrorCode.invalid_request, "unknown acknowledge type") from None
            previous_last = batch.last_offset
            for i in range(span):
                offset = batch.first_offset + i
                record = self.records.get(offset)
                if (
                    record is None
                    or record.state is not RecordState.ACQUIRED
                    or record.member_id != member_id
                ):
                    raise AckError(
                        ErrorCode.invalid_record_state,
                        f"offset {offset} is not acquired by member {member_id}",
                    )
                changes.append((offset, record, types[0] if len(types) == 1 else types[i]))
        for offset, record, kind in changes:
            if kind is not AckType.RENEW:
                self.dirty.add(offset)
            if kind is AckType.ACCEPT:
                self._settle(record, RecordState.ACKNOWLEDGED)
            elif kind in (AckType.REJECT, AckType.GAP):
                self._settle(record, RecordState.ARCHIVED)
            elif kind is AckType.RELEASE:
                self._release(record)
            else:  # RENEW: the lock starts again
                record.deadline_ms = now_ms + self.lock_duration_ms
        self._advance_start()

    def expire(self, now_ms: int) -> bool:
        """Release every record whose acquisition lock has expired; whether any was."""
        expired = [
            (o, r)
            for o, r in self.records.items()
            if r.state is RecordState.ACQUIRED and r.deadline_ms <= now_ms
        ]
        for offset, record in expired:
            self.dirty.add(offset)
            self._release(record)
        if expired:
            self._advance_start()
        return bool(expired)

    def release_member(self, member_id: str) -> bool:
        """A member left (or closed its share session): its acquired records go back."""
        held = [
            (o, r)
            for o, r in self.records.items()
            if r.state is RecordState.ACQUIRED and r.member_id == member_id
        ]
        for offset, record in held:
            self.dirty.add(offset)
            self._release(record)
        if held:
            self._advance_start()
        return bool(held)

    def _release(self, record: InFlight) -> None:
        if record.delivery_count >= self.delivery_limit:
            self._settle(record, RecordState.ARCHIVED)
        else:
            self._settle(record, RecordState.AVAILABLE)

    @staticmethod
    def _settle(record: InFlight, state: RecordState) -> None:
        record.state = state
        record.member_id = None
        record.deadline_ms = 0

    def _advance_start(self) -> None:
        records = self.records
        start = self.start_offset
        while start < self.end_offset:
            record = records.get(start)
            if record is not None:
                if record.state not in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED):
                    break
                del records[start]
            start += 1
        self.start_offset = start
