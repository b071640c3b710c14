"""The benchmark chart: `chart.py RESULTS.json OUT.png`, run with the bench venv's matplotlib.

Four panels, one bar per broker: throughput per workload, e2e latency percentiles, start to first
Metadata answer, and memory (idle and peak RSS).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

THROUGHPUT = [
    ("produce-100b-acks1", "produce\n100 B acks=1"),
    ("produce-100b-acksall", "produce\n100 B acks=all"),
    ("produce-1k-acks1", "produce\n1 KiB acks=1"),
    ("produce-1k-acksall", "produce\n1 KiB acks=all"),
    ("produce-1k-idempotent", "produce 1 KiB\nidempotent"),
    ("consume-1k", "consume\n1 KiB"),
    ("group-consume-1k", "group consume\n1 KiB"),
]
PERCENTILES = ["p50", "p99", "p99.9"]
COLORS = {"rafka": "#d9480f", "kafka": "#364fc7", "tansu": "#2b8a3e"}


def _result(broker: dict[str, Any], key: str) -> dict[str, Any] | None:
    run = broker.get("workloads", {}).get(key)
    return run["result"] if run and run.get("ok") else None


def _value_text(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def _bars(
    ax: Any, groups: list[str], brokers: list[dict[str, Any]], values: Any, log: bool = False
) -> None:
    """Grouped bars, each labelled with its value: one group per label, one bar per broker;
    missing values (failed, not run) are left out."""
    width = 0.8 / max(len(brokers), 1)
    smallest = largest = None
    for i, broker in enumerate(brokers):
        xs, ys = [], []
        for g in range(len(groups)):
            value = values(broker, g)
            if value is not None and value > 0:
                xs.append(g + (i - (len(brokers) - 1) / 2) * width)
                ys.append(value)
                smallest = value if smallest is None else min(smallest, value)
                largest = value if largest is None else max(largest, value)
        bars = ax.bar(xs, ys, width, label=broker["name"], color=COLORS.get(broker["key"]))
        ax.bar_label(bars, [_value_text(y) for y in ys], fontsize=7, padding=2)
    if log:
        ax.set_yscale("log")
        if smallest is not None and largest is not None:  # room below and above for labels
            ax.set_ylim(smallest / 5, largest * 4)
    ax.margins(y=0.15)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def draw(results: dict[str, Any], out: Path) -> None:
    brokers = [b for b in results["brokers"] if b.get("status") == "ran"]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9), gridspec_kw={"width_ratios": [3, 2]})
    (throughput, latency), (startup, memory) = axes

    def mb_per_sec(broker: dict[str, Any], g: int) -> float | None:
        result = _result(broker, THROUGHPUT[g][0])
        return result["mb_per_sec"] if result else None

    _bars(throughput, [label for _, label in THROUGHPUT], brokers, mb_per_sec)
    throughput.set_ylim(bottom=0)
    throughput.set_title("Throughput (MB/s, higher is better)")

    def percentile(broker: dict[str, Any], g: int) -> float | None:
        result = _result(broker, "e2e-1000")
        return result["latency_ms"][PERCENTILES[g]] if result and result["latency_ms"] else None

    _bars(latency, PERCENTILES, brokers, percentile, log=True)
    latency.set_title("End-to-end latency at 1,000 msg/s (ms, log, lower is better)")

    def startup_ms(broker: dict[str, Any], g: int) -> float | None:
        if g == 0:
            return broker.get("startup_ms")
        result = _result(broker, "group-consume-1k")
        return result["extra"]["time_to_first_record_ms"] if result else None

    _bars(startup, ["start to first Metadata answer", "group: subscribe to first record"], brokers,
          startup_ms, log=True)
    startup.set_title("Start-up and group join (ms, log, lower is better)")

    fields = [("idle_rss_mb", "idle RSS"), ("peak_rss_mb", "peak RSS")]
    _bars(memory, [label for _, label in fields], brokers,
          lambda b, g: b.get(fields[g][0]), log=True)
    memory.set_title("Memory (MB, log, lower is better)")

    throughput.legend()
    title = "rafka vs Apache Kafka vs Tansu, one core each"
    if results["mode"] == "quick":
        title += " (--quick run: indicative only)"
    fig.suptitle(f"{title}\n{results['machine']['cpu']}, {results['started']}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
