"""What every Python suite shares: the environment run.py sets, the scenario list, the sample
records, the group-rebalance checks, and the runner that reports one JSON line per scenario on
stdout.

Environment: COMPAT_BOOTSTRAP (host:port), COMPAT_PREFIX (unique prefix for topic, group and
transactional ids), COMPAT_SKIP (lines "scenario<TAB>reason" to report as skipped without running),
COMPAT_ONLY (comma-separated scenarios to run, for development), COMPAT_DEBUG (comma-separated
Python logger names to log at DEBUG on stderr, for development).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
SCENARIOS = [
    "metadata",
    *(f"produce-consume-{codec}" for codec in CODECS),
    "idempotent-produce",
    "group-rebalance",
    "commit-resume",
    "consumer-protocol",
    "share-group",
    "admin-topics",
    "admin-configs",
    "transactions",
    "txn-pipeline",
    "security-sasl-plain",
    "security-sasl-scram",
    "security-mtls",
    "security-acl",
]
RECORDS = 100
SECURED_RECORDS = 10
WAIT = 30.0  # seconds for any one condition
SCENARIO_TIMEOUT = 60.0

Headers = list[tuple[str, bytes]]


class Skip(Exception):  # noqa: N818 - it is a verdict, not an error
    """The client itself cannot do what the scenario needs (the reason says what)."""


def no_consumer_protocol(detail: str = "") -> None:
    """consumer-protocol for a client without `group.protocol=consumer` (KIP-848)."""
    raise Skip("client does not implement KIP-848" + (f": {detail}" if detail else ""))


def no_share_consumer() -> None:
    """share-group for a client without a share consumer (KIP-932)."""
    raise Skip("client has no share consumer (KIP-932)")


@dataclass(frozen=True)
class SuiteEnv:
    bootstrap: str
    prefix: str
    skips: dict[str, str]
    only: set[str] | None

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.bootstrap.rsplit(":", 1)
        return host, int(port)


@dataclass(frozen=True)
class Secured:
    """The secured listeners and credentials run.py gives (compat-tests/matrix/security.py)."""

    sasl_ssl: str
    mtls: str
    ca: str
    client_cert: str
    client_key: str
    plain: tuple[str, str]
    scram: tuple[str, str]

    def credentials(self, mechanism: str) -> tuple[str, str]:
        return self.plain if mechanism == "PLAIN" else self.scram


def secured() -> Secured:
    """Skips the scenario when run.py started no secured listeners (e.g. --bootstrap)."""
    env = os.environ
    if "COMPAT_SASL_SSL_BOOTSTRAP" not in env:
        raise Skip("no secured listeners (run.py starts them with its own broker)")
    return Secured(
        env["COMPAT_SASL_SSL_BOOTSTRAP"],
        env["COMPAT_MTLS_BOOTSTRAP"],
        env["COMPAT_CA_PEM"],
        env["COMPAT_CLIENT_CERT_PEM"],
        env["COMPAT_CLIENT_KEY_PEM"],
        (env["COMPAT_PLAIN_USER"], env["COMPAT_PLAIN_PASSWORD"]),
        (env["COMPAT_SCRAM_USER"], env["COMPAT_SCRAM_PASSWORD"]),
    )


def secured_values(prefix: str, scenario: str) -> list[bytes]:
    return [f"{prefix} {scenario} {i}".encode() for i in range(SECURED_RECORDS)]


def suite_env() -> SuiteEnv:
    try:
        bootstrap, prefix = os.environ["COMPAT_BOOTSTRAP"], os.environ["COMPAT_PREFIX"]
    except KeyError as missing:
        sys.exit(f"{missing.args[0]} is not set (run.py sets it)")
    skips = {}
    for line in os.environ.get("COMPAT_SKIP", "").splitlines():
        name, tab, reason = line.partition("\t")
        if tab:
            skips[name] = reason
    only = os.environ.get("COMPAT_ONLY")
    return SuiteEnv(bootstrap, prefix, skips, set(only.split(",")) if only else None)


def quiet_logging() -> None:
    """Client libraries log to stderr (run.py keeps it in a file) only what is critical, except
    the loggers COMPAT_DEBUG names."""
    logging.basicConfig(level=logging.CRITICAL)
    for name in filter(None, os.environ.get("COMPAT_DEBUG", "").split(",")):
        logging.getLogger(name).setLevel(logging.DEBUG)


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def sample_record(i: int, codec: str) -> tuple[bytes | None, bytes, Headers]:
    """Record i of a produce/consume scenario: keyed (every tenth key null), a compressible value,
    headers including a repeated name."""
    key = None if i % 10 == 9 else f"key-{i % 7}".encode()
    value = f"record {i} {'lorem ipsum dolor sit amet ' * 8}".encode()
    headers: Headers = [("index", str(i).encode()), ("codec", codec.encode())]
    if i % 3 == 0:
        headers += [("dup", b"a"), ("dup", b"b")]
    return key, value, headers


def numbered(text: str, start: int, stop: int) -> list[str]:
    return [f"{text}{i}" for i in range(start, stop)]


# txn-pipeline: TXN_TRANSACTIONS transactions, each of TXN_PER_PARTITION records to every one of
# TXN_PARTITIONS partitions; about 4 records fill a batch of TXN_BATCH_BYTES, so a producer that
# pipelines has several batches of a partition in flight at once.
TXN_PARTITIONS = 8
TXN_TRANSACTIONS = 20
TXN_PER_PARTITION = 20
TXN_BATCH_BYTES = 1024
_TXN_PADDING = " pipelined" * 20


def txn_pipeline_records(txn: int) -> list[tuple[int, str]]:
    """(partition, value) of every record of transaction `txn`, round robin over the partitions."""
    return [
        (p, f"t{txn}-p{p}-{i}{_TXN_PADDING}")
        for i in range(TXN_PER_PARTITION)
        for p in range(TXN_PARTITIONS)
    ]


def check_exactly_once(got: list[str], sent: list[str]) -> None:
    counts = Counter(got)
    for value in sent:
        check(counts[value] == 1, f"read_committed saw {value.split()[0]} {counts[value]} times")
    check(len(got) == len(sent), f"read_committed saw {len(got)} records, {len(sent)} produced")


def check(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Polls a condition that other threads change; there is no single event to await."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


async def wait_for_async(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        satisfied = condition()
        if inspect.isawaitable(satisfied):
            satisfied = await satisfied
        if satisfied:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def split_between(first: Any, second: Any, everything: frozenset[int]) -> bool:
    """Both group members own partitions, together all of `everything`, none of them twice."""
    return (
        bool(first.assignment)
        and bool(second.assignment)
        and first.assignment | second.assignment == everything
        and not first.assignment & second.assignment
    )


class ThreadedMember(threading.Thread):
    """One consumer-group member polling its `consumer` in its own thread; a suite creates the
    consumer and says how to poll it."""

    consumer: Any

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.assignment: frozenset[int] = frozenset()
        self.seen: set[str] = set()
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def subscribe(self) -> None:
        """Called once in the member's thread before it polls (if the client needs it)."""

    def poll(self) -> Iterable[str]:
        """Polls the consumer once: the values of the records it returned."""
        raise NotImplementedError

    def assigned(self) -> Iterable[int]:
        """The partitions the consumer is assigned now (its `assignment()` of TopicPartitions,
        as confluent-kafka and kafka-python both have it)."""
        return [p.partition for p in self.consumer.assignment()]

    def close(self) -> None:
        """Closes the consumer, which leaves the group."""
        self.consumer.close()

    def run(self) -> None:
        try:
            self.subscribe()
            while not self.stopping.is_set():
                self.seen.update(self.poll())
                self.assignment = frozenset(self.assigned())
        except BaseException as error:  # noqa: BLE001 - reported to the watching thread
            self.error = error
        finally:
            self.close()
            self.assignment = frozenset()

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(15)


