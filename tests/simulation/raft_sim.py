"""A deterministic simulator for rafka's Raft core: one seed, one reproducible history.

N replicas of one Raft group (RaftReplica over a MemoryLog) run in one process on virtual time.
Everything random — message delays, drops, duplicates, reordering, partitions, disk latency,
crashes (with the page cache lost and the last write maybe torn), crashes in the middle of an
action list, graceful resignations, wiped disks, client writes — is drawn from one
`random.Random(seed)`, and events at the same virtual time run in the order they were scheduled,
so a seed replays exactly:

    .venv/bin/python tests/simulation/raft_sim.py --seed 1234 --trace

A run has a fault phase (clients write, faults happen), then a heal: every node is restarted, the
network becomes reliable and the run goes on until the replicas converge (one leader, every log
equal, the high watermark at the log end). Invariants (sim_invariants.py) are checked after
every step; a broken one raises SafetyViolation naming the seed.

Wiped disks: a wiped node comes back with a new directory id. Voters are configured with their
directory ids (KIP-853 voter keys), so the wiped node is an observer from then on: it replicates
but neither votes nor counts toward the high watermark, and cannot make the group forget a vote or
a committed record. At most a minority is ever wiped, so the group stays live.

Lying disks: a crashed node may also come back with fsynced entries missing from its tail (the
disk lied, or recovery cut a corrupt tail). Its durable-end marker says how far it had fsynced,
so it restarts impaired (no votes, no campaign) until it has fetched that range back. Wiped and
lying disks share the minority budget.

Producer-id blocks: some client writes are the controller's block reservations, modelled in
sim_producer_ids.py; no block may be handed out twice (`--pid-bug ReservesFromALaggingImage`
shows the broken controller of issue 13 caught).

The modules: this one runs seeds (and is the command line); sim_cluster.py is the run itself
(Simulation: the event loop, network, disk flushes, clients and faults), sim_model.py its
scenario, nodes and result, sim_disk.py what survives a crash, sim_invariants.py the safety
checks, sim_producer_ids.py the controller's block reservations, sim_bugs.py broken replicas.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_cluster import Simulation
from sim_model import Result, Scenario


def run_seed(seed: int, **options: Any) -> Result:
    return Simulation(seed, **options).run()


def run_seeds(seeds: range | list[int], **options: Any) -> list[Result]:
    return [run_seed(seed, **options) for seed in seeds]


def failures_in(seeds: range, **options: Any) -> tuple[list[tuple[int, str]], int]:
    """(failed seeds with their errors, events run) over `seeds` (a worker's share)."""
    results = run_seeds(seeds, **options)
    return [(r.seed, r.error) for r in results if not r.ok], sum(r.events for r in results)


def replay_command(seed: int, voter_changes: bool = False) -> str:
    flag = " --voter-changes" if voter_changes else ""
    return f".venv/bin/python tests/simulation/raft_sim.py --seed {seed}{flag} --trace"


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the Raft simulator for some seeds.")
    parser.add_argument("--seed", type=int, help="replay one seed")
    parser.add_argument("--seeds", type=int, default=1000, help="run seeds 0..N-1")
    parser.add_argument("--trace", action="store_true", help="print every event (with --seed)")
    parser.add_argument("--bug", help="inject a bug: a class name from sim_bugs.py")
    parser.add_argument(
        "--pid-bug", help="a broken producer-id controller: a class name from sim_bugs.py"
    )
    parser.add_argument("--stats", action="store_true", help="print fault and role counts")
    parser.add_argument(
        "--no-directory-ids", action="store_true", help="voters without directory ids"
    )
    parser.add_argument(
        "--voter-changes",
        action="store_true",
        help="5 nodes, 1 or 3 voters at first; leaders add and remove voters under faults",
    )
    args = parser.parse_args()
    options: dict[str, Any] = {"directory_ids": not args.no_directory_ids}
    if args.voter_changes:
        options["voter_changes"] = True
    if args.bug:
        import sim_bugs

        options["raft_class"] = getattr(sim_bugs, args.bug)
    if args.pid_bug:
        import sim_bugs

        options["producer_ids"] = getattr(sim_bugs, args.pid_bug)
    if args.seed is not None:
        result = run_seed(args.seed, trace=args.trace, **options)
        print(result)
        return 0 if result.ok else 1
    started = time.perf_counter()
    failures = 0
    events = 0
    totals: Counter[str] = Counter()
    for result in run_seeds(range(args.seeds), **options):
        events += result.events
        totals.update(result.stats)
        totals["acknowledged writes"] += result.acked
        totals["seeds with 5 nodes"] += Scenario.for_seed(result.seed).nodes == 5
        if not result.ok:
            failures += 1
            print(f"seed {result.seed} FAILED: {result.error}")
            print(f"  replay: {replay_command(result.seed, args.voter_changes)}")
    elapsed = time.perf_counter() - started
    print(
        f"{args.seeds} seeds, {failures} failed, {elapsed:.1f} s "
        f"({args.seeds / elapsed:.0f} seeds/s, {events / elapsed:.0f} events/s)"
    )
    if args.stats:
        for name, count in sorted(totals.items()):
            print(f"  {name}: {count}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
