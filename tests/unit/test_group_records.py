"""`__consumer_offsets` record codec, group placement and the coordinator's timer heap."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rafka.broker.coordinator.groups.records import (
    GroupKey,
    GroupValue,
    MemberValue,
    OffsetKey,
    OffsetValue,
    RecordFormatError,
    decode_group_value,
    decode_key,
    decode_offset_value,
    decode_value,
    encode_group_value,
    encode_key,
    encode_offset_value,
    encode_value,
)
from rafka.broker.coordinator.groups.timers import Timers
from rafka.broker.coordinator.placement import java_string_hash, partition_for

# -- keys and values in Kafka's byte layout --------------------------------------------------------


def test_offset_key_is_version_1_group_topic_partition() -> None:
    raw = encode_key(OffsetKey("g1", "t1", 3))
    assert raw == b"\x00\x01" + b"\x00\x02g1" + b"\x00\x02t1" + b"\x00\x00\x00\x03"
    assert decode_key(raw) == OffsetKey("g1", "t1", 3)


def test_offset_key_version_0_is_read_too() -> None:
    raw = b"\x00\x00" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x07"
    assert decode_key(raw) == OffsetKey("g", "t", 7)


def test_group_key_is_version_2() -> None:
    raw = encode_key(GroupKey("orders"))
    assert raw == b"\x00\x02\x00\x06orders"
    assert decode_key(raw) == GroupKey("orders")


def test_consumer_protocol_records_are_skipped() -> None:
    # KIP-848 record types (3 and up) belong to the new consumer protocol.
    assert decode_key(b"\x00\x03\x00\x01g") is None


def test_offset_value_v3_layout() -> None:
    value = OffsetValue(offset=42, metadata="meta", commit_timestamp=1000, leader_epoch=5)
    raw = encode_value(value)
    expected = struct.pack(">hqih", 3, 42, 5, 4) + b"meta" + struct.pack(">q", 1000)
    assert raw == expected
    assert decode_offset_value(raw) == value


def test_offset_value_with_expiry_is_written_as_v1() -> None:
    value = OffsetValue(offset=7, metadata="", commit_timestamp=10, expire_timestamp=99)
    raw = encode_value(value)
    assert raw == struct.pack(">hqhqq", 1, 7, 0, 10, 99)
    assert decode_offset_value(raw) == value


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_offset_value_every_version_round_trips(version: int) -> None:
    value = OffsetValue(
        offset=123,
        metadata="m",
        commit_timestamp=456,
        leader_epoch=9 if version >= 3 else -1,
        expire_timestamp=789 if version == 1 else -1,
    )
    assert decode_offset_value(encode_offset_value(value, version)) == value


def test_flexible_offset_value_skips_unknown_tags() -> None:
    raw = bytearray(encode_offset_value(OffsetValue(1, "x", 2, 3), 4))
    assert raw[-1] == 0  # empty tagged-field section
    raw[-1:] = b"\x01" + b"\x05" + b"\x02" + b"ab"  # one tag (5) of two bytes
    assert decode_offset_value(bytes(raw)) == OffsetValue(1, "x", 2, 3)


MEMBER = MemberValue(
    member_id="c-1",
    group_instance_id="instance-a",
    client_id="c",
    client_host="/127.0.0.1",
    rebalance_timeout=30000,
    session_timeout=10000,
    subscription=b"\x00\x01sub",
    assignment=b"\x00\x01asg",
)


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_group_value_every_version_round_trips(version: int) -> None:
    member = MEMBER
    if version < 3:
        member = MemberValue(**{**_fields(MEMBER), "group_instance_id": None})
    if version < 1:
        member = MemberValue(**{**_fields(member), "rebalance_timeout": member.session_timeout})
    value = GroupValue(
        protocol_type="consumer",
        generation=4,
        protocol="range",
        leader="c-1",
        current_state_timestamp=1234 if version >= 2 else -1,
        members=(member,),
    )
    assert decode_group_value(encode_group_value(value, version)) == value


def test_group_value_v3_layout() -> None:
    value = GroupValue("consumer", 1, None, None, 5, ())
    raw = encode_group_value(value)
    expected = (
        struct.pack(">hh", 3, 8)
        + b"consumer"
        + struct.pack(">ihhqi", 1, -1, -1, 5, 0)  # generation, null protocol, null leader, ts, []
    )
    assert raw == expected


def test_tombstone_decodes_to_none() -> None:
    assert decode_value(GroupKey("g"), None) is None
    assert decode_value(OffsetKey("g", "t", 0), None) is None


@pytest.mark.parametrize(
    "raw",
    [b"\x00\x03", b"\x00\x03" + b"\x00" * 5, b"\x00\x09" + b"\x00" * 30, b"\x00\x03" + b"\xff" * 8],
)
def test_truncated_or_unknown_values_raise(raw: bytes) -> None:
    with pytest.raises(RecordFormatError):
        decode_offset_value(raw)


@given(
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**62),
)
def test_offset_values_round_trip(metadata: str, offset: int, epoch: int, ts: int) -> None:
    value = OffsetValue(offset, metadata, ts, epoch)
    assert decode_offset_value(encode_value(value)) == value


@given(st.binary(max_size=64))
def test_garbage_never_crashes_the_decoder(raw: bytes) -> None:
    for decode in (decode_offset_value, decode_group_value, decode_key):
        try:
            decode(raw)
        except RecordFormatError:
            pass


def _fields(member: MemberValue) -> dict:
    return {name: getattr(member, name) for name in MemberValue.__slots__}


# -- placement -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("hello", 99162322),  # Java: "hello".hashCode()
        ("g1", 3242),
        ("polygenelubricants", -(2**31)),  # famous Integer.MIN_VALUE hash
        ("\U0001f600", 0xD83D * 31 + 0xDE00),  # surrogate pair, as Java's UTF-16 sees it
    ],
)
def test_java_string_hash(text: str, expected: int) -> None:
    assert java_string_hash(text) == expected


def test_partition_for_matches_kafka() -> None:
    assert partition_for("g1", 8) == 3242 % 8
    assert partition_for("polygenelubricants", 8) == 0  # Utils.abs(MIN_VALUE) is 0
    negative = "console-consumer-12345"
    h = java_string_hash(negative)
    assert partition_for(negative, 50) == abs(h) % 50


# -- timers ----------------------------------------------------------------------------------------


async def test_timers_fire_in_deadline_order_and_replace_by_key() -> None:
    timers = Timers()
    fired: list[str] = []
    done = asyncio.get_running_loop().create_future()

    def record(name: str):
        def callback() -> None:
            fired.append(name)
            if name == "last":
                done.set_result(None)

        return callback

    timers.schedule("b", 0.03, record("b"))
    timers.schedule("a", 0.01, record("a"))
    timers.schedule("b", 0.02, record("b-replaced"))  # replaces the first "b"
    timers.schedule("c", 0.015, record("c"))
    timers.cancel("c")
    timers.schedule("last", 0.05, record("last"))
    await asyncio.wait_for(done, 2)
    assert fired == ["a", "b-replaced", "last"]
    assert len(timers) == 0
    timers.close()


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    timers = Timers()
    done = asyncio.get_running_loop().create_future()

    def boom() -> None:
        raise RuntimeError("boom")

    timers.schedule("boom", 0.0, boom)
    timers.schedule("ok", 0.001, lambda: done.set_result("ok"))
    assert await asyncio.wait_for(done, 2) == "ok"
    timers.close()


async def test_a_callback_may_reschedule_itself() -> None:
    timers = Timers()
    count = 0
    done = asyncio.get_running_loop().create_future()

    def tick() -> None:
        nonlocal count
        count += 1
        if count < 3:
            timers.schedule("tick", 0.001, tick)
        else:
            done.set_result(count)

    timers.schedule("tick", 0.001, tick)
    assert await asyncio.wait_for(done, 2) == 3
    timers.close()


async def test_cancelled_entries_do_not_grow_the_heap_without_bound() -> None:
    timers = Timers()
    for i in range(1000):
        timers.schedule("same", 10 + i, lambda: None)
    assert len(timers) == 1
    assert len(timers._heap) <= 130
    timers.close()
