"""Raw admin requests for the admin scenario: partitions, configs, leader epochs, groups, producers
and elections, one request per call on its own connection (as raw.py), answers for the one
resource asked about."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kio.schema.create_partitions.v3 import request as partitions_req
from kio.schema.create_partitions.v3.response import CreatePartitionsResponse
from kio.schema.delete_groups.v2.request import DeleteGroupsRequest
from kio.schema.delete_groups.v2.response import DeleteGroupsResponse
from kio.schema.describe_configs.v4 import request as describe_req
from kio.schema.describe_configs.v4.response import DescribeConfigsResponse
from kio.schema.describe_groups.v5.request import DescribeGroupsRequest
from kio.schema.describe_groups.v5.response import DescribeGroupsResponse
from kio.schema.describe_producers.v0 import request as producers_req
from kio.schema.describe_producers.v0.response import DescribeProducersResponse
from kio.schema.describe_topic_partitions.v0 import request as topic_partitions_req
from kio.schema.describe_topic_partitions.v0.response import DescribeTopicPartitionsResponse
from kio.schema.describe_transactions.v0.request import DescribeTransactionsRequest
from kio.schema.describe_transactions.v0.response import DescribeTransactionsResponse
from kio.schema.elect_leaders.v2 import request as elect_req
from kio.schema.elect_leaders.v2.response import ElectLeadersResponse
from kio.schema.fetch.v12 import request as fetch_req
from kio.schema.fetch.v12.response import FetchResponse
from kio.schema.find_coordinator.v6.request import FindCoordinatorRequest
from kio.schema.find_coordinator.v6.response import FindCoordinatorResponse
from kio.schema.incremental_alter_configs.v1 import request as alter_req
from kio.schema.incremental_alter_configs.v1.response import IncrementalAlterConfigsResponse
from kio.schema.list_groups.v5.request import ListGroupsRequest
from kio.schema.list_groups.v5.response import ListGroupsResponse
from kio.schema.list_transactions.v1.request import ListTransactionsRequest
from kio.schema.list_transactions.v1.response import ListTransactionsResponse
from kio.schema.offset_delete.v0 import request as offset_delete_req
from kio.schema.offset_delete.v0.response import OffsetDeleteResponse
from kio.schema.offset_for_leader_epoch.v4 import request as epoch_req
from kio.schema.offset_for_leader_epoch.v4.response import OffsetForLeaderEpochResponse
from raw import TIMEOUT, request, until

TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
PREFERRED, UNCLEAN = 0, 1


def create_partitions(
    bootstrap: str,
    topic: str,
    count: int,
    assignments: list[list[int]] | None = None,
    validate_only: bool = False,
) -> Any:
    body = partitions_req.CreatePartitionsRequest(
        topics=(partitions_req.CreatePartitionsTopic(
            name=topic, count=count,
            assignments=None if assignments is None else tuple(
                partitions_req.CreatePartitionsAssignment(broker_ids=tuple(ids))
                for ids in assignments
            ),
        ),),
        timeout=TIMEOUT, validate_only=validate_only,
    )  # fmt: skip
    return request(bootstrap, body, CreatePartitionsResponse).results[0]


def alter_configs(
    bootstrap: str,
    name: str,
    ops: list[tuple[str, int, str | None]],
    resource_type: int = TOPIC_RESOURCE,
    validate_only: bool = False,
) -> Any:
    """IncrementalAlterConfigs of one resource: (config, operation, value) triples."""
    body = alter_req.IncrementalAlterConfigsRequest(
        resources=(alter_req.AlterConfigsResource(
            resource_type=resource_type, resource_name=name,
            configs=tuple(alter_req.AlterableConfig(name=key, config_operation=op, value=value)
                          for key, op, value in ops),
        ),),
        validate_only=validate_only,
    )  # fmt: skip
    return request(bootstrap, body, IncrementalAlterConfigsResponse).responses[0]


def describe_configs(
    bootstrap: str, name: str, keys: list[str] | None, resource_type: int = TOPIC_RESOURCE
) -> Any:
    """The resource's answer, its configs sorted by name (each broker lists in its own order)."""
    body = describe_req.DescribeConfigsRequest(
        resources=(describe_req.DescribeConfigsResource(
            resource_type=resource_type, resource_name=name,
            configuration_keys=None if keys is None else tuple(keys),
        ),),
        include_synonyms=False, include_documentation=False,
    )  # fmt: skip
    result = request(bootstrap, body, DescribeConfigsResponse).results[0]
    return {
        "error_code": result.error_code,
        "configs": sorted(result.configs, key=lambda c: c.name),
    }


def offset_for_leader_epoch(
    bootstrap: str, topic: str, partition: int, epoch: int, current_epoch: int = -1
) -> Any:
    body = epoch_req.OffsetForLeaderEpochRequest(
        topics=(epoch_req.OffsetForLeaderTopic(
            topic=topic,
            partitions=(epoch_req.OffsetForLeaderPartition(
                partition=partition, current_leader_epoch=current_epoch, leader_epoch=epoch,
            ),),
        ),),
    )  # fmt: skip
    topics = request(bootstrap, body, OffsetForLeaderEpochResponse).topics
    return topics[0].partitions[0]


def delete_group(bootstrap: str, group: str) -> Any:
    body = DeleteGroupsRequest(groups_names=(group,))
    return request(bootstrap, body, DeleteGroupsResponse).results[0]


