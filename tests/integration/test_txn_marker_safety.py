"""Issue 13, bug 3: stale transaction markers and reused sequence numbers (raw requests).

(a) A WriteTxnMarkers request that reaches a broker not leading the partition is refused with
NOT_LEADER_OR_FOLLOWER, as Kafka does; it used to be forwarded to the current leader, where a
delayed COMMIT of a finished transaction ended the producer's next (aborted) one. A marker for
a producer with nothing undecided on the partition is answered without a second append.
(b) A transactional batch repeating the sequence numbers of a batch whose transaction already
has its marker is no retry: it is refused with OUT_OF_ORDER_SEQUENCE_NUMBER instead of being
acknowledged with the aborted batch's offsets (its records were never stored).

The sequences are plain functions over connections so that the same steps can be replayed
against Apache Kafka for comparison (transaction version 1: EndTxn v3, no epoch bump).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from broker_process import BrokerProcess
from cluster import Cluster
from cluster_fixtures import create_topic, running_cluster
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from rafka.cli.kafka_client import Connection
from rafka.protocol.records import build_batch

pytestmark = pytest.mark.timeout(180)

PRODUCE, LIST_OFFSETS, FIND_COORDINATOR, INIT_PRODUCER_ID = 0, 2, 10, 22
ADD_PARTITIONS_TO_TXN, END_TXN, WRITE_TXN_MARKERS, DESCRIBE_PRODUCERS = 24, 26, 27, 61

NONE = 0
NOT_LEADER_OR_FOLLOWER = 6
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
CONCURRENT_TRANSACTIONS = 51
TRANSACTION_COORDINATOR_FENCED = 52
RETRIABLE = frozenset(
    {COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
     CONCURRENT_TRANSACTIONS}
)
QUIET = {"log_level": 0}


def connect(address: str) -> Connection:
    host, port = address.rsplit(":", 1)
    return Connection(host, int(port), "txn-marker-safety", 10.0)


def retry(call: Callable[[], int], what: str, timeout: float = 20.0) -> int:
    """`call`'s first error code that is not a retriable coordinator state (a protocol round
    trip each time: the coordinator answers CONCURRENT_TRANSACTIONS until markers are done)."""
    deadline = time.monotonic() + timeout
    while True:
        code = call()
        if code not in RETRIABLE:
            return code
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # the client's retry backoff


def find_coordinator(conn: Connection, transactional_id: str) -> tuple[int, str]:
    """(error code, address) of the transaction coordinator of `transactional_id`."""
    found = conn.send(
        FIND_COORDINATOR, 4, {"key_type": 1, "coordinator_keys": [transactional_id]}
    ).coordinators[0]
    return found.error_code, f"{found.host}:{found.port}"


class RawTxn:
    """A transactional producer driven request by request, transaction version 1 (EndTxn v3:
    consecutive transactions keep the producer epoch). `coordinator` carries the transaction
    APIs; produce goes to whatever leader connection the caller passes."""

    def __init__(self, coordinator: Connection, transactional_id: str) -> None:
        self.conn = coordinator
        self.transactional_id = transactional_id
        # Also creates __transaction_state on first use.
        assert retry(lambda: find_coordinator(coordinator, transactional_id)[0],
                     "FindCoordinator") == NONE

        def init() -> int:
            response = self.conn.send(
                INIT_PRODUCER_ID,
                4,
                {"transactional_id": transactional_id, "transaction_timeout": 60_000,
                 "producer_id": -1, "producer_epoch": -1},
            )
            self.producer_id, self.epoch = response.producer_id, response.producer_epoch
            return response.error_code

        assert retry(init, "InitProducerId") == NONE

    def add(self, topic: str, partition: int) -> int:
        def once() -> int:
            response = self.conn.send(
                ADD_PARTITIONS_TO_TXN,
                3,
                {"v3_and_below_transactional_id": self.transactional_id,
                 "v3_and_below_producer_id": self.producer_id,
                 "v3_and_below_producer_epoch": self.epoch,
                 "v3_and_below_topics": [{"name": topic, "partitions": [partition]}]},
            )
            return response.results_by_topic_v3_and_below[0].results_by_partition[0] \
                .partition_error_code

        return retry(once, "AddPartitionsToTxn")

    def produce(
        self, leader: Connection, topic: str, partition: int, sequence: int, values: list[bytes]
    ) -> tuple[int, int]:
        """(error code, base offset) of one transactional batch at `sequence`, acks=all."""
        now = int(time.time() * 1000)
        batch = build_batch(
            [(None, v, (), now) for v in values],
            producer_id=self.producer_id,
            producer_epoch=self.epoch,
            base_sequence=sequence,
            is_transactional=True,
        )
        response = leader.send(
            PRODUCE,
            9,
            {"transactional_id": self.transactional_id, "acks": -1, "timeout": 10_000,
             "topic_data": [{"name": topic,
                             "partition_data": [{"index": partition, "records": batch}]}]},
        )
        result = response.responses[0].partition_responses[0]
        return result.error_code, result.base_offset

    def end(self, commit: bool) -> int:
        return self.conn.send(
            END_TXN,
            3,
            {"transactional_id": self.transactional_id, "producer_id": self.producer_id,
             "producer_epoch": self.epoch, "committed": commit},
        ).error_code


def write_marker(
    conn: Connection, txn: RawTxn, coordinator_epoch: int, commit: bool, topic: str,
    partition: int, producer_epoch: int | None = None,
) -> int:
    """WriteTxnMarkers v1 for one partition, as a coordinator's marker channel sends it."""
    response = conn.send(
        WRITE_TXN_MARKERS,
        1,
        {"markers": [{"producer_id": txn.producer_id,
                      "producer_epoch": txn.epoch if producer_epoch is None else producer_epoch,
                      "transaction_result": commit,
                      "topics": [{"name": topic, "partition_indexes": [partition]}],
                      "coordinator_epoch": coordinator_epoch}]},
    )
    return response.markers[0].topics[0].partitions[0].error_code


