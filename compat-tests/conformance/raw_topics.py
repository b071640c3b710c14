"""Raw topic requests for the topics scenario: Metadata by name, by id and for every topic, and
DeleteTopics by id; answers without the ids each broker chooses."""

from __future__ import annotations

import uuid
from typing import Any

from kio.schema.delete_topics.v6 import request as delete_req
from kio.schema.delete_topics.v6.response import DeleteTopicsResponse
from kio.schema.metadata.v12 import request as metadata_req
from kio.schema.metadata.v12.response import MetadataResponse
from raw import TIMEOUT, request


def metadata(
    bootstrap: str, names: list[str] | None = None, ids: list[uuid.UUID] | None = None
) -> list[dict[str, Any]]:
    """Metadata of the topics named (None: every topic), each as its name, error, whether it is
    internal and how many partitions."""
    wanted = None
    if names is not None or ids is not None:
        wanted = tuple(
            [metadata_req.MetadataRequestTopic(topic_id=None, name=n) for n in names or ()]
            + [metadata_req.MetadataRequestTopic(topic_id=i, name=None) for i in ids or ()]
        )
    body = metadata_req.MetadataRequest(
        topics=wanted, allow_auto_topic_creation=False, include_topic_authorized_operations=False
    )
    answer = request(bootstrap, body, MetadataResponse)
    return sorted(
        ({"name": t.name, "error_code": t.error_code, "is_internal": t.is_internal,
          "partitions": len(t.partitions)} for t in answer.topics),
        key=lambda t: (str(t["name"]), int(t["error_code"])),
    )  # fmt: skip


def delete_by_id(bootstrap: str, topic_id: uuid.UUID) -> Any:
    body = delete_req.DeleteTopicsRequest(
        topics=(delete_req.DeleteTopicState(name=None, topic_id=topic_id),), timeout=TIMEOUT
    )
    answer = request(bootstrap, body, DeleteTopicsResponse).responses[0]
    return {"name": answer.name, "error_code": answer.error_code}
