"""`rafka produce`: kafka-console-producer on rafka's own client.

Each line of stdin is a record. With `--property parse.key=true` a line is `key<TAB>value`, with
`parse.headers=true` it starts with `h1:v1,h2:v2<TAB>` (separators and `null.marker` as Kafka's
LineMessageReader names them); `--format json` reads one JSON object per line instead. Records
are batched per partition (`--batch-size` bytes or `--timeout` ms, Kafka's linger) and sent with
acks=all unless told otherwise. Keyed records go where Kafka's default partitioner puts them
(murmur2); others stick to one partition per batch. Unlike the Java tool, the first record that
cannot be written ends the command: exit 1 and one line on stderr.
"""

from __future__ import annotations

import json
import os
import select
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rafka.cli.admin_common import DEFAULT_BOOTSTRAP, BootstrapOption, fail
from rafka.cli.client_security import SECURITY_KEYS, ClientSecurityError, use_client_security
from rafka.cli.console_records import (
    Header,
    InputError,
    Settings,
)

if TYPE_CHECKING:
    from rafka.cli.console_client import ConsoleClient

_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
_ACKS = {"all": -1, "-1": -1, "0": 0, "1": 1}
# Producer properties that change what this command does; others draw a warning.
_PRODUCER_KEYS = {
    "acks",
    "linger.ms",
    "batch.size",
    "compression.type",
    "retries",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "request.timeout.ms",
    "max.block.ms",
    "client.id",
    "bootstrap.servers",
    "key.serializer",
    "value.serializer",
}


@dataclass(slots=True)
class LineFormat:
    """Kafka's LineMessageReader properties."""

    parse_key: bool = False
    key_separator: bytes = b"\t"
    parse_headers: bool = False
    headers_delimiter: bytes = b"\t"
    headers_separator: bytes = b","
    headers_key_separator: bytes = b":"
    ignore_error: bool = False
    null_marker: bytes | None = None

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> LineFormat:
        def flag(name: str) -> bool:
            return props.get(name, "false").strip().lower() == "true"

        fmt = cls(
            parse_key=flag("parse.key"),
            parse_headers=flag("parse.headers"),
            ignore_error=flag("ignore.error"),
        )
        for name in (
            "key.separator",
            "headers.delimiter",
            "headers.separator",
            "headers.key.separator",
        ):
            if name in props:
                setattr(fmt, name.replace(".", "_"), props[name].encode())
        if "null.marker" in props:
            fmt.null_marker = props["null.marker"].encode()
        seps = {
            "headers.delimiter": fmt.headers_delimiter,
            "headers.separator": fmt.headers_separator,
            "headers.key.separator": fmt.headers_key_separator,
        }
        names = list(seps)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if seps[a] == seps[b]:
                    raise InputError(f"{a} and {b} may not be equal")
        for name, sep in {"key.separator": fmt.key_separator, **seps}.items():
            if not sep:
                raise InputError(f"{name} may not be empty")
            if sep == fmt.null_marker:
                raise InputError(f"null.marker and {name} may not be equal")
        return fmt

    def parse(self, line: bytes, number: int) -> tuple[bytes | None, bytes | None, list[Header]]:
        headers_text = self._field(
            self.parse_headers, line, 0, self.headers_delimiter, "headers delimiter", number
        )
        start = 0 if headers_text is None else len(headers_text) + len(self.headers_delimiter)
        key = self._field(self.parse_key, line, start, self.key_separator, "key separator", number)
        if key is not None:
            start += len(key) + len(self.key_separator)
        value: bytes | None = line[start:]
        if value == self.null_marker:
            value = None
        if key == self.null_marker:
            key = None
        headers: list[Header] = []
        if headers_text is not None and headers_text != self.null_marker:
            headers = [
                self._header(pair, number) for pair in headers_text.split(self.headers_separator)
            ]
        return key, value, headers

    def _field(
        self, enabled: bool, line: bytes, start: int, sep: bytes, what: str, number: int
    ) -> bytes | None:
        if not enabled:
            return None
        end = line.find(sep, start)
        if end < 0:
            if self.ignore_error:
                return None
            raise InputError(f"No {what} found on line number {number}: {_show(line)}")
        return line[start:end]

    def _header(self, pair: bytes, number: int) -> Header:
        name, sep, value = pair.partition(self.headers_key_separator)
        if not sep:
            if self.ignore_error:
                return pair.decode(errors="replace"), None
            raise InputError(
                f"No header key separator found in pair {_show(pair)} on line number {number}"
            )
        if name == self.null_marker:
            raise InputError(f"Header keys should not be equal to the null marker on line {number}")
        return name.decode(errors="replace"), None if value == self.null_marker else value