def describe_group(bootstrap: str, group: str) -> Any:
    """The group's state and protocol, and its members' client ids, metadata and assignments
    (bytes the broker keeps opaque, as hex; member ids are the broker's to choose)."""
    body = DescribeGroupsRequest(groups=(group,), include_authorized_operations=False)
    answer = request(bootstrap, body, DescribeGroupsResponse).groups[0]
    return {
        "error_code": answer.error_code,
        "group_id": answer.group_id,
        "group_state": answer.group_state,
        "protocol_type": answer.protocol_type,
        "protocol_data": answer.protocol_data,
        "members": sorted(
            (m.client_id, m.client_host, m.member_metadata.hex(), m.member_assignment.hex())
            for m in answer.members
        ),
    }


def offset_delete(bootstrap: str, group: str, topic: str, partitions: list[int]) -> Any:
    body = offset_delete_req.OffsetDeleteRequest(
        group_id=group,
        topics=(offset_delete_req.OffsetDeleteRequestTopic(
            name=topic,
            partitions=tuple(offset_delete_req.OffsetDeleteRequestPartition(partition_index=p)
                             for p in partitions),
        ),),
    )  # fmt: skip
    return request(bootstrap, body, OffsetDeleteResponse)


def describe_producers(bootstrap: str, topic: str, partition: int) -> Any:
    body = producers_req.DescribeProducersRequest(
        topics=(producers_req.TopicRequest(name=topic, partition_indexes=(partition,)),)
    )
    return request(bootstrap, body, DescribeProducersResponse).topics[0].partitions[0]


def elect_leaders(bootstrap: str, topic: str, partitions: list[int], kind: int) -> Any:
    body = elect_req.ElectLeadersRequest(
        election_type=kind,
        topic_partitions=(elect_req.TopicPartitions(topic=topic, partitions=tuple(partitions)),),
        timeout=TIMEOUT,
    )
    response = request(bootstrap, body, ElectLeadersResponse)
    return {
        "error_code": response.error_code,
        "results": [r.partition_result for r in response.replica_election_results],
    }


def list_groups(bootstrap: str, states: tuple[str, ...] = (), types: tuple[str, ...] = ()) -> Any:
    body = ListGroupsRequest(states_filter=states, types_filter=types)
    response = request(bootstrap, body, ListGroupsResponse)
    return {
        "error_code": response.error_code,
        "groups": sorted((g.group_id, g.group_state, g.group_type, g.protocol_type)
                         for g in response.groups),
    }


def describe_transaction(bootstrap: str, transactional_id: str) -> Any:
    body = DescribeTransactionsRequest(transactional_ids=(transactional_id,))
    return request(bootstrap, body, DescribeTransactionsResponse).transaction_states[0]


def list_transactions(bootstrap: str) -> Any:
    return request(bootstrap, ListTransactionsRequest(), ListTransactionsResponse)


def describe_topic_partitions(bootstrap: str, topic: str, limit: int = 2000) -> Any:
    body = topic_partitions_req.DescribeTopicPartitionsRequest(
        topics=(topic_partitions_req.TopicRequest(name=topic),), response_partition_limit=limit
    )
    response = request(bootstrap, body, DescribeTopicPartitionsResponse)
    topic_answer = response.topics[0]
    return {
        "error_code": topic_answer.error_code,
        "name": topic_answer.name,
        "is_internal": topic_answer.is_internal,
        "partitions": [p.partition_index for p in topic_answer.partitions],
        "next_cursor": response.next_cursor,
    }


def find_coordinator(bootstrap: str, key: str, key_type: int) -> Any:
    body = FindCoordinatorRequest(key_type=key_type, coordinator_keys=(key,))
    return request(bootstrap, body, FindCoordinatorResponse).coordinators[0]


def await_transaction_coordinator(bootstrap: str, transactional_id: str) -> None:
    """The id's transaction coordinator answers (Kafka creates __transaction_state first)."""

    def ready() -> bool | None:
        if find_coordinator(bootstrap, transactional_id, 1).error_code != 0:
            return None
        code = describe_transaction(bootstrap, transactional_id).error_code
        return None if code in (14, 15, 16) else True  # loading, not available, not coordinator

    until(ready, f"transaction coordinator of {transactional_id}")


def fetch_session(bootstrap: str, topic: str, session_id: int, epoch: int) -> dict[str, Any]:
    """A Fetch in a fetch session (KIP-227): epoch 0 opens one (a full fetch), -1 closes one (a
    full fetch without a session), above 0 continues one (no partitions named)."""
    body = fetch_req.FetchRequest(
        max_wait=timedelta(0), min_bytes=0, isolation_level=0, session_id=session_id,
        session_epoch=epoch,
        topics=(fetch_req.FetchTopic(
            topic=topic,
            partitions=(fetch_req.FetchPartition(partition=0, fetch_offset=0,
                                                 partition_max_bytes=1 << 20),),
        ),) if epoch <= 0 else (),
        forgotten_topics_data=(),
    )  # fmt: skip
    answer = request(bootstrap, body, FetchResponse)
    return {
        "error_code": answer.error_code,
        "session_id": answer.session_id,
        "partitions": [(r.topic, p.partition_index, p.error_code, p.high_watermark)
                       for r in answer.responses for p in r.partitions],
    }
