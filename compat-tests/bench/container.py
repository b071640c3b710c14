"""The container image's figures: its size, `docker run` to the first Metadata answer on the
host, and the container's idle RSS, beside apache/kafka's published figures (KIP-975), since
that image cannot be pulled where there is no registry. Measured with the docker CLI when an
engine answers and the image exists (scripts/image.sh builds it); skipped otherwise."""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import probes

IDLE_SETTLE_S = 2.0
START_LIMIT_S = 60.0

# KIP-975's table (apache/kafka 3.6.0 on Java 21, the image's proof of concept): uncompressed
# image size, container start to a serving broker, memory used.
APACHE_KAFKA_PUBLISHED = {
    "image": "apache/kafka (KIP-975, Java 21)",
    "size_mb": 457.86,
    "start_ms": 3885.0,
    "idle_rss_mb": 382.4,
}


def _docker(*args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return result.stdout.strip()


def measure_image(image: str) -> dict[str, Any]:
    """Size, start and idle RSS of `image`, or a status and the reason it was not measured."""
    if shutil.which("docker") is None:
        return {"status": "skipped", "reason": "no docker command"}
    try:
        _docker("info", "--format", "{{.ServerVersion}}", timeout=15)
        size = int(_docker("image", "inspect", image, "--format", "{{.Size}}"))
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return {"status": "skipped", "reason": f"no Docker engine or no {image} image ({exc})"}
    port = probes.free_port()
    started = time.perf_counter()
    container = _docker("run", "-d", "--rm", "-p", f"127.0.0.1:{port}:9092", image)
    try:
        while not probes.metadata_answered(port):
            if time.perf_counter() - started > START_LIMIT_S:
                return {"status": "failed", "reason": f"no Metadata answer in {START_LIMIT_S} s"}
            time.sleep(0.01)
        start_ms = (time.perf_counter() - started) * 1000.0
        time.sleep(IDLE_SETTLE_S)
        pid = int(_docker("inspect", container, "--format", "{{.State.Pid}}"))
        rss = probes.rss_mb(pid)
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)
    return {
        "status": "ran",
        "image": image,
        "size_mb": size / 1e6,
        "start_ms": start_ms,
        "idle_rss_mb": rss,
    }


def table(entry: dict[str, Any] | None) -> list[str]:
    """The report's section (Markdown lines)."""
    out = ["## Container image", ""]
    if not entry or entry.get("status") != "ran":
        reason = (entry or {}).get("reason", "not measured by this run")
        return [*out, f"Not measured: {reason}.", ""]
    kafka = APACHE_KAFKA_PUBLISHED
    rows = [
        ("image size (uncompressed)", "size_mb", "MB", 0),
        ("`docker run` to first Metadata answer", "start_ms", "ms", 0),
        ("idle RSS", "idle_rss_mb", "MB", 1),
    ]
    out += [
        f"| | {entry['image']} | {kafka['image']} | ratio |",
        "|---|---|---|---|",
    ]
    for label, key, unit, digits in rows:
        ours, theirs = entry[key], kafka[key]
        out.append(
            f"| {label} | {ours:,.{digits}f} {unit} | {theirs:,.{digits}f} {unit} | "
            f"{ours / theirs:.2f}× |"
        )
    out += [
        "",
        "rafka's figures are measured by this run (scripts/image.sh's image, its broker's "
        "first Metadata answer through the published port, the broker process's RSS 2 s "
        "later). apache/kafka's are the figures published in KIP-975 (its image cannot be "
        "pulled here); the Kafka row of the results above is the same JVM broker, measured "
        "here.",
        "",
    ]
    return out
