"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51): SCRAM users live in
the cluster metadata log (replicated, kept across restarts) as salt, keys and iterations; the
client salts the password (kafka-configs --add-config 'SCRAM-SHA-256=[password=...]'), the
password itself never reaches the broker. Alter is the controller's (forwarded), with Kafka's
checks and error codes. Describing needs DESCRIBE on the cluster, altering ALTER on it."""

from __future__ import annotations

from typing import Any

import structlog

from rafka.broker.broker import Broker
from rafka.broker.net.dispatch import RequestContext
from rafka.broker.partition.append import AppendError
from rafka.broker.security.acl import CLUSTER_NAME, Operation, ResourceType
from rafka.broker.security.sasl import (
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    SCRAM_SHA_256,
    SCRAM_SHA_512,
    scram_credential,
    scram_record,
)
from rafka.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

# The mechanism as the protocol numbers it (Kafka's ScramMechanism).
MECHANISMS = {1: SCRAM_SHA_256, 2: SCRAM_SHA_512}
MECHANISM_TYPES = {name: number for number, name in MECHANISMS.items()}


def make_describe_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        assert broker.metadata is not None
        if not ctx.authorize(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
            denied = ErrorCode.cluster_authorization_failed
            return {
                "throttle_time": 0,
                "error_code": denied,
                "error_message": None,
                "results": [
                    _user_error(user.name, denied, None) for user in request.users or ()
                ],
            }
        credentials = broker.metadata.image.scram_credentials
        by_user: dict[str, list[dict[str, int]]] = {}
        for (user, mechanism), credential in sorted(credentials.items()):
            by_user.setdefault(user, []).append(
                {"mechanism": MECHANISM_TYPES[mechanism], "iterations": credential.iterations}
            )
        if request.users is None or not request.users:  # every user
            results = [_described(user, infos) for user, infos in by_user.items()]
            return {"throttle_time": 0, "error_code": 0, "error_message": None, "results": results}
        names = [user.name for user in request.users]
        results = []
        for name in dict.fromkeys(names):
            if names.count(name) > 1:
                results.append(_user_error(name, ErrorCode.duplicate_resource,
                                           f"Cannot describe SCRAM credentials for the same user "
                                           f"twice in a single request: {name}"))  # fmt: skip
            elif name not in by_user:
                results.append(_user_error(name, ErrorCode.resource_not_found,
                                           f"Attempt to describe nonexistent SCRAM credential "
                                           f"for user {name}"))  # fmt: skip
            else:
                results.append(_described(name, by_user[name]))
        return {"throttle_time": 0, "error_code": 0, "error_message": None, "results": results}

    return handle


def _described(user: str, infos: list[dict[str, int]]) -> dict[str, Any]:
    return {"user": user, "error_code": 0, "error_message": None, "credential_infos": infos}


def _user_error(user: str, code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {"user": user, "error_code": code, "error_message": message, "credential_infos": []}


_TWICE = "A user credential cannot be altered twice in the same request"
_NO_SUCH = "Attempt to delete a user credential that does not exist"


def make_alter_handler(broker: Broker):
    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        assert broker.metadata is not None
        existing = broker.metadata.image.scram_credentials
        changes = [(d.name, d.mechanism, None) for d in request.deletions]
        changes += [(u.name, u.mechanism, u) for u in request.upsertions]
        users = [name for name, _, _ in changes]
        if not ctx.authorize(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
            denied = ErrorCode.cluster_authorization_failed
            results = [
                {"user": name, "error_code": denied, "error_message": None}
                for name in sorted(set(users))
            ]
            return {"throttle_time": 0, "results": results}
        # Kafka's order of checks (ScramControlManager.alterCredentials): deletions, then
        # upsertions; a user's first refusal stands, and a user named again is a duplicate.
        errors: dict[str, tuple[ErrorCode, str]] = {}
        deleted: dict[str, dict[str, Any]] = {}
        upserted: dict[str, dict[str, Any]] = {}
        for name, number, upsertion in changes:
            if name in errors:
                continue
            if name in upserted or name in deleted:
                (upserted if name in upserted else deleted).pop(name)
                errors[name] = (ErrorCode.duplicate_resource, _TWICE)
                continue
            outcome = _record(name, MECHANISMS.get(int(number)), upsertion, existing)
            if not isinstance(outcome, dict):
                errors[name] = outcome
            else:
                (deleted if upsertion is None else upserted)[name] = outcome
        records = [*deleted.values(), *upserted.values()]
        if records:
            try:
                await broker.metadata.wait_caught_up_as_leader(5.0)
                await broker.metadata.propose(records)
            except AppendError as exc:
                for record in records:
                    errors.setdefault(record["name"], (exc.code, exc.message))
            else:
                log.info("SCRAM credentials altered", users=sorted({r["name"] for r in records}))
        results = [
            {"user": r["name"], "error_code": ErrorCode.none, "error_message": None}
            for r in records if r["name"] not in errors
        ]
        results += [
            {"user": name, "error_code": code, "error_message": message}
            for name, (code, message) in errors.items()
        ]
        return {"throttle_time": 0, "results": results}

    return handle


def _record(
    name: str, mechanism: str | None, upsertion: Any, existing: dict
) -> dict[str, Any] | tuple[ErrorCode, str]:
    """The metadata record of one change, or the error Kafka answers it with."""
    if not name:
        return ErrorCode.unacceptable_credential, "Username must not be empty"
    if mechanism is None:
        return ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism"
    if upsertion is None:
        if (name, mechanism) not in existing:
            return ErrorCode.resource_not_found, _NO_SUCH
        return {"type": "scram_credential", "name": name, "mechanism": mechanism, "deleted": True}
    if upsertion.iterations < MIN_ITERATIONS:
        return ErrorCode.unacceptable_credential, "Too few iterations"
    if upsertion.iterations > MAX_ITERATIONS:
        return ErrorCode.unacceptable_credential, "Too many iterations"
    if not upsertion.salt or not upsertion.salted_password:
        return ErrorCode.unacceptable_credential, "Salt and salted password are required"
    credential = scram_credential(
        mechanism, bytes(upsertion.salted_password), bytes(upsertion.salt), upsertion.iterations
    )
    return scram_record(name, mechanism, credential)


def make_describe_client_quotas_handler():
    """DescribeClientQuotas (48): rafka enforces no client quotas, so none is configured.
    kafka-configs --describe --entity-type users asks it beside the SCRAM credentials. As in
    Kafka it needs DESCRIBE_CONFIGS on the cluster."""

    async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
        if not ctx.authorize(Operation.DESCRIBE_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME):
            return {
                "throttle_time": 0,
                "error_code": ErrorCode.cluster_authorization_failed,
                "error_message": None,
                "entries": None,
            }
        return {"throttle_time": 0, "error_code": 0, "error_message": None, "entries": []}

    return handle
