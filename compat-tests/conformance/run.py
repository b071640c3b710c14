#!/usr/bin/env python3
"""Run every scenario against Apache Kafka and against rafka, and compare what they answered.

Exit status 1 if any observation differs (the diff is printed), 2 if a broker could not run.
Observations and broker logs: compat-tests/target/conformance/.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from brokers import ROOT, Broker, Kafka, Rafka, peers  # noqa: E402 - needs the path above
from context import Context  # noqa: E402
from observe import Recorder, diff  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402

OUT = ROOT / "compat-tests" / "target" / "conformance"
SUITE_LIMIT_S = 360  # both brokers, all scenarios; about 2 minutes normally
TIMESTAMP_LEAD_MS = 600_000  # records are 10 minutes old: inside retention and the future limit


def log(message: str) -> None:
    print(message, flush=True)


def observe(broker: Broker, names: list[str], base_ts: int) -> Recorder:
    recorder = Recorder(base_ts)
    started = time.monotonic()
    broker.start()
    log(f"[{broker.name}] ready on {broker.bootstrap} after {time.monotonic() - started:.1f} s")
    try:
        for name in names:
            began = time.monotonic()
            ctx = Context(broker.bootstrap, broker.restart, base_ts, recorder)
            with recorder.scenario(name):
                SCENARIOS[name](ctx)
            steps = recorder.scenarios[name]
            last = steps[-1] if steps else None
            aborted = f", aborted: {last.value}" if last and last.name == "aborted" else ""
            log(f"[{broker.name}] {name}: {len(steps)} steps in "
                f"{time.monotonic() - began:.1f} s{aborted}")
    finally:
        broker.stop()
    return recorder


def save(recorder: Recorder, broker: Broker, key: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / f"{key}.jsonl").open("w") as out:
        for scenario, steps in recorder.scenarios.items():
            for step in steps:
                out.write(json.dumps({"scenario": scenario, "step": step.name,
                                      "value": step.value}, sort_keys=True) + "\n")
    (OUT / f"{key}-broker.log").write_text(broker.log_tail(100_000) + "\n")


class SuiteTimeout(BaseException):
    """Not an Exception: a scenario's own error handling must not swallow it."""


BROKER_FAILURES = (RuntimeError, TimeoutError, OSError, peers.PeerUnavailable)


def on_alarm(signum: int, frame: object) -> None:
    raise SuiteTimeout(f"the conformance suite exceeded {SUITE_LIMIT_S} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from: {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="rafka-conformance-") as tmp:
        kafka = Kafka(Path(tmp) / "kafka")
        rafka = Rafka(Path(tmp) / "rafka")
        try:
            kafka.install()  # not under the alarm: a cold Maven cache downloads for minutes
        except peers.PeerUnavailable as exc:
            log(f"Apache Kafka is unavailable: {exc}")
            return 2
        base_ts = int(time.time() * 1000) - TIMESTAMP_LEAD_MS
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(SUITE_LIMIT_S)
        results: list[Recorder] = []
        for key, broker in (("kafka", kafka), ("rafka", rafka)):
            try:
                results.append(observe(broker, names, base_ts))
            except (*BROKER_FAILURES, SuiteTimeout) as exc:
                log(f"[{broker.name}] could not run: {exc}\n{broker.log_tail(20)}")
                return 2
            save(results[-1], broker, key)
        signal.alarm(0)
    lines = diff(results[0], results[1], kafka.name, "rafka")
    total = sum(len(steps) for steps in results[0].scenarios.values())
    differing = [line for line in lines if line.startswith("=== ")]
    if not lines:
        print(f"conformance: rafka and {kafka.name} agree on all {total} observations "
              f"of {len(names)} scenarios")
        return 0
    print("\n".join(lines))
    print(f"conformance: {len(differing)} of {len(names)} scenarios differ from {kafka.name} "
          f"(observations in {OUT.relative_to(ROOT)}/)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
