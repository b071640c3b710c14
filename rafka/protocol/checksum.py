"""CRC-32C (Castagnoli), the checksum of record batches and producer snapshots.

The crc32c package is imported at the first checksum, not with the codec: its `__init__` looks
up its own version through importlib.metadata, a ~20 ms import and scan of the installed
distributions that would otherwise sit in every broker's start (a fresh broker computes none).
"""

from __future__ import annotations

from collections.abc import Callable

Bytes = bytes | bytearray | memoryview

_impl: Callable[[Bytes], int] | None = None


def crc32c(data: Bytes) -> int:
    return (_impl or _load())(data)


def _load() -> Callable[[Bytes], int]:
    global _impl
    from crc32c import crc32c as impl

    _impl = impl
    return impl
