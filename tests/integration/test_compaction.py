"""Log compaction on a running broker, observed by consumers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from admin_support import (
    QUIET,
    confluent_admin,
    consumer,
    create_topic,
    wait_for,
)
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

pytestmark = pytest.mark.timeout(120)

KEYS = 1000
ROUNDS = 100
FAST_CLEANER = {"log.cleaner.backoff.ms": "100"}
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.bytes": "262144",
    "min.cleanable.dirty.ratio": "0.01",
}


def key(k: int) -> bytes:
    return b"key-%04d" % k


class Ledger:
    """What was written at which offset, from the producer's delivery reports."""

    def __init__(self) -> None:
        self.at: dict[int, tuple[bytes, bytes | None]] = {}
        self.lock = threading.Lock()

    def record(self, err: Any, message: Any) -> None:
        assert err is None, err
        with self.lock:
            self.at[message.offset()] = (message.key(), message.value())

    def latest(self, below: int | None = None) -> dict[bytes, tuple[int, bytes | None]]:
        """key -> (offset, value) of each key's last record (below offset `below`)."""
        out: dict[bytes, tuple[int, bytes | None]] = {}
        with self.lock:
            for offset in sorted(self.at):
                if below is not None and offset >= below:
                    break
                k, v = self.at[offset]
                out[k] = (offset, v)
        return out


def write(bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None]], ledger) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, **QUIET})
    for k, v in records:
        producer.produce(topic, key=k, value=v, partition=0, on_delivery=ledger.record)
        producer.poll(0)
    assert producer.flush(30) == 0


def alter_topic(bootstrap: str, topic: str, *ops: tuple[str, Any, str | None]) -> None:
    admin = confluent_admin(bootstrap)
    entries = [ConfigEntry(n, v, incremental_operation=op) for n, op, v in ops]
    (future,) = admin.incremental_alter_configs(
        [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)]
    ).values()
    future.result(timeout=15)


def roll_active_segment(bootstrap: str, topic: str, ledger: Ledger) -> None:
    """Everything written so far becomes cleanable: a tiny segment.ms rolls the active segment
    at the next append (a record on a key of its own, which stays in the new active segment,
    where compaction never looks); then the setting is removed again."""
    alter_topic(bootstrap, topic, ("segment.ms", AlterConfigOpType.SET, "1"))
    time.sleep(0.01)  # the next record's timestamp must be past segment.ms
    write(bootstrap, topic, [(b"roll-%d" % len(ledger.at), b"roll")], ledger)
    alter_topic(bootstrap, topic, ("segment.ms", AlterConfigOpType.DELETE, None))


def read_from_start(
    bootstrap: str, topic: str, end: int, on_first: Any = None, **settings: Any
) -> list[Any]:
    """Every message from offset 0 up to `end`; `on_first` is called after the first one."""
    c = consumer(bootstrap, **settings)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        messages: list[Any] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = c.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
            if on_first is not None and len(messages) == 1:
                on_first()
            if message.offset() >= end - 1:
                return messages
        raise AssertionError(f"did not read up to offset {end}")
    finally:
        c.close()


def check_view(messages: list[Any], ledger: Ledger) -> dict[bytes, tuple[int, bytes | None]]:
    """Every record read is the one written at its offset, offsets increase, and the last
    record seen of each key is its latest one written below the end of the read."""
    offsets = [m.offset() for m in messages]
    assert offsets == sorted(set(offsets)), "offsets must strictly increase"
    for m in messages:
        assert ledger.at[m.offset()] == (m.key(), m.value()), m.offset()
    seen: dict[bytes, tuple[int, bytes | None]] = {}
    for m in messages:
        seen[m.key()] = (m.offset(), m.value())
    for k, (offset, value) in ledger.latest(below=offsets[-1] + 1).items():
        if k in seen:
            assert seen[k] == (offset, value), k
        else:
            assert value is None, f"live key {k!r} is missing from the compacted view"
    return seen


