"""A config value from its text, checked against its definition, and back to text."""

from __future__ import annotations

import re
from typing import Any

from rafka.broker.config.definitions import INT_RANGES, ConfigDef, ConfigType

# ---------------------------------------------------------------------------------------------
# Values


def parse_value(definition: ConfigDef, raw: str) -> Any:
    """Parse and validate one value as Kafka's ConfigDef does (trimmed); ValueError says why."""
    text = raw.strip()
    kind = definition.type
    value: Any
    if kind is ConfigType.BOOLEAN:
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise ValueError("expected true or false")
        value = lowered == "true"
    elif kind in INT_RANGES:
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ValueError(f"expected a whole number ({kind.name.lower()})")
        value = int(text)
        low, high = INT_RANGES[kind]
        if not low <= value <= high:
            raise ValueError(f"out of range for a {kind.name.lower()}")
    elif kind is ConfigType.DOUBLE:
        try:
            value = float(text.replace("_", "!"))  # Java rejects 1_0; make float() reject it too
        except ValueError:
            raise ValueError("expected a number") from None
    elif kind is ConfigType.LIST:
        value = [item.strip() for item in text.split(",") if item.strip()]
    else:
        value = text
    _check(definition, value)
    return value


def _check(definition: ConfigDef, value: Any) -> None:
    if definition.min is not None and value < definition.min:
        raise ValueError(f"must be at least {_number(definition.min)}")
    if definition.max is not None and value > definition.max:
        raise ValueError(f"must be at most {_number(definition.max)}")
    if definition.choices is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in definition.choices:
                raise ValueError(f"must be one of {', '.join(sorted(definition.choices))}")
    if definition.check is not None and (reason := definition.check(value)) is not None:
        raise ValueError(reason)


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def render_value(value: Any) -> str | None:
    """A value as Kafka renders it in DescribeConfigs."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def to_raw(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)
