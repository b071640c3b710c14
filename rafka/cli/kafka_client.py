"""A small blocking Kafka protocol client for the CLI, built on kio's schemas.

It speaks to any Kafka-compatible cluster (rafka or Apache Kafka): ApiVersions picks, per API,
the highest version both sides know; requests are plain dicts built into kio entities by
rafka.protocol.messages.build. Only what the admin commands need is here: metadata, group
coordinator lookup, group listing/description/deletion, offset fetch/commit and ListOffsets.
"""

from __future__ import annotations

import io
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kio.serial import entity_reader, entity_writer

from rafka.broker.security.sasl import PLAIN, SaslFailed, ScramClient
from rafka.cli.client_security import CURRENT, ClientSecurity
from rafka.protocol.errors import ErrorCode
from rafka.protocol.frames import skip_tagged_fields
from rafka.protocol.messages import build, request_class, response_class

LIST_OFFSETS = 2
METADATA = 3
OFFSET_COMMIT = 8
OFFSET_FETCH = 9
FIND_COORDINATOR = 10
DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
DELETE_GROUPS = 42
DESCRIBE_QUORUM = 55
CONSUMER_GROUP_DESCRIBE = 69
SHARE_GROUP_DESCRIBE = 77
DESCRIBE_SHARE_GROUP_OFFSETS = 90
ALTER_SHARE_GROUP_OFFSETS = 91
DELETE_SHARE_GROUP_OFFSETS = 92

# Versions this client knows how to fill in; the newest both sides support is used.
# OffsetCommit/OffsetFetch v10 name topics by id; Metadata stays below the topic-id-only v13.
_CLIENT_MAX = {
    LIST_OFFSETS: 8,
    METADATA: 12,
    OFFSET_COMMIT: 9,
    OFFSET_FETCH: 9,
    FIND_COORDINATOR: 6,
    DESCRIBE_GROUPS: 6,
    LIST_GROUPS: 5,
    DELETE_GROUPS: 2,
    DESCRIBE_QUORUM: 2,
    CONSUMER_GROUP_DESCRIBE: 1,
    # Share groups (KIP-932): rafka.cli.share_groups.
    SHARE_GROUP_DESCRIBE: 1,
    DESCRIBE_SHARE_GROUP_OFFSETS: 1,
    ALTER_SHARE_GROUP_OFFSETS: 0,
    DELETE_SHARE_GROUP_OFFSETS: 0,
}
EARLIEST = -2
LATEST = -1
_RETRIABLE = frozenset(
    {
        ErrorCode.coordinator_load_in_progress,
        ErrorCode.coordinator_not_available,
        ErrorCode.not_coordinator,
        ErrorCode.leader_not_available,
    }
)
_SIZE = struct.Struct(">i")


class KafkaClientError(Exception):
    """A failure worth one line to the user."""


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return f"ERROR_{code}"


@dataclass(slots=True)
class Cluster:
    brokers: dict[int, tuple[str, int]] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)  # topic -> partition count
    leaders: dict[tuple[str, int], int] = field(default_factory=dict)
    controller_id: int = -1


@dataclass(slots=True, frozen=True)
class CommittedOffset:
    offset: int
    metadata: str | None
    leader_epoch: int = -1


