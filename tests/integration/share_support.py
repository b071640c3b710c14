"""Helpers of the share-group tests (KIP-932, issue 20): raw requests (ShareGroupHeartbeat,
ShareFetch, ShareAcknowledge, the share-group offsets and group configs, the share
coordinator's state), the Java KafkaShareConsumer (compat-tests/java/src/test-only/
ShareGroupMember.java) and the checks of a share state that survived a kill."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from java_process import JavaProcess
from kio.schema.alter_share_group_offsets.v0 import request as alter_req
from kio.schema.alter_share_group_offsets.v0.response import AlterShareGroupOffsetsResponse
from kio.schema.delete_groups.v2.request import DeleteGroupsRequest
from kio.schema.delete_groups.v2.response import DeleteGroupsResponse
from kio.schema.delete_share_group_offsets.v0 import request as delete_req
from kio.schema.delete_share_group_offsets.v0.response import DeleteShareGroupOffsetsResponse
from kio.schema.describe_configs.v4 import request as configs_req
from kio.schema.describe_configs.v4.response import DescribeConfigsResponse
from kio.schema.describe_share_group_offsets.v1 import request as describe_req
from kio.schema.describe_share_group_offsets.v1.response import DescribeShareGroupOffsetsResponse
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.find_coordinator.v4.response import FindCoordinatorResponse
from kio.schema.incremental_alter_configs.v1 import request as alter_configs_req
from kio.schema.incremental_alter_configs.v1.response import IncrementalAlterConfigsResponse
from kio.schema.list_groups.v5.request import ListGroupsRequest
from kio.schema.list_groups.v5.response import ListGroupsResponse
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.metadata.v12.response import MetadataResponse
from kio.schema.read_share_group_state.v0 import request as read_state_req
from kio.schema.read_share_group_state.v0.response import ReadShareGroupStateResponse
from kio.schema.read_share_group_state_summary.v1 import request as summary_req
from kio.schema.read_share_group_state_summary.v1.response import (
    ReadShareGroupStateSummaryResponse,
)
from kio.schema.share_acknowledge.v2 import request as ack_req
from kio.schema.share_acknowledge.v2.response import ShareAcknowledgeResponse
from kio.schema.share_fetch.v2 import request as fetch_req
from kio.schema.share_fetch.v2.response import ShareFetchResponse
from kio.schema.share_group_heartbeat.v1.request import ShareGroupHeartbeatRequest
from kio.schema.share_group_heartbeat.v1.response import ShareGroupHeartbeatResponse
from raw_client import RawClient

from rafka.protocol.errors import ErrorCode

ACCEPT, RELEASE, REJECT, RENEW = 1, 2, 3, 4  # acknowledge types
GROUP_RESOURCE = 32
SET, APPEND = 0, 2  # config operations

# The raw share-admin tests' topic (test_share_admin_raw and those built on it).
ADMIN_TOPIC = "admin-queue"
ADMIN_PARTITIONS = 2

# The Java share consumers' topic and default group (test_share_groups_java and those after it).
JAVA_TOPIC = "queue"
JAVA_GROUP = "share-raw"
JAVA_DIR = Path(__file__).resolve().parents[2] / "compat-tests" / "java"
SOURCE = JAVA_DIR / "src" / "test-only" / "ShareGroupMember.java"
LIB = JAVA_DIR / "target" / "share-lib"
ARTIFACTS = (
    "org.apache.kafka:kafka-clients:4.3.1",
    "org.slf4j:slf4j-api:1.7.36",
    "org.slf4j:slf4j-nop:1.7.36",
)
DELIVERY_LIMIT = 5  # group.share.delivery.count.limit's default

# (first offset, last offset, acknowledge types)
Batches = tuple[tuple[int, int, tuple[int, ...]], ...] | list[tuple[int, int, tuple[int, ...]]]


# -- share-group requests ------------------------------------------------------------------------


def heartbeat(
    client: RawClient, group: str, member: str, epoch: int, topics: tuple[str, ...] | None = None
) -> Any:
    return client.request(
        ShareGroupHeartbeatRequest(
            group_id=group, member_id=member, member_epoch=epoch, subscribed_topic_names=topics
        ),
        ShareGroupHeartbeatResponse,
    )


def share_fetch(
    client: RawClient,
    group: str,
    member: str,
    epoch: int,
    topic_id: uuid.UUID,
    partition: int = 0,
    acks: tuple[tuple[int, int], ...] = (),
    wait_ms: int = 0,
    *,
    batches: Batches = (),
    max_records: int = 500,
) -> Any:
    """A ShareFetch of one partition, accepting the (first, last) ranges of `acks`, then
    acknowledging `batches` (first, last, acknowledge types). A wait under the raw client's
    10 s socket timeout."""
    acknowledged = [(f, la, (ACCEPT,)) for f, la in acks] + list(batches)
    return client.request(
        fetch_req.ShareFetchRequest(
            group_id=group,
            member_id=member,
            share_session_epoch=epoch,
            max_wait=timedelta(milliseconds=wait_ms),
            min_bytes=1,
            max_records=max_records,
            batch_size=max_records,
            topics=(
                fetch_req.FetchTopic(
                    topic_id=topic_id,
                    partitions=(
                        fetch_req.FetchPartition(
                            partition_index=partition,
                            acknowledgement_batches=tuple(
                                fetch_req.AcknowledgementBatch(
                                    first_offset=f, last_offset=la, acknowledge_types=t
                                )
                                for f, la, t in acknowledged
                            ),
                        ),
                    ),
                ),
            ),
            forgotten_topics_data=(),
        ),
        ShareFetchResponse,
    )


def acknowledge(
    client: RawClient, group: str, member: str, epoch: int, topic_id: uuid.UUID, batches: Batches
) -> Any:
    """A ShareAcknowledge of partition 0; `batches` are (first, last, acknowledge types)."""
    partition = ack_req.AcknowledgePartition(
        partition_index=0,
        acknowledgement_batches=tuple(
            ack_req.AcknowledgementBatch(first_offset=f, last_offset=la, acknowledge_types=t)
            for f, la, t in batches
        ),
    )
    return client.request(
        ack_req.ShareAcknowledgeRequest(
            group_id=group,
            member_id=member,
            share_session_epoch=epoch,
            topics=(ack_req.AcknowledgeTopic(topic_id=topic_id, partitions=(partition,)),),
        ),
        ShareAcknowledgeResponse,
    )


def acquired(response: Any) -> list[tuple[int, int, int]]:
    assert response.error_code == ErrorCode.none, response
    return [
        (r.first_offset, r.last_offset, r.delivery_count)
        for topic in response.responses
        for p in topic.partitions
        for r in p.acquired_records
    ]


def partition_of(response: Any) -> Any:
    """The answer for the one partition of a ShareFetch or ShareAcknowledge."""
    (topic,) = response.responses
    (partition,) = topic.partitions
    return partition


def find_coordinator(client: RawClient, group: str) -> None:
    def found() -> bool:
        response = client.request(
            FindCoordinatorRequest(key_type=0, coordinator_keys=(group,)),
            FindCoordinatorResponse,
        )
        return response.coordinators[0].error_code == ErrorCode.none

    wait_until(found, 30, "the group coordinator")


def start_share_partition(
    client: RawClient, group: str = JAVA_GROUP, topic: str = JAVA_TOPIC
) -> uuid.UUID:
    """A member "init" joins `group`, opens a share session on partition 0 of `topic` (which
    sets the share-partition start offset, by share.auto.offset.reset) and leaves: the topic
    id."""
    find_coordinator(client, group)
    joined = heartbeat(client, group, "init", 0, (topic,))
    topic_id = joined.assignment.topic_partitions[0].topic_id
    assert acquired(share_fetch(client, group, "init", 0, topic_id)) == []
    assert heartbeat(client, group, "init", -1).error_code == ErrorCode.none
    return topic_id


def read_and_accept(
    client: RawClient, group: str, member: str, topic: str
) -> tuple[uuid.UUID, list[tuple[int, int, int]]]:
    """A member joins `group`, takes partition 0's records of `topic`, accepts them and leaves:
    (topic id, acquired)."""
    joined = heartbeat(client, group, member, 0, (topic,))
    assert joined.error_code == ErrorCode.none, joined
    topic_id = joined.assignment.topic_partitions[0].topic_id
    got = acquired(share_fetch(client, group, member, 0, topic_id, wait_ms=5000))
    acks = tuple((first, last) for first, last, _ in got)
    acked = share_fetch(client, group, member, 1, topic_id, acks=acks)
    assert [p.acknowledge_error_code for t in acked.responses for p in t.partitions] == [0]
    assert heartbeat(client, group, member, -1).error_code == ErrorCode.none
    return topic_id, got


def coordinator_of(client: RawClient, group: str) -> int:
    """The node id of the group's coordinator, -1 while there is none."""
    found = client.request(
        FindCoordinatorRequest(key_type=0, coordinator_keys=(group,)), FindCoordinatorResponse
    ).coordinators[0]
    return found.node_id if found.error_code == ErrorCode.none else -1


