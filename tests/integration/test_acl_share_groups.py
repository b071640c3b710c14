"""ACLs on the share-group APIs (KIP-932), as Kafka 4.3's KafkaApis checks them, request by request
on rafka's wire client authenticated as a user: ShareGroupHeartbeat takes READ on the group and
DESCRIBE on each subscribed topic; ShareGroupDescribe DESCRIBE on the group; ShareFetch and
ShareAcknowledge READ on the group (top-level error, before the ids are checked) and READ on each
topic (per partition); a group holding a topic the principal may not DESCRIBE is not described;
DescribeShareGroupOffsets DESCRIBE on the group and on the topics; AlterShareGroupOffsets READ on
the group and the topics; DeleteShareGroupOffsets DELETE on the group (as Kafka 4.3.1 checks it,
like OffsetDelete) and READ on the topics; the share coordinator's state APIs (83-87)
CLUSTER_ACTION on the cluster. The super user `admin` sets things up; each refusal is paired with
the same request succeeding once the ACL is granted. The rules were read from Kafka 4.3.1's
KafkaApis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from acl_support import acl_broker, allow, create_topics, produce, unique
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka.admin import AclOperation, ResourceType

from rafka.broker.security.sasl import PLAIN
from rafka.cli.client_security import CURRENT, ClientSecurity
from rafka.cli.kafka_client import Connection

pytestmark = pytest.mark.timeout(120)

METADATA, FIND_COORDINATOR = 3, 10
SHARE_GROUP_HEARTBEAT, SHARE_GROUP_DESCRIBE, SHARE_FETCH, SHARE_ACKNOWLEDGE = 76, 77, 78, 79
INITIALIZE_STATE, READ_STATE, WRITE_STATE, DELETE_STATE, READ_STATE_SUMMARY = 83, 84, 85, 86, 87
DESCRIBE_OFFSETS, ALTER_OFFSETS, DELETE_OFFSETS = 90, 91, 92
NONE = 0
TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED = 29, 30, 31
ACCEPT = 1
CLUSTER = "kafka-cluster"


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = acl_broker(tmp_path_factory.mktemp("acl-share-groups")).start()
    yield process
    process.kill()


def wire(broker: BrokerProcess, user: str) -> Connection:
    """rafka's wire client, authenticated as `user`."""
    host, port = broker.sasl_bootstrap.rsplit(":", 1)
    token = CURRENT.set(ClientSecurity("SASL_PLAINTEXT", PLAIN, user, f"{user}-secret"))
    try:
        return Connection(host, int(port), "acl-share-test", 10.0)
    finally:
        CURRENT.reset(token)


