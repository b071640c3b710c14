"""One run of the fault suite: a 3-node cluster in network namespaces, the workloads, a seeded
schedule of faults, then heal everything, restart everything, read everything from every node
and check the history. Returns a `RunResult` whose `summary()` is the line the report quotes."""

from __future__ import annotations

import pickle
import random
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from checker import (
    Anomaly,
    History,
    OffsetFetch,
    TopicPartition,
    check,
    resent_after_epoch_bump,
    summarize,
)
from cluster import FAST_FAILOVER, Cluster, read_partition_batches
from cluster_fixtures import create_topic
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTP
from nemesis import Nemesis, Roles
from netns import Network
from workloads import (
    RECONNECT,
    OffsetCommitter,
    OffsetReader,
    ProducerIdCaller,
    QueueWriter,
    TailReader,
    TxnWriter,
    Worker,
)

from rafka.protocol.records import decode_batch

SIZE = 3
QUEUE, QUEUE_PARTITIONS = "queue", 3
TXN, TXN_PARTITIONS = "txn", 2
GROUPS = ["fault-group-a", "fault-group-b"]
TXN_WRITERS = ["t1"]
WRITE_RATE = 100.0  # per queue writer, per second
OFFSET_READERS = 2  # per group, besides the committer's own reads
# InitProducerId per node, per second: a node takes a new 1000-id block every ~10 s, so blocks
# are often allocated around a controller fault (where issue 13's bug 1 handed one out twice).
PRODUCER_ID_RATE = 100.0
RECOVERY_BOUND = 30.0  # a fault not recovered from by then is reported as such
READ_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class RunConfig:
    seed: int
    kinds: tuple[str, ...]
    faults: int
    duration: tuple[float, float] = (3.0, 6.0)  # each fault's length, drawn per fault
    quiet: tuple[float, float] = (1.0, 2.0)  # fault-free time after recovery


@dataclass
class FaultFigures:
    kind: str
    description: str
    held: float
    longest_gap: float  # longest time a queue partition went without an ack, fault to recovery
    recovery: float | None  # heal to every queue partition acking a write sent after the heal


@dataclass
class RunResult:
    config: RunConfig
    faults: list[FaultFigures] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        found = summarize(self.anomalies)
        gap = max((f.longest_gap for f in self.faults), default=0.0)
        recoveries = [f.recovery for f in self.faults]
        unrecovered = sum(1 for r in recoveries if r is None)
        recovery = max((r for r in recoveries if r is not None), default=0.0)
        kinds = ",".join(self.config.kinds)
        return (
            f"seed={self.config.seed} kinds={kinds} faults={len(self.faults)} "
            f"acked={self.counts.get('acked', 0)} txns={self.counts.get('committed', 0)}c/"
            f"{self.counts.get('aborted', 0)}a reads={self.counts.get('reads', 0)} "
            f"commits={self.counts.get('commits', 0)} fetches={self.counts.get('fetches', 0)} "
            f"pids={self.counts.get('pids', 0)} max_gap={gap:.2f}s max_recovery={recovery:.2f}s"
            + (f" unrecovered={unrecovered}" if unrecovered else "")
            + f" {self.seconds:.0f}s anomalies="
            + (",".join(f"{k}:{n}" for k, n in sorted(found.items())) or "none")
        )

    def details(self) -> str:
        lines = [f"  {f.description}: held {f.held:.1f}s, longest ack gap {f.longest_gap:.2f}s, "
                 + (f"recovered {f.recovery:.2f}s after heal" if f.recovery is not None
                    else f"not recovered within {RECOVERY_BOUND:.0f}s")
                 for f in self.faults]  # fmt: skip
        lines += [f"  note: {note}" for note in self.notes]
        for kind, count in sorted(summarize(self.anomalies).items()):
            examples = [a.detail for a in self.anomalies if a.kind == kind][:3]
            lines.append(f"  {kind} x{count}: " + " | ".join(examples))
        return "\n".join(lines)