def topic_metadata(client: RawClient, topic: str) -> Any:
    """The Metadata answer for one topic (by name)."""
    response = client.request(
        MetadataRequest(
            topics=(MetadataRequestTopic(topic_id=None, name=topic),),
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        ),
        MetadataResponse,
    )
    (found,) = response.topics
    return found


# -- share-group administration ------------------------------------------------------------------


def describe_offsets(
    client: RawClient, group: str, topics: dict[str, tuple[int, ...]] | None = None
) -> Any:
    wanted = None
    if topics is not None:
        wanted = tuple(
            describe_req.DescribeShareGroupOffsetsRequestTopic(topic_name=t, partitions=ps)
            for t, ps in topics.items()
        )
    response = client.request(
        describe_req.DescribeShareGroupOffsetsRequest(
            groups=(
                describe_req.DescribeShareGroupOffsetsRequestGroup(group_id=group, topics=wanted),
            )
        ),
        DescribeShareGroupOffsetsResponse,
    )
    (described,) = response.groups
    return described


def offsets_of(described: Any) -> dict[tuple[str, int], tuple[int, int, int]]:
    """(topic, partition) -> (start offset, leader epoch, lag), every partition error-free."""
    assert described.error_code == ErrorCode.none, described
    out = {}
    for topic in described.topics:
        for p in topic.partitions:
            assert p.error_code == ErrorCode.none, p
            out[(topic.topic_name, p.partition_index)] = (p.start_offset, p.leader_epoch, p.lag)
    return out


