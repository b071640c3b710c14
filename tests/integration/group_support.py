"""What the group tests share: a ledger of every value the members of a group consumed, a
member consuming in its own thread, and its synchronous commit."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from confluent_kafka import KafkaError, KafkaException


def commit_consumed(consumer: Any) -> bool:
    """Commit what `consumer` consumed, synchronously; whether it is still to be committed.
    Nothing stored to commit is fine; any other error is retried at the next round."""
    try:
        consumer.commit(asynchronous=False)
        return False
    except KafkaException as exc:
        return exc.args[0].code() != KafkaError._NO_OFFSET


class Ledger:
    """Every value any member consumed, with how often (members add from their threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[int] = Counter()

    def add(self, values: list[int]) -> None:
        with self._lock:
            self.counts.update(values)

    def snapshot(self) -> Counter[int]:
        with self._lock:
            return Counter(self.counts)

    @property
    def distinct(self) -> int:
        with self._lock:
            return len(self.counts)


class MemberThread(threading.Thread):
    """One group member in its own thread, consuming (`consume`) until told to stop."""

    def __init__(self, name: str, bootstrap: str, ledger: Ledger) -> None:
        super().__init__(name=name, daemon=True)
        self.bootstrap = bootstrap
        self.ledger = ledger
        self.stop_event = threading.Event()
        self.assigned = threading.Event()
        self.consumed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.consume()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def consume(self) -> None:
        raise NotImplementedError

    def record(self, values: list[int]) -> None:
        self.consumed += len(values)
        self.ledger.add(values)

    def finish(self) -> None:
        self.stop_event.set()
        self.join(30)
        assert not self.is_alive(), f"{self.name} did not stop"
        assert self.error is None, f"{self.name}: {self.error!r}"