def producer_state(conn: Connection, topic: str, partition: int, producer_id: int) -> Any:
    """The partition leader's DescribeProducers entry for `producer_id`."""
    response = conn.send(
        DESCRIBE_PRODUCERS, 0, {"topics": [{"name": topic, "partition_indexes": [partition]}]}
    )
    result = response.topics[0].partitions[0]
    assert result.error_code == NONE, result
    (state,) = [p for p in result.active_producers if p.producer_id == producer_id]
    return state


def wait_until_ended(conn: Connection, txn: RawTxn, topic: str, partition: int) -> Any:
    """Poll the leader until the producer has no open transaction on the partition (its marker
    is written); its producer state then."""
    deadline = time.monotonic() + 20
    while True:
        state = producer_state(conn, topic, partition, txn.producer_id)
        if state.current_txn_start_offset == -1:
            return state
        assert time.monotonic() < deadline, "the transaction's marker was never written"
        time.sleep(0.02)


def end_offset(conn: Connection, topic: str, partition: int) -> int:
    """ListOffsets latest, read_uncommitted: the high watermark."""
    response = conn.send(
        LIST_OFFSETS,
        7,
        {"replica_id": -1, "isolation_level": 0,
         "topics": [{"name": topic, "partitions": [
             {"partition_index": partition, "current_leader_epoch": -1, "timestamp": -1}]}]},
    )
    result = response.topics[0].partitions[0]
    assert result.error_code == NONE
    return result.offset


