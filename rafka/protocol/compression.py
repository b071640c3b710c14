"""Compression codecs of record batches (gzip, snappy, lz4, zstd) via `cramjam`, size-bounded.

Wire formats, as Kafka's clients write and read them:
  * gzip:   RFC 1952 (several concatenated members are accepted).
  * snappy: the xerial framing the Java client writes (8-byte magic 0x82 "SNAPPY" 0x00, version
            i32, compatible-version i32, then blocks of [i32 big-endian length][raw snappy block]);
            raw snappy (librdkafka's default output) is accepted on decompression too. We write
            xerial with 32 KiB blocks, as Java does: every client reads it.
  * lz4:    the LZ4 *frame* format with independent blocks (Java rejects linked blocks).
  * zstd:   the zstd frame format.

Decompression never produces more than `max_size` bytes, whatever the input declares:
  * gzip, lz4, zstd decompress into a fixed-size buffer that grows geometrically (x4, starting
    at 8x the input) up to `max_size` + 1; cramjam stops as soon as the buffer is full. Peak
    memory is at most 1.25 x `max_size` (the last two buffers) plus the codec's own window, and
    the work at most about 1.33 x `max_size` of output. Measured: a 1 GiB bomb with an 8 MiB
    bound raises after about 10 ms and grows RSS by 10-16 MiB (tests/unit/test_compression.py).
  * snappy (raw or xerial) reads each raw block's declared length (a varint) first and refuses
    before allocating anything when the total would exceed `max_size`; then it allocates exactly
    the declared total once.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from types import ModuleType

import cramjam

__all__ = ["Compression", "CorruptRecordError", "compress", "decompress"]


class Compression(IntEnum):
    """The codec id held in the low three bits of a batch's attributes."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class CorruptRecordError(ValueError):
    """The bytes are not a well-formed v2 record batch (Kafka's CORRUPT_MESSAGE).

    Defined here so decompression can raise it without an import cycle; `records` re-exports it.
    """


XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK_SIZE = 32 * 1024
_BLOCK_LENGTH = struct.Struct(">i")

# Kafka's default levels (KIP-390): zstd 3; gzip and lz4 use their library defaults.
_ZSTD_DEFAULT_LEVEL = 3
_MIN_INITIAL_CAPACITY = 64 * 1024
# cramjam's message when a fixed-size output buffer is full before the stream ends.
_BUFFER_FULL = "failed to write whole buffer"


def compress(
    codec: Compression, data: bytes | bytearray | memoryview, level: int | None = None
) -> bytes:
    """Compress `data` as a batch's records section for `codec`."""
    if codec == Compression.NONE:
        return bytes(data)
    if codec == Compression.GZIP:
        return bytes(cramjam.gzip.compress(data, level=level))
    if codec == Compression.SNAPPY:
        return _xerial_compress(memoryview(data))
    if codec == Compression.LZ4:
        compressor = cramjam.lz4.Compressor(level=level, content_checksum=False, block_linked=False)
        compressor.compress(data)
        return bytes(compressor.finish())
    if codec == Compression.ZSTD:
        zstd_level = _ZSTD_DEFAULT_LEVEL if level is None else level
        return bytes(cramjam.zstd.compress(data, level=zstd_level))
    raise ValueError(f"unknown compression codec {codec}")


def decompress(
    codec: Compression, data: bytes | bytearray | memoryview, max_size: int
) -> bytes | bytearray:
    """Decompress a records section; CorruptRecordError if it is malformed or exceeds `max_size`."""
    if codec == Compression.NONE:
        if len(data) > max_size:
            raise CorruptRecordError(f"records exceed {max_size} bytes")
        return bytes(data)
    if codec == Compression.GZIP:
        return _decompress_bounded(cramjam.gzip, data, max_size)
    if codec == Compression.SNAPPY:
        return _snappy_decompress(memoryview(data), max_size)
    if codec == Compression.LZ4:
        return _decompress_bounded(cramjam.lz4, data, max_size)
    if codec == Compression.ZSTD:
        return _decompress_bounded(cramjam.zstd, data, max_size)
    raise CorruptRecordError(f"unknown compression codec {codec}")


def _decompress_bounded(
    module: ModuleType, data: bytes | bytearray | memoryview, max_size: int
) -> bytearray:
    capacity = min(max_size, max(_MIN_INITIAL_CAPACITY, 8 * len(data)))
    while True:
        # One spare byte tells "exactly max_size" apart from "more than max_size".
        out = bytearray(capacity + 1 if capacity == max_size else capacity)
        try:
            size = module.decompress_into(data, out)
        except cramjam.DecompressionError as exc:
            if _BUFFER_FULL not in str(exc):
                raise CorruptRecordError(f"cannot decompress records: {exc}") from None
            if capacity >= max_size:
                raise CorruptRecordError(f"decompressed records exceed {max_size} bytes") from None
            capacity = min(max_size, capacity * 4)
            continue
        if size > max_size:
            raise CorruptRecordError(f"decompressed records exceed {max_size} bytes")
        del out[size:]
        return out


def _xerial_compress(data: memoryview) -> bytes:
    parts = [_XERIAL_HEADER]
    for start in range(0, len(data), _XERIAL_BLOCK_SIZE):
        block = bytes(cramjam.snappy.compress_raw(data[start : start + _XERIAL_BLOCK_SIZE]))
        parts.append(_BLOCK_LENGTH.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: memoryview, max_size: int) -> bytearray:
    if len(data) >= len(_XERIAL_HEADER) and data[: len(XERIAL_MAGIC)] == XERIAL_MAGIC:
        blocks = _xerial_blocks(data)
    else:
        blocks = [data]
    # First pass reads only the declared sizes, so nothing is allocated for a bomb.
    sizes = []
    total = 0
    for block in blocks:
        size = _raw_snappy_length(block)
        total += size
        if total > max_size:
            raise CorruptRecordError(f"decompressed records exceed {max_size} bytes")
        sizes.append(size)
    out = bytearray(total)
    view = memoryview(out)
    pos = 0
    for block, size in zip(blocks, sizes, strict=True):
        try:
            written = cramjam.snappy.decompress_raw_into(block, view[pos : pos + size])
        except cramjam.DecompressionError as exc:
            raise CorruptRecordError(f"cannot decompress snappy records: {exc}") from None
        if written != size:
            raise CorruptRecordError("snappy block shorter than its declared length")
        pos += size
    return out


def _xerial_blocks(data: memoryview) -> list[memoryview]:
    blocks = []
    pos = len(_XERIAL_HEADER)
    end = len(data)
    while pos < end:
        if end - pos < _BLOCK_LENGTH.size:
            raise CorruptRecordError("truncated xerial snappy block length")
        (length,) = _BLOCK_LENGTH.unpack_from(data, pos)
        pos += _BLOCK_LENGTH.size
        if length <= 0 or length > end - pos:
            raise CorruptRecordError(f"invalid xerial snappy block length {length}")
        blocks.append(data[pos : pos + length])
        pos += length
    return blocks


def _raw_snappy_length(block: memoryview) -> int:
    if len(block) == 0:
        raise CorruptRecordError("empty snappy block")
    try:
        return cramjam.snappy.decompress_raw_len(block)
    except cramjam.DecompressionError as exc:
        raise CorruptRecordError(f"cannot decompress snappy records: {exc}") from None
