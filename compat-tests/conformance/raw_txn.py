"""Raw requests of idempotent and transactional producers (InitProducerId, AddPartitionsToTxn,
AddOffsetsToTxn, TxnOffsetCommit, EndTxn) at the versions of a client using transactions v1,
for the producers scenario. Producer ids are the broker's to choose: answers leave them out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kio.schema.add_offsets_to_txn.v4.request import AddOffsetsToTxnRequest
from kio.schema.add_offsets_to_txn.v4.response import AddOffsetsToTxnResponse
from kio.schema.add_partitions_to_txn.v3 import request as add_req
from kio.schema.add_partitions_to_txn.v3.response import AddPartitionsToTxnResponse
from kio.schema.end_txn.v4.request import EndTxnRequest
from kio.schema.end_txn.v4.response import EndTxnResponse
from kio.schema.init_producer_id.v5.request import InitProducerIdRequest
from kio.schema.init_producer_id.v5.response import InitProducerIdResponse
from kio.schema.txn_offset_commit.v3 import request as txn_commit_v3
from kio.schema.txn_offset_commit.v3.response import TxnOffsetCommitResponse as TxnCommitV3
from kio.schema.txn_offset_commit.v4 import request as txn_commit_req
from kio.schema.txn_offset_commit.v4.response import TxnOffsetCommitResponse
from raw import request


def init_producer_id(
    bootstrap: str,
    transactional_id: str | None,
    timeout_ms: int = 60_000,
    producer_id: int = -1,
    producer_epoch: int = -1,
) -> tuple[int, int, dict[str, Any]]:
    """(producer id, epoch, the answer without the producer id)."""
    body = InitProducerIdRequest(
        transactional_id=transactional_id,
        transaction_timeout=timedelta(milliseconds=timeout_ms),
        producer_id=producer_id,
        producer_epoch=producer_epoch,
    )
    answer = request(bootstrap, body, InitProducerIdResponse)
    observed = {"error_code": answer.error_code, "producer_epoch": answer.producer_epoch}
    return answer.producer_id, answer.producer_epoch, observed


def add_partitions(
    bootstrap: str,
    transactional_id: str,
    producer: tuple[int, int],
    topic: str,
    partitions: list[int],
) -> Any:
    body = add_req.AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=transactional_id,
        v3_and_below_producer_id=producer[0],
        v3_and_below_producer_epoch=producer[1],
        v3_and_below_topics=(add_req.AddPartitionsToTxnTopic(name=topic,
                                                             partitions=tuple(partitions)),),
    )
    answer = request(bootstrap, body, AddPartitionsToTxnResponse)
    return [
        (t.name, p.partition_index, p.partition_error_code)
        for t in answer.results_by_topic_v3_and_below
        for p in t.results_by_partition
    ]


def add_offsets(
    bootstrap: str, transactional_id: str, producer: tuple[int, int], group: str
) -> Any:
    body = AddOffsetsToTxnRequest(
        transactional_id=transactional_id, producer_id=producer[0], producer_epoch=producer[1],
        group_id=group,
    )
    return request(bootstrap, body, AddOffsetsToTxnResponse).error_code


def txn_offset_commit(
    bootstrap: str,
    transactional_id: str,
    producer: tuple[int, int],
    group: str,
    topic: str,
    offset: int,
    version: int = 4,
) -> Any:
    schema, response_cls = (
        (txn_commit_req, TxnOffsetCommitResponse) if version == 4 else (txn_commit_v3, TxnCommitV3)
    )
    body = schema.TxnOffsetCommitRequest(
        transactional_id=transactional_id, group_id=group, producer_id=producer[0],
        producer_epoch=producer[1],
        topics=(schema.TxnOffsetCommitRequestTopic(
            name=topic,
            partitions=(schema.TxnOffsetCommitRequestPartition(
                partition_index=0, committed_offset=offset, committed_leader_epoch=-1,
                committed_metadata=None),),
        ),),
    )  # fmt: skip
    answer = request(bootstrap, body, response_cls)
    return [(t.name, p.partition_index, p.error_code) for t in answer.topics for p in t.partitions]


def end_txn(
    bootstrap: str, transactional_id: str, producer: tuple[int, int], committed: bool
) -> Any:
    body = EndTxnRequest(
        transactional_id=transactional_id, producer_id=producer[0], producer_epoch=producer[1],
        committed=committed,
    )
    return request(bootstrap, body, EndTxnResponse).error_code
