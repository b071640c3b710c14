"""The produce and consume rows' load generator: native/generator.c, built against the
librdkafka that confluent-kafka bundles, so every row still meets the same client library as
`rafka bench` (which the e2e rows keep: they run at a fixed, low rate).

Python's per-record cost made `rafka bench` the limit of the produce and consume rows on the one
client core (both brokers met the same ceiling, the generator's core at 100 %); the native
generator sends and reads several times faster on that core, so those rows measure the broker.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import peers
import probes

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "native" / "generator.c"
HEADER = Path("/usr/include/librdkafka/rdkafka.h")


class NativeUnavailable(Exception):
    """The generator cannot be built here; the produce rows fall back to `rafka bench`."""


def bundled_librdkafka() -> Path:
    """The librdkafka shared library inside confluent-kafka's wheel (the one it loads)."""
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka-*.so*"))
    if not found:
        raise NativeUnavailable(f"no bundled librdkafka in {libs}")
    return found[0]


def build(cache: Path) -> Path:
    """The generator's binary, compiled once per source and library (gcc and librdkafka's
    header from Debian when missing)."""
    library = bundled_librdkafka()
    for tool, package, present in (
        ("gcc", "gcc", shutil.which("gcc") is not None),
        ("rdkafka.h", "librdkafka-dev", HEADER.exists()),
    ):
        if not present:
            try:
                peers.apt_install(package)
            except peers.PeerUnavailable as exc:
                raise NativeUnavailable(f"{tool}: {exc}") from exc
    digest = hashlib.sha256(SOURCE.read_bytes() + str(library).encode()).hexdigest()[:12]
    binary = cache / f"native-generator-{digest}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(binary), str(SOURCE), str(library),
             f"-Wl,-rpath,{library.parent}"],
            capture_output=True, text=True, timeout=120,
        )
        if done.returncode != 0:
            binary.unlink(missing_ok=True)
            raise NativeUnavailable(f"gcc failed: {done.stderr.strip()[-500:]}")
    return binary


def command(binary: Path, args: tuple[str, ...], bootstrap: str) -> list[str] | None:
    """A `rafka bench produce|consume` workload (its flags as the runner writes them) as the
    native generator's command line; None for workloads it does not run (e2e)."""
    def flag(name: str, default: str = "") -> str:
        return args[args.index(name) + 1] if name in args else default

    if args[0] == "produce":
        props = ["acks", flag("--acks")]
        if "--idempotence" in args:
            props += ["enable.idempotence", "true"]
        return [str(binary), "produce", bootstrap, flag("--topic"), flag("--num-records"),
                flag("--record-size"), *props]
    if args[0] == "consume":
        props = [part for i, arg in enumerate(args) if arg == "--consumer-props"
                 for part in args[i + 1].split("=", 1)]
        return [str(binary), "consume", bootstrap, flag("--topic"), flag("--num-records"),
                flag("--timeout", "10"), flag("--group", "-"), *props]
    return None


def shown(args: tuple[str, ...], generator: Path | None) -> str:
    """A workload's load generator command line, as the report shows it."""
    native = command(Path("generator"), args, "HOST:PORT") if generator else None
    return shlex.join(native) if native else "rafka bench " + shlex.join(args)


def run(generator: Path | None, args: tuple[str, ...], bootstrap: str, broker_pids: list[int],
        client_core: int, timeout: float) -> dict[str, Any]:
    """A workload through the native generator where it runs it, else through `rafka bench`:
    the result, and the brokers' CPU over its measured interval (see probes.run_client)."""
    native = command(generator, args, bootstrap) if generator else None
    if native is None:
        return probes.run_bench_client(args, bootstrap, broker_pids, client_core, timeout)
    return probes.run_client(native, broker_pids, client_core, timeout)
