"""The 3-node section: three rafka nodes against three Apache Kafka KRaft nodes, both in combined
mode (every node a broker and a controller voter), replication factor 3, min.insync.replicas=2.

One system at a time, fresh data directories; its three nodes share the broker core, `rafka bench`
runs on the client core and bootstraps from all three. The results dict goes under
results["cluster3"]; report.py renders it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import native
import peers
import probes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODES = (1, 2, 3)
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
STARTUP_LIMIT_S = 120.0
IDLE_SETTLE_S = 2.0
ISR_LIMIT_S = 60.0
STOP_GRACE_S = 15.0  # all nodes at once: a last node has no one to hand its leaderships to
# The same keys on both systems: what a 3-node cluster needs beyond its listeners and quorum.
CLUSTER_SETTINGS = {
    "num.partitions": "1",
    "default.replication.factor": str(REPLICATION_FACTOR),
    "min.insync.replicas": str(MIN_INSYNC_REPLICAS),
    "offsets.topic.replication.factor": str(REPLICATION_FACTOR),
    "transaction.state.log.replication.factor": str(REPLICATION_FACTOR),
    "transaction.state.log.min.isr": str(MIN_INSYNC_REPLICAS),
    "group.initial.rebalance.delay.ms": "0",
}
# What each system promises for an acks=all write (read back from the topic's config below).
DURABILITY = {
    "rafka": "once 2 of its 3 replicas (a majority) have fsynced it: the Raft high watermark; "
             "refused while fewer than min.insync.replicas are in sync",
    "kafka": "once every replica in the ISR has it in memory (the page cache: no fsync, "
             "flush.messages is unlimited); refused while the ISR is smaller than "
             "min.insync.replicas",
}


@dataclass(frozen=True)
class Sizes:
    warmup_records: int  # 1 KiB records produced, acks=all, before the produce row
    records: int  # 1 KiB records produced (and consumed)
    e2e_warmup_records: int  # at 1,000 records/s, before the e2e row
    e2e_records: int  # at 1,000 records/s
    timeout_s: float  # per workload


SIZES = {"quick": Sizes(30_000, 50_000, 3_000, 3_000, 90.0),
         "full": Sizes(200_000, 500_000, 15_000, 20_000, 240.0)}


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    args: tuple[str, ...]  # `rafka bench` subcommand and its flags, less the bootstrap servers
    records: int
    reads: str | None = None  # the workload whose records a consumer reads
    measured: bool = True  # False: a warm-up, whose figures make no row

    @property
    def topic(self) -> str:
        return self.args[self.args.index("--topic") + 1]


def workloads(sizes: Sizes, partitions: int, queue_backoff_ms: int) -> list[Workload]:
    rf = ("--replication-factor", str(REPLICATION_FACTOR))

    def produce(key: str, label: str, records: int, measured: bool) -> Workload:
        return Workload(key, label, ("produce", "--topic", key, "--num-records", str(records),
                                     "--record-size", "1024", "--partitions", str(partitions),
                                     *rf, "--acks", "all"), records, measured=measured)

    def e2e(key: str, label: str, records: int, measured: bool) -> Workload:
        # the single-node e2e row's command on a replicated topic (acks=all is its default); a
        # warm-up waits longer for its records, which a cold cluster may deliver late
        patience = () if measured else ("--timeout", "60")
        return Workload(key, label, ("e2e", "--topic", "cluster-e2e-1000", "--num-records",
                                     str(records), "--record-size", "100", "--throughput",
                                     "1000", "--partitions", "1", *rf, *patience), records,
                        measured=measured)

    source = "cluster-produce-1k-acksall"
    # The warm-ups (no figure) run the paths the next row measures, on every node: a JVM
    # compiles them only once they are hot, and its first minute is not Kafka's steady state.
    return [
        produce("cluster-warmup", "warm-up: produce 1 KiB, acks=all", sizes.warmup_records,
                False),
        produce(source, "produce 1 KiB, acks=all", sizes.records, True),
        # as runner.py's consume rows: librdkafka's remedy for its prefetch backoff (#2879)
        Workload("cluster-consume-1k", "consume 1 KiB",
                 ("consume", "--topic", source, "--num-records", str(sizes.records),
                  "--timeout", "60", "--consumer-props",
                  f"fetch.queue.backoff.ms={queue_backoff_ms}"),
                 sizes.records, reads=source),
        e2e("cluster-e2e-warmup", "warm-up: e2e at 1,000 msg/s, 100 B", sizes.e2e_warmup_records,
            False),
        e2e("cluster-e2e-1000", "e2e latency at 1,000 msg/s, 100 B", sizes.e2e_records, True),
    ]


def topics(work: list[Workload]) -> dict[str, int]:
    """The topics the workloads write, with their partitions, created before any is timed."""
    return {w.topic: int(w.args[w.args.index("--partitions") + 1])
            for w in work if w.reads is None}


def log(message: str) -> None:
    print(message, flush=True)


# -- the clusters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    client: dict[int, int]
    controller: dict[int, int]

    @classmethod
    def allocate(cls) -> Ports:
        ports: list[int] = []
        while len(ports) < 2 * len(NODES):
            port = probes.free_port()
            if port not in ports:
                ports.append(port)
        return cls(dict(zip(NODES, ports[:len(NODES)], strict=True)),
                   dict(zip(NODES, ports[len(NODES):], strict=True)))

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.client[i]}" for i in NODES)

    def node_settings(self, node: int, data_dir: Path) -> dict[str, str]:
        voters = ",".join(f"{i}@127.0.0.1:{self.controller[i]}" for i in NODES)
        return {
            "node.id": str(node),
            "process.roles": "broker,controller",
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.client[node]},"
                         f"CONTROLLER://127.0.0.1:{self.controller[node]}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.client[node]}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data_dir / "logs"),
            **CLUSTER_SETTINGS,
        }


def rafka_launches(peer: peers.Rafka, root: Path, ports: Ports) -> dict[int, peers.Launch]:
    return {i: peer.launch(ports.node_settings(i, root / f"node{i}")) for i in NODES}


def kafka_launches(peer: peers.Kafka, root: Path, ports: Ports) -> dict[int, peers.Launch]:
    """One server.properties per node, every log.dirs formatted with one cluster id (the three
    formats run at once: one JVM each)."""
    cluster_id = peers.new_cluster_id()
    launches: dict[int, peers.Launch] = {}
    failures: list[BaseException] = []

    def one(node: int) -> None:
        settings = ports.node_settings(node, root / f"node{node}")
        try:
            launches[node] = peer.launch(root / f"node{node}",
                                         [f"{k}={v}" for k, v in settings.items()], cluster_id)
        except Exception as exc:  # raised below, in the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in NODES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return dict(sorted(launches.items()))


LAUNCHERS: dict[str, Callable[[Any, Path, Ports], dict[int, peers.Launch]]] = {
    "rafka": rafka_launches, "kafka": kafka_launches,
}


def brokers_seen(port: int) -> int:
    """How many brokers the node's Metadata v4 answer lists; 0 if it does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(probes.METADATA_REQUEST)
            # size, correlation id, throttle ms, broker count
            head = sock.recv(16, socket.MSG_WAITALL)
    except OSError:
        return 0
    if len(head) < 16:
        return 0
    _size, correlation, _throttle, brokers = struct.unpack(">iiii", head)
    return brokers if correlation == 1 else 0


