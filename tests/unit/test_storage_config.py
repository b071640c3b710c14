from __future__ import annotations

import pytest

from rafka.storage.config import LogConfig


def test_defaults_are_kafkas() -> None:
    config = LogConfig()
    assert config.segment_bytes == 1073741824
    assert config.segment_ms == 604800000
    assert config.retention_ms == 604800000
    assert config.retention_bytes == -1
    assert config.index_interval_bytes == 4096
    assert config.segment_index_bytes == 10485760
    assert config.max_message_bytes == 1048588
    assert config.file_delete_delay_ms == 60000
    assert config.message_timestamp_type == "CreateTime"
    assert config.cleanup_policy == "delete"
    assert config.delete_enabled and not config.compact_enabled


def test_topic_configs_override_defaults() -> None:
    defaults = LogConfig(retention_ms=1000)
    config = LogConfig.from_topic_configs(
        {
            "segment.bytes": "2048",
            "retention.bytes": "-1",
            "segment.ms": "60000",
            "segment.jitter.ms": "3000",
            "index.interval.bytes": "100",
            "segment.index.bytes": "4096",
            "max.message.bytes": "500",
            "message.timestamp.type": "LogAppendTime",
            "cleanup.policy": "compact,delete",
            "flush.messages": "1",
            "flush.ms": "0",
            "file.delete.delay.ms": "5",
            "min.insync.replicas": "2",  # not a log setting: ignored
        },
        defaults,
    )
    assert config.segment_bytes == 2048
    assert config.retention_ms == 1000  # from the defaults
    assert config.segment_ms == 60000 and config.segment_jitter_ms == 3000
    assert config.index_interval_bytes == 100
    assert config.segment_index_bytes == 4096
    assert config.max_message_bytes == 500
    assert config.log_append_time
    assert config.compact_enabled and config.delete_enabled
    assert config.flush_interval_messages == 1 and config.flush_interval_ms == 0
    assert config.file_delete_delay_ms == 5


def test_no_overrides_returns_defaults() -> None:
    defaults = LogConfig(segment_bytes=5000)
    assert LogConfig.from_topic_configs({}, defaults) is defaults
    assert LogConfig.from_topic_configs({"retention.ms": "-1"}).retention_ms == -1


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("segment.bytes", "abc"),
        ("segment.bytes", "10"),
        ("segment.bytes", str(2**31)),
        ("retention.ms", "-2"),
        ("message.timestamp.type", "WallClock"),
        ("cleanup.policy", "compact,forever"),
        ("segment.ms", "0"),
    ],
)
def test_invalid_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=key):
        LogConfig.from_topic_configs({key: value})


def test_empty_cleanup_policy_neither_deletes_nor_compacts() -> None:
    # Kafka 4.x (KIP-1030): an empty list is valid and keeps every segment.
    for value in ("", "  "):
        config = LogConfig.from_topic_configs({"cleanup.policy": value})
        assert config.cleanup_policy == ""
        assert not config.delete_enabled and not config.compact_enabled
    deduped = LogConfig.from_topic_configs({"cleanup.policy": " compact , compact,delete,"})
    assert deduped.cleanup_policy == "compact,delete"