def _show(data: bytes) -> str:
    return repr(data.decode(errors="replace"))


def _json_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()  # a nested value travels as JSON


def parse_json_line(
    line: bytes, number: int
) -> tuple[bytes | None, bytes | None, list[Header], int | None, int | None]:
    """{"key", "value", "headers", "partition", "timestamp"}, all optional; headers as
    [{"key": k, "value": v}], [[k, v]] or {k: v}."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise InputError(f"line {number} is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InputError(f"line {number}: expected a JSON object")
    raw = obj.get("headers") or []
    pairs = (
        raw.items()
        if isinstance(raw, dict)
        else [(h.get("key"), h.get("value")) if isinstance(h, dict) else tuple(h) for h in raw]
    )
    headers: list[Header] = []
    for pair in pairs:
        if len(pair) != 2 or not isinstance(pair[0], str):
            raise InputError(f"line {number}: a header needs a string key and a value")
        headers.append((pair[0], _json_bytes(pair[1])))
    partition, timestamp = obj.get("partition"), obj.get("timestamp")
    for name, number_value in (("partition", partition), ("timestamp", timestamp)):
        if number_value is not None and not isinstance(number_value, int):
            raise InputError(f"line {number}: {name} must be an integer")
    return _json_bytes(obj.get("key")), _json_bytes(obj.get("value")), headers, partition, timestamp


def read_lines(fd: int, linger_s: float, on_idle: Any) -> Iterator[bytes]:
    """Lines of `fd` without their end of line; `on_idle()` runs whenever no input has come for
    `linger_s`, so that a record typed by hand is sent without waiting for the next one."""
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], linger_s)
        if not ready:
            on_idle()
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if pending:
        yield pending[:-1] if pending.endswith(b"\r") else pending


def producer_settings(props: dict[str, str], options: dict[str, str | None]) -> Settings:
    """Kafka's order: --producer-property, then the tool's own options when given (or when the
    property is not set, their defaults)."""
    merged = dict(props)
    for key, value in options.items():
        if value is not None:
            merged[key] = value
    s = Settings()
    try:
        s.acks = _ACKS[merged.get("acks", "all").strip().lower()]
    except KeyError:
        raise InputError(f"acks must be all, -1, 0 or 1, not {merged['acks']!r}") from None
    compression = merged.get("compression.type", "none").strip().lower()
    if compression not in _CODECS:
        raise InputError(f"unknown compression codec {compression!r}: one of {', '.join(_CODECS)}")
    s.compression = compression
    for key, attr in (
        ("linger.ms", "linger_ms"),
        ("batch.size", "batch_size"),
        ("retries", "retries"),
        ("retry.backoff.ms", "retry_backoff_ms"),
        ("retry.backoff.max.ms", "retry_backoff_max_ms"),
        ("request.timeout.ms", "request_timeout_ms"),
        ("max.block.ms", "max_block_ms"),
    ):
        if key in merged:
            try:
                setattr(s, attr, max(int(merged[key]), 0))
            except ValueError:
                raise InputError(f"{key} must be an integer, not {merged[key]!r}") from None
    s.client_id = merged.get("client.id", s.client_id)
    s.warnings = [
        f"producer property {k!r} is not used by rafka produce"
        for k in props
        if k not in _PRODUCER_KEYS and k not in SECURITY_KEYS
    ]
    return s


def parse_properties(items: Sequence[str] | None) -> dict[str, str]:
    """KEY=VALUE items split at the first `=`, as Kafka's tools do (values may hold `=`)."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{item!r} is not KEY=VALUE")
        out[key.strip()] = value
    return out


