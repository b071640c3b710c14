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
    "produce-1k-idempotent", "consume-1k", "group-consume-1k", "consume-1k-defaults",
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
        *(_throughput(key, workload_labels[key]) for key in THROUGHPUT if key in workload_labels),
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
    if not results["brokers"]:
        return ["Not run this time (`--only` left the single-broker section out)."]
    labels = {w["key"]: w["label"] for w in results["workloads"]}
    return figure_table(results["brokers"], figures(labels), notes)


def figure_table(brokers: list[Entry], rows: list[Figure], notes: Footnotes) -> list[str]:
    """One row per figure: every broker's cell, then rafka's ratio to each peer."""
    rafka = next((b for b in brokers if b["key"] == "rafka" and b.get("status") == "ran"), None)
    peers = [b for b in brokers if b["key"] != "rafka" and b.get("status") == "ran"]
    header = ["figure", "better", *(b["name"] for b in brokers),
              *(f"rafka ÷ {p['name']}" for p in peers)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for figure in rows:
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
                       + (f"{broker_pct:.0f}%" if broker_pct is not None else "—")
                       + _broker_ms_per_mb(run))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _broker_ms_per_mb(run: dict[str, Any]) -> str:
    """The broker's CPU time per MB moved, for the workloads that move data."""
    result, broker_pct = run["result"], run.get("broker_cpu_pct")
    mb = result.get("bytes", 0) / 2**20
    if broker_pct is None or mb < 1:
        return ""
    return f" ({broker_pct / 100 * result['elapsed_s'] * 1000 / mb:.2f} ms/MB)"


def bootstrapped(command: str, servers: str) -> str:
    """A workload's command line with its bootstrap servers: the native generator names them in
    place of HOST:PORT, `rafka bench` takes a flag."""
    if "HOST:PORT" in command:
        return command.replace("HOST:PORT", servers)
    return f"{command} --bootstrap-server {servers}"


def generator_text(native: bool, client: dict[str, str]) -> str:
    library = (f"librdkafka {client.get('librdkafka', '?')}, the copy confluent-kafka "
               f"{client.get('confluent-kafka', '?')} bundles")
    if not native:
        return f"The load generator is `rafka bench` ({library})."
    return (
        "The produce and consume rows run `generator` (compat-tests/bench/native/generator.c), "
        f"a C program on {library}, with `rafka bench`'s settings and payload and its JSON "
        "output; the e2e row runs `rafka bench` itself, on the same library. Python's cost "
        "per record made `rafka bench` the limit of the throughput rows on the one client "
        "core (every broker met the same ceiling, the client's core at 100%): the native "
        "generator sends and reads several times faster there, so those rows measure the "
        "broker. The produce rows' topics are created first, as `rafka bench produce "
        "--partitions` creates them."
    )


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
        f"{settings['client_core']} (`taskset`), one process per workload. "
        + generator_text(results.get("native_generator", False), client)
        + " The workloads, in the order they run:",
        "",
        *(f"  - {w['label']}: `{w['command']}`" for w in results["workloads"]),
        "",
        f"- Throughput topics have {settings['partitions']} partitions; the e2e topic has one. "
        "Producers and consumers use librdkafka's defaults except the flags shown (e2e: "
        "linger.ms=0 as Kafka's EndToEndLatency; its consumer keeps fetch.wait.max.ms=500, so a "
        "broker that does not wake a waiting Fetch shows it). MB is 2^20 bytes, as in Kafka's "
        "perf tools. Consume throughput runs from the poll that returned the first record to "
        "the last record, as kafka-consumer-perf-test's fetch figures; the group's wait from "
        "subscribing to its first record is its own row.",
        "- The consume rows run librdkafka with fetch.queue.backoff.ms=10, for every broker: "
        "by default librdkafka stops fetching for 1 s whenever its prefetch queue holds "
        "queued.min.messages (100,000) records or queued.max.messages.kbytes (64 MiB), so a "
        "broker that serves faster than the application drains sees the client idle for the "
        "rest of that second (librdkafka issue 2879; the setting is librdkafka's own remedy). "
        "The defaults row keeps what an untuned client sees: how often the queue fills "
        "depends on how fast the application drains it, so a slower application (such as "
        "`rafka bench`'s Python loop) meets the backoff far more often than the native "
        "generator does.",
        "- Client CPU is the load generator's user+system time (getrusage) over the measured "
        f"interval; ⚠ marks {CLIENT_BOUND_PCT:.0f}% or more of its one core, where the client "
        "may be the limit. Broker CPU is the broker's CPU time over the same interval, from "
        "/proc samples every 20 ms (the kernel counts in 10 ms ticks: short runs are coarse); "
        "in brackets, the broker's CPU time per MB produced or consumed.",
        "- Start to first Metadata answer: from spawning the broker process (storage already "
        "formatted for Kafka) to the first Metadata v4 response listing a broker; the median of "
        "5 starts, each on a fresh data directory (the last one serves the workloads). Idle "
        "RSS: 2 s after that; peak RSS: the process's high-water mark (VmHWM) after all "
        "workloads.",
        "",
        "## CPU per workload",
        "",
        *cpu_table(results),
        "",
        *scale_section(results.get("scale")),
        *cluster3_section(results.get("cluster3")),
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


