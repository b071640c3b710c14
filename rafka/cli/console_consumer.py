"""`rafka consume`: kafka-console-consumer on rafka's own client.

Without `--group` it reads every partition of the topic (or the one `--partition` names) from the
end, the beginning (`--from-beginning`) or `--offset`, and joins no group. With `--group` it is a
member of that consumer group: it gets a share of the partitions (range assignment), starts at the
group's committed offsets, and commits what it has printed every auto.commit.interval.ms and when
it stops. It stops after `--max-messages`, after `--timeout-ms` without a message, or on
SIGINT/SIGTERM; then "Processed a total of N messages" goes to stderr, as in Kafka.

Output is DefaultMessageFormatter's (`--property print.key=true` ...), or `--format json`: one
object per line with topic, partition, offset, timestamp, timestamp_type, key, value and headers
([{"key", "value"}]); keys and values are decoded as UTF-8 (invalid bytes become U+FFFD).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer

from rafka.cli.admin_common import DEFAULT_BOOTSTRAP, BootstrapOption, fail
from rafka.cli.client_security import SECURITY_KEYS, ClientSecurityError, use_client_security
from rafka.cli.console_producer import parse_properties
from rafka.cli.console_records import InputError

if TYPE_CHECKING:
    from rafka.cli.console_fetcher import Message

# Consumer properties this command reads; others draw a warning.
_CONSUMER_KEYS = {
    "group.id",
    "group.instance.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "fetch.max.wait.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "isolation.level",
    "client.id",
    "allow.auto.create.topics",
    "bootstrap.servers",
    "key.deserializer",
    "value.deserializer",
}
_INTS = {
    "auto.commit.interval.ms": 5000,
    "session.timeout.ms": 45000,
    "heartbeat.interval.ms": 3000,
    "max.poll.interval.ms": 300000,
    "fetch.max.wait.ms": 500,
    "fetch.min.bytes": 1,
    "fetch.max.bytes": 52428800,
    "max.partition.fetch.bytes": 1048576,
}


class Stop(Exception):
    """A second SIGTERM or SIGINT: stop now, whatever the consumer is waiting for."""


class Signals:
    """The first SIGTERM/SIGINT asks the loop to stop between two fetches (so that no request
    is cut in half and the offsets can still be committed); a second one interrupts."""

    def __init__(self) -> None:
        self.received = 0
        self.printed = 0  # kept here so that it can be reported however the loop ends

    def __call__(self, signum: int, _frame: Any) -> None:
        if self.received:
            raise Stop()
        self.received = signum


@dataclass(slots=True)
class Formatter:
    """Kafka's DefaultMessageFormatter: timestamp, partition, offset, headers, key, value."""

    print_timestamp: bool = False
    print_partition: bool = False
    print_offset: bool = False
    print_headers: bool = False
    print_key: bool = False
    print_value: bool = True
    key_separator: bytes = b"\t"
    line_separator: bytes = b"\n"
    headers_separator: bytes = b","
    null_literal: bytes = b"null"

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> Formatter:
        fmt = cls()
        for name in ("timestamp", "partition", "offset", "headers", "key", "value"):
            if f"print.{name}" in props:
                value = props[f"print.{name}"].strip().lower() == "true"
                setattr(fmt, f"print_{name}", value)
        for name in ("key.separator", "line.separator", "headers.separator", "null.literal"):
            if name in props:
                setattr(fmt, name.replace(".", "_"), props[name].encode())
        return fmt

    def format(self, m: Message) -> bytes:
        fields: list[bytes] = []
        if self.print_timestamp:
            fields.append(f"{m.timestamp_type}:{m.timestamp}".encode())
        if self.print_partition:
            fields.append(f"Partition:{m.partition}".encode())
        if self.print_offset:
            fields.append(f"Offset:{m.offset}".encode())
        if self.print_headers:
            fields.append(
                self.headers_separator.join(
                    k.encode() + b":" + (self.null_literal if v is None else v)
                    for k, v in m.headers
                )
                if m.headers
                else b"NO_HEADERS"
            )
        if self.print_key:
            fields.append(self.null_literal if m.key is None else m.key)
        if self.print_value:
            fields.append(self.null_literal if m.value is None else m.value)
        # Kafka ends the line only after the value; without it the last field ends the line.
        return self.key_separator.join(fields) + self.line_separator if fields else b""


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode(errors="replace")


def json_line(m: Message) -> bytes:
    obj: dict[str, Any] = {
        "topic": m.topic,
        "partition": m.partition,
        "offset": m.offset,
        "timestamp": m.timestamp,
        "timestamp_type": m.timestamp_type,
        "key": _text(m.key),
        "value": _text(m.value),
        "headers": [{"key": k, "value": _text(v)} for k, v in m.headers],
    }
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


@dataclass(slots=True)
class Options:
    topic: str
    group: str | None
    partition: int | None
    offset: int | None  # a number, or EARLIEST / LATEST; None: from the group or the reset
    reset: str
    max_messages: int
    timeout_ms: int | None
    read_committed: bool
    props: dict[str, str]

    def int_prop(self, key: str) -> int:
        value = self.props.get(key, str(_INTS[key]))
        try:
            return int(value)
        except ValueError:
            raise InputError(f"{key} must be an integer, not {value!r}") from None

    def flag(self, key: str, default: bool) -> bool:
        return self.props.get(key, str(default)).strip().lower() == "true"


