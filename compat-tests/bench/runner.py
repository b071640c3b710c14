"""Runs the same workloads against rafka, Apache Kafka and Tansu, one broker at a time, each pinned
to one core with a fresh data directory, and writes docs/benchmarks.{md,png,json}.

The load generator is `rafka bench` (librdkafka through confluent-kafka) pinned to the other core,
so every broker meets the same client. Started by ./run, which installs rafka's venv first.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cluster3
import container
import native
import peers
import probes
import report
import scale

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STARTUP_LIMIT_S = 120.0
IDLE_SETTLE_S = 2.0
STOP_GRACE_S = 30.0
# Starts timed per broker, each on a fresh data directory; the figure is their median, since one
# start is at the mercy of the page cache (the first after an image build or a big write reads
# its code from disk).
START_SAMPLES = 5
QUEUE_BACKOFF_MS = 10  # the consumers' fetch.queue.backoff.ms (see workloads)
SECTIONS = ("single", "scale", "cluster3")  # what --only chooses from


@dataclass(frozen=True)
class Workload:
    key: str  # also the topic it writes or, for consumers, reads
    label: str
    args: tuple[str, ...]  # `rafka bench` subcommand and its flags, less the bootstrap server
    records: int
    reads: str | None = None  # the produce workload whose records a consumer reads


@dataclass(frozen=True)
class Sizes:
    small_records: int  # 100 B records per produce workload
    large_records: int  # 1 KiB records per produce workload
    e2e_records: int  # at 1,000 records/s
    loopback_s: float
    disk_mb: int
    fsync_s: float
    timeout_s: float  # per workload


SIZES = {
    "quick": Sizes(500_000, 200_000, 3_000, 1.0, 64, 1.0, 120.0),
    "full": Sizes(5_000_000, 1_000_000, 30_000, 3.0, 512, 3.0, 600.0),
}


def workloads(sizes: Sizes, partitions: int) -> list[Workload]:
    def produce(key: str, label: str, size: int, records: int, *flags: str) -> Workload:
        args = ("produce", "--topic", key, "--num-records", str(records), "--record-size",
                str(size), "--partitions", str(partitions), *flags)
        return Workload(key, label, args, records)

    source = "produce-1k-acks1"
    defaults = ("consume", "--topic", source, "--num-records", str(sizes.large_records),
                "--timeout", "60")
    # librdkafka stops fetching for fetch.queue.backoff.ms (default 1 s) whenever its prefetch
    # queue holds queued.min.messages (100,000): a broker that serves faster than the
    # application drains then sees the client idle most of each second (librdkafka #2879).
    # The consume rows measure the broker with librdkafka's own remedy, for every broker;
    # the defaults row keeps what an untuned client sees.
    consume = (*defaults, "--consumer-props", f"fetch.queue.backoff.ms={QUEUE_BACKOFF_MS}")
    return [
        produce("produce-100b-acks1", "produce 100 B, acks=1", 100, sizes.small_records,
                "--acks", "1"),
        produce("produce-100b-acksall", "produce 100 B, acks=all", 100, sizes.small_records,
                "--acks", "all"),
        produce(source, "produce 1 KiB, acks=1", 1024, sizes.large_records, "--acks", "1"),
        produce("produce-1k-acksall", "produce 1 KiB, acks=all", 1024, sizes.large_records,
                "--acks", "all"),
        produce("produce-1k-idempotent", "produce 1 KiB, idempotent (acks=all)", 1024,
                sizes.large_records, "--acks", "all", "--idempotence"),
        Workload("consume-1k", "consume 1 KiB", consume, sizes.large_records, reads=source),
        Workload("group-consume-1k", "group consume 1 KiB", (*consume, "--group", "bench-group"),
                 sizes.large_records, reads=source),
        Workload("consume-1k-defaults", "consume 1 KiB, librdkafka defaults", defaults,
                 sizes.large_records, reads=source),
        # last, so a JIT-compiled broker is warm; one partition, as Kafka's EndToEndLatency wants
        Workload("e2e-1000", "e2e latency at 1,000 msg/s, 100 B",
                 ("e2e", "--topic", "e2e-1000", "--num-records", str(sizes.e2e_records),
                  "--record-size", "100", "--throughput", "1000", "--partitions", "1"),
                 sizes.e2e_records),
    ]


def log(message: str) -> None:
    print(message, flush=True)


# -- one broker ----------------------------------------------------------------------------------


def run_workload(
    workload: Workload, process: subprocess.Popen, port: int, client_core: int, timeout: float,
    generator: Path | None,
) -> dict[str, Any]:
    bootstrap = f"127.0.0.1:{port}"
    if workload.args[0] == "produce":
        create_topic(bootstrap, workload)  # the native generator needs it; rafka bench finds it
    return native.run(generator, workload.args, bootstrap, [process.pid], client_core, timeout)


def create_topic(bootstrap: str, workload: Workload) -> None:
    """The topic of a produce workload, with its partitions and every leader known, through the
    same code as `rafka bench produce` (not timed)."""
    import confluent_kafka

    from rafka.cli.bench_support import ClientErrors, ensure_topic

    partitions = int(workload.args[workload.args.index("--partitions") + 1])
    ensure_topic(confluent_kafka, bootstrap, workload.key, partitions, -1,
                 ClientErrors(confluent_kafka))


def describe_result(entry: dict[str, Any]) -> str:
    if not entry["ok"]:
        return f"FAILED: {entry['error']}"
    r = entry["result"]
    text = f"{r['records_per_sec']:,.0f} records/s, {r['mb_per_sec']:,.1f} MB/s"
    if r.get("latency_ms"):
        lat = r["latency_ms"]
        text = f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, p99.9 {lat['p99.9']:.2f} ms"
    text += f" (client CPU {r['client_cpu_pct']:.0f}%"
    if "broker_cpu_pct" in entry:
        text += f", broker CPU {entry['broker_cpu_pct']:.0f}%"
    return text + ")"


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def bench_broker(
    peer: peers.Peer, args: argparse.Namespace, sizes: Sizes, work_dir: Path
) -> dict[str, Any]:
    data_dir = work_dir / peer.key
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    try:
        return _bench_in(data_dir, peer, args, sizes, work_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def timed_starts(
    peer: peers.Peer, args: argparse.Namespace, scratch: Path, count: int
) -> list[float]:
    """Spawn to first Metadata answer (ms) of `count` starts, each on a fresh data directory
    and stopped once timed."""
    samples = []
    for i in range(count):
        data_dir = scratch / f"start-{i}"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        port = probes.free_port()
        launch = peer.prepare(data_dir, port, [probes.free_port()])
        started = time.perf_counter()
        process = subprocess.Popen(
            ["taskset", "-c", str(args.broker_core), *launch.command],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **launch.env}, start_new_session=True,
        )
        try:
            samples.append(probes.wait_for_metadata(port, started, process, STARTUP_LIMIT_S))
        finally:
            stop(process)
            shutil.rmtree(data_dir, ignore_errors=True)
    return samples


def _bench_in(
    data_dir: Path, peer: peers.Peer, args: argparse.Namespace, sizes: Sizes, work_dir: Path
) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": "ran", "workloads": {}}
    try:
        samples = timed_starts(peer, args, work_dir / f"{peer.key}-starts", START_SAMPLES - 1)
    except RuntimeError as exc:
        return {**entry, "status": "failed", "reason": f"did not start: {exc}"}
    port = probes.free_port()
    launch = peer.prepare(data_dir, port, [probes.free_port()])
    entry["command"] = shlex.join(launch.command).replace(f"{ROOT}/", "")
    with (work_dir / f"{peer.key}-broker.log").open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            ["taskset", "-c", str(args.broker_core), *launch.command],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **launch.env},
            start_new_session=True,
        )
        try:
            samples.append(probes.wait_for_metadata(port, started, process, STARTUP_LIMIT_S))
        except RuntimeError as exc:
            stop(process)
            return {**entry, "status": "failed", "reason": f"did not start: {exc}"}
        entry["startup_ms"] = statistics.median(samples)
        entry["startup_samples_ms"] = samples
        try:
            log(
                f"[{peer.key}] first Metadata answer after {entry['startup_ms']:.0f} ms (median "
                f"of {len(samples)} starts: {', '.join(f'{s:.0f}' for s in samples)} ms)"
            )
            time.sleep(IDLE_SETTLE_S)
            entry["idle_rss_mb"] = probes.rss_mb(process.pid)
            for workload in workloads(sizes, args.partitions):
                run = run_one(workload, entry, process, port, args, sizes)
                entry["workloads"][workload.key] = run
                log(f"[{peer.key}] {workload.label}: {describe_result(run)}")
            if process.poll() is None:
                entry["peak_rss_mb"] = probes.peak_rss_mb(process.pid)
        finally:
            stop(process)
    entry["exit_code"] = process.returncode
    return entry


def run_one(
    workload: Workload, entry: dict[str, Any], process: subprocess.Popen, port: int,
    args: argparse.Namespace, sizes: Sizes,
) -> dict[str, Any]:
    if process.poll() is not None:
        return {"ok": False, "error": f"broker exited with code {process.returncode}"}
    if workload.reads and not entry["workloads"].get(workload.reads, {}).get("ok"):
        return {"ok": False, "error": f"n.a.: {workload.reads} failed"}
    return run_workload(workload, process, port, args.client_core, sizes.timeout_s,
                        args.native_generator)


# -- the whole run -------------------------------------------------------------------------------


def machine_limits(args: argparse.Namespace, sizes: Sizes, work_dir: Path) -> dict[str, float]:
    log("measuring the machine's limits (loopback, fsync'd disk writes)")
    limits = {
        "loopback_mb_per_sec": probes.loopback_mb_per_sec(
            sizes.loopback_s, args.client_core, args.broker_core
        )
    }
    limits.update(probes.disk_limits(work_dir, sizes.disk_mb, sizes.fsync_s))
    return limits


def chart(results_path: Path, png: Path, venv: Path) -> str | None:
    """Draw the PNG with the bench venv's matplotlib; the reason if it could not."""
    try:
        python = peers.install_matplotlib(venv)
    except peers.PeerUnavailable as exc:
        return str(exc)
    done = subprocess.run(
        [str(python), str(HERE / "chart.py"), str(results_path), str(png)],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["chart.py failed"])[-1]
    return None


