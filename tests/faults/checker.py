"""The fault suite's checker, in the manner of Jepsen's Kafka queue test: a history of what the
clients sent, were acknowledged and read while faults ran, plus what every node holds at the end,
turned into a list of anomalies. Pure functions over plain data, so it is unit-tested with
synthetic histories (tests/faults/test_checker.py).

Assumptions the workloads keep: every value is written by one writer once (values are unique
per send); a group's offsets for a partition are committed by one sequential client with
strictly increasing offsets, so a later read may never be older than an earlier one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

TopicPartition = tuple[str, int]
TxnOutcome = Literal["committed", "aborted", "unknown"]

# Anomaly kinds, each a safety property the suite checks.
LOST_WRITE = "lost-write"  # acknowledged (or committed in a transaction), not stored there
DUPLICATE = "duplicate"  # an idempotent or transactional write stored twice
TWO_VALUES = "offset-two-values"  # one offset seen holding two different values
VANISHED = "vanished-read"  # a value a consumer read is not in the log at the end
UNKNOWN_VALUE = "unknown-value"  # a value nobody wrote
REORDERED = "reordered"  # an idempotent writer's values out of send order in a partition
ABORTED_READ = "aborted-read"  # read_committed returned a record of an aborted transaction
DIVERGED = "replica-divergence"  # a node's copy differs from the cluster's answer
COMMIT_BACKWARDS = "commit-backwards"  # a committed offset read lower than an earlier read
STALE_OFFSET_FETCH = "stale-offset-fetch"  # older than a commit acknowledged before the fetch
PHANTOM_OFFSET = "phantom-offset"  # an OffsetFetch answered an offset nobody committed
DUPLICATE_PRODUCER_ID = "duplicate-producer-id"

KINDS = (
    LOST_WRITE,
    DUPLICATE,
    TWO_VALUES,
    VANISHED,
    UNKNOWN_VALUE,
    REORDERED,
    ABORTED_READ,
    DIVERGED,
    COMMIT_BACKWARDS,
    STALE_OFFSET_FETCH,
    PHANTOM_OFFSET,
    DUPLICATE_PRODUCER_ID,
)


@dataclass(frozen=True, slots=True)
class Write:
    """One non-transactional send. `offset` is set when it was acknowledged."""

    writer: str
    idempotent: bool
    tp: TopicPartition
    value: bytes
    sent_at: float
    offset: int | None = None
    acked_at: float | None = None

    @property
    def acked(self) -> bool:
        return self.offset is not None


@dataclass(frozen=True, slots=True)
class Txn:
    """One transaction: its records and how it ended as far as the client knows."""

    txn: str
    outcome: TxnOutcome
    values: tuple[tuple[TopicPartition, bytes], ...]


@dataclass(frozen=True, slots=True)
class Read:
    """A record a consumer was handed while faults ran."""

    reader: str
    tp: TopicPartition
    offset: int
    value: bytes
    read_committed: bool
    at: float


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    group: str
    tp: TopicPartition
    offset: int
    ok: bool
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class OffsetFetch:
    group: str
    tp: TopicPartition
    offset: int  # -1: no committed offset
    start: float
    end: float


@dataclass
class History:
    writes: list[Write] = field(default_factory=list)
    txns: list[Txn] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    commits: list[OffsetCommit] = field(default_factory=list)
    fetches: list[OffsetFetch] = field(default_factory=list)
    producer_ids: list[tuple[int, int]] = field(default_factory=list)  # (node, producer id)
    # At the end, with every node healed and restarted: the cluster's answer to a consumer
    # reading everything (read_uncommitted), the same read with read_committed, and each node's
    # own copy below the high watermark (decoded from its files), by source name.
    final: dict[TopicPartition, list[tuple[int, bytes]]] = field(default_factory=dict)
    final_committed: dict[TopicPartition, list[tuple[int, bytes]]] = field(default_factory=dict)
    replicas: dict[str, dict[TopicPartition, list[tuple[int, bytes]]]] = field(default_factory=dict)
    # The (producer id, producer epoch) of the batch holding each stored offset.
    producer_sessions: dict[TopicPartition, dict[int, tuple[int, int]]] = field(
        default_factory=dict
    )


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str
    detail: str


def check(history: History) -> list[Anomaly]:
    """Every anomaly in the history; empty when it is consistent."""
    return [
        *_two_values(history),
        *_lost_writes(history),
        *_duplicates(history),
        *_reordered(history),
        *_vanished_and_unknown(history),
        *_aborted_reads(history),
        *_diverged(history),
        *_offsets(history),
        *_producer_ids(history),
    ]


def summarize(anomalies: list[Anomaly]) -> dict[str, int]:
    """Count per kind (only the kinds found)."""
    counts: dict[str, int] = defaultdict(int)
    for anomaly in anomalies:
        counts[anomaly.kind] += 1
    return dict(counts)


# -- queue --------------------------------------------------------------------------------------


def _two_values(history: History) -> list[Anomaly]:
    """Every source of (offset -> value) must agree: acks, reads, the final reads, each node."""
    seen: dict[tuple[TopicPartition, int], dict[bytes, str]] = defaultdict(dict)
    for write in history.writes:
        if write.offset is not None:
            seen[(write.tp, write.offset)].setdefault(write.value, f"ack to {write.writer}")
    for read in history.reads:
        seen[(read.tp, read.offset)].setdefault(read.value, f"read by {read.reader}")
    sources = {"final read": history.final, "final read_committed": history.final_committed}
    sources.update({f"node {name}": rows for name, rows in history.replicas.items()})
    for source, partitions in sources.items():
        for tp, rows in partitions.items():
            for offset, value in rows:
                seen[(tp, offset)].setdefault(value, source)
    return [
        Anomaly(TWO_VALUES, f"{tp[0]}-{tp[1]}@{offset}: {_describe_values(values)}")
        for (tp, offset), values in sorted(seen.items())
        if len(values) > 1
    ]


def _lost_writes(history: History) -> list[Anomaly]:
    stored = _positions(history.final)
    anomalies = []
    for write in history.writes:
        if write.offset is None or (write.tp, write.offset) in stored.get(write.value, ()):
            continue
        elsewhere = sorted(stored.get(write.value, ()))
        anomalies.append(
            Anomaly(
                LOST_WRITE,
                f"{write.writer} {write.value!r} acknowledged at {_at(write.tp, write.offset)}, "
                + (f"stored at {elsewhere}" if elsewhere else "not stored"),
            )
        )
    committed = _positions(history.final_committed)
    for txn in history.txns:
        if txn.outcome != "committed":
            continue
        for tp, value in txn.values:
            if not any(where[0] == tp for where in committed.get(value, ())):
                anomalies.append(
                    Anomaly(LOST_WRITE, f"{value!r} of committed {txn.txn} not read committed")
                )
    return anomalies


def _duplicates(history: History) -> list[Anomaly]:
    """Idempotent and transactional writes are stored at most once within one producer session
    (producer id and epoch). A plain producer's retries may store a value twice, and so may an
    idempotent one that bumps its epoch (see `resent_after_epoch_bump`): allowed."""
    return [
        Anomaly(DUPLICATE, f"{value!r} stored at {sorted(where)}")
        for value, where in _stored_twice(history)
        if not _in_distinct_sessions(history, where)
    ]


def resent_after_epoch_bump(history: History) -> list[str]:
    """Values an idempotent producer stored once per producer epoch: librdkafka re-sends records
    whose first send may have been stored with new sequence numbers after it bumps the epoch,
    which no broker can recognise as retries (Kafka stores them twice too)."""
    return [
        f"{value!r} at {sorted(where)}"
        for value, where in _stored_twice(history)
        if _in_distinct_sessions(history, where)
    ]


def _stored_twice(history: History) -> list[tuple[bytes, set[tuple[TopicPartition, int]]]]:
    stored = _positions(history.final)
    once = {w.value for w in history.writes if w.idempotent}
    once.update(value for txn in history.txns for _, value in txn.values)
    return [
        (value, where)
        for value, where in sorted(stored.items())
        if value in once and len(where) > 1
    ]


def _in_distinct_sessions(history: History, where: set[tuple[TopicPartition, int]]) -> bool:
    sessions = [history.producer_sessions.get(tp, {}).get(offset) for tp, offset in where]
    return None not in sessions and len(set(sessions)) == len(sessions)


def _reordered(history: History) -> list[Anomaly]:
    """An idempotent writer's acknowledged values keep their send order within a partition."""
    send_order: dict[bytes, tuple[str, int]] = {}
    for number, write in enumerate(history.writes):
        if write.idempotent:
            send_order[write.value] = (write.writer, number)
    anomalies = []
    for tp, rows in sorted(history.final.items()):
        last: dict[str, tuple[int, bytes]] = {}
        for offset, value in rows:
            if value not in send_order:
                continue
            writer, number = send_order[value]
            previous = last.get(writer)
            if previous is not None and number < previous[0]:
                anomalies.append(
                    Anomaly(
                        REORDERED,
                        f"{_at(tp, offset)}: {value!r} after {previous[1]!r}, sent before it",
                    )
                )
            last[writer] = (number, value)
    return anomalies


