"""(o) Fetch sessions (KIP-227): a full fetch at epoch 0 opens one; incremental fetches update
and forget partitions and are answered only with partitions that have news (records, an error, a
new high watermark or log start offset); partitions that returned records go to the end of the
session's order; a wrong epoch, an unknown session or a switch between topic names and ids is
refused; epoch -1 closes a session, and forgetting every partition ends it."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta
from typing import Any

import raw
from context import Context
from kio.schema.fetch.v12 import request as v12
from kio.schema.fetch.v12.response import FetchResponse as FetchResponseV12
from kio.schema.fetch.v13 import request as v13
from kio.schema.fetch.v13.response import FetchResponse as FetchResponseV13

TOPIC, OTHER = "sessions", "sessions-other"
PARTITIONS = 3

Position = tuple[int, int]  # partition, fetch offset


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC, PARTITIONS))
    ctx.record("create another", raw.create_topic(b, OTHER, 1))
    raw.await_partitions(b, TOPIC, PARTITIONS)
    raw.await_partitions(b, OTHER, 1)
    ts = ctx.base_ts
    raw.produce(b, TOPIC, 0, raw.batch([(None, b"a0"), (None, b"a1")], ts))
    raw.produce(b, TOPIC, 1, raw.batch([(None, b"b0")], ts))
    session = _Session(ctx, b)
    session.full("open: a full fetch at epoch 0", [(0, 0), (1, 0), (2, 0)])
    session.next("nothing asked: the partitions with records again")
    session.next("offsets moved to the end: nothing new", [(0, 2), (1, 1)])
    raw.produce(b, TOPIC, 2, raw.batch([(None, b"c0")], ts))
    session.next("a record in partition 2: only it", [(2, 1)])
    session.refused("the same epoch again", session.epoch - 1)
    session.refused("an epoch ahead", session.epoch + 1)
    session.refused("a session that does not exist", session.epoch, session_id=0x7FFF0000)
    session.refused("topic ids in a session of names", session.epoch, topic_ids=True)
    session.next("still open after the refusals")
    session.next("forget partitions 1 and 2", forgotten=[1, 2])
    raw.produce(b, TOPIC, 1, raw.batch([(None, b"b1")], ts))
    session.next("a record in a forgotten partition: nothing")
    session.next("an unknown topic's partition: its error", other=("no-such-topic", 0))
    session.next("the unknown partition again: its error again")
    session.next("forget it", forgotten_other=("no-such-topic", [0]))
    ctx.record("delete records", raw.delete_records(b, TOPIC, 0, 1).error_code)
    session.next("a new log start offset: partition 0 without records")
    raw.produce(b, OTHER, 0, raw.batch([(None, b"o0")], ts))
    session.next("another topic's partition added", other=(OTHER, 0))
    session.next("partitions 0 and 1 from their start", [(0, 1), (1, 0)])
    session.next("from their start again, with 1 byte: one at a time", max_bytes=1)
    session.next("again: the other one first", max_bytes=1)
    session.next("again", max_bytes=1)
    session.close("close: epoch -1")
    session.refused("the closed session", 1)
    session.full("open another", [(0, 1)])
    session.next("forget its only partition: the session ends", forgotten=[0])
    session.refused("the ended session", session.epoch)
    by_id = _Session(ctx, b, topic_ids=True)
    by_id.full("open with topic ids", [(0, 1), (1, 0)])
    by_id.next("nothing new, by topic ids", [(0, 2), (1, 2)])
    by_id.refused("topic names in a session of ids", by_id.epoch, topic_ids=False)
    by_id.next("and on", forgotten=[1])


class _Session:
    """One fetcher's session: its id, the epoch of its next fetch, and what it observes."""

    def __init__(self, ctx: Context, bootstrap: str, topic_ids: bool = False) -> None:
        self.ctx, self.bootstrap, self.topic_ids = ctx, bootstrap, topic_ids
        self.id, self.epoch = 0, 0
        self.topic_id = raw.metadata(bootstrap, TOPIC).topic_id

    def full(self, step: str, positions: list[Position]) -> None:
        answer = self._fetch(0, 0, positions)
        self.id, self.epoch = answer.session_id, 1
        self.ctx.record(step, {**_observe(answer), "session_id": answer.session_id != 0})

    def next(
        self, step: str, positions: list[Position] | None = None, *,
        forgotten: list[int] | None = None, other: tuple[str, int] | None = None,
        forgotten_other: tuple[str, list[int]] | None = None, max_bytes: int = 1 << 20,
    ) -> None:
        answer = self._fetch(self.id, self.epoch, positions or [], forgotten or [], other,
                             forgotten_other, max_bytes)
        if answer.error_code == 0:
            self.epoch += 1
        same = answer.session_id == self.id
        if answer.session_id == 0:
            self.id = 0
        self.ctx.record(step, {**_observe(answer), "same session": same})

    def refused(self, step: str, epoch: int, *, session_id: int | None = None,
                topic_ids: bool | None = None) -> None:
        fetcher = copy.copy(self)
        if topic_ids is not None:
            fetcher.topic_ids = topic_ids
        answer = fetcher._fetch(self.id if session_id is None else session_id, epoch, [])
        self.ctx.record(step, {**_observe(answer), "session_id": answer.session_id})

    def close(self, step: str) -> None:
        answer = self._fetch(self.id, -1, [(0, 1)])
        self.ctx.record(step, {**_observe(answer), "session_id": answer.session_id})

    def _fetch(
        self, session_id: int, epoch: int, positions: list[Position],
        forgotten: list[int] | None = None, other: tuple[str, int] | None = None,
        forgotten_other: tuple[str, list[int]] | None = None, max_bytes: int = 1 << 20,
    ) -> Any:
        schema = v13 if self.topic_ids else v12
        topics: list[tuple[Any, list[Position]]] = []
        if positions:
            topics.append((self._key(TOPIC), positions))
        if other is not None:
            topics.append((self._key(other[0]), [(other[1], 0)]))
        gone: list[tuple[Any, list[int]]] = []
        if forgotten:
            gone.append((self._key(TOPIC), forgotten))
        if forgotten_other is not None:
            gone.append((self._key(forgotten_other[0]), forgotten_other[1]))
        field = "topic_id" if self.topic_ids else "topic"
        body = schema.FetchRequest(
            max_wait=timedelta(0), min_bytes=0, max_bytes=max_bytes, isolation_level=0,
            session_id=session_id, session_epoch=epoch,
            topics=tuple(schema.FetchTopic(**{field: key}, partitions=tuple(
                schema.FetchPartition(partition=p, fetch_offset=o, partition_max_bytes=1 << 20)
                for p, o in parts)) for key, parts in topics),
            forgotten_topics_data=tuple(
                schema.ForgottenTopic(**{field: key}, partitions=tuple(parts))
                for key, parts in gone),
        )
        response = FetchResponseV13 if self.topic_ids else FetchResponseV12
        return raw.request(self.bootstrap, body, response)

    def _key(self, topic: str) -> Any:
        if not self.topic_ids:
            return topic
        if topic == TOPIC:
            return self.topic_id
        found = raw.metadata(self.bootstrap, topic).topic_id
        return found if found != uuid.UUID(int=0) else uuid.UUID(int=7)


def _observe(answer: Any) -> dict[str, Any]:
    """The error and, per partition answered in order: its topic, error, high watermark, log
    start offset and record bytes (0 or some)."""
    return {
        "error_code": answer.error_code,
        "partitions": [
            (_topic_name(r), p.partition_index, p.error_code, p.high_watermark,
             p.log_start_offset, bool(p.records))
            for r in answer.responses for p in r.partitions
        ],
    }


def _topic_name(response: Any) -> str:
    name = getattr(response, "topic", None)
    return name if name is not None else "<by id>"
