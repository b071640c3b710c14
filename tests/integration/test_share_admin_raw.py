"""Share-group administration (KIP-932, issue 20) request by request against a real broker, with
the error codes Kafka 4.3 answers: DescribeShareGroupOffsets (90), AlterShareGroupOffsets (91),
DeleteShareGroupOffsets (92), share groups in ListGroups, DescribeGroups and DeleteGroups, the
share coordinator's InitializeShareGroupState (83), DeleteShareGroupState (86) and
ReadShareGroupStateSummary (87), and the share.auto.offset.reset group config (GROUP config
resources in DescribeConfigs/IncrementalAlterConfigs). Altered offsets survive a restart."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from broker_process import BrokerProcess
from cluster import wait_until
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from kio.schema.delete_share_group_state.v0 import request as delete_state_req
from kio.schema.delete_share_group_state.v0.response import DeleteShareGroupStateResponse
from kio.schema.describe_groups.v5.request import DescribeGroupsRequest as DescribeGroupsV5
from kio.schema.describe_groups.v5.response import DescribeGroupsResponse as DescribedGroupsV5
from kio.schema.describe_groups.v6.request import DescribeGroupsRequest
from kio.schema.describe_groups.v6.response import DescribeGroupsResponse
from kio.schema.describe_share_group_offsets.v0 import request as describe_v0
from kio.schema.describe_share_group_offsets.v0.response import (
    DescribeShareGroupOffsetsResponse as DescribedOffsetsV0,
)
from kio.schema.initialize_share_group_state.v0 import request as init_req
from kio.schema.initialize_share_group_state.v0.response import (
    InitializeShareGroupStateResponse,
)
from raw_client import RawClient
from share_support import ADMIN_PARTITIONS as PARTITIONS
from share_support import ADMIN_TOPIC as TOPIC
from share_support import (
    APPEND,
    acquired,
    alter_offsets,
    altered,
    delete_groups,
    delete_offsets,
    describe_offsets,
    find_coordinator,
    group_configs,
    heartbeat,
    join,
    list_groups,
    offsets_of,
    produce,
    set_group_config,
    share_fetch,
    state_summary,
)

from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(180)

# -- tests ---------------------------------------------------------------------------------------


def test_share_group_offsets_request_by_request(broker_factory) -> None:
    broker: BrokerProcess = broker_factory().start()
    bootstrap = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1), NewTopic("other", 1, 1)])[TOPIC].result(30)
    produce(bootstrap, {0: 10, 1: 4})
    with RawClient(bootstrap) as client:
        versions = client.request(
            ApiVersionsRequest(client_software_name="t", client_software_version="1"),
            ApiVersionsResponse,
        )
        served = {k.api_key: (k.min_version, k.max_version) for k in versions.api_keys}
        assert [served.get(key) for key in (83, 86, 87, 90, 91, 92)] == [
            (0, 0), (0, 0), (0, 1), (0, 1), (0, 0), (0, 0),
        ]  # fmt: skip
        find_coordinator(client, "g")

        # A member joins: its partitions are initialized, without offsets until fetched.
        epoch, topic_id = join(client, "g", "m-1")
        assert offsets_of(describe_offsets(client, "g")) == {
            (TOPIC, 0): (-1, 0, -1),
            (TOPIC, 1): (-1, 0, -1),
        }
        # The first fetch starts partition 0 at its high watermark (share.auto.offset.reset's
        # default, latest), with a lag of nothing.
        assert acquired(share_fetch(client, "g", "m-1", 0, topic_id)) == []
        (start, leader_epoch, lag) = offsets_of(describe_offsets(client, "g"))[(TOPIC, 0)]
        assert (start, lag) == (10, 0) and leader_epoch >= 0
        produce(bootstrap, {0: 3})
        assert offsets_of(describe_offsets(client, "g", {TOPIC: (0,)}))[(TOPIC, 0)][2] == 3
        # v0 has no lag.
        v0 = client.request(
            describe_v0.DescribeShareGroupOffsetsRequest(
                groups=(
                    describe_v0.DescribeShareGroupOffsetsRequestGroup(group_id="g", topics=None),
                )
            ),
            DescribedOffsetsV0,
        )
        assert [p.start_offset for p in v0.groups[0].topics[0].partitions] == [10, -1]
        # Accepted records are delivered for good: the lag drops by them.
        assert acquired(share_fetch(client, "g", "m-1", 1, topic_id, wait_ms=5000)) == [(10, 12, 1)]
        assert acquired(share_fetch(client, "g", "m-1", 2, topic_id, acks=((10, 10),))) == []
        wait_until(
            lambda: offsets_of(describe_offsets(client, "g"))[(TOPIC, 0)][::2] == (11, 2),
            10,
            "the start offset past the accepted record",
        )

        # ListGroups: share groups have type and protocol type "share".
        assert list_groups(client, ("share",)) == [("g", "share", "Stable", "share")]
        assert list_groups(client, ("consumer", "classic")) == []
        assert list_groups(client, ("share",), ("empty",)) == []
        # DescribeGroups: not a classic group (v6 says so; v5 answers Dead, no error).
        (described,) = client.request(
            DescribeGroupsRequest(groups=("g",), include_authorized_operations=False),
            DescribeGroupsResponse,
        ).groups
        assert (described.error_code, described.error_message, described.group_state) == (
            ErrorCode.group_id_not_found,
            "Group g is not a classic group.",
            "Dead",
        )
        (described,) = client.request(
            DescribeGroupsV5(groups=("g",), include_authorized_operations=False),
            DescribedGroupsV5,
        ).groups
        assert (described.error_code, described.group_state) == (ErrorCode.none, "Dead")

        # While the group has a member: no altering, deleting its offsets or the group.
        refused = alter_offsets(client, "g", TOPIC, {0: 0})
        assert (refused.error_code, refused.error_message) == (
            ErrorCode.non_empty_group,
            "The group is not empty.",
        )
        assert delete_offsets(client, "g", TOPIC).error_code == ErrorCode.non_empty_group
        assert delete_groups(client, "g") == {"g": ErrorCode.non_empty_group}
        assert heartbeat(client, "g", "m-1", -1).error_code == ErrorCode.none
        assert list_groups(client, ("share",), ("Empty",)) == [("g", "share", "Empty", "share")]

        # Altering: partition 0 back to 2 (its in-flight state goes), 1 to 1; a partition or
        # topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION.
        assert altered(alter_offsets(client, "g", TOPIC, {0: 2, 1: 1, 7: 0})) == {
            (TOPIC, 0): ErrorCode.none,
            (TOPIC, 1): ErrorCode.none,
            (TOPIC, 7): ErrorCode.unknown_topic_or_partition,
        }
        unknown = alter_offsets(client, "g", "nosuch", {0: 0})
        assert altered(unknown) == {("nosuch", 0): ErrorCode.unknown_topic_or_partition}
        assert unknown.responses[0].topic_id is None  # the zero UUID
        assert {k: v[::2] for k, v in offsets_of(describe_offsets(client, "g")).items()} == {
            (TOPIC, 0): (2, 11),
            (TOPIC, 1): (1, 3),
        }
        # The next member gets the records from the altered offsets, delivered afresh.
        epoch, topic_id = join(client, "g", "m-2")
        assert acquired(share_fetch(client, "g", "m-2", 0, topic_id, wait_ms=5000)) == [(2, 12, 1)]
        assert heartbeat(client, "g", "m-2", -1).error_code == ErrorCode.none
        # Kafka's rules for other groups and group ids.
        assert alter_offsets(client, "", TOPIC, {0: 0}).error_code == ErrorCode.invalid_group_id
        assert delete_offsets(client, "nope", TOPIC).error_code == ErrorCode.group_id_not_found
        # Explicit partitions of a group or topic without state have no offset (-1), no error.
        assert offsets_of(describe_offsets(client, "nope", {TOPIC: (0,), "nosuch": (0,)})) == {
            (TOPIC, 0): (-1, 0, -1),
            ("nosuch", 0): (-1, 0, -1),
        }

        # Deleting offsets: the topic's state goes, a topic without any is refused.
        deleted = delete_offsets(client, "g", TOPIC, "other", "nosuch")
        assert deleted.error_code == ErrorCode.none
        unknown_code = ErrorCode.unknown_topic_or_partition
        assert [(t.topic_name, t.error_code, t.error_message) for t in deleted.responses] == [
            (TOPIC, ErrorCode.none, None),
            ("other", unknown_code, "There is no offset information to delete."),
            ("nosuch", unknown_code, "This server does not host this topic-partition."),
        ]
        assert offsets_of(describe_offsets(client, "g")) == {}
        assert offsets_of(describe_offsets(client, "g", {TOPIC: (0, 1)})) == {
            (TOPIC, 0): (-1, 0, -1),
            (TOPIC, 1): (-1, 0, -1),
        }

        # Altering the offsets of an unknown group creates it, empty.
        assert altered(alter_offsets(client, "created", TOPIC, {1: 3})) == {
            (TOPIC, 1): ErrorCode.none
        }
        assert list_groups(client, ("share",)) == [
            ("created", "share", "Empty", "share"),
            ("g", "share", "Empty", "share"),
        ]

        # A classic group is not a share group.
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "classic", "log_level": 2})
        consumer.subscribe([TOPIC])
        wait_until(lambda: consumer.poll(0.2) is not None or consumer.assignment(), 30, "join")
        consumer.commit(offsets=[TopicPartition(TOPIC, 0, 1)], asynchronous=False)
        consumer.close()
        wrong = alter_offsets(client, "classic", TOPIC, {0: 0})
        assert (wrong.error_code, wrong.error_message) == (
            ErrorCode.group_id_not_found,
            "Group classic is not a share group.",
        )
        assert delete_offsets(client, "classic", TOPIC).error_code == ErrorCode.group_id_not_found
        assert describe_offsets(client, "classic").topics == ()

        # DeleteGroups: an empty share group goes, with the state of its partitions.
        assert delete_groups(client, "g", "created", "nope") == {
            "g": ErrorCode.none,
            "created": ErrorCode.none,
            "nope": ErrorCode.group_id_not_found,
        }
        assert list_groups(client, ("share",)) == []
        assert offsets_of(describe_offsets(client, "created", {TOPIC: (1,)})) == {
            (TOPIC, 1): (-1, 0, -1)
        }

        # Altered offsets are durable (membership is not: the group is recreated).
        assert altered(alter_offsets(client, "durable", TOPIC, {0: 5})) == {
            (TOPIC, 0): ErrorCode.none
        }
    broker.stop()
    broker.start()
    with RawClient(broker.bootstrap) as client:
        find_coordinator(client, "durable")

        def start_offset() -> int:
            described = describe_offsets(client, "durable", {TOPIC: (0,)})
            return offsets_of(described)[(TOPIC, 0)][0]

        wait_until(lambda: start_offset() == 5, 30, "the altered offset after the restart")


def test_share_coordinator_state_requests(broker) -> None:
    """InitializeShareGroupState, ReadShareGroupStateSummary and DeleteShareGroupState, as the
    group coordinator of another broker sends them (CLUSTER_ACTION; no authorizer here)."""
    key = uuid.uuid4()  # the share coordinator keeps whatever topic id it is given
    with RawClient(broker.bootstrap) as client:

        def summary() -> Any:
            return state_summary(client, "s", key).results[0].partitions[0]

        def initialize(state_epoch: int, start: int) -> ErrorCode:
            response = client.request(
                init_req.InitializeShareGroupStateRequest(
                    group_id="s",
                    topics=(
                        init_req.InitializeStateData(
                            topic_id=key,
                            partitions=(
                                init_req.PartitionData(
                                    partition=0, state_epoch=state_epoch, start_offset=start
                                ),
                            ),
                        ),
                    ),
                ),
                InitializeShareGroupStateResponse,
            )
            return response.results[0].partitions[0].error_code

        # The share coordinator creates its topic and loads the key's shard on first need.
        wait_until(lambda: summary().error_code not in _LOADING, 30, "the share coordinator")
        nothing = summary()
        assert (nothing.error_code, nothing.start_offset, nothing.delivery_complete_count) == (
            ErrorCode.none,
            -1,
            -1,
        )
        assert initialize(3, 7) == ErrorCode.none
        state = summary()
        assert (state.start_offset, state.state_epoch, state.delivery_complete_count) == (7, 3, 0)
        assert initialize(2, 9) == ErrorCode.fenced_state_epoch
        assert initialize(-1, 9) == ErrorCode.none  # rafka's "the next state epoch"
        assert (summary().start_offset, summary().state_epoch) == (9, 4)
        deleted = client.request(
            delete_state_req.DeleteShareGroupStateRequest(
                group_id="s",
                topics=(
                    delete_state_req.DeleteStateData(
                        topic_id=key, partitions=(delete_state_req.PartitionData(partition=0),)
                    ),
                ),
            ),
            DeleteShareGroupStateResponse,
        )
        assert deleted.results[0].partitions[0].error_code == ErrorCode.none
        assert summary().start_offset == -1


_LOADING = (ErrorCode.coordinator_load_in_progress, ErrorCode.not_coordinator)


def test_share_groups_outlive_their_coordinator(broker_factory) -> None:
    """A share group's epoch and initialized share partitions are kept in `__consumer_offsets`
    (Kafka's ShareGroupMetadata and ShareGroupStatePartitionMetadata records): after kill -9
    the group is still listed, its offsets still described for every topic and its epoch goes
    on from where it was; a deleted group stays deleted. Members join again (not kept)."""
    broker: BrokerProcess = broker_factory().start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    with RawClient(broker.bootstrap) as client:
        find_coordinator(client, "kept")
        epoch, _ = join(client, "kept", "m-1")
        left = heartbeat(client, "kept", "m-1", -1)
        assert left.error_code == ErrorCode.none
        assert altered(alter_offsets(client, "altered", TOPIC, {0: 3})) == {
            (TOPIC, 0): ErrorCode.none
        }
        join(client, "deleted", "m-9")
        assert heartbeat(client, "deleted", "m-9", -1).error_code == ErrorCode.none
        assert delete_groups(client, "deleted") == {"deleted": ErrorCode.none}
        before = list_groups(client, ("share",))
        assert before == [
            ("altered", "share", "Empty", "share"),
            ("kept", "share", "Empty", "share"),
        ]
    broker.kill()
    broker.start()
    with RawClient(broker.bootstrap) as client:
        find_coordinator(client, "kept")
        wait_until(lambda: _listed(client) == before, 30, "the share groups listed again")
        assert set(offsets_of(describe_offsets(client, "kept"))) == {(TOPIC, 0), (TOPIC, 1)}
        assert offsets_of(describe_offsets(client, "altered"))[(TOPIC, 0)][0] == 3
        # The member is not kept: it joins again, and the group epoch goes on.
        stale = heartbeat(client, "kept", "m-1", epoch)
        assert stale.error_code == ErrorCode.unknown_member_id
        again, _ = join(client, "kept", "m-1")
        assert again > epoch + 1
        assert heartbeat(client, "kept", "m-1", -1).error_code == ErrorCode.none
        assert delete_groups(client, "kept") == {"kept": ErrorCode.none}
    broker.stop()
    broker.start()
    with RawClient(broker.bootstrap) as client:
        find_coordinator(client, "kept")
        wait_until(lambda: _listed(client) == before[:1], 30, "the groups after a delete")


def _listed(client: RawClient) -> list | None:
    """The share groups ListGroups lists; None while it answers an error (a coordinator still
    loading after a restart)."""
    try:
        return list_groups(client, ("share",))
    except AssertionError:
        return None


def test_share_auto_offset_reset_group_config(broker) -> None:
    """share.auto.offset.reset as a group config: earliest starts a new share partition at the
    log start offset, by_duration at the first record that recent; bad values are refused."""
    bootstrap = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    produce(bootstrap, {0: 6})
    with RawClient(bootstrap) as client:
        defaults = {c.name: c for c in group_configs(client, "early").configs}
        reset = defaults["share.auto.offset.reset"]
        assert (reset.value, reset.config_source) == ("latest", 5)
        assert defaults["share.record.lock.duration.ms"].synonyms[0].name == (
            "group.share.record.lock.duration.ms"
        )
        assert set_group_config(
            client, "early", "share.auto.offset.reset", "earliest"
        ).error_code == (ErrorCode.none)
        reset = {c.name: c for c in group_configs(client, "early").configs}[
            "share.auto.offset.reset"
        ]
        assert (reset.value, reset.config_source) == ("earliest", 8)
        assert [(s.value, s.source) for s in reset.synonyms] == [("earliest", 8), ("latest", 5)]
        refused = set_group_config(client, "early", "share.auto.offset.reset", "soonest")
        assert refused.error_code == ErrorCode.invalid_config
        assert "must be either 'earliest', 'latest' or of the format" in refused.error_message
        assert set_group_config(client, "early", "nosuch", "1").error_message == (
            "Unknown group config name: nosuch"
        )
        assert set_group_config(
            client, "early", "share.record.lock.duration.ms", "5"
        ).error_code == (ErrorCode.invalid_config)
        # A valid value of a group config rafka does not act on yet is refused, not ignored.
        unapplied = set_group_config(client, "early", "share.assignment.interval.ms", "2000")
        assert unapplied.error_code == ErrorCode.invalid_config
        assert "does not implement the group config" in unapplied.error_message
        assert (
            set_group_config(client, "early", "share.auto.offset.reset", "x", APPEND).error_code
            == ErrorCode.invalid_config
        )
        assert set_group_config(client, "", "share.auto.offset.reset", "earliest").error_code == (
            ErrorCode.invalid_request
        )

        find_coordinator(client, "early")
        epoch, topic_id = join(client, "early", "m")
        assert acquired(share_fetch(client, "early", "m", 0, topic_id, wait_ms=5000)) == [(0, 5, 1)]
        assert offsets_of(describe_offsets(client, "early", {TOPIC: (0,)}))[(TOPIC, 0)][0] == 0

        # by_duration: records newer than a day ago, i.e. all of them; the latest otherwise.
        assert set_group_config(
            client, "recent", "share.auto.offset.reset", "by_duration:P1D"
        ).error_code == (ErrorCode.none)
        find_coordinator(client, "recent")
        epoch, topic_id = join(client, "recent", "m")
        assert acquired(share_fetch(client, "recent", "m", 0, topic_id, wait_ms=5000)) == [
            (0, 5, 1)
        ]
        find_coordinator(client, "late")
        epoch, topic_id = join(client, "late", "m")
        assert acquired(share_fetch(client, "late", "m", 0, topic_id, wait_ms=200)) == []
        assert offsets_of(describe_offsets(client, "late", {TOPIC: (0,)}))[(TOPIC, 0)][0] == 6