def check_rebalance(
    first: ThreadedMember,
    second: ThreadedMember,
    everything: frozenset[int],
    count: int,
    error_text: Callable[[BaseException], str] = str,
) -> None:
    """The group-rebalance scenario once its `count` records are in the topic: the first member
    owns every partition, the second joining splits them, the two read every record, and the
    first owns all again once the second has left. `error_text` renders a member's failure."""

    def watching(condition: Callable[[], bool]) -> Callable[[], bool]:
        def watched() -> bool:
            for member in (first, second):
                if member.error is not None:
                    raise AssertionError(f"member {member.name} failed: {error_text(member.error)}")
            return condition()

        return watched

    try:
        first.start()
        wait_for(watching(lambda: first.assignment == everything), "the first member to own all")
        second.start()
        wait_for(
            watching(lambda: split_between(first, second, everything)),
            "the partitions to be split between two members",
        )
        wait_for(
            watching(lambda: len(first.seen | second.seen) == count),
            f"the two members to consume all {count} records",
        )
        second.stop()
        wait_for(
            watching(lambda: first.assignment == everything),
            "the first member to own all partitions after the second left",
        )
    finally:
        second.stop()
        first.stop()


def scenario_functions(
    produce_consume: Callable[[str], Any], **by_name: Callable[[], Any]
) -> dict[str, Callable[[], Any]]:
    """A suite's scenarios for run_suite: `produce_consume(codec)` for each codec, the others by
    function name (`group_rebalance` for "group-rebalance")."""
    scenarios = {f"produce-consume-{c}": (lambda c=c: produce_consume(c)) for c in CODECS}
    scenarios.update({name.replace("_", "-"): scenario for name, scenario in by_name.items()})
    return scenarios


