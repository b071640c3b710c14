"""SCRAM users seeded at first start (`rafka broker --add-scram`, Kafka's `kafka-storage format
--add-scram`) and managed with `rafka configs --user` (kafka-configs' --entity-type users), then
used by a real client (issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from broker_process import BrokerProcess, free_port
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.timeout(120)


STARTED: list[BrokerProcess] = []


@pytest.fixture(autouse=True)
def _kill_started():
    """Every broker a test started is killed by PID afterwards, whatever happened."""
    yield
    while STARTED:
        STARTED.pop().kill()


def scram_broker(tmp_path, plain: int, sasl: int, *extra: str) -> BrokerProcess:
    broker = BrokerProcess(
        tmp_path / "data", plain, extra_args=extra,
        **{"listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
           "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512"},
    )  # fmt: skip
    STARTED.append(broker)
    return broker.start()


def logs_in(sasl: int, mechanism: str, user: str, password: str) -> bool:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{sasl}", "log_level": 0,
                         "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                         "sasl.username": user, "sasl.password": password})  # fmt: skip
    try:
        admin.list_topics(timeout=5)
    except KafkaException:
        return False
    return True


def rafka_configs(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rafka", "configs", *args, "--bootstrap-server", bootstrap],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_seeded_at_first_start_and_never_overwritten(tmp_path) -> None:
    plain, sasl = free_port(), free_port()
    seed = "SCRAM-SHA-512=[name=carol,password=carol-secret]"
    broker = scram_broker(tmp_path, plain, sasl, "--add-scram", seed)
    assert logs_in(sasl, "SCRAM-SHA-512", "carol", "carol-secret")
    assert not logs_in(sasl, "SCRAM-SHA-512", "carol", "wrong")
    broker.stop()
    # Restarted with another password for her: the one already there stays.
    again = scram_broker(tmp_path, plain, sasl, "--add-scram",
                         "SCRAM-SHA-512=[name=carol,password=changed]")  # fmt: skip
    assert logs_in(sasl, "SCRAM-SHA-512", "carol", "carol-secret")
    again.kill()


def test_rafka_configs_manages_scram_users(tmp_path) -> None:
    plain, sasl = free_port(), free_port()
    broker = scram_broker(tmp_path, plain, sasl)
    added = rafka_configs(broker.bootstrap, "alter", "--user", "dave", "--add-config",
                          "SCRAM-SHA-256=[iterations=8192,password=dave-secret]")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert logs_in(sasl, "SCRAM-SHA-256", "dave", "dave-secret")
    described = rafka_configs(broker.bootstrap, "describe", "--user", "dave")
    assert described.stdout.strip() == (
        "SCRAM credential configs for user-principal 'dave' are SCRAM-SHA-256=iterations=8192"
    )
    deleted = rafka_configs(broker.bootstrap, "alter", "--user", "dave", "--delete-config",
                            "SCRAM-SHA-256")  # fmt: skip
    assert deleted.returncode == 0, deleted.stderr
    listed = json.loads(rafka_configs(broker.bootstrap, "describe", "--user", "dave",
                                      "--json").stdout)  # fmt: skip
    assert listed["users"] == {"dave": []}
    assert not logs_in(sasl, "SCRAM-SHA-256", "dave", "dave-secret")
    broker.kill()
