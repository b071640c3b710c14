"""The clients of the matrix: where each suite lives, how it is built and run, and which
toolchain it needs (a missing one turns its column into skips)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from matrix import HERE


@dataclass
class Client:
    key: str
    title: str
    cwd: Path
    run: list[str]
    builds: list[list[str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    toolchain: Callable[[], str | None] = lambda: None  # what is missing, or None


def _missing_commands(*commands: str) -> str | None:
    absent = [c for c in commands if shutil.which(c) is None]
    return ", ".join(absent) if absent else None


def _missing_modules(*modules: str) -> str | None:
    absent = [m for m in modules if find_spec(m) is None]
    return ", ".join(f"Python package {m}" for m in absent) if absent else None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _command_output(*command: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def _java_toolchain() -> str | None:
    missing = _missing_commands("java", "mvn")
    if missing:
        return missing
    settings = _command_output("java", "-XshowSettings:properties", "-version")
    spec = re.search(r"java\.specification\.version = (\S+)", settings)
    if spec is None or _version_tuple(spec.group(1)) < (17,):
        return f"Java >= 17 (found {spec.group(1) if spec else 'unknown'})"
    return None


def _go_toolchain() -> str | None:
    if shutil.which("go") is None:
        return "go"
    wanted = re.search(r"^go (\S+)", (HERE / "go" / "go.mod").read_text(), re.MULTILINE)
    found = _command_output("go", "env", "GOVERSION").strip()
    if wanted and _version_tuple(found) < _version_tuple(wanted.group(1)):
        return f"Go >= {wanted.group(1)} (found {found or 'unknown'})"
    return None


def _node_toolchain() -> str | None:
    missing = _missing_commands("node", "npm")
    if missing:
        return missing
    found = _command_output("node", "--version").strip()
    if _version_tuple(found) < (18,):
        return f"Node.js >= 18 (found {found or 'unknown'})"
    return None


def clients() -> list[Client]:
    python = sys.executable
    java = HERE / "java"
    mvn = ["mvn", "-B", "-q", "-Dstyle.color=never"]

    def java_client(key: str, title: str, profile: str) -> Client:
        target = f"target/{profile}"
        return Client(
            key,
            title,
            java,
            ["java", "-cp", f"{target}/classes{os.pathsep}{target}/lib/*", "dev.rafka.compat.Main"],
            builds=[[*mvn, "-P", profile, "clean", "process-classes"]],
            toolchain=_java_toolchain,
        )

    def python_client(key: str, title: str, script: str, *modules: str) -> Client:
        return Client(
            key,
            title,
            HERE / "python",
            [python, script],
            toolchain=lambda: _missing_modules(*modules),
        )

    return [
        java_client("java-4", "Java kafka-clients 4.x", "kafka-4"),
        java_client("java-3.9", "Java kafka-clients 3.9", "kafka-3.9"),
        Client(
            "franz-go",
            "franz-go",
            HERE / "go",
            [str(HERE / "go" / "target" / "compat-go")],
            builds=[["go", "build", "-mod=readonly", "-o", "target/compat-go", "."]],
            env={"GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false"},
            toolchain=_go_toolchain,
        ),
        Client(
            "kafkajs",
            "kafkajs",
            HERE / "node",
            ["node", "suite.js"],
            builds=[["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]],
            toolchain=_node_toolchain,
        ),
        python_client(
            "confluent-kafka",
            "confluent-kafka",
            "confluent_suite.py",
            "confluent_kafka",
        ),
        Client(
            "kcat",
            "kcat",
            HERE / "python",
            [python, "kcat_suite.py"],
            toolchain=lambda: _missing_commands("kcat") or _missing_modules("confluent_kafka"),
        ),
        python_client("kafka-python", "kafka-python", "kafka_python_suite.py", "kafka"),
        python_client("aiokafka", "aiokafka", "aiokafka_suite.py", "aiokafka"),
    ]
