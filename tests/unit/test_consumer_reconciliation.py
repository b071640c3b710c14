"""Reconciliation of the consumer protocol: a member is given a partition only once no other
member owns it (revoke first, then assign), and its epoch moves only when it is safe."""

from __future__ import annotations

import uuid

from rafka.broker.coordinator.groups.consumer_group import (
    ConsumerGroup,
    ConsumerGroupState,
    ConsumerMember,
    MemberState,
    reconcile,
)
from rafka.broker.coordinator.groups.consumer_records import (
    CURRENT_ASSIGNMENT,
    ConsumerKey,
    CurrentAssignmentValue,
    GroupEpochValue,
    MemberMetadataValue,
    decode_consumer_key,
    decode_consumer_value,
    encode_consumer_key,
    encode_consumer_value,
)

T = uuid.UUID(int=7)


def parts(*ps: int):
    return {T: frozenset(ps)} if ps else {}


def stable_group() -> ConsumerGroup:
    """Epoch 1: a owns 0-3 alone."""
    group = ConsumerGroup("g", group_epoch=1, assignment_epoch=1)
    a = ConsumerMember("a", member_epoch=1, assigned=parts(0, 1, 2, 3))
    group.add(a)
    group.target = {"a": parts(0, 1, 2, 3)}
    return group


def test_revoke_before_assign() -> None:
    group = stable_group()
    a = group.members["a"]
    b = ConsumerMember("b")
    group.add(b)
    group.group_epoch = group.assignment_epoch = 2
    group.target = {"a": parts(0, 1), "b": parts(2, 3)}
    assert group.state is ConsumerGroupState.RECONCILING

    # b joins first: its partitions are still a's, so it gets the epoch but nothing yet.
    assert reconcile(group, b, parts())
    assert (b.member_epoch, b.state, b.assigned) == (2, MemberState.UNRELEASED_PARTITIONS, {})

    # a is told to revoke 2 and 3, keeping its epoch until it has.
    assert reconcile(group, a, parts(0, 1, 2, 3))
    assert (a.member_epoch, a.state) == (1, MemberState.UNREVOKED_PARTITIONS)
    assert a.assigned == parts(0, 1) and a.pending_revocation == parts(2, 3)

    # b still waits: a has not confirmed.
    assert not reconcile(group, b, parts())
    assert b.assigned == {}

    # a still reports 2 and 3: nothing moves.
    assert not reconcile(group, a, parts(0, 1, 2, 3))
    # a confirms: it reaches the new epoch, and only then b gets 2 and 3.
    assert reconcile(group, a, parts(0, 1))
    assert (a.member_epoch, a.state, a.pending_revocation) == (2, MemberState.STABLE, {})
    assert reconcile(group, b, parts())
    assert (b.member_epoch, b.state, b.assigned) == (2, MemberState.STABLE, parts(2, 3))
    assert group.state is ConsumerGroupState.STABLE


def test_a_member_without_revocations_moves_to_the_new_epoch_at_once() -> None:
    group = stable_group()
    a = group.members["a"]
    group.group_epoch = group.assignment_epoch = 2
    group.target = {"a": parts(0, 1, 2, 3)}
    assert reconcile(group, a, None)
    assert (a.member_epoch, a.previous_member_epoch, a.state) == (2, 1, MemberState.STABLE)


def test_partitions_keep_the_epoch_they_came_at() -> None:
    """KIP-1251: what a member keeps across epochs keeps its assignment epoch, what it is given
    comes at the new epoch, and what it revokes keeps its epoch until it is gone."""
    group = stable_group()
    a = group.members["a"]
    assert a.assignment_epoch(T, 0) == 1  # no record of it: the member's epoch
    b = ConsumerMember("b")
    group.add(b)
    group.group_epoch = group.assignment_epoch = 2
    group.target = {"a": parts(0, 1), "b": parts(2, 3)}
    reconcile(group, a, parts(0, 1, 2, 3))
    assert [a.assignment_epoch(T, p) for p in range(4)] == [1, 1, 1, 1]
    reconcile(group, a, parts(0, 1))
    assert [a.assignment_epoch(T, p) for p in range(4)] == [1, 1, None, None]
    group.remove("b")
    group.group_epoch = group.assignment_epoch = 3
    group.target = {"a": parts(0, 1, 2, 3)}
    reconcile(group, a, parts(0, 1))
    assert a.member_epoch == 3
    assert [a.assignment_epoch(T, p) for p in range(4)] == [1, 1, 3, 3]


def test_records_round_trip() -> None:
    key = ConsumerKey(CURRENT_ASSIGNMENT, "g", "m")
    assert decode_consumer_key(encode_consumer_key(key)) == key
    epochs = {(T, 0): 2, (T, 5): 3, (T, 7): 1}
    value = CurrentAssignmentValue(3, 2, 1, parts(0, 5), parts(7), epochs)
    assert decode_consumer_value(key, encode_consumer_value(value)) == value
    # Kafka 4.3.1's bytes for the same value (MessageUtil.toVersionPrefixedBytes): each topic's
    # AssignmentEpochs as its tagged field 0.
    topic = "00" * 15 + "07"
    assert (
        encode_consumer_value(value).hex()
        == (
            "0000" + "00000003" + "00000002" + "01"  # version, member epoch, previous, state
            "02" + topic + "03" + "0000000000000005"  # assigned: one topic, partitions [0, 5]
            "01" + "00" + "09" + "03" + "0000000200000003"  # its tag 0 (9 bytes): epochs [2, 3]
            "02" + topic + "02" + "00000007"  # pending revocation: one topic, partitions [7]
            "01" + "00" + "05" + "02" + "00000001"  # its tag 0 (5 bytes): epochs [1]
            "00"  # the value's own tagged fields: none
        )
    )
    # Without epochs (Kafka 4.2 and older wrote none), a partition came at the member's epoch.
    older = CurrentAssignmentValue(3, 2, 1, parts(0, 5), parts(7))
    assert decode_consumer_value(key, encode_consumer_value(older)).epochs == {
        (T, 0): 3,
        (T, 5): 3,
        (T, 7): 3,
    }
    member_key = ConsumerKey(5, "g", "m")
    member = MemberMetadataValue("i", None, "c", "/h", ("a", "b"), None, 300000, "uniform")
    assert decode_consumer_value(member_key, encode_consumer_value(member)) == member
    assert decode_consumer_key(b"\x00\x02\x00\x01g") is None  # a classic group key
    # Kafka's bytes: key = type, group (i16 length); value = version 0, fields, no tags.
    assert encode_consumer_key(ConsumerKey(3, "g")) == b"\x00\x03\x00\x01g"
    assert encode_consumer_value(GroupEpochValue(5)) == b"\x00\x00\x00\x00\x00\x05\x00"
