"""Raft messages of rafka.replication to and from Kafka's wire schemas, and back.

Every request carries many partitions: Vote (52), BeginQuorumEpoch (53) and EndQuorumEpoch (54)
every partition's message to one voter that one pass of the event loop produced, replica Fetch (1)
every partition a follower fetches from one leader. Fields the state machine does not read
(directory ids, endpoints) go out with their null values.
"""

from __future__ import annotations

from typing import Any

from rafka.protocol.errors import ErrorCode
from rafka.protocol.fetch_request import VERSION as FETCH_REQUEST_VERSION
from rafka.protocol.fetch_request import FetchPosition, encode_replica_fetch_request
from rafka.protocol.fetch_response import FetchedPartition
from rafka.replication.messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    DivergingEpoch,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    FetchRequest,
    FetchResponse,
    VoteRequest,
    VoteResponse,
)

VOTE = 52
BEGIN_QUORUM_EPOCH = 53
END_QUORUM_EPOCH = 54
FETCH = 1
VOTE_VERSION = 2
BEGIN_VERSION = 1
END_VERSION = 1
FETCH_VERSION = FETCH_REQUEST_VERSION  # 12: topics by name, diverging epoch and current leader
# as tagged fields
QUORUM_APIS = (VOTE, BEGIN_QUORUM_EPOCH, END_QUORUM_EPOCH)

PartitionKey = tuple[str, int]
QuorumRequest = VoteRequest | BeginQuorumEpochRequest | EndQuorumEpochRequest


def _leader(leader_id: int | None) -> int:
    return -1 if leader_id is None else leader_id


def _known(leader_id: int) -> int | None:
    return None if leader_id < 0 else leader_id


def _by_topic(partitions: dict[PartitionKey, dict[str, Any]]) -> list[dict[str, Any]]:
    topics: dict[str, list[dict[str, Any]]] = {}
    for (topic, _), partition in partitions.items():
        topics.setdefault(topic, []).append(partition)
    return [{"topic_name": t, "partitions": parts} for t, parts in topics.items()]


def quorum_request(
    api_key: int, cluster_id: str, voter: int, messages: dict[PartitionKey, Any]
) -> dict[str, Any]:
    """One Vote, BeginQuorumEpoch or EndQuorumEpoch request to `voter` for many partitions."""
    if api_key == VOTE:
        return vote_request(cluster_id, voter, messages)
    if api_key == BEGIN_QUORUM_EPOCH:
        return begin_request(cluster_id, voter, messages)
    return end_request(cluster_id, messages)


def quorum_api(message: QuorumRequest) -> tuple[int, int]:
    """The API key and version that carry `message`."""
    if isinstance(message, VoteRequest):
        return VOTE, VOTE_VERSION
    if isinstance(message, BeginQuorumEpochRequest):
        return BEGIN_QUORUM_EPOCH, BEGIN_VERSION
    return END_QUORUM_EPOCH, END_VERSION


def quorum_answer(message: QuorumRequest, p: Any) -> Any:
    """The state machine's view of one partition of the response to `message`."""
    if isinstance(message, VoteRequest):
        return vote_response_from_wire(p, message.pre_vote)
    if isinstance(message, BeginQuorumEpochRequest):
        return begin_response_from_wire(p)
    return end_response_from_wire(p)


# -- Vote ----------------------------------------------------------------------------------------


def vote_request(
    cluster_id: str, voter: int, messages: dict[PartitionKey, VoteRequest]
) -> dict[str, Any]:
    return {
        "cluster_id": cluster_id,
        "voter_id": voter,
        "topics": _by_topic(
            {
                key: {
                    "partition_index": key[1],
                    "replica_epoch": m.epoch,
                    "replica_id": m.candidate_id,
                    "replica_directory_id": None,
                    "voter_directory_id": None,
                    "last_offset_epoch": m.last_epoch,
                    "last_offset": m.end_offset,
                    "pre_vote": m.pre_vote,
                }
                for key, m in messages.items()
            }
        ),
    }


def vote_from_wire(p: Any) -> VoteRequest:
    return VoteRequest(
        epoch=p.replica_epoch,
        candidate_id=p.replica_id,
        last_epoch=p.last_offset_epoch,
        end_offset=p.last_offset,
        pre_vote=bool(getattr(p, "pre_vote", False)),
    )


def vote_response_partition(index: int, m: VoteResponse) -> dict[str, Any]:
    return {
        "partition_index": index,
        "error_code": m.error,
        "leader_id": _leader(m.leader_id),
        "leader_epoch": m.epoch,
        "vote_granted": m.granted,
    }


def vote_response_from_wire(p: Any, pre_vote: bool) -> VoteResponse:
    return VoteResponse(
        epoch=p.leader_epoch,
        leader_id=_known(p.leader_id),
        granted=bool(p.vote_granted),
        pre_vote=pre_vote,
        error=ErrorCode(p.error_code),
    )


# -- BeginQuorumEpoch / EndQuorumEpoch -------------------------------------------------------------


