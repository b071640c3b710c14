"""Request decoding and response encoding through kio's generated schemas.

kio's native reader raises KeyError on a tagged field it does not know, while the protocol says
unknown tags must be skipped (that is how newer clients add optional fields). `decode_request_body`
therefore falls back to `_read_skipping_unknown_tags`, which walks the same schema field by field
with kio's own field readers and drops tags it does not know.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import Field, fields
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from kio._kio_native import get_field_reader, read_compact_array_length, read_unsigned_varint
from kio.index import UnknownEntity, load_payload_module
from kio.schema.errors import ErrorCode
from kio.schema.index import api_key_map
from kio.serial import entity_writer
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    is_optional,
)
from kio.serial.errors import SerialError
from kio.serial.readers import tz_aware_from_i64
from kio.static.constants import EntityType
from kio.static.primitive import i64
from msgspec import Struct

from rafka.protocol.errors import MalformedRequestError


@cache
def request_class(api_key: int, api_version: int) -> type | None:
    """The kio request class for this API key and version, or None if kio does not know it."""
    return _payload_class(api_key, api_version, EntityType.request)


@cache
def response_class(api_key: int, api_version: int) -> type:
    cls = _payload_class(api_key, api_version, EntityType.response)
    if cls is None:
        raise LookupError(f"no response schema for api {api_key} v{api_version}")
    return cls


def _payload_class(api_key: int, api_version: int, kind: EntityType) -> type | None:
    name = api_key_map.get(api_key)
    if name is None:
        return None
    try:
        module = load_payload_module(api_key, api_version, kind)
    except UnknownEntity:
        return None
    suffix = "Request" if kind is EntityType.request else "Response"
    for attr in vars(module).values():
        if (
            isinstance(attr, type)
            and attr.__name__.endswith(suffix)
            and getattr(attr, "__type__", None) is kind
        ):
            return attr
    return None


def is_flexible(api_key: int, api_version: int) -> bool:
    cls = request_class(api_key, api_version)
    return bool(cls is not None and cls.__flexible__)


def decode_request_body(cls: type, buf: bytes | memoryview, offset: int) -> Any:
    """Decode a request body.

    Walks the schema field by field: array counts are checked against the bytes left before
    kio reads them (kio reserves memory for the announced count, and a failed reservation
    aborts the process), and unknown tags are skipped at every level.
    """
    try:
        entity, _size = _read_entity(cls, buf, offset)
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError, SerialError) as exc:
        raise MalformedRequestError(f"cannot decode {cls.__name__}: {exc}") from exc
    return entity


_SCALAR, _ENTITY, _ENTITY_ARRAY, _PRIMITIVE_ARRAY, _NULLABLE_ENTITY = range(5)


class _Plan(Struct, frozen=True):
    """How to read one entity class: its untagged fields in order, and its tagged ones."""

    flexible: bool
    fields: tuple[tuple[str, int, Any], ...]  # (name, step kind, reader or nested class)
    tagged: dict[int, tuple[str, Any, bool]]  # tag -> (name, reader or class, is entity)
    # Arrays the schema declares nullable; a null anywhere else is malformed, as Kafka's
    # parser rules ("non-nullable field was serialized as null").
    nullable: frozenset[str]


@cache
def _plan(cls: type) -> _Plan:
    steps = []
    nullable = set()
    tagged: dict[int, tuple[str, Any, bool]] = {}
    for field in _init_fields(cls):
        if is_optional(field):
            nullable.add(field.name)
        kind = classify_field(field)
        tag = get_field_tag(field)
        if tag is not None:
            if isinstance(kind, EntityField):
                tagged[tag] = (field.name, kind.type_, True)
            else:
                tagged[tag] = (field.name, get_field_reader(cls, field, False, True), False)
        elif isinstance(kind, EntityField):
            # A nullable struct (e.g. DescribeTopicPartitions' cursor) is preceded by an int8:
            # -1 for null, 1 for present.
            step = _NULLABLE_ENTITY if is_optional(field) else _ENTITY
            steps.append((field.name, step, kind.type_))
        elif isinstance(kind, EntityTupleField):
            steps.append((field.name, _ENTITY_ARRAY, kind.type_))
        elif isinstance(kind, PrimitiveTupleField):
            steps.append((field.name, _PRIMITIVE_ARRAY, get_field_reader(cls, field, False, False)))
        else:
            steps.append((field.name, _SCALAR, get_field_reader(cls, field, False, False)))
    return _Plan(bool(cls.__flexible__), tuple(steps), tagged, frozenset(nullable))


def _read_entity(cls: type, buf: bytes | memoryview, offset: int) -> tuple[Any, int]:
    plan = _plan(cls)
    start = offset
    values: dict[str, Any] = {}
    for name, step, how in plan.fields:
        if step == _SCALAR:
            values[name], size = how(buf, offset)
            offset += size
        elif step == _ENTITY:
            values[name], size = _read_entity(how, buf, offset)
            offset += size
        elif step == _NULLABLE_ENTITY:
            if offset >= len(buf):
                raise ValueError("truncated nullable struct marker")
            present = buf[offset] != 0xFF
            offset += 1
            values[name] = None
            if present:
                values[name], size = _read_entity(how, buf, offset)
                offset += size
        else:
            if plan.flexible:
                length, size = read_compact_array_length(buf, offset)
            else:
                length, size = _read_legacy_array_length(buf, offset)
            if length is None or length < 0:
                if name not in plan.nullable:
                    raise ValueError(f"non-nullable array {name} is null")
                values[name] = None
                offset += size
                continue
            if length > len(buf) - offset - size:  # every element takes at least one byte
                raise ValueError("array length exceeds the request size")
            if step == _PRIMITIVE_ARRAY:
                values[name], size = how(buf, offset)
                offset += size
                continue
            offset += size
            items = []
            for _ in range(length):
                item, size = _read_entity(how, buf, offset)
                items.append(item)
                offset += size
            values[name] = tuple(items)
    if plan.flexible:
        count, size = read_unsigned_varint(buf, offset)
        offset += size
        for _ in range(count):
            tag, size = read_unsigned_varint(buf, offset)
            offset += size
            length, size = read_unsigned_varint(buf, offset)
            offset += size
            if offset + length > len(buf):
                raise ValueError("tagged field runs past the end of the request")
            known = plan.tagged.get(tag)
            if known is not None:
                name, how, is_entity = known
                values[name] = (_read_entity if is_entity else _call)(how, buf, offset)[0]
            offset += length
    return cls(**values), offset - start


def _call(reader: Any, buf: bytes | memoryview, offset: int) -> tuple[Any, int]:
    return reader(buf, offset)


def _read_legacy_array_length(buf: bytes | memoryview, offset: int) -> tuple[int, int]:
    if len(buf) - offset < 4:
        raise ValueError("truncated array length")
    return int.from_bytes(buf[offset : offset + 4], "big", signed=True), 4


@cache
def _init_fields(cls: type) -> tuple[Field, ...]:
    return tuple(f for f in fields(cls) if f.init)


def encode_response_body(response: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(response))(buffer, response)
    return buffer.getvalue()


def build(cls: type, data: dict[str, Any]) -> Any:
    """Instantiate a kio entity of any version from a plain dict.

    Keys that the version does not have are ignored and missing ones take the schema's default,
    so handlers describe a response once and every version gets the fields it defines.
    """
    kwargs: dict[str, Any] = {}
    for name, converter, nested_cls, is_array in _build_plan(cls):
        if name not in data:
            continue
        value = data[name]
        if value is not None:
            if converter is not None:
                value = converter(value)
            elif nested_cls is not None:
                if is_array:
                    value = tuple([build(nested_cls, item) for item in value])
                else:
                    value = build(nested_cls, value)
        kwargs[name] = value
    return cls(**kwargs)


_BuildStep = tuple[str, Callable[[Any], Any] | None, type | None, bool]


@cache
def _build_plan(cls: type) -> tuple[_BuildStep, ...]:
    """Per field of `cls`: its name, converter, and nested entity type (and whether an array of
    them), looked up once: build runs for every partition of a Metadata answer."""
    plan = []
    for field in _init_fields(cls):
        nested_cls, is_array = _field_kind(cls, field.name) or (None, False)
        plan.append((field.name, _converter(cls, field.name), nested_cls, is_array))
    return tuple(plan)


@cache
def _field_kind(cls: type, name: str) -> tuple[type, bool] | None:
    for field in _init_fields(cls):
        if field.name == name:
            kind = classify_field(field)
            if isinstance(kind, EntityField):
                return kind.type_, False
            if isinstance(kind, EntityTupleField):
                return kind.type_, True
    return None


@cache
def _converter(cls: type, name: str) -> Callable[[Any], Any] | None:
    """Plain ints become the richer types kio's writers expect (enums, timedeltas, datetimes)."""
    for field in _init_fields(cls):
        if field.name == name:
            kafka_type = field.metadata.get("kafka_type")
            if kafka_type == "error_code":
                return _to_error_code
            if kafka_type in ("timedelta_i32", "timedelta_i64"):
                return _to_timedelta
            if kafka_type == "datetime_i64":
                return _to_datetime
    return None


def _to_error_code(value: int) -> ErrorCode:
    return value if isinstance(value, ErrorCode) else ErrorCode(value)


def _to_timedelta(value: int | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(milliseconds=value)


def _to_datetime(value: int | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return tz_aware_from_i64(i64(value))


def field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in _init_fields(cls))
