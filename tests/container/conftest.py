"""The container suite: rafka's image under a real Docker engine (the `docker` SDK).

Skips with one line where no engine answers. The image is scripts/image.sh's `rafka:latest`
(or $RAFKA_IMAGE); it is built first if missing. Containers, volumes and networks the tests
make carry the label `rafka-test` and are removed afterwards.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from container_support import IMAGE, LABEL, ROOT

try:
    from docker.errors import DockerException

    import docker
except ImportError:  # pragma: no cover - the test extras install it
    docker = None


def _engine():
    if docker is None:
        return None, "the docker Python SDK is not installed"
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as exc:
        return None, f"no Docker engine ({type(exc).__name__})"
    return client, None


@pytest.fixture(scope="session")
def engine():
    client, reason = _engine()
    if client is None:
        pytest.skip(f"container suite skipped: {reason}")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        subprocess.run([str(ROOT / "scripts" / "image.sh")], check=True, timeout=1200)
    yield client
    for container in client.containers.list(all=True, filters={"label": "rafka-test"}):
        container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"label": "rafka-test"}):
        volume.remove(force=True)
    for network in client.networks.list(filters={"label": "rafka-test"}):
        network.remove()


@pytest.fixture
def network(engine) -> Iterator[str]:
    name = f"rafka-test-{uuid.uuid4().hex[:8]}"
    net = engine.networks.create(name, labels=LABEL)
    yield name
    for container in engine.containers.list(all=True, filters={"network": name}):
        container.remove(force=True, v=True)
    net.remove()
