"""The group APIs on the wire, with raw requests at chosen versions, for the error codes that
clients handle internally (fencing, rebalances) and the batched and multi-group forms.

Requests are encoded and responses decoded by kio through rafka.cli.kafka_client.Connection, one
TCP connection per simulated member; JoinGroup and SyncGroup requests that wait for a rebalance
run in a thread pool.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from broker_process import BrokerProcess

from rafka.cli.kafka_client import Connection

pytestmark = pytest.mark.timeout(60)

OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 8, 9, 10
JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS, CREATE_TOPICS, DELETE_GROUPS, OFFSET_DELETE = 15, 16, 19, 42, 47

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
GROUP_MAX_SIZE_REACHED = 81
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86

TOPIC = "fenced"


def subscription(*topics: str) -> bytes:
    out = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        out += struct.pack(">h", len(topic)) + topic.encode()
    return out + struct.pack(">i", -1)


SUB = subscription(TOPIC)


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(
        tmp_path_factory.mktemp("groups-protocol"),
        **{
            "group.max.size": "2",
            "group.min.session.timeout.ms": "1000",
            "group.initial.rebalance.delay.ms": "0",
        },
    ).start()
    conn = connect(process)
    created = conn.send(
        CREATE_TOPICS,
        7,
        {
            "topics": [
                {
                    "name": name,
                    "num_partitions": 2,
                    "replication_factor": 1,
                    "assignments": [],
                    "configs": [],
                }
                for name in (TOPIC, "unsubscribed")
            ],
            "timeout": 30000,
            "validate_only": False,
        },
    )
    assert all(t.error_code == NONE for t in created.topics)
    # Every test may start with a join: wait (bounded) until the group coordinator answers (a
    # FindCoordinator creates __consumer_offsets), so that none depends on an earlier test.
    deadline = time.monotonic() + 30
    while True:
        conn.send(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": ["probe"]})
        fetched = conn.send(
            OFFSET_FETCH,
            8,
            {"groups": [{"group_id": "probe", "topics": None}], "require_stable": False},
        )
        if fetched.groups[0].error_code == NONE:
            break
        assert time.monotonic() < deadline, "the group coordinator never answered"
        time.sleep(0.05)
    conn.close()
    yield process
    process.kill()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


def connect(broker: BrokerProcess) -> Connection:
    host, port = broker.bootstrap.rsplit(":", 1)
    return Connection(host, int(port), "raw-member", 20)


def join(
    conn: Connection,
    group: str,
    member_id: str = "",
    instance: str | None = None,
    version: int = 9,
    protocols: tuple[tuple[str, bytes], ...] = (("range", SUB),),
    session: int = 10000,
) -> Any:
    return conn.send(
        JOIN_GROUP,
        version,
        {
            "group_id": group,
            "session_timeout": session,
            "rebalance_timeout": 10000,
            "member_id": member_id,
            "group_instance_id": instance,
            "protocol_type": "consumer",
            "protocols": [{"name": n, "metadata": m} for n, m in protocols],
            "reason": None,
        },
    )


def join_new(conn: Connection, group: str, **kw: Any) -> Any:
    first = join(conn, group, **kw)
    assert first.error_code == MEMBER_ID_REQUIRED
    return join(conn, group, member_id=first.member_id, **kw)


def sync(
    conn: Connection,
    group: str,
    joined: Any,
    assignments: dict[str, bytes] | None = None,
    instance: str | None = None,
    generation: int | None = None,
) -> Any:
    return conn.send(
        SYNC_GROUP,
        5,
        {
            "group_id": group,
            "generation_id": joined.generation_id if generation is None else generation,
            "member_id": joined.member_id,
            "group_instance_id": instance,
            "protocol_type": "consumer",
            "protocol_name": joined.protocol_name,
            "assignments": [
                {"member_id": m, "assignment": a} for m, a in (assignments or {}).items()
            ],
        },
    )


def heartbeat(
    conn: Connection, group: str, generation: int, member_id: str, instance: str | None = None
) -> int:
    response = conn.send(
        HEARTBEAT,
        4,
        {
            "group_id": group,
            "generation_id": generation,
            "member_id": member_id,
            "group_instance_id": instance,
        },
    )
    return response.error_code


def commit(
    conn: Connection,
    group: str,
    generation: int,
    member_id: str,
    offset: int = 1,
    instance: str | None = None,
    topic: str = TOPIC,
) -> int:
    response = conn.send(
        OFFSET_COMMIT,
        9,
        {
            "group_id": group,
            "generation_id_or_member_epoch": generation,
            "member_id": member_id,
            "group_instance_id": instance,
            "topics": [
                {
                    "name": topic,
                    "partitions": [
                        {
                            "partition_index": 0,
                            "committed_offset": offset,
                            "committed_leader_epoch": -1,
                            "committed_metadata": "raw",
                        }
                    ],
                }
            ],
        },
    )
    return response.topics[0].partitions[0].error_code


def describe(conn: Connection, group: str, version: int = 5) -> Any:
    return conn.send(
        DESCRIBE_GROUPS, version, {"groups": [group], "include_authorized_operations": False}
    ).groups[0]


def wait_for_state(conn: Connection, group: str, state: str) -> None:
    deadline = time.monotonic() + 10
    while describe(conn, group).group_state != state:
        assert time.monotonic() < deadline, f"group {group} never reached {state}"
        time.sleep(0.01)


def stable_single_member(conn: Connection, group: str, **kw: Any) -> Any:
    joined = join_new(conn, group, **kw)
    assert joined.error_code == NONE
    synced = sync(conn, group, joined, {joined.member_id: b"assigned"})
    assert synced.error_code == NONE
    return joined


# -- FindCoordinator ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_find_coordinator_single_key(broker: BrokerProcess, version: int) -> None:
    conn = connect(broker)
    found = conn.send(FIND_COORDINATOR, version, {"key": "some-group", "key_type": 0})
    assert found.error_code == NONE
    assert (found.host, found.port) == ("127.0.0.1", broker.port)


def test_find_coordinator_batched_keys_and_transactions(broker: BrokerProcess) -> None:
    conn = connect(broker)
    found = conn.send(
        FIND_COORDINATOR, 6, {"key_type": 0, "coordinator_keys": ["a", "b", "c"]}
    ).coordinators
    assert [(c.key, c.error_code, c.port) for c in found] == [
        ("a", NONE, broker.port),
        ("b", NONE, broker.port),
        ("c", NONE, broker.port),
    ]
    txn = conn.send(FIND_COORDINATOR, 4, {"key_type": 1, "coordinator_keys": ["t"]})
    # Transaction coordinators are found the same way (issue 5).
    assert (txn.coordinators[0].error_code, txn.coordinators[0].port) == (NONE, broker.port)


# -- fencing --------------------------------------------------------------------------------------


def test_dynamic_member_fencing(broker: BrokerProcess, pool: ThreadPoolExecutor) -> None:
    group = "dynamic"
    one, two, three = connect(broker), connect(broker), connect(broker)

    first = join(one, group)
    assert first.error_code == MEMBER_ID_REQUIRED and first.member_id  # JoinGroup v4+
    joined = join(one, group, member_id=first.member_id)
    assert (joined.error_code, joined.generation_id) == (NONE, 1)
    assert sync(one, group, joined, {joined.member_id: b"p0"}).assignment == b"p0"

    assert heartbeat(one, group, 0, joined.member_id) == ILLEGAL_GENERATION
    assert heartbeat(one, group, 1, "nobody") == UNKNOWN_MEMBER_ID
    assert commit(one, group, 0, joined.member_id) == ILLEGAL_GENERATION
    assert commit(one, group, 1, "nobody") == UNKNOWN_MEMBER_ID
    assert commit(one, group, 1, joined.member_id) == NONE

    # A second member's JoinGroup waits for the rebalance it starts...
    second_id = join(two, group).member_id
    second: Future = pool.submit(join, two, group, second_id)
    wait_for_state(three, group, "PreparingRebalance")
    assert heartbeat(one, group, 1, joined.member_id) == REBALANCE_IN_PROGRESS
    assert sync(one, group, joined).error_code == REBALANCE_IN_PROGRESS
    assert commit(one, group, 1, joined.member_id, offset=2) == NONE  # still generation 1
    # ...which completes when the first member rejoins.
    rejoined = join(one, group, member_id=joined.member_id)
    other = second.result(10)
    assert rejoined.generation_id == other.generation_id == 2
    leader, follower = (rejoined, other) if rejoined.members else (other, rejoined)
    assert {m.member_id for m in leader.members} == {joined.member_id, second_id}
    assert commit(one, group, 2, rejoined.member_id) == REBALANCE_IN_PROGRESS  # not synced
    leader_conn, follower_conn = (one, two) if leader is rejoined else (two, one)
    assignments = {leader.member_id: b"L", follower.member_id: b"F"}
    assert sync(leader_conn, group, leader, assignments).assignment == b"L"
    assert sync(follower_conn, group, follower).assignment == b"F"

    # group.max.size=2: a third member is turned away before it is even given an id.
    refused = join(three, group)
    assert refused.error_code == GROUP_MAX_SIZE_REACHED
    assert heartbeat(one, group, 2, rejoined.member_id) == NONE  # and nobody rebalanced


def test_join_validation(broker: BrokerProcess) -> None:
    conn = connect(broker)
    assert join(conn, "v", session=10).error_code == INVALID_SESSION_TIMEOUT
    stable_single_member(conn, "v")
    other = join(conn, "v", version=3, protocols=(("sticky", SUB),))
    assert other.error_code == INCONSISTENT_GROUP_PROTOCOL
    assert join(conn, "v", member_id="made-up").error_code == UNKNOWN_MEMBER_ID
    old = join(conn, "v0-group", version=0)  # v0: no member id round trip, no rebalance timeout
    assert (old.error_code, old.generation_id, old.protocol_name) == (NONE, 1, "range")
    assert old.leader == old.member_id


def test_static_member_rejoin_and_fencing(broker: BrokerProcess) -> None:
    group = "static"
    conn = connect(broker)
    first = join(conn, group, instance="instance-1")
    assert first.error_code == NONE  # static members need no MEMBER_ID_REQUIRED round trip
    sync(conn, group, first, {first.member_id: b"mine"}, instance="instance-1")

    # The instance restarts within its session timeout: same generation, new member id.
    again = join(conn, group, instance="instance-1")
    assert again.error_code == NONE
    assert again.generation_id == first.generation_id
    assert again.member_id != first.member_id
    assert again.skip_assignment  # it leads, but keeps the current assignment (v9)
    assert sync(conn, group, again, instance="instance-1").assignment == b"mine"

    stale = first.member_id
    gen = first.generation_id
    assert heartbeat(conn, group, gen, stale, "instance-1") == FENCED_INSTANCE_ID
    assert join(conn, group, member_id=stale, instance="instance-1").error_code == (
        FENCED_INSTANCE_ID
    )
    assert commit(conn, group, gen, stale, instance="instance-1") == FENCED_INSTANCE_ID
    assert sync(conn, group, first, instance="instance-1").error_code == FENCED_INSTANCE_ID
    assert heartbeat(conn, group, gen, again.member_id, "instance-1") == NONE


def test_leave_group_batched_and_single(broker: BrokerProcess) -> None:
    group = "leaving"
    conn = connect(broker)
    static = join(conn, group, instance="s")
    sync(conn, group, static, {static.member_id: b""}, instance="s")
    response = conn.send(
        LEAVE_GROUP,
        5,
        {
            "group_id": group,
            "members": [
                {"member_id": "ghost", "group_instance_id": None, "reason": None},
                {"member_id": "", "group_instance_id": "s", "reason": "test"},
            ],
        },
    )
    assert response.error_code == NONE
    assert [(m.member_id, m.group_instance_id, m.error_code) for m in response.members] == [
        ("ghost", None, UNKNOWN_MEMBER_ID),
        ("", "s", NONE),
    ]
    assert describe(conn, group).group_state == "Empty"
    single = conn.send(LEAVE_GROUP, 0, {"group_id": group, "member_id": "ghost"})
    assert single.error_code == UNKNOWN_MEMBER_ID


# -- offsets, listing, deleting -------------------------------------------------------------------


def test_offset_fetch_for_many_groups_at_once(broker: BrokerProcess) -> None:
    conn = connect(broker)
    assert commit(conn, "fetch-a", -1, "", offset=11) == NONE
    assert commit(conn, "fetch-b", -1, "", offset=22) == NONE
    response = conn.send(
        OFFSET_FETCH,
        8,
        {
            "groups": [
                {"group_id": "fetch-a", "topics": None},
                {"group_id": "fetch-b", "topics": [{"name": TOPIC, "partition_indexes": [0, 1]}]},
                {"group_id": "fetch-none", "topics": [{"name": TOPIC, "partition_indexes": [0]}]},
            ],
            "require_stable": False,
        },
    )
    found = {
        g.group_id: [
            (t.name, p.partition_index, p.committed_offset, p.metadata)
            for t in g.topics
            for p in t.partitions
        ]
        for g in response.groups
    }
    assert found == {
        "fetch-a": [(TOPIC, 0, 11, "raw")],
        "fetch-b": [(TOPIC, 0, 22, "raw"), (TOPIC, 1, -1, "")],
        "fetch-none": [(TOPIC, 0, -1, "")],
    }
    single = conn.send(
        OFFSET_FETCH,
        1,
        {"group_id": "fetch-a", "topics": [{"name": TOPIC, "partition_indexes": [0]}]},
    )
    assert single.topics[0].partitions[0].committed_offset == 11


def test_describe_list_and_delete(broker: BrokerProcess) -> None:
    conn = connect(broker)
    active = stable_single_member(conn, "listed-active")
    assert commit(conn, "listed-active", 1, active.member_id) == NONE
    assert commit(conn, "listed-empty", -1, "", offset=5) == NONE

    described = describe(conn, "listed-active")
    assert (described.group_state, described.protocol_type, described.protocol_data) == (
        "Stable",
        "consumer",
        "range",
    )
    assert described.members[0].member_assignment == b"assigned"
    assert describe(conn, "missing", version=5).group_state == "Dead"
    missing = describe(conn, "missing", version=6)
    assert (missing.error_code, missing.error_message) == (
        GROUP_ID_NOT_FOUND,
        "Group missing not found.",
    )

    stable = conn.send(LIST_GROUPS, 5, {"states_filter": ["Stable"], "types_filter": []})
    names = {g.group_id: g.group_state for g in stable.groups}
    assert names.get("listed-active") == "Stable" and "listed-empty" not in names
    every = conn.send(LIST_GROUPS, 0, {})
    assert {"listed-active", "listed-empty"} <= {g.group_id for g in every.groups}
    none = conn.send(LIST_GROUPS, 5, {"states_filter": [], "types_filter": ["consumer"]})
    assert none.groups == ()  # KIP-848 groups only; ours are classic

    deleted = conn.send(DELETE_GROUPS, 2, {"groups_names": ["listed-active", "listed-empty"]})
    assert [(r.group_id, r.error_code) for r in deleted.results] == [
        ("listed-active", NON_EMPTY_GROUP),
        ("listed-empty", NONE),
    ]
    assert describe(conn, "listed-empty", version=6).error_code == GROUP_ID_NOT_FOUND


def test_offset_delete(broker: BrokerProcess) -> None:
    conn = connect(broker)
    member = stable_single_member(conn, "pruned")
    assert commit(conn, "pruned", 1, member.member_id) == NONE
    assert commit(conn, "pruned", 1, member.member_id, topic="unsubscribed") == NONE
    response = conn.send(
        OFFSET_DELETE,
        0,
        {
            "group_id": "pruned",
            "topics": [
                {"name": TOPIC, "partitions": [{"partition_index": 0}]},
                {"name": "unsubscribed", "partitions": [{"partition_index": 0}]},
                {"name": "no-such-topic", "partitions": [{"partition_index": 0}]},
            ],
        },
    )
    assert response.error_code == NONE
    # As Kafka 4.3.1: what it refuses before asking the coordinator comes first.
    assert [(t.name, t.partitions[0].error_code) for t in response.topics] == [
        ("no-such-topic", UNKNOWN_TOPIC_OR_PARTITION),
        (TOPIC, GROUP_SUBSCRIBED_TO_TOPIC),
        ("unsubscribed", NONE),
    ]
    missing = conn.send(OFFSET_DELETE, 0, {"group_id": "never", "topics": []})
    assert missing.error_code == GROUP_ID_NOT_FOUND


# -- every version --------------------------------------------------------------------------------

VERSIONS = {
    JOIN_GROUP: (0, 9),
    SYNC_GROUP: (0, 5),
    HEARTBEAT: (0, 4),
    LEAVE_GROUP: (0, 5),
    OFFSET_COMMIT: (2, 10),
    OFFSET_FETCH: (1, 10),
    DESCRIBE_GROUPS: (0, 6),
    LIST_GROUPS: (0, 5),
    DELETE_GROUPS: (0, 2),
}


def test_api_versions_advertise_the_group_apis(broker: BrokerProcess) -> None:
    conn = connect(broker)
    for api_key, versions in {**VERSIONS, FIND_COORDINATOR: (0, 6), OFFSET_DELETE: (0, 0)}.items():
        assert conn.versions[api_key] == versions, api_key


@pytest.mark.parametrize("level", range(10))
def test_a_whole_group_lifecycle_at_every_version(broker: BrokerProcess, level: int) -> None:
    """Join, sync, heartbeat, commit, fetch, describe, list, leave and delete, each API at
    min(level, its newest) version (but at least its oldest)."""

    def v(api_key: int) -> int:
        low, high = VERSIONS[api_key]
        return max(low, min(level, high))

    group = f"lifecycle-v{level}"
    conn = connect(broker)
    request = {
        "group_id": group,
        "session_timeout": 10000,
        "rebalance_timeout": 10000,
        "member_id": "",
        "group_instance_id": None,
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": SUB}],
    }
    joined = conn.send(JOIN_GROUP, v(JOIN_GROUP), request)
    if joined.error_code == MEMBER_ID_REQUIRED:
        joined = conn.send(JOIN_GROUP, v(JOIN_GROUP), {**request, "member_id": joined.member_id})
    assert (joined.error_code, joined.generation_id, joined.leader) == (NONE, 1, joined.member_id)
    member, generation = joined.member_id, joined.generation_id
    synced = conn.send(
        SYNC_GROUP,
        v(SYNC_GROUP),
        {
            "group_id": group,
            "generation_id": generation,
            "member_id": member,
            "group_instance_id": None,
            "protocol_type": "consumer",
            "protocol_name": "range",
            "assignments": [{"member_id": member, "assignment": b"a"}],
        },
    )
    assert (synced.error_code, synced.assignment) == (NONE, b"a")
    beat = conn.send(
        HEARTBEAT,
        v(HEARTBEAT),
        {"group_id": group, "generation_id": generation, "member_id": member},
    )
    assert beat.error_code == NONE
    committed = conn.send(
        OFFSET_COMMIT,
        v(OFFSET_COMMIT),
        {
            "group_id": group,
            "generation_id_or_member_epoch": generation,
            "member_id": member,
            "retention_time": -1,
            "topics": [
                {
                    "name": TOPIC,
                    "partitions": [
                        {
                            "partition_index": 1,
                            "committed_offset": 7,
                            "committed_leader_epoch": -1,
                            "committed_metadata": f"v{level}",
                        }
                    ],
                }
            ],
        },
    )
    assert committed.topics[0].partitions[0].error_code == NONE
    wanted = [{"name": TOPIC, "partition_indexes": [1]}]
    fetched = conn.send(
        OFFSET_FETCH,
        v(OFFSET_FETCH),
        {
            "group_id": group,
            "topics": wanted,
            "groups": [{"group_id": group, "topics": wanted}],
            "require_stable": False,
        },
    )
    topics = fetched.groups[0].topics if v(OFFSET_FETCH) >= 8 else fetched.topics
    partition = topics[0].partitions[0]
    assert (partition.committed_offset, partition.metadata) == (7, f"v{level}")
    described = conn.send(
        DESCRIBE_GROUPS,
        v(DESCRIBE_GROUPS),
        {"groups": [group], "include_authorized_operations": True},
    ).groups[0]
    assert (described.group_state, described.members[0].member_id) == ("Stable", member)
    listed = conn.send(LIST_GROUPS, v(LIST_GROUPS), {"states_filter": [], "types_filter": []})
    assert group in {g.group_id for g in listed.groups}
    left = conn.send(
        LEAVE_GROUP,
        v(LEAVE_GROUP),
        {
            "group_id": group,
            "member_id": member,
            "members": [{"member_id": member, "group_instance_id": None, "reason": None}],
        },
    )
    assert left.error_code == NONE
    deleted = conn.send(DELETE_GROUPS, v(DELETE_GROUPS), {"groups_names": [group]})
    assert deleted.results[0].error_code == NONE
