"""The sending half of `rafka produce`: per-partition batches, leaders from Metadata, retries.

Batches are sent when one reaches batch.size bytes, when the oldest record has waited linger.ms,
and at the end of input. A send that fails with a retriable error (a leader that moved, too few
replicas for the moment) is retried after a backoff that doubles up to retry.backoff.max.ms;
partitions without a leader are waited for up to max.block.ms, as Kafka's producer does.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

from rafka.cli.console_client import ConsoleClient, retriable
from rafka.cli.console_records import (
    UNKNOWN_TOPIC_GRACE_S,
    Header,
    InputError,
    Settings,
    key_partition,
)
from rafka.cli.kafka_client import KafkaClientError, error_name
from rafka.protocol.compression import Compression
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import build_batch

Record = tuple[bytes | None, bytes | None, list[Header], int]  # key, value, headers, timestamp
_RECORD_OVERHEAD = 21  # length, attributes, deltas and lengths: an upper bound per record


class Sender:
    def __init__(self, client: ConsoleClient, topic: str, settings: Settings) -> None:
        self.client = client
        self.topic = topic
        self.settings = settings
        self.codec = Compression[settings.compression.upper()]
        self.partitions = 0
        self.written = 0
        self._pending: dict[int, list[Record]] = {}
        self._pending_bytes: dict[int, int] = {}
        self._oldest: float | None = None
        self._sticky = -1

    # -- metadata -----------------------------------------------------------------------------

    def wait_for_topic(self) -> None:
        """Find (or have the broker create) the topic and its partitions' leaders."""
        start = time.monotonic()
        deadline = start + self.settings.max_block_ms / 1000
        unknown_deadline = min(deadline, start + UNKNOWN_TOPIC_GRACE_S)
        backoff = self.settings.retry_backoff_ms / 1000
        while True:
            code = self.client.topics_metadata([self.topic], allow_create=True).get(
                self.topic, ErrorCode.unknown_topic_or_partition
            )
            if code == ErrorCode.none:
                self.partitions = self.client.cluster().partitions[self.topic]
                return
            now = time.monotonic()
            if code == ErrorCode.unknown_topic_or_partition:
                if now > unknown_deadline:
                    raise KafkaClientError(f"topic {self.topic!r} does not exist")
            elif not retriable(code) or now > deadline:
                raise KafkaClientError(f"topic {self.topic!r}: {error_name(code)}")
            time.sleep(backoff)
            backoff = min(backoff * 2, self.settings.retry_backoff_max_ms / 1000)

    def _leaders(self, partitions: list[int], deadline: float) -> dict[int, list[int]]:
        """Partitions by leader, refreshing metadata until each has one or `deadline` passes."""
        backoff = self.settings.retry_backoff_ms / 1000
        while True:
            cluster = self.client.cluster()
            leaders = {p: cluster.leaders.get((self.topic, p), -1) for p in partitions}
            if all(leader in cluster.brokers for leader in leaders.values()):
                by_leader: dict[int, list[int]] = {}
                for p, leader in leaders.items():
                    by_leader.setdefault(leader, []).append(p)
                return by_leader
            if time.monotonic() > deadline:
                missing = sorted(p for p, leader in leaders.items() if leader < 0)
                raise KafkaClientError(
                    f"no leader for partition {', '.join(f'{self.topic}-{p}' for p in missing)}"
                    f" after {self.settings.max_block_ms} ms"
                )
            time.sleep(backoff)
            backoff = min(backoff * 2, self.settings.retry_backoff_max_ms / 1000)
            self._refresh()

    def _refresh(self) -> None:
        try:
            self.client.topics_metadata([self.topic], allow_create=False)
        except KafkaClientError:
            self.client.forget(None)  # the next attempt tries another broker

    # -- records ------------------------------------------------------------------------------

    def add(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: list[Header],
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        if partition is None:
            partition = key_partition(key, self.partitions) if key is not None else self._stick()
        elif not 0 <= partition < self.partitions:
            raise InputError(f"topic {self.topic!r} has no partition {partition}")
        if timestamp is None:
            timestamp = time.time_ns() // 1_000_000
        size = _RECORD_OVERHEAD + len(key or b"") + len(value or b"")
        size += sum(len(k) + len(v or b"") + 10 for k, v in headers)
        self._pending.setdefault(partition, []).append((key, value, headers, timestamp))
        self._pending_bytes[partition] = self._pending_bytes.get(partition, 0) + size
        if self._oldest is None:
            self._oldest = time.monotonic()
        if self.settings.sync or self._pending_bytes[partition] >= self.settings.batch_size:
            self.flush()
        else:
            self.send_due()

    def _stick(self) -> int:
        """Kafka's sticky partitioning for records without a key: one partition per batch."""
        if self._sticky < 0:
            self._sticky = random.randrange(self.partitions)
        return self._sticky

    def send_due(self) -> None:
        if self._oldest is not None:
            if time.monotonic() - self._oldest >= self.settings.linger_ms / 1000:
                self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        batches = {
            p: build_batch(
                [(k, v, tuple(h), ts) for k, v, h, ts in records], compression=self.codec
            )
            for p, records in self._pending.items()
        }
        self._send(batches)
        self.written += sum(map(len, self._pending.values()))
        if self._sticky in self._pending and self.partitions > 1:
            self._sticky = random.choice([p for p in range(self.partitions) if p != self._sticky])
        self._pending.clear()
        self._pending_bytes.clear()
        self._oldest = None

    def _send(self, batches: Mapping[int, bytes]) -> None:
        settings = self.settings
        remaining = dict(batches)
        backoff = settings.retry_backoff_ms / 1000
        attempt = 0
        while True:
            deadline = time.monotonic() + settings.max_block_ms / 1000
            failed: dict[int, bytes] = {}
            last_error = ""
            for leader, partitions in self._leaders(sorted(remaining), deadline).items():
                wanted = {(self.topic, p): remaining[p] for p in partitions}
                try:
                    results = self.client.produce(
                        leader, settings.acks, settings.request_timeout_ms, wanted
                    )
                except KafkaClientError as exc:
                    failed.update({p: remaining[p] for p in partitions})
                    last_error = str(exc)
                    continue
                for p in partitions:
                    code, _, message = results.get(
                        (self.topic, p), (ErrorCode.network_exception, -1, None)
                    )
                    if code == ErrorCode.none:
                        continue
                    detail = error_name(code) + (f" ({message})" if message else "")
                    if not retriable(code):
                        raise KafkaClientError(f"could not produce to {self.topic}-{p}: {detail}")
                    failed[p] = remaining[p]
                    last_error = f"{self.topic}-{p}: {detail}"
            if not failed:
                return
            attempt += 1
            if attempt > settings.retries:
                raise KafkaClientError(
                    f"could not produce after {settings.retries} retries: {last_error}"
                )
            time.sleep(backoff)
            backoff = min(backoff * 2, settings.retry_backoff_max_ms / 1000)
            self._refresh()
            remaining = failed
