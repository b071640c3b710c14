"""DescribeQuorum (KIP-595, KIP-836, KIP-853): the metadata quorum's leader, epoch, high
watermark and each voter's progress, as the quorum leader knows them.

As in Kafka only the leader answers with the voters; any other node answers the partition with
NOT_LEADER_OR_FOLLOWER and the leader and epoch it knows, so a client can go to the leader.
Every node is a voter (combined mode), so there are no observers. It needs DESCRIBE on the
cluster, as on Kafka's controller.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from typing import Any

from rafka.broker.broker import Broker
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.protocol.errors import ErrorCode

METADATA_TOPIC = "__cluster_metadata"
METADATA_PARTITION = 0
UNKNOWN = -1
NO_DIRECTORY = uuid.UUID(int=0)  # Kafka's Uuid.ZERO: the voter's directory is not known


def make_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not ctx.authorize(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
            return {
                "error_code": ErrorCode.cluster_authorization_failed,
                "error_message": "Cluster authorization failed.",
                "topics": [],
                "nodes": [],
            }
        # As Kafka: a request for anything but the metadata partition alone is answered with
        # UNKNOWN_TOPIC_OR_PARTITION for every partition it names.
        only_metadata = (
            len(request.topics) == 1
            and request.topics[0].topic_name == METADATA_TOPIC
            and [p.partition_index for p in request.topics[0].partitions] == [METADATA_PARTITION]
        )
        topics = []
        for topic in request.topics:
            partitions = [
                describe_metadata_partition(broker)
                if only_metadata
                else _partition_error(wanted.partition_index, ErrorCode.unknown_topic_or_partition)
                for wanted in topic.partitions
            ]
            topics.append({"topic_name": topic.topic_name, "partitions": partitions})
        return {
            "error_code": ErrorCode.none,
            "error_message": None,
            "topics": topics,
            "nodes": quorum_nodes(broker),
        }

    return handle


def describe_metadata_partition(broker: Broker) -> dict[str, Any]:
    metadata = broker.metadata
    if metadata is None:  # still starting: the metadata log is not open yet
        return _partition_error(METADATA_PARTITION, ErrorCode.not_leader_or_follower)
    partition = metadata.partition
    raft = partition.raft
    leader = UNKNOWN if raft.leader_id is None else raft.leader_id
    if not raft.is_leader:
        return {
            **_partition_error(METADATA_PARTITION, ErrorCode.not_leader_or_follower),
            "leader_id": leader,
            "leader_epoch": raft.epoch,
            "high_watermark": raft.high_watermark,
        }
    wall_now = time.time_ns() // 1_000_000
    mono_now = time.monotonic_ns() // 1_000_000

    def wall(raft_ms: int) -> int:
        # The Raft clock is monotonic; Kafka reports the leader's wall-clock time.
        return wall_now - max(mono_now - raft_ms, 0)

    progress = raft.voter_progress()
    voters = []
    for voter in sorted(raft.voters):
        state: dict[str, Any] = {"replica_id": voter, "replica_directory_id": NO_DIRECTORY}
        if voter == raft.node_id:
            # The leader's own entry: its log end, "now" for both timestamps, as Kafka does.
            state["replica_directory_id"] = _directory_uuid(raft.directory_id)
            state.update(
                log_end_offset=partition.log_end_offset,
                last_fetch_timestamp=wall_now,
                last_caught_up_timestamp=wall_now,
            )
        elif (known := progress.get(voter)) is not None:
            caught_up = known.caught_up_at()
            state.update(
                log_end_offset=known.end_offset,
                last_fetch_timestamp=wall(known.last_contact_ms),
                last_caught_up_timestamp=UNKNOWN if caught_up is None else wall(caught_up),
            )
        else:
            state.update(
                log_end_offset=UNKNOWN,
                last_fetch_timestamp=UNKNOWN,
                last_caught_up_timestamp=UNKNOWN,
            )
        voters.append(state)
    return {
        "partition_index": METADATA_PARTITION,
        "error_code": ErrorCode.none,
        "error_message": None,
        "leader_id": leader,
        "leader_epoch": raft.epoch,
        "high_watermark": raft.high_watermark,
        "current_voters": voters,
        "observers": [],
    }


def quorum_nodes(broker: Broker) -> list[dict[str, Any]]:
    """v2's voter endpoints: each voter's controller listener from controller.quorum.voters,
    or in single-node mode this node's own controller listeners (none if it has none)."""
    config = broker.config
    names = list(config.controller_listener_names)
    if config.quorum_voters:
        name = names[0] if names else "CONTROLLER"
        return [
            {"node_id": v.node_id, "listeners": [{"name": name, "host": v.host, "port": v.port}]}
            for v in sorted(config.quorum_voters)
        ]
    listeners = [
        {"name": lst.name, "host": lst.host, "port": lst.port}
        for lst in config.controller_listeners
        if lst.port > 0
    ]
    return [{"node_id": broker.node_id, "listeners": listeners}] if listeners else []


def _partition_error(index: int, code: ErrorCode) -> dict[str, Any]:
    # Kafka leaves the schema's zeros in an errored partition.
    return {
        "partition_index": index,
        "error_code": code,
        "error_message": None,
        "leader_id": 0,
        "leader_epoch": 0,
        "high_watermark": 0,
        "current_voters": [],
        "observers": [],
    }


def _directory_uuid(directory_id: str | None) -> uuid.UUID:
    """A directory id as written in meta.properties (Kafka's base64) or as a plain UUID."""
    if not directory_id:
        return NO_DIRECTORY
    try:
        return uuid.UUID(directory_id)
    except ValueError:
        pass
    try:
        raw = base64.urlsafe_b64decode(directory_id + "=" * (-len(directory_id) % 4))
    except (ValueError, binascii.Error):
        return NO_DIRECTORY
    return uuid.UUID(bytes=raw) if len(raw) == 16 else NO_DIRECTORY
