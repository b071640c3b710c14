"""Faults injected into the namespaced cluster, one at a time: network partitions (a role's node
isolated, a random minority, a bridge whose middle node sees both sides, flapping), kill -9 and
restart, SIGSTOP/SIGCONT, corruption of a killed node's newest segment tails, and "lose-tail"
(issue 13's bug 4: a follower cut off, the leader killed and its disk losing what that follower
lacks, the other follower paused while the two rejoin). Targets are drawn from a seeded
generator; which node holds a role (partition leader, controller, group or transaction
coordinator) is read from the cluster when the fault starts.

Clock jumps are not injected: the brokers time everything with the monotonic clock, and moving
the wall clock of this shared machine would disturb every other process on it.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from cluster import Cluster
from netns import Network

from rafka.broker.coordinator.placement import partition_for
from rafka.protocol.records import (
    BatchHeader,
    CorruptRecordError,
    iter_batch_headers,
    read_batch_header,
)

PARTITION_KINDS = ("isolate-leader", "isolate-node", "bridge", "flap")
PROCESS_KINDS = ("kill", "pause")
DISK_KINDS = ("corrupt", "lose-tail")
KINDS = PARTITION_KINDS + PROCESS_KINDS + DISK_KINDS

INTERNAL_PARTITIONS = 8  # offsets.topic.num.partitions and transaction.state.log.num.partitions


@dataclass
class Roles:
    """What the workload depends on, to aim faults at the nodes that matter."""

    topics: dict[str, int]  # topic -> partitions
    groups: list[str]
    transactional_ids: list[str]

    def choices(self) -> list[list[tuple[str, int]]]:
        """Role categories, drawn alike however many partitions each has: (topic, partition)
        pairs whose leader holds the role; ("", -1) is the controller."""
        return [
            [(t, p) for t, n in self.topics.items() for p in range(n)],
            [("__consumer_offsets", partition_for(g, INTERNAL_PARTITIONS)) for g in self.groups],
            [
                ("__transaction_state", partition_for(t, INTERNAL_PARTITIONS))
                for t in self.transactional_ids
            ],
            [("", -1)],
        ]


@dataclass
class Fault:
    kind: str
    description: str = ""
    start: float = 0.0
    healed: float = 0.0  # network healed, process resumed, or restarted node ready
    nodes: list[int] = field(default_factory=list)


class Nemesis:
    def __init__(
        self,
        cluster: Cluster,
        network: Network,
        roles: Roles,
        seed: int,
    ) -> None:
        self.cluster, self.network, self.roles = cluster, network, roles
        self.random = random.Random(seed)
        self.paused: set[int] = set()
        self.log: list[str] = []

    # -- targets --------------------------------------------------------------------------------

    def role_node(self) -> tuple[int, str]:
        """The node now holding a randomly drawn role, or a random node when none is known."""
        topic, partition = self.random.choice(self.random.choice(self.roles.choices()))
        return self.leader(topic, partition)

    def leader(self, topic: str, partition: int) -> tuple[int, str]:
        """The partition's newest known leader ("" for the controller), else a random node."""
        node: int | None = None
        views = self.cluster.metadata_views()
        if topic == "":
            ids = {v.controller_id for v in views if v.controller_id > 0}
            node = min(ids) if len(ids) == 1 else None
            role = "controller"
        else:
            state = [v.partitions.get((topic, partition)) for v in views]
            known = [s for s in state if s is not None and s.leader > 0]
            node = max(known, key=lambda s: s.leader_epoch).leader if known else None
            role = f"leader of {topic}-{partition}"
        if node is None:
            node = self.random.choice(self.cluster.node_ids)
            role = f"node (no {role} known)"
        return node, role

    # -- faults ---------------------------------------------------------------------------------

    def run_fault(self, kind: str, duration: float) -> Fault:
        """Inject one fault, hold it for `duration` seconds, remove it; returns when healed."""
        fault = Fault(kind)
        fault.start = time.monotonic()
        if kind == "isolate-leader":
            node, role = self.role_node()
            self.network.isolate(node)
            fault.nodes, fault.description = [node], f"isolate node {node} ({role})"
            self._hold(duration)
            self.network.heal()
        elif kind == "isolate-node":
            node = self.random.choice(self.cluster.node_ids)
            others = [n for n in self.cluster.node_ids if n != node]
            self.network.split([node], others)
            fault.nodes, fault.description = [node], f"split {[node]} | {others}"
            self._hold(duration)
            self.network.heal()
        elif kind == "bridge":
            middle = self.random.choice(self.cluster.node_ids)
            a, b = [n for n in self.cluster.node_ids if n != middle]
            self.network.cut([(a, b)])
            fault.nodes, fault.description = [a, b], f"bridge {a} - {middle} - {b}"
            self._hold(duration)
            self.network.heal()
        elif kind == "flap":
            node = self.random.choice(self.cluster.node_ids)
            fault.nodes = [node]
            flips = self._flap(node, duration)
            fault.description = f"flap node {node} ({flips} cuts)"
        elif kind == "kill":
            node, role = self.role_node()
            self.cluster.kill(node)
            fault.nodes, fault.description = [node], f"kill -9 node {node} ({role})"
            self._hold(duration)
            self.cluster.restart(node)
        elif kind == "pause":
            node, role = self.role_node()
            self._signal(node, signal.SIGSTOP)
            fault.nodes, fault.description = [node], f"pause node {node} ({role})"
            self._hold(duration)
            self._signal(node, signal.SIGCONT)
        elif kind == "lose-tail":
            self._lose_tail(fault, duration)
        elif kind == "corrupt":
            node, role = self.role_node()
            self.cluster.kill(node)
            damage = self.corrupt_tails(node)
            fault.nodes = [node]
            fault.description = f"kill -9 node {node} ({role}), {damage}"
            self._hold(duration)
            self.cluster.restart(node)
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        fault.healed = time.monotonic()
        # Wall-clock times, as in the nodes' logs.
        began = time.time() - (time.monotonic() - fault.start)
        self.log.append(
            f"{began:.3f} {fault.description}; healed after {fault.healed - fault.start:.3f}s"
        )
        return fault

    def heal_all(self) -> None:
        """Network healed, every paused node resumed, every dead node restarted."""
        self.network.heal()
        for node in list(self.paused):
            self._signal(node, signal.SIGCONT)
        dead = [n for n in self.cluster.node_ids if not self.cluster.is_alive(n)]
        if dead:
            self.cluster.start_nodes(dead)

    def corrupt_tails(self, node: int) -> str:
        """Damage the newest segment of each of the node's partitions of the workload topics:
        cut a random number of bytes off its tail, or flip a byte in its last batch (the disk
        lied about an fsync, or a torn write). Returns what was done."""
        done = []
        for topic in self.roles.topics:
            for directory in sorted(self.cluster.data_dir(node).glob(f"{topic}-*")):
                segments = sorted(directory.glob("*.log"), key=lambda p: int(p.stem))
                if not segments or segments[-1].stat().st_size == 0:
                    continue
                done.append(f"{directory.name}: {self._damage(segments[-1])}")
        return "; ".join(done) or "nothing to corrupt"

    def _damage(self, segment: Path) -> str:
        data = segment.read_bytes()
        starts = _batch_starts(data)
        if not starts:
            return "no batch"
        if self.random.random() < 0.5:
            # Lose up to the last three batches, cutting at a random byte.
            cut = self.random.randint(starts[max(0, len(starts) - 3)], len(data) - 1)
            os.truncate(segment, cut)
            return f"truncated {len(data) - cut} bytes"
        position = self.random.randint(starts[-1], len(data) - 1)
        with segment.open("r+b") as file:
            file.seek(position)
            file.write(bytes([data[position] ^ 0xFF]))
        return f"flipped byte {position} of {len(data)}"

    def _lose_tail(self, fault: Fault, duration: float) -> None:
        """Follower B cut off while leader L and follower A acknowledge writes; L killed and its
        log cut back to B's end (what it had fsynced is gone); A paused; L restarted with B
        reachable. Were L to vote as if it still had those writes, B could lead and A would
        truncate them when it resumes."""
        topic = self.random.choice(list(self.roles.topics))
        partition = self.random.randrange(self.roles.topics[topic])
        leader, _ = self.leader(topic, partition)
        a, b = self.random.sample([n for n in self.cluster.node_ids if n != leader], 2)
        fault.nodes = [leader, a, b]
        self.network.isolate(b)
        self._hold(duration / 2)
        behind = _end_offset(self.cluster.replica_batches(b, topic, partition))
        self.cluster.kill(leader)
        cut = _cut_from(self.cluster.partition_dir(leader, topic, partition), behind)
        fault.description = (
            f"lose-tail {topic}-{partition}: node {b} cut off, leader {leader} killed and cut "
            f"back to offset {behind} ({cut} bytes), node {a} paused"
        )
        self._signal(a, signal.SIGSTOP)
        self.network.heal()
        # Not cluster.restart(): its wait for every node's Metadata cannot pass with A paused.
        self.cluster.nodes[leader].start(60.0)
        self._hold(duration / 2)
        self._signal(a, signal.SIGCONT)

    # -- helpers --------------------------------------------------------------------------------

    def _hold(self, duration: float) -> None:
        time.sleep(duration)  # the fault's length itself: there is no event to await

    def _flap(self, node: int, duration: float) -> int:
        """Isolate and heal the node in short random intervals for `duration` seconds."""
        end = time.monotonic() + duration
        flips = 0
        while time.monotonic() < end:
            self.network.isolate(node)
            flips += 1
            self._hold(min(self.random.uniform(0.2, 1.0), max(0.0, end - time.monotonic())))
            self.network.heal()
            self._hold(min(self.random.uniform(0.2, 1.0), max(0.0, end - time.monotonic())))
        return flips

    def _signal(self, node: int, sig: signal.Signals) -> None:
        process = self.cluster.nodes[node].process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, sig)
        if sig == signal.SIGSTOP:
            self.paused.add(node)
        else:
            self.paused.discard(node)


def _end_offset(batches: list[bytes]) -> int:
    return read_batch_header(batches[-1]).last_offset + 1 if batches else 0


def _cut_from(directory: Path, offset: int) -> int:
    """Truncate the newest segment at the batch holding `offset` (the whole segment if it
    begins later); the bytes removed."""
    newest = max(directory.glob("*.log"), key=lambda path: int(path.stem), default=None)
    if newest is None:
        return 0
    data = newest.read_bytes()
    for position, header in _headers(data):
        if header.last_offset >= offset:
            os.truncate(newest, position)
            return len(data) - position
    return 0


def _headers(data: bytes) -> list[tuple[int, BatchHeader]]:
    found = []
    try:
        found.extend(iter_batch_headers(data))
    except CorruptRecordError:
        pass
    return found


def _batch_starts(data: bytes) -> list[int]:
    return [position for position, _ in _headers(data)]
