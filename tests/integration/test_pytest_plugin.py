"""rafka's pytest plugin, as another project uses it: the sample project's own suite runs against
real brokers started by the plugin's fixtures (found through the `pytest11` entry point)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "compat-tests" / "pytest-plugin-sample"


def test_sample_project_suite_passes_on_plugin_brokers(tmp_path: Path) -> None:
    from importlib.metadata import entry_points

    if not any(e.name == "rafka" for e in entry_points(group="pytest11")):
        pytest.skip("rafka is not installed with its entry points (pip install -e .)")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", f"--basetemp={tmp_path}"],
        cwd=SAMPLE,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert re.search(r"\b7 passed\b", output), output[-2000:]
    # Each per-test broker's start is printed; the plugin's promise is well under a second.
    starts = [float(ms) for ms in re.findall(r"per-test broker started in (\d+) ms", output)]
    assert len(starts) == 5, output[-2000:]
    print(f"per-test broker starts (ms): {starts}")
    assert sorted(starts)[len(starts) // 2] < 1000, starts
