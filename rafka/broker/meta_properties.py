"""meta.properties: which node and cluster a log directory belongs to, as Kafka (3.7+) writes it:
`version=1`, `node.id`, `cluster.id` and the directory's own `directory.id` (KIP-858)."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from rafka.broker.config.endpoints import QuorumVoter

META_PROPERTIES_FILE = "meta.properties"


def read_meta_properties(log_dir: Path) -> dict[str, str]:
    """The key=value pairs of `log_dir`'s meta.properties; empty if there is none."""
    path = log_dir / META_PROPERTIES_FILE
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def load_or_create_meta_properties(
    log_dirs: Sequence[Path],
    node_id: int,
    configured_cluster_id: str | None,
    voters: Sequence[QuorumVoter],
) -> tuple[str, dict[Path, uuid.UUID]]:
    """(cluster id, directory id of each directory). Written on first start; a directory of
    another node or cluster is refused, as two directories claiming one directory.id are."""
    found = {path: read_meta_properties(path) for path in log_dirs}
    for path, values in found.items():
        stored_node = values.get("node.id")
        if stored_node is not None and int(stored_node) != node_id:
            raise RuntimeError(f"log dir {path} belongs to node.id {stored_node}, not {node_id}")
    stored_clusters = {v["cluster.id"] for v in found.values() if v.get("cluster.id")}
    if len(stored_clusters) > 1:
        raise RuntimeError(
            f"log dirs belong to different clusters: {', '.join(sorted(stored_clusters))}"
        )
    cluster_id = (
        next(iter(stored_clusters), None) or configured_cluster_id or default_cluster_id(voters)
    )
    ids: dict[Path, uuid.UUID] = {}
    for path, values in found.items():
        stored_id = values.get("directory.id")
        directory_id = _parse_uuid(stored_id) if stored_id else None
        if directory_id is None or directory_id in ids.values():
            if directory_id is not None:
                raise RuntimeError(f"log dir {path} has the directory.id of another log dir")
            directory_id = _random_directory_id()
        ids[path] = directory_id
        if values.get("cluster.id") != cluster_id or stored_id is None:
            _write(path, node_id, cluster_id, directory_id)
    return cluster_id, ids


def directory_id_string(directory_id: uuid.UUID) -> str:
    """Kafka's Uuid.toString: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(directory_id.bytes).decode().rstrip("=")


def _parse_uuid(text: str) -> uuid.UUID | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None
    return uuid.UUID(bytes=raw) if len(raw) == 16 else None


def _random_directory_id() -> uuid.UUID:
    # Kafka reserves the ids whose most significant 64 bits are 0 (UNASSIGNED, LOST, MIGRATING).
    while True:
        candidate = uuid.uuid4()
        if candidate.int >> 64:
            return candidate


def _write(log_dir: Path, node_id: int, cluster_id: str, directory_id: uuid.UUID) -> None:
    path = log_dir / META_PROPERTIES_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        f"version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n"
        f"directory.id={directory_id_string(directory_id)}\n"
    )
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_cluster_id(voters: Sequence[QuorumVoter]) -> str:
    """Without cluster.id (Kafka's `kafka-storage format`), the nodes of a cluster agree on one
    derived from controller.quorum.voters, which they all share; a single node makes up a
    random one."""
    if len(voters) <= 1:
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    described = ",".join(f"{v.node_id}@{v.host}:{v.port}" for v in voters)
    return base64.urlsafe_b64encode(uuid.uuid5(uuid.NAMESPACE_URL, described).bytes).decode()[:22]
