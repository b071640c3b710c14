"""kcat (librdkafka as the distribution ships it) driven as a command-line tool: the scenarios
listed in compat-tests/matrix/scenarios.py that kcat can perform, one JSON line each.

kcat has no admin commands, so the topics it works on are created with confluent-kafka's admin
client; everything the scenario asserts is what kcat itself printed.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from suite_common import (
    RECORDS,
    WAIT,
    Skip,
    allow_on_topic,
    check,
    no_consumer_protocol,
    no_share_consumer,
    numbered,
    run_suite,
    sample_record,
    scenario_functions,
    secured,
    secured_values,
    split_between,
    suite_env,
    wait_for,
)

ENV = suite_env()
KCAT = shutil.which("kcat") or "kcat"
ADMIN = AdminClient({"bootstrap.servers": ENV.bootstrap, "log_level": 3})
KEY_DELIMITER = "\t"
# kcat -H attaches the same headers to every record it produces.
HEADER_ARGS = ["-H", "dup=a", "-H", "dup=b"]
REBALANCE = re.compile(r"rebalanced \(memberid [^)]*\): (assigned|revoked): (.*)$")


def kcat(*args: str, stdin: str | None = None, timeout: float = WAIT) -> str:
    """Runs kcat to completion; a non-zero exit fails the scenario with kcat's stderr."""
    command = [KCAT, "-b", ENV.bootstrap, *args]
    result = subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    check(
        result.returncode == 0,
        f"kcat {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-500:]}",
    )
    return result.stdout


def create_topic(topic: str, partitions: int) -> None:
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1)
    ADMIN.create_topics([new], operation_timeout=WAIT)[topic].result(WAIT)


def consume_json(topic: str, *extra: str) -> list[dict]:
    """Every record of partition 0 up to its end, as kcat's JSON envelope (-e: exact, no wait)."""
    out = kcat("-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-J", "-q", *extra)
    return [json.loads(line) for line in out.splitlines() if line]


def headers_of(envelope: dict) -> list[tuple[str, str]]:
    flat = envelope.get("headers") or []
    return list(zip(flat[0::2], flat[1::2], strict=True))


# -- scenarios ------------------------------------------------------------------------------------


def metadata() -> None:
    topic = f"{ENV.prefix}-metadata"
    create_topic(topic, 3)
    meta = json.loads(kcat("-L", "-J", "-t", topic))
    brokers = meta["brokers"]
    check(len(brokers) == 1, f"expected one broker, got {brokers}")
    check(brokers[0]["name"] == ENV.bootstrap, f"broker advertised as {brokers[0]['name']}")
    broker_id = brokers[0]["id"]
    check(meta["controllerid"] == broker_id, f"controller {meta['controllerid']}")
    [described] = meta["topics"]
    check(described["topic"] == topic and "error" not in described, f"topic {described}")
    partitions = described["partitions"]
    check(len(partitions) == 3, f"partitions {partitions}")
    for p in partitions:
        check(p["leader"] == broker_id, f"partition {p}")
        check(p["replicas"] == [{"id": broker_id}], f"partition {p}")
    listed = json.loads(kcat("-L", "-J"))
    check(topic in {t["topic"] for t in listed["topics"]}, "topic not listed")


def produce_consume(codec: str) -> str:
    topic = f"{ENV.prefix}-pc-{codec}"
    create_topic(topic, 1)
    sent = [sample_record(i, codec) for i in range(RECORDS)]
    lines = "".join(
        f"{(key or b'').decode()}{KEY_DELIMITER}{value.decode()}\n" for key, value, _ in sent
    )
    kcat(
        "-P",
        "-t",
        topic,
        "-p",
        "0",
        "-K",
        KEY_DELIMITER,
        "-Z",
        "-z",
        codec,
        "-H",
        f"codec={codec}",
        *HEADER_ARGS,
        "-X",
        "linger.ms=50",
        stdin=lines,
    )
    got = consume_json(topic)
    check(len(got) == len(sent), f"consumed {len(got)} records, produced {len(sent)}")
    expected_headers = [("codec", codec), ("dup", "a"), ("dup", "b")]
    for i, ((key, value, _), envelope) in enumerate(zip(sent, got, strict=True)):
        want_key = None if key is None else key.decode()
        check(envelope["key"] == want_key, f"record {i} key {envelope['key']!r} != {want_key!r}")
        check(envelope["payload"] == value.decode(), f"record {i} value differs")
        check(
            headers_of(envelope) == expected_headers, f"record {i} headers {headers_of(envelope)}"
        )
    return topic


