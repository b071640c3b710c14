"""Start-up figures of `python -m rafka broker`, measured as compat-tests/bench measures them.

Each run spawns a broker pinned to one core on a fresh log dir, times spawn to the first Metadata
v4 answer that lists a broker, reads its RSS 2 s later, and kills it. Prints the median of the
runs: `.venv/bin/python scripts/start_probe.py [--runs 5] [--core 0]`. Also the CPU time the
broker had used by its first answer, which other work on the core does not inflate.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "compat-tests" / "bench"))

import probes  # noqa: E402  (the benchmark's own measurements: the same request, the same /proc)

IDLE_SETTLE_S = 2.0
START_LIMIT_S = 30.0


def one_run(core: int) -> tuple[float, float, float]:
    """(ms from spawn to the first Metadata answer, CPU ms by then, RSS in MB 2 s after it)."""
    data_dir = Path(tempfile.mkdtemp(prefix="rafka-start-probe-"))
    port = probes.free_port()
    command = [
        "taskset", "-c", str(core), sys.executable, "-m", "rafka", "broker",
        "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
        "--override", f"log.dirs={data_dir}",
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RAFKA_LOG_FORMAT": "json"},
        start_new_session=True,
    )
    try:
        start_ms = probes.wait_for_metadata(port, started, process, START_LIMIT_S)
        cpu_ms = probes.cpu_seconds(process.pid) * 1000.0
        time.sleep(IDLE_SETTLE_S)
        return start_ms, cpu_ms, probes.rss_mb(process.pid)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def bytecode_note() -> str:
    """Whether the broker's sources start from cached bytecode: compiling them all costs ~100 ms
    of CPU, what a start pays where PYTHONDONTWRITEBYTECODE is set and nothing compiled them."""
    source = ROOT / "rafka" / "broker" / "broker.py"
    cached = Path(importlib.util.cache_from_source(str(source)))
    if cached.exists() and cached.stat().st_mtime >= source.stat().st_mtime:
        return f"bytecode: cached ({cached.parent})"
    return "bytecode: none cached, each start compiles rafka's sources"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--core", type=int, default=0, help="the core the broker is pinned to")
    args = parser.parse_args()
    print(bytecode_note())
    runs = [one_run(args.core) for _ in range(args.runs)]
    starts, cpus, rss = zip(*runs, strict=True)
    print("start ms:", " ".join(f"{ms:.0f}" for ms in starts))
    print("CPU ms by then:", " ".join(f"{ms:.0f}" for ms in cpus))
    print("idle RSS MB:", " ".join(f"{mb:.1f}" for mb in rss))
    print(
        f"median of {args.runs}: start {statistics.median(starts):.0f} ms "
        f"(CPU {statistics.median(cpus):.0f} ms), idle RSS {statistics.median(rss):.1f} MB"
    )


if __name__ == "__main__":
    main()
