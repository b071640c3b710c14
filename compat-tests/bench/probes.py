"""Measurements around the brokers: time to the first Metadata answer, memory and CPU from /proc,
the machine's own limits (loopback, fsync'd disk writes) and its description."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

MB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Metadata v4 (not flexible, served by every Kafka 1.0+): all topics, no auto-creation.
_METADATA_V4 = struct.pack(">hhih", 3, 4, 1, 5) + b"probe" + struct.pack(">ib", -1, 0)
METADATA_REQUEST = struct.pack(">i", len(_METADATA_V4)) + _METADATA_V4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metadata_answered(port: int, timeout: float = 1.0) -> bool:
    """One Metadata request; True once the answer lists at least one broker."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(METADATA_REQUEST)
            head = recv_exactly(sock, 16)  # size, correlation id, throttle ms, broker count
    except OSError:
        return False
    if head is None:
        return False
    _size, correlation, _throttle, brokers = struct.unpack(">iiii", head)
    return correlation == 1 and brokers >= 1


def recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    """`n` bytes from `sock`, or None if it closes first."""
    data = bytearray(n)
    view, at = memoryview(data), 0
    while at < n:
        got = sock.recv_into(view[at:])
        if not got:
            return None
        at += got
    return bytes(data)


def wait_for_metadata(port: int, started: float, process: subprocess.Popen, limit: float) -> float:
    """Milliseconds from `started` (perf_counter) to the first Metadata answer."""
    while True:
        if metadata_answered(port):
            return (time.perf_counter() - started) * 1000.0
        if process.poll() is not None:
            raise RuntimeError(f"broker exited with code {process.returncode} before answering")
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"no Metadata answer within {limit:.0f} s")
        time.sleep(0.002)


# -- /proc ---------------------------------------------------------------------------------------


def _status_kb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    raise KeyError(field)


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024.0


def peak_rss_mb(pid: int) -> float:
    """The high-water mark of resident memory since the process started."""
    return _status_kb(pid, "VmHWM") / 1024.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process, all its threads."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


class CpuSampler(threading.Thread):
    """Samples a process's CPU time every `interval` seconds, so the CPU it spent in any wall-clock
    interval can be read afterwards (to match the load generator's measured interval)."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True, name=f"cpu-sampler-{pid}")
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (wall clock, CPU seconds)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.samples.append((time.time(), cpu_seconds(self.pid)))
            except OSError:  # the process is gone
                return
            self.done.wait(self.interval)

    def stop(self) -> None:
        self.done.set()
        self.join()

    def cpu_at(self, wall: float) -> float | None:
        """CPU seconds at `wall`, interpolated between the samples around it."""
        for (t0, c0), (t1, c1) in zip(self.samples, self.samples[1:], strict=False):
            if t0 <= wall <= t1:
                return c0 + (c1 - c0) * (wall - t0) / (t1 - t0) if t1 > t0 else c0
        return None

    def busy_pct(self, start: float, end: float) -> float | None:
        """The process's CPU use from `start` to `end` (wall clock) in % of one core."""
        before, after = self.cpu_at(start), self.cpu_at(end)
        if before is None or after is None or end <= start:
            return None
        return 100.0 * (after - before) / (end - start)


# -- the machine's limits ------------------------------------------------------------------------


def run_bench_client(
    args: tuple[str, ...], bootstrap: str, broker_pids: list[int], client_core: int,
    timeout: float,
) -> dict[str, Any]:
    """Run one `rafka bench` workload pinned to `client_core`; its JSON result, and the CPU the
    broker processes spent over its measured interval (added up: a cluster's nodes)."""
    command = [sys.executable, "-m", "rafka", "bench", *args, "--bootstrap-server", bootstrap,
               "--json", "--no-progress"]
    return run_client(command, broker_pids, client_core, timeout)


