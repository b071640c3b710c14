"""Raw Kafka requests (tests/raw_client.py + kio) for exact error codes and offsets.

Each call opens one connection to the single broker, sends one request and returns the answer
for the one partition (or topic) it asked about. Versions are ones both brokers serve.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from kio.schema.create_topics.v7 import request as create_req
from kio.schema.create_topics.v7.response import CreateTopicsResponse
from kio.schema.delete_records.v2 import request as delete_req
from kio.schema.delete_records.v2.response import DeleteRecordsResponse
from kio.schema.delete_topics.v6 import request as delete_topics_req
from kio.schema.delete_topics.v6.response import DeleteTopicsResponse
from kio.schema.fetch.v12 import request as fetch_req
from kio.schema.fetch.v12.response import FetchResponse
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.find_coordinator.v4.response import FindCoordinatorResponse
from kio.schema.list_offsets.v8 import request as list_req
from kio.schema.list_offsets.v8.response import ListOffsetsResponse
from kio.schema.metadata.v12 import request as metadata_req
from kio.schema.metadata.v12.response import MetadataResponse
from kio.schema.offset_commit.v9 import request as commit_req
from kio.schema.offset_commit.v9.response import OffsetCommitResponse
from kio.schema.offset_fetch.v8 import request as offset_fetch_req
from kio.schema.offset_fetch.v8.response import OffsetFetchResponse
from kio.schema.produce.v9 import request as produce_req
from kio.schema.produce.v9.response import ProduceResponse
from raw_client import RawClient, encode

from rafka.protocol.records import build_batch

EARLIEST, LATEST, MAX_TIMESTAMP, EARLIEST_LOCAL = -2, -1, -3, -4
READ_UNCOMMITTED, READ_COMMITTED = 0, 1
TIMEOUT = timedelta(seconds=10)

T = TypeVar("T")


def request(bootstrap: str, body: Any, response_cls: type) -> Any:
    with RawClient(bootstrap) as client:
        return client.request(body, response_cls, client_id="conformance")


def batch(values: Sequence[tuple[bytes | None, bytes]], timestamp: int, **kwargs: Any) -> bytes:
    """One v2 batch of (key, value) records with CreateTime timestamp, timestamp + 1, ..."""
    records = [(key, value, (), timestamp + i) for i, (key, value) in enumerate(values)]
    return build_batch(records, **kwargs)


def produce_body(
    topic: str, partition: int, records: bytes, acks: int = -1, transactional_id: str | None = None
) -> Any:
    return produce_req.ProduceRequest(
        transactional_id=transactional_id, acks=acks, timeout=TIMEOUT,
        topic_data=(produce_req.TopicProduceData(
            name=topic,
            partition_data=(produce_req.PartitionProduceData(index=partition, records=records),),
        ),),
    )


def produce(
    bootstrap: str,
    topic: str,
    partition: int,
    records: bytes,
    acks: int = -1,
    transactional_id: str | None = None,
) -> Any:
    body = produce_body(topic, partition, records, acks, transactional_id)
    response = request(bootstrap, body, ProduceResponse)
    return response.responses[0].partition_responses[0]


def produce_acks0(bootstrap: str, topic: str, partition: int, records: bytes) -> None:
    """Produce with acks=0 (no answer comes) and wait until the high watermark moves."""
    before = list_offsets(bootstrap, topic, partition, LATEST).offset
    body = produce_body(topic, partition, records, acks=0)
    with RawClient(bootstrap) as client:  # open until the write shows: closing may drop it
        client.send(0, int(body.__version__), encode(body), True, client_id="conformance")
        until(lambda: list_offsets(bootstrap, topic, partition, LATEST).offset > before or None,
              "the acks=0 record", 10)


def list_offsets(
    bootstrap: str, topic: str, partition: int, timestamp: int, isolation: int = READ_UNCOMMITTED
) -> Any:
    body = list_req.ListOffsetsRequest(
        replica_id=-1, isolation_level=isolation,
        topics=(list_req.ListOffsetsTopic(
            name=topic,
            partitions=(list_req.ListOffsetsPartition(partition_index=partition,
                                                      timestamp=timestamp),),
        ),),
    )
    return request(bootstrap, body, ListOffsetsResponse).topics[0].partitions[0]


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> dict[str, Any]:
    """Low and high watermark and the last stable offset, as ListOffsets answers them."""
    low = list_offsets(bootstrap, topic, partition, EARLIEST)
    high = list_offsets(bootstrap, topic, partition, LATEST)
    stable = list_offsets(bootstrap, topic, partition, LATEST, READ_COMMITTED)
    return {"low": low.offset, "high": high.offset, "lso": stable.offset,
            "errors": sorted({low.error_code, high.error_code, stable.error_code})}


def delete_records(bootstrap: str, topic: str, partition: int, offset: int) -> Any:
    body = delete_req.DeleteRecordsRequest(
        topics=(delete_req.DeleteRecordsTopic(
            name=topic,
            partitions=(delete_req.DeleteRecordsPartition(partition_index=partition,
                                                          offset=offset),),
        ),),
        timeout=TIMEOUT,
    )
    return request(bootstrap, body, DeleteRecordsResponse).topics[0].partitions[0]


def fetch(
    bootstrap: str,
    topic: str,
    partition: int,
    offset: int,
    isolation: int = READ_UNCOMMITTED,
    *,
    partition_max_bytes: int = 1 << 20,
    max_bytes: int = 0x7FFFFFFF,
    current_epoch: int = -1,
) -> Any:
    """A Fetch of one partition, with the sizes given and, optionally, the leader epoch the
    fetcher believes in."""
    body = fetch_req.FetchRequest(
        max_wait=timedelta(0), min_bytes=0, max_bytes=max_bytes, isolation_level=isolation,
        topics=(fetch_req.FetchTopic(
            topic=topic,
            partitions=(fetch_req.FetchPartition(
                partition=partition, fetch_offset=offset, partition_max_bytes=partition_max_bytes,
                current_leader_epoch=current_epoch),),
        ),),
        forgotten_topics_data=(),
    )
    return request(bootstrap, body, FetchResponse).responses[0].partitions[0]


def create_topic(
    bootstrap: str, topic: str, partitions: int = 1, replication: int = 1,
    configs: dict[str, str] | None = None, assignments: dict[int, list[int]] | None = None,
    validate_only: bool = False,
) -> dict[str, Any]:
    """The topic's result, without the configs (each broker lists its own catalogue)."""
    body = create_req.CreateTopicsRequest(
        topics=(create_req.CreatableTopic(
            name=topic, num_partitions=partitions, replication_factor=replication,
            assignments=tuple(
                create_req.CreatableReplicaAssignment(partition_index=p, broker_ids=tuple(ids))
                for p, ids in (assignments or {}).items()
            ),
            configs=tuple(create_req.CreatableTopicConfig(name=k, value=v)
                          for k, v in (configs or {}).items()),
        ),),
        timeout=TIMEOUT, validate_only=validate_only,
    )
    result = request(bootstrap, body, CreateTopicsResponse).topics[0]
    return {"error_code": result.error_code, "num_partitions": result.num_partitions,
            "replication_factor": result.replication_factor}


