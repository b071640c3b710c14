"""The fault suite imports the cluster harness (tests/) and its client helpers
(tests/integration/)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for directory in (TESTS, TESTS / "integration"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report = sys.modules.get("report")
    lines = report.lines() if report is not None and hasattr(report, "lines") else []
    if lines:
        terminalreporter.section("fault suite")
        for line in lines:
            terminalreporter.write_line(line)
