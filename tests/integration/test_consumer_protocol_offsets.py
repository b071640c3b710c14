"""OffsetCommit and OffsetFetch against a consumer-protocol group, on the wire: v10 (topic ids,
Kafka 4.2+) and v9 (what librdkafka and Java 4.0/4.1 send), with the member epoch checks
(STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID) and UNKNOWN_TOPIC_ID for ids the cluster does not know.
The member joins with a raw ConsumerGroupHeartbeat, which also tells it the topic's id."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from test_consumer_protocol import BROKER_OVERRIDES, PARTITIONS, TOPIC, create_topic

from rafka.cli.kafka_client import Connection
from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(60)

OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, CONSUMER_GROUP_HEARTBEAT = 8, 9, 10, 68
GROUP = "by-id"


@pytest.fixture
def conn(broker_factory) -> Any:
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    create_topic(broker.bootstrap)
    host, port = broker.bootstrap.rsplit(":", 1)
    connection = Connection(host, int(port), "raw-consumer", 20)
    yield connection
    connection.close()


def join(conn: Connection, member_id: str) -> Any:
    # The first FindCoordinator creates __consumer_offsets; its shard then loads.
    wait_until(
        lambda: (
            conn.send(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": [GROUP]})
            .coordinators[0]
            .error_code
            == ErrorCode.none
        ),
        30,
        "the group's coordinator",
    )
    joined = conn.send(
        CONSUMER_GROUP_HEARTBEAT,
        1,
        {
            "group_id": GROUP,
            "member_id": member_id,
            "member_epoch": 0,
            "instance_id": None,
            "rack_id": None,
            "rebalance_timeout": 30000,
            "subscribed_topic_names": [TOPIC],
            "subscribed_topic_regex": None,
            "server_assignor": None,
            "topic_partitions": [],
        },
    )
    assert joined.error_code == ErrorCode.none
    return joined


def send_commit_v10(
    conn: Connection,
    member_id: str,
    epoch: int,
    offsets: dict[uuid.UUID, dict[int, int]],
    metadata: str | None = None,
) -> Any:
    """OffsetCommit v10 of `offsets` (topic id -> partition -> offset)."""
    return conn.send(
        OFFSET_COMMIT,
        10,
        {
            "group_id": GROUP,
            "generation_id_or_member_epoch": epoch,
            "member_id": member_id,
            "group_instance_id": None,
            "topics": [
                {
                    "topic_id": topic_id,
                    "partitions": [
                        {
                            "partition_index": partition,
                            "committed_offset": offset,
                            "committed_leader_epoch": -1,
                            "committed_metadata": metadata,
                        }
                        for partition, offset in partitions.items()
                    ],
                }
                for topic_id, partitions in offsets.items()
            ],
        },
    )


def commit_v10(
    conn: Connection, member_id: str, epoch: int, topics: dict[uuid.UUID, int]
) -> list[tuple[uuid.UUID | None, int, ErrorCode]]:
    offsets = {topic_id: {0: offset} for topic_id, offset in topics.items()}
    response = send_commit_v10(conn, member_id, epoch, offsets, "by id")
    return [
        (t.topic_id, p.partition_index, p.error_code) for t in response.topics for p in t.partitions
    ]


def commit_v9(conn: Connection, member_id: str, epoch: int, version: int = 9) -> ErrorCode:
    response = conn.send(
        OFFSET_COMMIT,
        version,
        {
            "group_id": GROUP,
            "generation_id_or_member_epoch": epoch,
            "member_id": member_id,
            "group_instance_id": None,
            "topics": [
                {
                    "name": TOPIC,
                    "partitions": [
                        {
                            "partition_index": 1,
                            "committed_offset": 9,
                            "committed_leader_epoch": -1,
                            "committed_metadata": None,
                        }
                    ],
                }
            ],
        },
    )
    return response.topics[0].partitions[0].error_code


def fetch_v10(
    conn: Connection, member_id: str | None, epoch: int, topics: list[uuid.UUID] | None
) -> Any:
    response = conn.send(
        OFFSET_FETCH,
        10,
        {
            "groups": [
                {
                    "group_id": GROUP,
                    "member_id": member_id,
                    "member_epoch": epoch,
                    "topics": None
                    if topics is None
                    else [{"topic_id": t, "partition_indexes": [0, 1]} for t in topics],
                }
            ],
            "require_stable": False,
        },
    )
    return response.groups[0]


def test_offsets_by_topic_id_and_member_epoch(conn: Connection) -> None:
    assert conn.versions[OFFSET_COMMIT] == (2, 10)
    assert conn.versions[OFFSET_FETCH] == (1, 10)
    member_id = str(uuid.uuid4())
    joined = join(conn, member_id)
    epoch = joined.member_epoch
    [assigned] = joined.assignment.topic_partitions
    topic_id = assigned.topic_id
    assert sorted(assigned.partitions) == list(range(PARTITIONS))
    unknown = uuid.uuid4()

    # v10: by id; an id nobody knows is UNKNOWN_TOPIC_ID, the rest is committed.
    assert commit_v10(conn, member_id, epoch, {topic_id: 5, unknown: 7}) == [
        (topic_id, 0, ErrorCode.none),
        (unknown, 0, ErrorCode.unknown_topic_id),
    ]
    # The member epoch is checked: older or newer is stale, an unknown member is unknown.
    for wrong in (epoch - 1, epoch + 1):
        assert commit_v10(conn, member_id, wrong, {topic_id: 6}) == [
            (topic_id, 0, ErrorCode.stale_member_epoch)
        ]
    assert commit_v10(conn, "nobody", epoch, {topic_id: 6}) == [
        (topic_id, 0, ErrorCode.unknown_member_id)
    ]
    # v9 (librdkafka, Java 4.0/4.1) names topics, with the same epoch checks; below v9 a
    # consumer-protocol member cannot commit.
    assert commit_v9(conn, member_id, epoch) == ErrorCode.none
    assert commit_v9(conn, member_id, epoch - 1) == ErrorCode.stale_member_epoch
    assert commit_v9(conn, member_id, epoch, version=8) == ErrorCode.unsupported_version

    # v10 fetch: by id, unknown ids answered per partition, every topic by id when asked for all.
    group = fetch_v10(conn, member_id, epoch, [topic_id, unknown])
    assert group.error_code == ErrorCode.none
    found = {
        (t.topic_id, p.partition_index): (p.committed_offset, p.metadata, p.error_code)
        for t in group.topics
        for p in t.partitions
    }
    assert found == {
        (topic_id, 0): (5, "by id", ErrorCode.none),
        (topic_id, 1): (9, "", ErrorCode.none),
        (unknown, 0): (-1, "", ErrorCode.unknown_topic_id),
        (unknown, 1): (-1, "", ErrorCode.unknown_topic_id),
    }
    everything = fetch_v10(conn, None, -1, None)
    assert [
        (t.topic_id, [p.committed_offset for p in t.partitions]) for t in everything.topics
    ] == [(topic_id, [5, 9])]
    assert fetch_v10(conn, member_id, epoch + 1, None).error_code == ErrorCode.stale_member_epoch
    assert fetch_v10(conn, "nobody", epoch, None).error_code == ErrorCode.unknown_member_id


TOPIC_IDS: dict[Connection, uuid.UUID] = {}  # the topic's id, as each connection learnt it


def heartbeat(conn: Connection, member_id: str, epoch: int, owned: list[int]) -> Any:
    """A member's heartbeat, owning `owned` of the topic."""
    topic_id = TOPIC_IDS[conn]
    response = conn.send(
        CONSUMER_GROUP_HEARTBEAT,
        1,
        {
            "group_id": GROUP,
            "member_id": member_id,
            "member_epoch": epoch,
            "instance_id": None,
            "rack_id": None,
            "rebalance_timeout": -1,
            "subscribed_topic_names": None,
            "subscribed_topic_regex": None,
            "server_assignor": None,
            "topic_partitions": [{"topic_id": topic_id, "partitions": owned}],
        },
    )
    assert response.error_code == ErrorCode.none, response
    return response


