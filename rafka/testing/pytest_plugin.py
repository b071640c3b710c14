"""pytest plugin `rafka` (a `pytest11` entry point): real rafka brokers as fixtures, no Docker.

Fixtures (each broker is a `rafka broker` child process on a free port of 127.0.0.1 with its own
temporary directory, awaited until it answers ApiVersions, stopped by PID with SIGTERM):

    kafka_bootstrap            "host:port" of the session's broker (or of --rafka-bootstrap)
    rafka_broker               the session's broker (a RafkaBroker)
    kafka_bootstrap_per_test   "host:port" of a fresh broker for this test
    rafka_broker_per_test      a fresh broker for this test
    rafka_broker_factory       start brokers with config overrides; all stopped after the test

Configuration: `--rafka-override KEY=VALUE` (repeatable) over the ini's `rafka_overrides` lines;
`rafka_start_timeout`, `rafka_host`, `rafka_log_level`; `--rafka-bootstrap HOST:PORT` points
`kafka_bootstrap` at another Kafka. Disable the plugin with `-p no:rafka`. Every broker's start
and stop time is summarised at the end of the run; `-v` or `--rafka-timings` lists each one.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rafka.testing.broker import DEFAULT_HOST, BrokerStartError, RafkaBroker

log = logging.getLogger("rafka.testing")

BrokerFactory = Callable[..., RafkaBroker]


@dataclass(slots=True)
class BrokerTiming:
    """One broker the fixtures started, for the end-of-run report."""

    scope: str  # "session" or "per-test"
    owner: str  # the test's node id, or "session"
    pid: int
    bootstrap: str
    start_ms: float
    stop_ms: float | None = None


@dataclass(slots=True)
class Settings:
    overrides: dict[str, str]
    host: str
    start_timeout: float
    log_level: str
    external_bootstrap: str | None
    list_timings: bool
    bytecode_cache: Path
    timings: list[BrokerTiming] = field(default_factory=list)


_SETTINGS = pytest.StashKey[Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rafka", "rafka: real Kafka-compatible brokers as fixtures")
    group.addoption(
        "--rafka-override", action="append", default=[], metavar="KEY=VALUE",
        help="broker config for every broker the fixtures start; repeatable, over rafka_overrides",
    )
    group.addoption(
        "--rafka-bootstrap", default=None, metavar="HOST:PORT",
        help="kafka_bootstrap returns this (e.g. a Kafka container) instead of starting rafka",
    )
    group.addoption(
        "--rafka-start-timeout", type=float, default=None, metavar="SECONDS",
        help="how long a broker may take to answer (default: rafka_start_timeout, 30)",
    )
    group.addoption(
        "--rafka-timings", action="store_true", default=False,
        help="list every broker's start and stop time at the end (also shown with -v)",
    )
    parser.addini("rafka_overrides", "broker config KEY=VALUE lines", type="linelist", default=[])
    parser.addini("rafka_bootstrap", "HOST:PORT for kafka_bootstrap instead of a rafka broker",
                  default="")
    parser.addini("rafka_start_timeout", "seconds a broker may take to answer", default="30")
    parser.addini("rafka_host", "address the brokers listen on", default=DEFAULT_HOST)
    parser.addini("rafka_log_level", "the brokers' log level", default="INFO")


def _parse_overrides(lines: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise pytest.UsageError(f"rafka: override {line!r} is not KEY=VALUE")
        overrides[key.strip()] = value.strip()
    return overrides


def _bytecode_cache(config: pytest.Config) -> Path:
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider
    if cache is not None:
        return Path(cache.mkdir("rafka-bytecode"))
    return Path(tempfile.gettempdir()) / f"rafka-bytecode-{os.getuid()}"


def settings(config: pytest.Config) -> Settings:
    """The plugin's settings, read on first use (after the cache plugin has configured)."""
    found = config.stash.get(_SETTINGS, None)
    if found is not None:
        return found
    timeout_text = config.getoption("rafka_start_timeout") or config.getini("rafka_start_timeout")
    try:
        timeout = float(timeout_text)
    except ValueError:
        raise pytest.UsageError(f"rafka: start timeout {timeout_text!r} is not a number") from None
    found = Settings(
        overrides={
            **_parse_overrides(config.getini("rafka_overrides")),
            **_parse_overrides(config.getoption("rafka_override")),
        },
        host=str(config.getini("rafka_host")) or DEFAULT_HOST,
        start_timeout=timeout,
        log_level=str(config.getini("rafka_log_level")) or "INFO",
        external_bootstrap=(
            config.getoption("rafka_bootstrap") or str(config.getini("rafka_bootstrap")) or None
        ),
        list_timings=(
            bool(config.getoption("rafka_timings")) or int(config.getoption("verbose")) > 0
        ),
        bytecode_cache=_bytecode_cache(config),
    )
    config.stash[_SETTINGS] = found
    return found


