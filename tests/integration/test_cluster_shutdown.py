"""Graceful shutdown (SIGTERM) of a partition leader hands its leadership over without a failed
produce request (issue 6, "done when" 4), and the preferred leader takes its partitions back
once it returns."""

from __future__ import annotations

import pytest
from cluster import FAST_FAILOVER, wait_until
from cluster_fixtures import (
    SequencedProducer,
    assert_acked_exactly_once_in_order,
    consume_all,
    create_topic,
    running_cluster,
)

TOPIC = "graceful"
# A produce that cannot complete within this fails the test: a handover is not an outage.
DELIVERY_TIMEOUT_MS = 10_000
# controller.quorum.fetch.timeout.ms's default: how long followers wait for a silent leader.
DEFAULT_FETCH_TIMEOUT_S = 2.0
# Kafka's preferred-leader election, checked every second instead of every five minutes.
AUTO_REBALANCE = {
    "auto.leader.rebalance.enable": "true",
    "leader.imbalance.check.interval.seconds": "1",
}


def start_producer(bootstrap: str) -> SequencedProducer:
    return SequencedProducer(
        bootstrap, TOPIC, 1, config={"delivery.timeout.ms": DELIVERY_TIMEOUT_MS}
    ).start()


@pytest.mark.timeout(150)
def test_graceful_shutdown_moves_leadership_without_failed_produce(tmp_path):
    # Kafka's default quorum timers: a leader that just vanished is replaced only after its
    # followers' fetch timeout, so a shorter pause in acknowledgements shows it handed over.
    with running_cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        cluster.wait_for_full_isr(TOPIC, [0])
        producer = start_producer(cluster.bootstrap)
        try:
            producer.wait_for_acks(300, 30, "before the shutdown")
            leader = cluster.wait_for_leader(TOPIC, 0)
            epoch = cluster.partition_view(TOPIC, 0).leader_epoch
            assert cluster.stop(leader) == 0, "SIGTERM must end the node cleanly"
            # The handover happened before the node exited: the others already know a new leader.
            new_leader = cluster.wait_for_leader(TOPIC, 0, exclude=[leader], timeout=5)
            assert cluster.partition_view(TOPIC, 0).leader_epoch > epoch
            producer.wait_for_acks(300, 30, f"after node {leader} shut down")
            producer.finish()
        finally:
            producer.close()

        assert not producer.failed, f"failed deliveries: {producer.failed[:5]}"
        gap = producer.longest_ack_gap()
        print(f"leader {leader} -> {new_leader}; longest gap between acks {gap:.3f}s")
        assert gap < DEFAULT_FETCH_TIMEOUT_S, (
            f"acknowledgements paused {gap:.2f}s, as long as a crashed leader's failover"
        )
        records = consume_all(cluster.bootstrap, TOPIC, 1)
        assert_acked_exactly_once_in_order(producer.acked, records, producer.sent)


@pytest.mark.timeout(150)
def test_preferred_leader_regains_leadership_after_restart(tmp_path):
    with running_cluster(tmp_path, 3, **FAST_FAILOVER, **AUTO_REBALANCE) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        preferred = cluster.partition_replicas(TOPIC, 0)[0]
        wait_until(
            lambda: cluster.leader_of(TOPIC, 0) == preferred,
            30,
            f"the preferred replica {preferred} to lead",
        )
        producer = start_producer(cluster.bootstrap)
        try:
            producer.wait_for_acks(200, 30, "before the shutdown")
            assert cluster.stop(preferred) == 0
            cluster.wait_for_leader(TOPIC, 0, exclude=[preferred], timeout=5)
            producer.wait_for_acks(200, 30, f"with node {preferred} stopped")
            cluster.restart(preferred)
            wait_until(
                lambda: cluster.leader_of(TOPIC, 0) == preferred,
                30,
                f"node {preferred}, the preferred replica, to lead again",
            )
            producer.wait_for_acks(200, 30, f"after node {preferred} took leadership back")
            producer.finish()
        finally:
            producer.close()

        assert not producer.failed, f"failed deliveries: {producer.failed[:5]}"
        records = consume_all(cluster.bootstrap, TOPIC, 1)
        assert_acked_exactly_once_in_order(producer.acked, records, producer.sent)