def alter_offsets(client: RawClient, group: str, topic: str, offsets: dict[int, int]) -> Any:
    return client.request(
        alter_req.AlterShareGroupOffsetsRequest(
            group_id=group,
            topics=(
                alter_req.AlterShareGroupOffsetsRequestTopic(
                    topic_name=topic,
                    partitions=tuple(
                        alter_req.AlterShareGroupOffsetsRequestPartition(
                            partition_index=p, start_offset=o
                        )
                        for p, o in offsets.items()
                    ),
                ),
            ),
        ),
        AlterShareGroupOffsetsResponse,
    )


def altered(response: Any) -> dict[tuple[str, int], ErrorCode]:
    assert response.error_code == ErrorCode.none, response
    return {
        (t.topic_name, p.partition_index): p.error_code
        for t in response.responses
        for p in t.partitions
    }


def delete_offsets(client: RawClient, group: str, *topics: str) -> Any:
    return client.request(
        delete_req.DeleteShareGroupOffsetsRequest(
            group_id=group,
            topics=tuple(
                delete_req.DeleteShareGroupOffsetsRequestTopic(topic_name=t) for t in topics
            ),
        ),
        DeleteShareGroupOffsetsResponse,
    )


def list_groups(client: RawClient, types: tuple[str, ...] = (), states: tuple[str, ...] = ()):
    response = client.request(
        ListGroupsRequest(states_filter=states, types_filter=types), ListGroupsResponse
    )
    assert response.error_code == ErrorCode.none
    return sorted(
        (g.group_id, g.group_type, g.group_state, g.protocol_type) for g in response.groups
    )


def delete_groups(client: RawClient, *groups: str) -> dict[str, ErrorCode]:
    response = client.request(DeleteGroupsRequest(groups_names=groups), DeleteGroupsResponse)
    return {r.group_id: r.error_code for r in response.results}


def set_group_config(client: RawClient, group: str, key: str, value: str, op: int = SET) -> Any:
    response = client.request(
        alter_configs_req.IncrementalAlterConfigsRequest(
            resources=(
                alter_configs_req.AlterConfigsResource(
                    resource_type=GROUP_RESOURCE,
                    resource_name=group,
                    configs=(
                        alter_configs_req.AlterableConfig(
                            name=key, config_operation=op, value=value
                        ),
                    ),
                ),
            ),
            validate_only=False,
        ),
        IncrementalAlterConfigsResponse,
    )
    (result,) = response.responses
    return result


