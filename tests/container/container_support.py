"""What the container tests share: the image, the label of what they create, and waits."""

from __future__ import annotations

import os
import socket
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
