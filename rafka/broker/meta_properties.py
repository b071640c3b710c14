"""meta.properties: which node and cluster a log directory belongs to, as Kafka writes it."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from rafka.broker.config.endpoints import QuorumVoter


def load_or_create_meta_properties(
    log_dir: Path, node_id: int, configured_cluster_id: str | None, voters: Sequence[QuorumVoter]
) -> str:
    """The cluster id of `log_dir` (written on first start); refuses a directory of another
    node."""
    path = log_dir / "meta.properties"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
        stored_node = values.get("node.id")
        if stored_node is not None and int(stored_node) != node_id:
            raise RuntimeError(
                f"log dir {log_dir} belongs to node.id {stored_node}, not {node_id}"
            )
    cluster_id = values.get("cluster.id") or configured_cluster_id or default_cluster_id(voters)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return cluster_id


def default_cluster_id(voters: Sequence[QuorumVoter]) -> str:
    """Without cluster.id (Kafka's `kafka-storage format`), the nodes of a cluster agree on one
    derived from controller.quorum.voters, which they all share; a single node makes up a
    random one."""
    if len(voters) <= 1:
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    described = ",".join(f"{v.node_id}@{v.host}:{v.port}" for v in voters)
    return base64.urlsafe_b64encode(uuid.uuid5(uuid.NAMESPACE_URL, described).bytes).decode()[:22]