def sections(text: str) -> tuple[str, ...]:
    """--only's value: a comma-separated list of SECTIONS."""
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(unknown)}; "
                                         f"choose from {', '.join(SECTIONS)}")
    return chosen


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="compat-tests/bench/run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true",
                        help="small workloads (under 3 minutes); numbers are only indicative")
    parser.add_argument("--peers", default="rafka,kafka,tansu",
                        help="comma-separated brokers to run (default: %(default)s)")
    parser.add_argument("--broker-core", type=int, default=0,
                        help="core the broker is pinned to (default: %(default)s)")
    parser.add_argument("--client-core", type=int, default=1,
                        help="core the load generator is pinned to (default: %(default)s)")
    parser.add_argument("--partitions", type=int, default=4,
                        help="partitions of the throughput topics (default: %(default)s)")
    parser.add_argument("--work-dir", type=Path, default=HERE / ".work",
                        help="data directories and broker logs (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md",
                        help="the report; .png and .json are written beside it")
    parser.add_argument("--image", default="rafka:latest",
                        help="the container image measured beside apache/kafka's figures")
    parser.add_argument("--no-image", action="store_true",
                        help="skip the container image's figures")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any rafka workload failed (peers never fail the run)")
    parser.add_argument("--only", type=sections, default=SECTIONS,
                        help="comma-separated sections to run: single (one broker), scale, "
                             "cluster3 (3 nodes, RF=3) (default: all)")
    parser.add_argument("--no-cluster", action="store_true",
                        help="skip the 3-node cluster section (cluster3)")
    parser.add_argument("--no-scale", action="store_true",
                        help="skip the partition-scale section (scale)")
    parser.add_argument("--scale-partitions", type=int, default=None, metavar="N",
                        help="partitions of the scale section (default: 10,000; 2,000 with "
                             "--quick)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    wall = time.perf_counter()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    venv, cache = HERE / ".venv", HERE / ".cache"
    available: dict[str, peers.Peer] = {
        "rafka": peers.Rafka(), "kafka": peers.Kafka(cache), "tansu": peers.Tansu(venv),
    }
    selected = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in selected if p not in available]
    if unknown:
        print(f"unknown peer(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    results: dict[str, Any] = {
        "mode": mode,
        "command": "compat-tests/bench/run" + "".join(f" {shlex.quote(a)}" for a in argv),
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": probes.describe_machine(args.work_dir),
        "settings": {"broker_core": args.broker_core, "client_core": args.client_core,
                     "partitions": args.partitions, **sizes.__dict__},
        "brokers": [],
    }
    wanted_generator = "single" in args.only or ("cluster3" in args.only and not args.no_cluster)
    args.native_generator = native_generator(cache) if wanted_generator else None
    results["native_generator"] = args.native_generator is not None
    results["workloads"] = [
        {"key": w.key, "label": w.label, "records": w.records,
         "command": native.shown(w.args, args.native_generator)}
        for w in workloads(sizes, args.partitions)
    ]
    results["limits"] = machine_limits(args, sizes, args.work_dir)
    singles = selected if "single" in args.only else []
    for key in singles:
        peer = available[key]
        log(f"[{key}] installing")
        entry: dict[str, Any] = {"key": key}
        try:
            peer.install()
        except Exception as exc:  # any failure to install: reported, and the run goes on
            log(f"[{key}] not installed: {exc}")
            entry.update(name=peer.name or key, status="unavailable", reason=str(exc))
            results["brokers"].append(entry)
            continue
        entry.update(name=peer.name, version=peer.version, storage=peer.storage,
                     runtime=peer.runtime)
        try:
            entry.update(bench_broker(peer, args, sizes, args.work_dir))
        except Exception as exc:  # e.g. Kafka's storage format failed: this broker only
            log(f"[{key}] failed: {exc}")
            entry.update(status="failed", reason=str(exc))
        results["brokers"].append(entry)
    if "scale" in args.only and not args.no_scale:
        results["scale"] = scale.run(available, selected, mode, args.scale_partitions,
                                     args.broker_core, args.client_core, args.work_dir)
    if "cluster3" in args.only and not args.no_cluster:
        results["cluster3"] = cluster3.run(available, selected, mode, args.partitions,
                                           args.broker_core, args.client_core, args.work_dir,
                                           QUEUE_BACKOFF_MS, args.native_generator)
    if not args.no_image:
        log(f"[image] measuring {args.image}")
        results["container"] = container.measure_image(args.image)
        log(f"[image] {results['container']}")
    results["client"] = client_versions()
    load = os.getloadavg()
    results["machine"]["load average at end"] = f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    results["duration_s"] = time.perf_counter() - wall
    json_path, png = args.out.with_suffix(".json"), args.out.with_suffix(".png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    chart_error = chart(json_path, png, venv)
    if chart_error:
        log(f"no chart: {chart_error}")
    args.out.write_text(report.render(results, png.name if not chart_error else None,
                                      chart_error))
    log(f"wrote {args.out} in {results['duration_s']:.0f} s")
    return max(rafka_verdict(results, args.strict),
               cluster3.verdict(results.get("cluster3"), args.strict),
               scale.verdict(results.get("scale"), args.strict))


def native_generator(cache: Path) -> Path | None:
    """The produce and consume rows' generator; None (they run `rafka bench`) if it cannot be
    built here."""
    try:
        binary = native.build(cache)
    except native.NativeUnavailable as exc:
        log(f"no native load generator, every row runs rafka bench: {exc}")
        return None
    log(f"produce and consume rows: native load generator {binary.name}")
    return binary


def rafka_verdict(results: dict[str, Any], strict: bool) -> int:
    """1 if rafka did not run (or, with --strict, if any of its workloads failed)."""
    rafka = next((b for b in results["brokers"] if b["key"] == "rafka"), None)
    failed = [k for k, w in (rafka or {}).get("workloads", {}).items() if not w["ok"]]
    return probes.rafka_verdict(rafka, "rafka", failed, strict)


def client_versions() -> dict[str, str]:
    import confluent_kafka

    return {"confluent-kafka": importlib.metadata.version("confluent-kafka"),
            "librdkafka": confluent_kafka.libversion()[0]}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
