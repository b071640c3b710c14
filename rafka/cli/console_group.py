"""Consumer-group membership for `rafka consume --group`: the classic protocol (JoinGroup,
SyncGroup, Heartbeat, OffsetCommit, LeaveGroup) with the "range" assignor.

One member in one thread: heartbeats are sent between fetches (`poll`), so a fetch's wait must
stay well below the session timeout. Whoever the coordinator elects leader assigns, as in Kafka,
so Java or librdkafka members offering "range" can share a group with this one.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Mapping
from typing import Any

from rafka.cli.console_client import (
    HEARTBEAT,
    JOIN_GROUP,
    LEAVE_GROUP,
    SYNC_GROUP,
    ConsoleClient,
)
from rafka.cli.kafka_client import OFFSET_COMMIT, KafkaClientError, decode_assignment, error_name
from rafka.protocol.errors import ErrorCode

PROTOCOL_TYPE = "consumer"
ASSIGNOR = "range"
_COORDINATOR_MOVED = frozenset(
    {
        ErrorCode.coordinator_not_available,
        ErrorCode.not_coordinator,
        ErrorCode.coordinator_load_in_progress,
    }
)
# The member's generation is over: rejoin (committing first where the group still allows it).
_REJOIN = frozenset(
    {
        ErrorCode.rebalance_in_progress,
        ErrorCode.illegal_generation,
        ErrorCode.unknown_member_id,
    }
)
_BACKOFF_S = 0.1


def encode_subscription(topics: Iterable[str]) -> bytes:
    """ConsumerProtocolSubscription v0: version, [topic], user_data (null)."""
    names = list(topics)
    out = bytearray(struct.pack(">hi", 0, len(names)))
    for topic in names:
        name = topic.encode()
        out += struct.pack(">h", len(name)) + name
    return bytes(out + struct.pack(">i", -1))


def decode_subscription(data: bytes) -> list[str]:
    """The topics of a ConsumerProtocolSubscription of any version (they come first)."""
    try:
        (count,) = struct.unpack_from(">i", data, 2)
        pos, topics = 6, []
        for _ in range(max(count, 0)):
            (length,) = struct.unpack_from(">h", data, pos)
            topics.append(data[pos + 2 : pos + 2 + length].decode())
            pos += 2 + length
        return topics
    except (struct.error, UnicodeDecodeError):
        return []


def encode_assignment(partitions: Iterable[tuple[str, int]]) -> bytes:
    """ConsumerProtocolAssignment v0: version, [topic, [partition]], user_data (null)."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    out = bytearray(struct.pack(">hi", 0, len(by_topic)))
    for topic, indexes in sorted(by_topic.items()):
        name = topic.encode()
        out += struct.pack(">h", len(name)) + name + struct.pack(">i", len(indexes))
        out += b"".join(struct.pack(">i", i) for i in sorted(indexes))
    return bytes(out + struct.pack(">i", -1))


def range_assign(
    subscriptions: Mapping[str, list[str]], partition_counts: Mapping[str, int]
) -> dict[str, list[tuple[str, int]]]:
    """Kafka's RangeAssignor: per topic, its subscribers in member-id order each take a
    contiguous range; the first (partitions mod members) take one more."""
    assignment: dict[str, list[tuple[str, int]]] = {member: [] for member in subscriptions}
    for topic in sorted({t for topics in subscriptions.values() for t in topics}):
        members = sorted(m for m, topics in subscriptions.items() if topic in topics)
        count = partition_counts.get(topic, 0)
        share, extra = divmod(count, len(members))
        start = 0
        for i, member in enumerate(members):
            size = share + (1 if i < extra else 0)
            assignment[member] += [(topic, p) for p in range(start, start + size)]
            start += size
    return assignment


