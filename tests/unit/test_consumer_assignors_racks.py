"""Rack-aware assignment of the consumer protocol's server-side assignors (KIP-848, KIP-881's
rule): a partition goes to a member in a rack holding one of its replicas whenever balance
allows it, never at the cost of balance; without racks, nothing changes. Last, the coordinator
reads the replicas' racks from the metadata image (a real Broker whose registration names its
rack)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_group_support import TOPIC, config

from rafka.broker.broker import Broker
from rafka.broker.coordinator.groups.consumer_assignors import (
    Assignment,
    MemberSubscription,
    PartitionRacks,
    assign,
    range_assign,
    uniform_assign,
)
from rafka.broker.coordinator.groups.consumer_heartbeat import HeartbeatRequest, HeartbeatResult
from rafka.broker.node import BrokerEndpoint
from rafka.protocol.errors import ErrorCode

T1 = uuid.UUID(int=1)
T2 = uuid.UUID(int=2)
RACKS = "abc"
ASSIGNORS = {"uniform": uniform_assign, "range": range_assign}


def flat(assignment: Assignment) -> set[tuple[uuid.UUID, int]]:
    return {(t, p) for t, ps in assignment.items() for p in ps}


def covers_once(result: dict[str, Assignment], partitions: dict[uuid.UUID, int]) -> bool:
    everything = [tp for a in result.values() for tp in flat(a)]
    wanted = {(t, p) for t, n in partitions.items() for p in range(n)}
    return len(everything) == len(set(everything)) and set(everything) == wanted


def one_rack_each(count: int, replicas: int = 1) -> tuple[frozenset[str], ...]:
    """Partition p's replicas in racks RACKS[p % 3], RACKS[(p + 1) % 3], ..."""
    return tuple(
        frozenset(RACKS[(p + i) % len(RACKS)] for i in range(replicas)) for p in range(count)
    )


def racked(topics: frozenset[uuid.UUID], **previous: Assignment) -> dict[str, MemberSubscription]:
    """Members "a", "b", "c", each in the rack of its name."""
    return {m: MemberSubscription(topics, previous.get(m, {}), rack=m) for m in RACKS}


def matched(result: dict[str, Assignment], racks: PartitionRacks) -> int:
    return sum(1 for m, a in result.items() for t, p in flat(a) if m in racks[t][p])


@pytest.mark.parametrize("name", ASSIGNORS)
@pytest.mark.parametrize("replicas", [1, 2])
def test_every_partition_goes_to_a_member_of_its_rack(name: str, replicas: int) -> None:
    racks = {T1: one_rack_each(9, replicas)}
    result = ASSIGNORS[name](racked(frozenset({T1})), {T1: 9}, racks)
    assert covers_once(result, {T1: 9})
    assert sorted(len(flat(a)) for a in result.values()) == [3, 3, 3]
    assert matched(result, racks) == 9
    if replicas == 1:
        for m, a in result.items():
            assert a == {T1: frozenset(p for p in range(9) if RACKS[p % 3] == m)}


def test_range_without_racks_gives_ranges_and_with_racks_the_rack_partitions() -> None:
    topics = frozenset({T1})
    plain = range_assign({m: MemberSubscription(topics) for m in RACKS}, {T1: 6})
    assert plain == {m: {T1: frozenset({2 * i, 2 * i + 1})} for i, m in enumerate(RACKS)}
    aware = range_assign(racked(topics), {T1: 6}, {T1: one_rack_each(6)})
    assert aware == {"a": {T1: frozenset({0, 3})}, "b": {T1: frozenset({1, 4})}, "c": {T1: {2, 5}}}


@pytest.mark.parametrize("name", ASSIGNORS)
def test_balance_first_then_as_many_rack_matches_as_it_allows(name: str) -> None:
    # Four partitions have replicas only in rack a, one in b, one in c: a's member may take two
    # of a's (its share), the others take one of their own rack and one of a's.
    racks = {T1: tuple(frozenset(r) for r in "aaaabc")}
    result = ASSIGNORS[name](racked(frozenset({T1})), {T1: 6}, racks)
    assert covers_once(result, {T1: 6})
    assert sorted(len(flat(a)) for a in result.values()) == [2, 2, 2]
    assert matched(result, racks) == 4
    assert flat(result["b"]) >= {(T1, 4)} and flat(result["c"]) >= {(T1, 5)}


def test_range_gives_the_left_over_partition_where_it_matches() -> None:
    # 7 partitions over 3 members: 3, 2, 2 as without racks, even though rack c has six of
    # them; the member with one more is c (without racks: a, the first).
    racks = {T1: tuple(frozenset(r) for r in "ccccccb")}
    result = range_assign(racked(frozenset({T1})), {T1: 7}, racks)
    assert covers_once(result, {T1: 7})
    assert {m: len(flat(a)) for m, a in result.items()} == {"a": 2, "b": 2, "c": 3}
    assert matched(result, racks) == 4  # c's three and b's partition 6


def test_range_lines_up_co_partitioned_topics_with_the_same_racks() -> None:
    racks = {T1: one_rack_each(6), T2: one_rack_each(6)}
    result = range_assign(racked(frozenset({T1, T2})), {T1: 6, T2: 6}, racks)
    assert covers_once(result, {T1: 6, T2: 6})
    for a in result.values():
        assert a[T1] == a[T2]
    assert matched(result, racks) == 12


