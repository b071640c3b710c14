"""The transaction APIs against a real broker, beyond a client's commit and abort:
DescribeTransactions, ListTransactions and DescribeProducers (and `rafka txn`), transactional
offset commits that stay unstable until the commit, and the broker-to-broker forms
(AddPartitionsToTxn v4, WriteTxnMarkers). Helpers in txn_support.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from broker_process import BrokerProcess
from txn_support import (
    ADD_OFFSETS_TO_TXN,
    ADD_PARTITIONS_TO_TXN,
    COORDINATOR_LOAD_IN_PROGRESS,
    DESCRIBE_PRODUCERS,
    INVALID_TXN_STATE,
    LIST_TRANSACTIONS,
    NONE,
    OFFSET_FETCH,
    TXN_OFFSET_COMMIT,
    UNSTABLE_OFFSET_COMMIT,
    RawTxnProducer,
    consume_all,
    describe_txn,
    new_topic,
    run_cli,
    start_broker,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = start_broker(tmp_path_factory.mktemp("transactions"))
    yield process
    process.kill()


# -- describe/list APIs and the CLI ---------------------------------------------------------------


def test_describe_and_list_transactions_and_producers(broker) -> None:
    topic = new_topic(broker)
    transactional_id = f"described-{topic}"
    producer = RawTxnProducer(broker, transactional_id)
    empty = run_cli(broker, "txn", "describe", "-t", transactional_id, "--json")
    assert (empty["state"], empty["start_time_ms"], empty["partitions"]) == ("Empty", None, [])
    assert producer.add_partitions(topic, [0, 1]) == NONE
    assert producer.produce(topic, 1, [b"x"]) == NONE
    conn = producer.conn

    listed = conn.send(
        LIST_TRANSACTIONS, 1, {"state_filters": ["Ongoing", "Bogus"], "producer_id_filters": [],
                               "duration_filter": -1}
    )
    assert listed.error_code == NONE
    assert list(listed.unknown_state_filters) == ["Bogus"]
    ours = [t for t in listed.transaction_states if t.transactional_id == transactional_id]
    assert [(t.producer_id, t.transaction_state) for t in ours] == [
        (producer.producer_id, "Ongoing")
    ]
    by_pid = conn.send(
        LIST_TRANSACTIONS, 0,
        {"state_filters": [], "producer_id_filters": [producer.producer_id]},
    )
    assert [t.transactional_id for t in by_pid.transaction_states] == [transactional_id]

    state = describe_txn(conn, transactional_id)
    assert state.error_code == NONE
    assert (state.producer_id, state.producer_epoch) == (producer.producer_id, producer.epoch)
    assert state.partitions == [
        {"topic": topic, "partition": 0},
        {"topic": topic, "partition": 1},
    ]
    assert state.start_time_ms > 0 and state.timeout_ms == 60000
    unknown = describe_txn(conn, "never-used-id")
    assert unknown.error_code == 105  # TRANSACTIONAL_ID_NOT_FOUND

    producers = conn.send(
        DESCRIBE_PRODUCERS, 0, {"topics": [{"name": topic, "partition_indexes": [0, 1]}]}
    )
    p0, p1 = producers.topics[0].partitions
    assert p0.active_producers == ()
    (active,) = p1.active_producers
    assert active.producer_id == producer.producer_id
    assert active.current_txn_start_offset >= 0

    cli = run_cli(broker, "txn", "describe", "--transactional-id", transactional_id, "--json")
    assert cli["state"] == "Ongoing"
    assert cli["producer_id"] == producer.producer_id
    assert {(p["topic"], p["partition"]) for p in cli["partitions"]} == {(topic, 0), (topic, 1)}
    listed_cli = run_cli(broker, "txn", "list", "--state", "Ongoing", "--json")
    assert transactional_id in [t["transactional_id"] for t in listed_cli]
    producers_cli = run_cli(
        broker, "txn", "describe-producers", "--topic", topic, "--partition", "1", "--json"
    )
    assert [p["producer_id"] for p in producers_cli] == [producer.producer_id]

    assert producer.end(commit=False).error_code == NONE
    assert describe_txn(conn, transactional_id).state in (
        "PrepareAbort",
        "CompleteAbort",
    )
    table = subprocess.run(
        [sys.executable, "-m", "rafka", "txn", "list", "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert table.splitlines()[0].split() == [
        "TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"
    ]
    assert transactional_id in table
    producer.close()


# -- transactional offsets ------------------------------------------------------------------------


def test_transactional_offsets_are_unstable_until_the_commit(broker) -> None:
    topic = new_topic(broker, partitions=1)
    transactional_id, group = f"offsets-{topic}", f"group-{topic}"
    producer = RawTxnProducer(broker, transactional_id)
    conn = producer.conn
    added = conn.send(
        ADD_OFFSETS_TO_TXN,
        3,
        {"transactional_id": transactional_id, "producer_id": producer.producer_id,
         "producer_epoch": producer.epoch, "group_id": group},
    )
    assert added.error_code == NONE

    def commit_offsets() -> int | None:
        response = conn.send(
            TXN_OFFSET_COMMIT,
            3,
            {
                "transactional_id": transactional_id, "group_id": group,
                "producer_id": producer.producer_id, "producer_epoch": producer.epoch,
                "generation_id": -1, "member_id": "", "group_instance_id": None,
                "topics": [{"name": topic, "partitions": [
                    {"partition_index": 0, "committed_offset": 42, "committed_leader_epoch": -1,
                     "committed_metadata": "m"}]}],
            },
        )
        code = response.topics[0].partitions[0].error_code
        return None if code == COORDINATOR_LOAD_IN_PROGRESS else code

    assert wait_for(commit_offsets, what="the group coordinator") == NONE

    def fetch(require_stable: bool) -> tuple[int, int]:
        response = conn.send(
            OFFSET_FETCH,
            7,
            {"group_id": group, "topics": [{"name": topic, "partition_indexes": [0]}],
             "require_stable": require_stable},
        )
        partition = response.topics[0].partitions[0]
        return partition.error_code, partition.committed_offset

    assert fetch(require_stable=True) == (UNSTABLE_OFFSET_COMMIT, -1)
    assert fetch(require_stable=False) == (NONE, -1)
    assert producer.end(commit=True).error_code == NONE
    assert fetch(require_stable=True) == (NONE, 42)
    producer.close()


# -- broker-to-broker forms -----------------------------------------------------------------------


def test_batched_add_partitions_and_write_txn_markers(broker) -> None:
    """The broker-to-broker forms: AddPartitionsToTxn v4 (several ids, verify_only) and
    WriteTxnMarkers, which a remote coordinator would send to end a transaction here."""
    topic = new_topic(broker)
    one = RawTxnProducer(broker, f"batched-1-{topic}")
    two = RawTxnProducer(broker, f"batched-2-{topic}")
    conn = one.conn

    def add(verify_only: bool, *producers: RawTxnProducer) -> dict[str, set[int]]:
        response = conn.send(
            ADD_PARTITIONS_TO_TXN,
            4,
            {
                "transactions": [
                    {
                        "transactional_id": p.transactional_id,
                        "producer_id": p.producer_id,
                        "producer_epoch": p.epoch,
                        "verify_only": verify_only,
                        "topics": [{"name": topic, "partitions": [0, 1]}],
                    }
                    for p in producers
                ]
            },
        )
        assert response.error_code == NONE
        return {
            r.transactional_id: {p.partition_error_code for t in r.topic_results
                                 for p in t.results_by_partition}
            for r in response.results_by_transaction
        }

    assert add(True, one, two) == {one.transactional_id: {INVALID_TXN_STATE},
                                   two.transactional_id: {INVALID_TXN_STATE}}
    assert add(False, one, two) == {one.transactional_id: {NONE}, two.transactional_id: {NONE}}
    assert add(True, one) == {one.transactional_id: {NONE}}
    assert one.produce(topic, 0, [b"one"]) == NONE
    assert two.produce(topic, 0, [b"two"]) == NONE

    # An ABORT marker for producer one, as the coordinator's marker channel writes it.
    coordinator_epoch = 1_000_000  # at least the real coordinator's epoch
    written = conn.send(
        27,
        1,
        {
            "markers": [
                {
                    "producer_id": one.producer_id,
                    "producer_epoch": one.epoch,
                    "transaction_result": False,
                    "topics": [{"name": topic, "partition_indexes": [0]}],
                    "coordinator_epoch": coordinator_epoch,
                }
            ]
        },
    )
    (result,) = written.markers
    assert result.producer_id == one.producer_id
    assert [(p.partition_index, p.error_code) for p in result.topics[0].partitions] == [(0, NONE)]
    # Producer two's transaction still holds the LSO; once it commits, only its record shows.
    assert two.end(commit=True).error_code == NONE
    assert consume_all(broker, topic, 2, "read_committed", expect=1) == ["two"]
    one.close()
    two.close()
