"""The benchmark's native load generator (compat-tests/bench/native/generator.c) against a real
rafka broker: it is built as the benchmark builds it, takes the workloads' `rafka bench` flags
through native.command, and answers with `rafka bench --json`'s object, whose figures the
benchmark's runner reads (records, bytes, the group's join)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from broker_process import BrokerProcess
from confluent_kafka.admin import AdminClient, NewTopic

BENCH = Path(__file__).resolve().parents[2] / "compat-tests" / "bench"
sys.path.insert(0, str(BENCH))
import native  # noqa: E402  (the benchmark's own module, from its directory)

pytestmark = pytest.mark.timeout(120)
RECORDS = 5000


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return native.build(tmp_path_factory.mktemp("native"))
    except native.NativeUnavailable as exc:
        pytest.skip(f"native load generator cannot be built here: {exc}")


def run(command: list[str]) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def create(broker: BrokerProcess, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def produce_args(topic: str, *flags: str) -> tuple[str, ...]:
    return ("produce", "--topic", topic, "--num-records", str(RECORDS), "--record-size", "100",
            "--partitions", "3", *flags)


def test_produce_then_consume_by_assignment_and_as_a_group(
    broker: BrokerProcess, generator: Path
) -> None:
    create(broker, "native", 3)
    produced = run(native.command(generator, produce_args("native", "--acks", "all"),
                                  broker.bootstrap))
    assert (produced["workload"], produced["records"], produced["bytes"]) == (
        "produce", RECORDS, RECORDS * 100)
    assert produced["errors"] == 0 and produced["settings"]["generator"] == "native"
    assert produced["mb_per_sec"] > 0 and produced["started_at"] > 0

    consume = ("consume", "--topic", "native", "--num-records", str(RECORDS), "--timeout", "30",
               "--consumer-props", "fetch.queue.backoff.ms=10")
    assigned = run(native.command(generator, consume, broker.bootstrap))
    assert (assigned["workload"], assigned["records"], assigned["bytes"]) == (
        "consume", RECORDS, RECORDS * 100)
    assert "join_ms" not in assigned["extra"]

    grouped = run(native.command(generator, (*consume, "--group", "native-group"),
                                 broker.bootstrap))
    assert (grouped["workload"], grouped["records"]) == ("group-consume", RECORDS)
    assert 0 < grouped["extra"]["join_ms"] <= grouped["extra"]["time_to_first_record_ms"]


def test_idempotent_produce_and_a_consumer_that_waits_in_vain(
    broker: BrokerProcess, generator: Path
) -> None:
    create(broker, "native-idem", 3)
    command = native.command(
        generator, produce_args("native-idem", "--acks", "all", "--idempotence"),
        broker.bootstrap)
    assert command[-2:] == ["enable.idempotence", "true"]
    assert run(command)["records"] == RECORDS

    # More records than the topic holds: the generator gives up after its timeout, saying so.
    done = subprocess.run(
        [str(generator), "consume", broker.bootstrap, "native-idem", str(RECORDS + 1), "2", "-"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"only {RECORDS} of {RECORDS + 1} records arrived" in done.stderr


def test_e2e_has_no_native_command() -> None:
    assert native.command(Path("g"), ("e2e", "--topic", "t"), "h:1") is None
    assert native.shown(("e2e", "--topic", "t"), Path("g")) == "rafka bench e2e --topic t"
