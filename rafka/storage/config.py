"""Per-partition log settings, named and defaulted as Kafka's topic configs."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from msgspec import Struct

LONG_MAX = 2**63 - 1
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")
CLEANUP_POLICIES = ("compact", "delete")
# Kafka's topic-level compression.type values; "producer" keeps whatever the producer sent.
COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")


class LogConfig(Struct, frozen=True):
    """A topic's log settings. -1 for retention_ms / retention_bytes means unlimited."""

    segment_bytes: int = 1073741824
    segment_ms: int = 604800000
    # A segment rolls up to this much before segment.ms, drawn per segment: logs created
    # together (a topic's partitions) then do not all roll, and run retention, at once.
    segment_jitter_ms: int = 0
    retention_ms: int = 604800000
    retention_bytes: int = -1
    index_interval_bytes: int = 4096
    segment_index_bytes: int = 10485760
    max_message_bytes: int = 1048588
    file_delete_delay_ms: int = 60000
    # How often the broker should flush; the log itself only flushes when asked.
    flush_interval_messages: int = LONG_MAX
    flush_interval_ms: int = LONG_MAX
    message_timestamp_type: str = "CreateTime"
    # How far a CreateTime may lie before / after the broker's clock (KIP-937).
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = 3600000
    cleanup_policy: str = "delete"  # "": neither delete nor compact, kept for ever
    compression_type: str = "producer"
    compression_gzip_level: int = -1
    compression_lz4_level: int = 9
    compression_zstd_level: int = 3
    # Compaction (log cleaner).
    delete_retention_ms: int = 86400000
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    min_cleanable_dirty_ratio: float = 0.5
    # Not a log setting, but read on the produce path next to the others (acks=all).
    min_insync_replicas: int = 1

    def random_segment_jitter(self) -> int:
        """Kafka's LogConfig.randomSegmentJitter: below min(segment.jitter.ms, segment.ms)."""
        if self.segment_jitter_ms <= 0:
            return 0
        return random.randrange(min(self.segment_jitter_ms, self.segment_ms))

    @property
    def delete_enabled(self) -> bool:
        return "delete" in _policies(self.cleanup_policy)

    @property
    def compact_enabled(self) -> bool:
        return "compact" in _policies(self.cleanup_policy)

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @classmethod
    def from_topic_configs(
        cls, configs: Mapping[str, str], defaults: LogConfig | None = None
    ) -> LogConfig:
        """Overlay Kafka topic config keys (`segment.bytes`, ...) on `defaults`.

        Unknown keys are ignored (they belong to other layers); a bad value raises ValueError
        naming the key, which the broker answers with INVALID_CONFIG.
        """
        base = defaults if defaults is not None else cls()
        changes: dict[str, Any] = {}
        for key, value in configs.items():
            spec = _TOPIC_KEYS.get(key)
            if spec is None or value is None:
                continue
            field_name, parse = spec
            try:
                changes[field_name] = parse(value.strip())
            except ValueError as exc:
                raise ValueError(f"invalid value {value!r} for config {key}: {exc}") from None
        return msgspec.structs.replace(base, **changes) if changes else base


def _policies(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


def _long(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        number = int(text)
        if not -(2**63) <= number <= LONG_MAX:
            raise ValueError("out of the range of a long")
        if number < minimum:
            raise ValueError(f"must be at least {minimum}")
        return number

    return parse


def _int(minimum: int) -> Callable[[str], int]:
    parse_long = _long(minimum)

    def parse(text: str) -> int:
        number = parse_long(text)
        if number > 2**31 - 1:
            raise ValueError("out of the range of an int")
        return number

    return parse


def _timestamp_type(text: str) -> str:
    if text not in TIMESTAMP_TYPES:
        raise ValueError(f"must be one of {', '.join(TIMESTAMP_TYPES)}")
    return text


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        number = int(text)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


def _gzip_level(text: str) -> int:
    number = int(text)
    if number != -1 and not 1 <= number <= 9:
        raise ValueError("must be -1 or between 1 and 9")
    return number


def _ratio(text: str) -> float:
    number = float(text)
    if not 0.0 <= number <= 1.0:
        raise ValueError("must be between 0 and 1")
    return number


def _compression_type(text: str) -> str:
    if text not in COMPRESSION_TYPES:
        raise ValueError(f"must be one of {', '.join(COMPRESSION_TYPES)}")
    return text


def _cleanup_policy(text: str) -> str:
    """An empty list is valid in Kafka 4.x (KIP-1030) and means neither delete nor compact:
    segments are kept for ever. Empty elements, which the admin APIs refuse (config_catalog),
    are skipped here so that values stored by earlier versions still load."""
    policies = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [policy for policy in policies if policy not in CLEANUP_POLICIES]
    if unknown:
        raise ValueError(f"must be a list of {', '.join(CLEANUP_POLICIES)}")
    return ",".join(dict.fromkeys(policies))


# Minimums are Kafka 3.x's (segment.bytes >= 14 rather than 4.0's 1 MiB, so tests can roll small).
_TOPIC_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "segment.bytes": ("segment_bytes", _int(14)),
    "segment.ms": ("segment_ms", _long(1)),
    "segment.jitter.ms": ("segment_jitter_ms", _long(0)),
    "retention.ms": ("retention_ms", _long(-1)),
    "retention.bytes": ("retention_bytes", _long(-(2**63))),
    "index.interval.bytes": ("index_interval_bytes", _int(0)),
    "segment.index.bytes": ("segment_index_bytes", _int(4)),
    "max.message.bytes": ("max_message_bytes", _int(0)),
    "file.delete.delay.ms": ("file_delete_delay_ms", _long(0)),
    "flush.messages": ("flush_interval_messages", _long(1)),
    "flush.ms": ("flush_interval_ms", _long(0)),
    "message.timestamp.type": ("message_timestamp_type", _timestamp_type),
    "message.timestamp.before.max.ms": ("message_timestamp_before_max_ms", _long(0)),
    "message.timestamp.after.max.ms": ("message_timestamp_after_max_ms", _long(0)),
    "cleanup.policy": ("cleanup_policy", _cleanup_policy),
    "compression.type": ("compression_type", _compression_type),
    "compression.gzip.level": ("compression_gzip_level", _gzip_level),
    "compression.lz4.level": ("compression_lz4_level", _bounded_int(1, 17)),
    "compression.zstd.level": ("compression_zstd_level", _bounded_int(-131072, 22)),
    "delete.retention.ms": ("delete_retention_ms", _long(0)),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", _long(0)),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", _long(1)),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", _ratio),
    "min.insync.replicas": ("min_insync_replicas", _int(1)),
}

# The topic config names LogConfig understands (others are stored but not log settings).
LOG_CONFIG_KEYS = frozenset(_TOPIC_KEYS)


def parse_topic_config(key: str, value: str) -> Any:
    """The parsed value of one LogConfig key; ValueError says why it is invalid (without the
    key, for callers that phrase their own message)."""
    _, parse = _TOPIC_KEYS[key]
    return parse(value.strip())
