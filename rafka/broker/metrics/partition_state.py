"""Raft state of the partitions this node leads, partition health, and the metadata quorum."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from rafka.broker.metrics.scrape import SLICE, Families, LoopShare, slices

if TYPE_CHECKING:
    from rafka.broker.broker import Broker


class PartitionStateCollector:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def read(self, share: LoopShare) -> Families:
        broker = self._broker
        own = broker.node_id
        high_watermarks: list[tuple[str, int, int]] = []
        follower_lag: list[tuple[str, int, int, int]] = []
        under_replicated = 0
        for chunk in slices(list(broker.partitions.values())):
            for partition in chunk:
                raft = partition.raft
                if not raft.is_leader or partition.offline is not None:
                    continue
                high_watermarks.append((partition.topic, partition.index, raft.high_watermark))
                if len(raft.voters) == 1:
                    continue  # nothing to replicate to: skip the per-voter work
                end = partition.log.log_end_offset
                for replica, progress in raft.voter_progress().items():
                    if replica != own:
                        lag = max(end - progress.end_offset, 0)
                        follower_lag.append((partition.topic, partition.index, replica, lag))
                if len(partition.in_sync_replicas()) < len(raft.voters):
                    under_replicated += 1
            await share.pause()
        # Kafka's OfflinePartitionsCount is the active controller's; the others report 0.
        offline = await offline_partitions(broker, share) if broker.is_controller else 0
        metadata = broker.metadata
        quorum_leader = metadata.partition.leader_id if metadata is not None else -1
        quorum_epoch = metadata.partition.leader_epoch if metadata is not None else -1

        def families() -> Iterable[Metric]:
            hw = GaugeMetricFamily(
                "rafka_partition_high_watermark",
                "High watermark of each partition this node leads.",
                labels=["topic", "partition"],
            )
            for topic, index, value in high_watermarks:
                hw.add_metric([topic, str(index)], value)
            yield hw
            lag = GaugeMetricFamily(
                "rafka_partition_follower_lag_records",
                "Records between the leader's log end and what each follower has fsynced, for "
                "each partition this node leads.",
                labels=["topic", "partition", "replica"],
            )
            for topic, index, replica, value in follower_lag:
                lag.add_metric([topic, str(index), str(replica)], value)
            yield lag
            yield GaugeMetricFamily(
                "rafka_under_replicated_partitions",
                "Partitions this node leads whose in-sync replicas are fewer than their replicas.",
                value=under_replicated,
            )
            yield GaugeMetricFamily(
                "rafka_offline_partitions",
                "Partitions without a live leader (reported by the active controller; 0 on "
                "the other nodes).",
                value=offline,
            )
            yield GaugeMetricFamily(
                "rafka_metadata_quorum_leader",
                "Node id of the metadata quorum's leader, the controller (-1: none known).",
                value=quorum_leader,
            )
            yield GaugeMetricFamily(
                "rafka_metadata_quorum_epoch",
                "Leader epoch of the metadata quorum as this node knows it.",
                value=quorum_epoch,
            )

        return families


async def offline_partitions(broker: Broker, share: LoopShare) -> int:
    """Partitions of the metadata image whose leader is unknown or not a live broker: this
    node's replica's view when it has one, else what the leader last reported."""
    metadata = broker.metadata
    if metadata is None:
        return 0
    image = metadata.image
    live = {b.node_id for b in image.brokers.values() if not b.fenced}
    own = broker.node_id
    partitions = broker.partitions
    offline = read = 0
    for topic in list(image.topics.values()):
        states = topic.states
        for index in range(topic.partition_count):
            replica = partitions.get((topic.name, index))
            reported = states.get(index)
            leader = -1 if reported is None else reported.leader
            if replica is not None:
                if replica.offline is not None:
                    leader = -1 if leader == own else leader  # our storage failed
                elif replica.raft.leader_id is not None:
                    leader = replica.raft.leader_id
            if leader not in live:
                offline += 1
        read += topic.partition_count
        if read >= SLICE:
            read = 0
            await share.pause()
    return offline