class Cluster:
    """Three nodes of one system, pinned to one core, each writing its own log file."""

    def __init__(self, key: str, ports: Ports) -> None:
        self.key = key
        self.ports = ports
        self.processes: dict[int, subprocess.Popen] = {}
        self.started = time.perf_counter()

    def start(self, launches: dict[int, peers.Launch], core: int, logs: Path) -> None:
        self.started = time.perf_counter()
        for node, launch in launches.items():
            with (logs / f"cluster3-{self.key}-node{node}.log").open("w") as out:
                self.processes[node] = subprocess.Popen(
                    ["taskset", "-c", str(core), *launch.command],
                    stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **launch.env},
                    start_new_session=True,
                )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values()]

    def exited(self) -> dict[int, int]:
        return {i: p.returncode for i, p in self.processes.items() if p.poll() is not None}

    def wait_ready(self, limit: float) -> float:
        """Milliseconds from the first spawn until every node's Metadata lists all three."""
        pending = set(NODES)
        while True:
            pending = {i for i in pending if brokers_seen(self.ports.client[i]) < len(NODES)}
            if not pending:
                return (time.perf_counter() - self.started) * 1000.0
            if gone := self.exited():
                raise RuntimeError(f"node(s) exited before the cluster formed: {gone}")
            if time.perf_counter() - self.started > limit:
                raise RuntimeError(f"node(s) {sorted(pending)} did not list 3 brokers within "
                                   f"{limit:.0f} s")
            time.sleep(0.01)

    def rss_mb(self, peak: bool = False) -> float:
        read = probes.peak_rss_mb if peak else probes.rss_mb
        return sum(read(pid) for pid in self.pids)

    def stop(self) -> dict[str, int]:
        """SIGTERM every node at once, SIGKILL whatever is left after the grace; exit codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return {str(i): p.returncode for i, p in self.processes.items()}


# -- topics, through librdkafka's admin client ---------------------------------------------------


def create_topics(bootstrap: str, wanted: dict[str, int]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(t, n, REPLICATION_FACTOR) for t, n in wanted.items()], operation_timeout=30)
    for future in futures.values():
        future.result(timeout=60)


def isr_sizes(bootstrap: str, topic: str) -> list[int]:
    """The size of every partition's ISR (0 where it has no leader)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    if meta.error is not None:
        return [0]
    return [len(p.isrs) if p.leader >= 0 else 0 for p in meta.partitions.values()] or [0]