def _start(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    scope: str,
    overrides: Mapping[str, object],
) -> tuple[RafkaBroker, BrokerTiming]:
    plugin = settings(request.config)
    broker = RafkaBroker(
        tmp_path_factory.mktemp("rafka"),
        host=plugin.host,
        overrides={**plugin.overrides, **overrides},
        log_level=plugin.log_level,
        bytecode_cache=plugin.bytecode_cache,
    )
    try:
        broker.start(plugin.start_timeout)
    except BrokerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    assert broker.pid is not None and broker.start_seconds is not None
    owner = "session" if scope == "session" else request.node.nodeid
    timing = BrokerTiming(scope, owner, broker.pid, broker.bootstrap, broker.start_seconds * 1000)
    plugin.timings.append(timing)
    log.info("rafka broker %s started in %.0f ms for %s", broker.bootstrap, timing.start_ms, owner)
    if scope != "session":
        request.node.user_properties.append(("rafka_broker_start_ms", round(timing.start_ms, 1)))
    return broker, timing


def _stop(broker: RafkaBroker, timing: BrokerTiming) -> None:
    # A broker that died on its own (not stopped or killed by the test) is a failure worth
    # reporting even when the test passed: its clients may have seen only timeouts.
    died = broker.pid is not None and not broker.running
    code = broker.stop()
    if broker.stop_seconds is not None and not died:
        timing.stop_ms = broker.stop_seconds * 1000
        log.info("rafka broker %s stopped in %.0f ms", timing.bootstrap, timing.stop_ms)
    if died:
        pytest.fail(
            f"rafka broker {timing.bootstrap} (pid {timing.pid}) exited by itself with code "
            f"{code}; output ({broker.output_path}):\n{broker.output_tail()}",
            pytrace=False,
        )
    if code not in (0, None):
        warnings.warn(
            f"rafka broker {timing.bootstrap} exited with code {code} on SIGTERM; "
            f"output: {broker.output_path}",
            stacklevel=1,
        )


@pytest.fixture(scope="session")
def rafka_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RafkaBroker]:
    """A rafka broker shared by the whole session (one per xdist worker). Tests sharing it
    should use their own topic and group names."""
    broker, timing = _start(request, tmp_path_factory, "session", {})
    try:
        yield broker
    finally:
        _stop(broker, timing)


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """bootstrap.servers ("host:port") of the session's rafka broker, or --rafka-bootstrap."""
    external = settings(request.config).external_bootstrap
    if external is not None:
        return external
    broker: RafkaBroker = request.getfixturevalue("rafka_broker")
    return broker.bootstrap


@pytest.fixture
def rafka_broker_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerFactory]:
    """`start(overrides={"num.partitions": 3})` starts a fresh broker with these config keys
    over the plugin's; every broker it started is stopped after the test."""
    started: list[tuple[RafkaBroker, BrokerTiming]] = []

    def start(overrides: Mapping[str, object] | None = None) -> RafkaBroker:
        broker, timing = _start(request, tmp_path_factory, "per-test", overrides or {})
        started.append((broker, timing))
        return broker

    try:
        yield start
    finally:
        failures: list[BaseException] = []
        for broker, timing in started:
            try:
                _stop(broker, timing)
            except (Exception, pytest.fail.Exception) as exc:  # stop every one, then report
                failures.append(exc)
        if failures:
            raise failures[0]


@pytest.fixture
def rafka_broker_per_test(rafka_broker_factory: BrokerFactory) -> RafkaBroker:
    """A fresh rafka broker (empty log directory, own port) for this test only."""
    return rafka_broker_factory()


@pytest.fixture
def kafka_bootstrap_per_test(rafka_broker_per_test: RafkaBroker) -> str:
    """bootstrap.servers ("host:port") of a fresh rafka broker for this test only."""
    return rafka_broker_per_test.bootstrap


def _ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.0f} ms "
        f"(min {min(values):.0f}, max {max(values):.0f}, n={len(values)})"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    plugin = terminalreporter.config.stash.get(_SETTINGS, None)
    if plugin is None or not plugin.timings:
        return
    terminalreporter.section("rafka brokers")
    starts = [t.start_ms for t in plugin.timings]
    stops = [t.stop_ms for t in plugin.timings if t.stop_ms is not None]
    terminalreporter.write_line(f"rafka: broker start {_ms(starts)}")
    if stops:
        terminalreporter.write_line(f"rafka: broker stop {_ms(stops)}")
    if plugin.list_timings:
        for t in plugin.timings:
            stopped = "not stopped" if t.stop_ms is None else f"stopped in {t.stop_ms:.0f} ms"
            terminalreporter.write_line(
                f"rafka: {t.scope} broker started in {t.start_ms:.0f} ms, {stopped} "
                f"(pid {t.pid}, {t.bootstrap}) {t.owner}"
            )
