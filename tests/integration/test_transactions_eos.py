"""Exactly-once under crashes: a consume-transform-produce pipeline killed at random points, and
a broker killed with SIGKILL while transactions commit.

The client programs run as child processes of this very file (`python test_transactions_eos.py
pipeline|committer ...`), so that SIGKILL hits them, not the test.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

QUIET = {"log_level": 0}
INPUTS = 6000
SOURCE_PARTITIONS = 3
BATCH = 20  # records per transaction
STEPS = ("started", "begun", "produced", "offsets", "committed")


# -- the client programs (child processes) --------------------------------------------------


def run_pipeline(bootstrap: str, source: str, sink: str, group: str, transactional_id: str) -> int:
    """Read `source`, write every record to `sink` and commit the offsets in one transaction
    per batch; exit 0 once every input is committed. Prints each step, so the test can kill
    it at a chosen one."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
         "transaction.timeout.ms": 10000, **QUIET}
    )
    producer.init_transactions(30)  # fences and aborts what a killed predecessor left open
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **QUIET,
        }
    )
    partitions = [TopicPartition(source, p) for p in range(SOURCE_PARTITIONS)]
    consumer.assign(partitions)  # starts at the committed offsets
    step("started", 0)
    n = 0
    while True:
        messages = [m for m in consumer.consume(num_messages=BATCH, timeout=0.3) if not m.error()]
        if not messages:
            committed = consumer.committed(partitions, 10)
            ends = [consumer.get_watermark_offsets(tp, 10)[1] for tp in partitions]
            if [tp.offset for tp in committed] == ends:
                return 0
            continue
        producer.begin_transaction()
        step("begun", n)
        for m in messages:
            producer.produce(sink, key=m.key(), value=m.value(), partition=m.partition())
        producer.flush(30)
        step("produced", n)
        positions = [tp for tp in consumer.position(partitions) if tp.offset >= 0]
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        step("offsets", n)
        producer.commit_transaction(30)
        step("committed", n)
        n += 1


def step(name: str, n: int) -> None:
    print(f"{name} {n}", flush=True)


def run_committer(bootstrap: str, topic: str, transactional_id: str, label: str) -> int:
    """Commit transactions of 2 records on each of 3 partitions until killed; print each one
    whose commit returned."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
         "transaction.timeout.ms": 3000, "message.timeout.ms": 3000, **QUIET}
    )
    producer.init_transactions(30)
    n = 0
    while True:
        txn = f"{label}-{n}"
        producer.begin_transaction()
        for partition in range(3):
            for i in range(2):
                producer.produce(topic, value=f"{txn}:{partition}:{i}".encode(),
                                 partition=partition)
        producer.commit_transaction(30)
        print(f"committed {txn}", flush=True)
        n += 1


# -- helpers ---------------------------------------------------------------------------------------


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(15)


def read_all(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[str]:
    """Every value below the end offsets (the LSO for read_committed) at the time of the call."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:6]}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            **QUIET,
        }
    )
    tps = [TopicPartition(topic, p, 0) for p in range(partitions)]
    consumer.assign(tps)
    ends = {tp.partition: consumer.get_watermark_offsets(tp, 10)[1] for tp in tps}
    done = {p for p, end in ends.items() if end == 0}
    values: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(done) < partitions and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=0.2):
                if m.error() is None:
                    values.append(m.value().decode())
            for tp in consumer.position(tps):
                if tp.offset >= ends[tp.partition]:
                    done.add(tp.partition)
    finally:
        consumer.close()
    assert len(done) == partitions, f"did not reach the end offsets {ends}"
    return values


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def wait_stable(bootstrap: str, topic: str, partitions: int, timeout: float = 30) -> None:
    """Until no transaction is open on the topic: read_committed and read_uncommitted end
    offsets agree."""
    from rafka.cli.kafka_client import KafkaClient

    deadline = time.monotonic() + timeout
    with KafkaClient(bootstrap) as client:
        tps = [(topic, p) for p in range(partitions)]
        while time.monotonic() < deadline:
            if _stable_offsets(client, tps) == client.list_offsets(tps, -1):
                return
            time.sleep(0.1)
    raise AssertionError(f"transactions on {topic} still open after {timeout} s")


