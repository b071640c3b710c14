"""A broker cut off from its peers but not from clients sends them to the other brokers.

The fault campaign's slowest failovers (the whole fault without an acknowledgement, 7 of 100
isolations) came after faults that left one node leading every partition: librdkafka then holds
a connection to that node only, and asks it, and only it, for Metadata. Cut off from the other
brokers, that node knows no leader for any partition and says so for as long as the cut lasts.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from itertools import pairwise

import pytest
from netns import unavailable_reason

_reason = unavailable_reason()
if _reason is not None:
    pytest.skip(f"fault suite skipped: {_reason}", allow_module_level=True)

from cluster import FAST_FAILOVER, Cluster  # noqa: E402
from confluent_kafka import KafkaError, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from netns import Network  # noqa: E402
from workloads import RECONNECT  # noqa: E402

TOPIC = "isolated"
PARTITIONS = 3
SESSION_TIMEOUT_S = int(FAST_FAILOVER["broker.session.timeout.ms"]) / 1000
# The availability target of issue 13: a gap within the session timeout plus 2 s.
GAP_BOUND_S = SESSION_TIMEOUT_S + 2.0
HOLD_S = GAP_BOUND_S + 4.0  # long enough that a client stuck for the whole cut is seen


@pytest.mark.timeout(240)
def test_clients_of_a_cut_off_leader_find_the_new_one(tmp_path) -> None:
    with ExitStack() as cleanup:
        network = Network(3).create()
        cleanup.callback(network.close)  # after the brokers are gone (callbacks run LIFO)
        cluster = Cluster(
            tmp_path,
            3,
            hosts={n: network.address(n) for n in network.nodes()},
            launchers={n: network.launcher(n) for n in network.nodes()},
            **FAST_FAILOVER,
        )
        cleanup.enter_context(cluster)
        cluster.start()
        isolated = 2
        others = [n for n in cluster.node_ids if n != isolated]
        # Every partition prefers the node to be cut off; the preferred-leader check moves
        # leadership there if an election went elsewhere.
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        topic = NewTopic(
            TOPIC, num_partitions=PARTITIONS, replica_assignment=[[isolated, *others]] * PARTITIONS
        )
        admin.create_topics([topic])[TOPIC].result(timeout=30)
        deadline = time.monotonic() + 60
        while any(cluster.leader_of(TOPIC, p) != isolated for p in range(PARTITIONS)):
            assert time.monotonic() < deadline, "leadership never moved to the preferred replica"
            time.sleep(0.1)  # polling the cluster's own view: no event to await from outside

        # Bootstrapped from that node alone: its only connection is to the node to be cut off.
        producer = Producer(
            {
                "bootstrap.servers": cluster.address(isolated),
                "acks": "all",
                "linger.ms": 0,
                "message.timeout.ms": 30_000,
                **RECONNECT,
            }
        )
        acked: list[float] = []

        def on_delivery(error: KafkaError | None, _message: object) -> None:
            if error is None:
                acked.append(time.monotonic())

        def produce_for(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for partition in range(PARTITIONS):
                    producer.produce(TOPIC, b"v", partition=partition, on_delivery=on_delivery)
                producer.poll(0.05)

        produce_for(1.0)
        assert acked, "no write acknowledged before the cut"
        network.isolate(isolated)
        cut_at = time.monotonic()
        produce_for(HOLD_S)
        healed_at = time.monotonic()
        network.heal()
        producer.flush(30)

        # The longest time without an acknowledgement while the cut lasted.
        during = [cut_at, *sorted(t for t in acked if cut_at < t < healed_at), healed_at]
        gap = max(b - a for a, b in pairwise(during))
        assert gap <= GAP_BOUND_S, (
            f"{gap:.2f}s without an acknowledgement during a {HOLD_S:.0f}s cut "
            f"(bound {GAP_BOUND_S:.0f}s): the client kept asking the cut-off node"
        )
