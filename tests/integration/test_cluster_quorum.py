"""A five-node rafka cluster accepts acks=all writes while a majority of a partition's replicas is
up and refuses them (no acknowledgement) without one; what it acknowledged survives (issue 6,
"done when" 3)."""

from __future__ import annotations

import pytest
from cluster import FAST_FAILOVER, Cluster
from cluster_fixtures import (
    consume_all,
    create_topic,
    high_watermark,
    producer_config,
    running_cluster,
)
from confluent_kafka import KafkaError, Producer

TOPIC = "quorum"
# A refused write must stay unacknowledged for this long at least.
REFUSAL_TIMEOUT_MS = 5000


def produce(cluster: Cluster, prefix: str, count: int, **config: object) -> tuple[list, list]:
    """Produce `count` values `<prefix>-<n>` to partition 0 and wait for every delivery report:
    ([(offset, value)] acknowledged, [(value, error)] failed)."""
    acked: list[tuple[int, bytes]] = []
    failed: list[tuple[bytes, KafkaError]] = []

    def report(error: KafkaError | None, message) -> None:
        if error is None:
            acked.append((message.offset(), message.value()))
        else:
            failed.append((message.value(), error))

    producer = Producer({**producer_config(cluster.bootstrap), **config})
    for n in range(count):
        producer.produce(TOPIC, f"{prefix}-{n}".encode(), partition=0, on_delivery=report)
        producer.poll(0)
    remaining = producer.flush(90)
    assert remaining == 0, f"{remaining} {prefix} messages without a delivery report"
    return acked, failed


def produce_acknowledged(cluster: Cluster, prefix: str, count: int) -> list[tuple[int, bytes]]:
    acked, failed = produce(cluster, prefix, count, **{"delivery.timeout.ms": 60_000})
    assert not failed, f"{prefix}: {len(failed)} writes failed, e.g. {failed[:3]}"
    assert [value for _, value in acked] == [f"{prefix}-{n}".encode() for n in range(count)]
    return acked


@pytest.mark.timeout(240)
def test_writes_need_a_majority_of_replicas(tmp_path):
    with running_cluster(tmp_path, 5, **FAST_FAILOVER) as cluster:
        create_topic(cluster, TOPIC, 1, 5)
        cluster.wait_for_full_isr(TOPIC, [0])
        acked = produce_acknowledged(cluster, "all-up", 200)

        # Two of five down, the leader among them: three replicas are a majority.
        leader = cluster.wait_for_leader(TOPIC, 0)
        follower = next(i for i in cluster.partition_replicas(TOPIC, 0) if i != leader)
        down = [leader, follower]
        for node_id in down:
            cluster.kill(node_id)
        new_leader = cluster.wait_for_leader(TOPIC, 0, exclude=down)
        acked += produce_acknowledged(cluster, "two-down", 200)

        # A third down, a follower: the leader is alive but two of five cannot commit anything.
        third = next(i for i in cluster.live_nodes() if i != new_leader)
        cluster.kill(third)
        down.append(third)
        refused_acks, refused = produce(
            cluster,
            "three-down",
            20,
            **{
                "enable.idempotence": False,
                "message.timeout.ms": REFUSAL_TIMEOUT_MS,
                "request.timeout.ms": REFUSAL_TIMEOUT_MS // 2,
            },
        )
        assert refused_acks == [], f"acknowledged with 3 of 5 down: {refused_acks[:5]}"
        assert len(refused) == 20
        assert all(error.code() != KafkaError.NO_ERROR for _, error in refused)

        # Everyone back: all acknowledged data is where it was acknowledged, in order, once.
        cluster.start_nodes(down)
        cluster.wait_for_leader(TOPIC, 0)
        acked += produce_acknowledged(cluster, "all-back", 200)
        records = consume_all(cluster.bootstrap, TOPIC, 1)[0]
        stored = dict(records)
        misplaced = [(offset, value) for offset, value in acked if stored.get(offset) != value]
        assert not misplaced, f"{len(misplaced)} acknowledged writes lost, e.g. {misplaced[:5]}"
        values = [value for _, value in records]
        assert len(values) == len(set(values)), "a value is stored twice"
        acked_values = {value for _, value in acked}
        # Refused writes may or may not have been committed later, but nothing else is there.
        assert all(value in acked_values or value.startswith(b"three-down-") for value in values), (
            values
        )
        assert [v for v in values if v in acked_values] == [v for _, v in sorted(acked)]

        # The replicas that were down caught up to the same bytes.
        hw = high_watermark(cluster, TOPIC, 0)
        cluster.wait_for_replicas_to_reach(TOPIC, 0, hw)
        cluster.assert_replicas_identical(TOPIC, 0, hw)
