"""The safety properties the simulator checks after every step.

- at most one leader per epoch (a restarted node may not lead the same epoch again);
- per node, the persisted epoch never decreases and a vote once persisted in an epoch never
  changes; nothing is sent in an epoch (nor a vote granted) before it is persisted;
- per node the high watermark never decreases (within a run of the process; across restarts it
  resumes from the persisted checkpoint, which never decreases either);
- every high watermark is covered by what a majority of voters hold *fsynced* (with voter changes:
  of the voters of the leader advancing it) (a voter whose disk
  was wiped counts with what it had fsynced until then: losing a disk is outside Raft's fault
  model, counting unsynced data is a bug);
- the log below any node's high watermark equals the global committed log, forever (checked when
  the high watermark moves, on truncation and on restart; nothing else rewrites that prefix);
- a LEADER_CHANGE entry is appended only over an uncommitted tail, never by a single voter (it
  takes an offset that Kafka would give the next record);
- every acknowledged write is in the committed log at its offset (and the committed log only
  grows), and after the final heal every replica holds all of it;
- no producer-id block reserved in the log is handed out twice (ProducerIdBlocks, with the
  controller modelled in sim_producer_ids.py);
- a read barrier a leader confirms (ReadIndex, for a coordinator's reads from its own state)
  was started when no leader of a higher epoch had been elected yet: what it then answers
  holds every write acknowledged before the read began.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rafka.replication.messages import FetchResponse, VoteRequest, VoteResponse
from rafka.replication.state import QuorumState

if TYPE_CHECKING:
    from sim_model import SimNode

Key = tuple[int, str]


class SafetyViolation(AssertionError):
    pass


class Invariants:
    def __init__(
        self, voter_keys: list[Key], *, check_fsynced: bool = True, dynamic_voters: bool = False
    ) -> None:
        self.voter_keys = voter_keys
        self.check_fsynced = check_fsynced
        # Voters change through the log: a high watermark is checked against the voters of the
        # leader that advanced it (a follower's set may be several changes old).
        self.dynamic_voters = dynamic_voters
        # A leader proposing voters may append LEADER_CHANGE to commit an entry of its epoch.
        self.proposing = False
        self.majority = len(voter_keys) // 2 + 1
        self.committed: list[tuple[int, Any]] = []
        self.leaders: dict[int, tuple[int, str, int]] = {}
        self.elected_at: dict[int, int] = {}  # epoch -> when its leader took office
        self.persisted: dict[Key, QuorumState] = {}
        self.high_watermarks: dict[int, int] = {}
        self.epochs: dict[int, int] = {}
        # Durable logs of voter keys whose disk was wiped, as they were at the wipe.
        self.wiped: dict[Key, list[tuple[int, Any]]] = {}
        self.durable_of: dict[Key, list[tuple[int, Any]]] = {}
        # Durable logs of voters whose storage then lost a tail, as they were before: what the
        # leader counted toward a high watermark was true when counted.
        self.before_loss: dict[Key, list[list[tuple[int, Any]]]] = {}
        self.acked: list[tuple[int, int, Any]] = []

    @staticmethod
    def fail(message: str) -> None:
        raise SafetyViolation(message)

    # -- quorum state and messages ---------------------------------------------------------

    def on_persist(self, node: SimNode, state: QuorumState) -> None:
        key = node.key
        before = self.persisted.get(key)
        if before is not None:
            if state.epoch < before.epoch:
                self.fail(f"node {node.id}: persisted epoch went {before.epoch} -> {state.epoch}")
            if (
                state.epoch == before.epoch
                and before.voted_for is not None
                and state.voted_for != before.voted_for
            ):
                self.fail(
                    f"node {node.id}: vote in epoch {state.epoch} changed "
                    f"{before.voted_for} -> {state.voted_for}"
                )
        self.persisted[key] = state

    def on_send(self, node: SimNode, destination: int, message: Any) -> None:
        persisted = self.persisted.get(node.key, QuorumState())
        if isinstance(message, VoteRequest) and message.pre_vote:
            epoch = message.epoch - 1
        else:
            epoch = message.epoch
        if epoch > persisted.epoch:
            self.fail(
                f"node {node.id} sent {type(message).__name__} in epoch {epoch} before "
                f"persisting it (persisted {persisted.epoch})"
            )
        if isinstance(message, VoteResponse) and message.granted and not message.pre_vote:
            if persisted.epoch != message.epoch or persisted.voted_for != destination:
                self.fail(
                    f"node {node.id} granted its vote in epoch {message.epoch} to {destination} "
                    f"with persisted state {persisted}"
                )
        if isinstance(message, FetchResponse) and message.records:
            if node.raft.role.value != "leader":
                self.fail(f"node {node.id} served records while {node.raft.role.value}")

    def on_leader(self, node: SimNode, epoch: int, now: int = 0) -> None:
        persisted = self.persisted.get(node.key, QuorumState())
        if persisted.epoch != epoch or persisted.voted_for != node.id:
            self.fail(f"node {node.id} leads epoch {epoch} with persisted state {persisted}")
        me = (node.id, node.dir_id, node.incarnation)
        other = self.leaders.setdefault(epoch, me)
        if other != me:
            self.fail(f"two leaders in epoch {epoch}: {other} and {me}")
        self.elected_at.setdefault(epoch, now)

    def on_read_confirmed(self, node: SimNode, epoch: int, barrier: int) -> None:
        for later, elected in self.elected_at.items():
            if later > epoch and elected < barrier:
                self.fail(
                    f"node {node.id} confirmed a read barrier of {barrier} ms as leader of epoch "
                    f"{epoch}, but epoch {later} had a leader from {elected} ms: a stale read"
                )

    def on_leader_change(self, node: SimNode) -> None:
        """A LEADER_CHANGE entry takes an offset that Kafka would give a record: it is written
        only to commit a tail of earlier epochs that other voters may hold differently."""
        raft = node.raft
        if self.proposing:
            return
        if len(raft.voters) == 1 or node.log.end_offset <= raft.high_watermark:
            self.fail(
                f"node {node.id} appends LEADER_CHANGE at {node.log.end_offset} with high "
                f"watermark {raft.high_watermark} and voters {sorted(raft.voters)}"
            )

    def after_step(self, node: SimNode) -> None:
        """After every event a node handled: its epoch did not go back, and its high watermark
        moved only with a HighWatermarkAdvanced action (the checks above saw every change)."""
        epoch = node.raft.epoch
        if epoch < self.epochs.get(node.id, 0):
            self.fail(f"node {node.id}: epoch went {self.epochs[node.id]} -> {epoch}")
        self.epochs[node.id] = epoch
        if node.raft.high_watermark != self.high_watermarks.get(node.id, 0):
            self.fail(
                f"node {node.id}: high watermark {node.raft.high_watermark} changed silently "
                f"(last announced {self.high_watermarks.get(node.id, 0)})"
            )

    # -- logs and high watermarks --------------------------------------------------------------

    def on_high_watermark(self, node: SimNode, high_watermark: int) -> None:
        before = self.high_watermarks.get(node.id, 0)
        if high_watermark < before:
            self.fail(f"node {node.id}: high watermark went {before} -> {high_watermark}")
        log = node.log.entries
        if high_watermark > len(log):
            self.fail(f"node {node.id}: high watermark {high_watermark} beyond log end {len(log)}")
        committed = self.committed
        known = len(committed)
        upto = min(high_watermark, known)
        if before < upto and log[before:upto] != committed[before:upto]:
            self.fail(
                f"node {node.id}: log below high watermark {high_watermark} differs from "
                f"the committed log\n  node:      {log[before:upto]}\n"
                f"  committed: {committed[before:upto]}"
            )
        if high_watermark > known:
            committed.extend(log[known:high_watermark])
        self.high_watermarks[node.id] = high_watermark
        if self.check_fsynced:
            self._check_majority_fsynced(node, high_watermark)

    def _check_majority_fsynced(self, node: SimNode, high_watermark: int) -> None:
        prefix = self.committed[:high_watermark]
        holders = []
        voter_keys, majority = self.voter_keys, self.majority
        if self.dynamic_voters:
            if not node.raft.is_leader:
                return
            voter_keys = list(node.raft._voter_dirs.items())
            majority = len(voter_keys) // 2 + 1
        for key in voter_keys:
            durable = self.wiped.get(key)
            if durable is None:
                durable = self.durable_of[key]
            copies = [durable, *self.before_loss.get(key, ())]
            if any(len(c) >= high_watermark and c[:high_watermark] == prefix for c in copies):
                holders.append(key[0])
        if len(holders) < majority:
            self.fail(
                f"node {node.id}: high watermark {high_watermark} but only voters {holders} "
                f"have fsynced it"
            )

    def on_truncate(self, node: SimNode, end_offset: int) -> None:
        if end_offset < self.high_watermarks.get(node.id, 0):
            self.fail(
                f"node {node.id}: truncated to {end_offset} below its high watermark "
                f"{self.high_watermarks[node.id]}"
            )

    def on_restart(self, node: SimNode) -> None:
        high_watermark = node.raft.high_watermark
        log = node.log.entries
        if high_watermark > len(log) or log[:high_watermark] != self.committed[:high_watermark]:
            self.fail(
                f"node {node.id}: restarted with high watermark {high_watermark} over a log that "
                f"differs from the committed log"
            )
        self.high_watermarks[node.id] = high_watermark
        persisted = self.persisted.get(node.key, QuorumState())
        if node.raft.state != persisted:
            self.fail(f"node {node.id}: restarted with {node.raft.state}, persisted {persisted}")
        self.epochs[node.id] = node.raft.epoch

    def on_lost_tail(self, node: SimNode) -> None:
        if self.check_fsynced:
            self.before_loss.setdefault(node.key, []).append(list(self.durable_of[node.key]))

    def on_wipe(self, node: SimNode, old_key: Key) -> None:
        if self.check_fsynced and old_key in self.durable_of:
            self.wiped[old_key] = list(self.durable_of[old_key])
        self.persisted.pop(old_key, None)
        self.high_watermarks[node.id] = 0
        self.epochs[node.id] = 0

    def on_ack(self, offset: int, epoch: int, value: Any) -> None:
        committed = self.committed
        if offset >= len(committed) or committed[offset] != (epoch, value):
            self.fail(f"acknowledged write {value} at offset {offset} is not the committed one")
        self.acked.append((offset, epoch, value))

    def check_final(self, nodes: list[SimNode]) -> None:
        committed = self.committed
        for node in nodes:
            log = node.log.entries
            if log[: len(committed)] != committed:
                self.fail(f"node {node.id}: final log lost committed entries")
            for offset, epoch, value in self.acked:
                if offset >= len(log) or log[offset] != (epoch, value):
                    self.fail(f"node {node.id}: acknowledged write {value} lost")


class ProducerIdBlocks:
    """The producer-id invariant (issue 13, bug 1): a block reserved on the metadata log goes to
    one broker only, whichever leaders reserved it, across leader changes, crashes, restarts."""

    def __init__(self) -> None:
        # block -> (node, epoch, offset) of the committed reservation that handed it out
        self.handed_out: dict[int, tuple[int, int, int]] = {}

    def on_handed_out(self, node_id: int, epoch: int, offset: int, block: int) -> None:
        mine = (node_id, epoch, offset)
        first = self.handed_out.setdefault(block, mine)
        if first != mine:
            raise SafetyViolation(
                f"producer-id block {block} handed out twice: by node {first[0]} in epoch "
                f"{first[1]} (offset {first[2]}) and by node {node_id} in epoch {epoch} "
                f"(offset {offset})"
            )
