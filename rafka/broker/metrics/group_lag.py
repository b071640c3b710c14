"""Consumer group lag, on the node coordinating the group: high watermark minus committed offset.

The committed offsets are the coordinator's own (`ClassicGroup.offsets`, kept as commits,
deletions, expiry and shard loads change them), so a scrape walks only the groups of the shards
loaded here and their committed partitions, and reads each high watermark from the local
replica. A partition with no replica on this node (other brokers of a cluster) has no series
here; a follower's high watermark may trail its leader's by a fetch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from rafka.broker.coordinator.groups.group import GroupState
from rafka.broker.metrics.scrape import SLICE, Families, LoopShare, slices

if TYPE_CHECKING:
    from rafka.broker.broker import Broker


class GroupLagCollector:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def read(self, share: LoopShare) -> Families:
        partitions = self._broker.partitions
        groups = [
            group
            for shard in list(self._broker.groups.shards.values())
            if shard.active
            for group in shard.groups.values()
            if group.offsets
        ]
        rows: list[tuple[str, str, int, int]] = []
        read = 0
        for group in groups:
            if group.state is GroupState.DEAD:  # unloaded or deleted meanwhile
                continue
            group_id = group.group_id
            for chunk in slices(list(group.offsets.items())):
                for (topic, index), committed in chunk:
                    replica = partitions.get((topic, index))
                    if replica is None or replica.offline is not None:
                        continue
                    # A commit past the high watermark (a follower's, trailing) is no lag.
                    lag = max(replica.raft.high_watermark - committed.offset, 0)
                    rows.append((group_id, topic, index, lag))
                read += len(chunk)
                if read >= SLICE:
                    read = 0
                    await share.pause()

        def families() -> Iterable[Metric]:
            family = GaugeMetricFamily(
                "rafka_consumer_group_lag",
                "High watermark minus the group's committed offset, for the groups this node "
                "coordinates and the partitions it hosts.",
                labels=["group", "topic", "partition"],
            )
            for group_id, topic, index, lag in rows:
                family.add_metric([group_id, topic, str(index)], lag)
            yield family

        return families
