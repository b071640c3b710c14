"""AlterPartitionReassignments (45), ListPartitionReassignments (46) and ElectLeaders (43): the
controller's (another broker forwards them), authorized as Kafka's ControllerApis: ALTER on the
cluster to change, DESCRIBE on it to list.

A reassignment is answered once its record is committed, not once the replicas have moved
(Kafka alike); ListPartitionReassignments shows it until the partition's leader reports the
target in sync. ElectLeaders' preferred election records which partitions should hand over
to their first replica, whose leader then does; rafka's Raft never elects a replica that may
lack committed records, so an unclean election is never needed (ELECTION_NOT_NEEDED while a
leader leads) nor possible (ELIGIBLE_LEADERS_NOT_AVAILABLE without one).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from rafka.broker.broker import Broker
from rafka.broker.cluster.cluster_metadata import ClusterMetadata, TopicImage
from rafka.broker.cluster.reassignment_control import (
    ReassignmentRefused,
    cancel_record,
    check_cancel,
    check_partition,
    check_target,
    done_already,
    ongoing,
    reassign_record,
)
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.partition.append import AppendError
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

PREFERRED, UNCLEAN = 0, 1
CATCH_UP_WAIT_S = 5.0  # a new controller replaying its predecessor's records
# How long ElectLeaders waits for the handovers it asked for to be reported.
HANDOVER_WAIT_S = 10.0
HANDOVER_RETRY_S = 1.0
_DENIED = "Cluster authorization failed."


def _timeout(request: Any) -> float:
    return max(request.timeout.total_seconds(), 0.0)


async def _as_controller(metadata: ClusterMetadata, timeout: float) -> None:
    """AppendError(NOT_CONTROLLER) unless this node leads the metadata quorum, caught up."""
    if not metadata.is_leader:
        raise AppendError(ErrorCode.not_controller, "This is not the controller.")
    await metadata.wait_caught_up_as_leader(min(timeout, CATCH_UP_WAIT_S))


async def _propose(
    metadata: ClusterMetadata, records: list[dict[str, Any]], timeout: float
) -> None:
    """Commit `records` within `timeout`; AppendError(REQUEST_TIMED_OUT) if not."""
    try:
        async with asyncio.timeout(timeout):
            await metadata.propose(records)
    except TimeoutError:
        raise AppendError(
            ErrorCode.request_timed_out, "The metadata change was not committed in time."
        ) from None


# -- AlterPartitionReassignments ----------------------------------------------------------------


def make_alter_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not ctx.authorize(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
            return _alter_failed(request, ErrorCode.cluster_authorization_failed, _DENIED)
        metadata = broker.metadata
        assert metadata is not None
        timeout = _timeout(request)
        allow_change = bool(getattr(request, "allow_replication_factor_change", True))
        try:
            await _as_controller(metadata, timeout)
        except AppendError as exc:
            return _alter_failed(request, exc.code, exc.message)
        image = metadata.image
        targets: dict[str, dict[int, tuple[int, ...]]] = {}
        cancels: dict[str, set[int]] = {}
        responses = []
        for wanted in request.topics:
            partitions = []
            for entry in wanted.partitions:
                index = entry.partition_index
                result: dict[str, Any] = {
                    "partition_index": index,
                    "error_code": ErrorCode.none,
                    "error_message": None,
                }
                try:
                    topic = check_partition(image.topics.get(wanted.name), wanted.name, index)
                    if entry.replicas is None:
                        check_cancel(topic, index)
                        cancels.setdefault(wanted.name, set()).add(index)
                    else:
                        target = tuple(entry.replicas)
                        check_target(image, topic, index, target, allow_change)
                        targets.setdefault(wanted.name, {})[index] = target
                except ReassignmentRefused as exc:
                    result.update(error_code=exc.code, error_message=exc.message)
                partitions.append(result)
            responses.append({"name": wanted.name, "partitions": partitions})
        records = [reassign_record(image.topics[n], t) for n, t in targets.items()]
        records += [cancel_record(image.topics[n], indexes) for n, indexes in cancels.items()]
        if records:
            try:
                await _propose(metadata, records, timeout)
            except AppendError as exc:
                return _alter_failed(request, exc.code, exc.message)
            log.info("partition reassignments altered", records=records)
            touched = {name: set(changed) for name, changed in targets.items()}
            for name, indexes in cancels.items():
                touched.setdefault(name, set()).update(indexes)
            await _finish_in_sync(metadata, touched)
        return {
            "throttle_time": 0,
            "allow_replication_factor_change": allow_change,
            "error_code": ErrorCode.none,
            "error_message": None,
            "responses": responses,
        }

    return handle


async def _finish_in_sync(metadata: ClusterMetadata, touched: dict[str, set[int]]) -> None:
    """Record done the reassignments whose target is in sync already: their leaders report
    nothing new that would finish them."""
    records = []
    for name, indexes in touched.items():
        topic = metadata.image.topics.get(name)
        if topic is not None:
            records += done_already(topic, sorted(indexes))
    if records:
        try:
            await metadata.propose(records)
        except AppendError as exc:  # the next leader's report finishes them
            log.warning("finishing reassignments failed", error=exc.message)


def _alter_failed(request: Any, code: ErrorCode, message: str) -> dict[str, Any]:
    """Kafka's error response: the top-level error, repeated for every partition."""
    return {
        "throttle_time": 0,
        "allow_replication_factor_change": bool(
            getattr(request, "allow_replication_factor_change", True)
        ),
        "error_code": code,
        "error_message": message,
        "responses": [
            {
                "name": t.name,
                "partitions": [
                    {"partition_index": p.partition_index, "error_code": code,
                     "error_message": message}
                    for p in t.partitions
                ],
            }
            for t in request.topics
        ],
    }  # fmt: skip


