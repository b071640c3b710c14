"""SCRAM users for `rafka configs --user` (kafka-configs' `--entity-type users`) and for the
broker's `--add-scram`: Kafka's `SCRAM-SHA-256=[iterations=8192,password=...]` syntax, the
password salted here (DescribeUserScramCredentials / AlterUserScramCredentials carry the salt
and the salted password, never the password)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from rafka.broker.security.sasl import MIN_ITERATIONS, SCRAM_MECHANISMS, salt_password
from rafka.cli.admin_client import AdminClient, AdminRequestError
from rafka.cli.kafka_client import KafkaClientError
from rafka.protocol.errors import ErrorCode

DESCRIBE_USER_SCRAM_CREDENTIALS, ALTER_USER_SCRAM_CREDENTIALS = 50, 51
MECHANISM_TYPES = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
MECHANISM_NAMES = {number: name for name, number in MECHANISM_TYPES.items()}
_ENTRY = re.compile(r"(SCRAM-SHA-(?:256|512))=\[([^\]]*)\]")


@dataclass(frozen=True, slots=True)
class ScramSetting:
    mechanism: str
    password: str
    iterations: int = MIN_ITERATIONS
    name: str | None = None  # --add-scram names the user inside the brackets

    def salted(self) -> tuple[bytes, bytes]:
        """(a fresh salt, the password salted with it): all that leaves this process."""
        salt = secrets.token_bytes(32)
        return salt, salt_password(self.mechanism, self.password, salt, self.iterations)

    def upsertion(self, user: str) -> dict[str, Any]:
        salt, salted = self.salted()
        return {"name": user, "mechanism": MECHANISM_TYPES[self.mechanism],
                "iterations": self.iterations, "salt": salt, "salted_password": salted}  # fmt: skip


def parse_scram_settings(text: str) -> list[ScramSetting]:
    """`SCRAM-SHA-256=[iterations=8192,password=alice-secret],SCRAM-SHA-512=[...]`; ValueError
    with the reason otherwise."""
    settings, rest = [], text
    for match in _ENTRY.finditer(text):
        options: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in match.group(2).split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r} in {match.group(0)!r} is not key=value")
            options[key.strip()] = value.strip()
        if "password" not in options:
            raise ValueError(f"{match.group(1)} needs a password")
        unknown = set(options) - {"password", "iterations", "name"}
        if unknown:
            raise ValueError(f"{match.group(1)}: unknown {', '.join(sorted(unknown))}")
        iterations = int(options.get("iterations", MIN_ITERATIONS))
        settings.append(ScramSetting(match.group(1), options["password"], iterations,
                                     options.get("name")))  # fmt: skip
        rest = rest.replace(match.group(0), "", 1)
    if rest.strip(", ") or not settings:
        raise ValueError(f"{text!r}: expected SCRAM-SHA-256=[password=...] or SCRAM-SHA-512=[...]")
    return settings


def _call(client: AdminClient, api_key: int, data: dict[str, Any]) -> Any:
    conn = client._any()  # noqa: SLF001 - the admin client's connection, as its methods use
    if api_key not in conn.versions:
        raise KafkaClientError(f"{conn.address} does not support the SCRAM user APIs")
    return conn.send(api_key, 0, data)


def describe_users(client: AdminClient, users: list[str] | None) -> dict[str, list[tuple]]:
    """{user: [(mechanism, iterations)]}; all users when `users` is None."""
    wanted = None if users is None else [{"name": u} for u in users]
    response = _call(client, DESCRIBE_USER_SCRAM_CREDENTIALS, {"users": wanted})
    if response.error_code != ErrorCode.none:
        raise AdminRequestError("DescribeUserScramCredentials", response.error_code,
                                response.error_message)  # fmt: skip
    out: dict[str, list[tuple]] = {}
    for result in response.results:
        if result.error_code == ErrorCode.resource_not_found:
            out[result.user] = []
            continue
        if result.error_code != ErrorCode.none:
            raise AdminRequestError(f"user {result.user!r}", result.error_code,
                                    result.error_message)  # fmt: skip
        out[result.user] = [(MECHANISM_NAMES.get(i.mechanism, str(i.mechanism)), i.iterations)
                            for i in result.credential_infos]  # fmt: skip
    return out


def alter_users(
    client: AdminClient, upserts: list[tuple[str, ScramSetting]], deletes: list[tuple[str, str]]
) -> None:
    for mechanism in [m for _, m in deletes]:
        if mechanism not in SCRAM_MECHANISMS:
            raise KafkaClientError(f"{mechanism} is not a SCRAM mechanism")
    data = {
        "deletions": [{"name": u, "mechanism": MECHANISM_TYPES[m]} for u, m in deletes],
        "upsertions": [setting.upsertion(user) for user, setting in upserts],
    }
    response = _call(client, ALTER_USER_SCRAM_CREDENTIALS, data)
    for result in response.results:
        if result.error_code != ErrorCode.none:
            raise AdminRequestError(f"user {result.user!r}", result.error_code,
                                    result.error_message)  # fmt: skip
