"""Which `__consumer_offsets` partition, and so which coordinator, owns a group.

Kafka places a group at `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`, where
hashCode is Java's String.hashCode over UTF-16 code units with 32-bit overflow and Utils.abs maps
Integer.MIN_VALUE to 0. Clients never compute this, but tools that read `__consumer_offsets`
and a cluster migrated to or from Kafka agree on it only if we use the same function.
"""

from __future__ import annotations

_INT_MIN = -(1 << 31)


def java_string_hash(text: str) -> int:
    h = 0
    data = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, partitions: int) -> int:
    h = java_string_hash(group_id)
    return (0 if h == _INT_MIN else abs(h)) % partitions
