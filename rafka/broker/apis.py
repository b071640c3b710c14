"""The API table: which Kafka APIs and versions this broker serves, and their handlers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import msgspec

from rafka.broker.broker import Broker
from rafka.broker.coordinator.internal_topic import SHARE_STATE_TOPIC
from rafka.broker.handlers import (
    acls,
    admin,
    api_versions,
    cluster,
    configs,
    envelope,
    fetch,
    lazy,
    log_dirs,
    metadata,
    offsets,
    produce,
    producer_ids,
    quorum,
    reassignments,
    sasl,
    scram,
    topics,
)
from rafka.broker.handlers.share_versions import SHARE_API_VERSIONS
from rafka.broker.net.admission import VoterAdmission
from rafka.broker.net.dispatch import ApiSpec, Dispatcher, Handler, LazyHandler
from rafka.broker.net.forwarding import make_forwarder

if TYPE_CHECKING:
    from rafka.broker.handlers.share_admin import ShareAdmin

PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
API_VERSIONS = 18
CREATE_TOPICS = 19
DELETE_TOPICS = 20
INIT_PRODUCER_ID = 22
OFFSET_FOR_LEADER_EPOCH = 23
OFFSET_COMMIT = 8
OFFSET_FETCH = 9
FIND_COORDINATOR = 10
JOIN_GROUP = 11
HEARTBEAT = 12
LEAVE_GROUP = 13
SYNC_GROUP = 14
DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
DELETE_GROUPS = 42
OFFSET_DELETE = 47
CONSUMER_GROUP_HEARTBEAT = 68
CONSUMER_GROUP_DESCRIBE = 69
DELETE_RECORDS = 21
DESCRIBE_CONFIGS = 32
ALTER_CONFIGS = 33
ALTER_REPLICA_LOG_DIRS = 34
DESCRIBE_LOG_DIRS = 35
CREATE_PARTITIONS = 37
ELECT_LEADERS = 43
INCREMENTAL_ALTER_CONFIGS = 44
ALTER_PARTITION_REASSIGNMENTS = 45
LIST_PARTITION_REASSIGNMENTS = 46
DESCRIBE_CLUSTER = 60
DESCRIBE_TOPIC_PARTITIONS = 75
ADD_PARTITIONS_TO_TXN = 24
ADD_OFFSETS_TO_TXN = 25
END_TXN = 26
WRITE_TXN_MARKERS = 27
TXN_OFFSET_COMMIT = 28
DESCRIBE_PRODUCERS = 61
DESCRIBE_TRANSACTIONS = 65
LIST_TRANSACTIONS = 66


SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
DESCRIBE_ACLS = 29
CREATE_ACLS = 30
DELETE_ACLS = 31
DESCRIBE_CLIENT_QUOTAS = 48
DESCRIBE_USER_SCRAM_CREDENTIALS = 50
ALTER_USER_SCRAM_CREDENTIALS = 51

VOTE = 52
BEGIN_QUORUM_EPOCH = 53
END_QUORUM_EPOCH = 54
DESCRIBE_QUORUM = 55
ALTER_PARTITION = 56
BROKER_REGISTRATION = 62
BROKER_HEARTBEAT = 63
UNREGISTER_BROKER = 64
ALLOCATE_PRODUCER_IDS = 67
ENVELOPE = 58


# Served on controller listeners only: Raft (KIP-595) and the requests of the other nodes to the
# controller. DescribeQuorum stays on client listeners (Kafka's brokers answer admin clients'
# DescribeQuorum too), and so does WriteTxnMarkers (Admin.abortTransaction sends it to a
# partition leader). Replica Fetch is refused on client listeners by the Fetch handler.
CONTROL_PLANE_APIS = {
    VOTE, BEGIN_QUORUM_EPOCH, END_QUORUM_EPOCH, ALTER_PARTITION, BROKER_REGISTRATION,
    BROKER_HEARTBEAT, ALLOCATE_PRODUCER_IDS, ENVELOPE,
}  # fmt: skip


def build_dispatchers(broker: Broker, gate: asyncio.Event) -> tuple[Dispatcher, Dispatcher]:
    """(client listeners' dispatcher, controller listeners' dispatcher). Client requests wait
    for `gate` (the broker joined its cluster); the nodes' traffic flows at once, as joining
    needs it, and a broker cut off from the controller still serves it."""
    controller = _build_dispatcher(broker)
    controller.authorizer = broker.authorizer
    if broker.metrics is not None:
        controller.durations = broker.metrics.requests
    voters = broker.config.quorum_voters
    if voters:
        controller.admits = VoterAdmission(voter.host for voter in voters).admits
    clients = controller.for_clients(CONTROL_PLANE_APIS, gate, broker.cut_off.turns_away)
    return clients, controller


# What the other nodes send a broker-only node at its inter-broker listener (with replica Fetch):
# the Raft messages of the partitions it hosts. It serves no controller requests.
INTER_BROKER_NODE_APIS = (VOTE, BEGIN_QUORUM_EPOCH, END_QUORUM_EPOCH)


def inter_broker_dispatcher(clients: Dispatcher, nodes: Dispatcher) -> Dispatcher:
    """A broker-only node's inter-broker listener: its clients' APIs and the partitions' Raft
    traffic, which needs CLUSTER_ACTION on the cluster there."""
    return clients.with_node_traffic({key: nodes.apis[key] for key in INTER_BROKER_NODE_APIS})


def _lazy(module: Callable[[], ModuleType], factory: str, *args: Any) -> LazyHandler:
    """The handler `factory(*args)` of the module, imported at its API's first request."""
    return LazyHandler(lambda: getattr(module(), factory)(*args))


