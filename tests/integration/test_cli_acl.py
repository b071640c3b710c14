"""`rafka acl` with kafka-acls' flags against a broker with ACLs, authenticated as the super user
through --command-config (issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from acl_support import acl_broker

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def as_admin(tmp_path_factory):
    broker = acl_broker(tmp_path_factory.mktemp("data")).start()
    config = tmp_path_factory.mktemp("client") / "admin.properties"
    config.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="admin" password="admin-secret";\n'
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rafka", "acl", "--bootstrap-server", broker.sasl_bootstrap,
             "--command-config", str(config), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    yield run
    broker.kill()


def test_add_list_remove(as_admin) -> None:
    added = as_admin("--add", "--allow-principal", "User:alice", "--operation", "Write",
                     "--operation", "Describe", "--topic", "orders")  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = as_admin("--list", "--topic", "orders")
    assert listed.stdout.splitlines()[:3] == [
        "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, "
        "patternType=LITERAL)`: ",
        " \t(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)",
        " \t(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)",
    ]
    removed = as_admin("--remove", "--allow-principal", "User:alice", "--operation", "Write",
                       "--topic", "orders", "--force")  # fmt: skip
    assert removed.stdout.strip() == "Removed 1 ACL(s)."
    left = json.loads(as_admin("--list", "--topic", "orders", "--json").stdout)
    assert [(a["principal"], a["operation"]) for a in left] == [("User:alice", "DESCRIBE")]


def test_producer_and_consumer_conveniences(as_admin) -> None:
    assert as_admin("--add", "--allow-principal", "User:bob", "--producer", "--topic", "pay-",
                    "--resource-pattern-type", "prefixed").returncode == 0  # fmt: skip
    assert as_admin("--add", "--allow-principal", "User:bob", "--consumer", "--topic", "audit",
                    "--group", "auditors").returncode == 0  # fmt: skip
    rows = json.loads(as_admin("--list", "--principal", "User:bob", "--json").stdout)
    got = {(a["resource_type"], a["resource_name"], a["pattern_type"], a["operation"])
           for a in rows}  # fmt: skip
    assert got == {
        ("TOPIC", "pay-", "PREFIXED", "WRITE"), ("TOPIC", "pay-", "PREFIXED", "DESCRIBE"),
        ("TOPIC", "pay-", "PREFIXED", "CREATE"), ("TOPIC", "audit", "LITERAL", "READ"),
        ("TOPIC", "audit", "LITERAL", "DESCRIBE"), ("GROUP", "auditors", "LITERAL", "READ"),
    }  # fmt: skip


def test_bad_flags_are_one_line(as_admin) -> None:
    for args in (["--add", "--list"], ["--add", "--topic", "t", "--operation", "Read"],
                 ["--add", "--allow-principal", "User:a", "--operation", "Fly", "--topic", "t"]):
        result = as_admin(*args)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, args