def read_committed_until(bootstrap: str, topic: str, partition: int, last: str) -> list[str]:
    """Values a read_committed consumer returns from the start up to and including `last` (a
    committed sentinel written after everything under test: whatever precedes it is seen)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:6]}",
         "isolation.level": "read_committed", "enable.auto.commit": False, **QUIET}
    )
    consumer.assign([TopicPartition(topic, partition, 0)])
    values: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while last not in values:
            assert time.monotonic() < deadline, f"read_committed never reached {last}: {values}"
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(message.value().decode())
    finally:
        consumer.close()
    return values


# -- the sequences (also replayed against Apache Kafka) -----------------------------------------


def reused_sequence_after_abort(conn: Connection, topic: str) -> dict[str, Any]:
    """Transaction 1 writes seq 0..2 and aborts; transaction 2 (same epoch) sends different
    records at seq 0..2. Returns what the broker answered at each step."""
    txn = RawTxn(conn, f"reuse-{topic}")
    seen: dict[str, Any] = {}
    assert txn.add(topic, 0) == NONE
    seen["first"] = txn.produce(conn, topic, 0, 0, [b"a0", b"a1", b"a2"])
    # A retry while the transaction is open is a duplicate: the original offsets again.
    seen["retry_in_txn"] = txn.produce(conn, topic, 0, 0, [b"a0", b"a1", b"a2"])
    assert txn.end(commit=False) == NONE
    wait_until_ended(conn, txn, topic, 0)
    seen["end_before"] = end_offset(conn, topic, 0)
    assert txn.add(topic, 0) == NONE
    seen["reused"] = txn.produce(conn, topic, 0, 0, [b"b0", b"b1", b"b2"])
    seen["end_after"] = end_offset(conn, topic, 0)
    return seen


def stale_marker_at_leader(conn: Connection, topic: str) -> dict[str, Any]:
    """Transaction 1 commits; then the same COMMIT marker again (a coordinator's retry or a
    delayed copy), and markers with an older producer or coordinator epoch."""
    RawTxn(conn, f"stale-{topic}")
    txn = RawTxn(conn, f"stale-{topic}")  # epoch 1, so that epoch 0 is an older one
    seen: dict[str, Any] = {}
    assert txn.add(topic, 0) == NONE
    assert txn.produce(conn, topic, 0, 0, [b"t1"])[0] == NONE
    assert txn.end(commit=True) == NONE
    coordinator_epoch = wait_until_ended(conn, txn, topic, 0).coordinator_epoch
    seen["end_before"] = end_offset(conn, topic, 0)
    seen["again"] = write_marker(conn, txn, coordinator_epoch, True, topic, 0)
    seen["end_after"] = end_offset(conn, topic, 0)
    seen["older_coordinator"] = write_marker(conn, txn, coordinator_epoch - 1, True, topic, 0)
    seen["older_producer_epoch"] = write_marker(
        conn, txn, coordinator_epoch, True, topic, 0, producer_epoch=txn.epoch - 1
    )
    return seen


# -- single node --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("txn-marker-safety")).start()
    yield process
    process.kill()


def single_node_topic(broker: BrokerProcess) -> str:
    name = f"safety-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    for future in admin.create_topics([NewTopic(name, 1, 1)]).values():
        future.result(10)
    return name


def test_reused_sequence_of_an_aborted_batch_is_not_a_duplicate(broker) -> None:
    topic = single_node_topic(broker)
    conn = connect(broker.bootstrap)
    try:
        seen = reused_sequence_after_abort(conn, topic)
    finally:
        conn.close()
    assert seen["first"][0] == NONE
    assert seen["retry_in_txn"] == seen["first"]
    # Not answered NONE with the aborted batch's offsets: its records would be lost.
    assert seen["reused"][0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert seen["end_after"] == seen["end_before"]  # nothing appended


def test_marker_again_after_its_transaction_ended_appends_nothing(broker) -> None:
    topic = single_node_topic(broker)
    conn = connect(broker.bootstrap)
    try:
        seen = stale_marker_at_leader(conn, topic)
    finally:
        conn.close()
    # Success, so a coordinator retrying after a lost response completes, and no second marker.
    assert seen["again"] == NONE
    assert seen["end_after"] == seen["end_before"]
    assert seen["older_coordinator"] == TRANSACTION_COORDINATOR_FENCED
    assert seen["older_producer_epoch"] == INVALID_PRODUCER_EPOCH


# -- three nodes --------------------------------------------------------------------------------


def coordinator_of(cluster: Cluster, transactional_id: str) -> Connection:
    """A connection to the transaction coordinator of `transactional_id`."""
    conn = connect(cluster.address(1))
    try:
        found: list[str] = []

        def once() -> int:
            code, address = find_coordinator(conn, transactional_id)
            found.append(address)
            return code

        assert retry(once, "FindCoordinator", timeout=30) == NONE
        return connect(found[-1])
    finally:
        conn.close()


def test_write_txn_markers_at_a_non_leader_is_refused_not_forwarded(tmp_path) -> None:
    """The fault run's sequence: transaction 1 commits; transaction 2 writes and stays open;
    a delayed copy of transaction 1's COMMIT reaches a broker that no longer leads the
    partition. It must answer NOT_LEADER_OR_FOLLOWER and append nothing on the leader, so
    transaction 2's abort leaves its records invisible to read_committed consumers."""
    topic = "stale-markers"
    with running_cluster(tmp_path, 3) as cluster:
        create_topic(cluster, topic, 1, 3)
        leader_id = cluster.wait_for_leader(topic, 0)
        follower_id = next(n for n in cluster.node_ids if n != leader_id)
        transactional_id = f"stale-{uuid.uuid4().hex[:6]}"
        coordinator = coordinator_of(cluster, transactional_id)
        leader = connect(cluster.address(leader_id))
        follower = connect(cluster.address(follower_id))
        try:
            txn = RawTxn(coordinator, transactional_id)
            assert txn.add(topic, 0) == NONE
            assert txn.produce(leader, topic, 0, 0, [b"t1-committed"])[0] == NONE
            assert txn.end(commit=True) == NONE
            coordinator_epoch = wait_until_ended(leader, txn, topic, 0).coordinator_epoch

            assert txn.add(topic, 0) == NONE
            assert txn.produce(leader, topic, 0, 1, [b"t2-aborted"])[0] == NONE
            before = end_offset(leader, topic, 0)
            stale = write_marker(follower, txn, coordinator_epoch, True, topic, 0)
            assert stale == NOT_LEADER_OR_FOLLOWER
            assert end_offset(leader, topic, 0) == before
            assert producer_state(leader, topic, 0, txn.producer_id).current_txn_start_offset >= 0

            assert txn.end(commit=False) == NONE
            wait_until_ended(leader, txn, topic, 0)
            assert txn.add(topic, 0) == NONE
            assert txn.produce(leader, topic, 0, 2, [b"t3-end"])[0] == NONE
            assert txn.end(commit=True) == NONE
            seen = read_committed_until(cluster.bootstrap, topic, 0, "t3-end")
            assert seen == ["t1-committed", "t3-end"]
        finally:
            for conn in (coordinator, leader, follower):
                conn.close()
