"""Fixtures that start real rafka broker processes on 127.0.0.1 (killed by PID afterwards)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker_process import BrokerProcess  # noqa: E402


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator:
    """Make brokers with overrides; every one started is killed at teardown."""
    started: list[BrokerProcess] = []

    def make(data_dir: Path | None = None, **overrides: str) -> BrokerProcess:
        process = BrokerProcess(data_dir or tmp_path / f"data{len(started)}", **overrides)
        started.append(process)
        return process

    yield make
    for process in started:
        process.kill()


@pytest.fixture
def broker(broker_factory) -> BrokerProcess:
    """A fresh single-node broker with default settings."""
    return broker_factory().start()
