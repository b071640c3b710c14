"""Consumer groups across a three-node rafka cluster survive their coordinator's node being killed
(issue 6, "done when" 5): the group coordinator is the leader of the group's `__consumer_offsets`
partition; when its node dies another node takes over with every acknowledged commit, and the
group goes on consuming until it has seen every produced message."""

from __future__ import annotations

from collections import defaultdict

import pytest
from cluster import FAST_FAILOVER, Cluster, wait_until
from cluster_fixtures import (
    CLIENT_LOG_LEVEL,
    CommitWatcher,
    GroupMember,
    GroupProgress,
    SequencedProducer,
    committed_offsets,
    create_topic,
    offsets_reader,
    retrying,
    running_cluster,
)
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from rafka.broker.coordinator.placement import partition_for

TOPIC = "orders"
PARTITIONS = 6
GROUP = "order-processors"
MEMBERS = 3
OFFSETS_PARTITIONS = 3
OFFSETS_TOPIC = "__consumer_offsets"
OVERRIDES = {
    **FAST_FAILOVER,
    "offsets.topic.num.partitions": str(OFFSETS_PARTITIONS),
    "offsets.topic.replication.factor": "3",
}


def coordinator_of(admin: AdminClient) -> int:
    description = admin.describe_consumer_groups([GROUP], request_timeout=10)[GROUP].result(30)
    return description.coordinator.id


def wait_for_offsets_leader(cluster: Cluster, partition: int, coordinator: int) -> None:
    wait_until(
        lambda: cluster.leader_of(OFFSETS_TOPIC, partition) == coordinator,
        10,
        f"node {coordinator}, the group coordinator, to lead {OFFSETS_TOPIC}-{partition}",
    )


def wait_for_coordinator(cluster: Cluster, admin: AdminClient, exclude: int | None) -> int:
    found: list[int] = []

    def available() -> bool:
        try:
            node = coordinator_of(admin)
        except KafkaException:
            return False
        found.append(node)
        return node != exclude and cluster.is_alive(node)

    wait_until(available, 30, f"a group coordinator other than node {exclude}")
    return found[-1]


@pytest.mark.timeout(180)
def test_group_survives_coordinator_crash(tmp_path):
    with running_cluster(tmp_path, 3, **OVERRIDES) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS, 3)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": CLIENT_LOG_LEVEL})
        producer = SequencedProducer(cluster.bootstrap, TOPIC, PARTITIONS).start()
        progress = GroupProgress()
        watcher = CommitWatcher(cluster.bootstrap, GROUP, TOPIC, PARTITIONS).start()
        reader = offsets_reader(cluster.bootstrap, GROUP)

        def committed() -> dict[int, int]:
            return committed_offsets(reader, TOPIC, PARTITIONS)

        members = [
            GroupMember(cluster.bootstrap, TOPIC, GROUP, f"member{i}", progress)
            for i in range(MEMBERS)
        ]
        try:
            for member in members:
                member.start()
            wait_until(
                lambda: len(progress.commits()) == PARTITIONS,
                60,
                "a commit acknowledged on every partition",
            )

            # The coordinator is the leader of the group's __consumer_offsets partition.
            coordinator = wait_for_coordinator(cluster, admin, exclude=None)
            offsets_partition = partition_for(GROUP, OFFSETS_PARTITIONS)
            replicas = cluster.partition_replicas(OFFSETS_TOPIC, offsets_partition)
            assert sorted(replicas) == [1, 2, 3], replicas
            wait_for_offsets_leader(cluster, offsets_partition, coordinator)

            before_kill = progress.commits()
            cluster.kill(coordinator)
            consumed_at_kill = progress.count()
            new_coordinator = wait_for_coordinator(cluster, admin, exclude=coordinator)
            wait_for_offsets_leader(cluster, offsets_partition, new_coordinator)
            # Every commit acknowledged before the crash survived it.
            after_kill = retrying(committed, "the committed offsets")
            lost = {
                p: (offset, after_kill.get(p))
                for p, offset in before_kill.items()
                if after_kill.get(p, -1) < offset
            }
            assert not lost, f"acknowledged commits went backwards (before, after): {lost}"

            # The group goes on: more is consumed, and committed on every partition.
            wait_until(
                lambda: progress.count() > consumed_at_kill + 500,
                60,
                "the group to consume after its coordinator died",
            )
            commits_after = progress.commits()
            wait_until(
                lambda: all(
                    progress.commits().get(p, -1) > commits_after.get(p, -1)
                    for p in range(PARTITIONS)
                ),
                60,
                "new commits on every partition under the new coordinator",
            )

            producer.finish()
            assert not producer.failed, f"delivery failures: {producer.failed[:5]}"
            produced = {ack.value for ack in producer.acked}
            wait_until(
                lambda: produced <= progress.consumed_values(),
                60,
                "the group to consume every produced message",
            )
            # Once everything is consumed and committed, the committed offsets are the ends.
            ends = defaultdict(int)
            for ack in producer.acked:
                if ack.offset is not None:  # else implicitly acked: a later one has an offset
                    ends[ack.partition] = max(ends[ack.partition], ack.offset + 1)
            wait_until(
                lambda: all(progress.commits().get(p, -1) >= ends[p] for p in range(PARTITIONS)),
                60,
                "commits up to the end of every partition",
            )
            final = retrying(committed, "the committed offsets")
            assert all(final.get(p, -1) >= ends[p] for p in range(PARTITIONS)), (final, ends)
        finally:
            producer.close()
            watcher.stop()
            reader.close()
            for member in members:
                member.stop()
        assert not watcher.regressions, (
            f"committed offsets went backwards (partition, before, after): {watcher.regressions}"
        )
        assert watcher.samples > 0
        print(
            f"coordinator {coordinator} -> {new_coordinator}; {progress.count()} consumed, "
            f"{len(produced)} produced; {len(progress.commit_failures)} failed commits; "
            f"{watcher.samples} offset samples"
        )
        assert not progress.errors, f"consumer errors: {progress.errors[:5]}"
