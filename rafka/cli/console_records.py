"""What the console producer sends and how: its settings, record headers and Kafka's default
partitioning of keyed records (shared by the command and its sender)."""

from __future__ import annotations

from dataclasses import dataclass, field

Header = tuple[str, bytes | None]

UNKNOWN_TOPIC_GRACE_S = 2.0  # a topic just created elsewhere may not be in every broker's view


class InputError(Exception):
    """A line that cannot be turned into a record."""


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Utils.murmur2) as an unsigned 32-bit value."""
    mask, m = 0xFFFFFFFF, 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length & 3
    if tail:
        if tail == 3:
            h ^= data[whole + 2] << 16
        if tail >= 2:
            h ^= data[whole + 1] << 8
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


def key_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(slots=True)
class Settings:
    acks: int = -1
    linger_ms: int = 1000
    batch_size: int = 16384
    compression: str = "none"
    retries: int = 3
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 1000
    request_timeout_ms: int = 1500
    max_block_ms: int = 60000
    client_id: str = "console-producer"
    sync: bool = False
    warnings: list[str] = field(default_factory=list)
