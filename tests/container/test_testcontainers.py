"""testcontainers-java's KafkaContainer with rafka's image as a compatible substitute for
apache/kafka: the container starts through testcontainers' own starter script, its wait for
Kafka's "Transitioning from RECOVERY to RUNNING" line ends, and a Java client produces and
consumes (compat-tests/testcontainers-java). Ryuk, testcontainers' reaper, is disabled: it is
an image from a registry, and the check closes its container itself."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from container_support import IMAGE, ROOT

PROJECT = ROOT / "compat-tests" / "testcontainers-java"
MAIN_CLASS = "dev.rafka.tc.KafkaContainerCheck"


def test_kafka_container_with_the_rafka_image(engine) -> None:
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"testcontainers-java check skipped: {', '.join(missing)} not installed")
    build = subprocess.run(
        ["mvn", "-B", "-q", "-Dstyle.color=never", "clean", "process-classes"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    # Inside a container (CI runs in one) testcontainers finds the Docker host's address by
    # starting an alpine container, an image from a registry; the published ports are on
    # this host's loopback anyway.
    env = {
        **os.environ,
        "TESTCONTAINERS_RYUK_DISABLED": "true",
        "TESTCONTAINERS_HOST_OVERRIDE": "localhost",
    }
    try:
        result = subprocess.run(
            ["java", "-cp", "target/classes:target/lib/*", MAIN_CLASS, IMAGE],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:  # a check killed by the timeout leaves its container behind
        for container in engine.containers.list(
            all=True, filters={"label": "org.testcontainers", "ancestor": IMAGE}
        ):
            container.remove(force=True, v=True)
    lines = [line for line in result.stdout.splitlines() if not line.startswith("[")]
    print("\n".join(lines))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert any(line.startswith("container started in ") for line in lines)
    assert lines[-1].startswith("OK: produced and consumed 100 records")
