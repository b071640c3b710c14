"""The broker process: event loop, listeners, signals, housekeeping and clean shutdown."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import TYPE_CHECKING

import structlog
import uvloop

from rafka.broker.apis import build_dispatchers, inter_broker_dispatcher
from rafka.broker.broker import Broker
from rafka.broker.config import BrokerConfig
from rafka.broker.net import tls
from rafka.broker.net.listener_security import listener_security
from rafka.broker.net.server import ConnectionLimits, Listener, SocketOptions
from rafka.broker.node import BrokerEndpoint
from rafka.broker.partition.clock import now_ms

if TYPE_CHECKING:
    from rafka.broker.metrics.endpoint import MetricsEndpoint

log = structlog.get_logger(__name__)

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
# A clean shutdown takes well under this (leaderships are handed over within 5 s): past it,
# the tasks still running are logged with where each one waits.
SLOW_SHUTDOWN_S = 10.0


class BrokerServer:
    """A broker with its listeners; usable in-process (tests) or from `run`."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        # Before anything starts: a key store that cannot be loaded stops the broker in one line.
        self._tls = {
            spec.name: tls.server_context(config, spec.name)
            for spec in config.listeners
            if spec.security_protocol in TLS_PROTOCOLS
        }
        self._security = {
            spec.name: listener_security(config, spec.name, spec.security_protocol)
            for spec in config.listeners
        }
        self.broker = Broker(config)
        self.listeners: list[Listener] = []
        self.controller_listeners: list[Listener] = []
        self._housekeeping: asyncio.Task[None] | None = None
        self.metrics: MetricsEndpoint | None = None

    async def start(self) -> None:
        started = time.monotonic()
        if self.config.metrics_enabled:  # first: a port in use stops the broker before any work
            # Imported only here: a broker without metrics never loads prometheus_client.
            from rafka.broker.metrics.endpoint import start_metrics_endpoint

            self.metrics = await start_metrics_endpoint(
                self.broker, self.config.metrics_host, self.config.metrics_port
            )
        await self.broker.start()
        # Client requests wait until this node has joined the cluster; Raft traffic between
        # the nodes (on the controller listeners) flows at once, as joining needs it.
        joined = asyncio.Event()
        for_clients, for_nodes = build_dispatchers(self.broker, gate=joined)
        # A broker-only node has no controller listener: the others reach it at this one.
        inter_broker = None if self.config.is_controller else self.config.inter_broker_listener_name
        max_frame = self.config.socket_request_max_bytes
        controller_names = set(self.config.controller_listener_names)
        limits = ConnectionLimits(
            self.config.get_int("max.connections"), self.config.get_int("max.connections.per.ip")
        )
        idle_ms = self.config.get_int("connections.max.idle.ms")
        sockets = SocketOptions(
            self.config.get_int("socket.send.buffer.bytes"),
            self.config.get_int("socket.receive.buffer.bytes"),
            self.config.get_int("socket.listen.backlog.size"),
        )
        for spec in self.config.listeners:
            is_controller = spec.name in controller_names
            handler = for_nodes if is_controller else for_clients
            if spec.name == inter_broker:
                handler = inter_broker_dispatcher(for_clients, for_nodes)
            listener = Listener(
                spec.name, spec.host, spec.port, handler, max_frame,
                limits=limits, counts_toward_max=not is_controller, idle_ms=idle_ms,
                ssl_context=self._tls.get(spec.name), security=self._security[spec.name],
                sockets=sockets,
            )  # fmt: skip
            await listener.start()
            if is_controller:
                self.controller_listeners.append(listener)
            else:
                self.listeners.append(listener)
        await self.broker.join(self._advertised_endpoint())
        joined.set()
        self._housekeeping = asyncio.create_task(self._run_housekeeping(), name="housekeeping")
        # Kafka's broker logs this state change when it is unfenced and serves clients; tools
        # written for Kafka wait for it (testcontainers' KafkaContainer matches the phrase).
        log.info(
            "broker ready",
            state="Transitioning from RECOVERY to RUNNING",
            listeners=[f"{lst.name}://{lst.host}:{lst.port}" for lst in self.listeners],
            startup_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _advertised_endpoint(self) -> BrokerEndpoint:
        # Each client listener as advertised (port 0 means "the bound one"); clients that do not
        # say which listener they came in on get the first.
        bound = {lst.name: lst for lst in self.listeners}
        rack = self.config.get_str("broker.rack")
        advertised: list[tuple[str, str, int]] = []
        for spec in self.config.advertised_listeners:
            if spec.name in bound:
                port = spec.port or bound[spec.name].port
                host = spec.host or bound[spec.name].host or "localhost"
                advertised.append((spec.name, host, port))
        for lst in self.listeners:  # bound but not advertised: as bound
            if all(name != lst.name for name, _, _ in advertised):
                advertised.append((lst.name, lst.host or "localhost", lst.port))
        _, host, port = advertised[0]
        return BrokerEndpoint(self.broker.node_id, host, port, rack, tuple(advertised))

    async def _run_housekeeping(self) -> None:
        retention_interval = self.config.get_int("log.retention.check.interval.ms") / 1000
        checkpoint_interval = self.config.get_int("log.flush.offset.checkpoint.interval.ms") / 1000
        loop = asyncio.get_running_loop()
        next_retention = loop.time() + retention_interval
        next_checkpoint = loop.time() + checkpoint_interval
        while True:
            await asyncio.sleep(max(0.0, min(next_retention, next_checkpoint) - loop.time()))
            if loop.time() >= next_retention:
                self.run_retention()
                next_retention = loop.time() + retention_interval
            if loop.time() >= next_checkpoint:
                try:
                    self.broker.write_checkpoints()
                except OSError as exc:
                    # Stale checkpoints cost a longer recovery, never data; retention, which
                    # may free the full disk that failed them, must keep running.
                    log.error("checkpoints not written", error=str(exc))
                next_checkpoint = loop.time() + checkpoint_interval

    def run_retention(self) -> None:
        now = now_ms()
        for partition in list(self.broker.partitions.values()):
            try:
                partition.log.apply_retention(now, partition.high_watermark)
                partition.producers.delete_snapshots_before(partition.log_start_offset)
                partition.producers.remove_expired_producers(now)
            except OSError as exc:
                log.error("retention failed", partition=partition.name, error=str(exc))

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self.metrics is not None:
            await self.metrics.close()
        # Leaderships first, while clients and followers can still reach us: clients move to
        # the new leaders with retriable errors, and nothing acknowledged is left behind.
        await self.broker.hand_over_leadership()
        for listener in self.listeners:
            await listener.stop()
        await self.broker.stop()
        for listener in self.controller_listeners:
            await listener.stop()


class BrokerFailed(Exception):
    """The node cannot go on (its metadata log failed); the message says why."""


async def serve(config: BrokerConfig, stop: asyncio.Event, scram_seeds: dict | None = None) -> None:
    server = BrokerServer(config)
    server.broker.scram_seeds = dict(scram_seeds or {})
    starting = asyncio.ensure_future(server.start())
    stopping = asyncio.ensure_future(stop.wait())
    failing = asyncio.ensure_future(server.broker.failed.wait())
    try:
        # A node waiting for its cluster (no quorum yet) must still stop when told to.
        await asyncio.wait([starting, stopping, failing], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            if failing.done():
                raise BrokerFailed(server.broker.failure)
            log.info("stopped before joining the cluster")
            return
        starting.result()
        await asyncio.wait([stopping, failing], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        failing.cancel()
    if server.broker.failure is not None:
        # Kafka halts here; a clean shutdown would write to the storage that just failed.
        raise BrokerFailed(server.broker.failure)
    log.info("shutting down")
    watchdog = asyncio.create_task(_report_slow_shutdown(SLOW_SHUTDOWN_S), name="shutdown-watch")
    try:
        await server.stop()
    finally:
        watchdog.cancel()


async def _report_slow_shutdown(after: float) -> None:
    await asyncio.sleep(after)
    this = asyncio.current_task()
    waiting = [_where(task) for task in asyncio.all_tasks() if task is not this]
    log.warning("shutdown slow", seconds=after, tasks=sorted(waiting))


def _where(task: asyncio.Task) -> str:
    """A task's name and the innermost coroutines it is suspended in."""
    coro = task.get_coro()
    chain = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_qualname}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return f"{task.get_name()}: {' > '.join(chain[-3:])}"


def run(config: BrokerConfig, scram_seeds: dict | None = None) -> int:
    """Run a broker until SIGTERM or SIGINT; returns the process exit code."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await serve(config, stop, scram_seeds)
        except (OSError, BrokerFailed) as exc:
            log.error("broker failed", error=str(exc))
            return 1
        return 0

    return uvloop.run(main())
