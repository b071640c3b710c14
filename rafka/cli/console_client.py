"""The protocol side of `rafka produce` and `rafka consume`: Metadata with auto-creation, Produce,
Fetch and the group APIs, on rafka's own CLI client (kafka_client) and record codec.

`ConsoleClient` extends KafkaClient with the APIs the admin commands do not need; versions are
negotiated per connection as there (the newest both sides know, capped by `_CONSOLE_MAX`, which
keeps topics named rather than identified by id). Connections that fail are dropped so that the
next call reconnects, possibly to a new leader.
"""

from __future__ import annotations

import io
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kio.serial import entity_writer

from rafka.cli.kafka_client import (
    METADATA,
    OFFSET_COMMIT,
    Cluster,
    Connection,
    KafkaClient,
    KafkaClientError,
    error_name,
    parse_bootstrap,
)
from rafka.protocol.errors import ErrorCode
from rafka.protocol.messages import build, request_class

PRODUCE = 0
FETCH = 1
JOIN_GROUP = 11
HEARTBEAT = 12
LEAVE_GROUP = 13
SYNC_GROUP = 14
# Produce v13 and Fetch v13 name topics by id; Produce v3 / Fetch v4 are the first with v2 batches.
_CONSOLE_MAX = {
    PRODUCE: 9,
    FETCH: 12,
    METADATA: 12,
    OFFSET_COMMIT: 9,
    JOIN_GROUP: 7,
    SYNC_GROUP: 5,
    HEARTBEAT: 4,
    LEAVE_GROUP: 5,
}
_SIZE = struct.Struct(">i")
NO_TOPIC_ID = uuid.UUID(int=0)


def retriable(code: int) -> bool:
    try:
        return bool(ErrorCode(code).retriable)
    except ValueError:
        return False


@dataclass(slots=True)
class FetchedPartition:
    topic: str
    partition: int
    error_code: int
    high_watermark: int
    aborted: list[tuple[int, int]]  # (producer id, first offset) of aborted transactions
    records: bytes


class ConsoleConnection(Connection):
    def version_for(self, api_key: int) -> int:
        ceiling = _CONSOLE_MAX.get(api_key)
        if ceiling is None:
            return super().version_for(api_key)
        supported = self.versions.get(api_key)
        if supported is None or supported[0] > ceiling:
            raise KafkaClientError(f"{self.address}: no common version of API {api_key}")
        return min(supported[1], ceiling)

    def send_only(self, api_key: int, version: int, data: dict[str, Any]) -> None:
        """Send a request the broker does not answer (Produce with acks=0)."""
        request_cls = request_class(api_key, version)
        body = io.BytesIO()
        entity_writer(request_cls)(body, build(request_cls, data))
        self._correlation += 1
        client_id = self._client_id
        header = struct.pack(">hhih", api_key, version, self._correlation, len(client_id))
        header += client_id + (b"\x00" if request_cls.__flexible__ else b"")
        payload = header + body.getvalue()
        try:
            self._sock.sendall(_SIZE.pack(len(payload)) + payload)
        except OSError as exc:
            raise KafkaClientError(f"{self.address}: {exc}") from None


