"""The transaction APIs: InitProducerId (with a transactional id), AddPartitionsToTxn,
AddOffsetsToTxn, EndTxn, WriteTxnMarkers, TxnOffsetCommit, DescribeProducers,
DescribeTransactions and ListTransactions; and the check a transactional produce passes.

The rules live in rafka.broker.coordinator.txn; these handlers translate between request versions
and the coordinator, after Kafka's ACL checks: WRITE on the transactional id to run a
transaction, READ on the group (and its topics) to commit offsets in it, CLUSTER_ACTION on the
cluster for the brokers' own forms, DESCRIBE to look at transactions.

PRODUCER_FENCED (KIP-588) is answered as INVALID_PRODUCER_EPOCH to the versions that predate it:
InitProducerId < 4, AddPartitionsToTxn/AddOffsetsToTxn/EndTxn < 2.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.cluster.peers import PeerUnavailable
from rafka.broker.coordinator.groups.coordinator import CoordinatorError
from rafka.broker.coordinator.internal_topic import OFFSETS_TOPIC
from rafka.broker.coordinator.txn.coordinator import TXN_TOPIC, TxnError
from rafka.broker.coordinator.txn.markers import write_marker
from rafka.broker.coordinator.txn_offset_commit import txn_offset_commit
from rafka.broker.handlers.offsets_commit import (
    commit_response,
    merge_refused,
    refused_topics,
    requested_commits,
)
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.partition.replica import Partition
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import is_transactional_batch

ADD_PARTITIONS_TO_TXN = 24

_PRODUCER_ID_AT = 43  # producerId i64, then producerEpoch i16
# EndTxn v5 is spoken by clients of transaction version 2 (KIP-890 part 2).
FIRST_TV2_END_TXN_VERSION = 5
# AddPartitionsToTxn v4+ is the batched, broker-to-broker form (verify_only).
FIRST_BATCHED_ADD_PARTITIONS_VERSION = 4
# Produce v12: the broker adds the partition to the transaction (transaction version 2).
FIRST_TV2_PRODUCE_VERSION = 12
# Kafka's Topic.isInternal: a client never adds these to a transaction by AddPartitionsToTxn
# (offsets go through AddOffsetsToTxn), so they are refused whatever the ACLs say.
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC, TXN_TOPIC})
_RETRY_PRODUCE = frozenset(
    {
        ErrorCode.coordinator_not_available,
        ErrorCode.not_coordinator,
        ErrorCode.coordinator_load_in_progress,
        ErrorCode.concurrent_transactions,
    }
)


def millis(value: timedelta | int) -> int:
    if isinstance(value, timedelta):
        return round(value / timedelta(milliseconds=1))
    return int(value)


def fenced_for(code: ErrorCode, version: int, first_version_with_fenced: int) -> ErrorCode:
    if code is ErrorCode.producer_fenced and version < first_version_with_fenced:
        return ErrorCode.invalid_producer_epoch
    return code


# -- Produce ---------------------------------------------------------------------------------


async def check_transactional_produce(
    broker: Broker,
    transactional_id: str | None,
    partition: Partition,
    records: bytes | None,
    api_version: int = 0,
) -> tuple[ErrorCode, str | None]:
    """Whether a produce's batch may be appended as far as transactions are concerned.

    A transactional batch needs the request's transactional id and, when its producer has no
    transaction open on the partition yet, the coordinator's word that the partition is in the
    producer's ongoing transaction (KIP-890 part 1), so a late or stray write cannot open a
    transaction nobody will ever end. From Produce v12 (transaction version 2) the coordinator
    adds the partition itself instead of the client's AddPartitionsToTxn.
    """
    if not is_transactional_batch(records):
        return ErrorCode.none, None  # (a malformed one: the append path answers it)
    if transactional_id is None:
        return (
            ErrorCode.transactional_id_authorization_failed,
            "transactional records need a transactional id",
        )
    producer_id = int.from_bytes(records[_PRODUCER_ID_AT : _PRODUCER_ID_AT + 8], "big", signed=True)
    epoch = int.from_bytes(records[_PRODUCER_ID_AT + 8 : _PRODUCER_ID_AT + 10], "big", signed=True)
    if producer_id in partition.producers.ongoing_transactions:
        known = partition.producers.producer(producer_id)
        if known is not None and known.producer_epoch == epoch:
            return ErrorCode.none, None  # verified when this transaction began here
    if not broker.txn.is_local(transactional_id):
        code, message = await _verify_remotely(
            broker,
            transactional_id,
            producer_id,
            epoch,
            (partition.topic, partition.index),
            add=api_version >= FIRST_TV2_PRODUCE_VERSION,
        )
        if code in _RETRY_PRODUCE:
            return ErrorCode.not_enough_replicas, f"transaction coordinator: {code.name}"
        return code, message
    if api_version < FIRST_TV2_PRODUCE_VERSION:
        return broker.txn.verify(
            transactional_id, producer_id, epoch, partition.topic, partition.index
        )
    code, message = await broker.txn.add_implicitly(
        transactional_id, producer_id, epoch, (partition.topic, partition.index)
    )
    # As Kafka answers an implicit add's failure to a produce: retriable coordinator trouble
    # as NOT_ENOUGH_REPLICAS, fencing as the epoch error produce clients know.
    if code in _RETRY_PRODUCE:
        return ErrorCode.not_enough_replicas, f"transaction coordinator: {code.name}"
    if code is ErrorCode.producer_fenced:
        return ErrorCode.invalid_producer_epoch, message
    return code, message


async def _verify_remotely(
    broker: Broker,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    partition: tuple[str, int],
    *,
    add: bool,
) -> tuple[ErrorCode, str | None]:
    """KIP-890 verification (or, for transaction version 2, the implicit add) by the
    coordinator on another broker: AddPartitionsToTxn v5 in its broker form."""
    topic = broker.topic(TXN_TOPIC)
    network = broker.network
    if topic is None or network is None:
        return ErrorCode.coordinator_not_available, "no transaction coordinator"
    leader, _, _ = broker.leadership(topic, broker.txn.partition_for(transactional_id))
    if leader < 0 or not network.knows(leader):
        return ErrorCode.coordinator_not_available, "transaction coordinator unknown"
    request = {
        "transactions": [
            {
                "transactional_id": transactional_id,
                "producer_id": producer_id,
                "producer_epoch": producer_epoch,
                "verify_only": not add,
                "topics": [{"name": partition[0], "partitions": [partition[1]]}],
            }
        ]
    }
    try:
        response = await network.request(leader, ADD_PARTITIONS_TO_TXN, 5, request, timeout=30)
    except PeerUnavailable:
        return ErrorCode.coordinator_not_available, "transaction coordinator unreachable"
    if response.error_code != ErrorCode.none:
        return ErrorCode(response.error_code), None
    for result in response.results_by_transaction:
        for topic_result in result.topic_results:
            for p in topic_result.results_by_partition:
                return ErrorCode(p.partition_error_code), None
    return ErrorCode.unknown_server_error, None


# -- InitProducerId ------------------------------------------------------------------------------


async def init_transactional_producer(
    broker: Broker, ctx: RequestContext, request: Any
) -> dict[str, Any]:
    result = await broker.txn.init_producer_id(
        request.transactional_id,
        millis(request.transaction_timeout),
        getattr(request, "producer_id", -1),
        getattr(request, "producer_epoch", -1),
    )
    return {
        "throttle_time": 0,
        "error_code": fenced_for(result.error, ctx.api_version, 4),
        "producer_id": result.producer_id,
        "producer_epoch": result.producer_epoch,
    }


# -- AddPartitionsToTxn / AddOffsetsToTxn ----------------------------------------------------------


async def _add_partitions(
    broker: Broker,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    topics: Any,
    verify_only: bool,
    refused: frozenset[str] | set[str] = frozenset(),
) -> dict[tuple[str, int], ErrorCode]:
    """Each partition's outcome; topics in `refused` failed the authorization check."""
    wanted = [(t.name, p) for t in topics for p in t.partitions]
    results: dict[tuple[str, int], ErrorCode] = {}
    failed: dict[tuple[str, int], ErrorCode] = {}
    for topic, partition in wanted:
        image = broker.topic(topic)
        if topic in refused:
            failed[(topic, partition)] = ErrorCode.topic_authorization_failed
        elif image is None or not 0 <= partition < image.partition_count:
            failed[(topic, partition)] = ErrorCode.unknown_topic_or_partition
    if failed:
        # Kafka: nothing is added when any partition is refused or unknown.
        return {tp: failed.get(tp, ErrorCode.operation_not_attempted) for tp in wanted}
    if verify_only:
        for topic, partition in wanted:
            code, _ = broker.txn.verify(
                transactional_id, producer_id, producer_epoch, topic, partition
            )
            results[(topic, partition)] = code
        return results
    try:
        code = await broker.txn.add_partitions(
            transactional_id, producer_id, producer_epoch, wanted
        )
    except TxnError as exc:
        code = exc.code
    return {tp: code for tp in wanted}