def run_once(root: Path, config: RunConfig) -> RunResult:
    started = time.monotonic()
    result = RunResult(config)
    rng = random.Random(config.seed)
    history = History()
    with ExitStack() as cleanup:
        network = Network(SIZE).create()
        cleanup.callback(network.close)  # after the processes are gone (callbacks run LIFO)
        cluster = Cluster(
            root,
            SIZE,
            hosts={n: network.address(n) for n in network.nodes()},
            launchers={n: network.launcher(n) for n in network.nodes()},
            **FAST_FAILOVER,
        )
        cleanup.enter_context(cluster)
        cluster.start()
        for topic, partitions in ((QUEUE, QUEUE_PARTITIONS), (TXN, TXN_PARTITIONS)):
            create_topic(cluster, topic, partitions, SIZE, **{"min.insync.replicas": "2"})
        workers = _start_workers(cluster, history, config.seed)
        cleanup.callback(_stop_workers, workers, 10.0)  # on failure: stop without waiting long
        _wait_for_service(history, time.monotonic(), "the workload to start")

        nemesis = Nemesis(
            cluster,
            network,
            Roles({QUEUE: QUEUE_PARTITIONS, TXN: TXN_PARTITIONS}, GROUPS, [
                f"fault-{name}" for name in TXN_WRITERS]),
            config.seed,
        )  # fmt: skip
        for kind in _schedule(rng, config):
            fault = nemesis.run_fault(kind, rng.uniform(*config.duration))
            recovered = _wait_for_service(history, fault.healed)
            end = recovered if recovered is not None else time.monotonic()
            result.faults.append(
                FaultFigures(
                    kind,
                    fault.description,
                    fault.healed - fault.start,
                    _longest_gap(history, fault.start, end),
                    None if recovered is None else recovered - fault.healed,
                )
            )
            time.sleep(rng.uniform(*config.quiet))  # fault-free operation between faults

        nemesis.heal_all()
        if _wait_for_service(history, time.monotonic()) is None:
            result.notes.append("no full service after the final heal")
        _stop_workers(workers, None)
        for worker in workers:
            if worker.error is not None:
                result.notes.append(f"{worker.name} failed: {worker.error!r}")

        # Restart everything from a crash, then read it all back from every node.
        for node in cluster.node_ids:
            cluster.kill(node)
        cluster.start_nodes(cluster.node_ids)
        _final_reads(cluster, history, result)
        _final_offset_fetches(cluster, history, result)

    result.anomalies = check(history)
    # Kept for a look afterwards: the history re-checks offline (checker.check on the unpickled
    # History) and the fault timeline lines up with the nodes' logs (node*.out, monotonic time).
    (root / "history.pickle").write_bytes(pickle.dumps(history))
    (root / "faults.log").write_text("\n".join(nemesis.log) + "\n")
    result.counts = _counts(history)
    result.notes += _worker_notes(workers)
    resent = resent_after_epoch_bump(history)
    if resent:
        result.notes.append(
            f"{len(resent)} idempotent values stored once in each of two producer epochs "
            f"(re-sent after the client bumped its epoch), first {resent[0]}"
        )
    result.seconds = time.monotonic() - started
    return result


def _schedule(rng: random.Random, config: RunConfig) -> list[str]:
    """Every kind at least once when there are enough faults, the rest drawn at random."""
    kinds = list(config.kinds)
    rng.shuffle(kinds)
    extra = [rng.choice(config.kinds) for _ in range(max(0, config.faults - len(kinds)))]
    return (kinds + extra)[: config.faults]