class ConsoleClient(KafkaClient):
    def _any(self) -> Connection:
        if self._bootstrap_connection is None:
            errors = []
            # Known brokers first: the bootstrap address may be the one that went away.
            known = list(self._cluster.brokers.values()) if self._cluster else []
            for host, port in [*known, *self._bootstrap]:
                try:
                    self._bootstrap_connection = ConsoleConnection(
                        host, port, self._client_id, self._timeout
                    )
                    break
                except KafkaClientError as exc:
                    errors.append(str(exc))
            else:
                raise KafkaClientError("; ".join(dict.fromkeys(errors)))
        return self._bootstrap_connection

    def _node(self, node_id: int) -> Connection:
        conn = self._connections.get(node_id)
        if conn is None:
            address = self.cluster().brokers.get(node_id)
            if address is None:
                raise KafkaClientError(f"broker {node_id} is not in the cluster metadata")
            conn = ConsoleConnection(address[0], address[1], self._client_id, self._timeout)
            self._connections[node_id] = conn
        return conn

    def forget(self, node_id: int | None) -> None:
        """Close a connection that failed (None: the bootstrap one)."""
        conn = (
            self._connections.pop(node_id, None)
            if node_id is not None
            else self._bootstrap_connection
        )
        if node_id is None:
            self._bootstrap_connection = None
        if conn is not None:
            conn.close()

    def call(self, api_key: int, data: dict[str, Any], node_id: int | None = None) -> Any:
        try:
            return super().call(api_key, data, node_id)
        except KafkaClientError:
            self.forget(node_id)
            raise

    # -- metadata -----------------------------------------------------------------------------

    def topics_metadata(self, topics: list[str], allow_create: bool) -> dict[str, int]:
        """Metadata for `topics` (created if the broker auto-creates and `allow_create`); the
        cluster view becomes the answer's brokers and these topics. Returns each topic's error
        code, or the first partition error (e.g. a partition without a leader yet)."""
        response = self.call(
            METADATA,
            {
                "topics": [{"name": t, "topic_id": NO_TOPIC_ID} for t in topics],
                "allow_auto_topic_creation": allow_create,
                "include_cluster_authorized_operations": False,
                "include_topic_authorized_operations": False,
            },
        )
        cluster = Cluster()
        for b in response.brokers:
            cluster.brokers[b.node_id] = (b.host, b.port)
        errors: dict[str, int] = {}
        for t in response.topics:
            if t.name is None:
                continue
            errors[t.name] = t.error_code
            if t.error_code != ErrorCode.none:
                continue
            cluster.partitions[t.name] = len(t.partitions)
            for p in t.partitions:
                leader = p.leader_id if p.error_code == ErrorCode.none else -1
                cluster.leaders[(t.name, p.partition_index)] = leader
                if leader < 0 and errors[t.name] == ErrorCode.none:
                    errors[t.name] = p.error_code or ErrorCode.leader_not_available
        for node_id in set(self._connections) - set(cluster.brokers):
            self.forget(node_id)
        self._cluster = cluster
        return errors

    # -- produce and fetch --------------------------------------------------------------------

    def produce(
        self,
        node_id: int,
        acks: int,
        timeout_ms: int,
        batches: Mapping[tuple[str, int], bytes],
    ) -> dict[tuple[str, int], tuple[int, int, str | None]]:
        """Send one batch per partition to their leader; (error code, base offset, message) per
        partition. With acks=0 nothing comes back and every partition reads as written."""
        topics: dict[str, list[dict[str, Any]]] = {}
        for (topic, partition), batch in batches.items():
            topics.setdefault(topic, []).append({"index": partition, "records": batch})
        data = {
            "transactional_id": None,
            "acks": acks,
            "timeout": timeout_ms,
            "topic_data": [{"name": t, "partition_data": p} for t, p in topics.items()],
        }
        if acks == 0:
            try:
                conn = self._node(node_id)
                conn.send_only(PRODUCE, conn.version_for(PRODUCE), data)
            except KafkaClientError:
                self.forget(node_id)
                raise
            return {tp: (ErrorCode.none, -1, None) for tp in batches}
        response = self.call(PRODUCE, data, node_id)
        return {
            (t.name, p.index): (p.error_code, p.base_offset, getattr(p, "error_message", None))
            for t in response.responses
            for p in t.partition_responses
        }

    def fetch(
        self,
        node_id: int,
        positions: Mapping[tuple[str, int], int],
        *,
        max_wait_ms: int,
        min_bytes: int,
        max_bytes: int,
        partition_max_bytes: int,
        isolation_level: int,
    ) -> list[FetchedPartition]:
        """A full (sessionless) Fetch of `positions` from their leader `node_id`."""
        topics: dict[str, list[dict[str, Any]]] = {}
        for (topic, partition), offset in positions.items():
            topics.setdefault(topic, []).append(
                {
                    "partition": partition,
                    "current_leader_epoch": -1,
                    "fetch_offset": offset,
                    "last_fetched_epoch": -1,
                    "log_start_offset": -1,
                    "partition_max_bytes": partition_max_bytes,
                }
            )
        response = self.call(
            FETCH,
            {
                "cluster_id": None,
                "replica_id": -1,
                "max_wait": max_wait_ms,
                "min_bytes": min_bytes,
                "max_bytes": max_bytes,
                "isolation_level": isolation_level,
                "session_id": 0,
                "session_epoch": -1,  # no fetch session: every request names its partitions
                "topics": [{"topic": t, "partitions": p} for t, p in topics.items()],
                "forgotten_topics_data": [],
                "rack_id": "",
            },
            node_id,
        )
        if response.error_code != ErrorCode.none:
            code = error_name(response.error_code)
            raise KafkaClientError(f"Fetch from broker {node_id}: {code}")
        out = []
        for t in response.responses:
            for p in t.partitions:
                aborted = [(a.producer_id, a.first_offset) for a in p.aborted_transactions or ()]
                out.append(
                    FetchedPartition(
                        t.topic,
                        p.partition_index,
                        p.error_code,
                        p.high_watermark,
                        aborted,
                        bytes(p.records or b""),
                    )
                )
        return out


def open_client(bootstrap: str, client_id: str, timeout_s: float) -> ConsoleClient:
    parse_bootstrap(bootstrap)  # a malformed address fails before anything else
    return ConsoleClient(bootstrap, client_id=client_id, timeout=timeout_s)
