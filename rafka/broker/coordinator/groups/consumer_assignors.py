"""Server-side assignors of the consumer group protocol (KIP-848): `uniform` and `range`.

An assignor maps the group's members (each with its subscribed topics and the partitions it was
last given) and the subscribed topics' partition counts to a new target assignment. Both are
pure and deterministic (members and partitions are visited in sorted order), so every
coordinator computing the same input gets the same target.

Rack-aware assignment (KIP-848, as KIP-881 for the client-side assignors): when members name
their rack (`rack_id`) and the partitions' replicas sit on brokers with `broker.rack`, both
assignors prefer to give a partition to a member in a rack holding one of its replicas, but
never at the cost of balance: every member gets the same number of partitions as without
racks, and rack matches are chosen only among the assignments that keep it. Where racks cannot
change anything (no member rack, no partition rack, or every partition has a replica in every
member's rack) the result is exactly the rack-less one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence

from msgspec import Struct, field

# topic id -> partitions
Assignment = dict[uuid.UUID, frozenset[int]]
# topic id -> per partition (by index), the racks of the brokers holding one of its replicas
PartitionRacks = Mapping[uuid.UUID, Sequence[frozenset[str]]]
TopicPartition = tuple[uuid.UUID, int]

UNIFORM = "uniform"
RANGE = "range"
ASSIGNORS = (UNIFORM, RANGE)


class MemberSubscription(Struct, frozen=True):
    topics: frozenset[uuid.UUID]
    previous: Assignment = field(default_factory=dict)  # the member's last target
    rack: str | None = None  # the member's rack_id, if it sent one


def assign(
    name: str,
    members: Mapping[str, MemberSubscription],
    partition_counts: Mapping[uuid.UUID, int],
    partition_racks: PartitionRacks | None = None,
) -> dict[str, Assignment]:
    if name == RANGE:
        return range_assign(members, partition_counts, partition_racks)
    if name == UNIFORM:
        return uniform_assign(members, partition_counts, partition_racks)
    raise ValueError(f"unknown assignor {name}")


def _rack_matcher(
    members: Mapping[str, MemberSubscription], partition_racks: PartitionRacks | None
) -> Callable[[str, TopicPartition], bool] | None:
    """`matches(member, tp)`: the member's rack holds a replica of tp; None without racks."""
    if not partition_racks or not any(m.rack for m in members.values()):
        return None

    def matches(member_id: str, tp: TopicPartition) -> bool:
        rack = members[member_id].rack
        racks = partition_racks.get(tp[0], ())
        return rack is not None and tp[1] < len(racks) and rack in racks[tp[1]]

    return matches


def _rack_matters(
    matches: Callable[[str, TopicPartition], bool] | None,
    eligible: Mapping[TopicPartition, Sequence[str]],
) -> bool:
    """Whether racks can change anything: some partition matches some but not all of the
    members that may take it."""
    if matches is None:
        return False
    for tp, candidates in eligible.items():
        matching = sum(1 for m in candidates if matches(m, tp))
        if 0 < matching < len(candidates):
            return True
    return False