def _start_workers(cluster: Cluster, history: History, seed: int) -> list[Worker]:
    bootstrap = cluster.bootstrap
    workers: list[Worker] = [
        QueueWriter(history, bootstrap, QUEUE, QUEUE_PARTITIONS, "idem", True, WRITE_RATE),
        QueueWriter(history, bootstrap, QUEUE, QUEUE_PARTITIONS, "plain", False, WRITE_RATE),
        TailReader(history, bootstrap, QUEUE, QUEUE_PARTITIONS, "queue-tail", False),
        TailReader(history, bootstrap, TXN, TXN_PARTITIONS, "txn-committed", True),
        TailReader(history, bootstrap, TXN, TXN_PARTITIONS, "txn-uncommitted", False),
        *(
            TxnWriter(history, bootstrap, TXN, TXN_PARTITIONS, name, seed + i)
            for i, name in enumerate(TXN_WRITERS)
        ),
        *(OffsetCommitter(history, bootstrap, QUEUE, QUEUE_PARTITIONS, g) for g in GROUPS),
        *(
            OffsetReader(history, bootstrap, QUEUE, QUEUE_PARTITIONS, g, str(i))
            for g in GROUPS
            for i in range(OFFSET_READERS)
        ),
        *(
            ProducerIdCaller(
                history, cluster.hosts[n], cluster.client_ports[n], n, PRODUCER_ID_RATE
            )
            for n in cluster.node_ids
        ),
    ]
    for worker in workers:
        worker.start()
    return workers


def _stop_workers(workers: list[Worker], timeout: float | None) -> None:
    """Writers first (they flush what is outstanding), readers last."""
    for worker in workers:
        worker.stopping.set()
    for worker in workers:
        worker.join(timeout if timeout is not None else 75.0)


def _wait_for_service(history: History, since: float, what: str | None = None) -> float | None:
    """When every queue partition had acknowledged a write sent after `since` (None after
    RECOVERY_BOUND; with `what`, raise instead)."""
    deadline = since + RECOVERY_BOUND
    while time.monotonic() < deadline:
        firsts: dict[TopicPartition, float] = {}
        for write in history.writes[-20_000:]:
            if write.acked_at is not None and write.sent_at >= since and write.tp[0] == QUEUE:
                firsts[write.tp] = min(firsts.get(write.tp, write.acked_at), write.acked_at)
        if len(firsts) == QUEUE_PARTITIONS:
            return max(firsts.values())
        time.sleep(0.05)  # polling the clients' history, bounded by the deadline
    if what is not None:
        raise AssertionError(f"timed out after {RECOVERY_BOUND}s waiting for {what}")
    return None


def _longest_gap(history: History, start: float, end: float) -> float:
    """The longest time any queue partition went without an acknowledgement in [start, end]."""
    times: dict[TopicPartition, list[float]] = {}
    for write in history.writes:
        if write.acked_at is not None and start <= write.acked_at <= end and write.tp[0] == QUEUE:
            times.setdefault(write.tp, []).append(write.acked_at)
    gap = 0.0
    for partition in range(QUEUE_PARTITIONS):
        points = [start, *sorted(times.get((QUEUE, partition), [])), end]
        gap = max(gap, max(b - a for a, b in zip(points, points[1:], strict=False)))
    return gap


def _final_reads(cluster: Cluster, history: History, result: RunResult) -> None:
    """The cluster's answer (read_uncommitted, and read_committed for transactions) and each
    node's files below the high watermark."""
    watermarks: dict[TopicPartition, int] = {}
    for topic, partitions in ((QUEUE, QUEUE_PARTITIONS), (TXN, TXN_PARTITIONS)):
        rows, ends = read_everything(cluster.bootstrap, topic, partitions, read_committed=False)
        history.final.update(rows)
        watermarks.update(ends)
    rows, ends = read_everything(cluster.bootstrap, TXN, TXN_PARTITIONS, read_committed=True)
    history.final_committed.update(rows)
    for tp, end in ends.items():
        if end != watermarks[tp]:
            result.notes.append(f"{tp}: last stable offset {end} below high watermark")
    for tp, hw in watermarks.items():
        try:
            cluster.wait_for_replicas_to_reach(tp[0], tp[1], hw)
        except AssertionError as exc:
            result.notes.append(str(exc))
    for node in cluster.node_ids:
        copy: dict[TopicPartition, list[tuple[int, bytes]]] = {}
        for tp, hw in watermarks.items():
            copy[tp] = []
            sessions = history.producer_sessions.setdefault(tp, {})
            for batch in read_partition_batches(cluster.partition_dir(node, *tp)):
                header, records = decode_batch(batch)
                if header.is_control:
                    continue
                for record in records:
                    if record.offset < hw:
                        copy[tp].append((record.offset, record.value or b""))
                        sessions[record.offset] = (header.producer_id, header.producer_epoch)
        history.replicas[str(node)] = copy