def wait_full_isr(bootstrap: str, wanted: dict[str, int], limit: float) -> float:
    """Until every replica of every partition is in sync; the seconds it took."""
    started = time.perf_counter()
    while True:
        if all(min(isr_sizes(bootstrap, t)) == REPLICATION_FACTOR for t in wanted):
            return time.perf_counter() - started
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"topics {sorted(wanted)} not fully in sync within {limit:.0f} s")
        time.sleep(0.05)


def topic_durability(bootstrap: str, topic: str) -> dict[str, str]:
    """The topic's effective min.insync.replicas and flush.messages, as the cluster reports."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    return {key: configs[key].value for key in ("min.insync.replicas", "flush.messages")
            if key in configs}


# -- workloads -----------------------------------------------------------------------------------


def run_workload(workload: Workload, cluster: Cluster, client_core: int, timeout: float,
                 generator: Path | None) -> dict[str, Any]:
    """The workload against the cluster (the topics exist); broker CPU is all three nodes'
    together. Produce and consume run the native generator when there is one."""
    return native.run(generator, workload.args, cluster.ports.bootstrap, list(cluster.pids),
                      client_core, timeout)


def describe(entry: dict[str, Any]) -> str:
    if not entry["ok"]:
        return f"FAILED: {entry['error']}"
    r = entry["result"]
    if r.get("latency_ms"):
        lat = r["latency_ms"]
        text = f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, p99.9 {lat['p99.9']:.2f} ms"
    else:
        text = f"{r['records_per_sec']:,.0f} records/s, {r['mb_per_sec']:,.1f} MB/s"
    text += f" (client CPU {r['client_cpu_pct']:.0f}%"
    if "broker_cpu_pct" in entry:
        text += f", 3 nodes' CPU {entry['broker_cpu_pct']:.0f}%"
    return text + ")"


# -- one system ----------------------------------------------------------------------------------


def bench_system(peer: peers.Peer, work: list[Workload], sizes: Sizes, broker_core: int,
                 client_core: int, work_dir: Path, generator: Path | None) -> dict[str, Any]:
    root = work_dir / f"cluster3-{peer.key}"
    shutil.rmtree(root, ignore_errors=True)
    for node in NODES:
        (root / f"node{node}").mkdir(parents=True)
    try:
        return _bench_in(root, peer, work, sizes, broker_core, client_core, work_dir, generator)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _bench_in(root: Path, peer: peers.Peer, work: list[Workload], sizes: Sizes,
              broker_core: int, client_core: int, work_dir: Path,
              generator: Path | None) -> dict[str, Any]:
    ports = Ports.allocate()
    launches = LAUNCHERS[peer.key](peer, root, ports)
    entry: dict[str, Any] = {
        "status": "ran", "durability": DURABILITY[peer.key], "workloads": {},
        "commands": {str(i): shlex.join(launch.command).replace(f"{ROOT}/", "")
                     for i, launch in launches.items()},
    }
    if peer.key == "kafka":
        entry["properties"] = (root / "node1" / "server.properties").read_text().replace(
            f"{ROOT}/", "")
    cluster = Cluster(peer.key, ports)
    try:
        cluster.start(launches, broker_core, work_dir)
        try:
            entry["startup_ms"] = cluster.wait_ready(STARTUP_LIMIT_S)
        except RuntimeError as exc:
            return {**entry, "status": "failed", "reason": f"did not start: {exc}"}
        log(f"[cluster3 {peer.key}] every node lists 3 brokers after "
            f"{entry['startup_ms']:.0f} ms")
        time.sleep(IDLE_SETTLE_S)
        entry["idle_rss_mb"] = cluster.rss_mb()
        wanted = topics(work)
        try:
            create_topics(ports.bootstrap, wanted)
            entry["isr_wait_s"] = wait_full_isr(ports.bootstrap, wanted, ISR_LIMIT_S)
            entry["topic_config"] = topic_durability(
                ports.bootstrap, next(w.topic for w in work if w.measured))
        except Exception as exc:  # the cluster formed but cannot host the topics
            return {**entry, "status": "failed", "reason": f"topics: {exc}"}
        log(f"[cluster3 {peer.key}] topics fully in sync after {entry['isr_wait_s']:.1f} s; "
            f"{entry['topic_config']}")
        for workload in work:
            run = _run_one(workload, entry, cluster, client_core, sizes.timeout_s, generator)
            if run["ok"] and workload.reads is None:
                # the ISR the acks=all writes were acknowledged against
                run["isr_after"] = min(isr_sizes(ports.bootstrap, workload.topic))
            entry["workloads"][workload.key] = run
            log(f"[cluster3 {peer.key}] {workload.label}: {describe(run)}")
        if not cluster.exited():
            entry["peak_rss_mb"] = cluster.rss_mb(peak=True)
    finally:
        entry["exit_codes"] = cluster.stop()
    return entry


def _run_one(workload: Workload, entry: dict[str, Any], cluster: Cluster, client_core: int,
             timeout: float, generator: Path | None) -> dict[str, Any]:
    if gone := cluster.exited():
        return {"ok": False, "error": f"node(s) exited: {gone}"}
    if workload.reads and not entry["workloads"].get(workload.reads, {}).get("ok"):
        return {"ok": False, "error": f"n.a.: {workload.reads} failed"}
    return run_workload(workload, cluster, client_core, timeout, generator)


# -- the section ---------------------------------------------------------------------------------


def run(available: dict[str, peers.Peer], selected: list[str], mode: str, partitions: int,
        broker_core: int, client_core: int, work_dir: Path,
        queue_backoff_ms: int, generator: Path | None) -> dict[str, Any]:
    """rafka's and Kafka's 3-node clusters, one after the other (the selected ones of the two);
    the produce and consume rows run `generator` (native.py) when there is one."""
    sizes = SIZES[mode]
    work = workloads(sizes, partitions, queue_backoff_ms)
    section: dict[str, Any] = {
        "settings": {"nodes": len(NODES), "replication_factor": REPLICATION_FACTOR,
                     "min_insync_replicas": MIN_INSYNC_REPLICAS, "partitions": partitions,
                     "broker_core": broker_core, "client_core": client_core,
                     **sizes.__dict__, "cluster_settings": CLUSTER_SETTINGS},
        "workloads": [{"key": w.key, "label": w.label, "records": w.records, "measured": w.measured,
                       "command": native.shown(w.args, generator)} for w in work],
        "systems": [],
        "native_generator": generator is not None,
    }
    started = time.perf_counter()
    for key in (k for k in ("rafka", "kafka") if k in selected):
        peer = available[key]
        entry: dict[str, Any] = {"key": key}
        log(f"[cluster3 {key}] installing")
        try:
            peer.install()
        except Exception as exc:  # reported, and the section goes on
            entry.update(name=peer.name or key, status="unavailable", reason=str(exc))
            section["systems"].append(entry)
            continue
        entry.update(name=peer.name, version=peer.version, runtime=peer.runtime)
        try:
            entry.update(bench_system(peer, work, sizes, broker_core, client_core, work_dir,
                                      generator))
        except Exception as exc:  # e.g. Kafka's storage format failed: this system only
            entry.update(status="failed", reason=str(exc))
        if entry.get("status") != "ran":
            log(f"[cluster3 {key}] failed: {entry.get('reason')}")
        section["systems"].append(entry)
    section["duration_s"] = time.perf_counter() - started
    return section


def verdict(section: dict[str, Any] | None, strict: bool) -> int:
    """1 if rafka's cluster did not run (or, with --strict, if any of its workloads failed)."""
    rafka = next((s for s in (section or {}).get("systems", []) if s["key"] == "rafka"), None)
    failed = [k for k, w in (rafka or {}).get("workloads", {}).items() if not w["ok"]]
    return probes.rafka_verdict(rafka, "rafka's 3-node cluster", failed, strict)
