"""Clients cannot reach the control plane (issue 16, done-when 4): on a 3-node cluster the client
listeners neither advertise nor serve Raft and the nodes' requests to the controller, a forged
replica Fetch there closes the connection without moving the high watermark, and the
controller listeners admit the voters' addresses only."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from cluster import FAST_FAILOVER, Cluster
from cluster_fixtures import create_topic, high_watermark, running_cluster
from confluent_kafka import Producer
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
from raw_client import IO_TIMEOUT, RawClient, encode

pytestmark = pytest.mark.timeout(180)

TOPIC = "guarded"
VOTE, BEGIN_QUORUM_EPOCH, END_QUORUM_EPOCH = 52, 53, 54
ALTER_PARTITION, BROKER_REGISTRATION, ALLOCATE_PRODUCER_IDS = 56, 62, 67
CONTROL_PLANE = {
    VOTE, BEGIN_QUORUM_EPOCH, END_QUORUM_EPOCH, ALTER_PARTITION, BROKER_REGISTRATION,
    ALLOCATE_PRODUCER_IDS,
}  # fmt: skip
# (api key, version) of each, as the nodes send them.
VERSIONS = {52: 2, 53: 1, 54: 1, 56: 3, 62: 3, 67: 0}


def api_keys(address: str) -> set[int]:
    request = ApiVersionsRequest(client_software_name="test", client_software_version="1")
    with RawClient(address) as client:
        response = client.request(request, ApiVersionsResponse)
    return {int(api.api_key) for api in response.api_keys}


def controller_address(cluster: Cluster, node_id: int) -> str:
    return f"{cluster.hosts[node_id]}:{cluster.controller_ports[node_id]}"


def forged_replica_fetch(replica_id: int, fetch_offset: int) -> bytes:
    request = FetchRequest(
        replica_id=replica_id,
        max_wait=timedelta(milliseconds=10),
        min_bytes=1,
        topics=(
            FetchTopic(
                topic=TOPIC,
                partitions=(
                    FetchPartition(
                        partition=0, fetch_offset=fetch_offset, partition_max_bytes=1 << 20
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
    )
    return encode(request)


def closes_on(client: RawClient, api_key: int, version: int, body: bytes) -> bool:
    client.send(api_key, version, body, flexible=True)
    return client.closed_by_peer(IO_TIMEOUT)


def test_client_listeners_refuse_the_control_plane(tmp_path) -> None:
    with running_cluster(tmp_path, 3, **FAST_FAILOVER) as cluster:
        client_listener = cluster.address(1)
        assert CONTROL_PLANE.isdisjoint(api_keys(client_listener))
        assert CONTROL_PLANE <= api_keys(controller_address(cluster, 1))
        for api_key in sorted(CONTROL_PLANE):
            with RawClient(client_listener) as client:
                assert closes_on(client, api_key, VERSIONS[api_key], b""), api_key
        # The client listener still serves clients.
        assert 3 in api_keys(client_listener)


# The leader keeps its leadership for this long without followers: the check below runs while
# it still leads (with fast failover it resigns within a second, and the check asks nobody).
PATIENT_LEADER = {
    "controller.quorum.election.timeout.ms": "10000",
    "controller.quorum.fetch.timeout.ms": "20000",
}


def test_a_forged_replica_fetch_cannot_move_the_high_watermark(tmp_path) -> None:
    with running_cluster(tmp_path, 3, **PATIENT_LEADER) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        cluster.wait_for_full_isr(TOPIC, [0])
        leader = cluster.wait_for_leader(TOPIC, 0)
        followers = [n for n in cluster.node_ids if n != leader]
        for follower in followers:  # nobody fetches the record below: it stays uncommitted
            cluster.kill(follower)
        hw = high_watermark(cluster, TOPIC, 0)
        producer = Producer({"bootstrap.servers": cluster.address(leader), "acks": 1})
        producer.produce(TOPIC, b"not replicated", partition=0)
        assert producer.flush(15) == 0
        log_end = hw + 1

        # As follower: "I have everything up to the log end". Accepted, it would make a
        # majority (leader and that follower) and commit the record.
        with RawClient(cluster.address(leader)) as client:
            assert closes_on(client, 1, 12, forged_replica_fetch(followers[0], log_end))
        # The controller listener, from an address that is no voter's (all voters are on
        # 127.0.0.1; the loopback network answers 127.0.0.2 too).
        host, port = controller_address(cluster, leader).rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), IO_TIMEOUT, ("127.0.0.2", 0))
        with RawClient.wrapping(sock) as client:
            assert closes_on(client, 1, 12, forged_replica_fetch(followers[0], log_end))
        assert high_watermark(cluster, TOPIC, 0) == hw

