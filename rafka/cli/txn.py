"""`rafka txn`: list and describe transactions, and the producers of a partition.

Like Kafka's kafka-transactions.sh (list, describe, describe-producers). It speaks the Kafka
protocol (ListTransactions to every broker, DescribeTransactions to the coordinator of the id,
DescribeProducers to the partition's leader), so it works against Apache Kafka as well. Tables
by default, `--json` for scripts; errors are one line on stderr and exit code 1.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rafka.cli.admin_common import (
    BootstrapOption,
    CommandConfigOption,
    JsonOption,
    fail,
    print_json,
    print_table,
    use_command_config,
)
from rafka.protocol.field_reader import FieldReader

if TYPE_CHECKING:
    from rafka.cli.kafka_client import Connection, KafkaClient

DEFAULT_BOOTSTRAP = "localhost:9092"
FIND_COORDINATOR = 10
DESCRIBE_PRODUCERS = 61
DESCRIBE_TRANSACTIONS = 65
LIST_TRANSACTIONS = 66
KEY_TYPE_TRANSACTION = 1
_CLIENT_MAX = {
    FIND_COORDINATOR: 6,
    DESCRIBE_PRODUCERS: 0,
    LIST_TRANSACTIONS: 1,
}
# Coordinator errors worth a retry while the coordinator loads or moves.
_RETRIABLE = frozenset({14, 15, 16})  # LOAD_IN_PROGRESS, NOT_AVAILABLE, NOT_COORDINATOR
NO_ERROR = 0

app = typer.Typer(
    name="txn",
    help="List and describe transactions and the producers of partitions.",
    no_args_is_help=True,
    add_completion=False,
)


@contextmanager
def _client(bootstrap: str, command_config: Path | None) -> Iterator[KafkaClient]:
    from rafka.cli.kafka_client import KafkaClient, KafkaClientError

    use_command_config(command_config)
    try:
        with KafkaClient(bootstrap, client_id="rafka-txn") as client:
            yield client
    except KafkaClientError as exc:
        fail(str(exc))


def _call(client: KafkaClient, api_key: int, data: dict[str, Any], node_id: int | None) -> Any:
    from rafka.cli.kafka_client import KafkaClientError

    conn = client._any() if node_id is None else client._node(node_id)  # noqa: SLF001
    supported = conn.versions.get(api_key)
    if supported is None:
        raise KafkaClientError(f"{conn.address} does not support API {api_key}")
    version = min(supported[1], _CLIENT_MAX[api_key])
    if version < supported[0]:
        raise KafkaClientError(f"{conn.address}: no common version of API {api_key}")
    return conn.send(api_key, version, data)


def _error(code: int) -> str:
    from rafka.cli.kafka_client import error_name

    return error_name(code)


def find_transaction_coordinator(client: KafkaClient, transactional_id: str) -> int:
    from rafka.cli.kafka_client import KafkaClientError

    deadline = time.monotonic() + 10
    while True:
        conn = client._any()  # noqa: SLF001
        version = min(conn.versions.get(FIND_COORDINATOR, (0, 0))[1], _CLIENT_MAX[FIND_COORDINATOR])
        response = conn.send(
            FIND_COORDINATOR,
            version,
            {
                "key": transactional_id,
                "key_type": KEY_TYPE_TRANSACTION,
                "coordinator_keys": [transactional_id],
            },
        )
        found = response.coordinators[0] if version >= 4 else response
        if found.error_code == NO_ERROR:
            if found.node_id not in client.cluster().brokers:
                client.cluster(refresh=True)
            return found.node_id
        if found.error_code not in _RETRIABLE or time.monotonic() > deadline:
            raise KafkaClientError(
                f"no coordinator for transactional id {transactional_id!r}: "
                f"{_error(found.error_code)}"
            )
        time.sleep(0.2)


def list_transactions(
    client: KafkaClient, states: list[str], producer_ids: list[int]
) -> list[dict[str, Any]]:
    from rafka.cli.kafka_client import KafkaClientError

    listed = []
    for node_id in sorted(client.cluster().brokers):
        response = _call(
            client,
            LIST_TRANSACTIONS,
            {"state_filters": states, "producer_id_filters": producer_ids, "duration_filter": -1},
            node_id,
        )
        if response.error_code != NO_ERROR:
            raise KafkaClientError(
                f"ListTransactions on broker {node_id}: {_error(response.error_code)}"
            )
        for t in response.transaction_states:
            listed.append(
                {
                    "transactional_id": t.transactional_id,
                    "coordinator": node_id,
                    "producer_id": t.producer_id,
                    "state": t.transaction_state,
                }
            )
    return sorted(listed, key=lambda t: t["transactional_id"])


def describe_transaction(client: KafkaClient, transactional_id: str) -> dict[str, Any]:
    from rafka.cli.kafka_client import KafkaClientError

    deadline = time.monotonic() + 10
    while True:
        coordinator = find_transaction_coordinator(client, transactional_id)
        conn = client._node(coordinator)  # noqa: SLF001
        (state,) = describe_transactions(conn, [transactional_id])
        if state["error_code"] not in _RETRIABLE or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if state["error_code"] != NO_ERROR:
        raise KafkaClientError(
            f"transactional id {transactional_id!r}: {_error(state['error_code'])}"
        )
    start_ms = state["start_time_ms"]
    return {
        "coordinator": coordinator,
        "transactional_id": transactional_id,
        "producer_id": state["producer_id"],
        "producer_epoch": state["producer_epoch"],
        "state": state["state"],
        "timeout_ms": state["timeout_ms"],
        "start_time_ms": start_ms if start_ms >= 0 else None,
        "duration_ms": int(time.time() * 1000) - start_ms if start_ms >= 0 else None,
        "partitions": state["partitions"],
    }


def describe_transactions(conn: Connection, transactional_ids: list[str]) -> list[dict[str, Any]]:
    """DescribeTransactions v0, decoded here: kio's reader refuses the start time -1 that
    Kafka sends for a transactional id with no transaction."""
    body = _uvarint(len(transactional_ids) + 1)
    for transactional_id in transactional_ids:
        body += _string(transactional_id)
    body += b"\x00"  # no tagged fields
    frame = _exchange(conn, DESCRIBE_TRANSACTIONS, 0, body)
    r = _Reader(frame)
    r.pos = 4  # correlation id
    r.tags()  # response header v1
    r.take(4)  # throttle time
    states = []
    for _ in range(r.uvarint() - 1):
        state: dict[str, Any] = {"error_code": r.i16(), "transactional_id": r.string()}
        state["state"] = r.string()
        state["timeout_ms"] = r.i32()
        state["start_time_ms"] = r.i64()
        state["producer_id"] = r.i64()
        state["producer_epoch"] = r.i16()
        partitions = []
        for _ in range(r.uvarint() - 1):
            topic = r.string()
            for _ in range(r.uvarint() - 1):
                partitions.append({"topic": topic, "partition": r.i32()})
            r.tags()
        state["partitions"] = sorted(partitions, key=lambda p: (p["topic"], p["partition"]))
        r.tags()
        states.append(state)
    return states


def _exchange(conn: Connection, api_key: int, version: int, body: bytes) -> bytes:
    """Send a hand-encoded flexible request on `conn`; the response frame (from the
    correlation id on)."""
    from rafka.cli.kafka_client import KafkaClientError

    conn._correlation += 1  # noqa: SLF001
    client_id = conn._client_id  # noqa: SLF001
    header = struct.pack(">hhih", api_key, version, conn._correlation, len(client_id))  # noqa: SLF001
    payload = header + client_id + b"\x00" + body
    try:
        conn._sock.sendall(struct.pack(">i", len(payload)) + payload)  # noqa: SLF001
        (size,) = struct.unpack(">i", conn._read(4))  # noqa: SLF001
        frame = conn._read(size)  # noqa: SLF001
    except OSError as exc:
        raise KafkaClientError(f"{conn.address}: {exc}") from None
    if struct.unpack_from(">i", frame)[0] != conn._correlation:  # noqa: SLF001
        raise KafkaClientError(f"{conn.address}: response out of order")
    return frame


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(value: str) -> bytes:
    raw = value.encode()
    return _uvarint(len(raw) + 1) + raw


class _Reader(FieldReader):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)

    def string(self) -> str:
        return bytes(self.take(self.uvarint() - 1)).decode()


def describe_producers(client: KafkaClient, topic: str, partition: int) -> list[dict[str, Any]]:
    from rafka.cli.kafka_client import KafkaClientError

    leader = client.cluster().leaders.get((topic, partition), -1)
    if leader < 0:
        raise KafkaClientError(f"no leader for {topic}-{partition}")
    response = _call(
        client,
        DESCRIBE_PRODUCERS,
        {"topics": [{"name": topic, "partition_indexes": [partition]}]},
        leader,
    )
    result = response.topics[0].partitions[0]
    if result.error_code != NO_ERROR:
        raise KafkaClientError(f"{topic}-{partition}: {_error(result.error_code)}")
    return [
        {
            "producer_id": p.producer_id,
            "producer_epoch": p.producer_epoch,
            "last_sequence": p.last_sequence,
            "last_timestamp": p.last_timestamp,
            "coordinator_epoch": p.coordinator_epoch,
            "current_transaction_start_offset": p.current_txn_start_offset,
        }
        for p in response.topics[0].partitions[0].active_producers
    ]


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


# -- commands --------------------------------------------------------------------------------------


@app.command("list")
def list_command(
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    state: Annotated[
        list[str] | None,
        typer.Option("--state", help="Only transactions in this state (repeatable), e.g. Ongoing."),
    ] = None,
    producer_id: Annotated[
        list[int] | None,
        typer.Option("--producer-id", help="Only this producer id (repeatable)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the transactional ids every coordinator of the cluster holds."""
    with _client(bootstrap_server, command_config) as client:
        listed = list_transactions(client, state or [], producer_id or [])
    if json_output:
        print_json(listed)
        return
    print_table(
        ["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"],
        [[t["transactional_id"], t["coordinator"], t["producer_id"], t["state"]] for t in listed],
    )