def delete_topic(bootstrap: str, topic: str) -> Any:
    body = delete_topics_req.DeleteTopicsRequest(
        topics=(delete_topics_req.DeleteTopicState(name=topic, topic_id=None),), timeout=TIMEOUT
    )
    return request(bootstrap, body, DeleteTopicsResponse).responses[0]


def metadata(bootstrap: str, topic: str, auto_create: bool = False) -> Any:
    body = metadata_req.MetadataRequest(
        topics=(metadata_req.MetadataRequestTopic(topic_id=None, name=topic),),
        allow_auto_topic_creation=auto_create, include_topic_authorized_operations=False,
    )
    return request(bootstrap, body, MetadataResponse).topics[0]


def offset_commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> Any:
    """A simple (generation -1, no member) commit, as an admin tool sends it."""
    body = commit_req.OffsetCommitRequest(
        group_id=group, generation_id_or_member_epoch=-1, member_id="", group_instance_id=None,
        topics=(commit_req.OffsetCommitRequestTopic(
            name=topic,
            partitions=tuple(
                commit_req.OffsetCommitRequestPartition(
                    partition_index=p, committed_offset=o, committed_leader_epoch=-1,
                    committed_metadata=None)
                for p, o in sorted(offsets.items())
            ),
        ),),
    )
    return request(bootstrap, body, OffsetCommitResponse).topics[0].partitions


def offset_fetch(bootstrap: str, group: str, topic: str, partitions: Sequence[int]) -> Any:
    body = offset_fetch_req.OffsetFetchRequest(
        groups=(offset_fetch_req.OffsetFetchRequestGroup(
            group_id=group,
            topics=(offset_fetch_req.OffsetFetchRequestTopics(
                name=topic, partition_indexes=tuple(partitions)),),
        ),),
    )
    return request(bootstrap, body, OffsetFetchResponse).groups[0]


# -- readiness: waited for identically on both brokers, never observed --------------------------


def until(check: Callable[[], T | None], what: str, limit: float = 30.0) -> T:
    deadline = time.monotonic() + limit
    while True:
        try:
            result = check()
        except OSError:
            result = None
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {limit:.0f} s")
        time.sleep(0.1)


def settled(observe: Callable[[], T], done: Callable[[T], bool], limit: float = 5.0) -> T:
    """The first observation `done` accepts within `limit` seconds, else the last one: for
    what Kafka makes visible after it answers (a group's record, a credential)."""
    deadline = time.monotonic() + limit
    while True:
        seen = observe()
        if done(seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def await_partitions(bootstrap: str, topic: str, partitions: int) -> None:
    """Every partition has a leader that answers ListOffsets (after a create or a restart)."""

    def ready() -> bool | None:
        meta = metadata(bootstrap, topic)
        if meta.error_code != 0 or len(meta.partitions) != partitions:
            return None
        if any(p.error_code != 0 or p.leader_id < 0 for p in meta.partitions):
            return None
        answers = [list_offsets(bootstrap, topic, p, LATEST) for p in range(partitions)]
        return True if all(a.error_code == 0 for a in answers) else None

    until(ready, f"topic {topic}")


def await_stable(bootstrap: str, topic: str, partition: int = 0) -> None:
    """No transaction open any more: Kafka's EndTxn returns before its markers are written."""

    def stable() -> bool | None:
        high = list_offsets(bootstrap, topic, partition, LATEST).offset
        stable = list_offsets(bootstrap, topic, partition, LATEST, READ_COMMITTED).offset
        return stable == high or None

    until(stable, f"markers in {topic}-{partition}", 10)


def await_coordinator(bootstrap: str, group: str) -> None:
    """The group's coordinator is loaded (Kafka creates __consumer_offsets on first use)."""

    def ready() -> bool | None:
        body = FindCoordinatorRequest(key_type=0, coordinator_keys=(group,))
        (answer,) = request(bootstrap, body, FindCoordinatorResponse).coordinators
        if answer.error_code != 0:
            return None
        fetched = offset_fetch(bootstrap, group, "__none__", [0])
        return True if fetched.error_code == 0 else None

    until(ready, f"coordinator of {group}")