def topic_ids(broker: BrokerProcess, *names: str) -> dict[str, uuid.UUID]:
    conn = wire(broker, "admin")
    response = conn.send(
        METADATA,
        12,
        {
            "topics": [{"name": n, "topic_id": None} for n in names],
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )
    conn.close()
    assert all(t.error_code == NONE for t in response.topics), response
    return {t.name: t.topic_id for t in response.topics}


def coordinator_ready(broker: BrokerProcess, group: str) -> None:
    """Wait until the group's coordinator answers (as the super user)."""
    conn = wire(broker, "admin")

    def found() -> bool:
        response = conn.send(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": [group]})
        return response.coordinators[0].error_code == NONE

    wait_until(found, 30, "the group coordinator")
    conn.close()


def heartbeat(conn: Connection, group: str, member: str, epoch: int, *topics: str) -> Any:
    return conn.send(
        SHARE_GROUP_HEARTBEAT,
        1,
        {
            "group_id": group,
            "member_id": member,
            "member_epoch": epoch,
            "rack_id": None,
            "subscribed_topic_names": list(topics) if topics else None,
        },
    )


def share_fetch(
    conn: Connection, group: str, member: str, epoch: int, topics: list[uuid.UUID], wait_ms: int = 0
) -> Any:
    return conn.send(
        SHARE_FETCH,
        2,
        {
            "group_id": group,
            "member_id": member,
            "share_session_epoch": epoch,
            "max_wait": wait_ms,
            "min_bytes": 1,
            "max_bytes": 1 << 20,
            "max_records": 500,
            "batch_size": 500,
            "topics": [
                {
                    "topic_id": t,
                    "partitions": [{"partition_index": 0, "acknowledgement_batches": []}],
                }
                for t in topics
            ],
            "forgotten_topics_data": [],
        },
    )


def acknowledge(
    conn: Connection, group: str, member: str, epoch: int, acks: dict[uuid.UUID, tuple[int, int]]
) -> Any:
    return conn.send(
        SHARE_ACKNOWLEDGE,
        2,
        {
            "group_id": group,
            "member_id": member,
            "share_session_epoch": epoch,
            "topics": [
                {
                    "topic_id": t,
                    "partitions": [
                        {
                            "partition_index": 0,
                            "acknowledgement_batches": [
                                {"first_offset": f, "last_offset": last, "acknowledge_types": [1]}
                            ],
                        }
                    ],
                }
                for t, (f, last) in acks.items()
            ],
        },
    )


def partition_results(response: Any) -> dict[uuid.UUID, Any]:
    return {t.topic_id: p for t in response.responses for p in t.partitions}


def acquired(response: Any) -> dict[uuid.UUID, list[tuple[int, int]]]:
    return {
        topic_id: [(r.first_offset, r.last_offset) for r in p.acquired_records]
        for topic_id, p in partition_results(response).items()
    }


# -- ShareGroupHeartbeat ----------------------------------------------------------------------


def test_heartbeat_takes_read_on_the_group_and_describe_on_the_topics(broker) -> None:
    topic, group = unique("queue"), unique("share")
    create_topics(broker, topic)
    coordinator_ready(broker, group)
    conn = wire(broker, "bob")
    member = uuid.uuid4().hex

    refused = heartbeat(conn, group, member, 0, topic)
    assert (refused.error_code, refused.member_epoch, refused.assignment) == (
        GROUP_AUTHORIZATION_FAILED,
        0,
        None,
    )

    # READ on the group, nothing on the topic: the subscription is refused.
    allow(broker, "bob", ResourceType.GROUP, group, AclOperation.READ)
    refused = heartbeat(conn, group, member, 0, topic)
    assert (refused.error_code, refused.member_epoch) == (TOPIC_AUTHORIZATION_FAILED, 0)

    # DESCRIBE on the topic is enough to join and be assigned its partition.
    allow(broker, "bob", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
    joined = heartbeat(conn, group, member, 0, topic)
    # A new group starts at epoch 1, as in Kafka 4.3: its first member gets epoch 2.
    assert (joined.error_code, joined.member_epoch) == (NONE, 2), joined
    (assigned,) = joined.assignment.topic_partitions
    assert (assigned.topic_id, list(assigned.partitions)) == (topic_ids(broker, topic)[topic], [0])
    assert heartbeat(conn, group, member, -1).error_code == NONE  # leaves
    conn.close()


def describe_group(conn: Connection, group: str) -> Any:
    response = conn.send(
        SHARE_GROUP_DESCRIBE, 1, {"group_ids": [group], "include_authorized_operations": False}
    )
    (described,) = response.groups
    return described


def joined_group(broker: BrokerProcess, user: str, topic: str) -> tuple[str, str, Connection]:
    """A share group with one member, `user`, subscribed to `topic` (granted what it needs)."""
    group, member = unique("share"), uuid.uuid4().hex
    coordinator_ready(broker, group)
    allow(broker, user, ResourceType.GROUP, group, AclOperation.READ)
    allow(broker, user, ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
    conn = wire(broker, user)
    assert heartbeat(conn, group, member, 0, topic).error_code == NONE
    return group, member, conn


def test_describing_a_share_group_takes_describe_on_it(broker) -> None:
    topic = unique("described")
    create_topics(broker, topic)
    group, member, alice = joined_group(broker, "alice", topic)
    bob = wire(broker, "bob")
    refused = describe_group(bob, group)
    assert (refused.error_code, list(refused.members)) == (GROUP_AUTHORIZATION_FAILED, [])

    allow(broker, "bob", ResourceType.GROUP, group, AclOperation.DESCRIBE)
    allow(broker, "bob", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
    described = describe_group(bob, group)
    assert (described.error_code, described.group_state) == (NONE, "Stable")
    ((member_id, subscribed, assigned),) = [
        (m.member_id, list(m.subscribed_topic_names), m.assignment.topic_partitions)
        for m in described.members
    ]
    assert (member_id, subscribed, [t.topic_name for t in assigned]) == (member, [topic], [topic])
    bob.close()
    assert heartbeat(alice, group, member, -1).error_code == NONE
    alice.close()


def test_describing_a_share_group_with_a_hidden_topic_is_refused(broker) -> None:
    topic = unique("hidden")
    create_topics(broker, topic)
    group, member, alice = joined_group(broker, "alice", topic)
    allow(broker, "bob", ResourceType.GROUP, group, AclOperation.DESCRIBE)
    bob = wire(broker, "bob")
    try:
        described = describe_group(bob, group)
        assert (described.error_code, list(described.members)) == (TOPIC_AUTHORIZATION_FAILED, [])
    finally:
        bob.close()
        heartbeat(alice, group, member, -1)
        alice.close()


# -- ShareFetch, ShareAcknowledge ---------------------------------------------------------------


def test_fetch_and_acknowledge_take_read_on_the_group_and_each_topic(broker) -> None:
    readable, described, group = unique("readable"), unique("described"), unique("share")
    create_topics(broker, readable, described)
    ids = topic_ids(broker, readable, described)
    coordinator_ready(broker, group)
    allow(broker, "alice", ResourceType.GROUP, group, AclOperation.READ)
    allow(broker, "alice", ResourceType.TOPIC, readable, AclOperation.READ)
    allow(broker, "alice", ResourceType.TOPIC, described, AclOperation.DESCRIBE)
    alice = wire(broker, "alice")
    member = uuid.uuid4().hex
    joined = heartbeat(alice, group, member, 0, readable, described)
    assert joined.error_code == NONE, joined

    # bob has no READ on the group: refused as a whole, no partition answered.
    bob = wire(broker, "bob")
    allow(broker, "bob", ResourceType.TOPIC, readable, AclOperation.READ)
    refused = share_fetch(bob, group, member, 0, [ids[readable]])
    assert (refused.error_code, list(refused.responses)) == (GROUP_AUTHORIZATION_FAILED, [])
    refused = acknowledge(bob, group, member, 1, {ids[readable]: (0, 0)})
    assert (refused.error_code, list(refused.responses)) == (GROUP_AUTHORIZATION_FAILED, [])
    bob.close()

    # alice: the first fetch opens her session (the partitions start at latest, 0).
    opened = share_fetch(alice, group, member, 0, [ids[readable], ids[described]])
    assert opened.error_code == NONE
    assert partition_results(opened)[ids[described]].error_code == TOPIC_AUTHORIZATION_FAILED
    produce(broker, readable, 3)
    produce(broker, described, 3)
    fetched = share_fetch(alice, group, member, 1, [ids[readable], ids[described]], 5000)
    assert fetched.error_code == NONE
    results = partition_results(fetched)
    assert (results[ids[readable]].error_code, acquired(fetched)[ids[readable]]) == (NONE, [(0, 2)])
    assert results[ids[readable]].records
    assert (results[ids[described]].error_code, list(results[ids[described]].acquired_records)) == (
        TOPIC_AUTHORIZATION_FAILED,
        [],
    )

    # Acknowledging: the readable topic's records are accepted, the other topic refused.
    acked = acknowledge(alice, group, member, 2, {ids[readable]: (0, 2), ids[described]: (0, 2)})
    assert acked.error_code == NONE
    assert {t: p.error_code for t, p in partition_results(acked).items()} == {
        ids[readable]: NONE,
        ids[described]: TOPIC_AUTHORIZATION_FAILED,
    }

    # Granted READ on the other topic, alice acquires its records too: those produced after
    # the fetch that first reads the partition (where it starts by share.auto.offset.reset,
    # latest, may differ: the records refused before are not asserted either way).
    allow(broker, "alice", ResourceType.TOPIC, described, AclOperation.READ)
    first = share_fetch(alice, group, member, 3, [ids[described]])
    assert partition_results(first)[ids[described]].error_code == NONE
    epoch = 4
    if acquired(first)[ids[described]]:
        acked = acknowledge(alice, group, member, epoch, {ids[described]: (0, 2)})
        assert [p.error_code for p in partition_results(acked).values()] == [NONE]
        epoch += 1
    produce(broker, described, 3)
    fetched = share_fetch(alice, group, member, epoch, [ids[described]], 5000)
    assert fetched.error_code == NONE
    assert acquired(fetched) == {ids[described]: [(3, 5)]}
    acked = acknowledge(alice, group, member, epoch + 1, {ids[described]: (3, 5)})
    assert {t: p.error_code for t, p in partition_results(acked).items()} == {ids[described]: NONE}
    assert heartbeat(alice, group, member, -1).error_code == NONE
    alice.close()


def test_fetch_without_read_on_the_group_is_refused_before_the_member_id_is_checked(
    broker,
) -> None:
    topic, group = unique("t"), unique("share")
    create_topics(broker, topic)
    topic_id = topic_ids(broker, topic)[topic]
    bob = wire(broker, "bob")
    try:
        assert share_fetch(bob, group, "", 0, [topic_id]).error_code == GROUP_AUTHORIZATION_FAILED
        acked = acknowledge(bob, group, "", 1, {topic_id: (0, 0)})
        assert acked.error_code == GROUP_AUTHORIZATION_FAILED
    finally:
        bob.close()


# -- DescribeShareGroupOffsets, AlterShareGroupOffsets, DeleteShareGroupOffsets -----------------


def describe_offsets(conn: Connection, group: str, topic: str) -> Any:
    response = conn.send(
        DESCRIBE_OFFSETS,
        1,
        {"groups": [{"group_id": group, "topics": [{"topic_name": topic, "partitions": [0]}]}]},
    )
    (entry,) = response.groups
    return entry


def describe_all_offsets(conn: Connection, group: str) -> Any:
    response = conn.send(DESCRIBE_OFFSETS, 1, {"groups": [{"group_id": group, "topics": None}]})
    (entry,) = response.groups
    return entry


def alter_offsets(conn: Connection, group: str, topic: str, offset: int) -> Any:
    return conn.send(
        ALTER_OFFSETS,
        0,
        {
            "group_id": group,
            "topics": [
                {
                    "topic_name": topic,
                    "partitions": [{"partition_index": 0, "start_offset": offset}],
                }
            ],
        },
    )


def delete_offsets(conn: Connection, group: str, topic: str) -> Any:
    return conn.send(DELETE_OFFSETS, 0, {"group_id": group, "topics": [{"topic_name": topic}]})


def test_describing_offsets_takes_describe_on_the_group_and_the_topic(broker) -> None:
    topic, group = unique("offsets"), unique("share")
    create_topics(broker, topic)
    produce(broker, topic, 5)
    coordinator_ready(broker, group)
    root = wire(broker, "admin")
    altered = alter_offsets(root, group, topic, 2)
    assert altered.error_code == NONE
    assert [p.error_code for t in altered.responses for p in t.partitions] == [NONE]
    root.close()

    bob = wire(broker, "bob")
    assert describe_offsets(bob, group, topic).error_code == GROUP_AUTHORIZATION_FAILED
    allow(broker, "bob", ResourceType.GROUP, group, AclOperation.DESCRIBE)
    entry = describe_offsets(bob, group, topic)
    assert entry.error_code == NONE
    ((name, partition),) = [(t.topic_name, p) for t in entry.topics for p in t.partitions]
    assert (name, partition.partition_index, partition.error_code) == (
        topic,
        0,
        TOPIC_AUTHORIZATION_FAILED,
    )
    assert (partition.start_offset, partition.lag) == (-1, -1)
    # Asked for all its topics, the group shows none she may not DESCRIBE.
    assert list(describe_all_offsets(bob, group).topics) == []

    allow(broker, "bob", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
    entry = describe_offsets(bob, group, topic)
    ((partition,),) = [t.partitions for t in entry.topics]
    assert (entry.error_code, partition.error_code, partition.start_offset, partition.lag) == (
        NONE,
        NONE,
        2,
        3,
    )
    assert [t.topic_name for t in describe_all_offsets(bob, group).topics] == [topic]
    bob.close()


def test_altering_offsets_takes_read_on_the_group_and_the_topic(broker) -> None:
    topic, group = unique("alter"), unique("share")
    create_topics(broker, topic)
    produce(broker, topic, 5)
    coordinator_ready(broker, group)
    alice = wire(broker, "alice")

    # DESCRIBE on the group is not enough: altering takes READ.
    allow(broker, "alice", ResourceType.GROUP, group, AclOperation.DESCRIBE)
    refused = alter_offsets(alice, group, topic, 1)
    assert (refused.error_code, list(refused.responses)) == (GROUP_AUTHORIZATION_FAILED, [])

    allow(broker, "alice", ResourceType.GROUP, group, AclOperation.READ)
    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)  # not READ
    refused = alter_offsets(alice, group, topic, 1)
    assert refused.error_code == NONE
    assert [(t.topic_name, p.error_code) for t in refused.responses for p in t.partitions] == [
        (topic, TOPIC_AUTHORIZATION_FAILED)
    ]
    assert describe_offsets(alice, group, topic).topics[0].partitions[0].start_offset == -1

    allow(broker, "alice", ResourceType.TOPIC, topic, AclOperation.READ)
    altered = alter_offsets(alice, group, topic, 1)
    assert [(t.topic_name, p.error_code) for t in altered.responses for p in t.partitions] == [
        (topic, NONE)
    ]
    assert describe_offsets(alice, group, topic).topics[0].partitions[0].start_offset == 1
    alice.close()


def test_deleting_offsets_takes_delete_on_the_group_and_read_on_the_topic(broker) -> None:
    topic, group = unique("delete"), unique("share")
    create_topics(broker, topic)
    produce(broker, topic, 5)
    coordinator_ready(broker, group)
    root = wire(broker, "admin")
    assert alter_offsets(root, group, topic, 3).error_code == NONE
    root.close()
    bob = wire(broker, "bob")

    # READ on the group is not enough: Kafka 4.3 checks DELETE (as for OffsetDelete).
    allow(broker, "bob", ResourceType.GROUP, group, AclOperation.READ)
    refused = delete_offsets(bob, group, topic)
    assert (refused.error_code, list(refused.responses)) == (GROUP_AUTHORIZATION_FAILED, [])

    allow(broker, "bob", ResourceType.GROUP, group, AclOperation.DELETE)
    allow(broker, "bob", ResourceType.TOPIC, topic, AclOperation.DESCRIBE)  # not READ
    refused = delete_offsets(bob, group, topic)
    assert refused.error_code == NONE
    assert [(t.topic_name, t.error_code) for t in refused.responses] == [
        (topic, TOPIC_AUTHORIZATION_FAILED)
    ]
    assert describe_offsets(bob, group, topic).topics[0].partitions[0].start_offset == 3

    allow(broker, "bob", ResourceType.TOPIC, topic, AclOperation.READ)
    deleted = delete_offsets(bob, group, topic)
    assert [(t.topic_name, t.error_code) for t in deleted.responses] == [(topic, NONE)]
    assert describe_offsets(bob, group, topic).topics[0].partitions[0].start_offset == -1
    bob.close()


# -- the share coordinator's state APIs ---------------------------------------------------------


ALL_STATE_APIS = (INITIALIZE_STATE, READ_STATE, WRITE_STATE, READ_STATE_SUMMARY, DELETE_STATE)


def state_request(key: int, group: str, topic_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
    """The version and body of one share coordinator request for partition 0 of a topic."""
    version, partition = {
        INITIALIZE_STATE: (0, {"state_epoch": 0, "start_offset": 0}),
        READ_STATE: (0, {"leader_epoch": 0}),
        WRITE_STATE: (
            0,
            {"state_epoch": 0, "leader_epoch": 0, "start_offset": 0, "state_batches": []},
        ),
        READ_STATE_SUMMARY: (1, {"leader_epoch": 0}),
        DELETE_STATE: (0, {}),
    }[key]
    partitions = [{"partition": 0, **partition}]
    return version, {
        "group_id": group,
        "topics": [{"topic_id": topic_id, "partitions": partitions}],
    }


def state_codes(
    conn: Connection, group: str, topic_id: uuid.UUID, keys: tuple[int, ...]
) -> dict[int, list[int]]:
    codes = {}
    for key in keys:
        version, data = state_request(key, group, topic_id)
        response = conn.send(key, version, data)
        codes[key] = [p.error_code for t in response.results for p in t.partitions]
    return codes


def test_share_state_apis_take_cluster_action(broker) -> None:
    topic, group = unique("state"), unique("share")
    create_topics(broker, topic)
    topic_id = topic_ids(broker, topic)[topic]
    coordinator_ready(broker, group)
    # Everything on the group and topic does not stand in for CLUSTER_ACTION.
    allow(broker, "bob", ResourceType.GROUP, group, AclOperation.ALL)
    allow(broker, "bob", ResourceType.TOPIC, topic, AclOperation.ALL)
    bob = wire(broker, "bob")
    refused = (INITIALIZE_STATE, READ_STATE, WRITE_STATE, DELETE_STATE)  # 87: see below
    assert state_codes(bob, group, topic_id, refused) == {
        key: [CLUSTER_AUTHORIZATION_FAILED] for key in refused
    }
    bob.close()

    allow(broker, "alice", ResourceType.BROKER, CLUSTER, AclOperation.CLUSTER_ACTION)
    alice = wire(broker, "alice")

    def answered() -> bool:  # the __share_group_state partition may still be loading
        codes = state_codes(alice, group, topic_id, ALL_STATE_APIS)
        return codes == {key: [NONE] for key in ALL_STATE_APIS}

    wait_until(answered, 30, "the share coordinator's answers to a CLUSTER_ACTION holder")
    alice.close()


def test_read_share_group_state_summary_refused_without_cluster_action(broker) -> None:
    topic, group = unique("summary"), unique("share")
    create_topics(broker, topic)
    topic_id = topic_ids(broker, topic)[topic]
    coordinator_ready(broker, group)
    bob = wire(broker, "bob")
    try:
        assert state_codes(bob, group, topic_id, (READ_STATE_SUMMARY,)) == {
            READ_STATE_SUMMARY: [CLUSTER_AUTHORIZATION_FAILED]
        }
    finally:
        bob.close()
