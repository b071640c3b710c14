"""The partition-scale section: one node with many partitions (10 topics, replication factor 1),
rafka beside Apache Kafka (and Tansu if asked for), one broker at a time.

For each broker: create the partitions (timed to the CreateTopics answers, to every partition led
in Metadata, to every partition answering ListOffsets), write one record to every one of them
(confluent-kafka), measure idle CPU and RSS, then restart it twice, after a clean shutdown
(SIGTERM, wait for the exit) and after SIGKILL while idle, each time timing spawn to a Metadata
answer that lists every partition with a leader and to ListOffsets latest = 1 on every partition,
then measuring idle CPU and RSS again. The results dict goes under results["scale"]; report.py
renders it.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import leaders
import peers
import probes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOPICS = 10
DEFAULT_PARTITIONS = {"quick": 2_000, "full": 10_000}
SETTLE_S = 2.0  # after a step, before the idle window
# ListOffsets is asked again until every partition answers the offset it should, for at most
# this long without one more doing so (a broker that lost records would otherwise hold the run).
STALLED_S = 60.0
IDLE_S = {"quick": 5.0, "full": 10.0}  # the idle-CPU window
# Each step's limit (create, write, ListOffsets, spawn to every partition led, SIGTERM to exit):
# per 1,000 partitions, at least the floor. Either broker may need more than 10 s per 1,000
# partitions on a busy machine (Kafka creating logs, both flushing every log at shutdown).
LIMIT_PER_1000_S = 30.0
LIMIT_FLOOR_S = 60.0


@dataclass(frozen=True)
class Limits:
    idle_s: float
    step_s: float

    @classmethod
    def of(cls, mode: str, partitions: int) -> Limits:
        return cls(IDLE_S[mode], max(LIMIT_FLOOR_S, LIMIT_PER_1000_S * partitions / 1000))


class StepFailed(Exception):
    """A step could not be measured; its message goes into the report."""


def log(message: str) -> None:
    print(message, flush=True)


def raise_nofile_limit() -> dict[str, int]:
    """Soft RLIMIT_NOFILE up to the hard limit, inherited by every broker spawned after this."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # an unlimited hard limit still stops at fs.nr_open, the most a process may open
    ceiling = hard if hard != resource.RLIM_INFINITY else int(
        Path("/proc/sys/fs/nr_open").read_text())
    if soft != ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {"soft_before": soft, "soft": now, "hard": ceiling}


def layout(partitions: int) -> dict[str, int]:
    """TOPICS topics sharing `partitions` as evenly as possible (the first ones take the rest)."""
    count = min(TOPICS, partitions)
    share, rest = divmod(partitions, count)
    return {f"scale-{i}": share + (1 if i < rest else 0) for i in range(count)}


# -- the client steps (librdkafka through confluent-kafka) ---------------------------------------

# librdkafka's own log (retries, reconnections), one file per broker beside the broker's log.
CLIENT_LOG = logging.getLogger("scale.librdkafka")
CLIENT_LOG.propagate = False


def client_config(bootstrap: str, limit: float, **settings: str) -> dict[str, Any]:
    # librdkafka gives up on any request in flight after socket.timeout.ms (60 s by default,
    # 300 s at most) whatever the request's own timeout: a CreateTopics of 10,000 partitions
    # may take longer than a minute.
    timeout_ms = min(int(limit * 1000), 300_000)
    return {"bootstrap.servers": bootstrap, "logger": CLIENT_LOG,
            "socket.timeout.ms": timeout_ms, **settings}


