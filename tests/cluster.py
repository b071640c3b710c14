"""A real multi-process rafka cluster on 127.0.0.1 for tests: KRaft combined-mode nodes started
together, killed (SIGKILL), stopped (SIGTERM) and restarted on their own ports and data dirs; what
every node's Metadata says about a partition; and the replicas' segment files compared byte for
byte below the high watermark.

    with Cluster(tmp_path, 3, **FAST_FAILOVER) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader("topic", 0)
        cluster.kill(leader)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from broker_process import BrokerProcess, free_port

from rafka.cli.kafka_client import METADATA, Connection, KafkaClientError
from rafka.protocol.records import CorruptRecordError, crc_ok, iter_batch_headers, read_batch_header

HOST = "127.0.0.1"
# Timers low enough that a crashed leader is replaced within about a second (Kafka's names; every
# Raft group, the metadata quorum and each partition, uses them).
FAST_FAILOVER: dict[str, str] = {
    "controller.quorum.election.timeout.ms": "300",
    "controller.quorum.fetch.timeout.ms": "600",
    "controller.quorum.election.backoff.max.ms": "300",
    "broker.session.timeout.ms": "2000",
    "broker.heartbeat.interval.ms": "250",
    # A new group's first rebalance need not wait for more members in tests.
    "group.initial.rebalance.delay.ms": "0",
}
START_TIMEOUT = 60.0
METADATA_TIMEOUT = 5.0


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `predicate` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class PartitionView:
    """One node's Metadata answer for one partition."""

    error_code: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MetadataView:
    """One node's Metadata answer: its live brokers and every topic's partitions."""

    node_id: int
    brokers: dict[int, int]  # node id -> client port
    controller_id: int
    partitions: dict[tuple[str, int], PartitionView]
    internal_topics: frozenset[str]


