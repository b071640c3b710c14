"""`rafka bench` without a broker: percentiles, pacing, result lines and one-line errors."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rafka.cli.bench_support import (
    MB,
    BenchError,
    BenchResult,
    Throttle,
    parse_props,
    percentiles,
    random_payload,
)
from rafka.cli.main import app

runner = CliRunner()


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1000, 0, -1)]  # unsorted on purpose
    p = percentiles(values)
    assert (p["min"], p["p50"], p["p99"], p["p99.9"], p["max"]) == (1, 500, 990, 999, 1000)
    assert p["mean"] == pytest.approx(500.5)


def test_percentiles_of_few_values_are_the_largest_for_high_ranks() -> None:
    p = percentiles([3.0, 1.0, 2.0])
    assert (p["p50"], p["p99"], p["p99.9"]) == (2.0, 3.0, 3.0)
    assert percentiles([]) == {}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_throttle_sleeps_off_its_lead() -> None:
    clock = FakeClock()
    throttle = Throttle(1000, clock=clock, sleep=clock.sleep)
    throttle.wait(10)  # 10 operations done at t=0: the 11th is due at 10 ms
    assert clock.slept == [pytest.approx(0.010)]
    clock.now = 0.5  # behind schedule: no sleep
    throttle.wait(20)
    assert len(clock.slept) == 1


def test_throttle_checks_in_steps_at_high_rates() -> None:
    clock = FakeClock()
    throttle = Throttle(1_000_000, clock=clock, sleep=clock.sleep)
    throttle.wait(999)  # between checks (every 1000 operations)
    assert clock.slept == []
    throttle.wait(1000)
    assert clock.slept == [pytest.approx(0.001)]


def test_unlimited_throttle_never_sleeps() -> None:
    clock = FakeClock()
    throttle = Throttle(-1, clock=clock, sleep=clock.sleep)
    for done in range(1, 5000):
        throttle.wait(done)
    assert clock.slept == []


def test_parse_props() -> None:
    assert parse_props(["linger.ms=5", " batch.size = 1000 "]) == {
        "linger.ms": "5",
        "batch.size": "1000",
    }
    with pytest.raises(BenchError):
        parse_props(["linger.ms"])


def test_random_payload_is_letters_of_the_asked_size() -> None:
    payload = random_payload(1000)
    assert len(payload) == 1000 and payload.isalpha() and payload.isupper()
    assert len(set(payload)) > 20  # not one repeated byte: compression has work to do


def test_result_line_and_figures() -> None:
    result = BenchResult("produce", records=1000, bytes=1000 * MB // 100, elapsed_s=2.0,
                         client_cpu_s=1.5)
    assert result.records_per_sec == 500.0
    assert result.mb_per_sec == pytest.approx(5.0)
    assert result.result_line() == (
        "1000 records sent, 500.0 records/sec (5.00 MB/sec), client CPU 75% of one core."
    )
    latency = BenchResult("e2e", 10, 1000, 1.0, 0.1,
                          latency_ms={"p50": 1.0, "p99": 2.0, "p99.9": 3.0, "max": 4.0})
    assert "latency ms p50 1.00, p99 2.00, p99.9 3.00, max 4.00" in latency.result_line()
    assert latency.to_json()["records_per_sec"] == 10.0


def test_bench_is_a_rafka_command() -> None:
    result = runner.invoke(app, ["bench", "--help"])
    assert result.exit_code == 0
    for command in ("produce", "consume", "e2e"):
        assert command in result.stdout


def test_missing_confluent_kafka_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # makes the import fail
    result = runner.invoke(
        app, ["bench", "produce", "--topic", "t", "--num-records", "1", "--no-progress"]
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "rafka: error: rafka bench needs the confluent-kafka package (librdkafka): "
        "pip install confluent-kafka"
    ]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--acks", "2"], "--acks must be 0, 1 or all"),
        (["--compression", "brotli"], "--compression must be one of"),
        (["--acks", "1", "--idempotence"], "--idempotence needs --acks all"),
    ],
)
def test_bad_producer_flags_fail_before_connecting(flags: list[str], message: str) -> None:
    result = runner.invoke(
        app,
        ["bench", "produce", "--topic", "t", "--num-records", "1", "--bootstrap-server",
         "127.0.0.1:1", *flags],
    )
    assert result.exit_code == 1
    assert message in result.stderr


# -- the peer benchmark's report (compat-tests/bench/report.py) -----------------------------------


def _load_bench_report():
    path = Path(__file__).resolve().parents[2] / "compat-tests" / "bench" / "report.py"
    if str(path.parent) not in sys.path:  # report imports its sibling modules, as run does
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("bench_report", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _run(mb_per_sec: float, latency: dict[str, float] | None = None) -> dict[str, Any]:
    return {
        "ok": True,
        "broker_cpu_pct": 50.0,
        "result": {
            "mb_per_sec": mb_per_sec, "records_per_sec": mb_per_sec * 1000,
            "client_cpu_pct": 95.0, "latency_ms": latency,
            "extra": {"time_to_first_record_ms": 100.0},
        },
    }


def _results() -> dict[str, Any]:
    keys = [
        "produce-100b-acks1", "produce-100b-acksall", "produce-1k-acks1", "produce-1k-acksall",
        "produce-1k-idempotent", "consume-1k", "group-consume-1k", "e2e-1000",
    ]
    latency = {"p50": 1.0, "p99": 2.0, "p99.9": 4.0, "max": 5.0}

    def broker(key: str, name: str, mb: float, lat: float) -> dict[str, Any]:
        runs = {k: _run(mb) for k in keys[:-1]}
        runs["e2e-1000"] = _run(0.1, {p: v * lat for p, v in latency.items()})
        return {"key": key, "name": name, "status": "ran", "storage": "disk", "runtime": "x",
                "command": "cmd", "startup_ms": 100.0, "idle_rss_mb": 40.0,
                "peak_rss_mb": 80.0, "workloads": runs}

    rafka = broker("rafka", "rafka", 400.0, 1.0)
    rafka["workloads"]["group-consume-1k"] = {"ok": False, "error": "only 0 of 10 records"}
    return {
        "mode": "quick", "command": "compat-tests/bench/run --quick", "started": "now",
        "duration_s": 60.0, "settings": {"broker_core": 0, "client_core": 1, "partitions": 4},
        "machine": {"cpu": "test"}, "client": {"librdkafka": "2", "confluent-kafka": "2"},
        "limits": {"loopback_mb_per_sec": 2000.0, "fsync_1mib_mb_per_sec": 500.0,
                   "fsync_4kib_per_sec": 5000.0, "fsync_4kib_ms": 0.2},
        "workloads": [{"key": k, "label": k, "command": f"rafka bench {k}"} for k in keys],
        "brokers": [
            rafka,
            {"key": "kafka", "name": "Kafka", "status": "unavailable", "reason": "no mvn"},
            broker("tansu", "Tansu", 200.0, 100.0),
        ],
    }


def test_report_gives_ratios_failures_and_unavailable_peers() -> None:
    text = _load_bench_report().render(_results(), "benchmarks.png", None)
    results_section = text.split("## Brokers")[0]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in results_section.splitlines()
            if line.startswith("| ")}
    # figure | better | rafka | Kafka | Tansu | rafka ÷ Tansu (no ratio to a peer that did not run)
    assert rows["produce-1k-acks1"].endswith("| 2.00× |")
    assert "| — |" in rows["produce-1k-acks1"]  # Kafka's column
    assert rows["e2e latency p99 at 1,000 msg/s"].endswith("| 1/100 |")
    assert "failed [1]" in rows["group-consume-1k"]
    assert "1. rafka, group-consume-1k: only 0 of 10 records" in text
    assert "not installed: no mvn" in text
    assert "This page is from a `--quick` run" in text
    assert "![" in text and "benchmarks.png" in text


def test_report_puts_the_image_beside_apache_kafkas_published_figures() -> None:
    report = _load_bench_report()
    results = _results()
    assert "Not measured: not measured by this run." in report.render(results, None, "x")
    results["container"] = {
        "status": "ran", "image": "rafka:latest", "size_mb": 160.0, "start_ms": 500.0,
        "idle_rss_mb": 48.0,
    }  # fmt: skip
    section = report.render(results, None, "x").split("## Container image")[1]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines()
            if line.startswith("| ")}  # fmt: skip
    assert rows["image size (uncompressed)"].endswith("| 160 MB | 458 MB | 0.35× |")
    assert rows["idle RSS"].endswith("| 382.4 MB | 0.13× |")
