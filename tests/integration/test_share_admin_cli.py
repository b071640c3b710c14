"""`rafka group` for share groups (KIP-932, issue 20), as kafka-share-groups.sh: list --type
share, describe (offsets: start offset and lag; --members; --state), reset-offsets (only once the
group has no members), delete-offsets and delete, against a live broker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from broker_process import BrokerProcess
from confluent_kafka.admin import AdminClient, NewTopic
from raw_client import RawClient
from share_support import ADMIN_PARTITIONS as PARTITIONS
from share_support import ADMIN_TOPIC as TOPIC
from share_support import (
    acquired,
    find_coordinator,
    heartbeat,
    join,
    produce,
    share_fetch,
)
from typer.testing import CliRunner

from rafka.cli.main import app
from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(120)

GROUP = "cli-share"
runner = CliRunner()


def rafka(broker: BrokerProcess, *args: str, ok: bool = True) -> Any:
    result = runner.invoke(app, ["group", *args, "--bootstrap-server", broker.bootstrap])
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
    return result


def rafka_json(broker: BrokerProcess, *args: str) -> Any:
    return json.loads(rafka(broker, *args, "--json").stdout)


def table(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if line.strip()]


def starts(broker: BrokerProcess) -> dict[tuple[str, int], tuple[int | None, int | None]]:
    described = rafka_json(broker, "describe", "-g", GROUP)
    return {
        (o["topic"], o["partition"]): (o["start_offset"], o["lag"]) for o in described["offsets"]
    }


def test_group_cli_for_share_groups(broker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    produce(broker.bootstrap, {0: 8, 1: 3})
    with RawClient(broker.bootstrap) as client:
        find_coordinator(client, GROUP)
        _, topic_id = join(client, GROUP, "member-1")
        assert acquired(share_fetch(client, GROUP, "member-1", 0, topic_id)) == []

        listed = rafka_json(broker, "list", "--type", "share")
        assert listed == [
            {"group": GROUP, "state": "Stable", "protocol_type": "share", "type": "share"}
        ]
        assert rafka_json(broker, "list", "--type", "consumer") == []
        described = rafka_json(broker, "describe", "-g", GROUP)
        assert (described["type"], described["state"], described["assignment_strategy"]) == (
            "share",
            "Stable",
            "simple",
        )
        (member,) = described["members"]
        assert member["member_id"] == "member-1"
        assert member["assignment"] == [{"topic": TOPIC, "partition": p} for p in range(2)]
        assert starts(broker) == {(TOPIC, 0): (8, 0), (TOPIC, 1): (None, None)}
        members = table(rafka(broker, "describe", "-g", GROUP, "--members").stdout)
        assert members[0] == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS",
                              "ASSIGNMENT"]  # fmt: skip
        assert members[1][:2] == [GROUP, "member-1"] and members[1][-2:] == ["2", f"{TOPIC}:0,1"]
        state = table(rafka(broker, "describe", "-g", GROUP, "--state", "--verbose").stdout)
        assert state[0][-3:] == ["GROUP-EPOCH", "ASSIGNMENT-EPOCH", "#MEMBERS"]
        assert state[1][0] == GROUP and "Stable" in state[1] and state[1][-1] == "1"

        busy = rafka(broker, "reset-offsets", "-g", GROUP, "--all-topics", "--to-earliest",
                     "--execute", ok=False)  # fmt: skip
        assert "inactive, but the current state is Stable" in busy.output
        assert heartbeat(client, GROUP, "member-1", -1).error_code == ErrorCode.none

    offsets = table(rafka(broker, "describe", "-g", GROUP).stdout)
    assert offsets[0] == ["Share", "group", f"'{GROUP}'", "has", "no", "active", "members."]
    assert offsets[1] == ["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"]
    assert offsets[2:] == [[GROUP, TOPIC, "0", "8", "0"], [GROUP, TOPIC, "1", "-", "-"]]

    # A dry run changes nothing; --execute resets both partitions to their log start.
    planned = rafka_json(broker, "reset-offsets", "-g", GROUP, "--topic", TOPIC, "--to-earliest")
    assert not planned["executed"]
    assert [(o["partition"], o["new_offset"]) for o in planned["offsets"]] == [(0, 0), (1, 0)]
    assert starts(broker)[(TOPIC, 0)] == (8, 0)
    reset = rafka_json(broker, "reset-offsets", "-g", GROUP, "--all-topics", "--to-earliest",
                       "--execute")  # fmt: skip
    assert reset["executed"] and all(o["error"] is None for o in reset["offsets"])
    assert starts(broker) == {(TOPIC, 0): (0, 8), (TOPIC, 1): (0, 3)}
    # --shift-by moves from the start offsets; --to-latest to the log end.
    rafka(broker, "reset-offsets", "-g", GROUP, "--topic", f"{TOPIC}:0", "--shift-by", "5",
          "--execute")  # fmt: skip
    rafka(broker, "reset-offsets", "-g", GROUP, "--topic", f"{TOPIC}:1", "--to-latest",
          "--execute")  # fmt: skip
    assert starts(broker) == {(TOPIC, 0): (5, 3), (TOPIC, 1): (3, 0)}

    deleted = rafka_json(broker, "delete-offsets", "-g", GROUP, "--topic", TOPIC)
    assert deleted == [{"topic": TOPIC, "error": None}]
    assert starts(broker) == {}
    refused = rafka(broker, "delete-offsets", "-g", GROUP, "--topic", TOPIC, ok=False)
    assert "There is no offset information to delete." in refused.output
    missing = rafka(broker, "delete-offsets", "-g", "nobody", "--topic", TOPIC, ok=False)
    assert "not a share group" in missing.output

    assert rafka(broker, "delete", "-g", GROUP).stdout == f"Deleted share group '{GROUP}'.\n"
    assert rafka_json(broker, "list", "--type", "share") == []
    assert "does not exist" in rafka(broker, "describe", "-g", GROUP).stdout


def test_configs_cli_sets_share_auto_offset_reset(broker) -> None:
    """`rafka configs --group` (kafka-configs' --entity-type groups): earliest, then a new
    share partition of the group starts at the log start."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    produce(broker.bootstrap, {0: 5})

    def configs(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(
            app, ["configs", *args, "--group", GROUP, "--bootstrap-server", broker.bootstrap]
        )
        assert result.exit_code == (0 if ok else 1), result.output
        return result

    configs("alter", "--add-config", "share.auto.offset.reset=earliest")
    refused = configs("alter", "--add-config", "share.auto.offset.reset=soon", ok=False)
    assert "INVALID_CONFIG" in refused.output
    described = json.loads(configs("describe", "--json").stdout)
    assert described["configs"] == [
        {
            "name": "share.auto.offset.reset",
            "value": "earliest",
            "source": "GROUP_CONFIG",
            "read_only": False,
            "sensitive": False,
        }
    ]
    with RawClient(broker.bootstrap) as client:
        find_coordinator(client, GROUP)
        _, topic_id = join(client, GROUP, "member-1")
        got = share_fetch(client, GROUP, "member-1", 0, topic_id, wait_ms=5000)
        assert acquired(got) == [(0, 4, 1)]
