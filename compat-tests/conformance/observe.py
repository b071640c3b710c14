"""Observations: what a scenario saw at each step, reduced to what both brokers must agree on.

Values are normalised into plain JSON: kio entities become dicts, error codes read `NAME(code)`,
and the fields that legitimately differ between two correct brokers are dropped (see DROPPED).
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import enum
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rafka.protocol.records import decode_batch, iter_batch_headers

# Broker-chosen identities and free text. Leader epochs count elections, which Raft and Kafka's
# controller hold at different moments (a Kafka restart fences and unfences the broker).
DROPPED = frozenset({
    "throttle_time", "error_message", "batch_index_error_message", "topic_id", "cluster_id",
    "node_id", "leader_id", "host", "port", "rack", "leader_epoch", "committed_leader_epoch",
    "current_leader", "node_endpoints", "controller_id", "producer_id", "preferred_read_replica",
    "cluster_authorized_operations", "topic_authorized_operations", "brokers",
})
BROKER_TIME = "<broker time>"  # a LogAppendTime the broker chose


def normalise(value: Any, base_ts: int = 0) -> Any:
    """Plain JSON; record timestamps (fields named `timestamp`) relative to the run's base."""
    if isinstance(value, enum.Enum):
        return f"{value.name.upper()}({value.value})"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {
            str(k): _timestamp(v, base_ts) if k == "timestamp" else normalise(v, base_ts)
            for k, v in value.items()
            if k not in DROPPED
        }
    if isinstance(value, list | tuple):
        return [normalise(v, base_ts) for v in value]
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, datetime.datetime):
        return BROKER_TIME
    if isinstance(value, bytes | bytearray | memoryview):
        return summarise_records(bytes(value))
    if isinstance(value, uuid.UUID):
        return "<uuid>"
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return repr(value)


def _timestamp(value: Any, base_ts: int) -> Any:
    if isinstance(value, int) and value >= 0 and base_ts:
        return f"base{value - base_ts:+d}"
    return value


def summarise_records(data: bytes) -> list[dict[str, Any]]:
    """A fetched record set as batches and record offsets (no epochs, producer ids or CRCs)."""
    batches = []
    for pos, header in iter_batch_headers(data):
        _, records = decode_batch(data, pos)
        batches.append({
            "base_offset": header.base_offset,
            "last_offset": header.last_offset,
            "control": header.is_control,
            "transactional": header.is_transactional,
            "offsets": [r.offset for r in records],
        })
    return batches


@dataclasses.dataclass
class Step:
    name: str
    value: Any

    def line(self) -> str:
        return f"{self.name}: {json.dumps(self.value, sort_keys=True)}"


class Recorder:
    """The steps of every scenario on one broker, in order."""

    def __init__(self, base_ts: int) -> None:
        self.base_ts = base_ts
        self.scenarios: dict[str, list[Step]] = {}
        self._current: list[Step] = []

    @contextmanager
    def scenario(self, name: str) -> Iterator[None]:
        self._current = self.scenarios.setdefault(name, [])
        try:
            yield
        except Exception as exc:  # the rest of the scenario is lost; the diff shows where
            self.record("aborted", f"{type(exc).__name__}: {exc}")

    def record(self, name: str, value: Any) -> Any:
        self._current.append(Step(name, normalise(value, self.base_ts)))
        return value


def diff(reference: Recorder, candidate: Recorder, ref_name: str, cand_name: str) -> list[str]:
    """What differs, scenario by scenario; empty if the brokers agreed everywhere.

    Steps are paired in order and only the differing fields are shown; if the step names do not
    pair up (a scenario aborted on one broker), a unified diff of the steps instead.
    """
    out: list[str] = []
    names = list(reference.scenarios)
    names += [n for n in candidate.scenarios if n not in names]
    width = max(len(ref_name), len(cand_name))
    for scenario in names:
        ref = reference.scenarios.get(scenario, [])
        cand = candidate.scenarios.get(scenario, [])
        if [s.line() for s in ref] == [s.line() for s in cand]:
            continue
        if [s.name for s in ref] != [s.name for s in cand]:
            out.append(f"=== {scenario}: the steps differ")
            out.extend(difflib.unified_diff(
                [s.line() for s in ref], [s.line() for s in cand],
                f"{scenario} on {ref_name}", f"{scenario} on {cand_name}", n=1, lineterm=""))
            continue
        differing = [(r, c) for r, c in zip(ref, cand, strict=True) if r.value != c.value]
        out.append(f"=== {scenario}: {len(differing)} of {len(ref)} steps differ")
        for r, c in differing:
            out.append(f"  {r.name}")
            ref_flat, cand_flat = flatten(r.value), flatten(c.value)
            paths = [path for path in ref_flat.keys() | cand_flat.keys()
                     if ref_flat.get(path, ABSENT) != cand_flat.get(path, ABSENT)]
            paths.sort(key=_natural)
            for path in paths[:MAX_FIELDS]:
                out.append(f"    {path or '(value)'}:")
                for name, flat in ((ref_name, ref_flat), (cand_name, cand_flat)):
                    out.append(f"      {name:<{width}}  {json.dumps(flat.get(path, ABSENT))}")
            if len(paths) > MAX_FIELDS:
                out.append(f"    ... and {len(paths) - MAX_FIELDS} more fields")
    return out


ABSENT = "<absent>"
MAX_FIELDS = 8  # per step: a shifted offset changes every later field, the first few tell


def _natural(path: str) -> list[object]:
    """records[2] before records[10]."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Leaves by path (`records[0].offsets`): scalars, lists of scalars, empty containers."""
    if isinstance(value, dict) and value:
        found: dict[str, Any] = {}
        for key, item in value.items():
            found.update(flatten(item, f"{path}.{key}" if path else key))
        return found
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        found = {}
        for i, item in enumerate(value):
            found.update(flatten(item, f"{path}[{i}]"))
        return found
    return {path: value}