def test_compaction_keeps_the_latest_value_per_key_while_writes_continue(broker_factory) -> None:
    broker = broker_factory(**FAST_CLEANER).start()
    topic = "compacted"
    create_topic(broker.bootstrap, topic, configs={**COMPACTED, "delete.retention.ms": "1000"})
    ledger = Ledger()
    # 100,000 records: 100 values for each of 1,000 keys; the last round deletes every tenth key.
    tombstoned = {key(k) for k in range(0, KEYS, 10)}
    records = [
        (key(k), None if r == ROUNDS - 1 and key(k) in tombstoned else b"value-%d-%d" % (k, r))
        for r in range(ROUNDS)
        for k in range(KEYS)
    ]
    write(broker.bootstrap, topic, records, ledger)
    assert len(ledger.at) == KEYS * ROUNDS
    roll_active_segment(broker.bootstrap, topic, ledger)
    end = max(ledger.at) + 1

    # Compacted down to the latest value of each live key, tombstones gone after 1 s, at the
    # offsets the values were written at.
    expected = {(offset, k, v) for k, (offset, v) in ledger.latest().items() if v is not None}

    def compacted() -> bool:
        view = read_from_start(broker.bootstrap, topic, end)
        return {(m.offset(), m.key(), m.value()) for m in view} == expected

    wait_for(compacted, 60, "compaction to the latest value of every live key")
    assert len(expected) == KEYS - len(tombstoned) + 1  # + the roll record

    # A consumer reading from the start while writes continue (and the cleaner rewrites the
    # segments under it) sees a valid compacted view.
    compactions_before = _compactions(broker)
    reading = threading.Event()
    rounds = 30

    def write_rounds() -> None:
        # Each round goes out while a consumer is part-way through reading from the start.
        for r in range(rounds):
            update = [(key(k), b"update-%d-%d" % (k, r)) for k in range(KEYS)]
            write(broker.bootstrap, topic, [kv for kv in update if kv[0] not in tombstoned], ledger)
            reading.wait(30)
            reading.clear()

    writer = threading.Thread(target=write_rounds, daemon=True)
    writer.start()
    deadline = time.monotonic() + 90
    views = 0
    while writer.is_alive():
        assert time.monotonic() < deadline, "writer did not finish"
        reached = max(ledger.at) + 1
        view = read_from_start(
            broker.bootstrap, topic, reached, on_first=reading.set,
            **{"max.partition.fetch.bytes": 16384},
        )  # fmt: skip
        check_view(view, ledger)
        views += 1
    writer.join()
    assert views >= rounds
    assert _compactions(broker) > compactions_before + 1, "the cleaner ran while consumers read"
    final = check_view(read_from_start(broker.bootstrap, topic, max(ledger.at) + 1), ledger)
    live = {k: v for k, (_, v) in final.items() if k not in tombstoned}
    assert {k for k in live if not k.startswith(b"roll-")} == {
        key(k) for k in range(KEYS) if key(k) not in tombstoned
    }
    assert all(v.endswith(b"-29") for k, v in live.items() if not k.startswith(b"roll-"))


def _compactions(broker) -> int:
    return sum('"log compacted"' in line for line in broker.log_lines)


def test_tombstones_stay_within_delete_retention_and_compaction_survives_restart(
    broker_factory,
) -> None:
    broker = broker_factory(**FAST_CLEANER).start()
    topic = "deletions"
    create_topic(broker.bootstrap, topic, configs=COMPACTED)  # delete.retention.ms: 1 day
    ledger = Ledger()
    write(broker.bootstrap, topic, [(key(k), b"v1") for k in range(50)], ledger)
    write(broker.bootstrap, topic, [(key(k), b"v2") for k in range(25)], ledger)
    write(broker.bootstrap, topic, [(key(k), None) for k in range(10)], ledger)
    roll_active_segment(broker.bootstrap, topic, ledger)
    end = max(ledger.at) + 1
    latest = ledger.latest()
    expected = {(offset, k, v) for k, (offset, v) in latest.items()}  # tombstones included

    def compacted() -> bool:
        view = read_from_start(broker.bootstrap, topic, end)
        return {(m.offset(), m.key(), m.value()) for m in view} == expected

    wait_for(compacted, 30, "compaction that keeps the tombstones")
    checkpoint = broker.data_dir / "cleaner-offset-checkpoint"
    wait_for(checkpoint.exists, 10, "the cleaner checkpoint")

    broker.stop()
    broker.start()
    view = read_from_start(broker.bootstrap, topic, end)
    assert {(m.offset(), m.key(), m.value()) for m in view} == expected
    # Still compacted after a restart, and new writes are compacted against the old data.
    write(broker.bootstrap, topic, [(key(k), b"v3") for k in range(40, 50)], ledger)
    roll_active_segment(broker.bootstrap, topic, ledger)
    end = max(ledger.at) + 1
    expected = {(offset, k, v) for k, (offset, v) in ledger.latest().items()}
    wait_for(compacted, 30, "compaction after the restart")