def group_configs(client: RawClient, group: str) -> Any:
    response = client.request(
        configs_req.DescribeConfigsRequest(
            resources=(
                configs_req.DescribeConfigsResource(
                    resource_type=GROUP_RESOURCE, resource_name=group, configuration_keys=None
                ),
            ),
            include_synonyms=True,
            include_documentation=False,
        ),
        DescribeConfigsResponse,
    )
    (result,) = response.results
    return result


# -- the share coordinator's state ---------------------------------------------------------------


def state_summary(client: RawClient, group: str, topic_id: uuid.UUID) -> Any:
    """ReadShareGroupStateSummary (87) of (group, topic_id, 0): the whole answer."""
    data = summary_req.ReadStateSummaryData(
        topic_id=topic_id, partitions=(summary_req.PartitionData(partition=0, leader_epoch=-1),)
    )
    return client.request(
        summary_req.ReadShareGroupStateSummaryRequest(group_id=group, topics=(data,)),
        ReadShareGroupStateSummaryResponse,
    )


def durable_state(
    client: RawClient,
    topic_id: uuid.UUID,
    group: str = JAVA_GROUP,
    leader_epoch: int | None = None,
) -> Any:
    """The share partition's durable state where the key's `__share_group_state` partition is
    led (NOT_COORDINATOR elsewhere): as ReadShareGroupState (84) answers a leader of
    `leader_epoch` (its batches too; it records that epoch), else as the summary (87) gives it
    to an onlooker (start offset, state and leader epochs), which a read with leader epoch -1
    is not, as in Kafka: FENCED_LEADER_EPOCH once a leader has read the state."""
    if leader_epoch is None:
        return state_summary(client, group, topic_id).results[0].partitions[0]
    data = read_state_req.ReadStateData(
        topic_id=topic_id,
        partitions=(read_state_req.PartitionData(partition=0, leader_epoch=leader_epoch),),
    )
    response = client.request(
        read_state_req.ReadShareGroupStateRequest(group_id=group, topics=(data,)),
        ReadShareGroupStateResponse,
    )
    (result,) = response.results
    (partition,) = result.partitions
    return partition


def durable_start(addresses: list[str], topic_id: uuid.UUID, group: str = JAVA_GROUP) -> int:
    """The durable share-partition start offset, from whichever of `addresses` coordinates
    it (-1 while none can say)."""
    for address in addresses:
        try:
            with RawClient(address) as client:
                state = durable_state(client, topic_id, group)
        except OSError:
            continue
        if state.error_code == ErrorCode.none:
            return state.start_offset
    return -1


# -- topics and records --------------------------------------------------------------------------


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def produce(bootstrap: str, counts: dict[int, int]) -> None:
    """`count` records ("partition-n") to each partition of ADMIN_TOPIC."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for partition, count in counts.items():
        for value in range(count):
            producer.produce(ADMIN_TOPIC, f"{partition}-{value}".encode(), partition=partition)
    assert producer.flush(30) == 0


def join(client: RawClient, group: str, member: str) -> tuple[int, uuid.UUID]:
    """(member epoch, topic id) of a new member subscribed to ADMIN_TOPIC."""
    joined = heartbeat(client, group, member, 0, (ADMIN_TOPIC,))
    assert joined.error_code == ErrorCode.none, joined
    (assigned,) = joined.assignment.topic_partitions
    assert sorted(assigned.partitions) == list(range(ADMIN_PARTITIONS))
    return joined.member_epoch, assigned.topic_id


def produce_values(bootstrap: str, values: range, chunk: int) -> None:
    """`values` to partition 0 of JAVA_TOPIC, flushed every `chunk`."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 2})
    for value in values:
        producer.produce(JAVA_TOPIC, str(value).encode(), partition=0)
        if value % chunk == chunk - 1:
            assert producer.flush(30) == 0
    assert producer.flush(30) == 0


# -- Java share consumers ------------------------------------------------------------------------


def share_classpath() -> str:
    """The classpath of kafka-clients 4.3.1 (KafkaShareConsumer needs 4.2+), its jars fetched
    into compat-tests/java/target/share-lib/ with Maven if missing."""
    if shutil.which("java") is None:
        pytest.skip("Java share consumer skipped: java not installed")
    if not any(LIB.glob("kafka-clients-4.3.1.jar")):
        if shutil.which("mvn") is None:
            pytest.skip("Java share consumer skipped: mvn not installed")
        for artifact in ARTIFACTS:
            subprocess.run(
                ["mvn", "-B", "-q", "-Dstyle.color=never", "dependency:copy",
                 f"-Dartifact={artifact}", f"-DoutputDirectory={LIB}"],
                cwd=JAVA_DIR, check=True, timeout=600,
            )  # fmt: skip
    return f"{LIB}/*"


