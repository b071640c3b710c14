"""Faults injected into the namespaced cluster, one at a time: network partitions (a role's node
isolated, a random minority, a bridge whose middle node sees both sides, flapping), kill -9 and
restart, SIGSTOP/SIGCONT, and corruption of a killed node's newest segment tails. Targets are
drawn from a seeded generator; which node holds a role (partition leader, controller, group or
transaction coordinator) is read from the cluster when the fault starts.

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

from rafka.broker.groups.placement import partition_for
from rafka.protocol.records import CorruptRecordError, iter_batch_headers

PARTITION_KINDS = ("isolate-leader", "isolate-node", "bridge", "flap")
PROCESS_KINDS = ("kill", "pause")
DISK_KINDS = ("corrupt",)
KINDS = PARTITION_KINDS + PROCESS_KINDS + DISK_KINDS

INTERNAL_PARTITIONS = 8  # offsets.topic.num.partitions and transaction.state.log.num.partitions


@dataclass
class Roles:
    """What the workload depends on, to aim faults at the nodes that matter."""

    topics: dict[str, int]  # topic -> partitions
    groups: list[str]
    transactional_ids: list[str]

    def choices(self) -> list[tuple[str, int]]:
        """(topic, partition) pairs whose leader is a role; ("", -1) is the controller."""
        pairs = [(t, p) for t, n in self.topics.items() for p in range(n)]
        pairs += [
            ("__consumer_offsets", partition_for(g, INTERNAL_PARTITIONS)) for g in self.groups
        ]
        pairs += [
            ("__transaction_state", partition_for(t, INTERNAL_PARTITIONS))
            for t in self.transactional_ids
        ]
        return [*pairs, ("", -1)]


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
        corrupt_topics: list[str],
    ) -> None:
        self.cluster, self.network, self.roles = cluster, network, roles
        self.random = random.Random(seed)
        self.corrupt_topics = corrupt_topics
        self.paused: set[int] = set()
        self.log: list[str] = []

    # -- targets --------------------------------------------------------------------------------

    def role_node(self) -> tuple[int, str]:
        """The node now holding a randomly drawn role, or a random node when none is known."""
        topic, partition = self.random.choice(self.roles.choices())
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
        self.log.append(f"{fault.start:.3f} {fault.description}; healed {fault.healed:.3f}")
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
        for topic in self.corrupt_topics:
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


def _batch_starts(data: bytes) -> list[int]:
    starts = []
    try:
        for position, _ in iter_batch_headers(data):
            starts.append(position)
    except CorruptRecordError:
        pass
    return starts
