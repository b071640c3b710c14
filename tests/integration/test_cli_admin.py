"""`rafka topic`, `rafka configs` and `rafka cluster` against a live broker: the tables, the
JSON, the errors (one line on stderr, exit code 1) and the effect seen through other clients."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from admin_support import confluent_admin, produce, read_all
from broker_process import BrokerProcess
from confluent_kafka.admin import ConfigResource, ResourceType
from typer.testing import CliRunner

from rafka.cli.main import app

pytestmark = pytest.mark.timeout(60)

runner = CliRunner()


def rafka(broker: BrokerProcess, *args: str, ok: bool = True) -> Any:
    result = runner.invoke(app, [*args, "--bootstrap-server", broker.bootstrap])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def rafka_json(broker: BrokerProcess, *args: str) -> Any:
    return json.loads(rafka(broker, *args, "--json").stdout)


def failed(broker: BrokerProcess, *args: str) -> str:
    """The one error line of a command that must fail with exit code 1."""
    result = rafka(broker, *args, ok=False)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rafka: error: "), result.stderr
    return lines[0]


def topic_configs(broker: BrokerProcess, topic: str) -> dict[str, Any]:
    admin = confluent_admin(broker.bootstrap)
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    return future.result(timeout=15)


def test_topic_commands(broker) -> None:
    created = rafka(
        broker, "topic", "create", "--topic", "orders", "--partitions", "3",
        "--config", "retention.ms=3600000", "--config", "cleanup.policy=[compact,delete]",
    )  # fmt: skip
    assert created.stdout == "Created topic orders.\n"
    assert rafka_json(
        broker, "topic", "create", "-t", "assigned", "--replica-assignment", "1,1"
    ) == {
        "topic": "assigned",
        "created": True,
        "topic_id": rafka_json(broker, "topic", "list")[0]["topic_id"],
        "partitions": 2,
        "replication_factor": 1,
    }
    assert "TOPIC_ALREADY_EXISTS" in failed(broker, "topic", "create", "-t", "orders")
    assert rafka(broker, "topic", "create", "-t", "orders", "--if-not-exists").stdout == (
        "Topic orders already exists.\n"
    )
    assert "INVALID_TOPIC_EXCEPTION" in failed(broker, "topic", "create", "-t", "bad name")
    assert "INVALID_CONFIG" in failed(broker, "topic", "create", "-t", "x", "-c", "retention.ms=x")
    assert "INVALID_REPLICATION_FACTOR" in failed(broker, "topic", "create", "-t", "x", "-r", "3")
    assert rafka(broker, "topic", "create", "-t", "dry", "--validate-only").stdout == (
        "Topic dry can be created.\n"
    )

    assert rafka(broker, "topic", "list").stdout == "assigned\norders\n"
    listed = rafka_json(broker, "topic", "list")
    assert [(t["name"], t["partitions"], t["internal"]) for t in listed] == [
        ("assigned", 2, False),
        ("orders", 3, False),
    ]

    table = rafka(broker, "topic", "describe", "-t", "orders").stdout.splitlines()
    assert table[0].startswith("Topic: orders  TopicId: ")
    assert "PartitionCount: 3  ReplicationFactor: 1" in table[0]
    assert table[0].endswith("Configs: cleanup.policy=compact,delete,retention.ms=3600000")
    assert table[1].split() == ["PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE"]
    assert [row.split() for row in table[2:]] == [[str(p), "1", "1", "1", "-"] for p in range(3)]
    (described,) = rafka_json(broker, "topic", "describe", "-t", "orders")
    assert described["configs"] == {"cleanup.policy": "compact,delete", "retention.ms": "3600000"}
    assert [p["leader"] for p in described["partitions"]] == [1, 1, 1]
    assert "UNKNOWN_TOPIC_OR_PARTITION" in failed(broker, "topic", "describe", "-t", "nope")

    altered = rafka(
        broker, "topic", "alter", "-t", "orders", "--partitions", "5",
        "--config", "segment.ms=600000", "--delete-config", "retention.ms",
    )  # fmt: skip
    assert altered.stdout == (
        "Topic orders now has 5 partitions.\nUpdated the configs of topic orders.\n"
    )
    configs = topic_configs(broker, "orders")
    assert configs["segment.ms"].value == "600000"
    assert configs["retention.ms"].value == "604800000"
    assert (
        len(confluent_admin(broker.bootstrap).list_topics("orders").topics["orders"].partitions)
        == 5
    )
    assert "INVALID_PARTITIONS" in failed(broker, "topic", "alter", "-t", "orders", "-p", "2")
    assert "nothing to alter" in failed(broker, "topic", "alter", "-t", "orders")

    deleted = rafka(broker, "topic", "delete", "-t", "orders", "-t", "assigned")
    assert deleted.stdout == "Deleted topic orders.\nDeleted topic assigned.\n"
    assert "UNKNOWN_TOPIC_OR_PARTITION" in failed(broker, "topic", "delete", "-t", "orders")
    assert rafka_json(broker, "topic", "delete", "-t", "orders", "--if-exists") == [
        {"topic": "orders", "deleted": False, "error": None}
    ]
    assert rafka(broker, "topic", "list").stdout == ""


def test_configs_commands(broker) -> None:
    rafka(broker, "topic", "create", "-t", "tuned")
    altered = rafka(
        broker, "configs", "alter", "--topic", "tuned",
        "--add-config", "retention.ms=60000,cleanup.policy=[delete,compact]",
    )  # fmt: skip
    assert altered.stdout == "Completed updating config for topic tuned.\n"
    table = rafka(broker, "configs", "describe", "--topic", "tuned").stdout.splitlines()
    assert table[0] == "Dynamic configs for topic tuned:"
    assert [row.split() for row in table[1:]] == [
        ["NAME", "VALUE", "SOURCE", "READ-ONLY", "SENSITIVE"],
        ["cleanup.policy", "delete,compact", "DYNAMIC_TOPIC_CONFIG", "false", "false"],
        ["retention.ms", "60000", "DYNAMIC_TOPIC_CONFIG", "false", "false"],
    ]
    rafka(
        broker, "configs", "alter", "--topic", "tuned",
        "--subtract-config", "cleanup.policy=delete", "--delete-config", "retention.ms",
    )  # fmt: skip
    described = rafka_json(broker, "configs", "describe", "--topic", "tuned")
    assert [(c["name"], c["value"]) for c in described["configs"]] == [
        ("cleanup.policy", "compact")
    ]
    every = rafka_json(broker, "configs", "describe", "--topic", "tuned", "--all")["configs"]
    by_name = {c["name"]: c for c in every}
    assert by_name["retention.ms"]["source"] == "DEFAULT_CONFIG"
    assert by_name["segment.bytes"]["value"] == "1073741824"

    assert "INVALID_CONFIG" in failed(
        broker, "configs", "alter", "--topic", "tuned", "--add-config", "retention.ms=soon"
    )
    assert "INVALID_CONFIG" in failed(
        broker, "configs", "alter", "--topic", "tuned", "--append-config", "retention.ms=1"
    )
    assert "UNKNOWN_TOPIC_OR_PARTITION" in failed(
        broker, "configs", "describe", "--topic", "missing"
    )
    assert "exactly one of" in failed(
        broker, "configs", "describe", "--topic", "t", "--broker", "1"
    )

    # Broker configs: one broker and the cluster-wide defaults.
    rafka(broker, "configs", "alter", "--broker", "1", "--add-config", "log.retention.ms=7200000")
    rafka(broker, "configs", "alter", "--broker-defaults", "--add-config",
          "log.cleaner.backoff.ms=500")  # fmt: skip
    own = rafka_json(broker, "configs", "describe", "--broker", "1")["configs"]
    assert [(c["name"], c["value"], c["source"]) for c in own] == [
        ("log.cleaner.backoff.ms", "500", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
        ("log.retention.ms", "7200000", "DYNAMIC_BROKER_CONFIG"),
    ]
    defaults = rafka(broker, "configs", "describe", "--broker-defaults").stdout.splitlines()
    assert defaults[0] == "Dynamic configs for the broker defaults:"
    assert defaults[2].split()[:3] == ["log.cleaner.backoff.ms", "500",
                                       "DYNAMIC_DEFAULT_BROKER_CONFIG"]  # fmt: skip
    full = rafka_json(broker, "configs", "describe", "--broker", "1", "--all")["configs"]
    assert {c["name"]: c["read_only"] for c in full}["node.id"] is True
    assert "INVALID_REQUEST" in failed(
        broker, "configs", "alter", "--broker", "1", "--add-config", "node.id=3"
    )
    assert "broker 2 is not in the cluster" in failed(
        broker, "configs", "describe", "--broker", "2"
    )
    # The topic default follows the dynamic broker config.
    assert topic_configs(broker, "tuned")["retention.ms"].value == "7200000"


def test_config_change_from_the_cli_is_enforced(broker) -> None:
    rafka(broker, "topic", "create", "-t", "limited")
    rafka(broker, "configs", "alter", "--topic", "limited", "--add-config", "max.message.bytes=500")
    offsets = produce(broker.bootstrap, "limited", [(None, b"small")])
    assert [m.value() for m in read_all(broker.bootstrap, "limited", offsets[0] + 1)] == [b"small"]
    with pytest.raises(AssertionError, match="MSG_SIZE_TOO_LARGE"):
        produce(broker.bootstrap, "limited", [(None, b"x" * 1000)], retries=0)


def test_cluster_describe(broker) -> None:
    rafka(broker, "topic", "create", "-t", "a", "-p", "2")
    cluster = rafka_json(broker, "cluster", "describe")
    metadata = confluent_admin(broker.bootstrap).list_topics(timeout=10)
    for extra in ("quorum", "under_replicated", "under_replicated_partitions"):
        cluster.pop(extra)
    assert cluster == {
        "cluster_id": metadata.cluster_id,
        "controller_id": 1,
        "brokers": [{"id": 1, "host": "127.0.0.1", "port": broker.port, "rack": None}],
        "topics": 1,
        "internal_topics": 0,
        "partitions": 2,
        "offline_partitions": 0,
    }
    lines = rafka(broker, "cluster", "describe").stdout.splitlines()
    assert lines[0].split() == ["Cluster", "ID:", metadata.cluster_id]
    assert lines[1].split() == ["Controller:", "1"]
    assert lines[-2].split() == ["BROKER", "HOST", "PORT", "RACK", "CONTROLLER"]
    assert lines[-1].split() == ["1", "127.0.0.1", str(broker.port), "-", "yes"]


def test_unreachable_server_and_the_installed_entry_point(broker) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rafka", "topic", "list", "--bootstrap-server", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("rafka: error: cannot connect to 127.0.0.1:1")
    result = subprocess.run(
        [sys.executable, "-m", "rafka", "cluster", "describe", "--json",
         "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["controller_id"] == 1