def _stable_offsets(client, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    response = client.call(
        2,
        {
            "replica_id": -1,
            "isolation_level": 1,
            "topics": [
                {"name": tps[0][0], "partitions": [
                    {"partition_index": p, "current_leader_epoch": -1, "timestamp": -1}
                    for _, p in tps
                ]}
            ],
        },
    )
    return {(t.name, p.partition_index): p.offset for t in response.topics for p in t.partitions}


# -- 2. consume-transform-produce, killed 20 times ----------------------------------------


@pytest.mark.timeout(240)
def test_pipeline_killed_at_random_points_writes_every_input_exactly_once(broker_factory) -> None:
    broker = broker_factory().start()
    bootstrap = broker.bootstrap
    source, sink = f"source-{uuid.uuid4().hex[:6]}", f"sink-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, source, SOURCE_PARTITIONS)
    create_topic(bootstrap, sink, SOURCE_PARTITIONS)
    feeder = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **QUIET})
    for i in range(INPUTS):
        feeder.produce(source, value=f"in-{i}".encode(), partition=i % SOURCE_PARTITIONS)
    assert feeder.flush(30) == 0

    rng = random.Random(0x5EED)
    group, transactional_id = f"pipeline-{uuid.uuid4().hex[:6]}", "pipeline-1"
    args = ("pipeline", bootstrap, source, sink, group, transactional_id)
    for _ in range(20):
        # Kill it at a random step of a random transaction, a few ms after it got there:
        # before, during and after produce, the offset commit and the commit itself.
        worker = spawn(*args)
        name = rng.choice(STEPS)
        target = f"{name} {0 if name == 'started' else rng.randint(0, 8)}"
        assert worker.stdout is not None
        for line in worker.stdout:
            if line.strip() == target:
                break
        time.sleep(rng.uniform(0, 0.03))
        worker.kill()
        worker.communicate()
        assert worker.returncode != 0, "the pipeline ran out of input before the last kill"
    final = spawn(*args)
    assert final.wait(120) == 0

    wait_stable(bootstrap, sink, SOURCE_PARTITIONS)
    output = Counter(read_all(bootstrap, sink, SOURCE_PARTITIONS, "read_committed"))
    duplicates = {v: n for v, n in output.items() if n > 1}
    missing = {f"in-{i}" for i in range(INPUTS)} - set(output)
    assert not duplicates, f"{len(duplicates)} inputs written more than once, e.g. " + str(
        list(duplicates.items())[:5]
    )
    assert not missing, f"{len(missing)} inputs lost, e.g. {sorted(missing)[:5]}"
    assert sum(output.values()) == INPUTS
    # The kills left aborted attempts behind: visible to read_uncommitted readers only.
    assert len(read_all(bootstrap, sink, SOURCE_PARTITIONS, "read_uncommitted")) > INPUTS


# -- 5. broker SIGKILL in the middle of commits --------------------------------------------------


@pytest.mark.timeout(180)
def test_broker_killed_during_commits_leaves_no_transaction_half_visible(
    broker_factory, tmp_path: Path
) -> None:
    broker = broker_factory(
        tmp_path / "data",
        **{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"},
    ).start()
    topic = f"atomic-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, 3)
    rng = random.Random(0xC0FFEE)
    acknowledged: set[str] = set()
    for round_ in range(4):
        committer = spawn("committer", broker.bootstrap, topic, "committer-1", f"r{round_}")
        time.sleep(rng.uniform(0.8, 2.0))
        broker.kill()
        committer.kill()
        output, _ = committer.communicate()
        acknowledged |= {line.split()[1] for line in output.splitlines()
                         if line.startswith("committed ")}
        broker.start()
    assert len(acknowledged) > 10, "too few commits to mean anything"

    # A new instance fences the last one and aborts whatever it left open.
    successor = Producer({"bootstrap.servers": broker.bootstrap,
                          "transactional.id": "committer-1", **QUIET})
    successor.init_transactions(30)
    wait_stable(broker.bootstrap, topic, 3)

    visible = Counter(v.split(":")[0] for v in read_all(broker.bootstrap, topic, 3,
                                                         "read_committed"))
    torn = {txn: n for txn, n in visible.items() if n != 6}
    assert not torn, f"half-visible transactions: {torn}"
    assert acknowledged <= set(visible), sorted(acknowledged - set(visible))[:5]


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    programs = {"pipeline": run_pipeline, "committer": run_committer}
    sys.exit(programs[command](*rest))