def run(options: Options, format_one: Any, out: BinaryIO, signals: Signals) -> int:
    """Consume until a stop condition; the number of messages printed."""
    from rafka.cli.console_client import open_client
    from rafka.cli.console_fetcher import Fetcher
    from rafka.cli.console_group import GroupMember
    from rafka.cli.kafka_client import LATEST, KafkaClientError, error_name
    from rafka.protocol.errors import ErrorCode

    rebalance_ms = options.int_prop("max.poll.interval.ms")
    client = open_client(
        options.props.get("bootstrap.servers", ""),
        options.props.get("client.id", "console-consumer"),
        max(30.0, rebalance_ms / 1000 + 5),  # JoinGroup may wait for the whole rebalance
    )
    member: GroupMember | None = None
    auto_commit = False
    try:
        topic = options.topic
        allow_create = options.flag("allow.auto.create.topics", True)
        code = client.topics_metadata([topic], allow_create).get(
            topic, ErrorCode.unknown_topic_or_partition
        )
        if code == ErrorCode.unknown_topic_or_partition:
            raise KafkaClientError(f"topic {topic!r} does not exist")
        if code not in (ErrorCode.none, ErrorCode.leader_not_available):
            raise KafkaClientError(f"topic {topic!r}: {error_name(code)}")
        partitions = client.cluster().partitions.get(topic, 0)
        fetcher = Fetcher(
            client,
            reset=options.reset,
            max_wait_ms=options.int_prop("fetch.max.wait.ms"),
            min_bytes=options.int_prop("fetch.min.bytes"),
            max_bytes=options.int_prop("fetch.max.bytes"),
            partition_max_bytes=options.int_prop("max.partition.fetch.bytes"),
            read_committed=options.read_committed,
        )
        if options.group is not None:
            member = GroupMember(
                client,
                options.group,
                [topic],
                session_timeout_ms=options.int_prop("session.timeout.ms"),
                rebalance_timeout_ms=rebalance_ms,
                heartbeat_interval_ms=options.int_prop("heartbeat.interval.ms"),
                instance_id=options.props.get("group.instance.id"),
            )
            auto_commit = options.flag("enable.auto.commit", True)
        elif options.partition is not None:
            if not 0 <= options.partition < partitions:
                raise KafkaClientError(f"topic {topic!r} has no partition {options.partition}")
            start = LATEST if options.offset is None else options.offset
            fetcher.assign([(topic, options.partition)], {(topic, options.partition): start})
        else:
            fetcher.assign([(topic, p) for p in range(partitions)], {})
        interval = options.int_prop("auto.commit.interval.ms") / 1000
        rejoin = member is not None
        next_commit = time.monotonic() + interval
        last_message = time.monotonic()
        limit = options.max_messages
        while (limit < 0 or signals.printed < limit) and not signals.received:
            if member is not None:
                if rejoin:
                    if auto_commit and member.assignment:
                        _try_commit(member, fetcher.positions)
                    assigned = member.join(time.monotonic() + rebalance_ms / 1000)
                    fetcher.assign(assigned, member.committed())
                rejoin = member.poll()
                if auto_commit and time.monotonic() >= next_commit:
                    _try_commit(member, fetcher.positions)
                    next_commit = time.monotonic() + interval
            wait = 500
            if options.timeout_ms is not None:
                left = options.timeout_ms - (time.monotonic() - last_message) * 1000
                if left <= 0:
                    break
                wait = min(wait, int(left))
            if member is not None:
                wait = min(wait, int(member.heartbeat_interval_s * 1000))
            printed = False
            for message in fetcher.poll(wait):
                try:
                    out.write(format_one(message))
                except BrokenPipeError:
                    # Not printed, so not consumed: the group reads it again next time.
                    fetcher.positions[(message.topic, message.partition)] = message.offset
                    raise
                signals.printed += 1
                printed = True
                if signals.printed == limit:
                    break
            if printed:
                out.flush()
                last_message = time.monotonic()
            elif not fetcher.positions:
                time.sleep(wait / 1000)  # nothing assigned: wait for a rebalance
    finally:
        try:
            if member is not None:
                if auto_commit and member.generation >= 0:
                    member.commit(fetcher.positions)
                member.leave()
        finally:
            client.close()
    return signals.printed


def _try_commit(member: Any, positions: dict[tuple[str, int], int]) -> None:
    """A periodic or pre-rebalance commit; a failure is left to the next one (at-least-once)."""
    from rafka.cli.kafka_client import KafkaClientError

    try:
        member.commit({tp: o for tp, o in positions.items() if tp in member.assignment})
    except KafkaClientError:
        pass


