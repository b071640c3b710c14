"""What a Raft replica asks its caller to do.

The caller carries out a returned list in order, each action completed before the next one starts:
a `PersistQuorumState` is durable before the vote response or the leadership that follows it is
acted upon. Log changes (`AppendLeaderChange`, `AppendVoters`, `AppendRecords`, `TruncateLog`)
are applied, and reported back with `on_local_append` / `on_truncated`, before the next event
reaches the replica.
"""

from __future__ import annotations

from collections.abc import Sized

from msgspec import Struct

from rafka.replication.messages import Message
from rafka.replication.state import QuorumState, Role


class PersistQuorumState(Struct, frozen=True):
    """Write the quorum state durably (temp file, fsync, rename, fsync dir) before going on."""

    state: QuorumState


class AppendLeaderChange(Struct, frozen=True):
    """Append a LEADER_CHANGE control batch at the log end in `epoch` (the epoch start offset)."""

    epoch: int
    leader_id: int
    voters: tuple[int, ...]


class AppendVoters(Struct, frozen=True):
    """Append a voters record (KRaft's VOTERS control record) at the log end in `epoch`: the
    group's new voter set, in force on every replica as soon as its log holds it."""

    epoch: int
    voters: tuple[tuple[int, str | None], ...]


class AppendRecords(Struct, frozen=True):
    """Append records fetched from the leader at the log end (a follower)."""

    records: Sized


class TruncateLog(Struct, frozen=True):
    """Remove every record at or after `end_offset` (divergence from the leader's log)."""

    end_offset: int


class ResetLog(Struct, frozen=True):
    """Delete the whole log and restart it empty at `start_offset` (a follower whose log ends
    below the leader's log start: everything below it is committed and gone from the leader)."""

    start_offset: int


class HighWatermarkAdvanced(Struct, frozen=True):
    """The high watermark moved up: committed records may be exposed."""

    high_watermark: int


class SendMessage(Struct, frozen=True):
    """Send `message` to the replica `destination`."""

    destination: int
    message: Message


class RoleChanged(Struct, frozen=True):
    """The replica's role, epoch or leader changed (pending writes of an old leadership fail)."""

    role: Role
    epoch: int
    leader_id: int | None


Action = (
    PersistQuorumState
    | AppendLeaderChange
    | AppendVoters
    | AppendRecords
    | TruncateLog
    | ResetLog
    | HighWatermarkAdvanced
    | SendMessage
    | RoleChanged
)
