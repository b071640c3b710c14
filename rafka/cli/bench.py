"""`rafka bench`: produce, consume and end-to-end latency benchmarks against any Kafka cluster.

The flags follow Kafka's perf tools (kafka-producer-perf-test, kafka-consumer-perf-test,
EndToEndLatency) and so does the result line, where MB means 2**20 bytes as in Kafka's tools. The
load comes from librdkafka through confluent-kafka, so the client is rarely the bottleneck; the
CPU time this process used is reported beside every result so a reader can tell when it was.

confluent-kafka is imported lazily: it is a test dependency of rafka, not a runtime one, and
`rafka broker` shares this module's imports.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, NoReturn

import typer

from rafka.cli.bench_runs import consumer_config, run_consume, run_e2e, run_produce
from rafka.cli.bench_support import (
    EXIT_FAILURE,
    BenchError,
    BenchResult,
    ClientErrors,
    Progress,
    ensure_topic,
    load_confluent_kafka,
    parse_props,
    producer_config,
)

app = typer.Typer(
    name="bench",
    help="Benchmark a Kafka-compatible cluster: produce, consume, end-to-end latency.",
    no_args_is_help=True,
    add_completion=False,
)


# -- command line --------------------------------------------------------------------------------

BootstrapOption = Annotated[
    str,
    typer.Option(
        "--bootstrap-server",
        "-b",
        envvar="RAFKA_BOOTSTRAP_SERVER",
        metavar="HOST:PORT",
        help="A broker to connect to (comma-separated list allowed).",
    ),
]
TopicOption = Annotated[str, typer.Option("--topic", "-t", help="Topic to use.")]
NumRecordsOption = Annotated[
    int, typer.Option("--num-records", "--messages", min=1, help="Number of records.")
]
RecordSizeOption = Annotated[int, typer.Option("--record-size", min=1, help="Bytes per record.")]
AcksOption = Annotated[str, typer.Option("--acks", help="0, 1 or all.")]
CompressionOption = Annotated[
    str, typer.Option("--compression", help="none, gzip, snappy, lz4 or zstd.")
]
IdempotenceOption = Annotated[
    bool, typer.Option("--idempotence/--no-idempotence", help="Idempotent producer (acks=all).")
]
PartitionsOption = Annotated[
    int, typer.Option("--partitions", min=1, help="Partitions if the topic must be created.")
]
ReplicationOption = Annotated[
    int,
    typer.Option(
        "--replication-factor",
        help="Replicas if the topic must be created; -1: the broker's default.",
    ),
]
ProducerPropsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--producer-props", metavar="KEY=VALUE", help="librdkafka producer property (repeatable)."
    ),
]
ConsumerPropsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--consumer-props", metavar="KEY=VALUE", help="librdkafka consumer property (repeatable)."
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for records before giving up.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object instead of the line and table.")
]
ProgressOption = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Progress bar (default: when stderr is a TTY)."),
]
DEFAULT_BOOTSTRAP = "localhost:9092"
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
ACKS = {"0": "0", "1": "1", "all": "all", "-1": "all"}


def _fail(message: str) -> NoReturn:
    typer.echo(f"rafka: error: {message}", err=True)
    raise typer.Exit(EXIT_FAILURE)


def _progress(label: str, total: int, wanted: bool | None, json_output: bool) -> Progress:
    enabled = wanted if wanted is not None else (sys.stderr.isatty() and not json_output)
    return Progress(label, total, enabled)


def _report(result: BenchResult, json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps(result.to_json()))
        return
    typer.echo(result.result_line())
    rows = result.table_rows()
    width = max(len(name) for name, _ in rows)
    typer.echo("")
    for name, value in rows:
        typer.echo(f"  {name.ljust(width)}  {value}")


def _check_producer_options(acks: str, compression: str, idempotence: bool) -> str:
    if acks.lower() not in ACKS:
        raise BenchError(f"--acks must be 0, 1 or all, not {acks!r}")
    if compression not in COMPRESSIONS:
        raise BenchError(f"--compression must be one of {', '.join(COMPRESSIONS)}")
    if idempotence and ACKS[acks.lower()] != "all":
        raise BenchError("--idempotence needs --acks all")
    return ACKS[acks.lower()]


def _run(action: Callable[[], BenchResult], progress: Progress, json_output: bool) -> None:
    try:
        result = action()
    except BenchError as exc:
        progress.close()
        _fail(str(exc))
    except KeyboardInterrupt:
        progress.close()
        _fail("interrupted")
    progress.close()
    _report(result, json_output)
    if result.errors:
        _fail(f"{result.errors} records failed: {result.first_error}")


@app.command("produce")
def produce(
    topic: TopicOption,
    num_records: NumRecordsOption,
    record_size: RecordSizeOption = 100,
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    throughput: Annotated[
        float, typer.Option("--throughput", help="Records/sec to aim at; -1: no limit.")
    ] = -1,
    acks: AcksOption = "all",
    compression: CompressionOption = "none",
    idempotence: IdempotenceOption = False,
    partitions: PartitionsOption = 1,
    replication_factor: ReplicationOption = -1,
    producer_props: ProducerPropsOption = None,
    json_output: JsonOption = False,
    show_progress: ProgressOption = None,
) -> None:
    """Producer throughput: records/sec and MB/sec until every record is acknowledged."""
    progress = _progress("produce", num_records, show_progress, json_output)

    def action() -> BenchResult:
        acks_value = _check_producer_options(acks, compression, idempotence)
        ck = load_confluent_kafka()
        props = parse_props(producer_props or [])
        ensure_topic(ck, bootstrap_server, topic, partitions, replication_factor, ClientErrors(ck))
        config = producer_config(bootstrap_server, acks_value, compression, idempotence, props)
        result = run_produce(ck, config, topic, num_records, record_size, throughput, progress)
        result.settings = {
            "topic": topic,
            "record_size": record_size,
            "acks": acks_value,
            "compression": compression,
            "idempotence": idempotence,
            "throughput": throughput,
            "librdkafka": ck.libversion()[0],
            **props,
        }
        return result

    _run(action, progress, json_output)


@app.command("consume")
def consume(
    topic: TopicOption,
    num_records: NumRecordsOption,
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    group: Annotated[
        str | None,
        typer.Option("--group", "-g", help="Consume as a member of this group (subscribe)."),
    ] = None,
    timeout: TimeoutOption = 10.0,
    consumer_props: ConsumerPropsOption = None,
    json_output: JsonOption = False,
    show_progress: ProgressOption = None,
) -> None:
    """Consumer throughput from the start of the topic, by assignment or in a --group."""
    progress = _progress("consume", num_records, show_progress, json_output)

    def action() -> BenchResult:
        ck = load_confluent_kafka()
        props = parse_props(consumer_props or [])
        config = consumer_config(bootstrap_server, group, props)
        result = run_consume(ck, config, topic, num_records, group is not None, timeout, progress)
        result.settings = {
            "topic": topic,
            "group": group,
            "librdkafka": ck.libversion()[0],
            **props,
        }
        return result

    _run(action, progress, json_output)


@app.command("e2e")
def e2e(
    topic: TopicOption,
    num_records: NumRecordsOption,
    record_size: RecordSizeOption = 100,
    bootstrap_server: BootstrapOption = DEFAULT_BOOTSTRAP,
    throughput: Annotated[
        float, typer.Option("--throughput", help="Records/sec to send at.")
    ] = 1000,
    acks: AcksOption = "all",
    compression: CompressionOption = "none",
    idempotence: IdempotenceOption = False,
    partitions: PartitionsOption = 1,
    replication_factor: ReplicationOption = -1,
    timeout: TimeoutOption = 10.0,
    producer_props: ProducerPropsOption = None,
    consumer_props: ConsumerPropsOption = None,
    json_output: JsonOption = False,
    show_progress: ProgressOption = None,
) -> None:
    """End-to-end latency (produce to consume) at a fixed rate, default consumer settings."""
    progress = _progress("e2e", num_records, show_progress, json_output)

    def action() -> BenchResult:
        acks_value = _check_producer_options(acks, compression, idempotence)
        if throughput <= 0:
            raise BenchError("--throughput must be positive for e2e")
        ck = load_confluent_kafka()
        pprops = parse_props(producer_props or [])
        cprops = parse_props(consumer_props or [])
        ensure_topic(ck, bootstrap_server, topic, partitions, replication_factor, ClientErrors(ck))
        result = run_e2e(
            ck,
            producer_config(bootstrap_server, acks_value, compression, idempotence, pprops),
            consumer_config(bootstrap_server, None, cprops),
            topic,
            num_records,
            record_size,
            throughput,
            timeout,
            progress,
        )
        result.settings = {
            "topic": topic,
            "record_size": record_size,
            "acks": acks_value,
            "throughput": throughput,
            "librdkafka": ck.libversion()[0],
            **pprops,
            **cprops,
        }
        return result

    _run(action, progress, json_output)