def read_everything(
    bootstrap: str, topic: str, partitions: int, read_committed: bool
) -> tuple[dict[TopicPartition, list[tuple[int, bytes]]], dict[TopicPartition, int]]:
    """Every record from the start to the end (high watermark, or last stable offset with
    read_committed) of each partition, and where that end was."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "fault-final-read",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            **RECONNECT,
        }
    )
    try:
        consumer.assign([KafkaTP(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        rows: dict[TopicPartition, list[tuple[int, bytes]]] = {
            (topic, p): [] for p in range(partitions)
        }
        ends: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + READ_TIMEOUT
        while len(ends) < partitions:
            assert time.monotonic() < deadline, f"read {topic} only to the end of {sorted(ends)}"
            for message in consumer.consume(10_000, 0.2):
                tp = (message.topic(), message.partition())
                error = message.error()
                if error is None:
                    rows[tp].append((message.offset(), message.value()))
                elif error.code() == KafkaError._PARTITION_EOF:
                    ends[tp] = message.offset()
        return rows, ends
    finally:
        consumer.close()


def _final_offset_fetches(cluster: Cluster, history: History, result: RunResult) -> None:
    """Each group's committed offsets after the restart: older than an acknowledged commit
    would be a commit lost."""
    for group in GROUPS:
        consumer = Consumer(
            {"bootstrap.servers": cluster.bootstrap, "group.id": group, **RECONNECT}
        )
        try:
            start, answer = _committed(consumer)
            end = time.monotonic()
            for tp in answer:
                if tp.error is not None:
                    result.notes.append(f"final OffsetFetch {group} {tp}: {tp.error}")
                    continue
                offset = tp.offset if tp.offset >= 0 else -1
                history.fetches.append(
                    OffsetFetch(group, (tp.topic, tp.partition), offset, start, end)
                )
        finally:
            consumer.close()


RETRIED = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}


def _committed(consumer: Consumer) -> tuple[float, list[KafkaTP]]:
    """OffsetFetch as an application does it: retried while the coordinator moves or loads
    (right after a full restart, leaderships still move to their preferred replicas). The
    start of the attempt that answered is what the checker compares commits against."""
    deadline = time.monotonic() + READ_TIMEOUT
    while True:
        start = time.monotonic()
        try:
            return start, consumer.committed(
                [KafkaTP(QUEUE, p) for p in range(QUEUE_PARTITIONS)], 10
            )
        except KafkaException as error:
            if error.args[0].code() not in RETRIED or time.monotonic() > deadline:
                raise


def _counts(history: History) -> dict[str, int]:
    return {
        "acked": sum(1 for w in history.writes if w.acked),
        "committed": sum(1 for t in history.txns if t.outcome == "committed"),
        "aborted": sum(1 for t in history.txns if t.outcome == "aborted"),
        "reads": len(history.reads),
        "commits": sum(1 for c in history.commits if c.ok),
        "fetches": len(history.fetches),
        "pids": len(history.producer_ids),
    }


def _worker_notes(workers: list[Worker]) -> list[str]:
    notes = []
    for worker in workers:
        if worker.is_alive():
            notes.append(f"{worker.name} did not stop")
        unflushed = getattr(worker, "unflushed", 0)
        if unflushed:
            notes.append(f"{worker.name}: {unflushed} messages without a delivery report")
        errors = getattr(worker, "errors", None)
        if errors:  # expected under faults; for reading next to the anomalies
            first = next(iter(errors.items() if isinstance(errors, dict) else errors))
            notes.append(f"{worker.name}: {len(errors)} client errors, first {first}")
        bumps = getattr(worker, "epoch_bumps", None)
        if bumps:
            notes.append(f"{worker.name}: producer epoch bumped; {bumps[0]}")
    return notes