@contextmanager
def client_log(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    CLIENT_LOG.addHandler(handler)
    CLIENT_LOG.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        CLIENT_LOG.removeHandler(handler)
        handler.close()


@contextmanager
def collected() -> Iterator[None]:
    """A client step whose clients are gone afterwards: confluent-kafka's admin client sits in a
    reference cycle and would otherwise go on reconnecting to every restarted broker."""
    try:
        yield
    finally:
        gc.collect()


def create_topics(bootstrap: str, topics: dict[str, int], limit: float) -> float:
    """Milliseconds from sending the CreateTopics requests, one per topic and all at once, to
    the last answer. (Kafka's controller refuses one request of 10,000 partitions: more than the
    10,000 records it accepts from one operation, POLICY_VIOLATION.)"""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client_config(bootstrap, limit))
    admin.list_topics(timeout=limit)  # connected, so the timing is the requests' own
    started = time.perf_counter()
    futures = {}
    for topic, count in topics.items():
        futures.update(admin.create_topics([NewTopic(topic, count, 1)], request_timeout=limit,
                                           operation_timeout=limit))
    for topic, future in futures.items():
        try:
            future.result(timeout=limit)
        except Exception as exc:  # KafkaException carrying the topic's error
            raise StepFailed(f"CreateTopics {topic}: {exc}") from exc
        finally:
            admin.poll(0)  # hands librdkafka's log lines to CLIENT_LOG
    return (time.perf_counter() - started) * 1000.0