@app.command("describe")
def describe_command(
    transactional_id: Annotated[
        str, typer.Option("--transactional-id", "-t", help="The transactional id.")
    ],
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """The state of one transactional id: producer, epoch, state, partitions, age."""
    with _client(bootstrap_server, command_config) as client:
        described = describe_transaction(client, transactional_id)
    if json_output:
        print_json(described)
        return
    partitions = ",".join(f"{p['topic']}-{p['partition']}" for p in described["partitions"])
    print_table(
        [
            "COORDINATOR",
            "TRANSACTIONAL-ID",
            "PRODUCER-ID",
            "PRODUCER-EPOCH",
            "STATE",
            "TIMEOUT-MS",
            "START-TIME",
            "DURATION-MS",
            "PARTITIONS",
        ],
        [
            [
                described["coordinator"],
                described["transactional_id"],
                described["producer_id"],
                described["producer_epoch"],
                described["state"],
                described["timeout_ms"],
                _iso(described["start_time_ms"]),
                described["duration_ms"],
                partitions or None,
            ]
        ],
    )


@app.command("describe-producers")
def describe_producers_command(
    topic: Annotated[str, typer.Option("--topic", help="Topic name.")],
    partition: Annotated[int, typer.Option("--partition", help="Partition index.")],
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """The idempotent and transactional producers a partition's leader knows."""
    with _client(bootstrap_server, command_config) as client:
        producers = describe_producers(client, topic, partition)
    if json_output:
        print_json(producers)
        return
    print_table(
        [
            "PRODUCER-ID",
            "PRODUCER-EPOCH",
            "LAST-SEQUENCE",
            "LAST-TIMESTAMP",
            "COORDINATOR-EPOCH",
            "CURRENT-TXN-START-OFFSET",
        ],
        [
            [
                p["producer_id"],
                p["producer_epoch"],
                p["last_sequence"],
                _iso(p["last_timestamp"]) if p["last_timestamp"] >= 0 else None,
                p["coordinator_epoch"],
                p["current_transaction_start_offset"]
                if p["current_transaction_start_offset"] >= 0
                else None,
            ]
            for p in producers
        ],
    )