# -- ListPartitionReassignments -----------------------------------------------------------------


def make_list_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not ctx.authorize(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
            return {"throttle_time": 0, "error_code": ErrorCode.cluster_authorization_failed,
                    "error_message": _DENIED, "topics": []}  # fmt: skip
        assert broker.metadata is not None
        image = broker.metadata.image
        if request.topics is None:
            wanted: list[tuple[TopicImage, Any]] = [
                (t, None) for t in sorted(image.topics.values(), key=lambda t: t.name)
            ]
        else:
            # As Kafka: unknown topics and partitions are left out, not refused.
            wanted = [
                (image.topics[t.name], t.partition_indexes)
                for t in request.topics
                if t.name in image.topics
            ]
        topics = []
        for topic, indexes in wanted:
            entries = ongoing(topic, indexes)
            if entries:
                topics.append({"name": topic.name, "partitions": entries})
        return {"throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
                "topics": topics}  # fmt: skip

    return handle


# -- ElectLeaders -------------------------------------------------------------------------------


def make_elect_leaders_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        election = int(getattr(request, "election_type", PREFERRED))  # v0: preferred only
        if not ctx.authorize(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
            return _elect_failed(request, ErrorCode.cluster_authorization_failed, _DENIED)
        if election not in (PREFERRED, UNCLEAN):
            return _elect_failed(
                request, ErrorCode.invalid_request, f"Unknown election type {election}"
            )
        metadata = broker.metadata
        assert metadata is not None
        timeout = _timeout(request)
        try:
            await _as_controller(metadata, timeout)
        except AppendError as exc:
            return _elect_failed(request, exc.code, exc.message)
        image = metadata.image
        results: list[dict[str, Any]] = []
        elected: dict[str, list[int]] = {}
        if request.topic_partitions is None:
            wanted = [(t.name, range(t.partition_count), True)
                      for t in sorted(image.topics.values(), key=lambda t: t.name)]  # fmt: skip
        else:
            wanted = [(t.topic, t.partitions, False) for t in request.topic_partitions]
        for name, indexes, all_partitions in wanted:
            topic = image.topics.get(name)
            partitions = []
            for index in indexes:
                code, message = _election(broker, topic, name, index, election)
                if code == ErrorCode.none:
                    elected.setdefault(name, []).append(index)
                # Kafka leaves out what needs no election when asked for every partition.
                if not (all_partitions and code == ErrorCode.election_not_needed):
                    partitions.append(
                        {"partition_id": index, "error_code": code, "error_message": message}
                    )
            results.append({"topic": name, "partition_result": partitions})
        if elected:
            try:
                await _propose(metadata, _elect_records(broker, elected), timeout)
            except AppendError as exc:
                return _elect_failed(request, exc.code, exc.message)
            log.info("preferred leader election", partitions=elected)
            await _await_handovers(broker, metadata, elected, min(timeout, HANDOVER_WAIT_S))
        return {"throttle_time": 0, "error_code": ErrorCode.none,
                "replica_election_results": results}  # fmt: skip

    return handle


def _election(
    broker: Broker, topic: TopicImage | None, name: str, index: int, election: int
) -> tuple[ErrorCode, str | None]:
    if topic is None:
        return ErrorCode.unknown_topic_or_partition, f"No such topic as {name}"
    if not 0 <= index < topic.partition_count:
        return ErrorCode.unknown_topic_or_partition, f"No such partition as {name}-{index}"
    leader, _, isr = broker.leadership(topic, index)
    leads = leader >= 0 and broker.broker_is_live(leader)
    if election == UNCLEAN:
        if leads:
            return ErrorCode.election_not_needed, None
        return ErrorCode.eligible_leaders_not_available, None
    preferred = topic.replicas[index][0]
    if leads and leader == preferred:
        return ErrorCode.election_not_needed, None
    if preferred not in isr or not broker.broker_is_live(preferred):
        return ErrorCode.preferred_leader_not_available, None
    return ErrorCode.none, None


def _elect_records(broker: Broker, elected: dict[str, list[int]]) -> list[dict[str, Any]]:
    records = []
    for name, indexes in elected.items():
        topic = broker.topic(name)
        if topic is not None:
            records.append({"type": "elect_preferred", "id": str(topic.topic_id),
                            "partitions": sorted(set(indexes))})  # fmt: skip
    return records


def _not_preferred_led(broker: Broker, elected: dict[str, list[int]]) -> dict[str, list[int]]:
    """The partitions of `elected` whose preferred replica does not lead yet."""
    waiting: dict[str, list[int]] = {}
    for name, indexes in elected.items():
        topic = broker.topic(name)
        if topic is None:
            continue
        for index in indexes:
            if index < topic.partition_count:
                leader, _, _ = broker.leadership(topic, index)
                if leader != topic.replicas[index][0]:
                    waiting.setdefault(name, []).append(index)
    return waiting


async def _await_handovers(
    broker: Broker, metadata: ClusterMetadata, elected: dict[str, list[int]], wait: float
) -> None:
    """Wait (at most `wait` seconds) until the preferred replicas lead, as Kafka answers once
    the new leaders are recorded. A leader hands over only if the preferred replica is caught
    up when it applies the record, so the record is repeated for those still waiting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0 or await metadata.wait_applied(
            lambda: not _not_preferred_led(broker, elected), min(remaining, HANDOVER_RETRY_S)
        ):
            return
        waiting = _not_preferred_led(broker, elected)
        if not waiting or deadline <= loop.time():
            return
        try:
            await metadata.propose(_elect_records(broker, waiting))
        except AppendError:
            return  # no longer the controller: the election was recorded all the same


def _elect_failed(request: Any, code: ErrorCode, message: str) -> dict[str, Any]:
    """Kafka's error response: the top-level error (v1+), and on every partition named."""
    return {
        "throttle_time": 0,
        "error_code": code,
        "replica_election_results": [
            {
                "topic": t.topic,
                "partition_result": [
                    {"partition_id": i, "error_code": code, "error_message": message}
                    for i in t.partitions
                ],
            }
            for t in request.topic_partitions or ()
        ],
    }