def java_share_broker(broker_factory: Any, lock_ms: int, topic: str = JAVA_TOPIC) -> BrokerProcess:
    """A started broker for Java share consumers (acquisition locks of `lock_ms`, heartbeats
    every 500 ms) with `topic` created, one partition."""
    broker: BrokerProcess = broker_factory(
        **{
            "group.share.record.lock.duration.ms": str(lock_ms),
            "group.share.heartbeat.interval.ms": "500",
        }
    ).start()
    create_topic(broker.bootstrap, topic)
    return broker


class ShareMember(JavaProcess):
    """One Java share consumer; what it reports is kept as (value, delivery count, kind)."""

    def __init__(
        self, name: str, bootstrap: str, classpath: str, *mode: str, group: str = JAVA_GROUP
    ) -> None:
        self.deliveries: list[tuple[int, int, str]] = []
        self.lock = threading.Lock()
        super().__init__(name, classpath, SOURCE, bootstrap, group, JAVA_TOPIC, name, *mode)

    def on_line(self, kind: str, rest: str) -> bool:
        if kind != "records":
            return False
        with self.lock:
            for token in rest.split():
                value, delivery, how = token.split("/")
                self.deliveries.append((int(value), int(delivery), how))
        return True

    def snapshot(self) -> list[tuple[int, int, str]]:
        with self.lock:
            return list(self.deliveries)


# -- a share state across a kill -----------------------------------------------------------------


def confirmed(member: ShareMember) -> list[tuple[int, str]]:
    """(offset, A or R) of each acknowledgement the broker confirmed, in order."""
    out = []
    for line in list(member.output):
        if line.startswith("acked "):
            for token in line.split()[1:]:
                offset, _, kind = token.partition("/")
                out.append((int(offset), kind))
    return out


def cut_off(member: ShareMember) -> set[int]:
    """Offsets of acknowledgements that failed in transport (the kill): the broker may or
    may not have committed them. The Java client reports a ShareAcknowledge cut off as a
    DisconnectException and a ShareFetch carrying acknowledgements as UNKNOWN_SERVER_ERROR
    (Errors.forException of the disconnect). Any other failure is the test's failure."""
    out: set[int] = set()
    for line in list(member.output):
        if line.startswith("ack-failed "):
            assert "DisconnectException" in line or "UnknownServerException" in line, line
            out |= {int(o) for o in re.findall(r"\d+", line.partition("=[")[2])}
    return out


def check_no_loss_or_redelivery(
    members: list[ShareMember],
    records: int,
    accepted_before: set[int],
    released_before: set[int],
    marks: list[int],
) -> None:
    """Done-when 2's claims, once the durable start offset is past the last record."""
    accepted = {o for m in members for o, kind in confirmed(m) if kind == "A"}
    uncertain = set().union(*(cut_off(m) for m in members))
    # None lost: every record was accepted, or its acknowledgement was cut off by the kill and
    # the durable state (start offset past every record) says it was committed.
    assert accepted | uncertain == set(range(records)), sorted(
        set(range(records)) - accepted - uncertain
    )[:20]
    deliveries = [d for m in members for d in m.snapshot()]
    # Nothing was archived instead of accepted: no record came near the delivery limit.
    assert max(d for _, d, _ in deliveries) < DELIVERY_LIMIT - 1
    after = [d for m, mark in zip(members, marks, strict=True) for d in m.snapshot()[mark:]]
    again = sorted({value for value, _, _ in after} & accepted_before)
    assert not again, f"accepted before the kill, delivered again: {again[:20]}"
    assert after, "nothing was delivered after the restart"
    # A confirmed release is durable: the record comes back with its count raised.
    fresh = sorted(v for v, d, _ in after if v in released_before and d < 2)
    assert not fresh, f"released before the kill, delivered afresh: {fresh[:20]}"
    # Per consumer, one record's delivery counts never go backwards.
    for member in members:
        last: dict[int, int] = {}
        for value, delivery, _ in member.snapshot():
            assert delivery >= last.get(value, 0), (member.name, value, delivery, last[value])
            last[value] = delivery
    print(
        f"accepted before the kill {len(accepted_before)}, released {len(released_before)}, "
        f"deliveries after {len(after)}, acknowledgements cut off {len(uncertain)}"
    )
