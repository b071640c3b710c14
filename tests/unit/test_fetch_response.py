"""The hand-written Fetch response encoder matches kio's encoding byte for byte, v4–v16, tagged
fields included."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rafka.protocol.fetch_response import (
    FetchedPartition,
    FetchedTopic,
    decode_replica_fetch_response,
    encode_fetch_response,
)
from rafka.protocol.messages import build, encode_response_body, response_class

VERSIONS = range(4, 17)

partitions = st.builds(
    FetchedPartition,
    partition_index=st.integers(0, 2**31 - 1),
    error_code=st.sampled_from([0, 1, 3, 6, 74, 75]),
    high_watermark=st.integers(-1, 2**63 - 1),
    last_stable_offset=st.integers(-1, 2**63 - 1),
    log_start_offset=st.integers(-1, 2**63 - 1),
    records=st.one_of(st.none(), st.binary(max_size=300)),
    aborted_transactions=st.one_of(
        st.none(),
        st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1)), max_size=3),
    ),
    preferred_read_replica=st.integers(-1, 5),
    diverging_epoch=st.one_of(
        st.none(), st.just((-1, -1)), st.tuples(st.integers(-1, 2**31 - 1), st.integers(-1, 2**62))
    ),
    current_leader=st.one_of(
        st.none(), st.just((-1, -1)), st.tuples(st.integers(-1, 5), st.integers(-1, 2**31 - 1))
    ),
)
topics = st.lists(
    st.builds(
        FetchedTopic,
        name=st.text(alphabet="abcxyz-._0123456789", min_size=1, max_size=20),
        topic_id=st.uuids(),
        partitions=st.lists(partitions, max_size=4),
    ),
    max_size=3,
)


def _tags(p: FetchedPartition) -> dict:
    tags: dict = {}
    if p.diverging_epoch is not None:
        epoch, end_offset = p.diverging_epoch
        tags["diverging_epoch"] = {"epoch": epoch, "end_offset": end_offset}
    if p.current_leader is not None:
        leader_id, leader_epoch = p.current_leader
        tags["current_leader"] = {"leader_id": leader_id, "leader_epoch": leader_epoch}
    return tags


def kio_encoding(version: int, topic_list: list[FetchedTopic], error: int, session: int) -> bytes:
    def partition_dict(p: FetchedPartition) -> dict:
        return {
            "partition_index": p.partition_index,
            "error_code": p.error_code,
            "high_watermark": p.high_watermark,
            "last_stable_offset": p.last_stable_offset,
            "log_start_offset": p.log_start_offset,
            "aborted_transactions": None
            if p.aborted_transactions is None
            else [{"producer_id": a, "first_offset": b} for a, b in p.aborted_transactions],
            "preferred_read_replica": p.preferred_read_replica,
            "records": p.records,
            **_tags(p),
        }

    data = {
        "throttle_time": 0,
        "error_code": error,
        "session_id": session,
        "responses": [
            {
                "topic": t.name,
                "topic_id": t.topic_id,
                "partitions": [partition_dict(p) for p in t.partitions],
            }
            for t in topic_list
        ],
    }
    return encode_response_body(build(response_class(1, version), data))


@settings(max_examples=300, deadline=None)
@given(
    version=st.sampled_from(VERSIONS),
    topic_list=topics,
    error=st.sampled_from([0, 70]),
    session=st.integers(0, 2**31 - 1),
)
def test_matches_kio(version: int, topic_list: list[FetchedTopic], error: int, session: int):
    ours = b"".join(
        bytes(part)
        for part in encode_fetch_response(version, topic_list, error_code=error, session_id=session)
    )
    assert ours == kio_encoding(version, topic_list, error, session)


def test_records_are_passed_through_without_copying() -> None:
    records = memoryview(b"r" * 1000)
    topic = FetchedTopic("t", uuid.uuid4(), [FetchedPartition(0, 0, 5, 5, 0, records)])
    parts = encode_fetch_response(12, [topic])
    assert any(part is records for part in parts)


def _fields(p: FetchedPartition) -> tuple:
    def known(pair: tuple[int, int] | None) -> tuple[int, int] | None:
        return None if pair is None or tuple(pair) == (-1, -1) else tuple(pair)

    return (
        p.partition_index,
        p.error_code,
        p.high_watermark,
        p.last_stable_offset,
        p.log_start_offset,
        None if p.records is None else bytes(p.records),
        None if p.aborted_transactions is None else [tuple(a) for a in p.aborted_transactions],
        p.preferred_read_replica,
        known(p.diverging_epoch),
        known(p.current_leader),
    )


@settings(max_examples=300, deadline=None)
@given(topic_list=topics, error=st.sampled_from([0, 70]), session=st.integers(0, 2**31 - 1))
def test_decodes_what_kio_encodes_at_v12(
    topic_list: list[FetchedTopic], error: int, session: int
) -> None:
    body = kio_encoding(12, topic_list, error, session)
    decoded = decode_replica_fetch_response(b"head" + body, 4)
    assert (decoded.error_code, decoded.session_id) == (error, session)
    assert [(t.name, [_fields(p) for p in t.partitions]) for t in decoded.topics] == [
        (t.name, [_fields(p) for p in t.partitions]) for t in topic_list
    ]


@settings(max_examples=100, deadline=None)
@given(topic_list=topics.filter(bool), cut=st.floats(0, 1, exclude_max=True))
def test_a_truncated_response_is_a_value_error(topic_list: list[FetchedTopic], cut: float) -> None:
    body = kio_encoding(12, topic_list, 0, 0)
    with pytest.raises(ValueError):
        decode_replica_fetch_response(body[: int(len(body) * cut)], 0)
