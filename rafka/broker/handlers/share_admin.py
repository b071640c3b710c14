"""Share-group administration (KIP-932, issue 20), at the versions Kafka 4.2/4.3 serves:
DescribeShareGroupOffsets (90, v0-1: v1 adds the lag, KIP-1226), AlterShareGroupOffsets (91,
v0), DeleteShareGroupOffsets (92, v0); share groups in ListGroups (type `share`),
DescribeGroups and DeleteGroups; the share coordinator's InitializeShareGroupState (83, v0),
DeleteShareGroupState (86, v0) and ReadShareGroupStateSummary (87, v0-1) for the group
coordinators of other brokers; and share.auto.offset.reset (a group config,
rafka.broker.group_configs) deciding where a group's new share partitions start.

A share group is answered where its `__consumer_offsets` coordinator is, as the heartbeat is.
Its "initialized" share partitions (the ones it was assigned or had offsets altered for,
`ShareGroup.initialized`, kept in `__consumer_offsets` with the group's epoch:
share/group_records.py) are what DescribeShareGroupOffsets
lists when asked for every topic and what DeleteGroups deletes the state of. The offsets are
the share-partition states in `__share_group_state` (`share/state_admin.py`): altering one
replaces the state by the new start offset with nothing in flight, deleting removes it, so the
partition starts again by share.auto.offset.reset. Kafka's rules: a group with members cannot
have its offsets altered or deleted, nor be deleted (NON_EMPTY_GROUP); altering the offsets of
an unknown group creates it, empty; a classic or consumer group of that id is not a share group
(GROUP_ID_NOT_FOUND). A share partition this broker leads is dropped from memory when its state
is altered or deleted, so its next fetch loads the new one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from rafka.broker import group_configs
from rafka.broker.broker import Broker
from rafka.broker.cluster.peers import PeerUnavailable
from rafka.broker.coordinator.groups.context import CoordinatorError
from rafka.broker.coordinator.groups.group import GroupState
from rafka.broker.handlers import share_groups
from rafka.broker.handlers.offsets import _lookup as offset_for_timestamp
from rafka.broker.handlers.share_versions import share_specs
from rafka.broker.net.dispatch import ApiSpec, RequestContext
from rafka.broker.partition.clock import now_ms
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.broker.share.group import ShareGroup
from rafka.broker.share.group_records import ShareGroupLog, restore
from rafka.broker.share.persister import CoordinatorPersister
from rafka.broker.share.service import ShareKey, ShareService
from rafka.broker.share.state_admin import (
    DELETE_SHARE_GROUP_STATE,
    INITIALIZE_SHARE_GROUP_STATE,
    READ_SHARE_GROUP_STATE_SUMMARY,
    UNINITIALIZED,
    ShareStateAdmin,
    StateSummary,
)
from rafka.broker.share.state_coordinator import ShareStateError
from rafka.protocol.errors import ErrorCode

DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
DELETE_GROUPS = 42
LIST_OFFSETS = 2
DESCRIBE_SHARE_GROUP_OFFSETS = 90
ALTER_SHARE_GROUP_OFFSETS = 91
DELETE_SHARE_GROUP_OFFSETS = 92

SHARE = "share"  # ListGroups' protocol type and group type of a share group
NO_TOPIC_ID = None  # encoded as the zero UUID, as Kafka answers for an unknown topic
DEFAULT_LEADER_EPOCH = 0  # what Kafka describes for a share partition without state
REQUEST_TIMEOUT_S = 15.0

# Kafka's messages for the errors these APIs answer (Errors.X.message()).
MESSAGES = {
    ErrorCode.not_coordinator: "This is not the correct coordinator.",
    ErrorCode.coordinator_not_available: "The coordinator is not available.",
    ErrorCode.coordinator_load_in_progress: (
        "The coordinator is loading and hence can't process requests."
    ),
    ErrorCode.group_authorization_failed: "Group authorization failed.",
    ErrorCode.topic_authorization_failed: "Topic authorization failed.",
    ErrorCode.unknown_topic_or_partition: "This server does not host this topic-partition.",
    ErrorCode.non_empty_group: "The group is not empty.",
    ErrorCode.invalid_group_id: "The group id is invalid.",
}
NO_OFFSETS_TO_DELETE = "There is no offset information to delete."

Handler = Callable[[RequestContext, Any], Awaitable[dict[str, Any]]]


def _message(code: ErrorCode) -> str | None:
    return None if code is ErrorCode.none else MESSAGES.get(code, code.name)


def install(apis: dict[int, ApiSpec], broker: Broker) -> ShareAdmin:
    """Register the share-group APIs (share_groups' and these) sharing one ShareService, and
    make ListGroups, DescribeGroups and DeleteGroups (registered before) know share groups.
    The caller tells the returned admin of deleted topics (ShareAdmin.topic_deleted)."""
    coordinator = share_groups.share_state_coordinator(broker)
    service = ShareService(
        share_groups.share_config(broker), CoordinatorPersister(broker, coordinator)
    )
    group_log = ShareGroupLog(broker.groups.shard_for, lambda tid: _topic_name(broker, tid))
    apis.update(share_groups.share_apis(broker, coordinator, service, group_log))
    admin = ShareAdmin(broker, service, ShareStateAdmin(broker, coordinator), group_log)
    service.start_offsets = admin.start_offset
    service.on_group_changed = admin.group_changed
    # The share groups of the `__consumer_offsets` partitions loaded before the first share
    # request (those loaded later come through Broker.share_groups_loaded).
    for shard in broker.groups.loaded_shards():
        admin.restore_groups(shard)
    apis.update(
        share_specs(
            {
                DESCRIBE_SHARE_GROUP_OFFSETS: admin.describe_offsets,
                ALTER_SHARE_GROUP_OFFSETS: admin.alter_offsets,
                DELETE_SHARE_GROUP_OFFSETS: admin.delete_offsets,
                INITIALIZE_SHARE_GROUP_STATE: admin.initialize_state,
                DELETE_SHARE_GROUP_STATE: admin.delete_state,
                READ_SHARE_GROUP_STATE_SUMMARY: admin.read_state_summary,
            }
        )
    )
    for key, wrap in (
        (LIST_GROUPS, admin.listing_share_groups),
        (DESCRIBE_GROUPS, admin.describing_share_groups),
        (DELETE_GROUPS, admin.deleting_share_groups),
    ):
        spec = apis[key]
        apis[key] = msgspec.structs.replace(spec, handler=wrap(spec.handler))
    return admin


def _topic_name(broker: Broker, topic_id: uuid.UUID) -> str:
    image = broker.topic_by_id(topic_id)
    return "" if image is None else image.name


class ShareAdmin:
    def __init__(
        self,
        broker: Broker,
        service: ShareService,
        states: ShareStateAdmin,
        group_log: ShareGroupLog,
    ) -> None:
        self.broker = broker
        self.service = service
        self.states = states
        self.group_log = group_log
        self._cleanups: set[asyncio.Task[None]] = set()

    # -- the groups' records in __consumer_offsets -------------------------------------------

    def restore_groups(self, shard: Any) -> None:
        """A `__consumer_offsets` partition loaded here: its share groups, as its records left
        them, replace the ones in memory it coordinates."""
        groups = self.service.groups.groups
        placed = self.broker.groups.partition_for
        before = {g for g in groups if placed(g) == shard.index}
        now = self.service.clock()
        restored = restore(
            groups, shard, placed, share_groups.topic_lookup(self.broker),
            lambda group_id: now + self.service.settings(group_id).session_timeout_ms,
        )
        for group_id in before - set(groups):
            self.group_log.forget(group_id)
        for group in restored:
            self.group_log.loaded(group)
        self.service.reschedule()  # the restored members' session timeouts

    def group_changed(self, group_id: str) -> None:
        """Members timed out: the group's new epoch is written (in the background)."""
        group = self.service.groups.groups.get(group_id)
        if group is not None and self._coordinator_error(group_id) is ErrorCode.none:
            self.group_log.write(group)

    async def _written(self, group: ShareGroup) -> ErrorCode:
        return await self.group_log.write(group)

    # -- the groups coordinated here ---------------------------------------------------------

    def _coordinator_error(self, group_id: str) -> ErrorCode:
        try:
            self.broker.groups.shard_for(group_id)
        except CoordinatorError as exc:
            return exc.code
        return ErrorCode.none

    def _other_group(self, group_id: str) -> bool:
        """A classic or consumer group of this id lives here: it is not a share group."""
        shard = self.broker.groups.shard_for(group_id)
        if group_id in shard.consumer_groups:
            return True
        group = shard.groups.get(group_id)
        return group is not None and group.state is not GroupState.DEAD

    def _share_group(self, group_id: str) -> ShareGroup | None:
        """The share group `group_id` if this broker coordinates it."""
        group = self.service.groups.groups.get(group_id)
        if group is None or self._coordinator_error(group_id) is not ErrorCode.none:
            return None
        return group

    def _check_group(self, group_id: str) -> tuple[ErrorCode, str | None]:
        """What every offsets request checks first: a group id, the coordinator, the kind."""
        if not group_id:
            return ErrorCode.invalid_group_id, _message(ErrorCode.invalid_group_id)
        code = self._coordinator_error(group_id)
        if code is not ErrorCode.none:
            return code, _message(code)
        if self._other_group(group_id):
            return ErrorCode.group_id_not_found, f"Group {group_id} is not a share group."
        return ErrorCode.none, None

    # -- deleted topics ----------------------------------------------------------------------

    def topic_deleted(self, topic_id: uuid.UUID) -> None:
        """As Kafka's coordinators on a topic's deletion: its share partitions are no longer
        initialized in any group, their in-memory states here go, and their durable states
        are removed from the `__share_group_state` partitions this broker leads. A topic
        created again under the name has another id, and starts by share.auto.offset.reset."""
        for group in self.service.groups.groups.values():
            if group.initialized.pop(topic_id, None) is not None:
                self.group_changed(group.group_id)
        self.service.forget_topic(topic_id)
        task = asyncio.get_running_loop().create_task(self.states.delete_topic_here(topic_id))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    # -- share.auto.offset.reset -------------------------------------------------------------

    def start_offset(self, key: ShareKey) -> int | None:
        """Where a new share partition of `key` starts by its group's share.auto.offset.reset:
        the log start offset (earliest), the first record at or after now - duration
        (by_duration; the high watermark if none), None for latest (the high watermark)."""
        group_id, topic_id, index = key
        strategy = group_configs.group_config(
            self.broker, group_id, group_configs.SHARE_AUTO_OFFSET_RESET
        )
        if strategy == "latest":
            return None
        image = self.broker.topic_by_id(topic_id)
        partition = None if image is None else self.broker.partition(image.name, index)
        if partition is None:
            return None
        if strategy == "earliest":
            return partition.log_start_offset
        seconds = group_configs.parse_duration(strategy.partition(":")[2])
        if seconds is None:
            return None
        _, offset = offset_for_timestamp(partition, now_ms() - int(seconds * 1000))
        return offset if offset >= 0 else None

    # -- DescribeShareGroupOffsets (90) ------------------------------------------------------

    async def describe_offsets(self, ctx: RequestContext, request: Any) -> dict[str, Any]:
        groups = [await self._describe_group_offsets(ctx, group) for group in request.groups]
        return {"throttle_time": 0, "groups": groups}

    async def _describe_group_offsets(self, ctx: RequestContext, request: Any) -> dict[str, Any]:
        group_id = request.group_id
        entry: dict[str, Any] = {
            "group_id": group_id,
            "topics": [],
            "error_code": ErrorCode.none,
            "error_message": None,
        }
        if not ctx.authorize(Operation.DESCRIBE, ResourceType.GROUP, group_id):
            code = ErrorCode.group_authorization_failed
            return {**entry, "error_code": code, "error_message": _message(code)}
        code = self._coordinator_error(group_id)
        if code is not ErrorCode.none:
            return {**entry, "error_code": code, "error_message": _message(code)}
        wanted: list[tuple[str, list[int]]] = []
        refused: list[dict[str, Any]] = []
        if request.topics is None:
            # Every initialized partition of a topic that still exists and may be described.
            group = self.service.groups.groups.get(group_id)
            for topic_id, indexes in (group.initialized if group else {}).items():
                image = self.broker.topic_by_id(topic_id)
                if image is not None and ctx.authorize(
                    Operation.DESCRIBE, ResourceType.TOPIC, image.name
                ):
                    wanted.append((image.name, sorted(indexes)))
            wanted.sort()
        else:
            for topic in request.topics:
                if ctx.authorize(Operation.DESCRIBE, ResourceType.TOPIC, topic.topic_name):
                    wanted.append((topic.topic_name, list(topic.partitions)))
                else:
                    refused.append(_refused_topic(topic.topic_name, topic.partitions))
        known, unknown = [], []
        for name, indexes in wanted:
            image = self.broker.topic(name)
            if image is None:
                # As Kafka: an unknown topic has no offsets (-1), which is not an error.
                unknown.append(
                    {
                        "topic_name": name,
                        "topic_id": NO_TOPIC_ID,
                        "partitions": [_no_offset(index) for index in indexes],
                    }
                )
                continue
            found = await asyncio.gather(
                *(self.states.summary((group_id, image.topic_id, index)) for index in indexes)
            )
            summaries = list(zip(indexes, found, strict=True))
            ends = await self._end_offsets(name, [i for i, (c, s) in summaries if _has_lag(c, s)])
            known.append(
                {
                    "topic_name": name,
                    "topic_id": image.topic_id,
                    "partitions": [
                        _described_partition(index, code, summary, ends.get(index))
                        for index, (code, summary) in summaries
                    ],
                }
            )
        entry["topics"] = known + unknown + refused
        return entry

    async def _end_offsets(self, name: str, indexes: list[int]) -> dict[int, tuple[ErrorCode, int]]:
        """The latest offsets (high watermarks) of a topic's partitions, from their leaders."""
        out: dict[int, tuple[ErrorCode, int]] = {}
        image = self.broker.topic(name)
        remote: dict[int, list[int]] = {}
        for index in indexes:
            partition = self.broker.partition(name, index)
            if partition is not None and partition.is_leader:
                out[index] = (ErrorCode.none, partition.high_watermark)
                continue
            leader = -1 if image is None else self.broker.leadership(image, index)[0]
            if leader < 0 or leader == self.broker.node_id:
                out[index] = (ErrorCode.leader_not_available, -1)
            else:
                remote.setdefault(leader, []).append(index)
        for leader, asked in remote.items():
            out.update(await self._remote_end_offsets(leader, name, asked))
        return out

    async def _remote_end_offsets(
        self, leader: int, name: str, indexes: list[int]
    ) -> dict[int, tuple[ErrorCode, int]]:
        network = self.broker.network
        request = {
            "replica_id": -1,
            "isolation_level": 0,
            "topics": [
                {
                    "name": name,
                    "partitions": [
                        {"partition_index": i, "current_leader_epoch": -1, "timestamp": -1}
                        for i in indexes
                    ],
                }
            ],
        }
        failed = {i: (ErrorCode.leader_not_available, -1) for i in indexes}
        if network is None or not network.knows(leader):
            return failed
        try:
            response = await network.request(
                leader, LIST_OFFSETS, 7, request, timeout=REQUEST_TIMEOUT_S
            )
        except (PeerUnavailable, TimeoutError):
            return failed
        out = dict(failed)
        for topic in response.topics:
            for part in topic.partitions:
                out[part.partition_index] = (ErrorCode(part.error_code), part.offset)
        return out

    # -- AlterShareGroupOffsets (91) ---------------------------------------------------------

    async def alter_offsets(self, ctx: RequestContext, request: Any) -> dict[str, Any]:
        group_id = request.group_id
        failed = _offsets_answer
        if not ctx.authorize(Operation.READ, ResourceType.GROUP, group_id):
            return failed(ErrorCode.group_authorization_failed)
        code, message = self._check_group(group_id)
        if code is not ErrorCode.none:
            return failed(code, message)
        group = self.service.groups.groups.get(group_id)
        if group is not None and group.members:
            return failed(ErrorCode.non_empty_group)
        if not request.topics:
            return failed(ErrorCode.none)
        if group is None:  # as Kafka: altering the offsets of an unknown group creates it
            group = self.service.groups.groups[group_id] = ShareGroup(group_id)
        responses = []
        for topic in request.topics:
            name = topic.topic_name
            image = self.broker.topic(name)
            results = []
            for part in topic.partitions:
                index = part.partition_index
                if not ctx.authorize(Operation.READ, ResourceType.TOPIC, name):
                    code = ErrorCode.topic_authorization_failed
                elif image is None or not 0 <= index < image.partition_count:
                    code = ErrorCode.unknown_topic_or_partition
                else:
                    code = await self._alter_one(group, (group_id, image.topic_id, index), part)
                results.append(
                    {
                        "partition_index": index,
                        "error_code": code,
                        "error_message": _message(code),
                    }
                )
            responses.append(
                {
                    "topic_name": name,
                    "topic_id": NO_TOPIC_ID if image is None else image.topic_id,
                    "partitions": results,
                }
            )
        code = await self._written(group)
        if code is not ErrorCode.none:
            return failed(code, _message(code))
        return {**failed(ErrorCode.none), "responses": responses}

    async def _alter_one(self, group: ShareGroup, key: ShareKey, part: Any) -> ErrorCode:
        # A start offset of -1 leaves the share partition uninitialized: it starts again by
        # share.auto.offset.reset, as a partition without state does.
        offset = part.start_offset
        if offset < 0:
            code = await self.service.replace_state(key, lambda: self.states.delete(key))
        else:
            code = await self.service.replace_state(
                key, lambda: self.states.initialize(key, offset)
            )
        if code is ErrorCode.none:
            group.initialized.setdefault(key[1], set()).add(key[2])
        return code

    # -- DeleteShareGroupOffsets (92) --------------------------------------------------------

    async def delete_offsets(self, ctx: RequestContext, request: Any) -> dict[str, Any]:
        group_id = request.group_id
        failed = _offsets_answer
        if not ctx.authorize(Operation.DELETE, ResourceType.GROUP, group_id):
            return failed(ErrorCode.group_authorization_failed)
        code, message = self._check_group(group_id)
        if code is not ErrorCode.none:
            return failed(code, message)
        group = self.service.groups.groups.get(group_id)
        if group is None:
            return failed(ErrorCode.group_id_not_found, f"Group {group_id} not found.")
        if group.members:
            return failed(ErrorCode.non_empty_group)
        responses = []
        for topic in request.topics:
            name = topic.topic_name
            image = self.broker.topic(name)
            entry: dict[str, Any] = {
                "topic_name": name,
                "topic_id": NO_TOPIC_ID,
                "error_code": ErrorCode.none,
                "error_message": None,
            }
            if not ctx.authorize(Operation.READ, ResourceType.TOPIC, name):
                code = ErrorCode.topic_authorization_failed
                entry.update(error_code=code, error_message=_message(code))
            elif image is None:
                code = ErrorCode.unknown_topic_or_partition
                entry.update(error_code=code, error_message=_message(code))
            elif image.topic_id not in group.initialized:
                entry.update(
                    error_code=ErrorCode.unknown_topic_or_partition,
                    error_message=NO_OFFSETS_TO_DELETE,
                )
            else:
                code = await self._delete_topic_state(group, image.topic_id)
                entry.update(topic_id=image.topic_id, error_code=code)
                entry["error_message"] = _message(code)
            responses.append(entry)
        code = await self._written(group)
        if code is not ErrorCode.none:
            return failed(code, _message(code))
        return {**failed(ErrorCode.none), "responses": responses}

    async def _delete_topic_state(self, group: ShareGroup, topic_id: uuid.UUID) -> ErrorCode:
        """Delete the state of the group's share partitions of one topic; the first error."""
        failed = ErrorCode.none
        for index in sorted(group.initialized.get(topic_id, ())):
            key = (group.group_id, topic_id, index)
            code = await self.service.replace_state(key, lambda k=key: self.states.delete(k))
            if code is ErrorCode.none:
                group.initialized[topic_id].discard(index)
            elif failed is ErrorCode.none:
                failed = code
        if not group.initialized.get(topic_id):
            group.initialized.pop(topic_id, None)
        return failed

    # -- ListGroups, DescribeGroups, DeleteGroups --------------------------------------------

    def listing_share_groups(self, classic: Handler) -> Handler:
        """ListGroups: the classic and consumer groups, then the share groups coordinated
        here (type `share`, state Empty or Stable) unless the filters leave them out."""

        async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
            response = await classic(ctx, request)
            if response["error_code"] != ErrorCode.none:
                return response
            states = {s.lower() for s in getattr(request, "states_filter", ()) or ()}
            types = {t.lower() for t in getattr(request, "types_filter", ()) or ()}
            if types and SHARE not in types:
                return response
            everything = ctx.authorize(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME)
            for group_id in sorted(self.service.groups.groups):
                group = self._share_group(group_id)
                if group is None or (states and group.state.lower() not in states):
                    continue
                if everything or ctx.authorize(Operation.DESCRIBE, ResourceType.GROUP, group_id):
                    response["groups"].append(
                        {
                            "group_id": group_id,
                            "protocol_type": SHARE,
                            "group_state": group.state,
                            "group_type": SHARE,
                        }
                    )
            return response

        return handle

    def describing_share_groups(self, classic: Handler) -> Handler:
        """DescribeGroups of a share group: Dead and (v6+) GROUP_ID_NOT_FOUND, "not a classic
        group", as Kafka answers."""

        async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
            response = await classic(ctx, request)
            for entry in response["groups"]:
                if (
                    entry["error_code"] == ErrorCode.group_id_not_found
                    and self._share_group(entry["group_id"]) is not None
                ):
                    entry["error_message"] = f"Group {entry['group_id']} is not a classic group."
            return response

        return handle

    def deleting_share_groups(self, classic: Handler) -> Handler:
        """DeleteGroups: an empty share group goes with the state of its share partitions (a
        failure to delete that keeps it); one with members is NON_EMPTY_GROUP."""

        async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
            wanted = list(dict.fromkeys(request.groups_names))
            codes: dict[str, ErrorCode] = {}
            for group_id in wanted:
                group = self._share_group(group_id)
                if group is not None and ctx.authorize(
                    Operation.DELETE, ResourceType.GROUP, group_id
                ):
                    codes[group_id] = await self._delete_group(group)
            rest = [g for g in wanted if g not in codes]
            if rest:
                response = await classic(ctx, dataclasses.replace(request, groups_names=rest))
                for result in response["results"]:
                    codes[result["group_id"]] = result["error_code"]
            return {
                "throttle_time": 0,
                "results": [{"group_id": g, "error_code": codes[g]} for g in wanted],
            }

        return handle

    async def _delete_group(self, group: ShareGroup) -> ErrorCode:
        if group.members:
            return ErrorCode.non_empty_group
        for topic_id in list(group.initialized):
            code = await self._delete_topic_state(group, topic_id)
            if code is not ErrorCode.none:
                return code
        if self.service.groups.groups.get(group.group_id) is group and not group.members:
            del self.service.groups.groups[group.group_id]
            return await self.group_log.delete(group.group_id)
        return ErrorCode.none

    # -- InitializeShareGroupState (83), DeleteShareGroupState (86),
    #    ReadShareGroupStateSummary (87): the share coordinator's side ----------------------

    async def initialize_state(self, ctx: RequestContext, request: Any) -> dict[str, Any]:
        async def one(key: ShareKey, part: Any) -> dict[str, Any]:
            epoch = None if part.state_epoch < 0 else part.state_epoch
            code = await self.service.replace_state(
                key, lambda: self.states.initialize_here(key, part.start_offset, epoch)
            )
            return {"error_code": code, "error_message": None}

        return {"results": await _per_partition(ctx, request, one)}

    async def delete_state(self, ctx: RequestContext, request: Any) -> dict[str, Any]:
        async def one(key: ShareKey, part: Any) -> dict[str, Any]:
            code = await self.service.replace_state(key, lambda: self.states.delete_here(key))
            return {"error_code": code, "error_message": None}

        return {"results": await _per_partition(ctx, request, one)}

    async def read_state_summary(self, ctx: RequestContext, request: Any) -> dict[str, Any]:
        blank: dict[str, Any] = {
            "error_code": ErrorCode.none,
            "error_message": None,
            "state_epoch": 0,
            "leader_epoch": DEFAULT_LEADER_EPOCH,
            "start_offset": UNINITIALIZED,
            "delivery_complete_count": UNINITIALIZED,
        }

        async def one(key: ShareKey, part: Any) -> dict[str, Any]:
            entry = dict(blank)
            try:
                summary = await self.states.summary_here(key)
            except ShareStateError as exc:
                return {**entry, "error_code": exc.code, "error_message": exc.message}
            if summary is not None:
                entry.update(
                    state_epoch=summary.state_epoch,
                    leader_epoch=summary.leader_epoch,
                    start_offset=summary.start_offset,
                    delivery_complete_count=summary.delivery_complete_count,
                )
            return entry

        return {"results": await _per_partition(ctx, request, one, blank)}


async def _per_partition(
    ctx: RequestContext,
    request: Any,
    one: Callable[[ShareKey, Any], Awaitable[dict[str, Any]]],
    blank: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A share coordinator request's results, partition by partition (CLUSTER_ACTION); a
    refused partition's entry is `blank` (the fields its response requires) with the error."""
    allowed = not ctx.acls_apply or ctx.authorize(
        Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME
    )
    results = []
    for topic in request.topics:
        partitions = []
        for part in topic.partitions:
            if allowed:
                entry = await one((request.group_id, topic.topic_id, part.partition), part)
            else:
                entry = {**(blank or {}), "error_code": ErrorCode.cluster_authorization_failed}
            partitions.append({"partition": part.partition, **entry})
        results.append({"topic_id": topic.topic_id, "partitions": partitions})
    return results


def _no_offset(index: int) -> dict[str, Any]:
    return {
        "partition_index": index,
        "start_offset": UNINITIALIZED,
        "leader_epoch": DEFAULT_LEADER_EPOCH,
        "lag": UNINITIALIZED,
        "error_code": ErrorCode.none,
        "error_message": None,
    }


def _refused_topic(name: str, indexes: Any) -> dict[str, Any]:
    code = ErrorCode.topic_authorization_failed
    return {
        "topic_name": name,
        "topic_id": NO_TOPIC_ID,
        "partitions": [
            {**_no_offset(index), "error_code": code, "error_message": _message(code)}
            for index in indexes
        ],
    }


def _has_lag(code: ErrorCode, summary: StateSummary | None) -> bool:
    return (
        code is ErrorCode.none
        and summary is not None
        and summary.start_offset != UNINITIALIZED
        and summary.delivery_complete_count != UNINITIALIZED
    )


def _described_partition(
    index: int,
    code: ErrorCode,
    summary: StateSummary | None,
    end: tuple[ErrorCode, int] | None,
) -> dict[str, Any]:
    """Kafka's rules: a state that cannot be read or does not exist is no offset (-1), not an
    error; the lag is the end offset - the start offset - the records delivered for good past
    it, and a failure to learn the end offset is the partition's error."""
    if code is not ErrorCode.none or summary is None:
        return _no_offset(index)
    entry = {
        **_no_offset(index),
        "start_offset": summary.start_offset,
        # A state no leader has written yet (altered offsets) has none: 0, as Kafka shows.
        "leader_epoch": max(summary.leader_epoch, DEFAULT_LEADER_EPOCH),
    }
    if end is None:
        return entry
    end_code, end_offset = end
    if end_code is not ErrorCode.none:
        return {
            **entry,
            "start_offset": UNINITIALIZED,
            "leader_epoch": DEFAULT_LEADER_EPOCH,
            "error_code": end_code,
            "error_message": _message(end_code),
        }
    entry["lag"] = end_offset - summary.start_offset - summary.delivery_complete_count
    return entry


def _offsets_answer(code: ErrorCode, message: str | None = None) -> dict[str, Any]:
    """The top level of an Alter/DeleteShareGroupOffsets answer (no topics: a refusal)."""
    return {
        "throttle_time": 0,
        "error_code": code,
        "error_message": message or _message(code),
        "responses": [],
    }
