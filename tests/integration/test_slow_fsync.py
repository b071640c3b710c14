"""Replication on a slow disk: every node's fsync takes longer than a follower's fetcher waits to
gather the partitions that just received records. A follower then sends its next fetch for the
other (idle) partitions without the late one; the leader must answer that fetch at once, not
hold it for the fetch's max wait, or the late partition and the acks=all writes waiting on it
stall that long (the fetch max wait is 5 s here, so a stall cannot pass for a slow fsync)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cluster import Cluster
from cluster_fixtures import create_topic
from confluent_kafka import Producer

pytestmark = pytest.mark.timeout(180)

SLOW_FSYNC = Path(__file__).parent / "slow_fsync"
FSYNC_DELAY_MS = 80  # beyond the fetcher's 50 ms gathering round
FETCH_MAX_WAIT_MS = 5000
RECORDS = 15


def test_acks_do_not_wait_for_a_fetch_max_wait_on_a_slow_disk(tmp_path: Path) -> None:
    launcher = ["env", f"PYTHONPATH={SLOW_FSYNC}", f"SLOW_FSYNC_MS={FSYNC_DELAY_MS}"]
    overrides = {
        "replica.fetch.wait.max.ms": str(FETCH_MAX_WAIT_MS),
        # A leader holds a follower's fetch for at most half of this: let it be the max wait.
        "controller.quorum.fetch.timeout.ms": str(4 * FETCH_MAX_WAIT_MS),
    }
    launchers = {i: launcher for i in (1, 2, 3)}
    with Cluster(tmp_path, 3, launchers=launchers, **overrides) as cluster:
        cluster.start()
        # Idle partitions led by every node, so each follower's fetch to the hot partition's
        # leader carries some besides it.
        create_topic(cluster, "idle", 12, 3)
        create_topic(cluster, "hot", 1, 3)
        producer = Producer(
            {"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 0, "log_level": 3}
        )
        # The first write waits for the followers to start fetching the new partition: their
        # fetch in flight (the idle partitions, held up to max wait) has to come back first,
        # as in Kafka's replica fetcher.
        producer.produce("hot", b"first")
        assert producer.flush(30) == 0
        for n in range(RECORDS):
            started = time.monotonic()
            producer.produce("hot", b"%d" % n)
            assert producer.flush(30) == 0
            took = time.monotonic() - started
            # Three slow fsyncs and a few round trips: far below the fetch max wait.
            assert took < FETCH_MAX_WAIT_MS / 1000 / 2, (
                f"write {n} was acknowledged in {took:.2f} s"
            )
