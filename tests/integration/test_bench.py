"""`rafka bench` against a real rafka broker process, with small numbers of records."""

from __future__ import annotations

import json
import re

import pytest
from broker_process import BrokerProcess
from typer.testing import CliRunner

from rafka.cli.main import app

pytestmark = pytest.mark.timeout(90)

runner = CliRunner()


def bench(broker: BrokerProcess, *args: str) -> str:
    result = runner.invoke(
        app, ["bench", *args, "--bootstrap-server", broker.bootstrap, "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_produce_prints_the_result_line_then_consume_reads_every_record(
    broker: BrokerProcess,
) -> None:
    out = bench(broker, "produce", "--topic", "bench", "--num-records", "2000",
                "--record-size", "100", "--acks", "1", "--partitions", "2")
    line = out.splitlines()[0]
    assert re.fullmatch(
        r"2000 records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), "
        r"client CPU \d+% of one core\.",
        line,
    ), line
    assert re.search(r"^\s+errors\s+0$", out, re.MULTILINE)

    consumed = json.loads(
        bench(broker, "consume", "--topic", "bench", "--num-records", "2000", "--json")
    )
    assert consumed["records"] == 2000
    assert consumed["bytes"] == 2000 * 100
    assert consumed["records_per_sec"] > 0


def test_idempotent_produce_with_compression(broker: BrokerProcess) -> None:
    result = json.loads(
        bench(broker, "produce", "--topic", "idem", "--num-records", "1000", "--record-size",
              "512", "--acks", "all", "--idempotence", "--compression", "lz4", "--json")
    )
    assert (result["records"], result["errors"]) == (1000, 0)
    assert result["settings"]["idempotence"] is True


def test_e2e_latency_percentiles(broker: BrokerProcess) -> None:
    result = json.loads(
        bench(broker, "e2e", "--topic", "latency", "--num-records", "200", "--throughput",
              "2000", "--json")
    )
    assert result["records"] == 200
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["p99.9"] <= latency["max"]
