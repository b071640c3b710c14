"""The hand-written replica Fetch request encoder (v12) matches kio's encoding byte for byte."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_writer

from rafka.broker.cluster import raft_wire as wire
from rafka.protocol.fetch_request import VERSION, FetchPosition, encode_replica_fetch_request
from rafka.protocol.messages import build, decode_request_body, request_class
from rafka.replication.messages import FetchRequest

positions = st.lists(
    st.builds(
        FetchPosition,
        topic=st.sampled_from(["a", "__cluster_metadata", "topic-ü", "x" * 40]),
        partition=st.integers(0, 2**31 - 1),
        current_leader_epoch=st.integers(-1, 2**31 - 1),
        fetch_offset=st.integers(0, 2**63 - 1),
        last_fetched_epoch=st.integers(-1, 2**31 - 1),
        partition_max_bytes=st.integers(0, 2**31 - 1),
    ),
    max_size=6,
)


def kio_encoding(
    cluster_id: str | None, replica_id: int, max_wait_ms: int, parts: list[FetchPosition]
) -> bytes:
    topics: dict[str, list[dict]] = {}
    for p in parts:
        topics.setdefault(p.topic, []).append(
            {
                "partition": p.partition,
                "current_leader_epoch": p.current_leader_epoch,
                "fetch_offset": p.fetch_offset,
                "last_fetched_epoch": p.last_fetched_epoch,
                "log_start_offset": p.log_start_offset,
                "partition_max_bytes": p.partition_max_bytes,
            }
        )
    data = {
        "cluster_id": cluster_id,
        "replica_id": replica_id,
        "max_wait": max_wait_ms,
        "min_bytes": 1,
        "max_bytes": 0x7FFFFFFF,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()],
        "forgotten_topics_data": [],
        "rack_id": "",
    }
    cls = request_class(1, VERSION)
    body = io.BytesIO()
    entity_writer(cls)(body, build(cls, data))
    return body.getvalue()


@settings(max_examples=300, deadline=None)
@given(
    cluster_id=st.one_of(st.none(), st.text(max_size=22)),
    replica_id=st.integers(0, 2**31 - 1),
    max_wait_ms=st.integers(0, 2**31 - 1),
    parts=positions,
)
def test_matches_kio(
    cluster_id: str | None, replica_id: int, max_wait_ms: int, parts: list[FetchPosition]
) -> None:
    ours = encode_replica_fetch_request(cluster_id, replica_id, max_wait_ms, parts)
    assert ours == kio_encoding(cluster_id, replica_id, max_wait_ms, parts)


def test_the_size_a_follower_asks_for_reaches_the_leaders_raft_request() -> None:
    """A follower's Raft FetchRequest.max_bytes (replica.fetch.max.bytes) goes on the wire as the
    partition's max bytes and comes back out of it at the leader."""
    asked = {
        ("t", 0): FetchRequest(4, 2, 10, 3, 500, 7, max_bytes=12345),
        ("t", 1): FetchRequest(4, 2, 0, 0, 500, 7, max_bytes=0),
    }
    body = wire.fetch_request("cluster", 2, 500, asked)
    decoded = decode_request_body(request_class(1, VERSION), body, 0)
    [topic] = decoded.topics
    got = [wire.fetch_from_wire(2, 500, p, 7) for p in topic.partitions]
    assert [m.max_bytes for m in got] == [12345, 0]
    assert [(m.fetch_offset, m.last_fetched_epoch) for m in got] == [(10, 3), (0, 0)]
