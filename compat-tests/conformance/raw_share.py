"""Raw share-group requests (KIP-932, version 1) for the share scenario: heartbeats, describes,
share fetches and acknowledgements of one partition, answers reduced to what both brokers must
agree on (member ids and topic ids are the broker's and the client's to choose)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from kio.schema.share_acknowledge.v1 import request as ack_req
from kio.schema.share_acknowledge.v1.response import ShareAcknowledgeResponse
from kio.schema.share_fetch.v1 import request as fetch_req
from kio.schema.share_fetch.v1.response import ShareFetchResponse
from kio.schema.share_group_describe.v1.request import ShareGroupDescribeRequest
from kio.schema.share_group_describe.v1.response import ShareGroupDescribeResponse
from kio.schema.share_group_heartbeat.v1.request import ShareGroupHeartbeatRequest
from kio.schema.share_group_heartbeat.v1.response import ShareGroupHeartbeatResponse
from raw import request
from raw_client import RawClient
from raw_groups import modern_group

ACCEPT, RELEASE, REJECT = 1, 2, 3


def heartbeat(
    bootstrap: str, group: str, member: str, epoch: int, topics: tuple[str, ...] | None = None
) -> dict[str, Any]:
    body = ShareGroupHeartbeatRequest(
        group_id=group, member_id=member, member_epoch=epoch, subscribed_topic_names=topics
    )
    answer = request(bootstrap, body, ShareGroupHeartbeatResponse)
    return {
        "error_code": answer.error_code,
        "member_epoch": answer.member_epoch,
        "assigned": None if answer.assignment is None else sorted(
            p for t in answer.assignment.topic_partitions for p in t.partitions),
    }  # fmt: skip


def describe(bootstrap: str, group: str) -> dict[str, Any]:
    body = ShareGroupDescribeRequest(group_ids=(group,), include_authorized_operations=False)
    answer = request(bootstrap, body, ShareGroupDescribeResponse).groups[0]
    return {
        **modern_group(answer),
        "members": sorted(
            (m.member_epoch, tuple(m.subscribed_topic_names), m.rack_id, m.client_id,
             sorted(p for t in m.assignment.topic_partitions for p in t.partitions))
            for m in answer.members
        ),
    }  # fmt: skip


Acks = list[tuple[int, int, int]]  # (first offset, last offset, acknowledge type)


def _batches(cls: Any, acks: Acks) -> tuple[Any, ...]:
    return tuple(
        cls(first_offset=first, last_offset=last, acknowledge_types=(kind,))
        for first, last, kind in acks
    )


def _ask(client: RawClient | None, bootstrap: str, body: Any, response_cls: type) -> Any:
    """On the member's connection when given: a share session lives on its connection."""
    if client is None:
        return request(bootstrap, body, response_cls)
    return client.request(body, response_cls, client_id="conformance")


def fetch(
    bootstrap: str,
    group: str,
    member: str,
    session_epoch: int,
    topic_id: uuid.UUID,
    acks: Acks = (),  # type: ignore[assignment]
    max_records: int = 100,
    client: RawClient | None = None,
) -> dict[str, Any]:
    """A ShareFetch of partition 0 (with acknowledgements): the answer's codes, the acquired
    ranges and their delivery counts, and the records' offsets."""
    body = fetch_req.ShareFetchRequest(
        group_id=group, member_id=member, share_session_epoch=session_epoch,
        max_wait=timedelta(milliseconds=0), min_bytes=1, max_records=max_records,
        batch_size=max_records,
        topics=(fetch_req.FetchTopic(topic_id=topic_id, partitions=(fetch_req.FetchPartition(
            partition_index=0,
            acknowledgement_batches=_batches(fetch_req.AcknowledgementBatch, list(acks)),
        ),)),),
        forgotten_topics_data=(),
    )  # fmt: skip
    answer = _ask(client, bootstrap, body, ShareFetchResponse)
    parts = [p for t in answer.responses for p in t.partitions]
    return {
        "error_code": answer.error_code,
        "partitions": [
            {
                "error_code": p.error_code,
                "acknowledge_error_code": p.acknowledge_error_code,
                "acquired": [(a.first_offset, a.last_offset, a.delivery_count)
                             for a in p.acquired_records],
                "records": p.records,
            }
            for p in parts
        ],
    }  # fmt: skip


def acknowledge(
    bootstrap: str,
    group: str,
    member: str,
    session_epoch: int,
    topic_id: uuid.UUID,
    acks: Acks,
    client: RawClient | None = None,
) -> dict[str, Any]:
    body = ack_req.ShareAcknowledgeRequest(
        group_id=group, member_id=member, share_session_epoch=session_epoch,
        topics=(ack_req.AcknowledgeTopic(
            topic_id=topic_id,
            partitions=(ack_req.AcknowledgePartition(
                partition_index=0,
                acknowledgement_batches=_batches(ack_req.AcknowledgementBatch, acks),
            ),),
        ),),
    )  # fmt: skip
    answer = _ask(client, bootstrap, body, ShareAcknowledgeResponse)
    return {
        "error_code": answer.error_code,
        "partitions": [p.error_code for t in answer.responses for p in t.partitions],
    }
