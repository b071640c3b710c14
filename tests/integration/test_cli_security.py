"""The `rafka` client commands against secured listeners with `--command-config` (Kafka's client
keys): SASL_SSL with PLAIN and SCRAM-SHA-512, mutual TLS; a wrong password or an untrusted CA
ends the command with one line (issue 16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from broker_process import free_port
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

pytestmark = pytest.mark.timeout(120)

JAAS_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule required"
JAAS_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule required"


def rafka(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rafka", *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A broker with PLAINTEXT, SASL_SSL (PLAIN, SCRAM-SHA-512) and mTLS listeners."""
    from broker_process import BrokerProcess

    certs = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    (certs / "server.pem").write_bytes(
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.bytes()
    )
    (certs / "ca.pem").write_bytes(ca.cert_pem.bytes())
    client = ca.issue_cert("cli", common_name="cli")
    (certs / "client.pem").write_bytes(client.private_key_and_cert_chain_pem.bytes())
    plain, sasl, mtls = free_port(), free_port(), free_port()
    listeners = (
        f"PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{sasl},MTLS://127.0.0.1:{mtls}"
    )
    broker = BrokerProcess(
        tmp_path_factory.mktemp("data"),
        plain,
        **{
            "listeners": listeners,
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            "listener.name.sasl_ssl.plain.sasl.jaas.config":
                f'{JAAS_PLAIN} user_alice="alice-secret";',
            "ssl.keystore.location": str(certs / "server.pem"),
            "ssl.truststore.location": str(certs / "ca.pem"),
            "listener.name.mtls.ssl.client.auth": "required",
        },
    ).start()  # fmt: skip
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    upsertion = UserScramCredentialUpsertion("bob", info, b"bob-secret")
    for future in admin.alter_user_scram_credentials([upsertion]).values():
        future.result(20)
    yield {"sasl": f"127.0.0.1:{sasl}", "mtls": f"127.0.0.1:{mtls}", "certs": certs}
    broker.kill()


def properties(path: Path, **settings: str) -> str:
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return str(path)


@pytest.mark.parametrize(
    ("mechanism", "jaas"),
    [
        ("PLAIN", f'{JAAS_PLAIN} username="alice" password="alice-secret";'),
        ("SCRAM-SHA-512", f'{JAAS_SCRAM} username="bob" password="bob-secret";'),
    ],
)
def test_commands_over_sasl_ssl(secured, tmp_path, mechanism: str, jaas: str) -> None:
    config = properties(
        tmp_path / "client.properties",
        **{"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism,
           "sasl.jaas.config": jaas,
           "ssl.truststore.location": str(secured["certs"] / "ca.pem")},
    )  # fmt: skip
    topic = f"cli-{mechanism.lower()}"
    where = ["--bootstrap-server", secured["sasl"], "--command-config", config]
    created = rafka("topic", "create", "--topic", topic, *where)
    assert created.returncode == 0, created.stderr
    assert topic in rafka("topic", "list", *where).stdout.split()
    produced = rafka("produce", "--topic", topic, *where, stdin="one\ntwo\n")
    assert produced.returncode == 0, produced.stderr
    consumed = rafka("consume", "--topic", topic, "--from-beginning", "--max-messages", "2",
                     *where)  # fmt: skip
    assert consumed.stdout.splitlines() == ["one", "two"], consumed.stderr

    wrong = properties(tmp_path / "wrong.properties",
                       **{"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism,
                          "sasl.jaas.config": jaas.replace("-secret", "-nope"),
                          "ssl.truststore.location": str(secured["certs"] / "ca.pem")})  # fmt: skip
    refused = rafka("topic", "list", "--bootstrap-server", secured["sasl"],
                    "--command-config", wrong)  # fmt: skip
    errors = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and len(errors) == 1, refused.stderr
    assert "authentication failed" in errors[0]


def test_commands_over_mutual_tls(secured, tmp_path) -> None:
    certs = secured["certs"]
    config = properties(
        tmp_path / "mtls.properties",
        **{"security.protocol": "SSL", "ssl.truststore.location": str(certs / "ca.pem"),
           "ssl.keystore.location": str(certs / "client.pem")},
    )  # fmt: skip
    listed = rafka("topic", "list", "--bootstrap-server", secured["mtls"],
                   "--command-config", config)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    untrusted = properties(tmp_path / "untrusted.properties",
                           **{"security.protocol": "SSL"})  # fmt: skip
    refused = rafka("topic", "list", "--bootstrap-server", secured["mtls"],
                    "--command-config", untrusted)  # fmt: skip
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