# -- the 3-node cluster (cluster3.py) ------------------------------------------------------------


def cluster3_figures(labels: dict[str, str]) -> list[Figure]:
    e2e = "cluster-e2e-1000"
    return [
        _throughput("cluster-produce-1k-acksall", labels["cluster-produce-1k-acksall"]),
        _throughput("cluster-consume-1k", labels["cluster-consume-1k"]),
        _latency(e2e, "p50", "e2e latency p50 at 1,000 msg/s"),
        _latency(e2e, "p99", "e2e latency p99 at 1,000 msg/s"),
        _latency(e2e, "p99.9", "e2e latency p99.9 at 1,000 msg/s"),
        _scalar("startup_ms", "spawn to every node listing 3 brokers", "ms"),
        _scalar("idle_rss_mb", "idle RSS, 3 nodes", "MB", 1),
        _scalar("peak_rss_mb", "peak RSS, 3 nodes (whole run)", "MB", 1),
    ]


def cluster3_section(section: dict[str, Any] | None) -> list[str]:
    """The "3-node cluster" section: its figures and ratios, durability, CPU and commands."""
    if not section:
        return []
    systems = section["systems"]
    ran = [s for s in systems if s.get("status") == "ran"]
    settings = section["settings"]
    notes = Footnotes()
    labels = {w["key"]: w["label"] for w in section["workloads"]}
    cluster_generator = ("the produce and consume rows: the native generator, as the "
                         "single-node rows; e2e: `rafka bench`"
                         if section.get("native_generator") else "`rafka bench`")
    out = [
        "## 3-node cluster",
        "",
        f"Three rafka nodes against three Kafka nodes, both in KRaft combined mode (every node a "
        f"broker and a controller voter, a static `controller.quorum.voters`), replication factor "
        f"{settings['replication_factor']}, `min.insync.replicas={settings['min_insync_replicas']}`"
        f" (broker settings, identical on both; the topics inherit them). One system at a time, "
        f"fresh data directories; the three nodes of a system share core "
        f"{settings['broker_core']}, the load generator ({cluster_generator}) runs on core "
        f"{settings['client_core']} and bootstraps from all three. Ratios are rafka's figure "
        f"divided by Kafka's, from this run. "
        f"Startup runs from spawning the three nodes (Kafka's storage already formatted) until "
        f"each one's Metadata answer lists all three brokers.",
        "",
        *figure_table(systems, cluster3_figures(labels), notes),
        "",
    ]
    if notes.notes:
        out += [*(f"{i}. {text}" for i, text in enumerate(notes.notes, 1)), ""]
    out += ["| system | an acks=all write is acknowledged | topic config (as the cluster "
            "reports it) | smallest ISR after the produce row | exit codes, SIGTERM to all |",
            "|---|---|---|---|---|"]
    for s in systems:
        if s.get("status") != "ran":
            out.append(f"| {s['name']} | {s.get('status')}: {s.get('reason')} | — | — | — |")
            continue
        config = ", ".join(f"{k}={v}" for k, v in s.get("topic_config", {}).items())
        produce = s["workloads"].get("cluster-produce-1k-acksall", {})
        codes = ", ".join(f"{v}" for v in s.get("exit_codes", {}).values())
        out.append(f"| {s['name']} | {s['durability']} | {config} | "
                   f"{produce.get('isr_after', '—')} | {codes} |")
    out += [
        "",
        "The same acks=all does not buy the same durability: rafka's acknowledgement means two of "
        "the three nodes have fsynced the record, Kafka's that every in-sync replica holds it in "
        "its page cache. With every node on one machine, a power cut keeps what rafka "
        "acknowledged and may lose what Kafka did.",
        "",
        *cluster3_cpu_table(section, ran),
        "",
        *_warmup_drift(ran),
        f"Run in this order (warm-ups make no row: a JVM compiles a path only once it is hot), "
        f"{settings['partitions']} partitions on the throughput topics, one on the e2e topic, "
        f"the topics created and fully in sync before the first run; this section took "
        f"{section.get('duration_s', 0):.0f} s (`compat-tests/bench/run --only cluster3`):",
        "",
        *(f"- {w['label']}: `{bootstrapped(w['command'], '<the 3 nodes>')}`"
          for w in section["workloads"]),
        "",
    ]
    for s in ran:
        out += [f"{s['name']} node 1 (nodes 2 and 3 differ in node.id, ports and log.dirs):", "",
                "```", s["commands"]["1"]]
        if s.get("properties"):
            out += ["", "# server.properties", s["properties"].strip()]
        out += ["```", ""]
    return out


