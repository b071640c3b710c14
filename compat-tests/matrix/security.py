"""The security scenarios' side of the broker: certificates made for the run (trustme), the
listeners run.py adds to the rafka broker (SASL_SSL with PLAIN and SCRAM-SHA-512, SSL with
client certificates required), the SCRAM user it creates, and what the suites are told.

A suite gets, besides COMPAT_BOOTSTRAP:
- COMPAT_SASL_SSL_BOOTSTRAP: a SASL_SSL listener serving PLAIN and SCRAM-SHA-512;
- COMPAT_MTLS_BOOTSTRAP: an SSL listener that requires a client certificate;
- COMPAT_CA_PEM: the CA certificate (PEM file) that signed the broker's and the client's;
- COMPAT_CLIENT_CERT_PEM, COMPAT_CLIENT_KEY_PEM: the client's certificate and its private key
  (PKCS#8, unencrypted), COMPAT_CLIENT_PEM: both in one file (key first, as Java's PEM key
  store reads them);
- COMPAT_PLAIN_USER / COMPAT_PLAIN_PASSWORD and COMPAT_SCRAM_USER / COMPAT_SCRAM_PASSWORD.
The broker has ACLs on (StandardAuthorizer) with allow.everyone.if.no.acl.found: anyone may do
what no ACL names, so the plain listener's clients (User:ANONYMOUS) may create ACLs as long as
none names the cluster; security-acl creates ACLs on its own topic only.
Without these (a broker run.py did not start, --bootstrap), the security scenarios are skipped.
"""

from __future__ import annotations

from pathlib import Path

PLAIN_USER, PLAIN_PASSWORD = "compat-plain", "plain-secret"
SCRAM_USER, SCRAM_PASSWORD = "compat-scram", "scram-secret"
SCENARIOS = ("security-sasl-plain", "security-sasl-scram", "security-mtls", "security-acl")


class SecuritySetup:
    """Certificates in `directory`, and the broker settings and suite environment that use them."""

    def __init__(self, directory: Path) -> None:
        import trustme
        from cryptography.hazmat.primitives import serialization

        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="rafka compat")
        server = ca.issue_cert("localhost", "127.0.0.1")
        client = ca.issue_cert("compat-client", common_name="compat-client")
        key = serialization.load_pem_private_key(client.private_key_pem.bytes(), None)
        pkcs8 = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        chain = b"".join(blob.bytes() for blob in client.cert_chain_pems)
        self.files = {
            "ca": self._write(directory / "ca.pem", ca.cert_pem.bytes()),
            "server": self._write(
                directory / "server.pem", server.private_key_and_cert_chain_pem.bytes()
            ),
            "client_cert": self._write(directory / "client.crt", chain),
            "client_key": self._write(directory / "client.key", pkcs8),
            "client": self._write(directory / "client.pem", pkcs8 + chain),
        }

    @staticmethod
    def _write(path: Path, data: bytes) -> str:
        path.write_bytes(data)
        return str(path)

    def broker_settings(self, plain_port: int, sasl_port: int, mtls_port: int) -> dict[str, str]:
        jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{PLAIN_USER}="{PLAIN_PASSWORD}";'
        )
        listeners = (
            f"PLAINTEXT://127.0.0.1:{plain_port},SASL_SSL://127.0.0.1:{sasl_port},"
            f"MTLS://127.0.0.1:{mtls_port}"
        )
        return {
            "listeners": listeners,
            "advertised.listeners": listeners,
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL,CONTROLLER:PLAINTEXT"
            ),
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
            "ssl.keystore.location": self.files["server"],
            "ssl.truststore.location": self.files["ca"],
            "listener.name.mtls.ssl.client.auth": "required",
            # ACLs on, but a resource no ACL names stays open to everyone: every other
            # scenario runs as before (through the authorizer), and security-acl names its
            # topic in an ACL to close it.
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "true",
        }

    def create_scram_user(self, plaintext_bootstrap: str) -> None:
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": plaintext_bootstrap})
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        upsertion = UserScramCredentialUpsertion(SCRAM_USER, info, SCRAM_PASSWORD.encode())
        for future in admin.alter_user_scram_credentials([upsertion]).values():
            future.result(30)

    def suite_env(self, sasl_port: int, mtls_port: int) -> dict[str, str]:
        return {
            "COMPAT_SASL_SSL_BOOTSTRAP": f"127.0.0.1:{sasl_port}",
            "COMPAT_MTLS_BOOTSTRAP": f"127.0.0.1:{mtls_port}",
            "COMPAT_CA_PEM": self.files["ca"],
            "COMPAT_CLIENT_CERT_PEM": self.files["client_cert"],
            "COMPAT_CLIENT_KEY_PEM": self.files["client_key"],
            "COMPAT_CLIENT_PEM": self.files["client"],
            "COMPAT_PLAIN_USER": PLAIN_USER,
            "COMPAT_PLAIN_PASSWORD": PLAIN_PASSWORD,
            "COMPAT_SCRAM_USER": SCRAM_USER,
            "COMPAT_SCRAM_PASSWORD": SCRAM_PASSWORD,
        }
