"""The consumer protocol's server-side assignors: balanced, deterministic, and (uniform) sticky."""

from __future__ import annotations

import uuid

from rafka.broker.coordinator.groups.consumer_assignors import (
    MemberSubscription,
    range_assign,
    uniform_assign,
)

T1 = uuid.UUID(int=1)
T2 = uuid.UUID(int=2)


def flat(assignment) -> set[tuple[uuid.UUID, int]]:
    return {(t, p) for t, ps in assignment.items() for p in ps}


def counts(result) -> list[int]:
    return sorted(len(flat(a)) for a in result.values())


def covers_once(result, partitions: dict[uuid.UUID, int]) -> bool:
    everything = [tp for a in result.values() for tp in flat(a)]
    wanted = {(t, p) for t, n in partitions.items() for p in range(n)}
    return len(everything) == len(set(everything)) and set(everything) == wanted


def test_uniform_splits_evenly() -> None:
    topics = frozenset({T1})
    members = {m: MemberSubscription(topics) for m in ("a", "b")}
    result = uniform_assign(members, {T1: 4})
    assert counts(result) == [2, 2]
    assert covers_once(result, {T1: 4})
    assert uniform_assign(members, {T1: 4}) == result  # deterministic


def test_uniform_keeps_what_members_had_when_one_joins() -> None:
    topics = frozenset({T1})
    two = uniform_assign({m: MemberSubscription(topics) for m in ("a", "b")}, {T1: 4})
    three = {m: MemberSubscription(topics, two.get(m, {})) for m in ("a", "b", "c")}
    result = uniform_assign(three, {T1: 4})
    assert counts(result) == [1, 1, 2]
    assert covers_once(result, {T1: 4})
    # Each old member keeps a subset of what it had: only one partition moves.
    for m in ("a", "b"):
        assert flat(result[m]) <= flat(two[m])
    assert len(flat(result["c"])) == 1


def test_uniform_gives_a_leavers_partitions_to_the_others_only() -> None:
    topics = frozenset({T1, T2})
    before = uniform_assign({m: MemberSubscription(topics) for m in "abc"}, {T1: 3, T2: 3})
    after = uniform_assign({m: MemberSubscription(topics, before[m]) for m in "bc"}, {T1: 3, T2: 3})
    assert counts(after) == [3, 3]
    assert covers_once(after, {T1: 3, T2: 3})
    for m in "bc":
        assert flat(before[m]) <= flat(after[m])


def test_uniform_respects_subscriptions() -> None:
    members = {
        "a": MemberSubscription(frozenset({T1})),
        "b": MemberSubscription(frozenset({T1, T2})),
    }
    result = uniform_assign(members, {T1: 2, T2: 2})
    assert T2 not in result["a"]
    assert covers_once(result, {T1: 2, T2: 2})
    # a can only take T1's partitions, so b leaves them to it and takes T2's.
    assert result["a"] == {T1: frozenset({0, 1})}
    assert result["b"] == {T2: frozenset({0, 1})}


def test_range_gives_consecutive_ranges_per_topic() -> None:
    topics = frozenset({T1, T2})
    members = {m: MemberSubscription(topics) for m in ("a", "b")}
    result = range_assign(members, {T1: 3, T2: 3})
    assert result["a"] == {T1: frozenset({0, 1}), T2: frozenset({0, 1})}
    assert result["b"] == {T1: frozenset({2}), T2: frozenset({2})}
