"""How a share partition's leader reads and writes its durable state: through the share
coordinator (`state_coordinator`), here when this broker leads the key's `__share_group_state`
partition, else with Kafka's inter-broker ReadShareGroupState (84) and WriteShareGroupState
(85) to the broker that does (its leader, as the image says).

Between rafka brokers a ReadShareGroupState answer with start offset -1 means the share
partition has no state yet (Kafka initializes it first with InitializeShareGroupState). A write
carries the state epoch of the state the leader read, so that the share coordinator fences it
(FENCED_STATE_EPOCH) once the group's offsets replaced that state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rafka.broker.cluster.peers import PeerUnavailable
from rafka.broker.share.state_coordinator import ShareStateCoordinator, ShareStateError
from rafka.broker.share.state_records import PersistedShareState, ShareKey, StateBatch, to_batches
from rafka.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from rafka.broker.node import CoordinatorNode

READ_SHARE_GROUP_STATE = 84
WRITE_SHARE_GROUP_STATE = 85
REQUEST_TIMEOUT_S = 15.0
NO_STATE = -1


def remote_coordinator(
    broker: CoordinatorNode, coordinator: ShareStateCoordinator, key: ShareKey
) -> int | None:
    """The node leading `key`'s share-state partition when it is another, reachable one; None
    when it is this node or unknown (the local coordinator then answers or refuses)."""
    leader = coordinator.leader_of(key)
    network = broker.network
    if leader < 0 or leader == broker.node_id or network is None:
        return None
    return leader if network.knows(leader) else None


class CoordinatorPersister:
    def __init__(self, broker: CoordinatorNode, coordinator: ShareStateCoordinator) -> None:
        self.broker = broker
        self.coordinator = coordinator

    def _remote(self, key: ShareKey) -> int | None:
        return remote_coordinator(self.broker, self.coordinator, key)

    async def read(
        self, key: ShareKey, leader_epoch: int = -1
    ) -> tuple[ErrorCode, PersistedShareState | None]:
        remote = self._remote(key)
        if remote is None:
            try:
                return ErrorCode.none, await self.coordinator.read(key, leader_epoch)
            except ShareStateError as exc:
                if exc.code is not ErrorCode.not_coordinator:
                    return exc.code, None
                remote = self._remote(key)
                if remote is None:
                    return exc.code, None
        group_id, topic_id, index = key
        request = {
            "group_id": group_id,
            "topics": [{"topic_id": topic_id, "partitions": [{"partition": index,
                                                               "leader_epoch": leader_epoch}]}],
        }  # fmt: skip
        response = await self._call(remote, READ_SHARE_GROUP_STATE, request)
        if response is None:
            return ErrorCode.coordinator_not_available, None
        for topic in response.results:
            for part in topic.partitions:
                code = ErrorCode(part.error_code)
                if code is not ErrorCode.none:
                    return code, None
                if part.start_offset == NO_STATE:
                    return ErrorCode.none, None
                state = PersistedShareState(part.start_offset, part.state_epoch)
                for b in part.state_batches:
                    for offset in range(b.first_offset, b.last_offset + 1):
                        state.records[offset] = (b.delivery_state, b.delivery_count)
                return ErrorCode.none, state
        return ErrorCode.unknown_server_error, None

    async def write(
        self,
        key: ShareKey,
        leader_epoch: int,
        start_offset: int,
        changes: dict[int, tuple[int, int]],
        *,
        state_epoch: int,
    ) -> ErrorCode:
        remote = self._remote(key)
        if remote is None:
            code = await self.coordinator.write(
                key, leader_epoch, start_offset, changes, state_epoch=state_epoch
            )
            if code is not ErrorCode.not_coordinator:
                return code
            remote = self._remote(key)
            if remote is None:
                return code
        group_id, topic_id, index = key
        request = {
            "group_id": group_id,
            "topics": [
                {
                    "topic_id": topic_id,
                    "partitions": [
                        {
                            "partition": index,
                            "state_epoch": state_epoch,
                            "leader_epoch": leader_epoch,
                            "start_offset": start_offset,
                            "state_batches": [_batch(b) for b in to_batches(changes)],
                        }
                    ],
                }
            ],
        }
        response = await self._call(remote, WRITE_SHARE_GROUP_STATE, request)
        if response is None:
            return ErrorCode.coordinator_not_available
        for topic in response.results:
            for part in topic.partitions:
                return ErrorCode(part.error_code)
        return ErrorCode.unknown_server_error

    async def _call(self, node_id: int, api_key: int, request: dict[str, Any]) -> Any:
        network = self.broker.network
        assert network is not None
        try:
            return await network.request(node_id, api_key, 0, request, timeout=REQUEST_TIMEOUT_S)
        except (PeerUnavailable, TimeoutError):
            return None


def _batch(b: StateBatch) -> dict[str, int]:
    return {
        "first_offset": b.first_offset,
        "last_offset": b.last_offset,
        "delivery_state": b.delivery_state,
        "delivery_count": b.delivery_count,
    }
