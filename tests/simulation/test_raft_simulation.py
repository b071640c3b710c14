"""The deterministic Raft simulator as tests (see raft_sim.py).

Many seeds must hold every invariant, with a static voter set and with leaders adding and
removing voters under faults (reassignment's steps); deliberately broken replicas must be caught
within a bounded number of seeds; a seed must replay exactly. RAFKA_SIM_SEEDS overrides the seed
count.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sim_bugs  # noqa: E402
from raft_sim import failures_in, replay_command, run_seed  # noqa: E402
from sim_cluster import Simulation  # noqa: E402

SEEDS = int(os.environ.get("RAFKA_SIM_SEEDS", "10000"))
CHUNK = 250
BUDGET_S = 300


@pytest.mark.parametrize(
    ("seeds", "options"),
    [(SEEDS, {}), (max(SEEDS // 5, 1), {"voter_changes": True})],
    ids=["static-voters", "voter-changes"],
)
def test_every_seed_holds_every_invariant(seeds: int, options: dict[str, Any]) -> None:
    chunks = [range(start, min(start + CHUNK, seeds)) for start in range(0, seeds, CHUNK)]
    workers = max(1, min(os.cpu_count() or 1, len(chunks)))
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        outcomes = list(pool.map(partial(failures_in, **options), chunks))
    elapsed = time.perf_counter() - started
    failures = [failure for failed, _ in outcomes for failure in failed]
    events = sum(count for _, count in outcomes)
    print(
        f"\n{seeds} seeds on {workers} processes in {elapsed:.1f} s "
        f"({seeds / elapsed:.0f} seeds/s, {events / elapsed:.0f} events/s)"
    )
    changes = bool(options.get("voter_changes"))
    assert not failures, "\n".join(
        f"seed {seed}: {error}\n  replay: {replay_command(seed, changes)}"
        for seed, error in failures[:10]
    )
    assert elapsed < BUDGET_S


def first_failure(limit: int, **options: Any) -> tuple[int, str] | None:
    for seed in range(limit):
        result = run_seed(seed, **options)
        if not result.ok:
            return seed, result.error
    return None


@pytest.mark.parametrize(
    ("options", "limit", "symptom"),
    [
        ({"raft_class": sim_bugs.LeaderCountsUnsyncedOffsets}, 20, "fsynced"),
        ({"raft_class": sim_bugs.FollowerFetchesBeforeFsync}, 20, "fsynced"),
        ({"raft_class": sim_bugs.VotesWithoutLogCheck}, 100, ""),
        ({"raft_class": sim_bugs.AnswersVoteBeforePersisting}, 5, "before persisting"),
        # Issue 13's lost writes: a voter whose disk lost an fsynced tail helps elect a leader
        # that lacks committed records (the good follower is then asked to truncate them).
        (
            {"raft_class": sim_bugs.VotesAfterLosingFsyncedRecords, "lossy_storage": True},
            300,
            "below the high water",
        ),
        # A wiped voter that rejoins under its old identity forgets its vote and its records.
        ({"directory_ids": False}, 600, ""),
        # Issue 13's duplicate producer ids: a new controller reserves from a lagging image.
        ({"producer_ids": sim_bugs.ReservesFromALaggingImage}, 100, "handed out twice"),
        # Issue 13's stale committed offsets: reads confirmed by a time lease, not ReadIndex.
        ({"raft_class": sim_bugs.ConfirmsReadsByLease}, 200, "stale read"),
    ],
    ids=[
        "leader-unsynced-hw",
        "follower-unsynced-fetch",
        "vote-without-log-check",
        "vote-before-persist",
        "vote-after-losing-fsynced-records",
        "wiped-voter-without-directory-id",
        "producer-ids-from-lagging-image",
        "reads-confirmed-by-lease",
    ],
)
def test_injected_bug_is_caught(options: dict[str, Any], limit: int, symptom: str) -> None:
    found = first_failure(limit, **options)
    assert found is not None, f"bug not caught within {limit} seeds"
    seed, error = found
    assert symptom in error
    # The failure replays exactly from its seed.
    again = run_seed(seed, **options)
    assert (again.ok, again.error) == (False, error)


def test_a_seed_replays_exactly() -> None:
    first = Simulation(7).run()
    second = Simulation(7).run()
    assert first.ok
    assert first == second and first.stats == second.stats
    assert first.acked > 0 and first.leaders > 0


def test_trace_prints_the_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert Simulation(3, trace=True).run().ok
    out = capsys.readouterr().out
    assert "becomes leader" in out and "faults stop" in out
