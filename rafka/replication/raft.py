"""The Raft state machine of one replicated log (a partition or the cluster-metadata log), sans I/O.

Events go in as method calls (`tick`, `on_message`, `on_local_append`, `on_truncated`,
`on_flushed`); what must happen comes out as a list of actions (rafka.replication.actions) that the
caller carries out in order. Time is passed in, never read; randomness comes from the `rng` given
(the simulator's, seeded) or an unseeded one.

The rules are KIP-595's, with KIP-996's pre-vote:
- Vote: refused when the candidate's last epoch is not below the epoch it campaigns in, when its
  epoch is older than ours, when we voted for another (or know a leader) in that epoch, or when its
  (last epoch, end offset) is behind ours. A granted vote is persisted (`PersistQuorumState`)
  before the response that announces it, in the same action list.
- Pre-vote: an election starts as a prospective round in the current epoch; only when a majority
  would vote does the replica bump the epoch. A voter that fetched from a live leader within the
  fetch timeout refuses pre-votes, so a rejoining replica cannot disrupt a healthy leader.
- A new leader announces itself with BeginQuorumEpoch. It appends a LEADER_CHANGE batch at its
  epoch start offset only when its log has a tail beyond its high watermark that other voters
  may hold differently: Raft commits such a tail only through an entry of the leader's own epoch.
  A log that is all committed (a new partition, a follower that was caught up) or a single
  voter's log (its fsync is the majority) needs no such entry, so the epoch's first record lands
  where Kafka puts it and an election burns no offset. The leader resigns when a majority has
  not fetched within 1.5 fetch timeouts (check-quorum), and `resign()` hands over with
  EndQuorumEpoch (most caught-up successor first). A replica restarted after leading starts
  resigned and sends EndQuorumEpoch until each voter answered: answers name a newer leader.
- Followers pull with Fetch(fetch offset, last fetched epoch). A follower fetches only once its
  log is fsynced to its end (`on_flushed`), so a fetch offset is a durable end offset and the
  leader counts it toward the high watermark. A fetch whose (offset, epoch) does not match the
  leader's log gets `DivergingEpoch` (the end of the largest epoch <= the one asked) and the
  follower truncates (never below its high watermark) and fetches again.
- High watermark = the largest offset a majority of voters have fsynced, only once it passes the
  leader's epoch start offset when it had to append LEADER_CHANGE, never decreasing. A
  follower's = min(leader's, own log end).
- Voters may carry directory ids (KIP-853's voter keys): a replica whose storage was wiped comes
  back with a new directory id, is then no voter (it neither votes nor campaigns, its fetches do not
  count) and can no longer forget a vote or an acknowledged record. Re-adding it is a reconfig.
- Protocol-aware recovery: a replica whose storage lost records it had fsynced (recovery found
  its log shorter than it had been) is impaired until it has fetched that range back from a
  leader: it neither grants votes nor stands for election, since with its short log it could help
  elect a leader that lacks committed records. Its fetch offsets stay honest, so they count.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from msgspec import Struct

from rafka.protocol.errors import ErrorCode
from rafka.replication.actions import (
    Action,
    AppendLeaderChange,
    AppendRecords,
    AppendVoters,
    HighWatermarkAdvanced,
    PersistQuorumState,
    ResetLog,
    RoleChanged,
    SendMessage,
    TruncateLog,
)
from rafka.replication.log import EndOffsetLog, RaftLog, VoterKeys
from rafka.replication.messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    DivergingEpoch,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    FetchRequest,
    FetchResponse,
    Message,
    VoteRequest,
    VoteResponse,
)
from rafka.replication.state import QuorumState, Role

__all__ = [
    "Action",
    "AppendLeaderChange",
    "AppendRecords",
    "AppendVoters",
    "HighWatermarkAdvanced",
    "PersistQuorumState",
    "QuorumState",
    "ResetLog",
    "RaftConfig",
    "RaftReplica",
    "RaftSafetyError",
    "Role",
    "RoleChanged",
    "SendMessage",
    "TruncateLog",
]

NONE = ErrorCode.none


_NO_VOTES: frozenset[int] = frozenset()
_VOTER_SETS: dict[tuple[tuple[int, str | None], ...], tuple[dict[int, str | None], frozenset[int]]]
_VOTER_SETS = {}


def _shared_voters(
    voter_dirs: dict[int, str | None],
) -> tuple[dict[int, str | None], frozenset[int]]:
    key = tuple(sorted(voter_dirs.items(), key=lambda item: item[0]))
    shared = _VOTER_SETS.get(key)
    if shared is None:
        shared = _VOTER_SETS[key] = (voter_dirs, frozenset(voter_dirs))
    return shared


# One generator for the replicas not given theirs: a Mersenne Twister is 2.5 KB, per partition.
_UNSEEDED = random.Random()

class RaftSafetyError(RuntimeError):
    """Going on would break a rule that protects committed data: a bug or a corrupted store."""


class RaftConfig(Struct, frozen=True):
    """Timers in ms, named and defaulted as Kafka's `quorum.*` settings."""

    election_timeout_ms: int = 1000  # quorum.election.timeout.ms (randomised up to twice this)
    election_backoff_max_ms: int = 1000  # quorum.election.backoff.max.ms
    fetch_timeout_ms: int = 2000  # quorum.fetch.timeout.ms
    request_timeout_ms: int = 2000  # quorum.request.timeout.ms
    retry_backoff_ms: int = 20  # quorum.retry.backoff.ms
    fetch_max_wait_ms: int = 500  # how long the leader holds a fetch that finds no new records
    # What a follower asks for per fetch (replica.fetch.max.bytes; KRaft's 8 MiB for the metadata
    # log): a size hint for RaftLog.read, bytes for a disk log.
    fetch_limit: int = 8 * 1024 * 1024
    pre_vote: bool = True

    @property
    def check_quorum_timeout_ms(self) -> int:
        return self.fetch_timeout_ms * 3 // 2


class VoterProgress(Struct):
    """What the leader knows of one voter in its epoch."""

    end_offset: int  # fsynced end offset known to match the leader's log
    last_contact_ms: int
    # When it last fetched up to the leader's log end: the in-sync test of replica.lag.time.max.ms.
    last_caught_up_ms: int = -1
    # The latest of our answers it is known to have received (FetchRequest.acknowledged_at).
    acknowledged_at: int = -1
    # Our log end and clock when its previous fetch came (Kafka's lastFetchLeaderLogEndOffset
    # and lastFetchTimeMs): reaching that end on the next fetch means it was caught up then.
    last_fetch_leader_end: int = -1
    last_fetch_ms: int = -1

    def caught_up_at(self) -> int | None:
        """None for -1: not caught up since it was taken out, or a new leader's predecessor;
        whatever the monotonic clock's origin, -1 must not read as a time."""
        return None if self.last_caught_up_ms < 0 else self.last_caught_up_ms

    def caught_up_within(self, now_ms: int, lag_ms: int) -> bool:
        caught_up = self.caught_up_at()
        return caught_up is not None and now_ms - caught_up <= lag_ms


