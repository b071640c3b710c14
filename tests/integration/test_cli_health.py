"""`rafka health` and the image's HEALTHCHECK (`python -m rafka.cli.probe`, the same probe without
the CLI framework), against a real broker and a closed port."""

from __future__ import annotations

import subprocess
import sys

import pytest
from broker_process import BrokerProcess, free_port

COMMANDS = {"rafka health": ["-m", "rafka", "health"], "probe": ["-m", "rafka.cli.probe"]}


@pytest.fixture(params=sorted(COMMANDS))
def health(request):
    def run(bootstrap: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *COMMANDS[request.param], "-b", bootstrap, "--timeout", "2"],
            capture_output=True,
            text=True,
            timeout=30,
        )

    return run


def test_a_serving_broker_is_healthy(broker: BrokerProcess, health) -> None:
    result = health(broker.bootstrap)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "healthy: 1 broker(s), controller 1"


def test_nothing_listening_is_unhealthy_in_one_line(health) -> None:
    result = health(f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rafka: error: unhealthy: cannot connect")
