"""`__share_group_state` records (Kafka's ShareSnapshot/ShareUpdate format), their replay, and
the share-partition state they restore."""

from __future__ import annotations

import struct
import uuid

import pytest

from rafka.broker.share.partition_state import (
    AckBatch,
    AckType,
    BatchSpan,
    RecordState,
    SharePartitionState,
)
from rafka.broker.share.state_coordinator import replay
from rafka.broker.share.state_records import (
    ACKNOWLEDGED,
    ARCHIVED,
    AVAILABLE,
    SNAPSHOT,
    UPDATE,
    PersistedShareState,
    ShareRecordError,
    ShareStateValue,
    StateBatch,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    to_batches,
)

TOPIC = uuid.UUID("12345678-1234-5678-1234-567812345678")
KEY = ("g", TOPIC, 3)


def test_key_layout_is_kafkas() -> None:
    raw = encode_key(UPDATE, KEY)
    assert raw == struct.pack(">hh", 1, 1) + b"g" + TOPIC.bytes + struct.pack(">i", 3)
    assert decode_key(raw) == (UPDATE, KEY)
    assert decode_key(encode_key(SNAPSHOT, KEY)) == (SNAPSHOT, KEY)
    with pytest.raises(ShareRecordError):
        decode_key(struct.pack(">h", 7) + raw[2:])
    with pytest.raises(ShareRecordError):
        decode_key(raw[:-1])


def test_values_round_trip() -> None:
    batches = (StateBatch(10, 12, ACKNOWLEDGED, 1), StateBatch(13, 13, AVAILABLE, 2))
    snapshot = ShareStateValue(True, 2, 5, 10, batches, state_epoch=1, create_timestamp=7,
                               write_timestamp=8)  # fmt: skip
    assert decode_value(SNAPSHOT, encode_value(snapshot)) == snapshot
    update = ShareStateValue(False, 2, 5, 11, batches[:1], delivery_complete_count=3)
    assert decode_value(UPDATE, encode_value(update)) == update
    # Update layout: version, snapshot epoch, leader epoch, start offset, compact array.
    raw = encode_value(ShareStateValue(False, 0, 4, 9, ()))
    assert raw == struct.pack(">hiiq", 0, 0, 4, 9) + b"\x01\x00"
    with pytest.raises(ShareRecordError):
        decode_value(UPDATE, raw[:-2])
    bad_state = ShareStateValue(False, 0, 4, 9, (StateBatch(1, 1, 3, 1),))
    with pytest.raises(ShareRecordError):
        decode_value(UPDATE, encode_value(bad_state))


def test_to_batches_runs() -> None:
    records = {5: (2, 1), 6: (2, 1), 7: (4, 1), 9: (0, 2)}
    assert to_batches(records) == (
        StateBatch(5, 6, 2, 1),
        StateBatch(7, 7, 4, 1),
        StateBatch(9, 9, 0, 2),
    )


def test_replay_snapshot_then_updates() -> None:
    states: dict = {}
    updates: dict = {}
    replay(states, updates, KEY, ShareStateValue(False, 0, 1, 0, (StateBatch(0, 0, 2, 1),)))
    assert states == {}  # an update without its snapshot is skipped
    replay(states, updates, KEY, ShareStateValue(True, 0, 1, 0, ()))
    replay(states, updates, KEY, ShareStateValue(False, 0, 1, 0, (StateBatch(2, 4, 2, 1),)))
    replay(states, updates, KEY, ShareStateValue(False, 0, 1, 0, (StateBatch(1, 1, 0, 3),)))
    replay(states, updates, KEY, ShareStateValue(False, 0, 2, 3, (StateBatch(4, 4, 4, 2),)))
    state = states[KEY]
    assert (state.start_offset, state.leader_epoch, updates[KEY]) == (3, 2, 3)
    assert state.records == {3: (2, 1), 4: (4, 2)}
    # A snapshot of the merged state replays to the same state.
    again: dict = {}
    replay(again, {}, KEY, state.to_snapshot(0))
    assert again[KEY].records == state.records and again[KEY].start_offset == 3


def _state(start: int, records: dict[int, tuple[int, int]]) -> SharePartitionState:
    return SharePartitionState.restored(
        start, records, lock_duration_ms=1000, delivery_limit=3, max_in_flight=100
    )


def test_restore_resumes_counts_and_skips_accepted() -> None:
    # Offsets 0-1 accepted, 2 released after two deliveries, 3 never persisted (only acquired),
    # 4 archived: the start stays at 2, offset 3 is fresh.
    state = _state(0, {0: (ACKNOWLEDGED, 1), 1: (ACKNOWLEDGED, 1), 2: (AVAILABLE, 2),
                       4: (ARCHIVED, 3)})  # fmt: skip
    assert state.start_offset == 2 and state.end_offset == 5
    got = state.acquire("m", [BatchSpan(0, 9)], high_watermark=10, max_records=10, now_ms=0)
    assert [(r.first_offset, r.last_offset, r.delivery_count) for r in got] == [
        (2, 2, 3),
        (3, 3, 1),
        (5, 9, 1),
    ]
    assert state.state_of(4) is RecordState.ARCHIVED


def test_changes_to_persist() -> None:
    state = _state(0, {})
    state.acquire("m", [BatchSpan(0, 3)], high_watermark=4, max_records=4, now_ms=0)
    assert state.take_changes() == {}  # acquisitions are not persisted
    state.acknowledge("m", [AckBatch(0, 0, (AckType.ACCEPT,)), AckBatch(1, 1, (AckType.RELEASE,)),
                            AckBatch(2, 2, (AckType.REJECT,)), AckBatch(3, 3, (AckType.RENEW,))],
                      now_ms=1)  # fmt: skip
    assert state.start_offset == 1
    assert state.take_changes() == {1: (AVAILABLE, 1), 2: (ARCHIVED, 1)}
    # Released, then acquired again before the write: persisted as available with the count
    # before that acquisition.
    state.acquire("n", [BatchSpan(1, 1)], high_watermark=4, max_records=1, now_ms=2)
    state.release_member("n")
    state.acquire("n", [BatchSpan(1, 1)], high_watermark=4, max_records=1, now_ms=3)
    assert state.take_changes() == {1: (AVAILABLE, 2)}
    # A lock expiry is a change too; offset 1 reached the delivery limit: archived, and the
    # start offset moves past it (and the rejected 2).
    assert state.expire(10_000)
    assert state.take_changes() == {3: (AVAILABLE, 1)} and state.start_offset == 3


def test_persisted_state_update_moves_start() -> None:
    state = PersistedShareState(0)
    state.apply_update(ShareStateValue(False, 0, 1, 0, (StateBatch(0, 5, AVAILABLE, 1),)))
    state.apply_update(ShareStateValue(False, 0, 1, 3, ()))
    assert sorted(state.records) == [3, 4, 5]
    assert state.batches() == (StateBatch(3, 5, AVAILABLE, 1),)
