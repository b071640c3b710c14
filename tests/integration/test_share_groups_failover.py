"""A share partition's leader is killed mid-run in a three-node cluster (issue 20, done-when 2,
"then 3 nodes"): two Java KafkaShareConsumers consume a 1-partition RF=3 topic, the share state
is in `__share_group_state` (RF=3), and the node leading the topic partition gets SIGKILL.

The group is chosen so that its share-state key lives in a `__share_group_state` partition led
by another node than the topic partition: the partition leader loads and writes the state with
ReadShareGroupState (84) and WriteShareGroupState (85) to that node, before the kill and, from
the new leader, after it. Asserted, as in the single-node test (test_share_groups_durability):

* none lost: every record is accepted, or its acknowledgement was cut off by the kill, and at
  the end the durable start offset is past the last record (nothing was archived instead);
* no record whose acceptance was confirmed before the kill is delivered again, and a confirmed
  release comes back with its delivery count raised.

A new leader reads the state with its leader epoch, which fences a former leader's writes at
once (Kafka's readStateAndMaybeUpdateLeaderEpoch); a state deleted and made again starts in a
later state epoch, which fences the leaders of the deleted one: both checked request by request
on one broker.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from cluster import FAST_FAILOVER, Cluster, wait_until
from cluster_fixtures import create_topic, running_cluster
from kio.schema.delete_share_group_state.v0 import request as delete_state_req
from kio.schema.delete_share_group_state.v0.response import DeleteShareGroupStateResponse
from kio.schema.initialize_share_group_state.v0 import request as init_req
from kio.schema.initialize_share_group_state.v0.response import (
    InitializeShareGroupStateResponse,
)
from kio.schema.share_fetch.v2 import request as fetch_req
from kio.schema.share_fetch.v2.response import ShareFetchResponse
from kio.schema.write_share_group_state.v0 import request as write_req
from kio.schema.write_share_group_state.v0.response import WriteShareGroupStateResponse
from raw_client import RawClient
from share_support import JAVA_TOPIC as TOPIC
from share_support import (
    ShareMember,
    check_no_loss_or_redelivery,
    confirmed,
    durable_start,
    durable_state,
    produce_values,
    share_classpath,
    topic_metadata,
)

from rafka.broker.coordinator.placement import partition_for
from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(300)

RECORDS = 10_000
RELEASE_MODULUS = 40
STATE_TOPIC = "__share_group_state"
STATE_PARTITIONS = 3
OVERRIDES = {
    **FAST_FAILOVER,
    # __share_group_state takes the __consumer_offsets settings.
    "offsets.topic.num.partitions": str(STATE_PARTITIONS),
    "offsets.topic.replication.factor": "3",
    "group.share.record.lock.duration.ms": "3000",
    "group.share.heartbeat.interval.ms": "500",
}


def topic_id_of(cluster: Cluster, topic: str) -> uuid.UUID:
    with RawClient(cluster.bootstrap.split(",")[0]) as client:
        found = topic_metadata(client, topic)
    assert found.error_code == ErrorCode.none, found
    return found.topic_id


def open_share_session(address: str, group: str, topic_id: uuid.UUID) -> None:
    """One ShareFetch opening and one closing a share session: the share partition is
    initialized (at the high watermark, `latest`) if it was not yet."""
    with RawClient(address) as client:
        for epoch in (0, -1):
            response = client.request(
                fetch_req.ShareFetchRequest(
                    group_id=group,
                    member_id="init",
                    share_session_epoch=epoch,
                    max_wait=timedelta(0),
                    min_bytes=1,
                    max_bytes=1 << 20,
                    max_records=1,
                    batch_size=1,
                    topics=(
                        fetch_req.FetchTopic(
                            topic_id=topic_id,
                            partitions=(
                                fetch_req.FetchPartition(
                                    partition_index=0, acknowledgement_batches=()
                                ),
                            ),
                        ),
                    )
                    if epoch == 0
                    else (),
                    forgotten_topics_data=(),
                ),
                ShareFetchResponse,
            )
            assert response.error_code == ErrorCode.none, response


@pytest.mark.parametrize(
    "state_at_leader", [False, True], ids=["state-elsewhere", "state-at-leader"]
)
def test_share_partition_leader_killed(tmp_path, state_at_leader: bool) -> None:
    classpath = share_classpath()
    with running_cluster(tmp_path, 3, **OVERRIDES) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        topic_id = topic_id_of(cluster, TOPIC)
        leader = cluster.wait_for_leader(TOPIC, 0)
        addresses = [cluster.address(i) for i in cluster.node_ids]
        # A first share session creates __share_group_state; then pick a group whose key is
        # coordinated elsewhere than at the topic partition's leader (the state moves through
        # APIs 84/85), or there (the kill also moves the share coordinator).
        open_share_session(cluster.address(leader), "probe", topic_id)
        state_leaders = [cluster.wait_for_leader(STATE_TOPIC, p) for p in range(STATE_PARTITIONS)]

        def state_partition(group: str) -> int:
            return partition_for(f"{group}:{topic_id}:0", STATE_PARTITIONS)

        group = next(
            g
            for g in (f"share-failover-{i}" for i in range(100))
            if (state_leaders[state_partition(g)] == leader) == state_at_leader
        )

        # The share partition starts at 0 (latest, before any record): retried until the
        # state is durable, since a ShareFetch whose state cannot be loaded yet is answered
        # empty without an error.
        def initialized() -> bool:
            open_share_session(cluster.address(leader), group, topic_id)
            return durable_start(addresses, topic_id, group) == 0

        wait_until(initialized, 60, f"the share partition of {group} initialized")
        produce_values(cluster.bootstrap, range(RECORDS), 1000)

        members = [
            ShareMember(name, cluster.bootstrap, classpath, "accept", str(RELEASE_MODULUS),
                        group=group)
            for name in ("c1", "c2")
        ]  # fmt: skip
        try:

            def accepted() -> set[int]:
                return {o for m in members for o, kind in confirmed(m) if kind == "A"}

            wait_until(
                lambda: len(accepted()) >= RECORDS // 3,
                120,
                f"a third of the records accepted ({len(accepted())}; "
                f"{[m.output[-3:] for m in members]})",
            )
            cluster.kill(leader)
            accepted_before = accepted()
            released_before = {o for m in members for o, kind in confirmed(m) if kind == "R"}
            marks = [len(m.snapshot()) for m in members]
            new_leader = cluster.wait_for_leader(TOPIC, 0, exclude=[leader])

            live = [cluster.address(i) for i in cluster.live_nodes()]
            wait_until(
                lambda: durable_start(live, topic_id, group) == RECORDS,
                120,
                f"every record acknowledged durably ({len(accepted())} of {RECORDS} "
                f"confirmed; {[m.output[-3:] for m in members]})",
            )
            for member in members:
                member.finish()
        except AssertionError:
            for m in members:
                print(
                    m.name, [line[:300] for line in m.output if not line.startswith("acked")][-8:]
                )
            raise
        finally:
            for member in members:
                member.kill()

        check_no_loss_or_redelivery(members, RECORDS, accepted_before, released_before, marks)
        print(
            f"topic partition led by {leader}, then {new_leader}; share state of {group} "
            f"at node {state_leaders[state_partition(group)]}, then "
            f"{cluster.leader_of(STATE_TOPIC, state_partition(group))}"
        )


def test_state_read_fences_an_older_leader(broker) -> None:
    """ReadShareGroupState with a newer leader epoch records it: the older leader's writes and
    reads are FENCED_LEADER_EPOCH from then on, before the new leader writes anything."""
    topic_id = uuid.uuid4()  # the share coordinator keeps whatever topic id it is given
    group = "fenced"
    with RawClient(broker.bootstrap) as client:

        def write(leader_epoch: int, records: bool = True) -> ErrorCode:
            batch = write_req.StateBatch(
                first_offset=0, last_offset=4, delivery_state=0, delivery_count=1
            )
            response = client.request(
                write_req.WriteShareGroupStateRequest(
                    group_id=group,
                    topics=(
                        write_req.WriteStateData(
                            topic_id=topic_id,
                            partitions=(
                                write_req.PartitionData(
                                    partition=0,
                                    state_epoch=0,
                                    leader_epoch=leader_epoch,
                                    start_offset=0,
                                    state_batches=(batch,) if records else (),
                                ),
                            ),
                        ),
                    ),
                ),
                WriteShareGroupStateResponse,
            )
            return response.results[0].partitions[0].error_code

        # The share coordinator creates its topic and loads the key's shard on first need.
        # Records of a state that does not exist are refused (as Kafka); a write of the start
        # offset alone creates it (a new share partition's leader does).
        wait_until(lambda: write(1) == ErrorCode.invalid_request, 30, "the share coordinator")
        assert write(1, records=False) == ErrorCode.none
        assert write(1) == ErrorCode.none
        state = durable_state(client, topic_id, group)
        assert (state.error_code, state.start_offset) == (ErrorCode.none, 0)
        # The leader of epoch 3 loads the state: epoch 2 is a former leader from then on.
        loaded = durable_state(client, topic_id, group, leader_epoch=3)
        assert (loaded.error_code, [b.delivery_count for b in loaded.state_batches]) == (
            ErrorCode.none,
            [1],
        )
        assert write(2) == ErrorCode.fenced_leader_epoch
        assert write(3) == ErrorCode.none
        # As Kafka: a read without a leader epoch (-1) is fenced too once a leader has one; an
        # onlooker reads the summary (87), which fences nobody.
        for epoch in (2, -1):
            read = durable_state(client, topic_id, group, leader_epoch=epoch)
            assert read.error_code == ErrorCode.fenced_leader_epoch
        assert durable_state(client, topic_id, group).leader_epoch == 3


def test_a_state_made_again_fences_the_leaders_of_the_deleted_one(broker) -> None:
    """Share-group offsets deleted, then altered (or a new leader making the state again): the
    new state's epoch is past the deleted one's, so a leader still holding the deleted state
    (a member's records whose locks expire after the group emptied) is FENCED_STATE_EPOCH and
    cannot write its old start offset into the new state."""
    topic_id = uuid.uuid4()
    group = "made-again"
    with RawClient(broker.bootstrap) as client:

        def write(state_epoch: int, start: int, records: bool = False) -> ErrorCode:
            batch = write_req.StateBatch(
                first_offset=start, last_offset=start + 4, delivery_state=0, delivery_count=1
            )
            partition = write_req.PartitionData(
                partition=0,
                state_epoch=state_epoch,
                leader_epoch=1,
                start_offset=start,
                state_batches=(batch,) if records else (),
            )
            data = write_req.WriteStateData(topic_id=topic_id, partitions=(partition,))
            response = client.request(
                write_req.WriteShareGroupStateRequest(group_id=group, topics=(data,)),
                WriteShareGroupStateResponse,
            )
            return response.results[0].partitions[0].error_code

        def delete() -> ErrorCode:
            data = delete_state_req.DeleteStateData(
                topic_id=topic_id, partitions=(delete_state_req.PartitionData(partition=0),)
            )
            response = client.request(
                delete_state_req.DeleteShareGroupStateRequest(group_id=group, topics=(data,)),
                DeleteShareGroupStateResponse,
            )
            return response.results[0].partitions[0].error_code

        def initialize(start: int) -> ErrorCode:
            partition = init_req.PartitionData(partition=0, state_epoch=-1, start_offset=start)
            data = init_req.InitializeStateData(topic_id=topic_id, partitions=(partition,))
            response = client.request(
                init_req.InitializeShareGroupStateRequest(group_id=group, topics=(data,)),
                InitializeShareGroupStateResponse,
            )
            return response.results[0].partitions[0].error_code

        def state() -> tuple[int, int, int]:
            read = durable_state(client, topic_id, group)
            return read.error_code, read.start_offset, read.state_epoch

        # A leader makes the state (CREATE_STATE_EPOCH, -1): the coordinator picks epoch 0.
        wait_until(lambda: write(-1, 5) == ErrorCode.none, 30, "the share coordinator")
        assert state() == (ErrorCode.none, 5, 0)
        assert write(0, 6, records=True) == ErrorCode.none
        # Offsets deleted: the leader of epoch 0 can neither write records nor make it again.
        assert delete() == ErrorCode.none
        assert write(0, 7, records=True) == ErrorCode.invalid_request
        assert write(0, 7) == ErrorCode.fenced_state_epoch
        # Offsets altered: the state is made again in epoch 1, and epoch 0's leader is fenced.
        assert initialize(100) == ErrorCode.none
        assert state() == (ErrorCode.none, 100, 1)
        assert write(0, 7) == ErrorCode.fenced_state_epoch
        assert write(0, 7, records=True) == ErrorCode.fenced_state_epoch
        assert state() == (ErrorCode.none, 100, 1)
        # Deleted again and made by a new leader: epoch 2, which it reads back and writes in.
        assert delete() == ErrorCode.none
        assert write(-1, 200) == ErrorCode.none
        assert state() == (ErrorCode.none, 200, 2)
        assert write(1, 201, records=True) == ErrorCode.fenced_state_epoch
        assert write(2, 201, records=True) == ErrorCode.none
