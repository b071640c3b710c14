"""The reading half of `rafka consume`: positions per partition, Fetch from their leaders, and
record batches decoded into records (control batches dropped; with read_committed, the records
of aborted transactions too, as Kafka's consumer does from the Fetch response's aborted list).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rafka.cli.console_client import ConsoleClient, FetchedPartition, retriable
from rafka.cli.kafka_client import EARLIEST, LATEST, KafkaClientError, error_name
from rafka.protocol.compression import CorruptRecordError
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import (
    HEADER_SIZE,
    ControlRecordType,
    decode_batch,
    parse_control_record_type,
    read_batch_header,
)

TopicPartition = tuple[str, int]
_BACKOFF_S = 0.1


@dataclass(slots=True, frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: str  # CreateTime or LogAppendTime, as Kafka prints them
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def decode_messages(
    fetched: FetchedPartition, position: int, read_committed: bool
) -> tuple[list[Message], int]:
    """Messages at or after `position` in a fetched record set, and the position after them.
    A batch cut short at the end of the set (the fetch size reached) is left for the next."""
    data = fetched.records
    aborted = sorted(fetched.aborted, key=lambda a: a[1])
    aborting: set[int] = set()
    out: list[Message] = []
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        header = read_batch_header(data, pos)
        if pos + header.size > len(data):
            break
        while aborted and aborted[0][1] <= header.last_offset:
            aborting.add(aborted.pop(0)[0])
        if header.last_offset < position:
            pass
        elif header.is_control:
            if parse_control_record_type(data, pos) == ControlRecordType.ABORT:
                aborting.discard(header.producer_id)
        elif not (read_committed and header.is_transactional and header.producer_id in aborting):
            _, records = decode_batch(data, pos)
            kind = "LogAppendTime" if header.is_log_append_time else "CreateTime"
            out += [
                Message(
                    fetched.topic,
                    fetched.partition,
                    r.offset,
                    r.timestamp,
                    kind,
                    r.key,
                    r.value,
                    tuple(r.headers),
                )
                for r in records
                if r.offset >= position
            ]
        position = max(position, header.last_offset + 1)
        pos += header.size
    return out, position


class Fetcher:
    """Reads assigned partitions from their positions; `reset` is auto.offset.reset."""

    def __init__(
        self,
        client: ConsoleClient,
        *,
        reset: str,
        max_wait_ms: int,
        min_bytes: int,
        max_bytes: int,
        partition_max_bytes: int,
        read_committed: bool,
    ) -> None:
        self.client = client
        self.reset = reset
        self.max_wait_ms = max_wait_ms
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self.partition_max_bytes = partition_max_bytes
        self.read_committed = read_committed
        self.positions: dict[TopicPartition, int] = {}

    def assign(
        self, partitions: Iterable[TopicPartition], starts: dict[TopicPartition, int]
    ) -> None:
        """Read `partitions` from `starts` (an offset, EARLIEST or LATEST; missing: the reset
        policy)."""
        self.positions = {}
        wanted = list(partitions)
        for tp in wanted:
            start = starts.get(tp)
            if start is None:
                if self.reset not in ("earliest", "latest"):
                    raise KafkaClientError(
                        f"no committed offset for {tp[0]}-{tp[1]} and auto.offset.reset=none"
                    )
                start = EARLIEST if self.reset == "earliest" else LATEST
            self.positions[tp] = start
        self._resolve([tp for tp in wanted if self.positions[tp] < 0])

    def _resolve(self, partitions: list[TopicPartition]) -> None:
        """Turn EARLIEST / LATEST positions into offsets with ListOffsets."""
        for timestamp in (EARLIEST, LATEST):
            tps = [tp for tp in partitions if self.positions[tp] == timestamp]
            if tps:
                self.positions.update(self._list_offsets(tps, timestamp))

    def _list_offsets(self, tps: list[TopicPartition], timestamp: int) -> dict[TopicPartition, int]:
        for attempt in range(50):
            try:
                return self.client.list_offsets(tps, timestamp)
            except KafkaClientError:
                if attempt == 49:
                    raise
                time.sleep(_BACKOFF_S)
                self._refresh()
        raise AssertionError("unreachable")

    def _refresh(self) -> None:
        topics = sorted({t for t, _ in self.positions})
        try:
            self.client.topics_metadata(topics, allow_create=False)
        except KafkaClientError:
            self.client.forget(None)

    def poll(self, max_wait_ms: int) -> Iterator[Message]:
        """One round of fetches from every leader; messages in offset order per partition.
        Positions move as messages are yielded, so a consumer may stop between two."""
        cluster = self.client.cluster()
        by_leader: dict[int, dict[TopicPartition, int]] = {}
        for tp, offset in self.positions.items():
            by_leader.setdefault(cluster.leaders.get(tp, -1), {})[tp] = offset
        if -1 in by_leader or not set(by_leader) <= set(cluster.brokers):
            time.sleep(_BACKOFF_S)
            self._refresh()
            return
        wait = max(min(self.max_wait_ms, max_wait_ms) // max(len(by_leader), 1), 0)
        for leader, positions in by_leader.items():
            try:
                fetched = self.client.fetch(
                    leader,
                    positions,
                    max_wait_ms=wait,
                    min_bytes=self.min_bytes,
                    max_bytes=self.max_bytes,
                    partition_max_bytes=self.partition_max_bytes,
                    isolation_level=1 if self.read_committed else 0,
                )
            except KafkaClientError:
                time.sleep(_BACKOFF_S)
                self._refresh()
                continue
            for part in fetched:
                yield from self._messages(part)

    def _messages(self, part: FetchedPartition) -> Iterator[Message]:
        tp = (part.topic, part.partition)
        if tp not in self.positions:
            return
        code = part.error_code
        if code == ErrorCode.offset_out_of_range:
            if self.reset not in ("earliest", "latest"):
                raise KafkaClientError(
                    f"offset {self.positions[tp]} is out of range for {tp[0]}-{tp[1]}"
                )
            self.positions[tp] = EARLIEST if self.reset == "earliest" else LATEST
            self._resolve([tp])
            return
        if code != ErrorCode.none:
            if not retriable(code):
                raise KafkaClientError(f"Fetch {tp[0]}-{tp[1]}: {error_name(code)}")
            self._refresh()
            return
        try:
            messages, end = decode_messages(part, self.positions[tp], self.read_committed)
        except CorruptRecordError as exc:
            raise KafkaClientError(f"corrupt record batch in {tp[0]}-{tp[1]}: {exc}") from None
        for message in messages:
            self.positions[tp] = message.offset + 1  # before the yield: the reader may stop
            yield message
        if tp in self.positions:
            self.positions[tp] = max(self.positions[tp], end)