def _vanished_and_unknown(history: History) -> list[Anomaly]:
    stored = _positions(history.final)
    written = {w.value for w in history.writes}
    written.update(value for txn in history.txns for _, value in txn.values)
    anomalies = []
    reported: set[tuple[TopicPartition, int]] = set()
    for read in history.reads:
        key = (read.tp, read.offset)
        if key in reported:
            continue
        if read.value not in written:
            reported.add(key)
            anomalies.append(
                Anomaly(UNKNOWN_VALUE, f"{read.reader} read {read.value!r} at {_at(*key)}")
            )
        elif key not in stored.get(read.value, ()):
            reported.add(key)
            anomalies.append(
                Anomaly(
                    VANISHED, f"{read.reader} read {read.value!r} at {_at(*key)}, gone at the end"
                )
            )
    for tp, rows in sorted(history.final.items()):
        for offset, value in rows:
            if value not in written:
                anomalies.append(Anomaly(UNKNOWN_VALUE, f"{value!r} stored at {_at(tp, offset)}"))
    return anomalies


def _aborted_reads(history: History) -> list[Anomaly]:
    aborted = {
        value: txn.txn
        for txn in history.txns
        if txn.outcome == "aborted"
        for _, value in txn.values
    }
    anomalies = [
        Anomaly(
            ABORTED_READ,
            f"{read.reader} read {read.value!r} of aborted {aborted[read.value]} at "
            f"{_at(read.tp, read.offset)}",
        )
        for read in history.reads
        if read.read_committed and read.value in aborted
    ]
    for tp, rows in sorted(history.final_committed.items()):
        anomalies += [
            Anomaly(
                ABORTED_READ,
                f"final read_committed read {value!r} of aborted {aborted[value]} at "
                f"{_at(tp, offset)}",
            )
            for offset, value in rows
            if value in aborted
        ]
    return anomalies


