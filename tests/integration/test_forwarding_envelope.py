"""Admin requests a non-controller broker forwards reach the controller in an Envelope with the
client's principal and address (KIP-590): the controller serves them as the client's, so ACLs
hold for forwarded requests too (issue 16)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cluster import FAST_FAILOVER, Cluster
from cluster_fixtures import running_cluster
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.create_topics.v7.response import CreateTopicsResponse
from raw_client import RawClient

pytestmark = pytest.mark.timeout(180)

AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin",
}
TOPIC_AUTHORIZATION_FAILED = 29


def create_via(address: str, name: str) -> int:
    """CreateTopics sent to one broker by hand (clients send it to the controller they know)."""
    request = CreateTopicsRequest(
        topics=(CreatableTopic(name=name, num_partitions=1, replication_factor=3,
                               assignments=(), configs=()),),
        timeout=timedelta(seconds=20),
        validate_only=False,
    )  # fmt: skip
    with RawClient(address) as client:
        [topic] = client.request(request, CreateTopicsResponse).topics
    return int(topic.error_code)


def non_controller(cluster: Cluster) -> int:
    controllers = {view.controller_id for view in cluster.metadata_views()}
    assert len(controllers) == 1, controllers
    return next(n for n in cluster.node_ids if n not in controllers)


def test_forwarded_requests_are_served_as_the_client(tmp_path) -> None:
    with running_cluster(tmp_path, 3, **FAST_FAILOVER) as cluster:
        cluster.wait_for_brokers()
        node = non_controller(cluster)
        assert create_via(cluster.address(node), "forwarded") == 0
        cluster.wait_for_leader("forwarded", 0)


def test_acls_hold_for_forwarded_requests(tmp_path) -> None:
    """Without the envelope the controller would serve a forwarded request unchecked (it comes
    on a controller listener, from a voter)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    settings = {**FAST_FAILOVER, **AUTHORIZER, "allow.everyone.if.no.acl.found": "true"}
    with running_cluster(tmp_path, 3, **settings) as cluster:
        cluster.wait_for_brokers()
        # While no ACL names the cluster, anyone (here User:ANONYMOUS) may create ACLs: these
        # two make the cluster and the topic "secret" alice's, so ANONYMOUS may create neither.
        bindings = [
            AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL,
                       "User:alice", "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW),
            AclBinding(ResourceType.TOPIC, "secret", ResourcePatternType.LITERAL,
                       "User:alice", "*", AclOperation.CREATE, AclPermissionType.ALLOW),
        ]  # fmt: skip
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        for future in admin.create_acls(bindings).values():
            future.result(20)
        node = non_controller(cluster)
        assert create_via(cluster.address(node), "secret") == TOPIC_AUTHORIZATION_FAILED
        assert create_via(cluster.address(node), "open") == 0  # no ACL names it
