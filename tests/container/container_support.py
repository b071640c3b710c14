"""What the container tests share: the image, the label of what they create, and waits."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("RAFKA_IMAGE", "rafka:latest")
LABEL = {"rafka-test": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(container, timeout: float = 60.0) -> float:
    """Seconds until Docker reports the HEALTHCHECK healthy (polled: the engine has no wait for
    health events in this SDK)."""
    start = time.monotonic()
    while True:
        container.reload()
        state = container.attrs["State"]
        status = state.get("Health", {}).get("Status")
        if status == "healthy":
            return time.monotonic() - start
        assert state["Status"] == "running", container.logs()[-2000:].decode()
        assert time.monotonic() - start < timeout, f"not healthy after {timeout}s: {status}"
        time.sleep(0.2)


COMPOSE = shutil.which("docker-compose") or shutil.which("docker") or "docker"


def compose(project: str, file: Path, *args: str) -> str:
    """docker-compose 1.29 (Debian's) or the compose v2 plugin, whichever is installed."""
    command = [COMPOSE, *(["compose"] if COMPOSE.endswith("docker") else []), "-p", project]
    result = subprocess.run(
        [*command, "-f", str(file), *args],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    return result.stdout


def compose_container_name(project: str, service: str) -> str:
    # docker-compose 1.29 joins with '_', v2 with '-'.
    if COMPOSE.endswith("docker-compose"):
        return f"{project}_{service}_1"
    return f"{project}-{service}-1"


def healthy(container) -> bool:
    container.reload()
    return container.attrs["State"].get("Health", {}).get("Status") == "healthy"
