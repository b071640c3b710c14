"""The fault suite's report: one summary line per run and totals, in a form docs/reliability.md
can quote. Shown at the end of the pytest session, and written to $RAFKA_FAULT_REPORT if set."""

from __future__ import annotations

import os
import shlex
from collections import Counter
from pathlib import Path
from statistics import median

from checker import summarize
from runner import FaultFigures, RunResult

RESULTS: list[RunResult] = []


def record(result: RunResult) -> None:
    RESULTS.append(result)
    path = os.environ.get("RAFKA_FAULT_REPORT")
    if path:
        Path(path).write_text("\n".join(lines()) + "\n")


def reproduce(result: RunResult) -> str:
    config = result.config
    env = {
        "RAFKA_FAULT_SEED": str(config.seed),
        "RAFKA_FAULT_KINDS": ",".join(config.kinds),
        "RAFKA_FAULT_FAULTS": str(config.faults),
    }
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + (
        " .venv/bin/pytest tests/faults/test_faults.py"
    )


def lines() -> list[str]:
    if not RESULTS:
        return []
    found: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for result in RESULTS:
        found.update(summarize(result.anomalies))
        totals.update(result.counts)
    faults = [f for result in RESULTS for f in result.faults]
    recoveries = [f.recovery for f in faults if f.recovery is not None]
    out = [f"run {i}: {r.summary()}" for i, r in enumerate(RESULTS, 1)]
    out.append(
        f"total: {len(RESULTS)} runs, {len(faults)} faults, {totals['acked']} acknowledged queue "
        f"writes, {totals['committed']} committed / {totals['aborted']} aborted transactions, "
        f"{totals['commits']} offset commits, {totals['fetches']} offset fetches, "
        f"{totals['pids']} producer ids; longest ack gap "
        f"{max((f.longest_gap for f in faults), default=0.0):.2f}s, longest recovery "
        f"{max(recoveries, default=0.0):.2f}s, "
        f"{len(faults) - len(recoveries)} faults not recovered within the bound; anomalies: "
        + (", ".join(f"{k} {n}" for k, n in sorted(found.items())) or "none")
    )
    out += per_kind(faults)
    out += [f"reproduce run {i}: {reproduce(r)}" for i, r in enumerate(RESULTS, 1) if r.anomalies]
    return out


def per_kind(faults: list[FaultFigures]) -> list[str]:
    """Per fault kind: how many, and the worst and median ack gap and recovery."""
    out = []
    for kind in sorted({f.kind for f in faults}):
        these = [f for f in faults if f.kind == kind]
        gaps = sorted(f.longest_gap for f in these)
        recoveries = sorted(f.recovery for f in these if f.recovery is not None)
        out.append(
            f"  {kind}: {len(these)} faults, ack gap median {median(gaps):.2f}s max "
            f"{gaps[-1]:.2f}s; recovery after heal median {median(recoveries or [0.0]):.2f}s "
            f"max {max(recoveries, default=0.0):.2f}s"
            + (
                f", {len(these) - len(recoveries)} not recovered"
                if len(recoveries) < len(these)
                else ""
            )
        )
    return out
