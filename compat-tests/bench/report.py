"""docs/benchmarks.md from the runner's results: every broker's figure, rafka's ratio to each peer,
the CPU each side used, how it was measured and on what machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import container

Entry = dict[str, Any]
THROUGHPUT = (
    "produce-100b-acks1", "produce-100b-acksall", "produce-1k-acks1", "produce-1k-acksall",
    "produce-1k-idempotent", "consume-1k", "group-consume-1k",
)
CLIENT_BOUND_PCT = 90.0  # the load generator's core this busy: the client may be the limit


@dataclass(frozen=True)
class Figure:
    label: str
    higher_is_better: bool
    value: Callable[[Entry], float | None]
    cell: Callable[[float, Entry], str]
    workload: str | None = None  # whose failure the cell reports


def _result(entry: Entry, key: str) -> dict[str, Any] | None:
    run = entry.get("workloads", {}).get(key)
    return run["result"] if run and run.get("ok") else None


def _throughput(key: str, label: str) -> Figure:
    def value(entry: Entry) -> float | None:
        result = _result(entry, key)
        return result["mb_per_sec"] if result else None

    def cell(v: float, entry: Entry) -> str:
        result = _result(entry, key)
        assert result is not None
        return f"{v:,.1f} MB/s · {_count(result['records_per_sec'])} rec/s"

    return Figure(label, True, value, cell, key)


def _latency(key: str, percentile: str, label: str) -> Figure:
    def value(entry: Entry) -> float | None:
        result = _result(entry, key)
        return result["latency_ms"][percentile] if result and result["latency_ms"] else None

    return Figure(label, False, value, lambda v, _: f"{v:,.2f} ms", key)


def _scalar(field: str, label: str, unit: str, digits: int = 0) -> Figure:
    return Figure(label, False, lambda e: e.get(field), lambda v, _: f"{v:,.{digits}f} {unit}")


def _join_ms(entry: Entry) -> float | None:
    result = _result(entry, "group-consume-1k")
    return result["extra"]["time_to_first_record_ms"] if result else None


def figures(workload_labels: dict[str, str]) -> list[Figure]:
    return [
        *(_throughput(key, workload_labels[key]) for key in THROUGHPUT),
        Figure("group consume: subscribe to first record", False, _join_ms,
               lambda v, _: f"{v:,.0f} ms", "group-consume-1k"),
        _latency("e2e-1000", "p50", "e2e latency p50 at 1,000 msg/s"),
        _latency("e2e-1000", "p99", "e2e latency p99 at 1,000 msg/s"),
        _latency("e2e-1000", "p99.9", "e2e latency p99.9 at 1,000 msg/s"),
        _scalar("startup_ms", "start to first Metadata answer", "ms"),
        _scalar("idle_rss_mb", "idle RSS", "MB", 1),
        _scalar("peak_rss_mb", "peak RSS (whole run)", "MB", 1),
    ]


def _count(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k"
    return f"{n:.0f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs <= 0 or ours <= 0:
        return "—"
    ratio = ours / theirs
    if ratio < 0.1:  # "1/200" reads better than "0.00×"
        return f"1/{1 / ratio:,.0f}"
    return f"{ratio:,.1f}×" if ratio >= 10 else f"{ratio:.2f}×"


class Footnotes:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.notes:
            self.notes.append(text)
        return f"[{self.notes.index(text) + 1}]"


def _cell(figure: Figure, entry: Entry, notes: Footnotes) -> str:
    if entry.get("status") != "ran":
        return "—"
    value = figure.value(entry)
    if value is not None:
        return figure.cell(value, entry)
    run = entry.get("workloads", {}).get(figure.workload or "")
    if run and not run.get("ok"):
        word = "n.a." if run["error"].startswith("n.a.") else "failed"
        note = notes.mark(f"{entry['name']}, {figure.label}: {run['error']}")
        return f"{word} {note}"
    return "—"


def results_table(results: dict[str, Any], notes: Footnotes) -> list[str]:
    brokers = results["brokers"]
    rafka = next((b for b in brokers if b["key"] == "rafka" and b.get("status") == "ran"), None)
    peers = [b for b in brokers if b["key"] != "rafka" and b.get("status") == "ran"]
    labels = {w["key"]: w["label"] for w in results["workloads"]}
    header = ["figure", "better", *(b["name"] for b in brokers),
              *(f"rafka ÷ {p['name']}" for p in peers)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for figure in figures(labels):
        row = [figure.label, "higher" if figure.higher_is_better else "lower"]
        row += [_cell(figure, b, notes) for b in brokers]
        ours = figure.value(rafka) if rafka else None
        row += [_ratio(ours, figure.value(p)) for p in peers]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def cpu_table(results: dict[str, Any]) -> list[str]:
    ran = [b for b in results["brokers"] if b.get("status") == "ran"]
    header = ["workload", *(f"{b['name']}: client / broker CPU" for b in ran)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workload in results["workloads"]:
        row = [workload["label"]]
        for broker in ran:
            run = broker["workloads"].get(workload["key"], {})
            if not run.get("ok"):
                row.append("—")
                continue
            client = run["result"]["client_cpu_pct"]
            broker_pct = run.get("broker_cpu_pct")
            flag = " ⚠" if client >= CLIENT_BOUND_PCT else ""
            row.append(f"{client:.0f}%{flag} / "
                       + (f"{broker_pct:.0f}%" if broker_pct is not None else "—"))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def render(results: dict[str, Any], png: str | None, chart_error: str | None) -> str:
    quick = results["mode"] == "quick"
    notes = Footnotes()
    table = results_table(results, notes)
    machine = results["machine"]
    limits = results["limits"]
    settings = results["settings"]
    client = results.get("client", {})
    out = ["# Benchmarks: rafka, Apache Kafka and Tansu", ""]
    if quick:
        out += [
            "> **This page is from a `--quick` run**: small workloads, measured while other work "
            "was running on the machine (see the load average below). It shows that the tooling "
            "works and gives an indication only; the full run on a quiet machine replaces it.",
            "",
        ]
    out += [
        f"Generated by `{results['command']}` on {results['started']}, "
        f"in {results['duration_s']:.0f} s.",
        "",
        "## Results",
        "",
        "Every broker alone on the machine, pinned to one core, fresh data directory, the same "
        "load generator. Ratios are rafka's figure divided by the peer's (1/20: a twentieth): "
        "above 1 is better where higher is better, below 1 where lower is.",
        "",
        *table,
        "",
    ]
    if notes.notes:
        out += [*(f"{i}. {text}" for i, text in enumerate(notes.notes, 1)), ""]
    if png:
        out += [f"![rafka, Kafka and Tansu side by side]({png})", ""]
    else:
        out += [f"No chart: {chart_error}", ""]
    out += container.table(results.get("container"))
    out += ["## Brokers", "", "| broker | runtime | storage | command |", "|---|---|---|---|"]
    for b in results["brokers"]:
        if b.get("status") == "unavailable":
            out.append(f"| {b['name']} | — | not installed: {b['reason']} | — |")
        elif b.get("status") == "failed":
            out.append(f"| {b['name']} | {b['runtime']} | {b['storage']} | "
                       f"failed: {b['reason']} |")
        else:
            out.append(f"| {b['name']} | {b['runtime']} | {b['storage']} | "
                       f"`{b['command']}` |")
    out += [
        "",
        "Kafka acknowledges from the page cache (it does not fsync before acks=1/all by default), "
        "Tansu keeps everything in memory, rafka fsyncs before it acknowledges: the produce "
        "figures do not buy the same durability.",
        "",
        "## How it was measured",
        "",
        f"- Broker on core {settings['broker_core']}, load generator on core "
        f"{settings['client_core']} (`taskset`). The load generator is `rafka bench` "
        f"(librdkafka {client.get('librdkafka', '?')} through confluent-kafka "
        f"{client.get('confluent-kafka', '?')}), one process per workload, run in this order:",
        "",
        *(f"  - {w['label']}: `{w['command']}`" for w in results["workloads"]),
        "",
        f"- Throughput topics have {settings['partitions']} partitions; the e2e topic has one. "
        "Producers and consumers use librdkafka's defaults except the flags shown (e2e: "
        "linger.ms=0 as Kafka's EndToEndLatency; its consumer keeps fetch.wait.max.ms=500, so a "
        "broker that does not wake a waiting Fetch shows it). MB is 2^20 bytes, as in Kafka's "
        "perf tools. Consume throughput runs from partition assignment (for the group: when "
        "its join completed) to the last record; the group's wait from subscribing to its "
        "first record is its own row.",
        "- Client CPU is the load generator's user+system time (getrusage) over the measured "
        f"interval; ⚠ marks {CLIENT_BOUND_PCT:.0f}% or more of its one core, where the client "
        "may be the limit. Broker CPU is the broker's CPU time over the same interval, from "
        "/proc samples every 20 ms (the kernel counts in 10 ms ticks: short runs are coarse).",
        "- Start to first Metadata answer: from spawning the broker process (storage already "
        "formatted for Kafka) to the first Metadata v4 response listing a broker. Idle RSS: 2 s "
        "after that; peak RSS: the process's high-water mark (VmHWM) after all workloads.",
        "",
        "## CPU per workload",
        "",
        *cpu_table(results),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine.items()),
        "",
        "Its limits, measured by the same run:",
        "",
        f"- loopback TCP between the two cores, 1 MiB writes: "
        f"{limits['loopback_mb_per_sec']:,.0f} MB/s",
        f"- disk, sequential 1 MiB writes each followed by fsync: "
        f"{limits['fsync_1mib_mb_per_sec']:,.0f} MB/s",
        f"- disk, 4 KiB appends each followed by fsync: {limits['fsync_4kib_per_sec']:,.0f}/s "
        f"({limits['fsync_4kib_ms']:.2f} ms each)",
        "",
        "## Reproduce",
        "",
        "```",
        "compat-tests/bench/run            # full run, under 20 minutes",
        "compat-tests/bench/run --quick    # under 3 minutes",
        "```",
        "",
        "It installs what it needs (rafka's venv, Kafka's jars through Maven into "
        "compat-tests/bench/.cache, Tansu and matplotlib into compat-tests/bench/.venv); a peer "
        "that cannot be installed is reported above and skipped. Raw figures: "
        "[benchmarks.json](benchmarks.json). `rafka bench` also runs against any cluster: "
        "`rafka bench produce --bootstrap-server HOST:PORT --topic t --num-records 1000000 "
        "--record-size 1024 --acks all`.",
        "",
    ]
    return "\n".join(out)