class Connection:
    """One broker connection; requests are sent and answered one at a time."""

    def __init__(self, host: str, port: int, client_id: str, timeout: float) -> None:
        security = CURRENT.get()
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            if security.ssl_context is not None:
                sock = security.ssl_context.wrap_socket(
                    sock, server_hostname=host if security.check_hostname else None
                )
            self._sock = sock
        except OSError as exc:  # ssl.SSLError too: a certificate not trusted
            raise KafkaClientError(f"cannot connect to {host}:{port}: {exc}") from None
        self.address = f"{host}:{port}"
        self._client_id = client_id.encode()
        self._correlation = 0
        self.versions: dict[int, tuple[int, int]] = {}
        self._read_api_versions()
        if security.sasl:
            self._authenticate(security)

    def _authenticate(self, security: ClientSecurity) -> None:
        """SaslHandshake v1, then SaslAuthenticate: PLAIN's one token or SCRAM's two."""
        assert security.username is not None and security.password is not None
        response = self.send(SASL_HANDSHAKE, 1, {"mechanism": security.mechanism})
        if response.error_code != ErrorCode.none:
            raise KafkaClientError(
                f"{self.address}: SASL mechanism {security.mechanism} refused "
                f"({error_name(response.error_code)}; the broker offers "
                f"{', '.join(response.mechanisms) or 'none'})"
            )
        try:
            if security.mechanism == PLAIN:
                token = b"\x00" + security.username.encode() + b"\x00" + security.password.encode()
                self._sasl_step(token)
            else:
                scram = ScramClient(security.mechanism, security.username, security.password)
                server_first = self._sasl_step(scram.first())
                scram.verify(self._sasl_step(scram.final(server_first)))
        except SaslFailed as exc:
            raise KafkaClientError(f"{self.address}: authentication failed: {exc}") from None

    def _sasl_step(self, token: bytes) -> bytes:
        response = self.send(SASL_AUTHENTICATE, 2, {"auth_bytes": token})
        if response.error_code != ErrorCode.none:
            raise KafkaClientError(
                f"{self.address}: authentication failed: "
                f"{response.error_message or error_name(response.error_code)}"
            )
        return bytes(response.auth_bytes)

    def close(self) -> None:
        self._sock.close()

    def _read_api_versions(self) -> None:
        response = self.send(API_VERSIONS, 0, {})
        if response.error_code != ErrorCode.none:
            raise KafkaClientError(f"{self.address}: ApiVersions failed: {response.error_code}")
        self.versions = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}

    def version_for(self, api_key: int) -> int:
        supported = self.versions.get(api_key)
        if supported is None:
            raise KafkaClientError(f"{self.address} does not support API {api_key}")
        version = min(supported[1], _CLIENT_MAX[api_key])
        if version < supported[0]:
            raise KafkaClientError(f"{self.address}: no common version of API {api_key}")
        return version

    def send(self, api_key: int, version: int, data: dict[str, Any]) -> Any:
        request_cls = request_class(api_key, version)
        if request_cls is None:
            raise KafkaClientError(f"no schema for API {api_key} v{version}")
        body = io.BytesIO()
        entity_writer(request_cls)(body, build(request_cls, data))
        self._correlation += 1
        header = struct.pack(">hhih", api_key, version, self._correlation, len(self._client_id))
        header += self._client_id
        if request_cls.__flexible__:
            header += b"\x00"  # no tagged fields
        payload = header + body.getvalue()
        try:
            self._sock.sendall(_SIZE.pack(len(payload)) + payload)
            (size,) = _SIZE.unpack(self._read(4))
            frame = self._read(size)
        except OSError as exc:
            raise KafkaClientError(f"{self.address}: {exc}") from None
        (correlation,) = _SIZE.unpack_from(frame, 0)
        if correlation != self._correlation:
            raise KafkaClientError(f"{self.address}: response out of order")
        response_cls = response_class(api_key, version)
        offset = 4
        if response_cls.__flexible__ and api_key != API_VERSIONS:
            offset = skip_tagged_fields(frame, offset)
        response, _ = entity_reader(response_cls)(frame, offset)
        return response

    def _read(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._sock.recv(size - len(chunks))
            if not chunk:
                raise KafkaClientError(f"{self.address} closed the connection")
            chunks += chunk
        return bytes(chunks)


def parse_bootstrap(servers: str) -> list[tuple[str, int]]:
    out = []
    for item in servers.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not port.isdigit():
            raise KafkaClientError(f"bad bootstrap server {item!r}: expected HOST:PORT")
        out.append((host.strip("[]") or "localhost", int(port)))
    return out


class KafkaClient:
    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str = "rafka-cli",
        timeout: float = 30.0,
        retry_for: float = 10.0,
    ) -> None:
        self._bootstrap = parse_bootstrap(bootstrap_servers)
        self._client_id = client_id
        self._timeout = timeout
        self._retry_for = retry_for
        self._connections: dict[int, Connection] = {}
        self._bootstrap_connection: Connection | None = None
        self._cluster: Cluster | None = None

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        if self._bootstrap_connection is not None:
            self._bootstrap_connection.close()
        self._connections.clear()
        self._bootstrap_connection = None

    def __enter__(self) -> KafkaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections --------------------------------------------------------------------------

    def _any(self) -> Connection:
        if self._bootstrap_connection is None:
            errors = []
            for host, port in self._bootstrap:
                try:
                    self._bootstrap_connection = Connection(
                        host, port, self._client_id, self._timeout
                    )
                    break
                except KafkaClientError as exc:
                    errors.append(str(exc))
            else:
                raise KafkaClientError("; ".join(errors))
        return self._bootstrap_connection

    def _node(self, node_id: int) -> Connection:
        conn = self._connections.get(node_id)
        if conn is None:
            address = self.cluster().brokers.get(node_id)
            if address is None:
                raise KafkaClientError(f"broker {node_id} is not in the cluster metadata")
            conn = Connection(address[0], address[1], self._client_id, self._timeout)
            self._connections[node_id] = conn
        return conn

    def call(self, api_key: int, data: dict[str, Any], node_id: int | None = None) -> Any:
        conn = self._any() if node_id is None else self._node(node_id)
        return conn.send(api_key, conn.version_for(api_key), data)

    def version(self, api_key: int, node_id: int | None = None) -> int:
        conn = self._any() if node_id is None else self._node(node_id)
        return conn.version_for(api_key)

    # -- metadata -----------------------------------------------------------------------------

    def cluster(self, refresh: bool = False) -> Cluster:
        if self._cluster is None or refresh:
            response = self.call(
                METADATA,
                {
                    "topics": None,
                    "allow_auto_topic_creation": False,
                    "include_cluster_authorized_operations": False,
                    "include_topic_authorized_operations": False,
                },
            )
            cluster = Cluster(controller_id=getattr(response, "controller_id", -1))
            for b in response.brokers:
                cluster.brokers[b.node_id] = (b.host, b.port)
            for t in response.topics:
                if t.error_code != ErrorCode.none or t.name is None:
                    continue
                cluster.partitions[t.name] = len(t.partitions)
                for p in t.partitions:
                    cluster.leaders[(t.name, p.partition_index)] = p.leader_id
            self._cluster = cluster
        return self._cluster

    # -- groups -------------------------------------------------------------------------------

    def find_coordinator(self, group_id: str) -> int:
        deadline = time.monotonic() + self._retry_for
        while True:
            conn = self._any()
            version = conn.version_for(FIND_COORDINATOR)
            response = conn.send(
                FIND_COORDINATOR,
                version,
                {"key": group_id, "key_type": 0, "coordinator_keys": [group_id]},
            )
            found = response.coordinators[0] if version >= 4 else response
            if found.error_code == ErrorCode.none:
                if found.node_id not in self.cluster().brokers:
                    self.cluster(refresh=True)
                return found.node_id
            if found.error_code not in _RETRIABLE or time.monotonic() > deadline:
                raise KafkaClientError(
                    f"no coordinator for group {group_id!r}: {error_name(found.error_code)}"
                )
            time.sleep(0.2)

    def _group_call(self, group_id: str, api_key: int, data: dict[str, Any], error_of) -> Any:
        """Send to the group's coordinator, retrying while it moves or loads."""
        deadline = time.monotonic() + self._retry_for
        while True:
            node = self.find_coordinator(group_id)
            response = self.call(api_key, data, node)
            code = error_of(response)
            if code not in _RETRIABLE or time.monotonic() > deadline:
                return response
            time.sleep(0.2)

    def list_groups(self, states: Iterable[str] = ()) -> list[dict[str, str]]:
        states = list(states)
        listed: dict[str, dict[str, str]] = {}
        for node_id in sorted(self.cluster().brokers):
            if states and self.version(LIST_GROUPS, node_id) < 4:
                raise KafkaClientError("the broker cannot filter groups by state")
            response = self.call(LIST_GROUPS, {"states_filter": states}, node_id)
            if response.error_code != ErrorCode.none:
                raise KafkaClientError(
                    f"ListGroups on broker {node_id}: {error_name(response.error_code)}"
                )
            for g in response.groups:
                state = getattr(g, "group_state", "")
                listed[g.group_id] = {
                    "group": g.group_id,
                    "state": state,
                    "protocol_type": g.protocol_type,
                    "type": getattr(g, "group_type", "classic") or "classic",
                }
        return [listed[g] for g in sorted(listed)]

    def describe_group(self, group_id: str) -> tuple[int, Any]:
        """(coordinator node id, DescribedGroup)."""
        response = self._group_call(
            group_id,
            DESCRIBE_GROUPS,
            {"groups": [group_id], "include_authorized_operations": False},
            lambda r: r.groups[0].error_code,
        )
        described = response.groups[0]
        return self.find_coordinator(group_id), described

    def describe_consumer_group(self, group_id: str) -> tuple[int, Any] | None:
        """(coordinator node id, ConsumerGroupDescribe's DescribedGroup) of a consumer-protocol
        group (KIP-848); None if the coordinator does not serve ConsumerGroupDescribe."""
        node = self.find_coordinator(group_id)
        if CONSUMER_GROUP_DESCRIBE not in self._node(node).versions:
            return None
        response = self._group_call(
            group_id,
            CONSUMER_GROUP_DESCRIBE,
            {"group_ids": [group_id], "include_authorized_operations": False},
            lambda r: r.groups[0].error_code,
        )
        return self.find_coordinator(group_id), response.groups[0]

    def fetch_offsets(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        node = self.find_coordinator(group_id)
        version = self.version(OFFSET_FETCH, node)
        data: dict[str, Any] = {
            "group_id": group_id,
            "topics": None,
            "require_stable": False,
            "groups": [{"group_id": group_id, "topics": None}],
        }
        if version >= 8:
            response = self._group_call(
                group_id, OFFSET_FETCH, data, lambda r: r.groups[0].error_code
            )
            error, topics = response.groups[0].error_code, response.groups[0].topics
        else:
            response = self._group_call(group_id, OFFSET_FETCH, data, lambda r: r.error_code)
            error, topics = response.error_code, response.topics
        if error != ErrorCode.none:
            raise KafkaClientError(f"OffsetFetch for {group_id!r}: {error_name(error)}")
        out = {}
        for t in topics:
            for p in t.partitions:
                if p.error_code == ErrorCode.none and p.committed_offset >= 0:
                    out[(t.name, p.partition_index)] = CommittedOffset(
                        p.committed_offset, p.metadata, getattr(p, "committed_leader_epoch", -1)
                    )
        return out

    def commit_offsets(
        self, group_id: str, offsets: dict[tuple[str, int], int]
    ) -> dict[tuple[str, int], int]:
        """Commit as an admin (generation -1): only accepted while the group is Empty."""
        topics: dict[str, list[dict[str, Any]]] = {}
        for (topic, partition), offset in sorted(offsets.items()):
            topics.setdefault(topic, []).append(
                {
                    "partition_index": partition,
                    "committed_offset": offset,
                    "committed_leader_epoch": -1,
                    "committed_metadata": "",
                }
            )
        data = {
            "group_id": group_id,
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "group_instance_id": None,
            "retention_time": -1,
            "topics": [{"name": t, "partitions": parts} for t, parts in topics.items()],
        }

        def first_error(r: Any) -> int:
            codes = [p.error_code for t in r.topics for p in t.partitions]
            return next((c for c in codes if c != ErrorCode.none), ErrorCode.none)

        response = self._group_call(group_id, OFFSET_COMMIT, data, first_error)
        return {
            (t.name, p.partition_index): p.error_code for t in response.topics for p in t.partitions
        }

    def delete_groups(self, group_ids: list[str]) -> dict[str, int]:
        results = {}
        for group_id in group_ids:
            response = self._group_call(
                group_id,
                DELETE_GROUPS,
                {"groups_names": [group_id]},
                lambda r: r.results[0].error_code,
            )
            results[group_id] = response.results[0].error_code
        return results

    # -- offsets ------------------------------------------------------------------------------

    def list_offsets(
        self, partitions: Iterable[tuple[str, int]], timestamp: int
    ) -> dict[tuple[str, int], int]:
        """Offsets for `timestamp` (LATEST, EARLIEST or ms) from each partition's leader."""
        cluster = self.cluster()
        by_leader: dict[int, list[tuple[str, int]]] = {}
        for tp in partitions:
            leader = cluster.leaders.get(tp, -1)
            if leader < 0:
                raise KafkaClientError(f"no leader for {tp[0]}-{tp[1]}")
            by_leader.setdefault(leader, []).append(tp)
        out: dict[tuple[str, int], int] = {}
        for leader, tps in by_leader.items():
            topics: dict[str, list[dict[str, Any]]] = {}
            for topic, partition in tps:
                topics.setdefault(topic, []).append(
                    {
                        "partition_index": partition,
                        "current_leader_epoch": -1,
                        "timestamp": timestamp,
                        "max_num_offsets": 1,
                    }
                )
            response = self.call(
                LIST_OFFSETS,
                {
                    "replica_id": -1,
                    "isolation_level": 0,
                    "topics": [{"name": t, "partitions": p} for t, p in topics.items()],
                    "timeout": 30000,
                },
                leader,
            )
            for t in response.topics:
                for p in t.partitions:
                    if p.error_code != ErrorCode.none:
                        raise KafkaClientError(
                            f"ListOffsets {t.name}-{p.partition_index}: {error_name(p.error_code)}"
                        )
                    out[(t.name, p.partition_index)] = p.offset
        return out


def decode_assignment(data: bytes) -> list[tuple[str, int]]:
    """Partitions of a ConsumerProtocolAssignment (every version starts: version i16,
    [topic string, [partition i32]]); empty if the bytes are not one."""
    try:
        pos = 2
        (topics,) = struct.unpack_from(">i", data, pos)
        pos += 4
        out = []
        for _ in range(max(topics, 0)):
            (length,) = struct.unpack_from(">h", data, pos)
            pos += 2
            topic = data[pos : pos + length].decode()
            pos += length
            (count,) = struct.unpack_from(">i", data, pos)
            pos += 4
            for _ in range(max(count, 0)):
                out.append((topic, struct.unpack_from(">i", data, pos)[0]))
                pos += 4
        return out
    except (struct.error, UnicodeDecodeError):
        return []
