"""DescribeQuorum (API 55) on a real single-node broker, a one-voter metadata quorum, and
`rafka cluster describe` showing that quorum and the under-replicated partitions."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from broker_process import BrokerProcess, free_port
from raw_client import RawClient
from typer.testing import CliRunner

from rafka.cli.cluster import with_lag
from rafka.cli.main import app
from rafka.protocol.errors import ErrorCode
from rafka.protocol.messages import build, request_class, response_class

pytestmark = pytest.mark.timeout(60)

DESCRIBE_QUORUM = 55
METADATA_TOPIC = "__cluster_metadata"
runner = CliRunner()


def describe_quorum(
    broker: BrokerProcess, version: int, topics: list[tuple[str, list[int]]] | None = None
) -> Any:
    topics = [(METADATA_TOPIC, [0])] if topics is None else topics
    request = build(
        request_class(DESCRIBE_QUORUM, version),
        {
            "topics": [
                {"topic_name": name, "partitions": [{"partition_index": i} for i in indexes]}
                for name, indexes in topics
            ]
        },
    )
    with RawClient(broker.bootstrap) as client:
        return client.request(request, response_class(DESCRIBE_QUORUM, version))


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def cli(broker: BrokerProcess, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--bootstrap-server", broker.bootstrap])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("version", [0, 1, 2])
def test_the_single_node_leads_a_one_voter_quorum(broker, version: int) -> None:
    cli(broker, "topic", "create", "-t", "t")  # a metadata record beyond the leader change
    before = wall_ms()
    response = describe_quorum(broker, version)
    after = wall_ms()

    assert response.error_code == ErrorCode.none
    (topic,) = response.topics
    assert topic.topic_name == METADATA_TOPIC
    (partition,) = topic.partitions
    assert partition.partition_index == 0
    assert partition.error_code == ErrorCode.none
    assert partition.leader_id == 1
    assert partition.leader_epoch >= 1
    # The leader change and the topic record are committed: the topic was created.
    assert partition.high_watermark >= 2
    (voter,) = partition.current_voters
    assert voter.replica_id == 1
    assert voter.log_end_offset == partition.high_watermark
    assert partition.observers == ()
    if version >= 1:
        # The leader reports "now" on its wall clock for itself.
        assert before <= voter.last_fetch_timestamp <= after
        assert before <= voter.last_caught_up_timestamp <= after
    if version >= 2:
        assert response.error_message is None
        assert response.nodes == ()  # no controller listener in zero-config single-node mode


def test_the_high_watermark_follows_metadata_changes(broker) -> None:
    first = describe_quorum(broker, 2).topics[0].partitions[0]
    cli(broker, "topic", "create", "-t", "one")
    second = describe_quorum(broker, 2).topics[0].partitions[0]
    assert second.high_watermark > first.high_watermark
    assert second.current_voters[0].log_end_offset == second.high_watermark
    assert second.leader_epoch == first.leader_epoch


def test_partitions_other_than_the_metadata_partition_are_unknown(broker) -> None:
    response = describe_quorum(broker, 2, [(METADATA_TOPIC, [1]), ("orders", [0])])
    assert response.error_code == ErrorCode.none
    answered = [(t.topic_name, p.partition_index, p.error_code)
                for t in response.topics for p in t.partitions]  # fmt: skip
    assert answered == [
        (METADATA_TOPIC, 1, ErrorCode.unknown_topic_or_partition),
        ("orders", 0, ErrorCode.unknown_topic_or_partition),
    ]
    assert all(p.current_voters == () for t in response.topics for p in t.partitions)


def test_v2_names_the_voters_controller_endpoints(broker_factory) -> None:
    """A configured one-voter quorum: the voter's CONTROLLER listener is in `nodes`."""
    port, controller_port = free_port(), free_port()
    broker = broker_factory(
        port=port,
        **{
            "node.id": "1",
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        },
    ).start()
    response = describe_quorum(broker, 2)
    assert response.topics[0].partitions[0].leader_id == 1
    (node,) = response.nodes
    assert node.node_id == 1
    assert [(lst.name, lst.host, lst.port) for lst in node.listeners] == [
        ("CONTROLLER", "127.0.0.1", controller_port)
    ]


def test_cluster_describe_shows_the_quorum_and_no_under_replicated_partitions(broker) -> None:
    cli(broker, "topic", "create", "-t", "a", "-p", "2")
    before = wall_ms()
    described = json.loads(cli(broker, "cluster", "describe", "--json").stdout)
    elapsed = wall_ms() - before

    assert described["controller_id"] == 1
    assert described["partitions"] == 2
    assert described["under_replicated_partitions"] == 0
    assert described["under_replicated"] == []
    assert "quorum_error" not in described
    quorum = described["quorum"]
    assert quorum["leader_id"] == 1
    assert quorum["leader_epoch"] >= 1
    assert quorum["high_watermark"] >= 2
    assert quorum["observers"] == []
    (voter,) = quorum["voters"]
    assert voter["id"] == 1
    assert voter["log_end_offset"] == quorum["high_watermark"]
    assert voter["lag"] == 0
    assert 0 <= voter["last_fetch_age_ms"] <= elapsed

    lines = cli(broker, "cluster", "describe").stdout.splitlines()
    assert "Under-replicated:    0" in lines
    summary = next(line for line in lines if line.startswith("Metadata quorum:"))
    assert summary.split(":", 1)[1].split() == [
        "leader", "1,", "epoch", f"{quorum['leader_epoch']},", "high", "watermark",
        str(quorum["high_watermark"]),
    ]  # fmt: skip
    header = lines.index(next(line for line in lines if line.startswith("NODE")))
    assert lines[header].split() == ["NODE", "ROLE", "LOG", "END", "OFFSET", "LAG", "LAST", "FETCH"]
    row = lines[header + 1].split()
    assert row[:4] == ["1", "leader", str(quorum["high_watermark"]), "0"]
    assert row[-1] == "ago"
    # No under-replicated table; the broker table stays last.
    assert not any(line.startswith("TOPIC") for line in lines)
    assert lines[-2].split() == ["BROKER", "HOST", "PORT", "RACK", "CONTROLLER"]
    assert lines[-1].split() == ["1", "127.0.0.1", str(broker.port), "-", "yes"]


def test_lag_is_measured_from_the_leader_end_offset() -> None:
    quorum = {
        "leader_id": 1,
        "leader_epoch": 3,
        "high_watermark": 90,
        "voters": [
            {"id": 1, "log_end_offset": 100, "last_fetch_timestamp": 5_000,
             "last_caught_up_timestamp": 5_000},
            {"id": 2, "log_end_offset": 95, "last_fetch_timestamp": 4_000,
             "last_caught_up_timestamp": 3_000},
            {"id": 3, "log_end_offset": -1, "last_fetch_timestamp": -1,
             "last_caught_up_timestamp": -1},
        ],
        "observers": [],
    }  # fmt: skip
    voters = with_lag(quorum, now_ms=5_000)["voters"]
    assert [(v["lag"], v["last_fetch_age_ms"]) for v in voters] == [
        (0, 0),
        (5, 1_000),
        (None, None),
    ]
    # Without the leader's own entry the high watermark is the reference.
    quorum["voters"] = quorum["voters"][1:]
    assert [v["lag"] for v in with_lag(quorum, now_ms=5_000)["voters"]] == [0, None]