class GroupMember:
    def __init__(
        self,
        client: ConsoleClient,
        group_id: str,
        topics: list[str],
        *,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        heartbeat_interval_ms: int,
        instance_id: str | None = None,
    ) -> None:
        self.client = client
        self.group_id = group_id
        self.topics = topics
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval_s = heartbeat_interval_ms / 1000
        self.instance_id = instance_id
        self.member_id = ""
        self.generation = -1
        self.assignment: list[tuple[str, int]] = []
        self._coordinator: int | None = None
        self._next_heartbeat = 0.0

    # -- requests to the coordinator ----------------------------------------------------------

    def _call(self, api_key: int, data: dict[str, Any]) -> Any:
        if self._coordinator is None:
            self._coordinator = self.client.find_coordinator(self.group_id)
        try:
            return self.client.call(api_key, data, self._coordinator)
        except KafkaClientError:
            self._coordinator = None  # it may have moved with its broker; find it again
            raise

    def _coordinator_error(self, code: int) -> bool:
        if code in _COORDINATOR_MOVED:
            self._coordinator = None
            time.sleep(_BACKOFF_S)
            return True
        return False

    # -- membership ---------------------------------------------------------------------------

    def join(self, deadline: float) -> list[tuple[str, int]]:
        """Join (or rejoin) the group; the partitions assigned to this member."""
        while True:
            if time.monotonic() > deadline:
                raise KafkaClientError(f"could not join group {self.group_id!r} in time")
            joined = self._call(
                JOIN_GROUP,
                {
                    "group_id": self.group_id,
                    "session_timeout": self.session_timeout_ms,
                    "rebalance_timeout": self.rebalance_timeout_ms,
                    "member_id": self.member_id,
                    "group_instance_id": self.instance_id,
                    "protocol_type": PROTOCOL_TYPE,
                    "protocols": [{"name": ASSIGNOR, "metadata": encode_subscription(self.topics)}],
                    "reason": None,
                },
            )
            code = joined.error_code
            if code == ErrorCode.member_id_required:  # KIP-394: rejoin with the id given
                self.member_id = joined.member_id
                continue
            if code == ErrorCode.unknown_member_id:
                self.member_id = ""
                continue
            if code == ErrorCode.rebalance_in_progress or self._coordinator_error(code):
                continue
            if code != ErrorCode.none:
                raise KafkaClientError(f"JoinGroup {self.group_id!r}: {error_name(code)}")
            self.member_id = joined.member_id
            self.generation = joined.generation_id
            assignments: list[dict[str, Any]] = []
            if joined.leader == joined.member_id:
                assignments = self._assign(joined.members)
            synced = self._call(
                SYNC_GROUP,
                {
                    "group_id": self.group_id,
                    "generation_id": self.generation,
                    "member_id": self.member_id,
                    "group_instance_id": self.instance_id,
                    "protocol_type": PROTOCOL_TYPE,
                    "protocol_name": ASSIGNOR,
                    "assignments": assignments,
                },
            )
            code = synced.error_code
            if code == ErrorCode.unknown_member_id:
                self.member_id = ""
            if code in _REJOIN or self._coordinator_error(code):
                continue
            if code != ErrorCode.none:
                raise KafkaClientError(f"SyncGroup {self.group_id!r}: {error_name(code)}")
            self.assignment = sorted(
                tp for tp in decode_assignment(synced.assignment) if tp[0] in self.topics
            )
            self._next_heartbeat = time.monotonic() + self.heartbeat_interval_s
            return self.assignment

    def _assign(self, members: Iterable[Any]) -> list[dict[str, Any]]:
        subscriptions = {m.member_id: decode_subscription(m.metadata) for m in members}
        wanted = sorted({t for topics in subscriptions.values() for t in topics})
        self.client.topics_metadata(wanted, allow_create=False)
        counts = self.client.cluster().partitions
        return [
            {"member_id": member, "assignment": encode_assignment(partitions)}
            for member, partitions in range_assign(subscriptions, counts).items()
        ]

    def poll(self) -> bool:
        """Heartbeat if one is due; True when the member must rejoin."""
        now = time.monotonic()
        if now < self._next_heartbeat:
            return False
        self._next_heartbeat = now + self.heartbeat_interval_s
        try:
            response = self._call(
                HEARTBEAT,
                {
                    "group_id": self.group_id,
                    "generation_id": self.generation,
                    "member_id": self.member_id,
                    "group_instance_id": self.instance_id,
                },
            )
        except KafkaClientError:
            return False  # the coordinator is found again at the next heartbeat
        code = response.error_code
        if code == ErrorCode.unknown_member_id:
            self.member_id = ""
        if code in _REJOIN or code == ErrorCode.fenced_instance_id:
            return True
        self._coordinator_error(code)
        return False

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit `offsets` (the next offset to read) for this generation."""
        if not offsets:
            return
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
            "group_id": self.group_id,
            "generation_id_or_member_epoch": self.generation,
            "member_id": self.member_id,
            "group_instance_id": self.instance_id,
            "retention_time": -1,
            "topics": [{"name": t, "partitions": p} for t, p in topics.items()],
        }
        for _ in range(20):
            response = self._call(OFFSET_COMMIT, data)
            codes = {p.error_code for t in response.topics for p in t.partitions}
            code = next((c for c in sorted(codes) if c != ErrorCode.none), ErrorCode.none)
            if code == ErrorCode.none:
                return
            if not self._coordinator_error(code):
                break
        raise KafkaClientError(
            f"could not commit offsets of group {self.group_id!r}: {error_name(code)}"
        )

    def committed(self) -> dict[tuple[str, int], int]:
        return {tp: c.offset for tp, c in self.client.fetch_offsets(self.group_id).items()}

    def leave(self) -> None:
        """Leave at once so that the others are rebalanced now, not after the session timeout.
        Static members (group.instance.id) stay, as in Kafka."""
        if not self.member_id or self.instance_id is not None:
            return
        try:
            self._call(
                LEAVE_GROUP,
                {
                    "group_id": self.group_id,
                    "member_id": self.member_id,
                    "members": [
                        {
                            "member_id": self.member_id,
                            "group_instance_id": None,
                            "reason": "the consumer is closing",
                        }
                    ],
                },
            )
        except KafkaClientError:
            pass  # the session timeout removes the member anyway
        self.member_id = ""
