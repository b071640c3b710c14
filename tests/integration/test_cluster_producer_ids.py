"""Producer ids stay unique while the controller dies, pauses and comes back (issue 13, bug 1).

Three real nodes; one thread per node calls InitProducerId (no transactional id) on it without
pause, each answer a fresh producer id from the node's block; meanwhile the controller (the
metadata quorum's leader) is killed and restarted, or paused (SIGSTOP) and resumed, several
times. No producer id may be handed out twice, and no node may log a block reserved twice.
The deterministic reproduction of the race is tests/unit/test_producer_id_blocks.py; this runs
the same path end to end through real processes and failovers.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

from cluster import FAST_FAILOVER, HOST, Cluster, wait_until
from cluster_fixtures import running_cluster

from rafka.cli.kafka_client import Connection, KafkaClientError

INIT_PRODUCER_ID = 22
ROUNDS = 8
PAUSE_S = 2.0


class Caller(threading.Thread):
    """InitProducerId on one node in a loop, reconnecting while the node is down or paused."""

    def __init__(self, cluster: Cluster, node_id: int, stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"init-producer-id-{node_id}")
        self.port = cluster.client_ports[node_id]
        self.node_id = node_id
        self.stop = stop
        self.ids: list[int] = []
        self.errors: Counter[int] = Counter()

    def run(self) -> None:
        connection: Connection | None = None
        while not self.stop.is_set():
            try:
                if connection is None:
                    connection = Connection(HOST, self.port, "pid-test", 5.0)
                response = connection.send(
                    INIT_PRODUCER_ID,
                    4,
                    {
                        "transactional_id": None,
                        "transaction_timeout": 60_000,
                        "producer_id": -1,
                        "producer_epoch": -1,
                    },
                )
            except (KafkaClientError, OSError):
                if connection is not None:
                    connection.close()
                    connection = None
                self.stop.wait(0.05)  # the node is down, paused or starting
                continue
            if response.error_code == 0:
                self.ids.append(response.producer_id)
            else:
                self.errors[response.error_code] += 1
        if connection is not None:
            connection.close()


def controller_of(cluster: Cluster) -> int:
    """The metadata leader every live node agrees on."""
    found: list[int] = []

    def agreed() -> bool:
        views = cluster.metadata_views()
        ids = {v.controller_id for v in views}
        if len(views) == len(cluster.live_nodes()) and len(ids) == 1 and -1 not in ids:
            found[:] = list(ids)
            return True
        return False

    wait_until(agreed, 30, "a controller every live node knows")
    return found[0]


def test_no_producer_id_is_handed_out_twice_across_controller_failovers(tmp_path) -> None:
    stop = threading.Event()
    with running_cluster(tmp_path, 3, **FAST_FAILOVER) as cluster:
        callers = [Caller(cluster, node_id, stop) for node_id in cluster.node_ids]
        for caller in callers:
            caller.start()
        paused: int | None = None
        try:
            for round_ in range(ROUNDS):
                controller = controller_of(cluster)
                before = sum(len(c.ids) for c in callers)
                wait_until(
                    lambda b=before: sum(len(c.ids) for c in callers) > b + 500,
                    30,
                    "producer ids handed out before the fault",
                )
                process = cluster.nodes[controller].process
                assert process is not None
                if round_ % 2 == 0:
                    cluster.kill(controller)
                    cluster.restart(controller)
                else:
                    paused = process.pid
                    os.kill(paused, signal.SIGSTOP)
                    time.sleep(PAUSE_S)  # the fault itself: a pause of a fixed length
                    os.kill(paused, signal.SIGCONT)
                    paused = None
            controller_of(cluster)
            after = sum(len(c.ids) for c in callers)
            wait_until(
                lambda: sum(len(c.ids) for c in callers) > after + 500,
                30,
                "producer ids handed out after the last fault",
            )
        finally:
            if paused is not None:
                os.kill(paused, signal.SIGCONT)
            stop.set()
            for caller in callers:
                caller.join(15)
        logs = [line for i in cluster.node_ids for line in cluster.log_lines(i)]
    ids = [pid for caller in callers for pid in caller.ids]
    twice = [pid for pid, count in Counter(ids).items() if count > 1]
    blocks = {pid // 1000 for pid in ids}
    print(f"{len(ids)} producer ids in {len(blocks)} blocks")
    assert len(blocks) > ROUNDS  # blocks were reserved across the failovers
    assert not twice, f"{len(twice)} producer ids handed out twice, e.g. {sorted(twice)[:5]}"
    assert not [line for line in logs if "producer-id block reserved twice" in line]