def begin_request(
    cluster_id: str, voter: int, messages: dict[PartitionKey, BeginQuorumEpochRequest]
) -> dict[str, Any]:
    return {
        "cluster_id": cluster_id,
        "voter_id": voter,
        "topics": _by_topic(
            {
                key: {
                    "partition_index": key[1],
                    "voter_directory_id": None,
                    "leader_id": m.leader_id,
                    "leader_epoch": m.epoch,
                }
                for key, m in messages.items()
            }
        ),
        "leader_endpoints": [],
    }


def begin_from_wire(p: Any) -> BeginQuorumEpochRequest:
    return BeginQuorumEpochRequest(epoch=p.leader_epoch, leader_id=p.leader_id)


def end_request(
    cluster_id: str, messages: dict[PartitionKey, EndQuorumEpochRequest]
) -> dict[str, Any]:
    return {
        "cluster_id": cluster_id,
        "topics": _by_topic(
            {
                key: {
                    "partition_index": key[1],
                    "leader_id": m.leader_id,
                    "leader_epoch": m.epoch,
                    "preferred_candidates": [
                        {"candidate_id": c, "candidate_directory_id": None}
                        for c in m.preferred_successors
                    ],
                }
                for key, m in messages.items()
            }
        ),
        "leader_endpoints": [],
    }


def end_from_wire(p: Any) -> EndQuorumEpochRequest:
    return EndQuorumEpochRequest(
        epoch=p.leader_epoch,
        leader_id=p.leader_id,
        preferred_successors=tuple(c.candidate_id for c in p.preferred_candidates),
    )


def quorum_response_partition(
    index: int, m: BeginQuorumEpochResponse | EndQuorumEpochResponse
) -> dict[str, Any]:
    return {
        "partition_index": index,
        "error_code": m.error,
        "leader_id": _leader(m.leader_id),
        "leader_epoch": m.epoch,
    }


def begin_response_from_wire(p: Any) -> BeginQuorumEpochResponse:
    return BeginQuorumEpochResponse(p.leader_epoch, _known(p.leader_id), ErrorCode(p.error_code))


def end_response_from_wire(p: Any) -> EndQuorumEpochResponse:
    return EndQuorumEpochResponse(p.leader_epoch, _known(p.leader_id), ErrorCode(p.error_code))


def error_partition(index: int, error: ErrorCode, **extra: Any) -> dict[str, Any]:
    """A partition-level answer for a partition this node does not host."""
    return {
        "partition_index": index,
        "error_code": error,
        "leader_id": -1,
        "leader_epoch": -1,
        **extra,
    }


# -- replica Fetch -------------------------------------------------------------------------------


def fetch_request(
    cluster_id: str,
    replica_id: int,
    max_wait_ms: int,
    requests: dict[PartitionKey, FetchRequest],
) -> bytes:
    """The body of a follower's Fetch (FETCH_VERSION), encoded by hand: it is sent all the time."""
    return encode_replica_fetch_request(
        cluster_id,
        replica_id,
        max_wait_ms,
        (
            FetchPosition(
                topic,
                index,
                m.epoch,
                m.fetch_offset,
                m.last_fetched_epoch,
                m.max_bytes,
            )
            for (topic, index), m in requests.items()
        ),
    )


def fetch_from_wire(replica_id: int, max_wait_ms: int, p: Any, request_id: int) -> FetchRequest:
    return FetchRequest(
        epoch=p.current_leader_epoch,
        replica_id=replica_id,
        fetch_offset=p.fetch_offset,
        last_fetched_epoch=max(p.last_fetched_epoch, 0),
        max_wait_ms=max_wait_ms,
        request_id=request_id,
        max_bytes=max(p.partition_max_bytes, 0),
    )


def fetch_response_partition(
    index: int, m: FetchResponse, log_start_offset: int
) -> FetchedPartition:
    diverging = m.diverging_epoch
    return FetchedPartition(
        partition_index=index,
        error_code=m.error,
        high_watermark=m.high_watermark,
        last_stable_offset=-1,
        log_start_offset=log_start_offset,
        records=m.records if len(m.records) else b"",  # log bytes go to the socket uncopied
        current_leader=(_leader(m.leader_id), m.epoch),
        diverging_epoch=None if diverging is None else (diverging.epoch, diverging.end_offset),
    )


def fetch_error_partition(index: int, error: ErrorCode) -> FetchedPartition:
    return FetchedPartition(
        partition_index=index,
        error_code=error,
        high_watermark=-1,
        last_stable_offset=-1,
        log_start_offset=-1,
        records=b"",
    )


def fetch_response_from_wire(p: FetchedPartition, sent: FetchRequest) -> FetchResponse:
    """The state machine's view of one partition of a replica Fetch response to `sent`."""
    leader_id, leader_epoch = p.current_leader or (-1, -1)
    diverging = p.diverging_epoch
    return FetchResponse(
        epoch=leader_epoch if leader_epoch >= 0 else -1,
        leader_id=_known(leader_id),
        request_id=sent.request_id,
        fetch_offset=sent.fetch_offset,
        high_watermark=p.high_watermark,
        records=p.records or b"",
        diverging_epoch=(
            DivergingEpoch(*diverging)
            if diverging is not None and diverging[0] >= 0 and diverging[1] >= 0
            else None
        ),
        error=ErrorCode(p.error_code),
        log_start_offset=p.log_start_offset,
    )