class RaftReplica:
    # Slots: a node holds one replica per partition, tens of thousands of them.
    __slots__ = (
        "_acknowledged_at", "_awaiting_log", "_begin_pending", "_begin_resend_at",
        "_check_quorum_at", "_commit_floor", "_configured", "_election_deadline", "_fetch_deadline",
        "_fetch_in_flight", "_fetch_retry_at", "_fetch_sent_at", "_flushed_end", "_granted",
        "_last_leader", "_last_leader_contact", "_last_quorum_contact", "_leader_hw",
        "_leader_resigned",
        "_lost_end", "_majority", "_member", "_next_request_id", "_now", "_observers", "_others",
        "_parked", "_voters_offset",
        "_progress", "_read_barrier_at", "_rejected", "_rng", "_voter_dirs", "config",
        "directory_id", "eligible", "epoch_start_offset", "high_watermark", "leaving", "log",
        "node_id", "role", "state", "voters",
    )

    def __init__(
        self,
        node_id: int,
        voters: Iterable[int] | Mapping[int, str | None],
        state: QuorumState,
        log: RaftLog | int,
        high_watermark: int = 0,
        *,
        config: RaftConfig | None = None,
        rng: random.Random | None = None,
        now_ms: int = 0,
        directory_id: str | None = None,
        flushed_end_offset: int = 0,
        lost_end_offset: int = 0,
    ) -> None:
        """`voters` is a set of node ids, or {node id: directory id or None}. `log` is a RaftLog,
        or (single-voter compatibility) the log end offset, then kept up to date by
        `on_local_append`. `high_watermark` is a persisted (committed) value to start from and
        `flushed_end_offset` how much of the log is known to be fsynced. `lost_end_offset` is
        how far the log had been fsynced before storage lost its tail (0: nothing lost)."""
        voter_dirs = dict(voters) if isinstance(voters, Mapping) else dict.fromkeys(voters)
        if not voter_dirs:
            raise ValueError("a Raft group needs at least one voter")
        self.node_id = node_id
        self.directory_id = directory_id
        self.log: RaftLog = EndOffsetLog(log) if isinstance(log, int) else log
        # The voters the group was created with; a voters record in the log overrides them
        # (KIP-853: the newest one the log holds, committed or not).
        self._configured = voter_dirs
        self._voters_offset = -1
        self._set_voters(voter_dirs)
        latest = self.log.latest_voters()
        if latest is not None:
            self._voters_offset = latest[0]
            self._set_voters(dict(latest[1]))
        self.config = config or RaftConfig()
        # Not seeded by node id: every replica on a node would then draw the same election
        # timeouts and backoffs, and thousands of partitions would time out in the same tick.
        self._rng = rng or _UNSEEDED
        self.state = state
        self.high_watermark = high_watermark
        self.epoch_start_offset: int | None = None
        # The high watermark may advance only past this offset (the leader's own first entry
        # when an uncommitted tail needs it committed); None unless leader.
        self._commit_floor: int | None = None
        self._now = now_ms
        self._flushed_end = min(flushed_end_offset, self.log.end_offset)
        self._next_request_id = self._rng.randrange(1 << 30)
        # A lone voter has nobody to recover from: what it lost is lost.
        self._lost_end = lost_end_offset if self._others else 0
        # Whether this replica may stand for election (its broker cut off from the controller
        # may not: clients could not be told it leads). It still votes.
        self.eligible = True
        # Its broker is shutting down and has handed over: it neither stands nor votes. A vote
        # from it could elect a second leader over the one it just handed over to, when that
        # one's first fetches from the third replica come late (a busy node) and the third
        # replica campaigns.
        self.leaving = False

        # Per-role data, (re)set by _enter.
        self._election_deadline = 0
        # Immutable, replaced as votes come: most replicas never campaign, and an empty set
        # per replica is 216 bytes.
        self._granted: frozenset[int] = _NO_VOTES
        self._rejected: frozenset[int] = _NO_VOTES
        self._fetch_in_flight: int | None = None
        self._fetch_sent_at = 0
        self._fetch_retry_at = 0
        self._fetch_deadline = 0
        self._awaiting_log = False
        self._leader_hw = -1
        self._last_leader_contact = 0
        # When this replica last led or heard from a leader, across role changes (a candidate
        # has not lost touch for longer than since then); None: never since it started.
        self._last_quorum_contact: int | None = None
        self._leader_resigned = False
        # The last other node this one knew to lead: at an election, the one whose silence
        # (or resignation) caused it.
        self._last_leader: int | None = None
        self._progress: dict[int, VoterProgress] = {}
        # Voters yet to answer this replica's announcement: a leader's BeginQuorumEpoch, or the
        # EndQuorumEpoch of one restarted after leading; resent at _begin_resend_at.
        self._begin_pending: set[int] = set()
        self._begin_resend_at = 0
        self._check_quorum_at = 0
        self._parked: dict[int, tuple[FetchRequest, int]] = {}
        # Leader: replicas fetching that are no voters (added ones catching up, removed ones).
        self._observers: dict[int, VoterProgress] = {}
        self._acknowledged_at = -1  # follower: FetchRequest.acknowledged_at
        # Leader: a read barrier waiting for confirmation; fetches are not held meanwhile.
        self._read_barrier_at: int | None = None

        if state.leader_id == node_id and self._member:
            self.role = Role.RESIGNED  # restarted after leading this epoch: never lead it again
        elif state.leader_id is not None and state.leader_id != node_id:
            self.role = Role.FOLLOWER
            self._last_leader = state.leader_id
        else:
            self.role = Role.UNATTACHED
        self._reset_role_data()
        if self.role is Role.RESIGNED:
            # Tell the others at once, until each answered (Kafka's resigned state does): an
            # answer from a newer epoch names its leader, so clients asking this node learn it
            # now rather than after an election timeout; followers still waiting for this
            # leader elect another without a fetch timeout first.
            self._begin_pending = set(self._others)
            self._begin_resend_at = now_ms

    # -- views -----------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def leader_id(self) -> int | None:
        return self.state.leader_id

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def is_voter(self) -> bool:
        """Votes and stands for election: a voter key's replica that is not impaired."""
        return self._member and not self.impaired

    @property
    def impaired(self) -> bool:
        """Storage lost records this replica had fsynced, and it has not fetched them back."""
        if self._lost_end and self.log.end_offset >= self._lost_end:
            self._lost_end = 0  # caught up from a leader: a later truncation is Raft's own
        return self._lost_end > 0

    @property
    def flushed_end_offset(self) -> int:
        return self._flushed_end

    def has_read_lease(self, now_ms: int) -> bool:
        """Whether this leader may answer reads from its own state (a coordinator's committed
        offsets) with no newer leader possibly elected: a majority of voters, itself included,
        fetched within 3/4 of the fetch timeout. A voter refuses pre-votes for a fetch timeout
        after our last answer, and a candidate needs a majority of them; the quarter left is
        the allowance for a fetch's way here after the voter had our previous answer."""
        if self.role is not Role.LEADER:
            return False
        if not self._others:
            return True
        self._advance_clock(now_ms)
        since = self._now - self.config.fetch_timeout_ms * 3 // 4
        recent = sum(
            1
            for voter, progress in self._progress.items()
            if voter == self.node_id or progress.last_contact_ms > since
        )
        return recent >= self._majority

    def read_barrier(self, now_ms: int) -> tuple[int, list[Action]]:
        """Start confirming that this leader still leads (Raft's ReadIndex), for a read served
        from its own state: returns the barrier's time and the actions to carry out (held
        fetches are answered at once so that followers come back quickly). `read_confirmed`
        says when it holds. -1 if not leader."""
        if self.role is not Role.LEADER:
            return -1, []
        self._advance_clock(now_ms)
        barrier = self._now
        if not self._others:
            return barrier, []
        self._read_barrier_at = barrier
        actions: list[Action] = []
        for source, (request, _) in list(self._parked.items()):
            del self._parked[source]
            actions.append(self._fetch_reply(source, request))
        return barrier, actions

    def read_confirmed(self, barrier: int) -> bool:
        """Whether a majority of voters, this leader included, followed it after `barrier`:
        each has sent a fetch after receiving an answer given then or later. A newer leader
        needs a majority of votes in a higher epoch, and a voter that followed this epoch after
        `barrier` had not voted in a higher one before, so none was elected before `barrier`:
        the leader's state then held every committed write (no timing assumption, unlike a
        lease)."""
        if self.role is not Role.LEADER or barrier < 0:
            return False
        if not self._others:
            return True
        confirmed = (self.node_id in self.voters) + sum(
            1
            for voter, progress in self._progress.items()
            if voter != self.node_id and progress.acknowledged_at >= barrier
        )
        if confirmed >= self._majority:
            if self._read_barrier_at is not None and barrier >= self._read_barrier_at:
                self._read_barrier_at = None
            return True
        return False

    def voter_progress(self) -> dict[int, VoterProgress]:
        """The leader's view of each voter (DescribeQuorum); empty unless leader."""
        progress = self._progress
        now = self._now
        return {
            v: VoterProgress(
                p.end_offset, p.last_contact_ms, now if v == self.node_id else p.last_caught_up_ms
            )
            for v, p in progress.items()
        }

    def in_sync_voters(self, now_ms: int, lag_ms: int, silent_ms: int) -> list[int]:
        """As leader: itself and every voter that was caught up within `lag_ms` and heard from
        within `silent_ms` (see Partition.in_sync_replicas); empty unless leader. Metadata asks
        this of every partition, so a lone voter answers without building its progress."""
        if self.role is not Role.LEADER:
            return []
        if not self._others:
            return [self.node_id]
        return sorted(
            v
            for v, p in self._progress.items()
            if v == self.node_id
            or (
                p.caught_up_within(now_ms, lag_ms)
                and now_ms - p.last_contact_ms <= silent_ms
            )
        )

    def mark_out_of_sync(self, node_id: int) -> None:
        """`node_id` left (its broker fenced, e.g. by a controlled shutdown): it counts as in
        sync again only once it has caught up, as Kafka's controller takes it out of every ISR."""
        progress = self._progress.get(node_id)
        if progress is not None and node_id != self.node_id:
            progress.last_caught_up_ms = -1
            progress.last_fetch_leader_end = -1

    def observer_progress(self) -> dict[int, VoterProgress]:
        """The leader's view of the replicas fetching that are no voters; empty unless leader."""
        return {v: VoterProgress(p.end_offset, p.last_contact_ms, p.last_caught_up_ms)
                for v, p in self._observers.items()}

    # -- voter changes (KIP-853's rules, one voter at a time) ------------------------------------

    def can_change_voters(self) -> bool:
        """Whether this leader may propose a new voter set now: it has committed an entry of its
        own epoch (else a voter set appended by a deposed leader could still win an election
        against the one proposed here: the single-server-change bug Ongaro fixed this way) and
        the last voter change is committed (one change at a time: any two majorities of sets
        one voter apart overlap, of sets two apart not)."""
        if self.role is not Role.LEADER or self.epoch_start_offset is None:
            return False
        return (
            self.high_watermark > self.epoch_start_offset
            and self.high_watermark > self._voters_offset
        )

    def prepare_voter_change(self) -> list[Action]:
        """A leader with nothing of its own epoch in its log appends LEADER_CHANGE, so that
        once that commits it may change voters (see can_change_voters)."""
        if self.role is Role.LEADER and self.epoch_start_offset == self.log.end_offset:
            return [AppendLeaderChange(self.epoch, self.node_id, tuple(sorted(self.voters)))]
        return []

    def propose_voters(self, voters: VoterKeys) -> list[Action]:
        """As leader, append a voter set that adds or removes one voter other than itself (a
        leader hands over before it leaves: removing itself from two voters could leave the
        other, behind it, unable to win any vote if it stepped down before the change
        committed). Returns no actions when that cannot happen yet (see can_change_voters;
        prepare_voter_change is applied): the caller asks again later. A set that is not one
        voter away from the current one, or without this leader, is refused with ValueError."""
        new = dict(voters)
        current = self._voter_dirs
        # A voter whose directory changes is one removed and one added (KIP-853's voter keys).
        changes = len(set(new) ^ set(current))
        changes += 2 * sum(1 for v in set(new) & set(current) if new[v] != current[v])
        if not new or changes != 1:
            raise ValueError(
                f"a voter change adds or removes exactly one voter: {sorted(current)} -> "
                f"{sorted(new)}"
            )
        if self.node_id in current and self.node_id not in new:
            raise ValueError(f"leader {self.node_id} hands over before it leaves the voters")
        if self.role is not Role.LEADER:
            return []
        if not self.can_change_voters():
            return self.prepare_voter_change()
        return [AppendVoters(self.epoch, tuple(sorted(new.items())))]

    def _set_voters(self, voter_dirs: dict[int, str | None]) -> None:
        # Shared by every replica with the same voters (never mutated): thousands of partitions
        # have the same few voter sets.
        self._voter_dirs, self.voters = _shared_voters(voter_dirs)
        node_id = self.node_id
        self._others = tuple(sorted(v for v in self.voters if v != node_id))
        self._majority = len(self.voters) // 2 + 1
        self._member = node_id in voter_dirs and voter_dirs[node_id] in (None, self.directory_id)

    def _sync_voters(self) -> list[Action]:
        """Take the voter set of the log's newest voters record (appended or truncated away)."""
        latest = self.log.latest_voters()
        offset = -1 if latest is None else latest[0]
        if offset == self._voters_offset:
            return []
        self._voters_offset = offset
        self._set_voters(self._configured if latest is None else dict(latest[1]))
        if self.role is not Role.LEADER:
            return []
        now = self._now
        progress, observers = self._progress, self._observers
        for voter in [v for v in progress if v not in self.voters]:
            observers[voter] = progress.pop(voter)
        for voter in self.voters:
            if voter not in progress:
                # A new voter counts as in contact now, as every voter does at an election.
                known = observers.pop(voter, None)
                end = known.end_offset if known is not None else 0
                caught_up = known.last_caught_up_ms if known is not None else -1
                progress[voter] = VoterProgress(end, now, caught_up)
        self._begin_pending &= set(self._others)
        return self._maybe_advance_high_watermark()

    def _track_observer(self, source: int, request: FetchRequest) -> None:
        progress = self._observers.get(source)
        if progress is None:
            progress = self._observers[source] = VoterProgress(0, self._now, -1)
        progress.last_contact_ms = self._now
        # Its fetch offset is fsynced (a replica fetches only from its durable end).
        progress.end_offset = min(request.fetch_offset, self.log.end_offset)
        if request.fetch_offset >= self.log.end_offset:
            progress.last_caught_up_ms = self._now

    def next_deadline(self) -> int | None:
        """When `tick` next has something to do (None: nothing until another event)."""
        role = self.role
        if role is Role.LEADER:
            if self._removed_and_committed():
                return self._now
            times = [deadline for _, deadline in self._parked.values()]
            if self._others:
                times += (self._check_quorum_at, self._begin_resend_at)
            return min(times) if times else None
        if role is Role.FOLLOWER:
            deadline = self._fetch_deadline
            if self._can_fetch():
                return self._now
            if self._fetch_in_flight is not None:
                deadline = min(deadline, self._fetch_sent_at + self.config.request_timeout_ms)
            elif self._fetch_retry_at > self._now:
                deadline = min(deadline, self._fetch_retry_at)
            return deadline
        if role is Role.RESIGNED and self._begin_pending:
            return min(self._election_deadline, self._begin_resend_at)
        return self._election_deadline

    # -- events ----------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[Action]:
        self._advance_clock(now_ms)
        now = self._now
        role = self.role
        if role is Role.LEADER:
            return self._leader_tick()
        if role is Role.FOLLOWER:
            if now >= self._fetch_deadline:
                return self._on_fetch_timeout()
            if (
                self._fetch_in_flight is not None
                and now >= self._fetch_sent_at + self.config.request_timeout_ms
            ):
                self._fetch_in_flight = None  # lost; ask again
            return self._maybe_fetch()
        if now >= self._election_deadline:
            return self._on_election_timeout()
        if role is Role.RESIGNED and self._begin_pending and now >= self._begin_resend_at:
            return self._announce_resignation()
        return []

    def on_message(self, source: int, message: Message, now_ms: int | None = None) -> list[Action]:
        if now_ms is not None:
            self._advance_clock(now_ms)
        handler: Callable[[int, Any], list[Action]] = getattr(self, _HANDLERS[type(message)])
        return handler(source, message)

    def on_local_append(self, log_end_offset: int) -> list[Action]:
        """The log grew to `log_end_offset` (a leader's append, the leader-change batch, or a
        follower's AppendRecords). Not yet fsynced: `on_flushed` says when it is."""
        log = self.log
        if isinstance(log, EndOffsetLog):
            log.update(log_end_offset, self.epoch if self.role is Role.LEADER else 0)
        self._awaiting_log = False
        actions = self._sync_voters()
        if self.role is Role.LEADER:
            return (
                actions
                + self._refresh_own_progress()
                + self._complete_parked(only_with_data=True)
            )
        if self.role is Role.FOLLOWER:
            return actions + self._advance_follower_high_watermark() + self._maybe_fetch()
        return actions

    def on_fetch_failed(self, request_id: int, now_ms: int | None = None) -> list[Action]:
        """Our fetch got no answer (refused, reset, timed out). Unlike any answer it proves
        nothing of the leader: no contact, no change of role (a prospective replica keeps its
        pre-vote going); the fetch is retried after the backoff."""
        if now_ms is not None:
            self._advance_clock(now_ms)
        if self.role is Role.FOLLOWER and request_id == self._fetch_in_flight:
            self._fetch_in_flight = None
            self._fetch_retry_at = self._now + self.config.retry_backoff_ms
        return []

    def on_truncated(self, log_end_offset: int) -> list[Action]:
        """The log was truncated to `log_end_offset` as a TruncateLog asked."""
        if log_end_offset < self.high_watermark:
            raise RaftSafetyError(
                f"log truncated to {log_end_offset}, below the high watermark {self.high_watermark}"
            )
        self._awaiting_log = False
        self._flushed_end = min(self._flushed_end, log_end_offset)
        return self._sync_voters() + self._maybe_fetch()

    def on_log_reset(self, start_offset: int) -> list[Action]:
        """The log was restarted empty at `start_offset` as a ResetLog asked: everything below
        is committed (the leader deleted it), so that is our high watermark; the empty log is
        durable at its start."""
        self._awaiting_log = False
        self._flushed_end = start_offset
        actions = self._sync_voters()
        if start_offset > self.high_watermark:
            self.high_watermark = start_offset
            actions.append(HighWatermarkAdvanced(start_offset))
        return actions + self._maybe_fetch()

    def on_flushed(self, voter_id: int, flushed_end_offset: int) -> list[Action]:
        """`voter_id` has fsynced its log up to (excluding) `flushed_end_offset`. This node's
        own flushes come here; other voters' come with their fetches (this path remains for a
        caller that learns them otherwise)."""
        if voter_id != self.node_id:
            progress = self._progress.get(voter_id)
            if self.role is not Role.LEADER or progress is None:
                return []
            end = min(flushed_end_offset, self.log.end_offset)
            if end <= progress.end_offset:
                return []
            progress.end_offset = end
            return self._maybe_advance_high_watermark()
        end = min(flushed_end_offset, self.log.end_offset)
        held = self._flushed_end <= self._voters_offset < end  # a voters record now servable
        if end > self._flushed_end:
            self._flushed_end = end
        if self.role is Role.LEADER:
            released = self._complete_parked(only_with_data=True) if held else []
            return self._refresh_own_progress() + released
        return self._maybe_fetch()

    def start_election(self) -> list[Action]:
        """Become a candidate in the next epoch now, skipping pre-vote (a single voter starting,
        or an operator's request). A one-voter group wins at once."""
        if not self.is_voter or not self.eligible or self.leaving:
            return []
        return self._start_candidate()

    def on_vote_granted(self, voter_id: int, epoch: int) -> list[Action]:
        return self._on_vote_response(voter_id, VoteResponse(epoch, None, True))

    def resign(self, preferred: int | None = None) -> list[Action]:
        """Graceful shutdown of a leader: stop accepting writes and hand leadership over, to
        `preferred` first when given (a preferred-leader election), else the most caught up."""
        if self.role is not Role.LEADER:
            return []
        successors = tuple(
            sorted(
                self._others,
                key=lambda v: (v != preferred, -self._progress[v].end_offset, v),
            )
        )
        epoch = self.epoch
        actions = self._enter(Role.RESIGNED, self.state)
        request = EndQuorumEpochRequest(epoch, self.node_id, successors)
        actions += [SendMessage(v, request) for v in successors]
        return actions

    # -- role transitions ------------------------------------------------------------------------

    def _enter(self, role: Role, state: QuorumState) -> list[Action]:
        """Switch role; the persisted state first, then whatever depends on it."""
        actions: list[Action] = []
        before = (self.role, self.state.epoch, self.state.leader_id)
        parked = self._parked if self.role is Role.LEADER and role is not Role.LEADER else {}
        if self.role is Role.LEADER:
            self._last_quorum_contact = self._now  # it led until now
        elif self.state.leader_id is not None and self.state.leader_id != self.node_id:
            self._last_leader = self.state.leader_id
        if state != self.state:
            self.state = state
            actions.append(PersistQuorumState(state))
        self.role = role
        self._reset_role_data()
        if (role, state.epoch, state.leader_id) != before:
            actions.append(RoleChanged(role, state.epoch, state.leader_id))
        for source, (request, _) in parked.items():
            actions.append(self._fetch_error(source, request, ErrorCode.not_leader_or_follower))
        return actions

    def _reset_role_data(self) -> None:
        now = self._now
        self._election_deadline = now + self._random_election_timeout()
        self._granted = _NO_VOTES
        self._rejected = _NO_VOTES
        self._fetch_in_flight = None
        self._fetch_retry_at = 0
        self._fetch_deadline = now + self.config.fetch_timeout_ms
        self._awaiting_log = False
        self._leader_hw = -1
        self._last_leader_contact = -self.config.fetch_timeout_ms  # not heard from it yet
        self._leader_resigned = False
        self._parked = {}
        self._acknowledged_at = -1
        self._read_barrier_at = None
        if self.role is Role.LEADER:
            # Every voter counts as caught up until a lag window passes without it (Kafka's ISR),
            # but the previous leader: it went silent (an election) or is stopping (a handover)
            # and, while the others commit without it, it is in sync only once it fetched all
            # (Kafka's controller fences a silent leader and takes a stopping one out of the ISR
            # before it elects another).
            last = self._last_leader
            self._progress = {
                v: VoterProgress(0, now, -1 if v == last else now) for v in self.voters
            }
            self._observers = {}
            self._begin_pending = set(self._others)
            self._begin_resend_at = self._resend_time(now)
            self._check_quorum_at = now + self.config.check_quorum_timeout_ms
        else:
            self._progress = {}
            self._observers = {}
            self._begin_pending = set()
            self.epoch_start_offset = None
            self._commit_floor = None

    def _become_unattached(self, epoch: int) -> list[Action]:
        return self._enter(Role.UNATTACHED, QuorumState(epoch, None, None))

    def _become_follower(self, epoch: int, leader_id: int, voted_for: int | None) -> list[Action]:
        actions = self._enter(Role.FOLLOWER, QuorumState(epoch, voted_for, leader_id))
        return actions + self._maybe_fetch()

    def _start_prospective(self) -> list[Action]:
        if not self.config.pre_vote:
            return self._start_candidate()
        actions = self._enter(Role.PROSPECTIVE, self.state)
        self._granted = frozenset({self.node_id})
        if self._has_majority(self._granted):
            return actions + self._start_candidate()
        for voter in self._others:
            actions.append(SendMessage(voter, self._vote_request(voter, pre_vote=True)))
        leader = self.state.leader_id
        if leader is not None and leader != self.node_id:
            # Ask the leader too (KIP-996): an answer from it sends us back to following. A
            # leader that no longer counts us a voter (its log removed us; ours does not know
            # yet) neither announces itself to us nor votes: we would pre-vote forever.
            actions.append(SendMessage(leader, self._fetch_request(max_wait_ms=0)))
        return actions

    def _start_candidate(self) -> list[Action]:
        state = QuorumState(self.epoch + 1, self.node_id, None)
        actions = self._enter(Role.CANDIDATE, state)
        self._granted = frozenset({self.node_id})
        if self._has_majority(self._granted):
            return actions + self._become_leader()
        for voter in self._others:
            actions.append(SendMessage(voter, self._vote_request(voter, pre_vote=False)))
        return actions

    def _become_leader(self) -> list[Action]:
        state = QuorumState(self.epoch, self.state.voted_for, self.node_id)
        actions = self._enter(Role.LEADER, state)
        end = self.log.end_offset
        self.epoch_start_offset = end
        self._progress[self.node_id].end_offset = self._own_durable_end()
        if self._others and end > self.high_watermark:
            # Entries of earlier epochs past the high watermark may be held differently by
            # other voters; they commit only with one of this epoch (Raft's Figure 8).
            self._commit_floor = end
            actions.append(
                AppendLeaderChange(self.epoch, self.node_id, tuple(sorted(self.voters)))
            )
        else:
            self._commit_floor = self.high_watermark
            actions += self._maybe_advance_high_watermark()  # a single voter's fsynced tail
        begin = BeginQuorumEpochRequest(self.epoch, self.node_id)
        actions += [SendMessage(v, begin) for v in self._others]
        return actions

    def _observe(self, source: int, epoch: int, leader_id: int | None) -> list[Action] | None:
        """Learn of an epoch and maybe its leader from any message from `source`. Returns the
        transition's actions, or None if nothing changed."""
        if epoch > self.epoch:
            if leader_id is not None and leader_id != self.node_id:
                return self._become_follower(epoch, leader_id, None)
            return self._become_unattached(epoch)
        if epoch < self.epoch or leader_id is None or leader_id == self.node_id:
            return None
        known = self.state.leader_id
        if known == leader_id:
            if self.role is Role.FOLLOWER or source != leader_id:
                return None
            # A prospective hearing from its leader goes back to it (KIP-996). Others naming that
            # leader prove nothing: they may not have noticed yet that it is gone.
            return self._become_follower(epoch, leader_id, self.state.voted_for)
        if known is not None or self.role in (Role.LEADER, Role.RESIGNED):
            raise RaftSafetyError(
                f"node {self.node_id}: leader {leader_id} announced in epoch {epoch}, "
                f"which has leader {known}"
            )
        return self._become_follower(epoch, leader_id, self.state.voted_for)

    # -- timers ----------------------------------------------------------------------------------

    def _on_election_timeout(self) -> list[Action]:
        if not self.is_voter or not self.eligible or self.leaving:
            return self._discover()
        return self._start_prospective()

    def _on_fetch_timeout(self) -> list[Action]:
        if not self.is_voter or not self.eligible or self.leaving:
            self._fetch_deadline = self._now + self.config.fetch_timeout_ms
            self._fetch_in_flight = None
            return self._discover() + self._maybe_fetch()
        return self._start_prospective()

    def _discover(self) -> list[Action]:
        """An observer without a live leader asks a random voter (its answer names the leader)."""
        self._election_deadline = self._now + self._random_election_timeout()
        candidates = [v for v in sorted(self.voters) if v != self.node_id]
        if not candidates:
            return []
        target = self._rng.choice(candidates)
        return [SendMessage(target, self._fetch_request(max_wait_ms=0))]

    def _removed_and_committed(self) -> bool:
        """This leader is no voter and the voter set without it is committed: it hands over
        (Raft's rule), on its next tick."""
        return self.node_id not in self.voters and self.high_watermark > self._voters_offset

    def _leader_tick(self) -> list[Action]:
        if self._removed_and_committed():
            return self.resign()
        now = self._now
        actions: list[Action] = []
        expired = [s for s, (_, deadline) in self._parked.items() if deadline <= now]
        for source in expired:
            request, _ = self._parked.pop(source)
            actions.append(self._fetch_reply(source, request))
        if self._others and now >= self._begin_resend_at:
            # Announce again to voters that never answered, and to those silent for a fetch
            # timeout: one stuck in a higher epoch (a lost election) answers with that epoch,
            # and this leader steps down so that the group can move past it.
            silent_since = now - self.config.fetch_timeout_ms
            targets = [
                v
                for v in self._others
                if v in self._begin_pending or self._progress[v].last_contact_ms <= silent_since
            ]
            begin = BeginQuorumEpochRequest(self.epoch, self.node_id)
            actions += [SendMessage(v, begin) for v in targets]
            self._begin_resend_at = self._resend_time(now)
        if self._others and now >= self._check_quorum_at:
            window = self.config.check_quorum_timeout_ms
            contacts = sorted(
                (p.last_contact_ms for v, p in self._progress.items() if v != self.node_id),
                reverse=True,
            )
            # Besides itself (while a voter) the leader needs the rest of a majority heard from
            # within the window.
            latest_needed = contacts[self._majority - 1 - (self.node_id in self.voters)]
            if now - latest_needed >= window:
                return actions + self.resign()
            self._check_quorum_at = latest_needed + window
        return actions

    # -- votes -----------------------------------------------------------------------------------

    def _vote_request(self, voter: int, *, pre_vote: bool) -> VoteRequest:
        return VoteRequest(
            epoch=self.epoch + 1 if pre_vote else self.epoch,
            candidate_id=self.node_id,
            last_epoch=self.log.last_epoch,
            end_offset=self.log.end_offset,
            pre_vote=pre_vote,
            candidate_directory_id=self.directory_id,
            voter_directory_id=self._voter_dirs.get(voter),
        )

    def _on_vote_request(self, source: int, request: VoteRequest) -> list[Action]:
        def reply(granted: bool, error: ErrorCode = NONE) -> SendMessage:
            response = VoteResponse(self.epoch, self._advertised_leader(), granted, pre_vote, error)
            return SendMessage(source, response)

        pre_vote = request.pre_vote
        # A candidate we do not count among the voters may hold a newer voter set than ours
        # (KIP-853): refused only if we know its id with another directory (wiped storage). A
        # request naming another directory of ours is for the replica we were before a wipe.
        candidate = request.candidate_id
        if (
            (candidate in self._voter_dirs
             and not self._is_voter_key(candidate, request.candidate_directory_id))
            or request.voter_directory_id not in (None, self.directory_id)
            or (self.node_id in self._voter_dirs and not self._member)
        ):
            return [reply(False, ErrorCode.inconsistent_voter_set)]
        if request.last_epoch < 0 or request.end_offset < 0 or request.last_epoch >= request.epoch:
            return [reply(False, ErrorCode.invalid_request)]
        if request.epoch < self.epoch:
            return [reply(False, ErrorCode.fenced_leader_epoch)]
        if self.leaving:  # refusing is always safe; the other two replicas elect alone
            return [reply(False)]
        if pre_vote:
            # Never changes our state: it only asks whether we would vote.
            return [reply(self._would_grant_pre_vote(request))]
        actions: list[Action] = []
        if request.epoch > self.epoch:
            actions += self._become_unattached(request.epoch)
        if not self._can_grant_vote(request):
            return [*actions, reply(False)]
        if self.state.voted_for != request.candidate_id:
            # Persisted before the response below is sent: a restart cannot vote twice.
            vote = QuorumState(self.epoch, request.candidate_id, None)
            actions += self._enter(Role.UNATTACHED, vote)
        return [*actions, reply(True)]

    def _can_grant_vote(self, request: VoteRequest) -> bool:
        state = self.state
        if state.voted_for is not None:
            return state.voted_for == request.candidate_id
        if state.leader_id is not None or self.role not in (Role.UNATTACHED, Role.PROSPECTIVE):
            return False
        return self._log_is_up_to_date(request.last_epoch, request.end_offset)

    def _would_grant_pre_vote(self, request: VoteRequest) -> bool:
        if self.role is Role.LEADER:
            return False
        if self.role is Role.FOLLOWER and self._leader_is_alive():
            return False
        return self._log_is_up_to_date(request.last_epoch, request.end_offset)

    def _log_is_up_to_date(self, last_epoch: int, end_offset: int) -> bool:
        """The candidate's log is at least as complete as ours (Raft's election restriction).
        An impaired replica cannot tell: its log is shorter than what it had acknowledged."""
        if self.impaired:
            return False
        return (last_epoch, end_offset) >= (self.log.last_epoch, self.log.end_offset)

    def _on_vote_response(self, source: int, response: VoteResponse) -> list[Action]:
        observed = self._observe(source, response.epoch, response.leader_id)
        if observed is not None:
            return observed
        role = self.role
        if response.pre_vote:
            # A voter behind us may still grant a pre-vote; its epoch is then below ours.
            if role is not Role.PROSPECTIVE or response.epoch > self.epoch:
                return []
        elif role is not Role.CANDIDATE or response.epoch != self.epoch:
            return []
        if source not in self.voters or source == self.node_id:
            return []
        if response.granted:
            self._granted = self._granted | {source}
            self._rejected = self._rejected - {source}
        else:
            self._rejected = self._rejected | {source}
        if self._has_majority(self._granted):
            return self._start_candidate() if role is Role.PROSPECTIVE else self._become_leader()
        if len(self.voters) - len(self._rejected) < self._majority:
            # Lost this round: retry after a random backoff rather than the full timeout.
            backoff = 1 + self._rng.randrange(max(self.config.election_backoff_max_ms, 1))
            self._election_deadline = min(self._election_deadline, self._now + backoff)
        return []

    # -- leader announcements --------------------------------------------------------------------

    def _on_begin_quorum_epoch(self, source: int, request: BeginQuorumEpochRequest) -> list[Action]:
        if request.epoch < self.epoch:
            error = ErrorCode.fenced_leader_epoch
            return [SendMessage(source, self._begin_response(error))]
        actions = self._observe(source, request.epoch, request.leader_id) or []
        if self.role is Role.FOLLOWER and self.state.leader_id == source:
            self._last_leader_contact = self._last_quorum_contact = self._now
        actions.append(SendMessage(source, self._begin_response(NONE)))
        return actions

    def _begin_response(self, error: ErrorCode) -> BeginQuorumEpochResponse:
        return BeginQuorumEpochResponse(self.epoch, self._advertised_leader(), error)

    def _on_begin_quorum_epoch_response(
        self, source: int, response: BeginQuorumEpochResponse
    ) -> list[Action]:
        observed = self._observe(source, response.epoch, response.leader_id)
        if observed is not None:
            return observed
        if self.role is Role.LEADER and response.epoch == self.epoch and response.error is NONE:
            self._begin_pending.discard(source)
        return []

    def _on_end_quorum_epoch(self, source: int, request: EndQuorumEpochRequest) -> list[Action]:
        if request.epoch < self.epoch:
            error = ErrorCode.fenced_leader_epoch
            return [SendMessage(source, self._end_response(error))]
        if (
            self.role is Role.PROSPECTIVE
            and self.epoch == request.epoch
            and self.state.leader_id == request.leader_id
        ):
            # Already campaigning because that leader went silent (a restarted leader says it
            # resigned): going back to follow it would only delay the election.
            return [SendMessage(source, self._end_response(NONE))]
        actions = self._observe(source, request.epoch, request.leader_id) or []
        if (
            self.role is Role.FOLLOWER
            and self.epoch == request.epoch
            and self.state.leader_id == request.leader_id
        ):
            self._leader_resigned = True
            backoff = self._successor_backoff(request.preferred_successors)
            self._fetch_deadline = min(self._fetch_deadline, self._now + backoff)
        actions.append(SendMessage(source, self._end_response(NONE)))
        return actions

    def _end_response(self, error: ErrorCode) -> EndQuorumEpochResponse:
        return EndQuorumEpochResponse(self.epoch, self._advertised_leader(), error)

    def _on_end_quorum_epoch_response(
        self, source: int, response: EndQuorumEpochResponse
    ) -> list[Action]:
        observed = self._observe(source, response.epoch, response.leader_id)
        if observed is not None:
            return observed
        if self.role is Role.RESIGNED and response.epoch == self.epoch:
            self._begin_pending.discard(source)
        return []

    def _announce_resignation(self) -> list[Action]:
        """A replica restarted after leading: EndQuorumEpoch to the voters yet to answer."""
        self._begin_resend_at = self._resend_time(self._now)
        request = EndQuorumEpochRequest(self.epoch, self.node_id, ())
        return [SendMessage(v, request) for v in sorted(self._begin_pending)]

    def _successor_backoff(self, successors: tuple[int, ...]) -> int:
        """The first preferred successor campaigns at once, the next ones after exponentially
        longer waits (as Kafka does), so the most caught-up voter most likely wins."""
        if self.node_id not in successors:
            return self.config.election_backoff_max_ms
        position = successors.index(self.node_id)
        if position == 0:
            return 0
        cap = self.config.election_backoff_max_ms
        return min(cap, (cap >> (len(successors) - 1)) << (position - 1))

    # -- fetch: leader side ----------------------------------------------------------------------

    def _on_fetch_request(self, source: int, request: FetchRequest) -> list[Action]:
        if self.role is not Role.LEADER or request.epoch != self.epoch:
            if request.epoch < self.epoch:
                error = ErrorCode.fenced_leader_epoch
            elif request.epoch > self.epoch:
                error = ErrorCode.unknown_leader_epoch
            else:
                error = ErrorCode.not_leader_or_follower
            return [self._fetch_error(source, request, error)]
        if (
            request.fetch_offset < 0
            or request.last_fetched_epoch < 0
            or request.last_fetched_epoch > request.epoch
        ):
            return [self._fetch_error(source, request, ErrorCode.invalid_request)]
        progress = None
        if self._is_voter_key(source, request.replica_directory_id):
            progress = self._progress.get(source)
        if progress is not None:
            now = self._now
            if request.acknowledged_at < 0 <= progress.acknowledged_at:
                # A new connection: a restarted follower (or one cut off) is in sync again only
                # once it has fetched what it missed, not because it was before.
                progress.last_caught_up_ms = -1
                progress.last_fetch_leader_end = -1
            progress.last_contact_ms = now
            progress.acknowledged_at = max(progress.acknowledged_at, request.acknowledged_at)
            self._begin_pending.discard(source)
            end = self.log.end_offset
            if request.fetch_offset >= end:
                progress.last_caught_up_ms = now
            elif 0 <= progress.last_fetch_leader_end <= request.fetch_offset:
                # Under steady writes a follower never fetches at our very end: it reached the
                # end we had at its previous fetch, so it was caught up then (Kafka's rule).
                progress.last_caught_up_ms = max(progress.last_caught_up_ms, progress.last_fetch_ms)
            progress.last_fetch_leader_end = end
            progress.last_fetch_ms = now
        self._parked.pop(source, None)
        start = self.log.start_offset
        if request.fetch_offset < start:
            # Retention deleted what it asks for (committed, below our high watermark): it
            # starts its log afresh at ours (Kafka's OFFSET_OUT_OF_RANGE for a follower).
            return [self._fetch_reply(source, request, log_start_offset=start)]
        epoch, end = self.log.end_offset_for_epoch(request.last_fetched_epoch)
        if epoch != request.last_fetched_epoch or request.fetch_offset > end:
            diverging = DivergingEpoch(epoch, end)
            return [self._fetch_reply(source, request, diverging=diverging)]
        if progress is None and source not in self._voter_dirs:
            # Only once its log is known to match ours: it may count as a voter soon.
            self._track_observer(source, request)
        actions: list[Action] = []
        if progress is not None and request.fetch_offset > progress.end_offset:
            progress.end_offset = request.fetch_offset
            actions = self._maybe_advance_high_watermark()
        # A read barrier waiting for this voter: answer now, so that it fetches again at once.
        barrier = self._read_barrier_at
        awaited = barrier is not None and request.acknowledged_at < barrier
        idle = request.max_wait_ms > 0 and request.fetch_offset >= self._servable_end(request)
        if not actions and not awaited and idle:
            # Nothing new: hold the fetch until records arrive, the HW moves, or max wait passes;
            # at most half a fetch timeout, so that idle followers renew the read lease.
            hold = min(request.max_wait_ms, self.config.fetch_timeout_ms // 2)
            self._parked[source] = (request, self._now + hold)
            return actions
        actions.append(self._fetch_reply(source, request))
        return actions

    def release_parked_fetch(self, source: int) -> list[Action]:
        """Answer `source`'s held fetch now, as it stands: the wire request that carried it is
        being answered for another partition of the same request."""
        entry = self._parked.pop(source, None)
        if entry is None or self.role is not Role.LEADER:
            return []
        return [self._fetch_reply(source, entry[0])]

    def _fetch_reply(
        self,
        source: int,
        request: FetchRequest,
        diverging: DivergingEpoch | None = None,
        log_start_offset: int = -1,
    ) -> SendMessage:
        """The answer to a fetch: records from its offset, or where our log diverges from its,
        or (`log_start_offset`) that it asked below our log start."""
        records: Any = ()
        below_start = log_start_offset >= 0
        end = self._servable_end(request)
        if diverging is None and not below_start and request.fetch_offset < end:
            limit = request.max_bytes if request.max_bytes >= 0 else self.config.fetch_limit
            records = self.log.read(request.fetch_offset, limit, end)
        response = FetchResponse(
            epoch=self.epoch,
            leader_id=self.node_id,
            request_id=request.request_id,
            fetch_offset=request.fetch_offset,
            high_watermark=self.high_watermark,
            records=records,
            diverging_epoch=diverging,
            error=ErrorCode.offset_out_of_range if below_start else NONE,
            sent_at=self._now,
            log_start_offset=log_start_offset,
        )
        return SendMessage(source, response)

    def _fetch_error(self, source: int, request: FetchRequest, error: ErrorCode) -> SendMessage:
        response = FetchResponse(
            epoch=self.epoch,
            leader_id=self._advertised_leader(),
            request_id=request.request_id,
            fetch_offset=request.fetch_offset,
            error=error,
        )
        return SendMessage(source, response)

    def _complete_parked(self, *, only_with_data: bool) -> list[Action]:
        if not self._parked:
            return []
        actions: list[Action] = []
        for source, (request, _) in list(self._parked.items()):
            if only_with_data and request.fetch_offset >= self._servable_end(request):
                continue
            del self._parked[source]
            actions.append(self._fetch_reply(source, request))
        return actions

    def _servable_end(self, request: FetchRequest) -> int:
        """Where a follower's fetch may read up to: the log end, except that the newest voters
        record is served only once this leader has fsynced it. Then whoever holds a voter set
        durably, the leader holds it too: otherwise a follower removed from two voters could
        keep the only copy after the leader lost its unsynced tail in a crash, count itself
        out, and the leader, behind it, could never win its vote."""
        voters_at = self._voters_offset
        if request.fetch_offset <= voters_at and voters_at >= self._flushed_end:
            return voters_at
        return self.log.end_offset

    def _own_durable_end(self) -> int:
        """How far this node's own log counts toward the high watermark: what it fsynced."""
        return self._flushed_end

    def _refresh_own_progress(self) -> list[Action]:
        own = self._progress.get(self.node_id)
        if own is None:
            return []  # a leader removed from the voters: its log no longer counts
        end = self._own_durable_end()
        if end <= own.end_offset:
            return []
        own.end_offset = end
        return self._maybe_advance_high_watermark()

    def _maybe_advance_high_watermark(self) -> list[Action]:
        ends = sorted((p.end_offset for p in self._progress.values()), reverse=True)
        committed = ends[self._majority - 1]
        floor = self._commit_floor
        if floor is None or committed <= floor or committed <= self.high_watermark:
            return []
        self.high_watermark = committed
        return [HighWatermarkAdvanced(committed), *self._complete_parked(only_with_data=False)]

    # -- fetch: follower side --------------------------------------------------------------------

    def _fetch_request(self, max_wait_ms: int) -> FetchRequest:
        self._next_request_id += 1
        return FetchRequest(
            epoch=self.epoch,
            replica_id=self.node_id,
            fetch_offset=self.log.end_offset,
            last_fetched_epoch=self.log.last_epoch,
            max_wait_ms=max_wait_ms,
            request_id=self._next_request_id,
            replica_directory_id=self.directory_id,
            acknowledged_at=self._acknowledged_at,
            max_bytes=self.config.fetch_limit,
        )

    def _can_fetch(self) -> bool:
        return (
            self.role is Role.FOLLOWER
            and self.state.leader_id is not None
            and self._fetch_in_flight is None
            and not self._awaiting_log
            and self._now >= self._fetch_retry_at
            and self._flushed_end >= self.log.end_offset  # fetch offset = durable end offset
        )

    def _maybe_fetch(self) -> list[Action]:
        leader = self.state.leader_id
        if leader is None or not self._can_fetch():
            return []
        request = self._fetch_request(self.config.fetch_max_wait_ms)
        self._fetch_in_flight = request.request_id
        self._fetch_sent_at = self._now
        return [SendMessage(leader, request)]

    def _on_fetch_response(self, source: int, response: FetchResponse) -> list[Action]:
        observed = self._observe(source, response.epoch, response.leader_id)
        if observed is not None:
            return observed
        if source == self.state.leader_id and response.epoch == self.epoch:
            self._acknowledged_at = max(self._acknowledged_at, response.sent_at)
        if (
            self.role is not Role.FOLLOWER
            or source != self.state.leader_id
            or response.epoch != self.epoch
            or response.request_id != self._fetch_in_flight
        ):
            return []
        self._fetch_in_flight = None
        now = self._now
        if (
            response.error is ErrorCode.offset_out_of_range
            and response.log_start_offset > self.log.end_offset
        ):
            # Our whole log lies below the leader's start: all of it committed, what the leader
            # holds from there on is what we lack. Restart the log there.
            self._fetch_deadline = now + self.config.fetch_timeout_ms
            self._last_leader_contact = self._last_quorum_contact = now
            self._awaiting_log = True
            return [ResetLog(response.log_start_offset)]
        if response.error is not NONE:
            self._fetch_retry_at = now + self.config.retry_backoff_ms
            return []
        self._fetch_deadline = now + self.config.fetch_timeout_ms
        self._last_leader_contact = self._last_quorum_contact = now
        self._leader_resigned = False
        diverging = response.diverging_epoch
        if diverging is not None:
            # Truncate to where our log and the leader's agree at best, then fetch again.
            _, own_end = self.log.end_offset_for_epoch(diverging.epoch)
            target = min(diverging.end_offset, own_end, self.log.end_offset)
            if target < self.high_watermark:
                raise RaftSafetyError(
                    f"node {self.node_id}: leader {source} asks to truncate to {target}, "
                    f"below the high watermark {self.high_watermark}"
                )
            self._awaiting_log = True
            return [TruncateLog(target)]
        if response.fetch_offset != self.log.end_offset:
            return self._maybe_fetch()
        self._leader_hw = response.high_watermark
        if len(response.records):
            self._awaiting_log = True
            return [AppendRecords(response.records)]
        return self._advance_follower_high_watermark() + self._maybe_fetch()

    def _advance_follower_high_watermark(self) -> list[Action]:
        high_watermark = min(self._leader_hw, self.log.end_offset)
        if high_watermark <= self.high_watermark:
            return []
        self.high_watermark = high_watermark
        return [HighWatermarkAdvanced(high_watermark)]

    def heard_from_leader_within(self, window_ms: int, now_ms: int) -> bool:
        """Leads, or led or had an answer from a leader (of any epoch) within `window_ms`: an
        election in progress is no loss of touch until the window has passed."""
        if self.role is Role.LEADER:
            return True
        self._advance_clock(now_ms)
        contact = self._last_quorum_contact
        return contact is not None and self._now - contact < window_ms

    def _leader_is_alive(self) -> bool:
        recent = self._now - self._last_leader_contact < self.config.fetch_timeout_ms
        return recent and not self._leader_resigned

    # -- helpers ---------------------------------------------------------------------------------

    def _advertised_leader(self) -> int | None:
        """The leader we name in responses; never ourselves unless we lead."""
        leader = self.state.leader_id
        if leader == self.node_id and self.role is not Role.LEADER:
            return None
        return leader

    def _is_voter_key(self, node_id: int, directory_id: str | None) -> bool:
        if node_id not in self._voter_dirs:
            return False
        expected = self._voter_dirs[node_id]
        return expected is None or expected == directory_id

    def _has_majority(self, nodes: set[int]) -> bool:
        return len(nodes & self.voters) * 2 > len(self.voters)

    def _resend_time(self, now: int) -> int:
        """A request timeout from now, rounded up to a grid of a quarter of it: the leaders of a
        node's many groups, elected a few ms apart, then resend BeginQuorumEpoch to a silent voter
        on the same tick, and the broker carries them in one request instead of one per group.
        Each node's grid has its own phase: nodes resending in lockstep would hide orderings
        (the simulator stopped finding an injected voting bug with one grid for all)."""
        step = max(self.config.request_timeout_ms // 4, 1)
        phase = self.node_id * 7 % step
        return -(-(now + self.config.request_timeout_ms - phase) // step) * step + phase

    def _random_election_timeout(self) -> int:
        timeout = max(self.config.election_timeout_ms, 1)
        return timeout + self._rng.randrange(timeout)

    def _advance_clock(self, now_ms: int) -> None:
        if now_ms > self._now:
            self._now = now_ms


# Handlers by message type, looked up by name so that a subclass may override one.
_HANDLERS: dict[type, str] = {
    VoteRequest: "_on_vote_request",
    VoteResponse: "_on_vote_response",
    BeginQuorumEpochRequest: "_on_begin_quorum_epoch",
    BeginQuorumEpochResponse: "_on_begin_quorum_epoch_response",
    EndQuorumEpochRequest: "_on_end_quorum_epoch",
    EndQuorumEpochResponse: "_on_end_quorum_epoch_response",
    FetchRequest: "_on_fetch_request",
    FetchResponse: "_on_fetch_response",
}
