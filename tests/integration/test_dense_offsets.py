"""Offsets exactly as Kafka gives them (issue 12, "done when" 1 and 2): a partition starts at 0 and
neither a restart nor a leader failover burns an offset. Raft's LEADER_CHANGE batch is written
only when a new leader must commit an uncommitted tail of earlier epochs
(tests/unit/test_raft_replication.py covers that case; the simulator checks the rule on every
election).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster import FAST_FAILOVER, Cluster, wait_until
from cluster_fixtures import consumer_config, create_topic, producer_config, running_cluster
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from rafka.storage.log_dir import LogDirectory

QUIET = {"log_level": 3}


def produce_one(bootstrap: str, topic: str, value: bytes, **extra: object) -> int:
    """Produce one record with acks=all; its offset."""
    offsets: list[int] = []
    producer = Producer(producer_config(bootstrap, **extra))
    producer.produce(
        topic, value, partition=0, on_delivery=lambda err, msg: offsets.append(msg.offset())
    )
    assert producer.flush(60) == 0
    assert len(offsets) == 1 and offsets[0] >= 0, offsets
    return offsets[0]


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = Consumer(consumer_config(bootstrap))
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=15, cached=False)
    finally:
        consumer.close()


def consumed_offsets(bootstrap: str, topic: str, count: int) -> list[int]:
    consumer = Consumer(consumer_config(bootstrap, **{"auto.offset.reset": "earliest"}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    offsets: list[int] = []
    try:
        for _ in range(200):
            if len(offsets) >= count:
                break
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                offsets.append(message.offset())
    finally:
        consumer.close()
    return offsets


def create_single_node_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(30)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("restart", ["sigterm", "sigkill"])
def test_restarts_burn_no_offset(broker_factory, restart: str) -> None:
    broker = broker_factory().start()
    create_single_node_topic(broker.bootstrap, "dense")
    offsets = [produce_one(broker.bootstrap, "dense", b"first")]
    for value in (b"second", b"third"):
        if restart == "sigterm":
            broker.stop()
        else:
            broker.kill()
        broker.start()
        offsets.append(produce_one(broker.bootstrap, "dense", value))
    assert offsets == [0, 1, 2]
    assert watermarks(broker.bootstrap, "dense") == (0, 3)
    assert consumed_offsets(broker.bootstrap, "dense", 3) == [0, 1, 2]


@pytest.mark.timeout(120)
def test_delete_records_leaves_kafkas_watermarks(broker) -> None:
    create_single_node_topic(broker.bootstrap, "hundred")
    producer = Producer(producer_config(broker.bootstrap))
    for number in range(100):
        producer.produce("hundred", str(number).encode(), partition=0)
    assert producer.flush(60) == 0
    assert watermarks(broker.bootstrap, "hundred") == (0, 100)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    (future,) = admin.delete_records([TopicPartition("hundred", 0, 50)]).values()
    assert future.result(30).low_watermark == 50
    assert watermarks(broker.bootstrap, "hundred") == (50, 100)


def checkpointed_high_watermark(cluster: Cluster, node_id: int, topic: str) -> int:
    """What the node last checkpointed as the partition's high watermark (-1: nothing yet)."""
    try:
        found = LogDirectory(cluster.data_dir(node_id)).read_high_watermarks()
    except (OSError, ValueError):
        return -1  # mid-rewrite
    return found.get((topic, 0), -1)


def wait_for_every_replica_to_know(cluster: Cluster, topic: str, high_watermark: int) -> None:
    """Until every live replica has checkpointed `high_watermark`: its log is then committed as
    far as it knows, the state in which a new leader has nothing to commit first."""
    wait_until(
        lambda: all(
            checkpointed_high_watermark(cluster, i, topic) >= high_watermark
            for i in cluster.live_nodes()
        ),
        30,
        f"every replica of {topic}-0 to checkpoint high watermark {high_watermark}",
    )


@pytest.mark.timeout(240)
def test_cluster_offsets_stay_dense_through_failovers(tmp_path: Path) -> None:
    settings = {**FAST_FAILOVER, "log.flush.offset.checkpoint.interval.ms": "100"}
    with running_cluster(tmp_path, 3, **settings) as cluster:
        create_topic(cluster, "failover", 1, 3)
        bootstrap = cluster.bootstrap
        offsets = [produce_one(bootstrap, "failover", b"0")]  # a new topic starts at 0

        wait_for_every_replica_to_know(cluster, "failover", 1)
        crashed = cluster.leader_of("failover", 0)
        assert crashed is not None
        cluster.kill(crashed)
        cluster.wait_for_leader("failover", 0)
        offsets.append(produce_one(bootstrap, "failover", b"1"))

        cluster.restart(crashed)
        wait_for_every_replica_to_know(cluster, "failover", 2)
        stopped = cluster.leader_of("failover", 0)
        assert stopped is not None
        assert cluster.stop(stopped) == 0  # a graceful hand-over
        cluster.wait_for_leader("failover", 0)
        offsets.append(produce_one(bootstrap, "failover", b"2"))

        cluster.restart(stopped)
        wait_for_every_replica_to_know(cluster, "failover", 3)
        cluster.stop_all()
        cluster.start()  # the whole cluster restarts
        cluster.wait_for_leader("failover", 0)
        offsets.append(produce_one(bootstrap, "failover", b"3"))

        assert offsets == [0, 1, 2, 3]
        assert watermarks(bootstrap, "failover") == (0, 4)
        assert consumed_offsets(bootstrap, "failover", 4) == [0, 1, 2, 3]