def assigned(response: Any) -> list[int]:
    [topic] = response.assignment.topic_partitions
    return sorted(topic.partitions)


def commit_partitions(
    conn: Connection, member_id: str, epoch: int, partitions: list[int]
) -> set[ErrorCode]:
    offsets = {TOPIC_IDS[conn]: dict.fromkeys(partitions, 1)}
    response = send_commit_v10(conn, member_id, epoch, offsets)
    return {p.error_code for t in response.topics for p in t.partitions}


def test_a_commit_at_a_lagging_epoch_counts_for_partitions_held_since(broker_factory) -> None:
    """Kafka 4.3 (KIP-1251): a member's epoch can move on while its commit is in flight. A commit
    at an older epoch is taken for the partitions the member has held since that epoch or
    before, refused for any other; a newer epoch is always refused. The partitions' epochs are
    kept in `__consumer_offsets`, so a restarted coordinator judges the same."""
    broker: BrokerProcess = broker_factory(**BROKER_OVERRIDES).start()
    create_topic(broker.bootstrap)
    host, port = broker.bootstrap.rsplit(":", 1)
    conn = Connection(host, int(port), "raw-consumer", 20)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    joined = join(conn, first)
    TOPIC_IDS[conn] = joined.assignment.topic_partitions[0].topic_id
    e1 = joined.member_epoch
    assert assigned(joined) == [0, 1, 2, 3]

    # A second member joins: the first gives half back, then moves to the new epoch with the
    # partitions it kept (held since e1).
    join(conn, second)
    revoking = heartbeat(conn, first, e1, [0, 1, 2, 3])
    assert revoking.member_epoch == e1
    kept = assigned(revoking)
    assert len(kept) == 2
    moved = heartbeat(conn, first, e1, kept)
    e2 = moved.member_epoch
    assert e2 > e1 and assigned(moved) == kept
    gone = sorted({0, 1, 2, 3} - set(kept))

    assert commit_partitions(conn, first, e1, kept) == {ErrorCode.none}
    assert commit_partitions(conn, first, e2, kept) == {ErrorCode.none}
    # A partition no longer held, or an epoch from the future: refused, for the whole request.
    assert commit_partitions(conn, first, e1, [*kept, gone[0]]) == {ErrorCode.stale_member_epoch}
    assert commit_partitions(conn, first, e2 + 1, kept) == {ErrorCode.stale_member_epoch}

    # The second member leaves: the first takes everything at a third epoch.
    conn.send(
        CONSUMER_GROUP_HEARTBEAT,
        1,
        {"group_id": GROUP, "member_id": second, "member_epoch": -1, "topic_partitions": None},
    )
    grown = heartbeat(conn, first, e2, kept)
    e3 = grown.member_epoch
    assert e3 > e2 and assigned(grown) == [0, 1, 2, 3]
    assert commit_partitions(conn, first, e2, kept) == {ErrorCode.none}
    assert commit_partitions(conn, first, e2, gone) == {ErrorCode.stale_member_epoch}
    conn.close()

    broker.kill()
    broker.start()
    conn = Connection(host, int(port), "raw-consumer", 20)
    TOPIC_IDS[conn] = joined.assignment.topic_partitions[0].topic_id
    wait_until(
        lambda: commit_partitions(conn, first, e3, [0]) == {ErrorCode.none},
        30,
        "the group loaded again",
    )
    assert commit_partitions(conn, first, e1, kept) == {ErrorCode.none}
    assert commit_partitions(conn, first, e2, gone) == {ErrorCode.stale_member_epoch}
    assert commit_partitions(conn, first, e1, gone) == {ErrorCode.stale_member_epoch}
    conn.close()