def _warmup_drift(ran: list[Entry]) -> list[str]:
    """The e2e warm-up's p50 beside the row's: far apart, the system was still warming up."""
    pairs = []
    for system in ran:
        runs = [system["workloads"].get(k, {}) for k in ("cluster-e2e-warmup", "cluster-e2e-1000")]
        if all(r.get("ok") and r["result"].get("latency_ms") for r in runs):
            before, row = (r["result"]["latency_ms"]["p50"] for r in runs)
            pairs.append(f"{system['name']} {before:,.2f} ms, then {row:,.2f} ms")
    if not pairs:
        return []
    return [f"e2e p50 in the warm-up run, then in the measured one: {'; '.join(pairs)} (far "
            "apart: that system was still warming up, and its e2e row is not its steady "
            "state).", ""]


def cluster3_cpu_table(section: dict[str, Any], ran: list[Entry]) -> list[str]:
    header = ["workload", *(f"{s['name']}: client / 3 nodes' CPU" for s in ran)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workload in section["workloads"]:
        row = [workload["label"]]
        for system in ran:
            run = system["workloads"].get(workload["key"], {})
            if not run.get("ok"):
                row.append("—")
                continue
            nodes = run.get("broker_cpu_pct")
            row.append(f"{run['result']['client_cpu_pct']:.0f}% / "
                       + (f"{nodes:.0f}%" if nodes is not None else "—"))
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, "", "CPU in % of one core; the three nodes share one."]


# -- partition scale (scale.py) ------------------------------------------------------------------


def _scale_figure(key: str, label: str, unit: str, digits: int = 0,
                  higher: bool = False) -> Figure:
    def value(entry: Entry) -> float | None:
        return entry.get("figures", {}).get(key)

    def cell(v: float, entry: Entry) -> str:
        if unit == "of":  # partitions holding their record, of all of them
            return f"{v:,.0f} / {entry['partitions']:,}"
        return f"{v:,.{digits}f} {unit}"

    return Figure(label, higher, value, cell, key)


def scale_figures() -> list[Figure]:
    rows = [
        _scale_figure("create_ms", "create: CreateTopics answered", "ms"),
        _scale_figure("create_led_ms", "create: until Metadata lists every partition led", "ms"),
        _scale_figure("create_served_ms", "create: until ListOffsets answers every partition",
                      "ms"),
        _scale_figure("write_ms", "write one record to every partition (acks=all)", "ms"),
        _scale_figure("written_holding", "partitions holding their record after the writes",
                      "of", higher=True),
        _scale_figure("idle_cpu_pct", "idle CPU", "% of a core", 1),
        _scale_figure("idle_rss_mb", "idle RSS", "MB", 1),
        _scale_figure("clean_stop_ms", "clean shutdown: SIGTERM to exit", "ms"),
    ]
    for prefix, how in (("clean", "SIGTERM"), ("killed", "SIGKILL")):
        rows += [
            _scale_figure(f"{prefix}_restart_ms",
                          f"restart after {how}: spawn to Metadata listing every partition led",
                          "ms"),
            _scale_figure(f"{prefix}_served_ms",
                          f"restart after {how}: spawn to latest offset 1 on every partition",
                          "ms"),
            _scale_figure(f"{prefix}_holding",
                          f"restart after {how}: partitions holding their record", "of",
                          higher=True),
            _scale_figure(f"{prefix}_idle_cpu_pct", f"restart after {how}: idle CPU",
                          "% of a core", 1),
            _scale_figure(f"{prefix}_idle_rss_mb", f"restart after {how}: idle RSS", "MB", 1),
        ]
    return rows


