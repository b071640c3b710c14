"""The Raft messages of one group, as plain values: Vote (52), BeginQuorumEpoch (53),
EndQuorumEpoch (54) and the follower side of Fetch (1), reduced to the fields the state machine
reads. The broker maps them to and from the Kafka wire schemas; the simulator passes them as they
are. Responses carry the responder's epoch and known leader so that a stale peer catches up.
"""

from __future__ import annotations

from collections.abc import Sized

from msgspec import Struct

from rafka.protocol.errors import ErrorCode

NONE = ErrorCode.none


class VoteRequest(Struct, frozen=True):
    """Vote (52): a candidate, or a pre-candidate, asks for this replica's vote."""

    # The epoch the sender would lead: its new epoch as a candidate, current + 1 for a pre-vote.
    epoch: int
    candidate_id: int
    last_epoch: int
    end_offset: int
    pre_vote: bool = False
    candidate_directory_id: str | None = None
    # The directory id the candidate believes the recipient has (KIP-853's voter key).
    voter_directory_id: str | None = None


class VoteResponse(Struct, frozen=True):
    """Vote's answer: granted or not, with the responder's epoch and leader."""

    epoch: int
    leader_id: int | None
    granted: bool
    pre_vote: bool = False
    error: ErrorCode = NONE


class BeginQuorumEpochRequest(Struct, frozen=True):
    """BeginQuorumEpoch (53): a new leader announces itself."""

    epoch: int
    leader_id: int


class BeginQuorumEpochResponse(Struct, frozen=True):
    """BeginQuorumEpoch's answer."""

    epoch: int
    leader_id: int | None
    error: ErrorCode = NONE


class EndQuorumEpochRequest(Struct, frozen=True):
    """EndQuorumEpoch (54): a leader resigns and names its preferred successors."""

    epoch: int
    leader_id: int
    # Voters most caught up first: the first one campaigns at once, the others back off.
    preferred_successors: tuple[int, ...] = ()


class EndQuorumEpochResponse(Struct, frozen=True):
    """EndQuorumEpoch's answer."""

    epoch: int
    leader_id: int | None
    error: ErrorCode = NONE


class FetchRequest(Struct, frozen=True):
    """Fetch (1) from a follower: the records after its log end, and its progress."""

    # The epoch of the leader the replica fetches from (Kafka's currentLeaderEpoch).
    epoch: int
    replica_id: int
    # A voter only fetches once everything before `fetch_offset` is fsynced, so the fetch offset
    # is also the replica's durable end offset: the leader counts it toward the high watermark.
    fetch_offset: int
    last_fetched_epoch: int
    max_wait_ms: int
    request_id: int
    replica_directory_id: str | None = None
    # The `sent_at` of the latest answer from this leader in this epoch that the replica had
    # received before sending this request (-1: none): proof that it followed the leader after
    # then, which a read barrier needs (a request's arrival time proves nothing: it may have
    # been delayed). The broker derives it from the connection (one fetch at a time per
    # connection), so it does not travel on the wire.
    acknowledged_at: int = -1
    # The most the leader may answer for this partition (replica.fetch.max.bytes; the first
    # batch comes whole even if larger); -1: the leader's own RaftConfig.fetch_limit.
    max_bytes: int = -1


class DivergingEpoch(Struct, frozen=True):
    """Where a follower's log leaves the leader's: truncate to `end_offset`."""

    epoch: int
    end_offset: int


class FetchResponse(Struct, frozen=True):
    """Fetch's answer: records, the high watermark, or where the logs diverge."""

    epoch: int
    leader_id: int | None
    request_id: int
    fetch_offset: int
    high_watermark: int = -1
    records: Sized = ()
    diverging_epoch: DivergingEpoch | None = None
    error: ErrorCode = NONE
    sent_at: int = -1  # the leader's clock when it answered
    # With OFFSET_OUT_OF_RANGE: where the leader's log starts (retention deleted what the
    # fetch asked for, all of it committed).
    log_start_offset: int = -1


Message = (
    VoteRequest
    | VoteResponse
    | BeginQuorumEpochRequest
    | BeginQuorumEpochResponse
    | EndQuorumEpochRequest
    | EndQuorumEpochResponse
    | FetchRequest
    | FetchResponse
)

RESPONSES = (VoteResponse, BeginQuorumEpochResponse, EndQuorumEpochResponse, FetchResponse)