# The group APIs that also answer for share groups, once there are any.
SHARE_AWARE_GROUP_APIS = (LIST_GROUPS, DESCRIBE_GROUPS, DELETE_GROUPS)


class ShareApis:
    """The share-group APIs, built with the share coordinator and service at the first request
    for one (share_admin.install). Until then this broker has no share group, so ListGroups,
    DescribeGroups and DeleteGroups are the group coordinator's alone; and a deleted topic has
    share state here only if `__share_group_state` exists, which builds them to remove it."""

    def __init__(self, broker: Broker, group_apis: dict[int, ApiSpec]) -> None:
        self.broker = broker
        self._group_apis = {key: group_apis[key] for key in SHARE_AWARE_GROUP_APIS}
        self._apis: dict[int, ApiSpec] | None = None
        self._admin: ShareAdmin | None = None
        broker.share_groups_loaded = self._group_shard_loaded

    def install(self) -> dict[int, ApiSpec]:
        if self._apis is None:
            from rafka.broker.handlers import share_admin

            apis = dict(self._group_apis)
            self._admin = share_admin.install(apis, self.broker)
            self._apis = apis
        return self._apis

    def specs(self) -> dict[int, ApiSpec]:
        specs = {
            key: ApiSpec(low, high, LazyHandler(lambda key=key: self.install()[key].handler))
            for key, (low, high) in SHARE_API_VERSIONS.items()
        }
        for key, spec in self._group_apis.items():
            specs[key] = msgspec.structs.replace(spec, handler=self._share_aware(key))
        return specs

    def _share_aware(self, key: int) -> Handler:
        def handle(ctx: Any, request: Any) -> Any:
            return (self._apis or self._group_apis)[key].handler(ctx, request)

        return handle

    def _group_shard_loaded(self, shard: Any) -> None:
        """A `__consumer_offsets` partition loaded here: share groups on its log are built
        with the APIs (install takes over every loaded partition's), else restored."""
        if self._admin is None:
            if shard.share_groups:
                self.install()
            return
        self._admin.restore_groups(shard)

    def topic_deleted(self, topic_id: uuid.UUID) -> None:
        if self._admin is None and self.broker.topic(SHARE_STATE_TOPIC) is not None:
            self.install()
        if self._admin is not None:
            self._admin.topic_deleted(topic_id)