def _freeze(owned: dict[str, set[tuple[uuid.UUID, int]]]) -> dict[str, Assignment]:
    result: dict[str, Assignment] = {}
    for member_id, partitions in owned.items():
        by_topic: dict[uuid.UUID, set[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, set()).add(partition)
        result[member_id] = {t: frozenset(ps) for t, ps in by_topic.items()}
    return result


def uniform_assign(
    members: Mapping[str, MemberSubscription],
    partition_counts: Mapping[uuid.UUID, int],
    partition_racks: PartitionRacks | None = None,
) -> dict[str, Assignment]:
    """Balanced and sticky: a member keeps the partitions it had while that stays within its
    fair share; unowned partitions go to the least loaded subscriber; then partitions move
    from the most to the least loaded member until no move narrows the spread.

    With racks that matter, a member keeps only partitions with a replica in its rack (or
    with none in any subscriber's rack), unowned partitions go first to the least loaded
    member of a matching rack below the fair share (the partitions with the fewest such
    members first), and the balancing moves prefer partitions that then sit in the taker's
    rack, else ones outside the giver's."""
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
    matches = _rack_matcher(members, partition_racks)
    if _rack_matters(matches, eligible):
        assert matches is not None
        return _uniform_rack_aware(members, ids, eligible, matches)
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


def _tp_key(tp: TopicPartition) -> tuple[str, int]:
    return (str(tp[0]), tp[1])


def _uniform_rack_aware(
    members: Mapping[str, MemberSubscription],
    ids: list[str],
    eligible: dict[TopicPartition, list[str]],
    matches: Callable[[str, TopicPartition], bool],
) -> dict[str, Assignment]:
    matching = {
        tp: [m for m in candidates if matches(m, tp)] for tp, candidates in eligible.items()
    }
    owned: dict[str, set[TopicPartition]] = {m: set() for m in ids}
    fair = -(-len(eligible) // len(ids))
    taken: set[TopicPartition] = set()
    for m in ids:
        kept = sorted(
            (t, p)
            for t, ps in members[m].previous.items()
            for p in ps
            if (t, p) in eligible
            and m in eligible[(t, p)]
            and (m in matching[(t, p)] or not matching[(t, p)])
        )
        for tp in kept:
            if tp in taken or len(owned[m]) >= fair:
                continue
            owned[m].add(tp)
            taken.add(tp)
    # Rack matches first, the partitions with the fewest matching members before the others.
    for tp in sorted(
        (tp for tp in eligible if tp not in taken and matching[tp]),
        key=lambda tp: (len(matching[tp]), _tp_key(tp)),
    ):
        below = [m for m in matching[tp] if len(owned[m]) < fair]
        if below:
            target = min(below, key=lambda m: (len(owned[m]), m))
            owned[target].add(tp)
            taken.add(tp)
    for tp in sorted(eligible, key=_tp_key):
        if tp in taken:
            continue
        target = min(eligible[tp], key=lambda m: (len(owned[m]), m))
        owned[target].add(tp)
        taken.add(tp)

    def rank(giver: str, taker: str, tp: TopicPartition) -> int:
        if matches(taker, tp):
            return 0  # the move gains a match (or keeps one)
        return 2 if matches(giver, tp) else 1  # a match lost only as the last resort

    _balance(owned, eligible, rank)
    return _freeze(owned)


def _balance(
    owned: dict[str, set[TopicPartition]],
    eligible: dict[TopicPartition, list[str]],
    rank: Callable[[str, str, TopicPartition], int] | None = None,
) -> None:
    """Move one partition at a time from a member to one with at least two fewer."""
    if rank is not None:
        _balance_ranked(owned, eligible, rank)
        return
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


def _balance_ranked(
    owned: dict[str, set[TopicPartition]],
    eligible: dict[TopicPartition, list[str]],
    rank: Callable[[str, str, TopicPartition], int],
) -> None:
    """_balance's moves, each the best ranked one the most loaded giver can make."""
    while True:
        for giver in sorted(owned, key=lambda m: (-len(owned[m]), m)):
            options = [
                (rank(giver, taker, tp), len(owned[taker]), taker, _tp_key(tp), tp)
                for tp in owned[giver]
                for taker in eligible[tp]
                if taker != giver and len(owned[taker]) + 1 < len(owned[giver])
            ]
            if options:
                *_, taker, _, tp = min(options)
                owned[giver].discard(tp)
                owned[taker].add(tp)
                break
        else:
            return


def range_assign(
    members: Mapping[str, MemberSubscription],
    partition_counts: Mapping[uuid.UUID, int],
    partition_racks: PartitionRacks | None = None,
) -> dict[str, Assignment]:
    """Per topic, its subscribers (by member id) take consecutive ranges, the first ones one
    partition more when the count does not divide: co-partitioned topics line up.

    With racks that matter for a topic (KIP-881's range): each subscriber still gets the
    same number of its partitions (the base share, one more for as many as the count leaves
    over), first partitions with a replica in its rack (those with the fewest matching
    subscribers first), then the rest in order; co-partitioned topics whose partitions have
    the same racks still line up."""
    matches = _rack_matcher(members, partition_racks)
    result: dict[str, Assignment] = {m: {} for m in members}
    for topic in sorted(partition_counts, key=str):
        subscribers = sorted(m for m in members if topic in members[m].topics)
        if not subscribers:
            continue
        count = partition_counts[topic]
        if matches is not None and _rack_matters(
            matches, {(topic, p): subscribers for p in range(count)}
        ):
            for m, partitions in _range_rack_aware(topic, count, subscribers, matches).items():
                if partitions:
                    result[m][topic] = frozenset(partitions)
            continue
        base, extra = divmod(count, len(subscribers))
        start = 0
        for i, m in enumerate(subscribers):
            size = base + (1 if i < extra else 0)
            if size:
                result[m][topic] = frozenset(range(start, start + size))
            start += size
    return result


def _range_rack_aware(
    topic: uuid.UUID,
    count: int,
    subscribers: list[str],
    matches: Callable[[str, TopicPartition], bool],
) -> dict[str, list[int]]:
    base, extras = divmod(count, len(subscribers))
    owned: dict[str, list[int]] = {m: [] for m in subscribers}
    matching = {p: [m for m in subscribers if matches(m, (topic, p))] for p in range(count)}
    assigned: set[int] = set()
    for p in sorted((p for p in range(count) if matching[p]), key=lambda p: (len(matching[p]), p)):
        below = [m for m in matching[p] if len(owned[m]) < base]
        if not below and extras:
            below = [m for m in matching[p] if len(owned[m]) == base]
            if below:
                extras -= 1
        if below:
            target = min(below, key=lambda m: (len(owned[m]), subscribers.index(m)))
            owned[target].append(p)
            assigned.add(p)
    # The rest in partition order, members in order: each up to the base share, one more
    # while partitions are left over (as many as the rack-less ranges would give).
    rest = iter(p for p in range(count) if p not in assigned)
    for m in subscribers:
        want = base
        if len(owned[m]) > base:
            want = base + 1
        elif extras:
            want = base + 1
            extras -= 1
        while len(owned[m]) < want:
            owned[m].append(next(rest))
    return {m: sorted(ps) for m, ps in owned.items()}
