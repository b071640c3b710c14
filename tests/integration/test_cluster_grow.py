"""A cluster grows and shrinks while it runs (issue 18): a broker-only node (process.roles=broker,
not a metadata voter) joins a running 3-node cluster and takes over a partition's replica under
acks=all load; a node is drained with `rafka reassign` and unregistered (UnregisterBroker)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cluster import FAST_FAILOVER, HOST, Cluster, wait_until
from cluster_fixtures import (
    SequencedProducer,
    assert_acked_exactly_once_in_order,
    consume_all,
    create_topic,
    running_cluster,
)
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient

from rafka.cli.kafka_client import Connection

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

UNREGISTER_BROKER = 64
BROKER_ID_NOT_REGISTERED = 102
INVALID_REQUEST = 42
PRODUCER = {"acks": "all", "enable.idempotence": True}


def _replicas_everywhere(cluster: Cluster, topic: str, index: int, target: list[int]) -> bool:
    views = cluster.partition_views(topic, index)
    return bool(views) and all(list(view.replicas) == target for view in views.values())


def _wait_reassigned(cluster: Cluster, targets: dict[tuple[str, int], list[int]]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30_000)
    try:
        wait_until(lambda: not admin.list_partition_reassignments(), 90, "reassignments done")
    finally:
        admin.close()
    for (topic, index), target in targets.items():
        wait_until(
            lambda t=topic, i=index, r=target: _replicas_everywhere(cluster, t, i, r),
            30,
            f"{topic}-{index} on {target} everywhere",
        )


def _unregister(cluster: Cluster, via: int, broker_id: int) -> tuple[int, str | None]:
    conn = Connection(HOST, cluster.client_ports[via], "grow-test", 10.0)
    try:
        response = conn.send(UNREGISTER_BROKER, 0, {"broker_id": broker_id})
    finally:
        conn.close()
    return int(response.error_code), response.error_message


def test_a_new_broker_only_node_takes_over_a_replica_under_load(tmp_path):
    with running_cluster(tmp_path, 3, **FAST_FAILOVER) as cluster:
        create_topic(cluster, "growing", 1, 3)
        producer = SequencedProducer(cluster.bootstrap, "growing", 1, PRODUCER).start()
        try:
            producer.wait_for_acks(300, 30, "before node 4 joins")
            cluster.add_broker(4)
            admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30_000)
            try:
                admin.alter_partition_reassignments({TopicPartition("growing", 0): [2, 3, 4]})
            finally:
                admin.close()
            _wait_reassigned(cluster, {("growing", 0): [2, 3, 4]})
            producer.wait_for_acks(200, 30, "after the move")
            # Node 4 is a full voter now: with the partition's leader gone, it and the other
            # survivor elect a new one (Vote and fetches reach node 4 at its broker listener).
            leader = cluster.wait_for_leader("growing", 0)
            cluster.kill(leader)
            cluster.wait_for_leader("growing", 0, exclude=[leader])
            producer.wait_for_acks(200, 30, f"with node {leader} dead")
            cluster.start_nodes([leader])
            producer.wait_for_acks(200, 30, f"with node {leader} back")
        finally:
            producer.finish()
        errors = [e for _, _, e in producer.failed if not e.retriable()]
        assert not errors, f"non-retriable failures: {errors[:5]}"
        # Node 1 left the partition (the 2 other controllers keep the metadata quorum).
        cluster.stop(1)
        records = consume_all(cluster.bootstrap, "growing", 1)
        assert_acked_exactly_once_in_order(producer.acked, records)
        end = max(offset for offset, _ in records[0]) + 1
        cluster.assert_replicas_identical("growing", 0, end, replicas=[2, 3, 4])


def test_a_node_is_drained_and_unregistered(tmp_path):
    with running_cluster(tmp_path, 3, **FAST_FAILOVER) as cluster:
        cluster.add_broker(4)
        create_topic(cluster, "draining", 2, 3)
        producer = SequencedProducer(cluster.bootstrap, "draining", 2, PRODUCER).start()
        try:
            producer.wait_for_acks(300, 30, "before draining")
            plan = _generate(cluster, "draining", [1, 2, 3])
            plan_file = tmp_path / "plan.json"
            plan_file.write_text(json.dumps(plan))
            _rafka(cluster, "--execute", "--reassignment-json-file", str(plan_file))
            targets = {(p["topic"], p["partition"]): p["replicas"] for p in plan["partitions"]}
            _wait_reassigned(cluster, targets)
            producer.wait_for_acks(200, 30, "after draining")
            # A running broker is not unregistered (it would not register again); nor is one
            # never registered.
            assert _unregister(cluster, 1, 4)[0] == INVALID_REQUEST
            assert _unregister(cluster, 1, 9)[0] == BROKER_ID_NOT_REGISTERED
            # Killed, not stopped: the controller fences it once its metadata fetches stop
            # for broker.session.timeout.ms (a broker-only node fetches as an observer).
            cluster.kill(4)
            outcomes: list[tuple[int, str | None]] = []
            wait_until(
                lambda: outcomes.append(_unregister(cluster, 2, 4)) or outcomes[-1][0] == 0,
                15,
                "node 4 fenced, then unregistered",
            )
            assert outcomes[-1] == (0, None), outcomes
            # Again, with the CLI: it is gone now.
            again = _cli(cluster, "cluster", "unregister", "--id", "4")
            assert again.returncode == 1 and "not currently registered" in again.stderr, again
            wait_until(
                lambda: all(set(v.brokers) == {1, 2, 3} for v in cluster.metadata_views()),
                15,
                "node 4 gone from every node's Metadata",
            )
            producer.wait_for_acks(200, 30, "with node 4 gone")
        finally:
            producer.finish()
        errors = [e for _, _, e in producer.failed if not e.retriable()]
        assert not errors, f"non-retriable failures: {errors[:5]}"
        records = consume_all(cluster.bootstrap, "draining", 2)
        assert_acked_exactly_once_in_order(producer.acked, records)


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rafka", *args, "-b", cluster.bootstrap]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def _rafka(cluster: Cluster, *args: str) -> str:
    done = _cli(cluster, "reassign", *args)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def _generate(cluster: Cluster, topic: str, brokers: list[int]) -> dict:
    topics = cluster.root / "topics.json"
    topics.write_text(json.dumps({"version": 1, "topics": [{"topic": topic}]}))
    out = _rafka(
        cluster,
        "--generate",
        "--topics-to-move-json-file",
        str(topics),
        "--broker-list",
        ",".join(map(str, brokers)),
    )
    plan = json.loads(out.split("Proposed partition reassignment configuration\n", 1)[1])
    assert all(set(p["replicas"]) == set(brokers) for p in plan["partitions"]), plan
    return plan