def _build_dispatcher(broker: Broker) -> Dispatcher:
    dispatcher = Dispatcher({}, None, make_forwarder(broker), control_plane=True)
    # Version ceilings: Fetch 17+ changes replica semantics we do not serve yet; Produce 13
    # names topics by id (Produce 12 is transaction version 2, see handlers/txn.py). Floors
    # follow Kafka 4 (KIP-896).
    dispatcher.apis.update(
        {
            # librdkafka <= 2.11 enables gzip/snappy only if Produce v0 is advertised; Kafka 4
            # advertises it too (KAFKA-18659) while refusing v0-2 requests, and so do we.
            PRODUCE: ApiSpec(3, 12, produce.make_handler(broker), advertised_min_version=0),
            FETCH: ApiSpec(4, 16, fetch.make_handler(broker)),
            LIST_OFFSETS: ApiSpec(1, 8, offsets.make_list_offsets_handler(broker)),
            METADATA: ApiSpec(0, 12, metadata.make_handler(broker)),
            API_VERSIONS: ApiSpec(0, 4, api_versions.make_handler()),
            CREATE_TOPICS: ApiSpec(2, 7, topics.make_create_handler(broker), forwarded=True),
            DELETE_TOPICS: ApiSpec(1, 6, topics.make_delete_handler(broker), forwarded=True),
            INIT_PRODUCER_ID: ApiSpec(0, 5, producer_ids.make_handler(broker)),
            OFFSET_FOR_LEADER_EPOCH: ApiSpec(
                2, 4, offsets.make_offset_for_leader_epoch_handler(broker)
            ),
        }
    )
    # The classic group coordinator, at the versions Kafka 4 serves. OffsetCommit/OffsetFetch
    # v10 name topics by id (KIP-848; stable, so advertised, from Kafka 4.2).
    dispatcher.apis.update(
        {
            OFFSET_COMMIT: ApiSpec(
                2, 10, _lazy(lazy.offsets_commit, "make_offset_commit_handler", broker)
            ),
            OFFSET_FETCH: ApiSpec(
                1, 10, _lazy(lazy.offsets_commit, "make_offset_fetch_handler", broker)
            ),
            FIND_COORDINATOR: ApiSpec(
                0, 6, _lazy(lazy.groups, "make_find_coordinator_handler", broker)
            ),
            JOIN_GROUP: ApiSpec(0, 9, _lazy(lazy.groups, "make_join_group_handler", broker)),
            HEARTBEAT: ApiSpec(0, 4, _lazy(lazy.groups, "make_heartbeat_handler", broker)),
            LEAVE_GROUP: ApiSpec(0, 5, _lazy(lazy.groups, "make_leave_group_handler", broker)),
            SYNC_GROUP: ApiSpec(0, 5, _lazy(lazy.groups, "make_sync_group_handler", broker)),
            DESCRIBE_GROUPS: ApiSpec(
                0, 6, _lazy(lazy.groups, "make_describe_groups_handler", broker)
            ),
            LIST_GROUPS: ApiSpec(0, 5, _lazy(lazy.groups, "make_list_groups_handler", broker)),
            DELETE_GROUPS: ApiSpec(0, 2, _lazy(lazy.groups, "make_delete_groups_handler", broker)),
            OFFSET_DELETE: ApiSpec(
                0, 0, _lazy(lazy.offsets_commit, "make_offset_delete_handler", broker)
            ),
        }
    )
    # The consumer group protocol (KIP-848), unless group.coordinator.rebalance.protocols
    # leaves it out (then, as on Kafka, it is not advertised and clients stay classic).
    if "consumer" in broker.config.get("group.coordinator.rebalance.protocols"):
        dispatcher.apis.update(
            {
                CONSUMER_GROUP_HEARTBEAT: ApiSpec(
                    0,
                    1,
                    _lazy(lazy.consumer_groups, "make_consumer_group_heartbeat_handler", broker),
                ),
                CONSUMER_GROUP_DESCRIBE: ApiSpec(
                    0,
                    1,
                    _lazy(lazy.consumer_groups, "make_consumer_group_describe_handler", broker),
                ),
            }
        )
    # Share groups (KIP-932, issue 20): members in memory, group epochs and initialized
    # partitions in __consumer_offsets, share-partition state in
    # __share_group_state; their administration (offsets, ListGroups/DescribeGroups/
    # DeleteGroups of share groups), after the group APIs it extends.
    share = ShareApis(broker, dispatcher.apis)
    dispatcher.apis.update(share.specs())
    broker.topic_deleted_listeners.append(share.topic_deleted)
    # Topic and config administration, at the versions Kafka 4 serves.
    dispatcher.apis.update(
        {
            DELETE_RECORDS: ApiSpec(0, 2, admin.make_delete_records_handler(broker)),
            DESCRIBE_CONFIGS: ApiSpec(1, 4, configs.make_describe_handler(broker)),
            ALTER_CONFIGS: ApiSpec(0, 2, configs.make_alter_handler(broker), forwarded=True),
            # Several log.dirs (JBOD) and moves between them; Kafka 4 serves v1-2 and v1-4.
            ALTER_REPLICA_LOG_DIRS: ApiSpec(
                1, 2, log_dirs.make_alter_replica_log_dirs_handler(broker)
            ),
            DESCRIBE_LOG_DIRS: ApiSpec(1, 4, log_dirs.make_describe_log_dirs_handler(broker)),
            CREATE_PARTITIONS: ApiSpec(
                0, 3, admin.make_create_partitions_handler(broker), forwarded=True
            ),
            INCREMENTAL_ALTER_CONFIGS: ApiSpec(
                0, 1, configs.make_incremental_alter_handler(broker), forwarded=True
            ),
            DESCRIBE_CLUSTER: ApiSpec(0, 2, admin.make_describe_cluster_handler(broker)),
            DESCRIBE_QUORUM: ApiSpec(0, 2, quorum.make_handler(broker)),
            DESCRIBE_TOPIC_PARTITIONS: ApiSpec(
                0, 0, admin.make_describe_topic_partitions_handler(broker)
            ),
        }
    )
    # Partition reassignment and leader elections: the controller's, as in KRaft.
    dispatcher.apis.update(
        {
            ELECT_LEADERS: ApiSpec(
                0, 2, reassignments.make_elect_leaders_handler(broker), forwarded=True
            ),
            ALTER_PARTITION_REASSIGNMENTS: ApiSpec(
                0, 1, reassignments.make_alter_handler(broker), forwarded=True
            ),
            LIST_PARTITION_REASSIGNMENTS: ApiSpec(
                0, 0, reassignments.make_list_handler(broker), forwarded=True
            ),
        }
    )
    # Transactions (KIP-98, KIP-890). EndTxn v5 and TxnOffsetCommit v5 are transaction version
    # 2 (the epoch bump per transaction); AddPartitionsToTxn v4+ is the batched broker form.
    dispatcher.apis.update(
        {
            ADD_PARTITIONS_TO_TXN: ApiSpec(
                0, 5, _lazy(lazy.txn, "make_add_partitions_handler", broker)
            ),
            ADD_OFFSETS_TO_TXN: ApiSpec(0, 4, _lazy(lazy.txn, "make_add_offsets_handler", broker)),
            END_TXN: ApiSpec(0, 5, _lazy(lazy.txn, "make_end_txn_handler", broker)),
            WRITE_TXN_MARKERS: ApiSpec(
                1, 2, _lazy(lazy.txn, "make_write_txn_markers_handler", broker)
            ),
            TXN_OFFSET_COMMIT: ApiSpec(
                0, 5, _lazy(lazy.txn, "make_txn_offset_commit_handler", broker)
            ),
            DESCRIBE_PRODUCERS: ApiSpec(
                0, 0, _lazy(lazy.txn, "make_describe_producers_handler", broker)
            ),
            DESCRIBE_TRANSACTIONS: ApiSpec(
                0, 0, _lazy(lazy.txn, "make_describe_transactions_handler", broker)
            ),
            LIST_TRANSACTIONS: ApiSpec(
                0, 2, _lazy(lazy.txn, "make_list_transactions_handler", broker)
            ),
        }
    )
    # Authentication (SASL listeners) and SCRAM users.
    dispatcher.apis.update(
        {
            SASL_HANDSHAKE: ApiSpec(0, 1, sasl.make_handshake_handler(broker)),
            SASL_AUTHENTICATE: ApiSpec(0, 2, sasl.make_authenticate_handler()),
            DESCRIBE_USER_SCRAM_CREDENTIALS: ApiSpec(0, 0, scram.make_describe_handler(broker)),
            DESCRIBE_CLIENT_QUOTAS: ApiSpec(0, 1, scram.make_describe_client_quotas_handler()),
            # ACLs (Kafka 4 serves v1-3: KIP-896 removed v0).
            DESCRIBE_ACLS: ApiSpec(1, 3, acls.make_describe_handler(broker)),
            CREATE_ACLS: ApiSpec(1, 3, acls.make_create_handler(broker), forwarded=True),
            DELETE_ACLS: ApiSpec(1, 3, acls.make_delete_handler(broker), forwarded=True),
            ALTER_USER_SCRAM_CREDENTIALS: ApiSpec(
                0, 0, scram.make_alter_handler(broker), forwarded=True
            ),
        }
    )
    # Between the nodes of a cluster: Raft (KIP-595) and the controller's requests.
    dispatcher.apis.update(
        {
            VOTE: ApiSpec(2, 2, cluster.make_quorum_handler(broker, VOTE)),
            BEGIN_QUORUM_EPOCH: ApiSpec(
                1, 1, cluster.make_quorum_handler(broker, BEGIN_QUORUM_EPOCH)
            ),
            END_QUORUM_EPOCH: ApiSpec(1, 1, cluster.make_quorum_handler(broker, END_QUORUM_EPOCH)),
            ALTER_PARTITION: ApiSpec(3, 3, cluster.make_alter_partition_handler(broker)),
            BROKER_REGISTRATION: ApiSpec(3, 3, cluster.make_broker_registration_handler(broker)),
            BROKER_HEARTBEAT: ApiSpec(1, 1, cluster.make_broker_heartbeat_handler(broker)),
            ALLOCATE_PRODUCER_IDS: ApiSpec(
                0, 0, cluster.make_allocate_producer_ids_handler(broker)
            ),
            ENVELOPE: ApiSpec(0, 0, envelope.make_handler()),
        }
    )
    # Decommissioning a broker (Admin.unregisterBroker, `rafka cluster unregister`).
    dispatcher.apis[UNREGISTER_BROKER] = ApiSpec(
        0, 0, cluster.make_unregister_broker_handler(broker), forwarded=True
    )
    return dispatcher