def test_uniform_moves_to_a_joining_member_the_partitions_of_its_rack() -> None:
    topics = frozenset({T1})
    racks = {T1: one_rack_each(6)}
    two = {m: MemberSubscription(topics, rack=m) for m in "ab"}
    before = uniform_assign(two, {T1: 6}, racks)
    assert sorted(len(flat(a)) for a in before.values()) == [3, 3]
    assert matched(before, racks) == 4  # rack c's two partitions have no member yet
    after = uniform_assign(racked(topics, **before), {T1: 6}, racks)
    assert {m: flat(a) for m, a in after.items()} == {
        m: {(T1, p) for p in range(6) if RACKS[p % 3] == m} for m in RACKS
    }
    for m in "ab":  # the old members only gave partitions up
        assert flat(after[m]) <= flat(before[m])


def test_uniform_keeps_a_rack_mismatch_when_no_member_matches() -> None:
    topics = frozenset({T1})
    racks = {T1: (frozenset("a"), frozenset("a"), frozenset("z"), frozenset("z"))}
    members = {m: MemberSubscription(topics, rack=m) for m in "ab"}
    first = uniform_assign(members, {T1: 4}, racks)
    assert flat(first["a"]) >= {(T1, 0), (T1, 1)}
    sticky = {m: MemberSubscription(topics, first[m], rack=m) for m in "ab"}
    assert uniform_assign(sticky, {T1: 4}, racks) == first


@pytest.mark.parametrize("name", ASSIGNORS)
def test_subscriptions_are_respected_with_racks(name: str) -> None:
    members = {
        "a": MemberSubscription(frozenset({T1}), rack="a"),
        "b": MemberSubscription(frozenset({T1, T2}), rack="b"),
        "c": MemberSubscription(frozenset({T2}), rack="c"),
    }
    racks = {T1: one_rack_each(4), T2: one_rack_each(4)}
    result = ASSIGNORS[name](members, {T1: 4, T2: 4}, racks)
    assert covers_once(result, {T1: 4, T2: 4})
    assert T2 not in result["a"] and T1 not in result["c"]


def random_case(rng: random.Random) -> tuple[dict[str, MemberSubscription], dict, dict]:
    topics = [uuid.UUID(int=i + 1) for i in range(rng.randint(1, 3))]
    counts = {t: rng.randint(1, 12) for t in topics}
    racks = {
        t: tuple(frozenset(rng.sample("abcd", rng.randint(0, 2))) for _ in range(n))
        for t, n in counts.items()
    }
    members = {
        f"m{i}": MemberSubscription(frozenset(topics), rack=rng.choice("abcd"))
        for i in range(rng.randint(1, 5))
    }
    return members, counts, racks


@pytest.mark.parametrize("name", ASSIGNORS)
def test_racks_never_change_how_many_partitions_a_member_gets(name: str) -> None:
    rng = random.Random(848)
    for _ in range(300):
        members, counts, racks = random_case(rng)
        aware = assign(name, members, counts, racks)
        plain = assign(name, members, counts)
        assert covers_once(aware, counts)
        if name == "range":  # per topic, the ranges' sizes (the left-over ones may move)
            for t in counts:
                assert sorted(len(aware[m].get(t, ())) for m in members) == sorted(
                    len(plain[m].get(t, ())) for m in members
                )
        else:
            assert sorted(len(flat(a)) for a in aware.values()) == sorted(
                len(flat(a)) for a in plain.values()
            )
        assert assign(name, members, counts, racks) == aware  # deterministic


@pytest.mark.parametrize("name", ASSIGNORS)
def test_without_racks_that_matter_the_result_is_the_rackless_one(name: str) -> None:
    rng = random.Random(19)
    for _ in range(200):
        members, counts, racks = random_case(rng)
        plain = assign(name, members, counts)
        no_member_racks = {m: MemberSubscription(s.topics, s.previous) for m, s in members.items()}
        assert assign(name, no_member_racks, counts, racks) == plain
        assert assign(name, members, counts, None) == plain
        assert assign(name, members, counts, {}) == plain
        everywhere = {t: (frozenset("abcd"),) * n for t, n in counts.items()}
        assert assign(name, members, counts, everywhere) == plain
        nowhere = {t: (frozenset(),) * n for t, n in counts.items()}
        assert assign(name, members, counts, nowhere) == plain


# -- the coordinator reads the replicas' racks from the metadata image ----------------------------


@pytest.fixture
async def broker_in_rack_a(tmp_path: Path) -> AsyncIterator[Broker]:
    broker = Broker(config(tmp_path / "data"))
    await broker.start()
    await broker.join(BrokerEndpoint(broker.node_id, "localhost", 9092, "a"))
    await broker.groups.ensure_offsets_topic()
    await broker.groups.wait_loaded()
    await broker.create_topic(TOPIC, 3, 1)
    yield broker
    await broker.stop()


async def join(broker: Broker, member: str, rack: str) -> HeartbeatResult:
    return await broker.groups.consumer.heartbeat(
        HeartbeatRequest(
            group_id="racks",
            member_id=member,
            member_epoch=0,
            instance_id=None,
            rack_id=rack,
            rebalance_timeout_ms=30000,
            subscribed_topic_names=(TOPIC,),
            subscribed_topic_regex=None,
            server_assignor="range",
            owned={},
            client_id="c",
            client_host="/127.0.0.1",
            api_version=1,
        )
    )


async def test_the_target_follows_the_brokers_racks(broker_in_rack_a: Broker) -> None:
    broker = broker_in_rack_a
    for member, rack in (("m1", "b"), ("m2", "a")):
        assert (await join(broker, member, rack)).error == ErrorCode.none
    group = broker.groups.consumer.describe("racks")
    topic_id = broker.topic(TOPIC).topic_id
    assert broker.groups.consumer.partition_racks(group) == {topic_id: (frozenset("a"),) * 3}
    # Without racks range gives m1 (first by id) partitions 0 and 1; m2 is in the rack of the
    # only broker, so it takes two partitions, and m1 the one left.
    assert group.target == {"m1": {topic_id: frozenset({2})}, "m2": {topic_id: {0, 1}}}