def write_one_each(bootstrap: str, topics: dict[str, int], limit: float) -> float:
    """Milliseconds to produce one record to every partition and have all acknowledged
    (acks=all, librdkafka's defaults otherwise)."""
    from confluent_kafka import Producer

    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(client_config(bootstrap, limit, acks="all"))
    producer.list_topics(timeout=limit)
    started = time.perf_counter()
    for topic, count in topics.items():
        for partition in range(count):
            producer.produce(topic, f"{topic}/{partition}".encode(), partition=partition,
                             on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(max(0.0, limit - (time.perf_counter() - started)))
    elapsed = (time.perf_counter() - started) * 1000.0
    if left:
        raise StepFailed(f"{left:,} records not acknowledged within {limit:.0f} s")
    if errors:
        raise StepFailed(f"{len(errors):,} records failed, e.g. {errors[0]}")
    return elapsed


def latest_offsets(bootstrap: str, topics: dict[str, int], expected: int,
                   limit: float) -> dict[str, Any]:
    """ListOffsets latest (the high watermark) of every partition, asking again for those that
    answer an error or another offset until all answer `expected`, `limit` passes or STALLED_S
    pass without one more doing so. A broker still loading a partition answers
    NOT_LEADER_OR_FOLLOWER or UNKNOWN_LEADER_EPOCH, which librdkafka's admin client does not
    retry; one whose high watermark lags its log answers a lower offset for a while."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient(client_config(bootstrap, limit))
    pending = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
    answers: dict[tuple[str, int], int | str] = {}
    started = progress = time.perf_counter()
    while pending and (now := time.perf_counter()) - started < limit and now - progress < STALLED_S:
        futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in pending},
                                     request_timeout=limit)
        for tp, future in futures.items():
            try:
                answers[(tp.topic, tp.partition)] = future.result(timeout=limit).offset
            except Exception as exc:  # this partition's error
                answers[(tp.topic, tp.partition)] = str(exc)
        still = [tp for tp in pending if answers[(tp.topic, tp.partition)] != expected]
        progress = time.perf_counter() if len(still) < len(pending) else progress
        pending = still
        admin.poll(0)  # hands librdkafka's log lines to CLIENT_LOG
        if pending:
            time.sleep(0.1)
    wrong = [f"{t}/{p}: {a}" for (t, p), a in answers.items() if a != expected]
    return {"matching": len(answers) - len(wrong), "wrong": len(wrong), "examples": wrong[:3],
            "elapsed_s": time.perf_counter() - started, "settled": not pending}


# -- one broker ----------------------------------------------------------------------------------


class Node:
    """One broker process, pinned, logging to one file across its restarts."""

    def __init__(self, launch: peers.Launch, core: int, log_path: Path) -> None:
        self.launch = launch
        self.core = core
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.spawned = 0.0

    def spawn(self) -> None:
        with self.log_path.open("a") as out:
            self.spawned = time.perf_counter()
            self.process = subprocess.Popen(
                ["taskset", "-c", str(self.core), *self.launch.command],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.launch.env},
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> subprocess.Popen:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise StepFailed(f"broker not running (exit code {code})")
        return self.process

    def terminate(self, limit: float) -> float:
        """SIGTERM, then wait for the exit: milliseconds it took."""
        process = self.alive()
        started = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(limit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise StepFailed(f"still running {limit:.0f} s after SIGTERM (killed)") from None
        if code not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
            raise StepFailed(f"exited with code {code} after SIGTERM")
        return (time.perf_counter() - started) * 1000.0

    def kill(self) -> None:
        process = self.alive()
        process.kill()
        process.wait()

    def stop(self) -> None:
        """Whatever state it is in: gone afterwards (the section's cleanup)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def idle(node: Node, seconds: float) -> dict[str, float]:
    """CPU (% of one core) over `seconds` of idleness after SETTLE_S, and RSS at its end."""
    time.sleep(SETTLE_S)
    pid = node.alive().pid
    before, started = probes.cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    used, elapsed = probes.cpu_seconds(pid) - before, time.perf_counter() - started
    node.alive()
    return {"cpu_pct": 100.0 * used / elapsed, "rss_mb": probes.rss_mb(pid)}


@dataclass
class Run:
    """One broker's figures, and why the missing ones are missing."""

    tag: str
    figures: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    broken: str | None = None  # the step that failed: the later ones cannot run

    def step(self, name: str, keys: tuple[str, ...],
             measure: Callable[[], dict[str, Any]]) -> None:
        """Measure `keys` unless an earlier step failed; on failure, say why for each key."""
        if self.broken is not None:
            self.failed.update({k: f"n.a.: {self.broken} failed" for k in keys})
            return
        try:
            figures = measure()
            self.failed.update(figures.pop("_failed", {}))
            self.figures.update(figures)
        except Exception as exc:  # the broker's failure to do it is the figure
            self.broken = name
            reason = f"{name}: {exc or type(exc).__name__}"
            self.failed.update({k: reason for k in keys})
            log(f"{self.tag} {reason}")


class Steps:
    """The section's steps against one broker; each returns the figures it measured, and under
    "_failed" the reason for any of its figures it could not measure."""

    def __init__(self, node: Node, port: int, topics: dict[str, int], limits: Limits) -> None:
        self.node = node
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.topics = topics
        self.limits = limits

    def start(self) -> dict[str, Any]:
        self.node.spawn()
        probes.wait_for_metadata(self.port, self.node.spawned, self.node.alive(),
                                 self.limits.step_s)
        return {}

    def create(self) -> dict[str, Any]:
        started = time.perf_counter()
        with collected():
            answered = create_topics(self.bootstrap, self.topics, self.limits.step_s)
        led = leaders.wait_for_leaders(self.port, self.topics, started, self.limits.step_s,
                                       self.node.alive())
        figures = {"create_ms": answered, "create_led_ms": led["all_led_ms"]}
        served = self.verify("create", 0, started)
        if "_failed" in served:
            raise StepFailed(served["_failed"]["create_served_ms"])
        return {**figures, "create_served_ms": served["create_served_ms"]}

    def write(self) -> dict[str, Any]:
        with collected():
            return {"write_ms": write_one_each(self.bootstrap, self.topics, self.limits.step_s)}

    def verify(self, prefix: str, expected: int, since: float) -> dict[str, Any]:
        """`prefix`_holding: how many partitions' latest offset is `expected`; `prefix`_served_ms:
        from `since` (perf_counter) until every one's is."""
        with collected():
            found = latest_offsets(self.bootstrap, self.topics, expected, self.limits.step_s)
        figures: dict[str, Any] = {f"{prefix}_holding": found["matching"],
                                   f"{prefix}_others": found["examples"]}
        if found["settled"]:
            figures[f"{prefix}_served_ms"] = (time.perf_counter() - since) * 1000.0
        else:
            figures["_failed"] = {f"{prefix}_served_ms": (
                f"{found['wrong']:,} partitions still answered ListOffsets latest with other "
                f"than {expected} after {found['elapsed_s']:.0f} s, e.g. {found['examples'][0]}")}
        return figures

    def idle(self, prefix: str) -> dict[str, Any]:
        figures = idle(self.node, self.limits.idle_s)
        return {f"{prefix}_cpu_pct": figures["cpu_pct"], f"{prefix}_rss_mb": figures["rss_mb"]}

    def restart(self, prefix: str, how: signal.Signals) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        if how == signal.SIGTERM:
            figures[f"{prefix}_stop_ms"] = self.node.terminate(self.limits.step_s)
        else:
            self.node.kill()
        self.node.spawn()
        led = leaders.wait_for_leaders(self.port, self.topics, self.node.spawned,
                                       self.limits.step_s, self.node.alive())
        figures[f"{prefix}_restart_ms"] = led["all_led_ms"]
        figures[f"{prefix}_first_answer_ms"] = led["first_answer_ms"]
        return figures


def bench_broker(peer: peers.Peer, topics: dict[str, int], limits: Limits, durable: bool,
                 broker_core: int, work_dir: Path) -> dict[str, Any]:
    data_dir = work_dir / f"scale-{peer.key}"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    log_path = work_dir / f"scale-{peer.key}-broker.log"
    log_path.unlink(missing_ok=True)
    port = probes.free_port()
    launch = peer.prepare(data_dir, port, [probes.free_port()])
    node = Node(launch, broker_core, log_path)
    steps = Steps(node, port, topics, limits)
    run = Run(f"[scale {peer.key}]")
    try:
        with client_log(work_dir / f"scale-{peer.key}-clients.log"):
            _measure(run, steps, peer, durable)
    finally:
        node.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return {"status": "ran", "figures": run.figures, "failed": run.failed,
            "command": shlex.join(launch.command).replace(f"{ROOT}/", "")}


def _measure(run: Run, steps: Steps, peer: peers.Peer, durable: bool) -> None:
    total = f"{sum(steps.topics.values()):,}"
    create = ("create_ms", "create_led_ms", "create_served_ms")
    run.step("start", create, steps.start)
    run.step("create", create, steps.create)
    log(f"{run.tag} {total} partitions: CreateTopics answered after {_show(run, create[0])}, "
        f"every one led in Metadata after {_show(run, create[1])}, ListOffsets latest = 0 "
        f"from every one after {_show(run, create[2])}")
    run.step("write", ("write_ms",), steps.write)
    run.step("ListOffsets after the writes", ("written_holding",),
             lambda: steps.verify("written", 1, time.perf_counter()))
    log(f"{run.tag} one record to every partition in {_show(run, 'write_ms')}; "
        f"{_show(run, 'written_holding')} of {total} partitions hold it")
    run.step("idle", ("idle_cpu_pct", "idle_rss_mb"), lambda: steps.idle("idle"))
    log(f"{run.tag} idle: {_show(run, 'idle_cpu_pct')} CPU, {_show(run, 'idle_rss_mb')} RSS")
    for prefix, how in (("clean", signal.SIGTERM), ("killed", signal.SIGKILL)):
        stop = (f"{prefix}_stop_ms",) if how == signal.SIGTERM else ()
        restart = (*stop, f"{prefix}_restart_ms")
        verify = (f"{prefix}_served_ms", f"{prefix}_holding")
        quiet = (f"{prefix}_idle_cpu_pct", f"{prefix}_idle_rss_mb")
        if not durable:
            reason = f"n.a.: {peer.storage}, nothing survives a restart"
            run.failed.update({k: reason for k in (*restart, *verify, *quiet)})
            log(f"{run.tag} restart after {how.name}: {reason}")
            continue
        run.step(f"restart after {how.name}", restart,
                 lambda p=prefix, h=how: steps.restart(p, h))
        run.step(f"ListOffsets after {how.name}", verify,
                 lambda p=prefix: steps.verify(p, 1, steps.node.spawned))
        run.step(f"idle after {how.name}", quiet, lambda p=prefix: steps.idle(f"{p}_idle"))
        stopped = f" (stopped in {_show(run, stop[0])})" if stop else ""
        log(f"{run.tag} restart after {how.name}{stopped}: every partition led after "
            f"{_show(run, restart[-1])}, ListOffsets latest = 1 from every one after "
            f"{_show(run, verify[0])}; "
            f"{_show(run, verify[1])} of {total} hold their record; idle {_show(run, quiet[0])} "
            f"CPU, {_show(run, quiet[1])} RSS")


def _show(run: Run, key: str) -> str:
    if key in run.failed:
        return "n.a." if run.failed[key].startswith("n.a.") else "failed"
    value = run.figures.get(key)
    if value is None:
        return "—"
    if key.endswith("_ms"):
        return f"{value:,.0f} ms"
    if key.endswith("_pct"):
        return f"{value:.1f}%"
    if key.endswith("_mb"):
        return f"{value:,.1f} MB"
    return f"{value:,}"


# -- the section ---------------------------------------------------------------------------------


def run(available: dict[str, peers.Peer], selected: list[str], mode: str, partitions: int | None,
        broker_core: int, client_core: int, work_dir: Path) -> dict[str, Any]:
    """The selected brokers (rafka, Kafka, Tansu), one after the other, with `partitions`
    partitions (the mode's default if None)."""
    topics = layout(partitions or DEFAULT_PARTITIONS[mode])
    limits = Limits.of(mode, sum(topics.values()))
    nofile = raise_nofile_limit()
    log(f"[scale] RLIMIT_NOFILE for the brokers: soft {nofile['soft']:,} (was "
        f"{nofile['soft_before']:,}), hard {nofile['hard']:,}")
    section: dict[str, Any] = {
        "settings": {"partitions": sum(topics.values()), "topics": len(topics),
                     "replication_factor": 1, "broker_core": broker_core,
                     "client_core": client_core, "nofile": nofile, "settle_s": SETTLE_S,
                     "stalled_s": STALLED_S,
                     "poll_ms": leaders.POLL_S * 1000.0,
                     "poll_cost_ratio": leaders.POLL_COST_RATIO,
                     **limits.__dict__},
        "brokers": [],
    }
    started = time.perf_counter()
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {client_core})  # librdkafka's threads, started below, inherit it
    # A broker runs in its own session: on SIGTERM, unwind so that it is stopped, not orphaned.
    handler = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        for key in (k for k in ("rafka", "kafka", "tansu") if k in selected):
            section["brokers"].append(_one(available[key], topics, limits, broker_core, work_dir))
    finally:
        signal.signal(signal.SIGTERM, handler)
        os.sched_setaffinity(0, affinity)
    section["duration_s"] = time.perf_counter() - started
    return section


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _one(peer: peers.Peer, topics: dict[str, int], limits: Limits, broker_core: int,
         work_dir: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": peer.key}
    log(f"[scale {peer.key}] installing")
    try:
        peer.install()
    except Exception as exc:  # reported, and the section goes on
        return {**entry, "name": peer.name or peer.key, "status": "unavailable",
                "reason": str(exc)}
    entry.update(name=peer.name, version=peer.version, runtime=peer.runtime,
                 storage=peer.storage)
    durable = not peer.storage.startswith("memory")
    try:
        entry.update(bench_broker(peer, topics, limits, durable, broker_core, work_dir))
    except Exception as exc:  # e.g. Kafka's storage format failed: this broker only
        entry.update(status="failed", reason=str(exc))
        log(f"[scale {peer.key}] failed: {exc}")
    return entry


def verdict(section: dict[str, Any] | None, strict: bool) -> int:
    """1 if rafka's broker did not run here (or, with --strict, if any of its figures failed)."""
    rafka = next((b for b in (section or {}).get("brokers", []) if b["key"] == "rafka"), None)
    return probes.rafka_verdict(
        rafka, "rafka's partition-scale run", (rafka or {}).get("failed", []), strict
    )