def _diverged(history: History) -> list[Anomaly]:
    """Each node's copy below the high watermark equals what the cluster answered."""
    anomalies = []
    for name, partitions in sorted(history.replicas.items()):
        for tp, rows in sorted(partitions.items()):
            answered = history.final.get(tp, [])
            if rows != answered:
                first = next(
                    (i for i, (a, b) in enumerate(zip(rows, answered, strict=False)) if a != b),
                    min(len(rows), len(answered)),
                )
                anomalies.append(
                    Anomaly(
                        DIVERGED,
                        f"node {name} {tp[0]}-{tp[1]}: {len(rows)} records, cluster answered "
                        f"{len(answered)}; first difference at record {first}",
                    )
                )
    return anomalies


# -- group offsets ------------------------------------------------------------------------------


def _offsets(history: History) -> list[Anomaly]:
    anomalies = []
    commits: dict[tuple[str, TopicPartition], list[OffsetCommit]] = defaultdict(list)
    for commit in history.commits:
        commits[(commit.group, commit.tp)].append(commit)
    fetches: dict[tuple[str, TopicPartition], list[OffsetFetch]] = defaultdict(list)
    for fetch in history.fetches:
        fetches[(fetch.group, fetch.tp)].append(fetch)
    for key, reads in sorted(fetches.items()):
        group, tp = key
        attempted = {c.offset for c in commits.get(key, [])}
        acked = sorted((c for c in commits.get(key, []) if c.ok), key=lambda c: c.end)
        newest_acked = -1  # the highest offset acknowledged before the current fetch began
        next_acked = 0
        for fetch in sorted(reads, key=lambda f: f.start):
            while next_acked < len(acked) and acked[next_acked].end < fetch.start:
                newest_acked = max(newest_acked, acked[next_acked].offset)
                next_acked += 1
            if fetch.offset >= 0 and fetch.offset not in attempted:
                anomalies.append(
                    Anomaly(PHANTOM_OFFSET, f"{group} {tp[0]}-{tp[1]}: fetched {fetch.offset}")
                )
            if fetch.offset < newest_acked:
                anomalies.append(
                    Anomaly(
                        STALE_OFFSET_FETCH,
                        f"{group} {tp[0]}-{tp[1]}: fetch at {fetch.start:.3f} got {fetch.offset},"
                        f" commit of {newest_acked} acknowledged before",
                    )
                )
        # Real-time order: a fetch that began after another ended sees at least its offset.
        by_end = sorted(reads, key=lambda f: f.end)
        highest: OffsetFetch | None = None
        cursor = 0
        for fetch in sorted(reads, key=lambda f: f.start):
            while cursor < len(by_end) and by_end[cursor].end < fetch.start:
                done = by_end[cursor]
                if highest is None or done.offset > highest.offset:
                    highest = done
                cursor += 1
            if highest is not None and fetch.offset < highest.offset:
                anomalies.append(
                    Anomaly(
                        COMMIT_BACKWARDS,
                        f"{group} {tp[0]}-{tp[1]}: {highest.offset} read at {highest.end:.3f}, "
                        f"then {fetch.offset} at {fetch.start:.3f}",
                    )
                )
    return anomalies


def _producer_ids(history: History) -> list[Anomaly]:
    nodes: dict[int, list[int]] = defaultdict(list)
    for node, producer_id in history.producer_ids:
        nodes[producer_id].append(node)
    return [
        Anomaly(DUPLICATE_PRODUCER_ID, f"producer id {pid} handed out by nodes {sorted(where)}")
        for pid, where in sorted(nodes.items())
        if len(where) > 1
    ]


# -- helpers ------------------------------------------------------------------------------------


def _positions(
    partitions: dict[TopicPartition, list[tuple[int, bytes]]],
) -> dict[bytes, set[tuple[TopicPartition, int]]]:
    where: dict[bytes, set[tuple[TopicPartition, int]]] = defaultdict(set)
    for tp, rows in partitions.items():
        for offset, value in rows:
            where[value].add((tp, offset))
    return where


def _at(tp: TopicPartition, offset: int) -> str:
    return f"{tp[0]}-{tp[1]}@{offset}"


def _describe_values(values: dict[bytes, str]) -> str:
    return ", ".join(f"{value!r} ({source})" for value, source in values.items())