def scale_table(brokers: list[Entry], notes: Footnotes) -> list[str]:
    """As figure_table, but a missing figure's reason is the broker's own ("failed" for the
    step that failed, "n.a." for those it left out), one footnote per reason."""
    ran = [b for b in brokers if b.get("status") == "ran"]
    rafka = next((b for b in ran if b["key"] == "rafka"), None)
    peers = [b for b in ran if b["key"] != "rafka"]
    header = ["figure", "better", *(b["name"] for b in brokers),
              *(f"rafka ÷ {p['name']}" for p in peers)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for figure in scale_figures():
        row = [figure.label, "higher" if figure.higher_is_better else "lower"]
        for b in brokers:
            value = figure.value(b) if b in ran else None
            reason = b.get("failed", {}).get(figure.workload or "")
            if value is not None:
                row.append(figure.cell(value, b))
            elif reason:
                word = "n.a." if reason.startswith("n.a.") else "failed"
                row.append(f"{word} {notes.mark(b['name'] + ': ' + reason)}")
            else:
                row.append("—")
        ours = figure.value(rafka) if rafka else None
        row += [_ratio(ours, figure.value(p)) for p in peers]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def scale_section(section: dict[str, Any] | None) -> list[str]:
    """The "Partition scale" section: every figure side by side, rafka's ratio, what failed."""
    if not section:
        return []
    settings = section["settings"]
    brokers = [{**b, "partitions": settings["partitions"]} for b in section["brokers"]]
    notes = Footnotes()
    nofile = settings["nofile"]
    out = [
        "## Partition scale",
        "",
        f"One node, {settings['partitions']:,} partitions ({settings['topics']} topics, "
        f"replication factor {settings['replication_factor']}), one broker at a time, pinned to "
        f"core {settings['broker_core']}, the clients (confluent-kafka) to core "
        f"{settings['client_core']}; fresh data directory. Ratios are rafka's figure divided by "
        f"the peer's, from this run; this section took {section.get('duration_s', 0):.0f} s "
        f"(`compat-tests/bench/run --only scale`).",
        "",
        *scale_table(brokers, notes),
        "",
    ]
    if notes.notes:
        out += [*(f"{i}. {text}" for i, text in enumerate(notes.notes, 1)), ""]
    missing = [b for b in brokers if b.get("status") != "ran"]
    if missing:
        out += [*(f"{b['name']}: {b.get('status')}, {b.get('reason')}." for b in missing), ""]
    out += [
        f"- Create: one CreateTopics request per topic, all {settings['topics']} sent at once "
        "(Kafka's controller refuses one request of 10,000 partitions: more records than it "
        "takes from one operation), timed to the last answer, to a Metadata answer listing "
        "every partition with a leader, and to ListOffsets (latest) answering 0 for every "
        "partition (Kafka lists leaders before its broker has created their logs).",
        "- Write: one record to every partition from one producer (acks=all, librdkafka's "
        "defaults otherwise), timed to the last acknowledgement.",
        f"- Idle CPU: the broker's CPU time over {settings['idle_s']:.0f} s with no client, "
        f"{settings['settle_s']:.0f} s after the previous step, in % of one core; RSS at its "
        "end.",
        "- Restarts reuse the data directory: SIGTERM and wait for the exit, then, later, "
        "SIGKILL while idle. Timed from spawning the process to the first Metadata answer "
        f"listing every partition with a leader (a full Metadata v4 request every "
        f"{settings['poll_ms']:.0f} ms, or {settings['poll_cost_ratio']:.0f}× the last "
        "answer's time if longer, so answering them costs the broker at most a tenth of its "
        "time), then to ListOffsets (latest: the high watermark) answering 1 for every "
        "partition: it holds its record.",
        "- ListOffsets is asked again for the partitions answering an error (a broker still "
        "loading a partition answers NOT_LEADER_OR_FOLLOWER or UNKNOWN_LEADER_EPOCH) or another "
        f"offset, until none does or none more has answered right for "
        f"{settings['stalled_s']:.0f} s.",
        f"- Each step may take {settings['step_s']:.0f} s; one that fails leaves the later ones "
        "n.a. The brokers inherit RLIMIT_NOFILE "
        f"{nofile['soft']:,} (soft, raised from {nofile['soft_before']:,}; hard "
        f"{nofile['hard']:,}).",
        "",
    ]
    return out
