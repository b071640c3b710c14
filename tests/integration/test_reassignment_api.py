"""Partition reassignment and leader elections on a real three-node cluster: the Kafka APIs
(AlterPartitionReassignments, ListPartitionReassignments, ElectLeaders) through kafka-python
and confluent-kafka, and `rafka reassign` / `rafka leader-election` as processes.

Whether a reassignment completes is the partition leaders' business (their Raft voters move);
to hold one in progress, its target includes a node that is down, which never catches up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import FAST_FAILOVER, Cluster, wait_until
from confluent_kafka import ElectionType, KafkaError
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import AdminClient as ConfluentAdmin
from confluent_kafka.admin import NewTopic
from kafka import KafkaAdminClient, TopicPartition
from kafka import errors as kafka_errors

from rafka.cli.admin_client import AdminClient
from rafka.cli.reassign_client import alter_reassignments
from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(240)
QUIET = {"log_level": 2}
DOWN = 3  # the node stopped while reassignments to it stay in progress


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("reassignment")
    with Cluster(root, 3, **FAST_FAILOVER, **{"auto.leader.rebalance.enable": "false"}) as nodes:
        nodes.start()
        yield nodes


@pytest.fixture
def admin(cluster: Cluster) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30_000)
    yield client
    client.close()


def create(cluster: Cluster, name: str, assignment: list[list[int]]) -> None:
    admin = ConfluentAdmin({"bootstrap.servers": cluster.bootstrap, **QUIET})
    topic = NewTopic(name, len(assignment), replica_assignment=assignment)
    admin.create_topics([topic])[name].result(30)
    for partition in range(len(assignment)):
        cluster.wait_for_leader(name, partition)


def replicas_everywhere(cluster: Cluster, topic: str, partition: int, wanted: tuple) -> None:
    """Until every live node's Metadata lists `wanted` as the partition's replicas."""

    def shown() -> bool:
        views = cluster.partition_views(topic, partition)
        return len(views) == len(cluster.live_nodes()) and all(
            v.replicas == wanted for v in views.values()
        )

    wait_until(shown, 15, f"replicas {wanted} of {topic}-{partition} in every node's Metadata")


def rafka(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "rafka", *args], capture_output=True, text=True, timeout=60
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def reassignment_file(path: Path, targets: dict[tuple[str, int], list[int]]) -> Path:
    partitions = [
        {"topic": t, "partition": p, "replicas": r, "log_dirs": ["any"] * len(r)}
        for (t, p), r in targets.items()
    ]
    path.write_text(json.dumps({"version": 1, "partitions": partitions}))
    return path


# -- AlterPartitionReassignments: what is refused ------------------------------------------------


def test_invalid_reassignments_are_refused_per_partition(cluster, admin) -> None:
    create(cluster, "checked", [[1, 2]])
    results = admin.alter_partition_reassignments(
        {
            TopicPartition("no-such-topic", 0): [1],
            TopicPartition("checked", 5): [1],
            TopicPartition("checked", 0): [1, 1],
        }
    )
    assert results == {
        TopicPartition("no-such-topic", 0): kafka_errors.UnknownTopicOrPartitionError,
        TopicPartition("checked", 5): kafka_errors.UnknownTopicOrPartitionError,
        TopicPartition("checked", 0): kafka_errors.InvalidReplicationAssignmentError,
    }
    results = admin.alter_partition_reassignments({TopicPartition("checked", 0): [1, 9]})
    assert results == {TopicPartition("checked", 0): kafka_errors.InvalidReplicationAssignmentError}
    # Cancelling what is not in progress.
    results = admin.alter_partition_reassignments({TopicPartition("checked", 0): None})
    assert results == {TopicPartition("checked", 0): kafka_errors.NoReassignmentInProgressError}
    # An empty replica list (kafka-python refuses to send one), on a broker that forwards it.
    follower = next(n for n in cluster.node_ids if n != cluster.metadata(1).controller_id)
    with AdminClient(cluster.address(follower)) as raw:
        outcomes = alter_reassignments(raw, {("checked", 0): []}, True)
        assert outcomes[("checked", 0)][0] == ErrorCode.invalid_replica_assignment
        outcomes = alter_reassignments(raw, {("checked", 0): [2, 3, 1]}, False)
        assert outcomes[("checked", 0)][0] == ErrorCode.invalid_replication_factor
    # Nothing changed, nothing is listed.
    assert admin.list_partition_reassignments() == {}
    replicas_everywhere(cluster, "checked", 0, (1, 2))


def test_a_target_equal_to_the_replicas_is_accepted_and_changes_nothing(cluster, admin) -> None:
    create(cluster, "same", [[2, 1]])
    assert admin.alter_partition_reassignments({TopicPartition("same", 0): [2, 1]}) == {
        TopicPartition("same", 0): None
    }
    assert admin.list_partition_reassignments() == {}
    replicas_everywhere(cluster, "same", 0, (2, 1))


# -- ElectLeaders ---------------------------------------------------------------------------------


def election_codes(cluster: Cluster, kind: ElectionType, partitions) -> dict[tuple, int]:
    admin = ConfluentAdmin({"bootstrap.servers": cluster.bootstrap, **QUIET})
    wanted = None if partitions is None else [ConfluentPartition(t, p) for t, p in partitions]
    results = admin.elect_leaders(kind, wanted).result(timeout=60)
    return {
        (tp.topic, tp.partition): (KafkaError.NO_ERROR if error is None else error.code())
        for tp, error in results.items()
    }


def leaders_are_preferred(cluster: Cluster, topic: str, count: int) -> bool:
    views = [cluster.partition_view(topic, p) for p in range(count)]
    return all(v is not None and v.leader == v.replicas[0] for v in views)


def test_elect_leaders_preferred_and_unclean(cluster, admin, tmp_path) -> None:
    create(cluster, "elect", [[1, 2, 3], [2, 3, 1], [3, 1, 2]])
    cluster.wait_for_full_isr("elect", range(3))
    wait_until(lambda: leaders_are_preferred(cluster, "elect", 3), 30, "preferred leaders")
    partitions = [("elect", p) for p in range(3)]

    assert election_codes(cluster, ElectionType.PREFERRED, partitions) == dict.fromkeys(
        partitions, KafkaError.ELECTION_NOT_NEEDED
    )
    # rafka's Raft elects only replicas holding every committed record: with a leader, no
    # unclean election is needed.
    assert election_codes(cluster, ElectionType.UNCLEAN, partitions) == dict.fromkeys(
        partitions, KafkaError.ELECTION_NOT_NEEDED
    )
    assert election_codes(cluster, ElectionType.PREFERRED, [("elect", 7), ("nope", 0)]) == {
        ("elect", 7): KafkaError.UNKNOWN_TOPIC_OR_PART,
        ("nope", 0): KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
    # Every partition: those led by their preferred replica are left out.
    everything = election_codes(cluster, ElectionType.PREFERRED, None)
    assert not [tp for tp in everything if tp[0] == "elect"], everything

    # A new order of the same replicas makes another replica preferred at once (no move);
    # the election hands leadership over to it.
    before = cluster.partition_view("elect", 0)
    assert before is not None and before.leader == 1
    assert admin.alter_partition_reassignments({TopicPartition("elect", 0): [2, 1, 3]}) == {
        TopicPartition("elect", 0): None
    }
    replicas_everywhere(cluster, "elect", 0, (2, 1, 3))
    assert admin.list_partition_reassignments() == {}
    assert election_codes(cluster, ElectionType.PREFERRED, [("elect", 0)]) == {
        ("elect", 0): KafkaError.NO_ERROR
    }
    wait_until(lambda: cluster.leader_of("elect", 0) == 2, 30, "node 2 to lead elect-0")

    # kafka-leader-election's output.
    elect = ["leader-election", "--bootstrap-server", cluster.bootstrap, "--election-type"]
    out = rafka(*elect, "preferred", "--topic", "elect", "--partition", "1").stdout
    assert out.strip() == "Valid replica already elected for partitions elect-1"
    listed = tmp_path / "elect.json"
    listed.write_text(json.dumps({"partitions": [{"topic": "elect", "partition": 9}]}))
    failed = rafka(*elect, "PREFERRED", "--path-to-json-file", str(listed), check=False)
    assert failed.returncode == 1
    assert "Error completing leader election (PREFERRED) for partition: elect-9: " \
        "UNKNOWN_TOPIC_OR_PARTITION" in failed.stdout  # fmt: skip
    assert failed.stderr.strip() == "rafka: error: 1 replica(s) could not be elected"
    rafka(*elect, "PREFERRED", "--all-topic-partitions")


# -- generate, execute, verify (no move needed) ----------------------------------------------------


def test_generate_proposes_a_placement_over_the_brokers_given(cluster, tmp_path) -> None:
    create(cluster, "placed", [[1, 2], [2, 3], [3, 1], [1, 3]])
    topics = tmp_path / "topics.json"
    topics.write_text(json.dumps({"version": 1, "topics": [{"topic": "placed"}]}))
    generate = ["reassign", "--bootstrap-server", cluster.bootstrap, "--generate"]
    generate += ["--topics-to-move-json-file", str(topics), "--broker-list"]
    out = rafka(*generate, "1,2").stdout
    lines = out.splitlines()
    assert lines[0] == "Current partition replica assignment"
    assert lines[3] == "Proposed partition reassignment configuration"
    current, proposed = json.loads(lines[1]), json.loads(lines[4])
    assert current == {"version": 1, "partitions": [
        {"topic": "placed", "partition": p, "replicas": r, "log_dirs": ["any", "any"]}
        for p, r in enumerate([[1, 2], [2, 3], [3, 1], [1, 3]])]}  # fmt: skip
    assert [(e["topic"], e["partition"]) for e in proposed["partitions"]] == [
        ("placed", p) for p in range(4)
    ]
    assert all(sorted(e["replicas"]) == [1, 2] for e in proposed["partitions"])
    # Preferred leaders alternate over the brokers.
    assert sorted(e["replicas"][0] for e in proposed["partitions"]) == [1, 1, 2, 2]

    too_many = rafka(*generate, "1", check=False)
    assert too_many.returncode == 1
    assert too_many.stderr.strip() == (
        "rafka: error: Replication factor: 2 larger than available brokers: 1."
    )


def test_execute_and_verify_a_reassignment_with_nothing_to_move(cluster, tmp_path) -> None:
    create(cluster, "kept", [[3, 1]])
    plan = reassignment_file(tmp_path / "plan.json", {("kept", 0): [3, 1]})
    bootstrap = ["--bootstrap-server", cluster.bootstrap]
    out = rafka("reassign", *bootstrap, "--execute", "--reassignment-json-file", str(plan))
    lines = out.stdout.splitlines()
    assert lines[0] == "Current partition replica assignment"
    assert json.loads(lines[2]) == json.loads(plan.read_text())
    assert lines[4] == "Save this to use as the --reassignment-json-file option during rollback"
    assert lines[5] == "Successfully started partition reassignment for kept-0"
    out = rafka("reassign", *bootstrap, "--verify", "--reassignment-json-file", str(plan))
    assert out.stdout.splitlines() == [
        "Status of partition reassignment:",
        "Reassignment of partition kept-0 is completed.",
    ]
    out = rafka("reassign", *bootstrap, "--list")
    assert out.stdout.strip() == "No partition reassignments found."
    out = rafka("reassign", *bootstrap, "--cancel", "--reassignment-json-file", str(plan))
    assert out.stdout.strip() == "None of the specified partition reassignments are active."
    refused = reassignment_file(tmp_path / "bad.json", {("kept", 0): [3, 9]})
    failed = rafka("reassign", *bootstrap, "--execute", "--reassignment-json-file",
                   str(refused), check=False)  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        "rafka: error: Error reassigning partition(s): kept-0: INVALID_REPLICA_ASSIGNMENT"
    )


# -- in progress (a target on a node that is down), listed, cancelled ------------------------------


def test_reassignment_in_progress_is_listed_shown_and_cancelled(cluster, tmp_path) -> None:
    create(cluster, "moving", [[1, 2], [1, 2]])
    create(cluster, "lonely", [[DOWN]])
    cluster.wait_for_full_isr("moving", range(2))
    cluster.kill(DOWN)
    try:
        # kafka-python gives up on a broker it cannot reach: wait until the node is fenced
        # (out of Metadata) and the controller is a live node.
        def settled() -> bool:
            views = [cluster.metadata(n) for n in (1, 2)]
            return all(DOWN not in v.brokers and v.controller_id in (1, 2) for v in views)

        wait_until(settled, 30, f"node {DOWN} fenced and a controller on a live node")
        # Its only replica down, a partition has no leader to elect.
        lonely = [("lonely", 0)]
        assert election_codes(cluster, ElectionType.UNCLEAN, lonely) == {
            ("lonely", 0): KafkaError.ELIGIBLE_LEADERS_NOT_AVAILABLE
        }
        assert election_codes(cluster, ElectionType.PREFERRED, lonely) == {
            ("lonely", 0): KafkaError.PREFERRED_LEADER_NOT_AVAILABLE
        }
        up = ",".join(cluster.address(n) for n in (1, 2))
        admin = KafkaAdminClient(bootstrap_servers=up, request_timeout_ms=30_000)
        try:
            _reassign_to_a_node_that_is_down(cluster, admin, tmp_path)
        finally:
            admin.close()
    finally:
        cluster.restart(DOWN)


def _reassign_to_a_node_that_is_down(cluster: Cluster, admin: KafkaAdminClient, tmp_path) -> None:
    bootstrap = ["--bootstrap-server", ",".join(cluster.address(n) for n in (1, 2))]
    assert admin.alter_partition_reassignments({TopicPartition("moving", 0): [2, 3]}) == {
        TopicPartition("moving", 0): None
    }
    # Every broker hosting a replica is listed meanwhile: the target first.
    assert admin.list_partition_reassignments() == {
        TopicPartition("moving", 0): {
            "replicas": [2, 3, 1], "adding_replicas": [3], "removing_replicas": [1],
        }
    }  # fmt: skip
    replicas_everywhere(cluster, "moving", 0, (2, 3, 1))
    assert admin.list_partition_reassignments({"moving": [1]}) == {}

    # The command line: --list, --execute refused while one is in progress, --verify.
    out = rafka("reassign", *bootstrap, "--list").stdout
    assert out.splitlines() == [
        "Current partition reassignments:",
        "moving-0: replicas: 2,3,1. adding: 3. removing: 1.",
    ]
    targets = {("moving", 0): [2, 3], ("moving", 1): [2, 3]}
    plan = reassignment_file(tmp_path / "moving.json", targets)
    refused = rafka("reassign", *bootstrap, "--execute", "--reassignment-json-file", str(plan),
                    check=False)  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "rafka: error: Cannot execute because there is an existing partition assignment."
    )
    out = rafka("reassign", *bootstrap, "--execute", "--additional",
                "--reassignment-json-file", str(plan)).stdout  # fmt: skip
    assert out.strip() == "Successfully started partition reassignments for moving-0,moving-1"
    out = rafka("reassign", *bootstrap, "--verify", "--reassignment-json-file", str(plan)).stdout
    assert out.splitlines() == [
        "Status of partition reassignment:",
        "Reassignment of partition moving-0 is still in progress.",
        "Reassignment of partition moving-1 is still in progress.",
    ]
    replicas_everywhere(cluster, "moving", 1, (2, 3, 1))

    # Cancel one with the API, the other with the command: back to the original replicas.
    assert admin.alter_partition_reassignments({TopicPartition("moving", 0): None}) == {
        TopicPartition("moving", 0): None
    }
    assert list(admin.list_partition_reassignments()) == [TopicPartition("moving", 1)]
    out = rafka("reassign", *bootstrap, "--cancel", "--reassignment-json-file", str(plan)).stdout
    assert out.strip() == "Successfully cancelled partition reassignment for: moving-1"
    assert admin.list_partition_reassignments() == {}
    for partition in range(2):
        replicas_everywhere(cluster, "moving", partition, (1, 2))
    out = rafka("reassign", *bootstrap, "--verify", "--reassignment-json-file", str(plan)).stdout
    assert out.splitlines()[1] == (
        "There is no active reassignment of partition moving-0, but replica set is 1,2 rather "
        "than 2,3."
    )
