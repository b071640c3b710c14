"""The cluster metadata: a Raft-replicated log (`__cluster_metadata-0`) replayed into an image.

Every change (topic created or deleted, configs, producer-id blocks) is proposed as records on the
metadata log, waits for the high watermark like an acks=all write, and only then is applied to
the in-memory image; on start the whole log is replayed. A single node is a one-voter quorum, so
this is the same path a cluster takes.

Record values are JSON objects with a "type" for now. KRaft's binary metadata record schemas can
replace them without changing this module's interface.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from rafka.broker.partition import Partition, now_ms
from rafka.protocol.records import build_batch, decode_batch

log = structlog.get_logger(__name__)

METADATA_TOPIC = "__cluster_metadata"
PRODUCER_ID_BLOCK_SIZE = 1000


@dataclass(slots=True)
class TopicImage:
    name: str
    topic_id: uuid.UUID
    replicas: list[list[int]]  # per partition, the replica node ids (first = preferred leader)
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def partition_count(self) -> int:
        return len(self.replicas)


@dataclass(slots=True)
class MetadataImage:
    topics: dict[str, TopicImage] = field(default_factory=dict)
    topics_by_id: dict[uuid.UUID, TopicImage] = field(default_factory=dict)
    next_producer_id_block: int = 0
    # Dynamic broker configs by resource name: "" = cluster-wide default, "<node id>" = one broker.
    broker_configs: dict[str, dict[str, str]] = field(default_factory=dict)

    def apply(self, record: dict[str, Any]) -> None:
        kind = record["type"]
        if kind == "topic":
            topic = TopicImage(
                record["name"],
                uuid.UUID(record["id"]),
                [list(r) for r in record["replicas"]],
                dict(record.get("configs", {})),
            )
            self.topics[topic.name] = topic
            self.topics_by_id[topic.topic_id] = topic
        elif kind == "remove_topic":
            topic = self.topics_by_id.pop(uuid.UUID(record["id"]), None)
            if topic is not None:
                self.topics.pop(topic.name, None)
        elif kind == "topic_configs":
            topic = self.topics_by_id.get(uuid.UUID(record["id"]))
            if topic is not None:
                topic.configs = dict(record["configs"])
        elif kind == "partitions":  # CreatePartitions: replica lists of the added partitions
            topic = self.topics_by_id.get(uuid.UUID(record["id"]))
            if topic is not None:
                topic.replicas.extend(list(r) for r in record["replicas"])
        elif kind == "broker_configs":
            if record["configs"]:
                self.broker_configs[record["resource"]] = dict(record["configs"])
            else:
                self.broker_configs.pop(record["resource"], None)
        elif kind == "producer_ids":
            self.next_producer_id_block = max(self.next_producer_id_block, record["next"])
        # Unknown record types are skipped so an older broker can read a newer log.


class ClusterMetadata:
    def __init__(self, partition: Partition) -> None:
        self.partition = partition
        self.image = MetadataImage()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._producer_ids: range = range(0)
        self._allocating = asyncio.Lock()

    def replay(self) -> None:
        for header, batch in self.partition.log.iter_batches(self.partition.log_start_offset):
            if header.is_control:
                continue
            _, records = decode_batch(batch)
            for record in records:
                if record.value is None:
                    continue
                try:
                    entry = json.loads(record.value)
                except ValueError:
                    log.error("undecodable metadata record skipped", offset=header.base_offset)
                    continue
                self.image.apply(entry)

    async def propose(self, records: list[dict[str, Any]]) -> None:
        """Append records, wait until they are committed, then apply them to the image."""
        timestamp = now_ms()
        values = [(None, json.dumps(r).encode(), (), timestamp) for r in records]
        batch = build_batch(values)
        result = self.partition.append_records(
            batch, max_message_bytes=1 << 30, log_append_time=False
        )
        await self.partition.wait_committed(result.last_offset)
        for record in records:
            self.image.apply(record)
            for listener in self.listeners:
                listener(record)

    async def allocate_producer_id(self) -> int:
        """Producer ids come in blocks reserved on the metadata log, so none is reused."""
        async with self._allocating:
            if not self._producer_ids:
                start = self.image.next_producer_id_block
                await self.propose(
                    [{"type": "producer_ids", "next": start + PRODUCER_ID_BLOCK_SIZE}]
                )
                self._producer_ids = range(start, start + PRODUCER_ID_BLOCK_SIZE)
        producer_id = self._producer_ids[0]
        self._producer_ids = self._producer_ids[1:]
        return producer_id