def describe(error: BaseException) -> str:
    if isinstance(error, AssertionError):
        return str(error) or "assertion failed"
    return f"{type(error).__name__}: {error}"


def run_suite(
    client: str, version: str, scenarios: dict[str, Callable[[], Any]], env: SuiteEnv
) -> None:
    """Runs each scenario (a function or a coroutine function; it returns the topic whose stored
    batches run.py should inspect, or None) under a time limit and reports it; then exits, even if
    a timed-out scenario left client threads behind."""
    missing = [name for name in SCENARIOS if name not in scenarios]
    if missing:
        raise RuntimeError(f"suite lacks scenarios {missing}")
    emit({"client": client, "version": version})
    for name in SCENARIOS:
        if env.only is not None and name not in env.only:
            continue
        if name in env.skips:
            emit({"scenario": name, "result": "skip", "reason": env.skips[name], "seconds": 0})
            continue
        start = time.monotonic()
        outcome: dict[str, Any] = {}
        worker = threading.Thread(
            target=_run_one, args=(scenarios[name], outcome), name=name, daemon=True
        )
        worker.start()
        worker.join(SCENARIO_TIMEOUT)
        line: dict[str, Any] = {"scenario": name, "seconds": round(time.monotonic() - start, 2)}
        if worker.is_alive():
            line.update(result="fail", reason=f"timed out after {SCENARIO_TIMEOUT:.0f} s")
        elif "skip" in outcome:
            line.update(result="skip", reason=outcome["skip"])
        elif "error" in outcome:
            line.update(result="fail", reason=outcome["error"])
        else:
            line.update(result="pass", reason="")
            if outcome.get("topic"):
                line["topic"] = outcome["topic"]
        emit(line)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run_one(scenario: Callable[[], Any], outcome: dict[str, Any]) -> None:
    try:
        result = scenario()
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        outcome["topic"] = result
    except Skip as skip:
        outcome["skip"] = str(skip)
    except BaseException as error:  # noqa: BLE001 - every failure is a reported verdict
        outcome["error"] = describe(error)


def allow_on_topic(bootstrap: str, topic: str, principal: str, *operations: str) -> None:
    """ALLOW ACLs on a topic, created with confluent-kafka's admin client on the plain listener
    (for suites whose own client has no ACL API; what is under test is the client's behaviour
    with and without them)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    client = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    bindings = [
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*",
                   AclOperation[op], AclPermissionType.ALLOW)
        for op in operations
    ]  # fmt: skip
    for future in client.create_acls(bindings).values():
        future.result(WAIT)


def describe_share_group(bootstrap: str, group: str) -> dict[str, set[tuple[str, int]]]:
    """ShareGroupDescribe v1 sent by hand (tests/raw_client.py, kio) to `bootstrap`, the group's
    coordinator on the single-node brokers run.py uses: client id -> the (topic, partition) pairs
    assigned to that member. For clients without a share-group admin API (librdkafka has none);
    what is under test is the members' client, whose membership the broker shows here. A group
    error (e.g. GROUP_ID_NOT_FOUND before the first heartbeat) raises AssertionError."""
    tests = str(Path(__file__).resolve().parents[2] / "tests")
    if tests not in sys.path:
        sys.path.append(tests)
    from kio.schema.share_group_describe.v1.request import ShareGroupDescribeRequest
    from kio.schema.share_group_describe.v1.response import ShareGroupDescribeResponse
    from raw_client import RawClient

    request = ShareGroupDescribeRequest(group_ids=(group,), include_authorized_operations=False)
    with RawClient(bootstrap) as client:
        response = client.request(request, ShareGroupDescribeResponse, client_id="compat-describe")
    [described] = response.groups
    error = described.error_code
    check(error == 0, f"ShareGroupDescribe: {error.name} {described.error_message or ''}")
    return {
        member.client_id: {(tp.topic_name, p) for tp in member.assignment.topic_partitions
                           for p in tp.partitions}
        for member in described.members
    }  # fmt: skip
