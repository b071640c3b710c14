"""The client compatibility matrix behind compat-tests/run.py: scenarios (what each asserts and
which broker APIs it needs), clients (how each suite is built and run), broker (the rafka broker
run.py starts, its ApiVersions and the batches it stored), suites (building and running a suite
as bounded processes) and report (the table and docs/compatibility.md)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # compat-tests/
ROOT = HERE.parent
LOGS = HERE / "target" / "logs"
DOC = ROOT / "docs" / "compatibility.md"
