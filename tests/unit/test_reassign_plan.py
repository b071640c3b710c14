"""`rafka reassign`'s files and proposals (kafka-reassign-partitions' formats and checks)."""

from __future__ import annotations

import json
import random

import pytest

from rafka.cli.reassign_plan import (
    PlanError,
    parse_broker_list,
    parse_reassignment,
    parse_topics_to_move,
    propose,
    reassignment_json,
)


def plan(*entries: dict) -> str:
    return json.dumps({"version": 1, "partitions": list(entries)})


def test_reassignment_json_round_trips() -> None:
    assignment = {("b", 0): [3, 1], ("a", 1): [2], ("a", 0): [1, 2]}
    text = reassignment_json(assignment)
    assert text == (
        '{"version":1,"partitions":['
        '{"topic":"a","partition":0,"replicas":[1,2],"log_dirs":["any","any"]},'
        '{"topic":"a","partition":1,"replicas":[2],"log_dirs":["any"]},'
        '{"topic":"b","partition":0,"replicas":[3,1],"log_dirs":["any","any"]}]}'
    )
    assert parse_reassignment(text) == assignment


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"version":2,"partitions":[]}', "Not supported version field value 2"),
        ('{"version":1,"partitions":[]}', "Partition reassignment list cannot be empty"),
        ("[1]", "the reassignment JSON must be a JSON object"),
        (
            plan({"topic": "t", "partition": 0, "replicas": [1]},
                 {"topic": "t", "partition": 0, "replicas": [2]}),
            "Partition reassignment contains duplicate topic partitions: t-0",
        ),
        (
            plan({"topic": "t", "partition": 0, "replicas": [1, 2, 1]}),
            "Partition replica lists may not contain duplicate entries: t-0 contains multiple "
            "entries for 1",
        ),
        (
            plan({"topic": "t", "partition": 0, "replicas": [1], "log_dirs": ["/d"]}),
            'log_dirs of t-0: moving replicas between log directories is not supported; use "any"',
        ),
    ],
)  # fmt: skip
def test_bad_reassignment_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(PlanError) as refused:
        parse_reassignment(text)
    assert str(refused.value) == message


def test_topics_and_broker_lists() -> None:
    assert parse_topics_to_move('{"version":1,"topics":[{"topic":"a"},{"topic":"b"}]}') == [
        "a",
        "b",
    ]
    with pytest.raises(PlanError, match="duplicate entries: a"):
        parse_topics_to_move('{"topics":[{"topic":"a"},{"topic":"a"}]}')
    assert parse_broker_list("3,1,2") == [3, 1, 2]
    with pytest.raises(PlanError, match="Broker list contains duplicate entries: 1"):
        parse_broker_list("1,2,1")
    with pytest.raises(PlanError):
        parse_broker_list("one")


def test_proposals_keep_the_replication_factor_and_spread_leaders_and_followers() -> None:
    current = {("t", p): [1, 2, 3] for p in range(12)}
    current.update({("u", 0): [5]})
    proposal = propose(current, [4, 2, 3, 1], random.Random(7))
    assert sorted(proposal) == sorted(current)
    for tp, replicas in proposal.items():
        assert len(replicas) == len(current[tp]) and len(set(replicas)) == len(replicas)
        assert set(replicas) <= {1, 2, 3, 4}
    leaders = [proposal[("t", p)][0] for p in range(12)]
    assert sorted(leaders) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    seconds = [proposal[("t", p)][1] for p in range(12)]
    assert sorted(set(seconds)) == [1, 2, 3, 4]
    with pytest.raises(PlanError, match="Replication factor: 3 larger than available brokers: 2"):
        propose(current, [1, 2])
