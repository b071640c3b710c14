"""The simulated cluster: N replicas of one Raft group on virtual time, driven by one event queue.

Simulation runs each replica's actions against a simulated disk (sim_disk.py) and network
(delays, drops, duplicates, partitions), injects client writes, crashes, resignations, wiped disks
and lost tails during the fault phase, then heals and waits for convergence; the invariants
(sim_invariants.py) are checked after every step. See raft_sim.py for the whole design.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, deque
from typing import Any

from sim_invariants import Invariants, ProducerIdBlocks, SafetyViolation
from sim_model import Result, Scenario, SimNode
from sim_producer_ids import ProducerIdController, reserved_block

from rafka.replication.actions import (
    Action,
    AppendLeaderChange,
    AppendRecords,
    AppendVoters,
    HighWatermarkAdvanced,
    PersistQuorumState,
    RoleChanged,
    SendMessage,
    TruncateLog,
)
from rafka.replication.log import MemoryLog, VotersEntry
from rafka.replication.messages import RESPONSES
from rafka.replication.raft import RaftConfig, RaftReplica, RaftSafetyError
from rafka.replication.state import Role

# Timers scaled down from Kafka's defaults (1 s election, 2 s fetch timeout) to fit short runs.
RAFT_CONFIG = RaftConfig(
    election_timeout_ms=100,
    election_backoff_max_ms=100,
    fetch_timeout_ms=200,
    request_timeout_ms=80,
    retry_backoff_ms=10,
    fetch_max_wait_ms=50,
    fetch_limit=8,
)

DELIVER, TICK, FLUSHED, CLIENT, FAULT, RESTART, HEAL, CALM, CHECK, RECONFIG = range(10)


class Simulation:
    def __init__(
        self,
        seed: int,
        scenario: Scenario | None = None,
        *,
        raft_class: type[RaftReplica] = RaftReplica,
        directory_ids: bool = True,
        producer_ids: type[ProducerIdController] = ProducerIdController,
        voter_changes: bool = False,
        lossy_storage: bool = False,
        trace: bool = False,
    ) -> None:
        self.seed = seed
        self.scenario = scenario or Scenario.for_seed(
            seed, voter_changes=voter_changes, lossy_storage=lossy_storage
        )
        self.rng = random.Random(seed)
        self.raft_class = raft_class
        self.directory_ids = directory_ids
        self.trace = trace
        self.now = 0
        self.queue: list[tuple[int, int, int, Any]] = []
        self.seq = 0
        self.events = 0
        self.nodes = [SimNode(i, self._new_dir_id()) for i in range(self.scenario.nodes)]
        # The group's voters at creation; the others start as observers. Voter changes (a
        # reassignment's steps) then go through the log.
        initial = self.nodes[: self.scenario.voters or len(self.nodes)]
        self.voters = {n.id: n.dir_id for n in initial}
        # Without directory ids a wiped node is the same voter to the group; its lost disk is
        # then a durability loss outside Raft's model, so only the log invariants apply.
        self.invariants = Invariants(
            [n.key for n in initial], check_fsynced=directory_ids, dynamic_voters=voter_changes
        )
        self.voter_changes = voter_changes
        self.reconfig_rng = random.Random(seed ^ 0xC0F1)
        self.blocked: set[tuple[int, int]] = set()
        self.faulty = True
        self.wipes = 0
        self.next_value = 0
        self.converged = False
        self.stats: Counter[str] = Counter()
        self.producer_ids = producer_ids(seed)
        self.producer_id_blocks = ProducerIdBlocks()
        # Coordinator-style reads from a leader's own state: (barrier, epoch, incarnation) per
        # node, started on their own random stream.
        self.reads: dict[int, list[tuple[int, int, int]]] = {}
        self.reads_rng = random.Random(seed ^ 0x4EAD)

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> Result:
        try:
            self._run()
        except (SafetyViolation, RaftSafetyError) as exc:
            return self._result(False, f"{type(exc).__name__}: {exc}")
        return self._result(True)

    def _result(self, ok: bool, error: str = "") -> Result:
        return Result(
            self.seed,
            ok,
            error,
            self.events,
            len(self.invariants.acked),
            len(self.invariants.committed),
            len(self.invariants.leaders),
            self.now,
            self.stats,
        )

    def _run(self) -> None:
        scenario = self.scenario
        for node in self.nodes:
            self.invariants.durable_of[node.key] = node.disk.durable
            self._start(node)
        self._schedule(self._between(scenario.write_every_ms), CLIENT, None)
        self._schedule(self._between(scenario.fault_every_ms), FAULT, None)
        self._schedule(scenario.fault_ms, CALM, None)
        if self.voter_changes:
            self._schedule(self.reconfig_rng.randint(50, 200), RECONFIG, None)
        end = scenario.fault_ms + scenario.settle_ms
        handlers = {
            DELIVER: self._on_deliver,
            TICK: self._on_tick,
            FLUSHED: self._on_flushed,
            CLIENT: self._on_client,
            FAULT: self._on_fault,
            RESTART: self._on_restart,
            HEAL: self._on_heal,
            CALM: self._on_calm,
            CHECK: self._on_check,
            RECONFIG: self._on_reconfig,
        }
        queue = self.queue
        while queue and not self.converged:
            at, _, kind, payload = heapq.heappop(queue)
            if at > end:
                break
            self.now = at
            self.events += 1
            handlers[kind](payload)
        if not self.converged:
            states = ", ".join(
                f"{n.id}:{n.raft.role.value}@{n.raft.epoch} end={n.log.end_offset} "
                f"hw={n.raft.high_watermark}"
                for n in self.nodes
            )
            Invariants.fail(f"no convergence {scenario.settle_ms} ms after the heal ({states})")
        self.invariants.check_final(self.nodes)

    def _schedule(self, delay: int, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (self.now + delay, self.seq, kind, payload))

    def _between(self, bounds: tuple[int, int]) -> int:
        return self.rng.randint(bounds[0], bounds[1])

    def _new_dir_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def _log(self, text: str) -> None:
        if self.trace:
            print(f"{self.now:6d} {text}")

    # -- nodes -----------------------------------------------------------------------------------

    def _start(self, node: SimNode) -> None:
        node.incarnation += 1
        node.up = True
        node.log = MemoryLog(node.disk.durable)
        node.flushing = 0
        node.tick_at = None
        node.pending = []
        node.peer_incarnation = {}
        voters: Any = self.voters if self.directory_ids else frozenset(self.voters)
        node.raft = self.raft_class(
            node.id,
            voters,
            node.disk.quorum_state,
            node.log,
            # As the broker does: a checkpoint beyond what storage kept claims nothing.
            min(node.disk.hw_checkpoint, node.log.end_offset),
            config=RAFT_CONFIG,
            rng=random.Random(self.rng.getrandbits(64)),
            now_ms=self.now,
            directory_id=node.dir_id if self.directory_ids else None,
            flushed_end_offset=node.log.end_offset,
            lost_end_offset=node.disk.lost_end_offset,
        )
        self._log(
            f"node {node.id} starts (incarnation {node.incarnation}, {node.raft.role.value} "
            f"epoch {node.raft.epoch}, log end {node.log.end_offset}, "
            f"hw {node.raft.high_watermark})"
        )
        self.invariants.on_restart(node)
        self._schedule_tick(node)

    def _crash(self, node: SimNode) -> None:
        if not node.up:
            return
        node.up = False
        node.incarnation += 1  # in-flight messages and timers of the old process die with it
        self.stats["crashes"] += 1
        node.disk.crash(self.rng)
        node.pending = []
        self._log(f"node {node.id} crashes (durable log end {len(node.disk.durable)})")

    def _schedule_tick(self, node: SimNode) -> None:
        deadline = node.raft.next_deadline()
        if deadline is None:
            return
        deadline = max(deadline, self.now)
        if node.tick_at is not None and self.now <= node.tick_at <= deadline:
            return
        node.tick_at = deadline
        self._schedule(deadline - self.now, TICK, (node.id, node.incarnation, deadline))

    def _apply(self, node: SimNode, actions: list[Action]) -> None:
        """Carry out a replica's actions in order, each finished before the next starts."""
        todo = deque(actions)
        raft = node.raft
        invariants = self.invariants
        crash_chance = self.scenario.crash_in_actions if self.faulty else 0.0
        while todo:
            if crash_chance and self.rng.random() < crash_chance:
                self._log(f"node {node.id} crashes before {todo[0]}")
                self.stats["crashes in an action list"] += 1
                self._crash(node)
                self._schedule(self._between((5, 200)), RESTART, node.id)
                return
            action = todo.popleft()
            kind = type(action)
            if kind is SendMessage:
                invariants.on_send(node, action.destination, action.message)
                self._send(node, action.destination, action.message)
            elif kind is PersistQuorumState:
                invariants.on_persist(node, action.state)
                node.disk.quorum_state = action.state
                self._log(f"node {node.id} persists {action.state}")
            elif kind is AppendLeaderChange:
                invariants.on_leader_change(node)
                self.stats["leader-change entries"] += 1
                entry = (action.epoch, ("leader", action.leader_id))
                self._append(node, (entry,))
                todo.extend(raft.on_local_append(node.log.end_offset))
            elif kind is AppendRecords:
                self._append(node, action.records)
                todo.extend(raft.on_local_append(node.log.end_offset))
            elif kind is AppendVoters:
                self.stats["voter changes appended"] += 1
                self._log(f"node {node.id} appends voters {[v for v, _ in action.voters]}")
                self._append(node, ((action.epoch, VotersEntry(action.voters)),))
                todo.extend(raft.on_local_append(node.log.end_offset))
            elif kind is TruncateLog:
                invariants.on_truncate(node, action.end_offset)
                self.stats["truncations"] += 1
                self._log(f"node {node.id} truncates {node.log.end_offset} -> {action.end_offset}")
                node.log.truncate(action.end_offset)
                node.disk.truncate(action.end_offset)
                self._request_flush(node)
                todo.extend(raft.on_truncated(node.log.end_offset))
            elif kind is HighWatermarkAdvanced:
                invariants.on_high_watermark(node, action.high_watermark)
                self._acknowledge(node)
            elif kind is RoleChanged:
                self._log(
                    f"node {node.id} becomes {action.role.value} in epoch {action.epoch} "
                    f"(leader {action.leader_id})"
                )
                node.pending = []  # writes of an ended leadership fail; clients retry
                self.stats[f"became {action.role.value}"] += 1
                if action.role is Role.LEADER:
                    invariants.on_leader(node, action.epoch, self.now)
            else:  # pragma: no cover - a new action type the simulator does not know
                raise AssertionError(f"unknown action {action!r}")
        invariants.after_step(node)
        self._check_reads(node)

    def _check_reads(self, node: SimNode) -> None:
        """Read barriers the node started as leader: confirmed ones must not be stale."""
        waiting = []
        for barrier, epoch, incarnation in self.reads.get(node.id, ()):
            raft = node.raft
            if not node.up or node.incarnation != incarnation or raft.epoch != epoch:
                continue  # abandoned: the coordinator answers NOT_COORDINATOR
            if raft.read_confirmed(barrier):
                self.stats["reads confirmed"] += 1
                self.invariants.on_read_confirmed(node, epoch, barrier)
            else:
                waiting.append((barrier, epoch, incarnation))
        self.reads[node.id] = waiting

    def _append(self, node: SimNode, entries: Any) -> None:
        node.log.append(entries)
        node.disk.append(entries)
        self._request_flush(node)

    def _acknowledge(self, node: SimNode) -> None:
        raft = node.raft
        if raft.role is not Role.LEADER or not node.pending:
            return
        high_watermark = raft.high_watermark
        pending = node.pending
        done = 0
        while done < len(pending) and pending[done][0] < high_watermark:
            self.invariants.on_ack(*pending[done])
            self._hand_out_producer_ids(node, *pending[done])
            done += 1
        del pending[:done]

    def _hand_out_producer_ids(self, node: SimNode, offset: int, epoch: int, value: Any) -> None:
        """A committed reservation's block goes to a broker (sim_producer_ids.py)."""
        block = reserved_block(value)
        if block is not None:
            self.stats["producer-id blocks handed out"] += 1
            self.producer_id_blocks.on_handed_out(node.id, epoch, offset, block)

    # -- disk ------------------------------------------------------------------------------------

    def _request_flush(self, node: SimNode) -> None:
        if node.flushing or not node.disk.pending:
            return
        node.flushing = self.seq + 1
        node.flush_writes = len(node.disk.pending)
        node.flush_hw = min(node.raft.high_watermark, node.log.end_offset)
        latency = self._between((1, 4)) if self.rng.random() < 0.9 else self._between((10, 40))
        self._schedule(latency, FLUSHED, (node.id, node.incarnation, node.flushing))

    def _on_flushed(self, payload: tuple[int, int, int]) -> None:
        node_id, incarnation, flush_id = payload
        node = self.nodes[node_id]
        if not node.up or node.incarnation != incarnation or node.flushing != flush_id:
            return
        node.flushing = 0
        node.disk.complete_flush(node.flush_writes, node.flush_hw)
        self._apply(node, node.raft.on_flushed(node.id, node.disk.synced_end()))
        if node.up and node.incarnation == incarnation:
            self._request_flush(node)
            self._schedule_tick(node)

    # -- network ---------------------------------------------------------------------------------

    def _send(self, node: SimNode, destination: int, message: Any) -> None:
        self._log(f"node {node.id} -> {destination}: {message}")
        if (node.id, destination) in self.blocked:
            return
        target = self.nodes[destination]
        if isinstance(message, RESPONSES):
            incarnation = node.peer_incarnation.get(destination, target.incarnation)
        else:
            incarnation = target.incarnation
        rng = self.rng
        scenario = self.scenario
        if self.faulty and rng.random() < scenario.drop:
            self.stats["messages dropped"] += 1
            return
        copies = 2 if self.faulty and rng.random() < scenario.duplicate else 1
        self.stats["messages"] += copies
        for _ in range(copies):
            delay = rng.randint(1, 8)
            if self.faulty and rng.random() < scenario.slow:
                delay += rng.randint(10, 150)
            payload = (destination, incarnation, node.id, node.incarnation, message)
            self._schedule(delay, DELIVER, payload)

    def _on_deliver(self, payload: tuple[int, int, int, int, Any]) -> None:
        destination, incarnation, source, source_incarnation, message = payload
        node = self.nodes[destination]
        if not node.up or node.incarnation != incarnation:
            return
        if (source, destination) in self.blocked:
            return
        if not isinstance(message, RESPONSES):
            node.peer_incarnation[source] = source_incarnation
        self._log(f"node {destination} <- {source}: {message}")
        self._apply(node, node.raft.on_message(source, message, self.now))
        if node.up and node.incarnation == incarnation:
            self._schedule_tick(node)

    def _on_tick(self, payload: tuple[int, int, int]) -> None:
        node_id, incarnation, deadline = payload
        node = self.nodes[node_id]
        if not node.up or node.incarnation != incarnation or node.tick_at != deadline:
            return
        node.tick_at = None
        self._apply(node, node.raft.tick(self.now))
        if node.up and node.incarnation == incarnation:
            self._schedule_tick(node)

    # -- clients and faults ----------------------------------------------------------------------

    def _on_client(self, _: None) -> None:
        if not self.faulty:
            return
        self._schedule(self._between(self.scenario.write_every_ms), CLIENT, None)
        leaders = [n for n in self.nodes if n.up and n.raft.role is Role.LEADER]
        if not leaders:
            return
        node = self.rng.choice(leaders)
        epoch = node.raft.epoch
        entries = []
        # Maybe a producer-id block reservation first (its own random stream: same history).
        reservation = self.producer_ids.reservation(node)
        for _ in range(self.rng.randint(1, 3)):
            self.next_value += 1
            offset = node.log.end_offset + len(entries)
            value: Any = self.next_value
            if reservation is not None:
                value, reservation = reservation, None
            entries.append((epoch, value))
            node.pending.append((offset, epoch, value))
        self._log(f"client appends {entries} at node {node.id}")
        self._append(node, entries)
        self._apply(node, node.raft.on_local_append(node.log.end_offset))
        if node.up and self.reads_rng.random() < 0.3:
            barrier, actions = node.raft.read_barrier(self.now)
            self._log(f"node {node.id} starts a read barrier at {barrier}")
            self.reads.setdefault(node.id, []).append((barrier, epoch, node.incarnation))
            self._apply(node, actions)
        if node.up:
            self._schedule_tick(node)

    def _on_fault(self, _: None) -> None:
        if not self.faulty:
            return
        self._schedule(self._between(self.scenario.fault_every_ms), FAULT, None)
        rng = self.rng
        roll = rng.random()
        up = [n for n in self.nodes if n.up]
        if roll < 0.35 and up:
            node = rng.choice(up)
            self._crash(node)
            self._schedule(self._between((10, 300)), RESTART, node.id)
        elif roll < 0.5:
            leaders = [n for n in up if n.raft.role is Role.LEADER]
            if leaders:
                node = rng.choice(leaders)
                self._log(f"node {node.id} resigns (graceful shutdown)")
                self.stats["graceful resignations"] += 1
                self._apply(node, node.raft.resign())
                if node.up and rng.random() < 0.7:
                    self._crash(node)
                    self._schedule(self._between((10, 200)), RESTART, node.id)
                elif node.up:
                    self._schedule_tick(node)
        elif roll < 0.85 and len(self.nodes) > 1:
            ids = [n.id for n in self.nodes]
            side = set(rng.sample(ids, rng.randint(1, len(ids) - 1)))
            one_way = rng.random() < 0.2
            for a in ids:
                for b in ids:
                    if a in side and b not in side:
                        self.blocked.add((a, b))
                        if not one_way:
                            self.blocked.add((b, a))
            self._log(f"partition {sorted(side)} {'one way' if one_way else ''}")
            self.stats["partitions"] += 1
            self._schedule(self._between((50, 500)), HEAL, None)
        elif self.wipes < self.scenario.max_wipes and up and rng.random() < 0.5:
            self._lose_tail(rng.choice(up))
        elif self.wipes < self.scenario.max_wipes and up:
            node = rng.choice(up)
            self.wipes += 1
            self.stats["disks wiped"] += 1
            self._crash(node)
            self.invariants.on_wipe(node, node.key)
            node.disk.wipe()
            if self.directory_ids:
                node.dir_id = self._new_dir_id()
            self.invariants.durable_of[node.key] = node.disk.durable
            self._log(f"node {node.id} disk wiped, new directory id {node.dir_id}")
            self._schedule(self._between((10, 300)), RESTART, node.id)

    def _lose_tail(self, node: SimNode) -> None:
        """A crash after which the node's storage has lost fsynced entries at its tail. It
        counts against the same minority budget as wiped disks: more lost copies than a
        minority is data loss outside any consensus protocol's reach."""
        self.wipes += 1
        self._crash(node)
        self.invariants.on_lost_tail(node)
        lost = node.disk.lose_tail(self.rng)
        self.stats["fsynced tails lost"] += 1
        self._log(f"node {node.id} loses {lost} fsynced entries (marked {node.disk.durable_mark})")
        self._schedule(self._between((10, 300)), RESTART, node.id)

    def _on_restart(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.up:
            self._start(node)

    def _on_reconfig(self, _: None) -> None:
        """A reassignment's step: the leader adds an observer to the voters or removes a voter.
        Its own random stream, so that runs without voter changes keep their histories."""
        if not self.faulty:
            return
        rng = self.reconfig_rng
        self._schedule(rng.randint(60, 300), RECONFIG, None)
        leaders = [n for n in self.nodes if n.up and n.raft.role is Role.LEADER]
        if not leaders:
            return
        node = rng.choice(leaders)
        raft = node.raft
        current = dict(raft._voter_dirs)
        outside = [n for n in self.nodes if n.id not in current]
        if outside and (len(current) == 1 or rng.random() < 0.5):
            added = rng.choice(outside)
            proposed = {**current, added.id: added.dir_id if self.directory_ids else None}
        elif len(current) > 1:
            leaving = rng.choice(sorted(current))
            if leaving == node.id:  # a leader hands over before it leaves (propose_voters)
                self._log(f"node {node.id} hands over before leaving the voters")
                self._apply(node, raft.resign())
                if node.up:
                    self._schedule_tick(node)
                return
            del current[leaving]
            proposed = current
        else:
            return
        actions = raft.propose_voters(proposed)
        self.stats["voter changes proposed" if actions else "voter changes deferred"] += 1
        self._log(f"node {node.id} proposes voters {sorted(proposed)}: {actions}")
        self.invariants.proposing = True
        try:
            self._apply(node, actions)
        finally:
            self.invariants.proposing = False
        if node.up:
            self._schedule_tick(node)

    def _on_heal(self, _: None) -> None:
        if self.blocked:
            self._log("network heals")
        self.blocked.clear()

    def _on_calm(self, _: None) -> None:
        """End of the fault phase: restart everything, make the network reliable, and wait."""
        self._log("faults stop")
        self.faulty = False
        self.blocked.clear()
        for node in self.nodes:
            if not node.up:
                self._start(node)
        self._schedule(20, CHECK, None)

    def _on_check(self, _: None) -> None:
        leaders = [n for n in self.nodes if n.up and n.raft.role is Role.LEADER]
        if len(leaders) == 1:
            leader = leaders[0]
            entries = leader.log.entries
            high_watermark = leader.raft.high_watermark
            if high_watermark == len(entries) and all(
                n.log.entries == entries and n.raft.high_watermark == high_watermark
                for n in self.nodes
            ):
                self.converged = True
                return
        self._schedule(20, CHECK, None)