def run(client: ConsoleClient, topic: str, settings: Settings, text: LineFormat | None) -> int:
    """Produce stdin to `topic`; the number of records written."""
    from rafka.cli.console_sender import Sender

    sender = Sender(client, topic, settings)
    sender.wait_for_topic()
    try:
        for number, line in enumerate(
            read_lines(sys.stdin.fileno(), settings.linger_ms / 1000, sender.send_due), start=1
        ):
            if text is not None:
                key, value, headers = text.parse(line, number)
                partition = timestamp = None
            else:
                if not line.strip():
                    continue
                key, value, headers, partition, timestamp = parse_json_line(line, number)
            sender.add(key, value, headers, partition, timestamp)
    finally:
        sender.flush()
    return sender.written


def produce(
    topic: Annotated[str, typer.Option("--topic", "-t", help="The topic to produce to.")],
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: Annotated[
        Path | None,
        typer.Option(
            "--command-config",
            "--producer.config",
            help="Client properties file (security.protocol, sasl.*, ssl.*; Kafka's keys).",
        ),
    ] = None,
    prop: Annotated[
        list[str] | None,
        typer.Option(
            "--property",
            "--reader-property",
            metavar="KEY=VALUE",
            help="Line reader property: parse.key, key.separator, parse.headers, headers.delimiter,"
            " headers.separator, headers.key.separator, null.marker, ignore.error.",
        ),
    ] = None,
    producer_prop: Annotated[
        list[str] | None,
        typer.Option(
            "--producer-property",
            "--command-property",
            metavar="KEY=VALUE",
            help="Producer setting: acks, linger.ms, batch.size, compression.type, retries, ...",
        ),
    ] = None,
    acks: Annotated[
        str | None, typer.Option("--request-required-acks", help="acks: all (default), 1 or 0.")
    ] = None,
    request_timeout_ms: Annotated[
        int | None,
        typer.Option(
            "--request-timeout-ms", help="How long the leader may wait for acks (default 1500)."
        ),
    ] = None,
    compression: Annotated[
        str | None, typer.Option("--compression-codec", help="none, gzip, snappy, lz4 or zstd.")
    ] = None,
    sync: Annotated[
        bool, typer.Option("--sync", help="Send every record on its own and wait for it.")
    ] = False,
    linger_ms: Annotated[
        int | None,
        typer.Option(
            "--timeout", help="Longest wait for a batch to fill, in ms (linger.ms; default 1000)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Bytes per partition batch (default 16384).")
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option("--message-send-max-retries", help="Retries of a failed send (default 3)."),
    ] = None,
    retry_backoff_ms: Annotated[
        int | None,
        typer.Option("--retry-backoff-ms", help="Wait before the first retry (default 100)."),
    ] = None,
    max_block_ms: Annotated[
        int | None,
        typer.Option(
            "--max-block-ms", help="Longest wait for the topic's leaders (default 60000)."
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="text: Kafka's line format; json: one object per line with key, value,"
            " headers, partition, timestamp.",
        ),
    ] = "text",
) -> None:
    """Write lines of stdin to a topic, like kafka-console-producer."""
    from rafka.cli.console_client import open_client
    from rafka.cli.kafka_client import KafkaClientError

    if fmt not in ("text", "json"):
        fail(f"--format must be text or json, not {fmt!r}")
    try:
        text = LineFormat.from_properties(parse_properties(prop)) if fmt == "text" else None
        options = {
            "acks": acks,
            "request.timeout.ms": _str(request_timeout_ms),
            "compression.type": compression,
            "linger.ms": _str(linger_ms),
            "batch.size": _str(batch_size),
            "retries": _str(retries),
            "retry.backoff.ms": _str(retry_backoff_ms),
            "max.block.ms": _str(max_block_ms),
        }
        settings = producer_settings(parse_properties(producer_prop), options)
        use_client_security(command_config, parse_properties(producer_prop))
    except (InputError, ClientSecurityError) as exc:
        fail(str(exc))
    settings.sync = sync
    for warning in settings.warnings:
        typer.echo(f"rafka: warning: {warning}", err=True)
    client = None
    try:
        client = open_client(
            bootstrap, settings.client_id, max(30.0, settings.request_timeout_ms / 1000 + 5)
        )
        run(client, topic, settings, text)
    except (InputError, KafkaClientError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        if client is not None:
            client.close()


def _str(value: int | None) -> str | None:
    return None if value is None else str(value)