def run_client(
    client: list[str], broker_pids: list[int], client_core: int, timeout: float
) -> dict[str, Any]:
    """Run a load generator that prints `rafka bench --json`'s object as its last line, pinned
    to `client_core`: its result, and the brokers' CPU over its measured interval."""
    command = ["taskset", "-c", str(client_core), *client]
    samplers = [CpuSampler(pid) for pid in broker_pids]
    for sampler in samplers:
        sampler.start()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"no result within {timeout:.0f} s"}
    finally:
        time.sleep(0.05)  # one more sample after the measured interval ended
        for sampler in samplers:
            sampler.stop()
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    if done.returncode != 0 or result is None:
        errors = [line for line in done.stderr.strip().splitlines() if line.strip()]
        message = errors[-1] if errors else f"exit code {done.returncode}"
        return {"ok": False, "error": message.removeprefix("rafka: error: "), "result": result}
    entry: dict[str, Any] = {"ok": True, "result": result}
    start, end = result["started_at"], result["started_at"] + result["elapsed_s"]
    busy = [sampler.busy_pct(start, end) for sampler in samplers]
    if busy and all(b is not None for b in busy):
        entry["broker_cpu_pct"] = sum(b for b in busy if b is not None)
    return entry


def _loopback_receiver(port_queue: multiprocessing.Queue, core: int) -> None:
    os.sched_setaffinity(0, {core})
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port_queue.put(server.getsockname()[1])
        conn, _ = server.accept()
        buffer = bytearray(MB)
        with conn:
            while conn.recv_into(buffer):
                pass


def loopback_mb_per_sec(seconds: float, sender_core: int, receiver_core: int) -> float:
    """TCP over 127.0.0.1 between two processes on the two cores, 1 MiB writes."""
    ports: multiprocessing.Queue = multiprocessing.Queue()
    receiver = multiprocessing.Process(target=_loopback_receiver, args=(ports, receiver_core))
    receiver.start()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {sender_core})
    try:
        with socket.create_connection(("127.0.0.1", ports.get(timeout=10))) as sock:
            payload = memoryview(os.urandom(MB))
            sent = 0
            start = time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds:
                sock.sendall(payload)
                sent += MB
    finally:
        os.sched_setaffinity(0, before)
        receiver.join(10)
        if receiver.is_alive():
            receiver.kill()
    return sent / MB / elapsed


def disk_limits(directory: Path, total_mb: int, small_seconds: float) -> dict[str, float]:
    """Sequential 1 MiB writes each followed by fsync, and 4 KiB appends each fsync'd."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "disk-probe"
    block = os.urandom(MB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        start = time.perf_counter()
        for _ in range(total_mb):
            os.write(fd, block)
            os.fsync(fd)
        seq = total_mb / (time.perf_counter() - start)
        small = block[:4096]
        count = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < small_seconds:
            os.write(fd, small)
            os.fsync(fd)
            count += 1
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {
        "fsync_1mib_mb_per_sec": seq,
        "fsync_4kib_per_sec": count / elapsed,
        "fsync_4kib_ms": 1000.0 * elapsed / max(count, 1),
    }


# -- description ---------------------------------------------------------------------------------


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if ":" in line else line[len(prefix):]
    except OSError:
        pass
    return "unknown"


def filesystem_of(path: Path) -> str:
    best, kind, device = "", "unknown", ""
    target = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        dev, mount, fstype = line.split()[:3]
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) > len(
            best
        ):
            best, kind, device = mount, fstype, dev
    return f"{kind} on {device} (mounted at {best})"


def describe_machine(work_dir: Path) -> dict[str, str]:
    mem_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    os_name = _first("/etc/os-release", "PRETTY_NAME=").strip('"')
    load = os.getloadavg()
    return {
        "cpu": _first("/proc/cpuinfo", "model name"),
        "cores": str(os.cpu_count()),
        "memory": f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else "unknown",
        "os": f"{os_name}, Linux {platform.release()}",
        "filesystem": filesystem_of(work_dir),
        "python": platform.python_version(),
        "load average at start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }


def rafka_verdict(rafka: dict[str, Any] | None, what: str, failed: list[str], strict: bool) -> int:
    """The exit code a section's rafka entry calls for: 1 if rafka did not run (or, with
    --strict, if any of its workloads or figures, `failed`, did)."""
    if rafka is None:
        return 0
    if rafka.get("status") != "ran":
        print(f"{what} did not run: {rafka.get('reason')}", flush=True)
        return 1
    if failed:
        print(f"{what}: failed: {', '.join(failed)}", flush=True)
    return 1 if failed and strict else 0
