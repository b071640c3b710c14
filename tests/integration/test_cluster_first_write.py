"""The first acks=all write to a new partition of a three-node cluster. Its followers fetch from
its leader with one request at a time, and the one in flight (for other, idle partitions) is held
at the leader for up to the fetch max wait; a follower that starts following the new partition
can fetch it only once that request is back. The leader answers it as soon as the follower says
it follows (its answer to BeginQuorumEpoch), so the write does not wait the hold out (Kafka's
replica fetcher does: up to replica.fetch.wait.max.ms). The max wait is 20 s here, so a write
held that long cannot pass."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cluster_fixtures import create_topic, running_cluster
from confluent_kafka import Producer

pytestmark = pytest.mark.timeout(180)

FETCH_MAX_WAIT_MS = 20_000
PARTITIONS = 6


def test_a_new_partitions_first_write_does_not_wait_for_a_held_fetch(tmp_path: Path) -> None:
    overrides = {
        "replica.fetch.wait.max.ms": str(FETCH_MAX_WAIT_MS),
        # A leader holds a follower's fetch for at most half of this: let it be the max wait.
        "controller.quorum.fetch.timeout.ms": str(4 * FETCH_MAX_WAIT_MS),
    }
    with running_cluster(tmp_path, 3, **overrides) as cluster:
        # Idle partitions led by every node: each follower has a fetch held at every leader.
        create_topic(cluster, "idle", 3, 3)
        cluster.wait_for_full_isr("idle", range(3))
        create_topic(cluster, "fresh", PARTITIONS, 3)
        producer = Producer(
            {"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 0, "log_level": 3}
        )
        took: dict[int, float] = {}
        started = time.monotonic()

        def acknowledged(error, message) -> None:
            assert error is None, error
            took[message.partition()] = time.monotonic() - started

        for partition in range(PARTITIONS):
            producer.produce("fresh", b"first", partition=partition, on_delivery=acknowledged)
        assert producer.flush(60) == 0
        # Each write waits for one follower's held fetch without the fix: one of six coming
        # back within 3 s of 20 by chance is likely, all six are not (p < 0.001).
        slow = {p: round(t, 2) for p, t in took.items() if t > 3.0}
        assert not slow, f"first writes acknowledged after (s): {slow}"