class Cluster:
    """`size` combined broker+controller nodes with ids 1..size. `overrides` apply to every node
    (on top of the listener and quorum settings the harness chooses). With `hosts` (node id ->
    address, one per node, e.g. in network namespaces) every node listens on ports 9092/9093 of
    its own address; `launchers` (node id -> command prefix) run a node e.g. in its namespace."""

    def __init__(
        self,
        root: Path,
        size: int,
        *,
        hosts: Mapping[int, str] | None = None,
        launchers: Mapping[int, Sequence[str]] | None = None,
        **overrides: str,
    ) -> None:
        self.root = root
        self.size = size
        self.node_ids = list(range(1, size + 1))
        if hosts is None:
            self.hosts = {i: HOST for i in self.node_ids}
            ports = _distinct_free_ports(2 * size)
            self.client_ports = {i: ports[i - 1] for i in self.node_ids}
            self.controller_ports = {i: ports[size + i - 1] for i in self.node_ids}
        else:
            self.hosts = dict(hosts)
            self.client_ports = {i: 9092 for i in self.node_ids}
            self.controller_ports = {i: 9093 for i in self.node_ids}
        voters = ",".join(f"{i}@{self.hosts[i]}:{self.controller_ports[i]}" for i in self.node_ids)
        self.nodes: dict[int, BrokerProcess] = {}
        self._known_replicas: dict[tuple[str, int], tuple[int, ...]] = {}
        self._voters = voters
        self._overrides = overrides
        for i in self.node_ids:
            settings = {
                "node.id": str(i),
                "process.roles": "broker,controller",
                "listeners": (
                    f"PLAINTEXT://{self.hosts[i]}:{self.client_ports[i]},"
                    f"CONTROLLER://{self.hosts[i]}:{self.controller_ports[i]}"
                ),
                "advertised.listeners": f"PLAINTEXT://{self.hosts[i]}:{self.client_ports[i]}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "controller.quorum.voters": voters,
                **overrides,
            }
            self.nodes[i] = BrokerProcess(
                self.data_dir(i),
                port=self.client_ports[i],
                host=self.hosts[i],
                launcher=(launchers or {}).get(i, ()),
                **settings,
            )

    def add_broker(self, node_id: int, timeout: float = START_TIMEOUT) -> None:
        """Start a broker-only node (`process.roles=broker`, not a metadata voter) with the
        cluster's voters on 127.0.0.1, and wait until every live node lists it. It is killed
        by `close` like the others."""
        assert node_id not in self.nodes, f"node {node_id} exists"
        self.node_ids.append(node_id)
        self.hosts[node_id] = HOST
        self.client_ports[node_id] = port = _distinct_free_ports(1)[0]
        self.nodes[node_id] = BrokerProcess(
            self.data_dir(node_id),
            port=port,
            host=HOST,
            **{
                "node.id": str(node_id),
                "process.roles": "broker",
                "listeners": f"PLAINTEXT://{HOST}:{port}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "controller.quorum.voters": self._voters,
                **self._overrides,
            },
        )
        self.start_nodes([node_id], timeout)

    # -- addresses and files ------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """Every node's client address, for clients that must survive any node's death."""
        return ",".join(self.address(i) for i in self.node_ids)

    def address(self, node_id: int) -> str:
        return f"{self.hosts[node_id]}:{self.client_ports[node_id]}"

    def data_dir(self, node_id: int) -> Path:
        return self.root / f"node{node_id}"

    def partition_dir(self, node_id: int, topic: str, partition: int) -> Path:
        return self.data_dir(node_id) / f"{topic}-{partition}"

    # -- processes ----------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> Cluster:
        """Start every node at once (a lone node never becomes ready: it cannot join a quorum),
        wait for each one's ready line, then until every node's Metadata lists every broker."""
        self.start_nodes(self.node_ids, timeout)
        return self

    def start_nodes(self, node_ids: Iterable[int], timeout: float = START_TIMEOUT) -> None:
        """Start the given stopped nodes concurrently and wait until all are ready and seen by
        every live node."""
        ids = list(node_ids)
        failures: dict[int, BaseException] = {}

        def start_one(node_id: int) -> None:
            try:
                self.nodes[node_id].start(timeout)
            except BaseException as exc:  # reported below, with every node's failure
                failures[node_id] = exc

        threads = [
            threading.Thread(target=start_one, args=(i,), name=f"start-node{i}") for i in ids
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout + 30)
        if failures:
            details = "\n\n".join(f"node {i}: {exc}" for i, exc in sorted(failures.items()))
            raise RuntimeError(f"cluster nodes {sorted(failures)} did not start:\n{details}")
        self.wait_for_brokers(timeout)

    def kill(self, node_id: int) -> None:
        """SIGKILL: a crash, leaving whatever is on disk."""
        self.nodes[node_id].kill()

    def stop(self, node_id: int, timeout: float = 30.0) -> int:
        """SIGTERM and wait: a graceful shutdown; returns the exit code."""
        return self.nodes[node_id].stop(timeout)

    def stop_all(self, timeout: float = 30.0) -> dict[int, int]:
        """Stop every live node gracefully, one after another; exit codes by node id."""
        return {i: self.stop(i, timeout) for i in self.live_nodes()}

    def restart(self, node_id: int, timeout: float = START_TIMEOUT) -> None:
        """Start a stopped or killed node again on its ports and data directory."""
        assert not self.is_alive(node_id), f"node {node_id} is still running"
        self.start_nodes([node_id], timeout)

    def is_alive(self, node_id: int) -> bool:
        process = self.nodes[node_id].process
        return process is not None and process.poll() is None

    def live_nodes(self) -> list[int]:
        return [i for i in self.node_ids if self.is_alive(i)]

    def log_lines(self, node_id: int) -> list[str]:
        return list(self.nodes[node_id].log_lines)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of every node's output, for assertion messages."""
        return "\n".join(
            f"--- node {i} ---\n" + "\n".join(self.log_lines(i)[-lines:]) for i in self.node_ids
        )

    def close(self) -> None:
        """Kill every process by its PID and keep each node's output next to its data."""
        for node_id, node in self.nodes.items():
            node.kill()
            try:
                (self.root / f"node{node_id}.out").write_text("\n".join(node.log_lines) + "\n")
            except OSError:
                pass

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            print(f"cluster output (whole, in {self.root}/node*.out):\n{self.log_tail()}")
        self.close()

    # -- metadata -----------------------------------------------------------------------------

    def metadata(self, node_id: int) -> MetadataView:
        """Node `node_id`'s Metadata answer for all topics; KafkaClientError if unreachable."""
        conn = Connection(
            self.hosts[node_id], self.client_ports[node_id], "cluster-harness", METADATA_TIMEOUT
        )
        try:
            response = conn.send(
                METADATA,
                conn.version_for(METADATA),
                {
                    "topics": None,
                    "allow_auto_topic_creation": False,
                    "include_cluster_authorized_operations": False,
                    "include_topic_authorized_operations": False,
                },
            )
        finally:
            conn.close()
        partitions: dict[tuple[str, int], PartitionView] = {}
        internal = set()
        for topic in response.topics:
            if topic.name is None or topic.error_code != 0:
                continue
            if topic.is_internal:
                internal.add(topic.name)
            for p in topic.partitions:
                partitions[(topic.name, p.partition_index)] = PartitionView(
                    error_code=p.error_code,
                    leader=p.leader_id,
                    leader_epoch=p.leader_epoch,
                    replicas=tuple(p.replica_nodes),
                    isr=tuple(p.isr_nodes),
                    offline=tuple(p.offline_replicas),
                )
        return MetadataView(
            node_id=node_id,
            brokers={b.node_id: b.port for b in response.brokers},
            controller_id=response.controller_id,
            partitions=partitions,
            internal_topics=frozenset(internal),
        )

    def metadata_views(self) -> list[MetadataView]:
        """The Metadata answers of every live node that answered."""
        views = []
        for node_id in self.live_nodes():
            try:
                views.append(self.metadata(node_id))
            except (KafkaClientError, OSError):
                continue  # starting or stopping: the other nodes' views will do
        return views

    def partition_views(self, topic: str, partition: int) -> dict[int, PartitionView]:
        """Each answering live node's view of one partition, by node id."""
        return {
            view.node_id: view.partitions[(topic, partition)]
            for view in self.metadata_views()
            if (topic, partition) in view.partitions
        }

    def partition_view(self, topic: str, partition: int) -> PartitionView | None:
        """The freshest view of a partition among the live nodes: the highest leader epoch."""
        views = self.partition_views(topic, partition).values()
        return max(views, key=lambda v: v.leader_epoch, default=None)

    def leader_of(self, topic: str, partition: int) -> int | None:
        """The partition's leader in the newest epoch any live node knows, if that leader is
        alive; None while there is none."""
        view = self.partition_view(topic, partition)
        if view is None or view.leader < 0 or not self.is_alive(view.leader):
            return None
        return view.leader

    def wait_for_leader(
        self, topic: str, partition: int, exclude: Iterable[int] = (), timeout: float = 30.0
    ) -> int:
        """Poll until a live node outside `exclude` leads the partition; its id."""
        excluded = set(exclude)
        found: list[int] = []

        def elected() -> bool:
            leader = self.leader_of(topic, partition)
            if leader is None or leader in excluded:
                return False
            found.append(leader)
            return True

        wait_until(elected, timeout, f"a leader of {topic}-{partition} outside {sorted(excluded)}")
        return found[-1]

    def partition_replicas(self, topic: str, partition: int) -> tuple[int, ...]:
        """The partition's replicas (the last ones seen, once no node runs)."""
        view = self.partition_view(topic, partition)
        if view is not None:
            self._known_replicas[(topic, partition)] = view.replicas
        known = self._known_replicas.get((topic, partition))
        assert known is not None, f"no live node knows {topic}-{partition}"
        return known

    def wait_for_brokers(self, timeout: float = 30.0) -> None:
        """Until every live node's Metadata lists exactly the live nodes as brokers."""
        wanted = set(self.live_nodes())

        def all_registered() -> bool:
            views = self.metadata_views()
            return len(views) == len(wanted) and all(set(v.brokers) == wanted for v in views)

        wait_until(all_registered, timeout, f"brokers {sorted(wanted)} in every node's Metadata")

    def wait_for_full_isr(
        self, topic: str, partitions: Iterable[int], timeout: float = 30.0
    ) -> None:
        """Until every live node reports all replicas of the partitions in sync, with a leader."""
        wanted = list(partitions)

        def in_sync() -> bool:
            views = self.metadata_views()
            if len(views) != len(self.live_nodes()):
                return False
            for view in views:
                for p in wanted:
                    state = view.partitions.get((topic, p))
                    if state is None or state.leader < 0:
                        return False
                    if sorted(state.isr) != sorted(state.replicas) or state.offline:
                        return False
            return True

        wait_until(in_sync, timeout, f"all replicas of {topic} {wanted} in sync")

    # -- replica logs -------------------------------------------------------------------------

    def replica_batches(self, node_id: int, topic: str, partition: int) -> list[bytes]:
        """The whole batches (as on the Kafka wire) in the node's copy of the partition, in offset
        order. Readable while the node runs: a batch still being written at the tail is left
        out."""
        return read_partition_batches(self.partition_dir(node_id, topic, partition))

    def wait_for_replicas_to_reach(
        self, topic: str, partition: int, offset: int, timeout: float = 30.0
    ) -> None:
        """Until every replica's files hold every batch below `offset`."""
        replicas = self.partition_replicas(topic, partition)

        def reached() -> bool:
            return all(
                _end_offset(self.replica_batches(i, topic, partition)) >= offset for i in replicas
            )

        wait_until(reached, timeout, f"every replica of {topic}-{partition} up to {offset}")

    def assert_replicas_identical(
        self, topic: str, partition: int, high_watermark: int, replicas: Iterable[int] = ()
    ) -> int:
        """Every replica holds byte-identical batches below the high watermark (and all of them);
        returns how many batches were compared."""
        ids = list(replicas) or list(self.partition_replicas(topic, partition))
        committed: dict[int, list[bytes]] = {}
        for node_id in ids:
            batches = self.replica_batches(node_id, topic, partition)
            end = _end_offset(batches)
            assert end >= high_watermark, (
                f"node {node_id}'s copy of {topic}-{partition} ends at {end}, "
                f"below the high watermark {high_watermark}"
            )
            committed[node_id] = [
                batch for batch in batches if read_batch_header(batch).base_offset < high_watermark
            ]
        reference_id = ids[0]
        reference = committed[reference_id]
        for node_id in ids[1:]:
            other = committed[node_id]
            for index, (ours, theirs) in enumerate(zip(reference, other, strict=False)):
                if ours != theirs:
                    raise AssertionError(
                        f"{topic}-{partition}: batch {index} differs between node {reference_id} "
                        f"({_describe(ours)}) and node {node_id} ({_describe(theirs)})"
                    )
            assert len(reference) == len(other), (
                f"{topic}-{partition}: node {reference_id} has {len(reference)} batches below "
                f"the high watermark {high_watermark}, node {node_id} has {len(other)}"
            )
        return len(reference)


def read_partition_batches(directory: Path) -> list[bytes]:
    """Every whole batch in a partition directory's .log segments, in offset order, each CRC
    checked. An incomplete batch may end only the last segment (a write in progress)."""
    segments = sorted(directory.glob("*.log"), key=lambda path: int(path.stem))
    batches: list[bytes] = []
    for number, path in enumerate(segments):
        data = path.read_bytes()
        last_segment = number == len(segments) - 1
        try:
            for position, header in iter_batch_headers(data):
                assert crc_ok(data, position, header), f"{path}: CRC mismatch at {position}"
                batches.append(data[position : position + header.size])
        except CorruptRecordError:
            if not last_segment:
                raise
    return batches


def _end_offset(batches: list[bytes]) -> int:
    """The offset after the last batch; 0 for none."""
    if not batches:
        return 0
    return read_batch_header(batches[-1]).last_offset + 1


def _describe(batch: bytes) -> str:
    header = read_batch_header(batch)
    return (
        f"offsets {header.base_offset}-{header.last_offset}, epoch "
        f"{header.partition_leader_epoch}, {header.size} bytes, crc {header.crc:#x}"
    )


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports
