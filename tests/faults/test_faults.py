"""Jepsen-style fault runs against a 3-node cluster in network namespaces (issue 13).

By default (and in CI) a bounded set of short runs covering every fault kind, a few minutes in
all. More:

    RAFKA_FAULT_RUNS=50 .venv/bin/pytest tests/faults/test_faults.py     # 50 runs of the mix
    RAFKA_FAULT_SEED=7 RAFKA_FAULT_KINDS=bridge,kill RAFKA_FAULT_FAULTS=4 \\
        .venv/bin/pytest tests/faults/test_faults.py                     # one run, as reported
    RAFKA_FAULT_REPORT=/tmp/faults.md  # also write the summary lines and totals there
    RAFKA_FAULT_KEEP=/some/dir  # where a run with anomalies is copied (default below)

The seed fixes the fault schedule (kinds, durations, which role or node is hit); which node holds
a role when a fault starts, and the timing, still vary between runs.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from nemesis import DISK_KINDS, KINDS, PARTITION_KINDS, PROCESS_KINDS
from netns import unavailable_reason

_reason = unavailable_reason()
if _reason is not None:
    pytest.skip(f"fault suite skipped: {_reason}", allow_module_level=True)

from report import record  # noqa: E402
from runner import RunConfig, run_once  # noqa: E402

MIX_FAULTS = 8
BASE_SEED = 1300
# pytest keeps only its last three temporary roots, and other suites run on this machine too.
KEEP = Path(os.environ.get("RAFKA_FAULT_KEEP", "/tmp/rafka-fault-runs"))


def configs() -> list[RunConfig]:
    if "RAFKA_FAULT_SEED" in os.environ:
        kinds = tuple(os.environ.get("RAFKA_FAULT_KINDS", ",".join(KINDS)).split(","))
        unknown = set(kinds) - set(KINDS)
        assert not unknown, f"unknown fault kinds {sorted(unknown)}; known: {KINDS}"
        faults = int(os.environ.get("RAFKA_FAULT_FAULTS", str(MIX_FAULTS)))
        return [RunConfig(int(os.environ["RAFKA_FAULT_SEED"]), kinds, faults)]
    runs = int(os.environ.get("RAFKA_FAULT_RUNS", "0"))
    if runs:
        return [RunConfig(BASE_SEED + 100 + i, KINDS, MIX_FAULTS) for i in range(runs)]
    # CI: each kind at least twice, about three minutes in all (bound: ten).
    return [
        RunConfig(BASE_SEED + 1, PARTITION_KINDS[:2], 4),
        RunConfig(BASE_SEED + 2, PARTITION_KINDS[2:], 4),
        RunConfig(BASE_SEED + 3, PROCESS_KINDS, 4),
        RunConfig(BASE_SEED + 4, DISK_KINDS, 3),
        RunConfig(BASE_SEED + 5, KINDS, 6),
    ]


def _id(config: RunConfig) -> str:
    return f"seed{config.seed}-{'+'.join(config.kinds) if len(config.kinds) < 7 else 'mix'}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("config", configs(), ids=_id)
def test_fault_run(tmp_path, config: RunConfig) -> None:
    try:
        result = run_once(tmp_path, config)
    except BaseException:
        print(f"run failed; data and node logs kept in {_keep(tmp_path, config)}")
        raise
    print(result.summary())
    print(result.details())
    if result.anomalies:
        kept = _keep(tmp_path, config)
        result.notes.append(f"data, node logs, history and fault timeline kept in {kept}")
    record(result)
    assert not result.anomalies, f"{result.summary()}\n{result.details()}"


def _keep(tmp_path: Path, config: RunConfig) -> Path:
    """A copy outside pytest's temporary directories, which keep only the last few sessions."""
    kept = KEEP / f"seed{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    shutil.copytree(tmp_path, kept)
    return kept
