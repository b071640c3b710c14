"""Server-side assignors of the consumer group protocol (KIP-848): `uniform` and `range`.

An assignor maps the group's members (each with its subscribed topics and the partitions it was
last given) and the subscribed topics' partition counts to a new target assignment. Both are
pure and deterministic (members and partitions are visited in sorted order), so every
coordinator computing the same input gets the same target.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

# topic id -> partitions
Assignment = dict[uuid.UUID, frozenset[int]]

UNIFORM = "uniform"
RANGE = "range"
ASSIGNORS = (UNIFORM, RANGE)


@dataclass(frozen=True, slots=True)
class MemberSubscription:
    topics: frozenset[uuid.UUID]
    previous: Assignment = field(default_factory=dict)  # the member's last target


def assign(
    name: str,
    members: Mapping[str, MemberSubscription],
    partition_counts: Mapping[uuid.UUID, int],
) -> dict[str, Assignment]:
    if name == RANGE:
        return range_assign(members, partition_counts)
    if name == UNIFORM:
        return uniform_assign(members, partition_counts)
    raise ValueError(f"unknown assignor {name}")


def _freeze(owned: dict[str, set[tuple[uuid.UUID, int]]]) -> dict[str, Assignment]:
    result: dict[str, Assignment] = {}
    for member_id, partitions in owned.items():
        by_topic: dict[uuid.UUID, set[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, set()).add(partition)
        result[member_id] = {t: frozenset(ps) for t, ps in by_topic.items()}
    return result


def uniform_assign(
    members: Mapping[str, MemberSubscription], partition_counts: Mapping[uuid.UUID, int]
) -> dict[str, Assignment]:
    """Balanced and sticky: a member keeps the partitions it had while that stays within its
    fair share; unowned partitions go to the least loaded subscriber; then partitions move
    from the most to the least loaded member until no move narrows the spread."""
    ids = sorted(members)
    owned: dict[str, set[tuple[uuid.UUID, int]]] = {m: set() for m in ids}
    eligible: dict[tuple[uuid.UUID, int], list[str]] = {}
    for topic in sorted(partition_counts, key=str):
        subscribers = [m for m in ids if topic in members[m].topics]
        if not subscribers:
            continue
        for partition in range(partition_counts[topic]):
            eligible[(topic, partition)] = subscribers
    if not ids:
        return {}
    # The fair share, rounded up, caps what a member keeps: stickiness never unbalances.
    fair = -(-len(eligible) // len(ids))
    taken: set[tuple[uuid.UUID, int]] = set()
    for m in ids:
        kept = sorted(
            (t, p)
            for t, ps in members[m].previous.items()
            for p in ps
            if (t, p) in eligible and m in eligible[(t, p)]
        )
        for tp in kept:
            if tp in taken or len(owned[m]) >= fair:
                continue
            owned[m].add(tp)
            taken.add(tp)
    for tp in sorted(eligible, key=lambda x: (str(x[0]), x[1])):
        if tp in taken:
            continue
        target = min(eligible[tp], key=lambda m: (len(owned[m]), m))
        owned[target].add(tp)
        taken.add(tp)
    _balance(owned, eligible)
    return _freeze(owned)


def _balance(
    owned: dict[str, set[tuple[uuid.UUID, int]]],
    eligible: dict[tuple[uuid.UUID, int], list[str]],
) -> None:
    """Move one partition at a time from a member to one with at least two fewer."""
    moved = True
    while moved:
        moved = False
        for giver in sorted(owned, key=lambda m: (-len(owned[m]), m)):
            for tp in sorted(owned[giver], key=lambda x: (str(x[0]), x[1])):
                takers = [
                    m for m in eligible[tp] if m != giver and len(owned[m]) + 1 < len(owned[giver])
                ]
                if takers:
                    taker = min(takers, key=lambda m: (len(owned[m]), m))
                    owned[giver].discard(tp)
                    owned[taker].add(tp)
                    moved = True
                    break
            if moved:
                break


def range_assign(
    members: Mapping[str, MemberSubscription], partition_counts: Mapping[uuid.UUID, int]
) -> dict[str, Assignment]:
    """Per topic, its subscribers (by member id) take consecutive ranges, the first ones one
    partition more when the count does not divide: co-partitioned topics line up."""
    result: dict[str, Assignment] = {m: {} for m in members}
    for topic in sorted(partition_counts, key=str):
        subscribers = sorted(m for m in members if topic in members[m].topics)
        if not subscribers:
            continue
        count = partition_counts[topic]
        base, extra = divmod(count, len(subscribers))
        start = 0
        for i, m in enumerate(subscribers):
            size = base + (1 if i < extra else 0)
            if size:
                result[m][topic] = frozenset(range(start, start + size))
            start += size
    return result
