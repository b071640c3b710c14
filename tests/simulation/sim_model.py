"""What a simulated run is made of: its scenario (fault rates and sizes, drawn from the seed), a
simulated node (disk, page-cache log, Raft replica, process incarnation and in-flight work) and
the result of a run. The run itself is sim_cluster.py; the entry point raft_sim.py."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sim_disk import Disk

from rafka.replication.log import MemoryLog


@dataclass(slots=True)
class Scenario:
    nodes: int = 3
    fault_ms: int = 1500  # clients write and faults happen until then
    settle_ms: int = 5000  # after the heal, the replicas must converge within this
    drop: float = 0.03
    duplicate: float = 0.03
    slow: float = 0.05  # a message delayed by up to 150 ms (reordering)
    fault_every_ms: tuple[int, int] = (80, 400)
    write_every_ms: tuple[int, int] = (3, 30)
    crash_in_actions: float = 0.0005  # per action carried out
    max_wipes: int = 1
    voters: int | None = None  # voters at creation (the first nodes); None: every node

    @classmethod
    def for_seed(
        cls, seed: int, *, voter_changes: bool = False, lossy_storage: bool = False
    ) -> Scenario:
        if voter_changes:
            # Five nodes, one or three voters at first: reassignments grow and shrink the
            # group. No wiped disks or lost tails here: re-adding a wiped voter under its new
            # directory id is a reassignment of its own (KIP-853), not modelled yet.
            rng = random.Random(seed ^ 0xC0F1)
            return cls(
                nodes=5,
                voters=rng.choice((1, 3)),
                drop=rng.choice((0.0, 0.02, 0.08)),
                duplicate=rng.choice((0.0, 0.03)),
                slow=rng.choice((0.0, 0.05, 0.15)),
                max_wipes=0,
            )
        rng = random.Random(seed ^ 0x5EED)
        # Mostly 3 voters, a quarter 5, and one in eight a single voter (a lone broker).
        nodes = 5 if seed % 4 == 3 else 1 if seed % 8 == 1 else 3
        scenario = cls(
            nodes=nodes,
            drop=rng.choice((0.0, 0.02, 0.08)),
            duplicate=rng.choice((0.0, 0.03)),
            slow=rng.choice((0.0, 0.05, 0.15)),
            max_wipes=(nodes - 1) // 2 if rng.random() < 0.3 else 0,
        )
        if lossy_storage:
            # Every seed a replicated group whose minority may lose disks or fsynced tails:
            # the faults that bugs of protocol-aware recovery need.
            scenario.nodes = max(nodes, 3)
            scenario.max_wipes = (scenario.nodes - 1) // 2
        return scenario


@dataclass(slots=True)
class SimNode:
    id: int
    dir_id: str
    disk: Disk = field(default_factory=Disk)
    log: MemoryLog = field(default_factory=MemoryLog)
    raft: Any = None
    up: bool = False
    incarnation: int = 0
    tick_at: int | None = None
    flushing: int = 0  # id of the flush in progress, 0 if none
    flush_writes: int = 0
    flush_hw: int = 0
    # The incarnation of each peer whose requests we answer (TCP: replies go back on the
    # connection the request came in on).
    peer_incarnation: dict[int, int] = field(default_factory=dict)
    # Client writes waiting for the high watermark: (offset, epoch, value).
    pending: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, str]:
        return (self.id, self.dir_id)


@dataclass(slots=True)
class Result:
    seed: int
    ok: bool
    error: str = ""
    events: int = 0
    acked: int = 0
    committed: int = 0
    leaders: int = 0
    virtual_ms: int = 0
    stats: Counter[str] = field(default_factory=Counter, repr=False, compare=False)