def idempotent_produce() -> str:
    topic = f"{ENV.prefix}-idempotent"
    count = 500
    create_topic(topic, 1)
    lines = "".join(f"k{i % 5}{KEY_DELIMITER}idem-{i}\n" for i in range(count))
    kcat(
        "-P",
        "-t",
        topic,
        "-p",
        "0",
        "-K",
        KEY_DELIMITER,
        "-X",
        "enable.idempotence=true",
        "-X",
        "batch.size=2048",
        "-X",
        "linger.ms=2",
        stdin=lines,
    )
    values = [envelope["payload"] for envelope in consume_json(topic)]
    check(values == numbered("idem-", 0, count), "not idem-0..idem-499 exactly once in order")
    return topic


class GroupMember:
    """A `kcat -G` balanced consumer; its assignment is read from the rebalance lines it prints."""

    def __init__(self, topic: str, group: str) -> None:
        self.assignment: frozenset[int] = frozenset()
        self.seen: set[str] = set()
        self.process = subprocess.Popen(
            [
                KCAT,
                "-b",
                ENV.bootstrap,
                "-G",
                group,
                "-u",
                "-f",
                "%s\n",
                "-X",
                "auto.offset.reset=earliest",
                "-X",
                "enable.auto.commit=false",
                "-X",
                "session.timeout.ms=10000",
                "-X",
                "heartbeat.interval.ms=300",
                topic,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_values, daemon=True).start()
        threading.Thread(target=self._read_rebalances, daemon=True).start()

    def _read_values(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.seen.add(line.rstrip("\n"))

    def _read_rebalances(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            match = REBALANCE.search(line.strip())
            if match is None:
                continue
            partitions = frozenset(int(p) for p in re.findall(r"\[(\d+)\]", match.group(2)))
            if match.group(1) == "assigned":
                self.assignment = partitions
            else:
                self.assignment = self.assignment - partitions

    def check_alive(self) -> None:
        code = self.process.poll()
        check(code is None, f"kcat -G exited {code}")

    def stop(self) -> None:
        """SIGTERM: kcat closes the consumer, which leaves the group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.assignment = frozenset()


def group_rebalance() -> None:
    topic = group = f"{ENV.prefix}-group"
    partitions, count = 4, 40
    create_topic(topic, partitions)
    for p in range(partitions):
        values = "".join(f"g-{i}\n" for i in range(p, count, partitions))
        kcat("-P", "-t", topic, "-p", str(p), stdin=values)
    everything = frozenset(range(partitions))
    members: list[GroupMember] = []

    def watching(condition):
        def watched() -> bool:
            for member in members:
                member.check_alive()
            return condition()

        return watched

    try:
        members.append(GroupMember(topic, group))
        first = members[0]
        wait_for(watching(lambda: first.assignment == everything), "the first member to own all")
        members.append(GroupMember(topic, group))
        second = members[1]
        wait_for(
            watching(lambda: split_between(first, second, everything)),
            "the partitions to be split between two members",
        )
        wait_for(
            watching(lambda: len(first.seen | second.seen) == count),
            f"the two members to consume all {count} records",
        )
        second.stop()
        members.remove(second)
        wait_for(
            watching(lambda: first.assignment == everything),
            "the first member to own all partitions after the second left",
        )
    finally:
        for member in members:
            member.stop()


def commit_resume() -> None:
    """kcat -G -c N consumes N records and exits; closing the consumer commits what it consumed
    (librdkafka's auto-commit of stored offsets). The second run must resume right after them."""
    topic = group = f"{ENV.prefix}-commit"
    create_topic(topic, 1)
    kcat("-P", "-t", topic, "-p", "0", stdin="".join(f"c-{i}\n" for i in range(20)))

    def consume_ten() -> list[tuple[int, str]]:
        out = kcat(
            "-G",
            group,
            "-c",
            "10",
            "-f",
            "%o %s\n",
            "-q",
            "-X",
            "auto.offset.reset=earliest",
            topic,
        )
        return [(int(o), v) for o, v in (line.split(" ", 1) for line in out.splitlines())]

    first = consume_ten()
    check([v for _, v in first] == numbered("c-", 0, 10), f"first run read {first}")
    second = consume_ten()
    check(second[0][0] == first[-1][0] + 1, f"resumed at {second[0][0]}, not {first[-1][0] + 1}")
    check([v for _, v in second] == numbered("c-", 10, 20), f"second run read {second}")


def no_admin() -> None:
    raise Skip("kcat has no admin commands")


def transactions() -> str:
    """kcat's transactional producer commits when its input ends; the aborted transaction in
    between comes from confluent-kafka, since kcat cannot abort one."""
    topic = f"{ENV.prefix}-txn"
    create_topic(topic, 1)

    def kcat_transaction(values: Sequence[str]) -> None:
        kcat(
            "-P",
            "-t",
            topic,
            "-p",
            "0",
            "-X",
            f"transactional.id={ENV.prefix}-txn",
            stdin="".join(f"{v}\n" for v in values),
        )

    kcat_transaction(numbered("committed-", 0, 5))
    producer = Producer(
        {
            "bootstrap.servers": ENV.bootstrap,
            "transactional.id": f"{ENV.prefix}-txn-aborter",
            "log_level": 3,
        }
    )
    producer.init_transactions(WAIT)
    producer.begin_transaction()
    for value in numbered("aborted-", 0, 3):
        producer.produce(topic, value=value, partition=0)
    producer.flush(WAIT)
    producer.abort_transaction(WAIT)
    kcat_transaction(["committed-5"])
    committed = [e["payload"] for e in consume_json(topic, "-X", "isolation.level=read_committed")]
    check(committed == numbered("committed-", 0, 6), f"read_committed saw {committed}")
    everything = [
        e["payload"] for e in consume_json(topic, "-X", "isolation.level=read_uncommitted")
    ]
    expected = numbered("committed-", 0, 5) + numbered("aborted-", 0, 3) + ["committed-5"]
    check(everything == expected, f"read_uncommitted saw {everything}")
    return topic


def consumer_protocol() -> None:
    """kcat's -G consumer would pass `-X group.protocol=consumer` on to librdkafka, which has
    KIP-848 (GA) from 2.12; a kcat built on an older librdkafka cannot speak it."""
    version = re.search(r"librdkafka ((\d+)\.(\d+)[.\d]*)", kcat_version())
    if version is None or (int(version[2]), int(version[3])) < (2, 12):
        built_on = f"librdkafka {version[1]}" if version else "an unknown librdkafka"
        no_consumer_protocol(f"this kcat is built on {built_on}; librdkafka has it from 2.12")
    raise Skip("kcat on librdkafka >= 2.12 could run it: the scenario is not written for kcat yet")


def one_transaction_per_run() -> None:
    raise Skip(
        "kcat's transactional producer commits once, when its input ends: one producer cannot "
        "run a series of transactions"
    )


def kcat_secured(bootstrap: str, security: list[str], *args: str, stdin: str | None = None):
    """kcat against a secured listener: `security` is its -X settings."""
    options = [item for setting in security for item in ("-X", setting)]
    return subprocess.run(
        [KCAT, "-b", bootstrap, *options, *args],
        input=stdin, capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip


def secured_roundtrip(scenario: str, bootstrap: str, security: list[str]) -> None:
    topic = f"{ENV.prefix}-{scenario}"
    create_topic(topic, 1)
    values = [v.decode() for v in secured_values(ENV.prefix, scenario)]
    produced = kcat_secured(bootstrap, security, "-P", "-t", topic, "-p", "0",
                            stdin="".join(f"{v}\n" for v in values))  # fmt: skip
    check(produced.returncode == 0, f"kcat -P exited {produced.returncode}: "
          f"{produced.stderr.strip()[-300:]}")  # fmt: skip
    consumed = kcat_secured(bootstrap, security, "-C", "-t", topic, "-p", "0",
                            "-o", "beginning", "-e", "-q")  # fmt: skip
    check(consumed.returncode == 0, f"kcat -C exited {consumed.returncode}: "
          f"{consumed.stderr.strip()[-300:]}")  # fmt: skip
    check(consumed.stdout.splitlines() == values, f"read back {consumed.stdout[:200]!r}")


def refused(bootstrap: str, security: list[str]) -> bool:
    listing = kcat_secured(bootstrap, [*security, "log_level=0"], "-L", "-m", "5")
    return listing.returncode != 0


def sasl(mechanism: str, password: str | None = None) -> list[str]:
    where = secured()
    user, right = where.credentials(mechanism)
    return ["security.protocol=SASL_SSL", f"sasl.mechanisms={mechanism}",
            f"sasl.username={user}", f"sasl.password={password or right}",
            f"ssl.ca.location={where.ca}"]  # fmt: skip


def security_sasl_plain() -> None:
    secured_roundtrip("security-sasl-plain", secured().sasl_ssl, sasl("PLAIN"))
    check(refused(secured().sasl_ssl, sasl("PLAIN", "wrong")), "a wrong password was accepted")


def security_sasl_scram() -> None:
    secured_roundtrip("security-sasl-scram", secured().sasl_ssl, sasl("SCRAM-SHA-512"))
    check(refused(secured().sasl_ssl, sasl("SCRAM-SHA-512", "wrong")),
          "a wrong password was accepted")  # fmt: skip


def security_mtls() -> None:
    where = secured()
    tls = ["security.protocol=SSL", f"ssl.ca.location={where.ca}"]
    certificate = [f"ssl.certificate.location={where.client_cert}",
                   f"ssl.key.location={where.client_key}"]  # fmt: skip
    secured_roundtrip("security-mtls", where.mtls, tls + certificate)
    check(refused(where.mtls, tls), "a client without a certificate was accepted")


def security_acl() -> None:
    where = secured()
    topic = f"{ENV.prefix}-security-acl"
    create_topic(topic, 1)
    user = f"User:{where.plain[0]}"
    # An ACL for someone else names the topic: from now on it is closed to everyone else.
    allow_on_topic(ENV.bootstrap, topic, "User:compat-someone-else", "WRITE")
    refused = kcat_secured(where.sasl_ssl, [*sasl("PLAIN"), "message.timeout.ms=10000"],
                           "-P", "-t", topic, "-p", "0", stdin="refused\n")  # fmt: skip
    outcome = f"exit {refused.returncode}, {refused.stderr[-300:]!r}"
    check(refused.returncode != 0 and "authoriz" in refused.stderr.lower(),
          f"produce without WRITE: {outcome}")  # fmt: skip
    allow_on_topic(ENV.bootstrap, topic, user, "WRITE", "READ")
    values = [v.decode() for v in secured_values(ENV.prefix, "security-acl")]
    produced = kcat_secured(where.sasl_ssl, sasl("PLAIN"), "-P", "-t", topic, "-p", "0",
                            stdin="".join(f"{v}\n" for v in values))  # fmt: skip
    check(produced.returncode == 0, f"kcat -P with the ACLs: {produced.stderr[-300:]}")
    consumed = kcat_secured(where.sasl_ssl, sasl("PLAIN"), "-C", "-t", topic, "-p", "0",
                            "-o", "beginning", "-e", "-q")  # fmt: skip
    check(consumed.stdout.splitlines() == values, f"read back {consumed.stdout[:200]!r}")


def kcat_version() -> str:
    """'1.7.1 (librdkafka 2.0.2)' from kcat -V."""
    text = subprocess.run([KCAT, "-V"], capture_output=True, text=True, timeout=10).stdout
    kcat_v = re.search(r"Version (\S+)", text)
    librdkafka = re.search(r"librdkafka (\S+)", text)
    kcat_text = kcat_v.group(1) if kcat_v else "?"
    return f"{kcat_text} (librdkafka {librdkafka.group(1) if librdkafka else '?'})"


if __name__ == "__main__":
    scenarios = scenario_functions(
        produce_consume,
        metadata=metadata,
        idempotent_produce=idempotent_produce,
        group_rebalance=group_rebalance,
        commit_resume=commit_resume,
        consumer_protocol=consumer_protocol,
        share_group=no_share_consumer,
        admin_topics=no_admin,
        admin_configs=no_admin,
        transactions=transactions,
        txn_pipeline=one_transaction_per_run,
        security_sasl_plain=security_sasl_plain,
        security_sasl_scram=security_sasl_scram,
        security_mtls=security_mtls,
        security_acl=security_acl,
    )
    run_suite("kcat", kcat_version(), scenarios, ENV)
