"""The transaction coordinator, driven in-process against a real broker and logs.

Each test starts a Broker on a temporary directory: `__transaction_state`, the data topic and
`__consumer_offsets` are real Raft partitions with fsyncs and high watermarks. Restart tests
start a second Broker on the same directory, which must rebuild everything from the logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rafka.broker.broker import Broker
from rafka.broker.config import BrokerConfig
from rafka.broker.coordinator.groups.coordinator import CoordinatorError
from rafka.broker.coordinator.groups.offset_store import OffsetCommit
from rafka.broker.coordinator.txn import completion as completion_module
from rafka.broker.coordinator.txn import coordinator as coordinator_module
from rafka.broker.coordinator.txn.records import TxnState
from rafka.broker.coordinator.txn_offset_commit import txn_offset_commit
from rafka.broker.handlers.txn import check_transactional_produce
from rafka.broker.node import BrokerEndpoint
from rafka.broker.partition.append import AppendError
from rafka.broker.partition.clock import now_ms
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import build_batch, decode_batch
from rafka.storage.txn_index import read_txn_marker

pytestmark = pytest.mark.timeout(60)

NONE = ErrorCode.none
TOPIC = "data"


class Clock:
    def __init__(self) -> None:
        self.now = now_ms()

    def __call__(self) -> int:
        return self.now


async def start_broker(path: Path, clock: Clock | None = None) -> Broker:
    broker = Broker(BrokerConfig.from_dict({"log.dirs": str(path)}))
    if clock is not None:
        broker.txn.wall_clock = clock
    await broker.start()
    await broker.join(BrokerEndpoint(broker.node_id, "localhost", 9092))
    found = await broker.txn.find_coordinator("any")
    assert found.error is NONE
    await broker.txn.wait_loaded()
    await broker.groups.ensure_offsets_topic()
    await broker.groups.wait_loaded()
    if broker.topic(TOPIC) is None:
        await broker.create_topic(TOPIC, 3, 1)
    return broker


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def broker(tmp_path: Path, clock: Clock) -> AsyncIterator[Broker]:
    b = await start_broker(tmp_path / "data", clock)
    yield b
    await b.stop()


async def init(broker: Broker, tid: str = "tx", timeout_ms: int = 60000) -> tuple[int, int]:
    for _ in range(100):
        result = await broker.txn.init_producer_id(tid, timeout_ms)
        if result.error is not ErrorCode.concurrent_transactions:
            break
        await asyncio.sleep(0.02)
    assert result.error is NONE, result
    return result.producer_id, result.producer_epoch


class Sequences:
    def __init__(self) -> None:
        self.next: dict[tuple[int, int, int], int] = {}

    async def produce(
        self, broker: Broker, tid: str | None, pid: int, epoch: int, partition: int,
        values: list[bytes], version: int = 11,
    ) -> int:
        """A transactional produce as the Produce handler runs it; the base offset."""
        key = (pid, epoch, partition)
        sequence = self.next.get(key, 0)
        batch = build_batch(
            [(None, v, (), 1) for v in values],
            producer_id=pid, producer_epoch=epoch, base_sequence=sequence, is_transactional=True,
        )
        target = broker.partition(TOPIC, partition)
        code, message = await check_transactional_produce(broker, tid, target, batch, version)
        if code is not NONE:
            raise AppendError(code, message or "")
        result = target.append_records(batch, max_message_bytes=1 << 20, log_append_time=False)
        self.next[key] = sequence + len(values)
        return result.base_offset


async def committed(broker: Broker, partition: int) -> None:
    p = broker.partition(TOPIC, partition)
    await p.wait_committed(p.log_end_offset - 1)


def markers(broker: Broker, topic: str, partition: int) -> list[tuple[int, int, int, bool]]:
    """(producer id, epoch, coordinator epoch, commit) of every transaction marker."""
    found = []
    p = broker.partition(topic, partition)
    for header, batch in p.log.iter_batches(0):
        if header.is_control and header.producer_id >= 0:
            marker = read_txn_marker(batch)
            assert marker is not None
            found.append((header.producer_id, header.producer_epoch, marker.coordinator_epoch,
                          marker.control_type == 1))
    return found


def values_read_committed(broker: Broker, partition: int) -> list[bytes]:
    """What a read_committed consumer gets, by the consumers' algorithm: data below the LSO;
    a producer's transactional batches are dropped from the first offset of an aborted
    transaction of it up to its ABORT marker."""
    p = broker.partition(TOPIC, partition)
    stable = p.last_stable_offset
    aborted = sorted(p.aborted_transactions(0, stable), key=lambda a: a[1])
    aborting: set[int] = set()
    out = []
    for header, batch in p.log.iter_batches(0):
        if header.base_offset >= stable:
            break
        while aborted and aborted[0][1] <= header.last_offset:
            aborting.add(aborted.pop(0)[0])
        if header.is_control:
            marker = read_txn_marker(batch) if header.producer_id >= 0 else None
            if marker is not None and marker.control_type == 0:
                aborting.discard(header.producer_id)
            continue
        if header.is_transactional and header.producer_id in aborting:
            continue
        out += [r.value for r in decode_batch(batch)[1]]
    return out


# -- InitProducerId -------------------------------------------------------------------------------


async def test_init_producer_id_allocates_then_bumps_the_epoch(broker: Broker) -> None:
    pid, epoch = await init(broker)
    assert epoch == 0
    assert await init(broker) == (pid, 1)
    other_pid, _ = await init(broker, "other")
    assert other_pid != pid
    assert (await broker.txn.init_producer_id("", 1000)).error is ErrorCode.invalid_request
    too_long = await broker.txn.init_producer_id("tx", 900001)
    assert too_long.error is ErrorCode.invalid_transaction_timeout
    # KIP-360: a producer with the current id and epoch gets a bump; a stale one is fenced;
    # the retry of a bump that succeeded gets the same answer again.
    bumped = await broker.txn.init_producer_id("tx", 1000, pid, 1)
    assert (bumped.error, bumped.producer_epoch) == (NONE, 2)
    retry = await broker.txn.init_producer_id("tx", 1000, pid, 1)
    assert (retry.error, retry.producer_epoch) == (NONE, 2)
    stale = await broker.txn.init_producer_id("tx", 1000, pid, 0)
    assert stale.error is ErrorCode.producer_fenced


async def test_epoch_exhaustion_moves_to_a_new_producer_id(broker: Broker) -> None:
    pid, _ = await init(broker)
    shard = broker.txn.shard_for("tx")
    shard.txns["tx"].producer_epoch = 32766
    new_pid, epoch = await init(broker)
    assert (new_pid != pid, epoch) == (True, 0)
    assert shard.txns["tx"].previous_producer_id == pid


# -- a transaction's life ----------------------------------------------------------------------


async def test_commit_makes_data_stable_and_visible(broker: Broker) -> None:
    pid, epoch = await init(broker)
    seq = Sequences()
    with pytest.raises(AppendError) as refused:  # KIP-890: not added to the transaction yet
        await seq.produce(broker, "tx", pid, epoch, 0, [b"early"])
    assert refused.value.code is ErrorCode.invalid_txn_state
    assert await broker.txn.add_partitions("tx", pid, epoch, [(TOPIC, 0), (TOPIC, 1)]) is NONE
    assert broker.txn.describe("tx")[1].state is TxnState.ONGOING
    first = await seq.produce(broker, "tx", pid, epoch, 0, [b"a", b"b"])
    await seq.produce(broker, "tx", pid, epoch, 1, [b"c"])
    await committed(broker, 0)
    p0 = broker.partition(TOPIC, 0)
    assert p0.last_stable_offset == first < p0.high_watermark
    assert values_read_committed(broker, 0) == []

    result = await broker.txn.end_txn("tx", pid, epoch, commit=True)
    assert (result.error, result.producer_id, result.producer_epoch) == (NONE, pid, epoch)
    # EndTxn answers once the markers are committed: the data is visible right away.
    assert p0.last_stable_offset == p0.high_watermark
    assert values_read_committed(broker, 0) == [b"a", b"b"]
    assert values_read_committed(broker, 1) == [b"c"]
    coordinator_epoch = broker.txn.shard_for("tx").coordinator_epoch
    assert markers(broker, TOPIC, 0) == [(pid, epoch, coordinator_epoch, True)]
    assert markers(broker, TOPIC, 2) == []  # never part of the transaction
    await asyncio.sleep(0.05)
    assert broker.txn.describe("tx")[1].state is TxnState.COMPLETE_COMMIT
    assert broker.txn.describe("tx")[1].partitions == set()
    # TV1: the retry of a successful EndTxn succeeds again; the other outcome is refused.
    assert (await broker.txn.end_txn("tx", pid, epoch, commit=True)).error is NONE
    abort = await broker.txn.end_txn("tx", pid, epoch, commit=False)
    assert abort.error is ErrorCode.invalid_txn_state


async def test_abort_hides_data_and_indexes_the_range(broker: Broker) -> None:
    pid, epoch = await init(broker)
    seq = Sequences()
    assert await broker.txn.add_partitions("tx", pid, epoch, [(TOPIC, 0)]) is NONE
    first = await seq.produce(broker, "tx", pid, epoch, 0, [b"x"])
    assert (await broker.txn.end_txn("tx", pid, epoch, commit=False)).error is NONE
    p0 = broker.partition(TOPIC, 0)
    assert p0.aborted_transactions(0, p0.last_stable_offset) == [(pid, first)]
    assert p0.aborted_transactions(first + 2, p0.last_stable_offset) == []
    assert values_read_committed(broker, 0) == []
    # A new transaction of the same producer continues on the partition.
    assert await broker.txn.add_partitions("tx", pid, epoch, [(TOPIC, 0)]) is NONE
    await seq.produce(broker, "tx", pid, epoch, 0, [b"y"])
    assert (await broker.txn.end_txn("tx", pid, epoch, commit=True)).error is NONE
    assert values_read_committed(broker, 0) == [b"y"]


async def test_requests_are_checked_against_the_producer_and_state(broker: Broker) -> None:
    pid, epoch = await init(broker)
    add = broker.txn.add_partitions
    assert await add("tx", pid + 1, epoch, [(TOPIC, 0)]) is ErrorCode.invalid_producer_id_mapping
    assert await add("tx", pid, epoch + 1, [(TOPIC, 0)]) is ErrorCode.producer_fenced
    assert await add("nope", pid, epoch, [(TOPIC, 0)]) is ErrorCode.invalid_producer_id_mapping
    empty_end = await broker.txn.end_txn("tx", pid, epoch, commit=True)
    assert empty_end.error is ErrorCode.invalid_txn_state
    fenced_end = await broker.txn.end_txn("tx", pid, epoch - 1, commit=True)
    assert fenced_end.error is ErrorCode.producer_fenced


async def test_new_instance_aborts_the_open_transaction_under_a_bumped_epoch(
    broker: Broker,
) -> None:
    pid, epoch = await init(broker)
    seq = Sequences()
    assert await broker.txn.add_partitions("tx", pid, epoch, [(TOPIC, 0), (TOPIC, 1)]) is NONE
    await seq.produce(broker, "tx", pid, epoch, 0, [b"zombie"])
    # The first InitProducerId of the new instance starts the abort and asks it to retry.
    first = await broker.txn.init_producer_id("tx", 60000)
    assert first.error is ErrorCode.concurrent_transactions
    new_pid, new_epoch = await init(broker)
    assert (new_pid, new_epoch) == (pid, epoch + 2)
    coordinator_epoch = broker.txn.shard_for("tx").coordinator_epoch
    assert markers(broker, TOPIC, 0) == [(pid, epoch + 1, coordinator_epoch, False)]
    assert markers(broker, TOPIC, 1) == [(pid, epoch + 1, coordinator_epoch, False)]
    # The zombie is refused everywhere: by the partitions (they saw the bumped epoch) and by
    # the coordinator.
    with pytest.raises(AppendError) as refused:
        broker.partition(TOPIC, 0).append_records(
            build_batch([(None, b"late", (), 1)], producer_id=pid, producer_epoch=epoch,
                        base_sequence=1, is_transactional=True),
            max_message_bytes=1 << 20, log_append_time=False,
        )
    assert refused.value.code is ErrorCode.invalid_producer_epoch
    assert await broker.txn.add_partitions("tx", pid, epoch, [(TOPIC, 2)]) is (
        ErrorCode.producer_fenced
    )
    assert (await broker.txn.end_txn("tx", pid, epoch, True)).error is ErrorCode.producer_fenced
    assert values_read_committed(broker, 0) == []


async def test_timed_out_transaction_is_aborted(broker: Broker, clock: Clock) -> None:
    pid, epoch = await init(broker, timeout_ms=1000)
    seq = Sequences()
    assert await broker.txn.add_partitions("tx", pid, epoch, [(TOPIC, 0)]) is NONE
    await seq.produce(broker, "tx", pid, epoch, 0, [b"slow"])
    await committed(broker, 0)
    p0 = broker.partition(TOPIC, 0)
    assert p0.last_stable_offset < p0.high_watermark
    clock.now += 1000
    assert broker.txn.completion.abort_timed_out_transactions() == 0  # not past the timeout yet
    clock.now += 1
    assert broker.txn.completion.abort_timed_out_transactions() == 1
    for _ in range(200):
        if broker.txn.describe("tx")[1].state is TxnState.COMPLETE_ABORT:
            break
        await asyncio.sleep(0.01)
    txn = broker.txn.describe("tx")[1]
    assert (txn.state, txn.producer_epoch) == (TxnState.COMPLETE_ABORT, epoch + 1)
    assert p0.last_stable_offset == p0.high_watermark
    assert values_read_committed(broker, 0) == []


# -- restarts ------------------------------------------------------------------------------------


async def test_decided_transaction_is_completed_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data"
    broker = await start_broker(path)
    pid, epoch = await init(broker)
    seq = Sequences()
    assert await broker.txn.add_partitions("tx", pid, epoch, [(TOPIC, 0), (TOPIC, 1)]) is NONE
    await seq.produce(broker, "tx", pid, epoch, 0, [b"a"])
    await seq.produce(broker, "tx", pid, epoch, 1, [b"b"])

    async def stuck(*args: Any, **kwargs: Any) -> bool:  # the markers never get written
        await asyncio.Event().wait()
        return False

    monkeypatch.setattr(completion_module, "write_markers", stuck)
    monkeypatch.setattr(coordinator_module, "END_TXN_MARKER_WAIT_S", 0.01)
    assert (await broker.txn.end_txn("tx", pid, epoch, commit=True)).error is NONE
    assert broker.txn.describe("tx")[1].state is TxnState.PREPARE_COMMIT
    await broker.stop()
    monkeypatch.undo()

    broker = await start_broker(path)
    try:
        for _ in range(200):
            code, txn = broker.txn.describe("tx")
            if code is NONE and txn.state is TxnState.COMPLETE_COMMIT:
                break
            await asyncio.sleep(0.01)
        assert txn.state is TxnState.COMPLETE_COMMIT
        assert values_read_committed(broker, 0) == [b"a"]
        assert values_read_committed(broker, 1) == [b"b"]
        assert [m[:2] for m in markers(broker, TOPIC, 0)] == [(pid, epoch)]
        # The coordinator epoch grew with the new leader epoch of the state partition.
        assert markers(broker, TOPIC, 0)[0][2] == broker.txn.shard_for("tx").coordinator_epoch
    finally:
        await broker.stop()


async def test_open_transaction_and_aborted_ranges_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "data"
    broker = await start_broker(path)
    pid, epoch = await init(broker)
    seq = Sequences()
    assert await broker.txn.add_partitions("tx", pid, epoch, [(TOPIC, 0)]) is NONE
    aborted_at = await seq.produce(broker, "tx", pid, epoch, 0, [b"gone"])
    assert (await broker.txn.end_txn("tx", pid, epoch, commit=False)).error is NONE
    assert await broker.txn.add_partitions("tx", pid, epoch, [(TOPIC, 0)]) is NONE
    open_at = await seq.produce(broker, "tx", pid, epoch, 0, [b"open"])
    await committed(broker, 0)
    await broker.stop()

    broker = await start_broker(path)
    try:
        txn = broker.txn.describe("tx")[1]
        assert (txn.state, txn.producer_id, txn.producer_epoch) == (TxnState.ONGOING, pid, epoch)
        assert txn.partitions == {(TOPIC, 0)}
        p0 = broker.partition(TOPIC, 0)
        assert p0.last_stable_offset == open_at
        assert p0.aborted_transactions(0, p0.high_watermark) == [(pid, aborted_at)]
        assert (await broker.txn.end_txn("tx", pid, epoch, commit=True)).error is NONE
        assert values_read_committed(broker, 0) == [b"open"]
    finally:
        await broker.stop()


# -- transaction version 2 (KIP-890 part 2) ------------------------------------------------------


async def test_tv2_end_bumps_the_epoch_and_fences_the_finished_transaction(
    broker: Broker,
) -> None:
    pid, epoch = await init(broker)
    seq = Sequences()
    assert await broker.txn.add_partitions("tx", pid, epoch, [(TOPIC, 0)]) is NONE
    await seq.produce(broker, "tx", pid, epoch, 0, [b"one"])
    result = await broker.txn.end_txn("tx", pid, epoch, True, transaction_version=2)
    assert (result.error, result.producer_id, result.producer_epoch) == (NONE, pid, epoch + 1)
    coordinator_epoch = broker.txn.shard_for("tx").coordinator_epoch
    assert markers(broker, TOPIC, 0) == [(pid, epoch + 1, coordinator_epoch, True)]
    # A retry with the old epoch gets the same answer; a late produce of the old epoch is
    # refused by the partition, so it cannot slip into the next transaction.
    await asyncio.sleep(0.05)
    retry = await broker.txn.end_txn("tx", pid, epoch, True, transaction_version=2)
    assert (retry.error, retry.producer_epoch) == (NONE, epoch + 1)
    late = build_batch([(None, b"late", (), 1)], producer_id=pid, producer_epoch=epoch,
                       base_sequence=1, is_transactional=True)
    with pytest.raises(AppendError) as refused:
        broker.partition(TOPIC, 0).append_records(late, max_message_bytes=1 << 20,
                                                  log_append_time=False)
    assert refused.value.code is ErrorCode.invalid_producer_epoch
    # The next transaction runs under the new epoch; an empty abort still bumps.
    assert await broker.txn.add_partitions("tx", pid, epoch + 1, [(TOPIC, 0)]) is NONE
    await seq.produce(broker, "tx", pid, epoch + 1, 0, [b"two"])
    assert (await broker.txn.end_txn("tx", pid, epoch + 1, True, 2)).producer_epoch == epoch + 2
    empty = await broker.txn.end_txn("tx", pid, epoch + 2, False, 2)
    assert (empty.error, empty.producer_epoch) == (NONE, epoch + 3)
    assert values_read_committed(broker, 0) == [b"one", b"two"]


async def test_tv2_produce_adds_its_partition_itself(broker: Broker) -> None:
    pid, epoch = await init(broker)
    seq = Sequences()
    # Produce v12 needs no AddPartitionsToTxn; concurrent first writes are added in order.
    offsets = await asyncio.gather(
        seq.produce(broker, "tx", pid, epoch, 0, [b"a"], version=12),
        seq.produce(broker, "tx", pid, epoch, 1, [b"b"], version=12),
    )
    assert offsets[0] >= 0 and offsets[1] >= 0
    txn = broker.txn.describe("tx")[1]
    assert (txn.state, txn.partitions) == (TxnState.ONGOING, {(TOPIC, 0), (TOPIC, 1)})
    result = await broker.txn.end_txn("tx", pid, epoch, True, transaction_version=2)
    assert result.producer_epoch == epoch + 1
    # The old epoch can neither add itself again nor write: the partition saw the bump.
    with pytest.raises(AppendError) as refused:
        await seq.produce(broker, "tx", pid, epoch, 2, [b"late"], version=12)
    assert refused.value.code is ErrorCode.invalid_producer_epoch
    assert (TOPIC, 2) not in broker.txn.describe("tx")[1].partitions
    await seq.produce(broker, "tx", pid, epoch + 1, 2, [b"c"], version=12)
    assert (await broker.txn.end_txn("tx", pid, epoch + 1, True, 2)).error is NONE
    assert values_read_committed(broker, 0) == [b"a"]
    assert values_read_committed(broker, 2) == [b"c"]


# -- TxnOffsetCommit ------------------------------------------------------------------------------


async def offsets_commit(
    broker: Broker, pid: int, epoch: int, offset: int, version: int = 3
) -> list[ErrorCode]:
    """TxnOffsetCommit of offset `offset` for partition 0, as the handler answers it."""
    try:
        return await txn_offset_commit(
            broker,
            transactional_id="tx",
            group_id="g",
            producer_id=pid,
            producer_epoch=epoch,
            generation=-1,
            member_id="",
            group_instance_id=None,
            commits=[OffsetCommit(TOPIC, 0, offset, -1, "m")],
            api_version=version,
        )
    except CoordinatorError as exc:
        return [exc.code]


async def fetched(broker: Broker) -> int | None:
    (found,) = await broker.groups.offsets.fetch("g", [(TOPIC, 0)])
    return None if found[2] is None else found[2].offset


async def test_txn_offsets_apply_on_commit_only(tmp_path: Path) -> None:
    path = tmp_path / "data"
    broker = await start_broker(path)
    pid, epoch = await init(broker)
    # Without AddOffsetsToTxn the group's partition is not in the transaction.
    assert await offsets_commit(broker, pid, epoch, 5) == [ErrorCode.invalid_txn_state]
    offsets_tp = broker.txn.offsets_partition_for("g")
    assert await broker.txn.add_partitions("tx", pid, epoch, [offsets_tp]) is NONE
    assert await offsets_commit(broker, pid, epoch, 5) == [NONE]
    shard = broker.groups.shard_for("g")
    assert shard.pending_txn_offsets.has_pending("g", TOPIC, 0)
    assert await fetched(broker) is None
    assert (await broker.txn.end_txn("tx", pid, epoch, commit=True)).error is NONE
    assert await fetched(broker) == 5
    assert not shard.pending_txn_offsets.has_pending("g", TOPIC, 0)

    assert await broker.txn.add_partitions("tx", pid, epoch, [offsets_tp]) is NONE
    assert await offsets_commit(broker, pid, epoch, 9) == [NONE]
    assert (await broker.txn.end_txn("tx", pid, epoch, commit=False)).error is NONE
    assert await fetched(broker) == 5
    # A fenced epoch cannot commit offsets: the transactions v1 verification answers
    # INVALID_PRODUCER_EPOCH at every version, as Kafka 4.3.1 does.
    stale = await offsets_commit(broker, pid, epoch - 1, 7)
    assert stale == [ErrorCode.invalid_producer_epoch]
    assert await offsets_commit(broker, pid, epoch - 1, 7, version=2) == [
        ErrorCode.invalid_producer_epoch
    ]
    # One left pending across a restart: replayed as pending, applied by the commit.
    assert await broker.txn.add_partitions("tx", pid, epoch, [offsets_tp]) is NONE
    assert await offsets_commit(broker, pid, epoch, 12) == [NONE]
    await broker.stop()

    broker = await start_broker(path)
    try:
        assert await fetched(broker) == 5
        assert broker.groups.shard_for("g").pending_txn_offsets.has_pending("g", TOPIC, 0)
        assert (await broker.txn.end_txn("tx", pid, epoch, commit=True)).error is NONE
        assert await fetched(broker) == 12
    finally:
        await broker.stop()
    broker = await start_broker(path)
    try:
        assert await fetched(broker) == 12
    finally:
        await broker.stop()


async def test_txn_offset_commit_v5_adds_the_partition_itself(broker: Broker) -> None:
    pid, epoch = await init(broker)
    assert await offsets_commit(broker, pid, epoch, 3, version=5) == [NONE]
    assert broker.txn.offsets_partition_for("g") in broker.txn.describe("tx")[1].partitions
    assert (await broker.txn.end_txn("tx", pid, epoch, True, 2)).error is NONE
    assert await fetched(broker) == 3


# -- listing and expiration ------------------------------------------------------------------------


async def test_list_filters_and_id_expiration(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "data"
    broker = await start_broker(path, clock)
    pid, epoch = await init(broker, "open")
    assert await broker.txn.add_partitions("open", pid, epoch, [(TOPIC, 0)]) is NONE
    idle_pid, _ = await init(broker, "idle")
    code, unknown, txns = broker.txn.list_transactions({"Ongoing", "Nope"}, set())
    assert (code, unknown, [t.transactional_id for t in txns]) == (NONE, ["Nope"], ["open"])
    _, _, by_pid = broker.txn.list_transactions(set(), {idle_pid})
    assert [t.transactional_id for t in by_pid] == ["idle"]
    _, _, pattern = broker.txn.list_transactions(set(), set(), pattern="id.*")
    assert [t.transactional_id for t in pattern] == ["idle"]
    clock.now += 5000
    _, _, long_running = broker.txn.list_transactions(set(), set(), min_duration_ms=4000)
    assert [t.transactional_id for t in long_running] == ["open"]

    clock.now += broker.txn.config.id_expiration_ms
    assert broker.txn.completion.remove_expired_transactional_ids() == 1  # only the idle one
    for _ in range(100):
        if broker.txn.describe("idle")[0] is ErrorCode.transactional_id_not_found:
            break
        await asyncio.sleep(0.01)
    assert broker.txn.describe("idle")[0] is ErrorCode.transactional_id_not_found
    await broker.stop()
    broker = await start_broker(path, clock)
    try:
        assert broker.txn.describe("idle")[0] is ErrorCode.transactional_id_not_found
        assert broker.txn.describe("open")[1].state is TxnState.ONGOING
    finally:
        await broker.stop()