def consume(
    topic: Annotated[str, typer.Option("--topic", "-t", help="The topic to read.")],
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: Annotated[
        Path | None,
        typer.Option(
            "--command-config",
            "--consumer.config",
            help="Client properties file (security.protocol, sasl.*, ssl.*; Kafka's keys).",
        ),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            "--group", "-g", help="Consume as a member of this group, from its committed offsets."
        ),
    ] = None,
    partition: Annotated[
        int | None,
        typer.Option(
            "--partition", help="Read only this partition (from the end unless --offset)."
        ),
    ] = None,
    offset: Annotated[
        str | None,
        typer.Option("--offset", help="With --partition: earliest, latest or an offset."),
    ] = None,
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning",
            help="Start at the earliest message when there is no committed offset.",
        ),
    ] = False,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", help="Exit after this many messages.")
    ] = None,
    timeout_ms: Annotated[
        int | None,
        typer.Option("--timeout-ms", help="Exit when no message has come for this long."),
    ] = None,
    prop: Annotated[
        list[str] | None,
        typer.Option(
            "--property",
            "--formatter-property",
            metavar="KEY=VALUE",
            help="Formatter property: print.key, print.headers, print.partition, print.offset,"
            " print.timestamp, print.value, key.separator, line.separator, headers.separator,"
            " null.literal.",
        ),
    ] = None,
    consumer_prop: Annotated[
        list[str] | None,
        typer.Option(
            "--consumer-property",
            "--command-property",
            metavar="KEY=VALUE",
            help="Consumer setting: auto.offset.reset, enable.auto.commit, session.timeout.ms, ...",
        ),
    ] = None,
    isolation_level: Annotated[
        str | None,
        typer.Option("--isolation-level", help="read_uncommitted (default) or read_committed."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="text: Kafka's formatter; json: one object per line.")
    ] = "text",
) -> None:
    """Print a topic's messages on stdout, like kafka-console-consumer."""
    from rafka.cli.kafka_client import KafkaClientError

    try:
        options = _options(
            topic,
            bootstrap,
            group,
            partition,
            offset,
            from_beginning,
            max_messages,
            timeout_ms,
            consumer_prop,
            isolation_level,
        )
        if fmt not in ("text", "json"):
            raise InputError(f"--format must be text or json, not {fmt!r}")
        format_one = (
            json_line if fmt == "json" else Formatter.from_properties(parse_properties(prop)).format
        )
        use_client_security(command_config, options.props)
    except (InputError, ClientSecurityError) as exc:
        fail(str(exc))
    for key in options.props:
        if key not in _CONSUMER_KEYS and key not in SECURITY_KEYS:
            typer.echo(f"rafka: warning: consumer property {key!r} is not used", err=True)
    signals = Signals()
    previous = {s: signal.signal(s, signals) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        run(options, format_one, sys.stdout.buffer, signals)
    except Stop:
        pass
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's exit-time flush of
        # stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (InputError, KafkaClientError) as exc:
        fail(str(exc))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    typer.echo(f"Processed a total of {signals.printed} messages", err=True)
    raise typer.Exit(128 + signals.received if signals.received else 0)


def _options(
    topic: str,
    bootstrap: str,
    group: str | None,
    partition: int | None,
    offset: str | None,
    from_beginning: bool,
    max_messages: int | None,
    timeout_ms: int | None,
    consumer_prop: list[str] | None,
    isolation_level: str | None,
) -> Options:
    """Kafka's rules for combining the options."""
    from rafka.cli.kafka_client import EARLIEST, LATEST

    props = parse_properties(consumer_prop)
    groups = {g for g in (group, props.get("group.id")) if g is not None}
    if len(groups) > 1:
        raise InputError(f"the group ids given do not match: {', '.join(sorted(groups))}")
    group = next(iter(groups), None)
    if partition is not None and group is not None:
        raise InputError("--group and --partition cannot be given together")
    if offset is not None and partition is None:
        raise InputError("--offset needs --partition")
    if offset is not None and from_beginning:
        raise InputError("--from-beginning and --offset cannot be given together")
    reset = props.get("auto.offset.reset", "earliest" if from_beginning else "latest")
    if from_beginning and reset != "earliest":
        raise InputError(f"--from-beginning contradicts auto.offset.reset={reset}")
    if reset not in ("earliest", "latest", "none"):
        raise InputError(f"auto.offset.reset must be earliest, latest or none, not {reset!r}")
    start: int | None = EARLIEST if from_beginning else None
    if offset is not None:
        start = {"earliest": EARLIEST, "latest": LATEST}.get(offset.strip().lower())
        if start is None:
            if not offset.strip().isdigit():
                raise InputError(
                    f"--offset {offset!r}: expected earliest, latest or a non-negative number"
                )
            start = int(offset)
    isolation = isolation_level or props.get("isolation.level", "read_uncommitted")
    if isolation not in ("read_uncommitted", "read_committed"):
        raise InputError("isolation level must be read_uncommitted or read_committed")
    props["bootstrap.servers"] = bootstrap
    return Options(
        topic=topic,
        group=group,
        partition=partition,
        offset=start,
        reset=reset,
        max_messages=-1 if max_messages is None or max_messages < 0 else max_messages,
        timeout_ms=timeout_ms if timeout_ms is not None and timeout_ms >= 0 else None,
        read_committed=isolation == "read_committed",
        props=props,
    )