def _topic_results(results: dict[tuple[str, int], ErrorCode]) -> list[dict[str, Any]]:
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (topic, partition), code in results.items():
        by_topic.setdefault(topic, []).append(
            {"partition_index": partition, "partition_error_code": code}
        )
    return [{"name": t, "results_by_partition": parts} for t, parts in by_topic.items()]


def make_add_partitions_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        version = ctx.api_version
        if version < FIRST_BATCHED_ADD_PARTITIONS_VERSION:
            transactional_id = request.v3_and_below_transactional_id
            topics = request.v3_and_below_topics
            if not ctx.authorize(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
                code = ErrorCode.transactional_id_authorization_failed
                results = {(t.name, p): code for t in topics for p in t.partitions}
            else:
                refused = refused_topics(ctx, Operation.WRITE, topics)
                refused |= {t.name for t in topics if t.name in INTERNAL_TOPICS}
                results = await _add_partitions(
                    broker,
                    transactional_id,
                    request.v3_and_below_producer_id,
                    request.v3_and_below_producer_epoch,
                    topics,
                    verify_only=False,
                    refused=refused,
                )
            results = {tp: fenced_for(c, version, 2) for tp, c in results.items()}
            return {"throttle_time": 0, "results_by_topic_v3_and_below": _topic_results(results)}
        # The batched form is the brokers' own (KIP-890 verification): it comes over the
        # controller listeners, unchecked; on a client listener it needs CLUSTER_ACTION.
        if not ctx.authorize(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME):
            return {
                "throttle_time": 0,
                "error_code": ErrorCode.cluster_authorization_failed,
                "results_by_transaction": [],
            }
        transactions = []
        for txn in request.transactions:
            results = await _add_partitions(
                broker,
                txn.transactional_id,
                txn.producer_id,
                txn.producer_epoch,
                txn.topics,
                verify_only=txn.verify_only,
            )
            transactions.append(
                {"transactional_id": txn.transactional_id, "topic_results": _topic_results(results)}
            )
        return {
            "throttle_time": 0,
            "error_code": ErrorCode.none,
            "results_by_transaction": transactions,
        }

    return handle


def make_add_offsets_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not ctx.authorize(
            Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id
        ):
            return {
                "throttle_time": 0,
                "error_code": ErrorCode.transactional_id_authorization_failed,
            }
        if not ctx.authorize(Operation.READ, ResourceType.GROUP, request.group_id):
            return {"throttle_time": 0, "error_code": ErrorCode.group_authorization_failed}
        try:
            await broker.groups.ensure_offsets_topic()
            code = await broker.txn.add_partitions(
                request.transactional_id,
                request.producer_id,
                request.producer_epoch,
                [broker.txn.offsets_partition_for(request.group_id)],
            )
        except TxnError as exc:
            code = exc.code
        return {"throttle_time": 0, "error_code": fenced_for(code, ctx.api_version, 2)}

    return handle


# -- EndTxn ------------------------------------------------------------------------------------


def make_end_txn_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        version = ctx.api_version
        if not ctx.authorize(
            Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id
        ):
            return {
                "throttle_time": 0,
                "error_code": ErrorCode.transactional_id_authorization_failed,
                "producer_id": -1,
                "producer_epoch": -1,
            }
        try:
            result = await broker.txn.end_txn(
                request.transactional_id,
                request.producer_id,
                request.producer_epoch,
                bool(request.committed),
                transaction_version=2 if version >= FIRST_TV2_END_TXN_VERSION else 0,
            )
            code, producer_id, epoch = result.error, result.producer_id, result.producer_epoch
        except TxnError as exc:
            code, producer_id, epoch = exc.code, -1, -1
        return {
            "throttle_time": 0,
            "error_code": fenced_for(code, version, 2),
            "producer_id": producer_id,
            "producer_epoch": epoch,
        }

    return handle


# -- WriteTxnMarkers ---------------------------------------------------------------------------


def make_write_txn_markers_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        # The coordinators' request to the partition leaders: Kafka takes ALTER on the cluster,
        # or else CLUSTER_ACTION (nodes reach each other on controller listeners, unchecked).
        allowed = ctx.authorize(
            Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME
        ) or ctx.authorize(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)
        markers = []
        for marker in request.markers:
            wanted = [(t.name, p) for t in marker.topics for p in t.partition_indexes]
            if not allowed:
                markers.append(
                    _marker_result(
                        marker.producer_id,
                        wanted,
                        [ErrorCode.cluster_authorization_failed] * len(wanted),
                    )
                )
                continue
            codes = await asyncio.gather(
                *(
                    write_marker(
                        broker,
                        topic,
                        partition,
                        marker.producer_id,
                        marker.producer_epoch,
                        marker.coordinator_epoch,
                        bool(marker.transaction_result),
                        int(getattr(marker, "transaction_version", 0)),
                        forward=False,
                    )
                    for topic, partition in wanted
                )
            )
            markers.append(_marker_result(marker.producer_id, wanted, codes))
        return {"markers": markers}

    return handle


def _marker_result(
    producer_id: int, wanted: list[tuple[str, int]], codes: list[ErrorCode]
) -> dict[str, Any]:
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (topic, partition), code in zip(wanted, codes, strict=True):
        by_topic.setdefault(topic, []).append({"partition_index": partition, "error_code": code})
    return {
        "producer_id": producer_id,
        "topics": [{"name": t, "partitions": p} for t, p in by_topic.items()],
    }


# -- TxnOffsetCommit ---------------------------------------------------------------------------


def make_txn_offset_commit_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        commits = requested_commits(request)
        # Kafka: WRITE on the transactional id (the producer id's own check is implied by
        # it), READ on the group, and READ on each topic, which alone fails its partitions.
        refusal = None
        if not ctx.authorize(
            Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id
        ):
            refusal = ErrorCode.transactional_id_authorization_failed
        elif not ctx.authorize(Operation.READ, ResourceType.GROUP, request.group_id):
            refusal = ErrorCode.group_authorization_failed
        if refusal is not None:
            return commit_response(commits, [refusal] * len(commits))
        refused = refused_topics(ctx, Operation.READ, request.topics)
        allowed = [c for c in commits if c.topic not in refused]
        codes: list[ErrorCode] = []
        if allowed or not commits:  # the coordinator sees only the authorized topics
            try:
                codes = await txn_offset_commit(
                    broker,
                    transactional_id=request.transactional_id,
                    group_id=request.group_id,
                    producer_id=request.producer_id,
                    producer_epoch=request.producer_epoch,
                    generation=getattr(request, "generation_id", -1),
                    member_id=getattr(request, "member_id", ""),
                    group_instance_id=getattr(request, "group_instance_id", None),
                    commits=allowed,
                    api_version=ctx.api_version,
                )
            except (CoordinatorError, TxnError) as exc:
                codes = [exc.code] * len(allowed)
        return commit_response(commits, merge_refused(commits, refused, codes))

    return handle


# -- DescribeProducers / DescribeTransactions / ListTransactions -----------------------------------


def make_describe_producers_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        topics = []
        for topic in request.topics:
            partitions = []
            may_read = ctx.authorize(Operation.READ, ResourceType.TOPIC, topic.name)
            for index in topic.partition_indexes:
                partition = broker.partition(topic.name, index)
                entry: dict[str, Any] = {
                    "partition_index": index,
                    "error_code": ErrorCode.none,
                    "active_producers": [],
                }
                if not may_read:
                    entry["error_code"] = ErrorCode.topic_authorization_failed
                    entry["error_message"] = "Topic authorization failed."
                elif partition is None:
                    entry["error_code"] = ErrorCode.unknown_topic_or_partition
                elif partition.offline is not None:
                    entry["error_code"] = partition.offline
                elif not partition.is_leader:
                    entry["error_code"] = ErrorCode.not_leader_or_follower
                else:
                    entry["active_producers"] = [
                        {
                            "producer_id": pid,
                            "producer_epoch": info.producer_epoch,
                            "last_sequence": info.last_sequence,
                            "last_timestamp": info.last_timestamp,
                            "coordinator_epoch": info.coordinator_epoch,
                            "current_txn_start_offset": info.current_txn_start_offset,
                        }
                        for pid, info in sorted(partition.producers.producers.items())
                    ]
                partitions.append(entry)
            topics.append({"name": topic.name, "partitions": partitions})
        return {"throttle_time": 0, "topics": topics}

    return handle


def make_describe_transactions_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        states = []
        for transactional_id in request.transactional_ids:
            if ctx.authorize(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, transactional_id):
                code, txn = broker.txn.describe(transactional_id)
            else:
                code, txn = ErrorCode.transactional_id_authorization_failed, None
            # An error leaves the schema's defaults, zeros, as Kafka does.
            entry: dict[str, Any] = {
                "error_code": code,
                "transactional_id": transactional_id,
                "transaction_state": "",
                "transaction_timeout": 0,
                "transaction_start_time": 0,
                "producer_id": 0,
                "producer_epoch": 0,
                "topics": [],
            }
            if txn is not None:
                by_topic: dict[str, list[int]] = {}
                for topic, partition in sorted(txn.partitions):
                    by_topic.setdefault(topic, []).append(partition)
                # Only the topics the principal may DESCRIBE are shown (Kafka).
                by_topic = {
                    t: ps
                    for t, ps in by_topic.items()
                    if ctx.authorize(Operation.DESCRIBE, ResourceType.TOPIC, t)
                }
                entry.update(
                    transaction_state=txn.state.display_name,
                    transaction_timeout=txn.timeout_ms,
                    transaction_start_time=txn.start_timestamp,
                    producer_id=txn.producer_id,
                    producer_epoch=txn.producer_epoch,
                    topics=[{"topic": t, "partitions": ps} for t, ps in by_topic.items()],
                )
            states.append(entry)
        return {"throttle_time": 0, "transaction_states": states}

    return handle


def make_list_transactions_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        pattern = getattr(request, "transactional_id_pattern", None)
        try:
            code, unknown, txns = broker.txn.list_transactions(
                set(request.state_filters or ()),
                set(request.producer_id_filters or ()),
                int(getattr(request, "duration_filter", -1)),
                pattern or None,
            )
        except re.error:  # an invalid transactional id pattern
            code, unknown, txns = ErrorCode.invalid_request, [], []
        # Only the transactional ids the principal may DESCRIBE are listed.
        txns = [
            t
            for t in txns
            if ctx.authorize(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, t.transactional_id)
        ]
        return {
            "throttle_time": 0,
            "error_code": code,
            "unknown_state_filters": unknown,
            "transaction_states": [
                {
                    "transactional_id": t.transactional_id,
                    "producer_id": t.producer_id,
                    "transaction_state": t.state.display_name,
                }
                for t in txns
            ],
        }

    return handle
