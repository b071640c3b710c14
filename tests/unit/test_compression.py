"""Compression codecs: wire formats other clients read and write, and the decompression bound."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import textwrap

import aiokafka.codec
import cramjam
import kafka.codec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rafka.protocol.compression import (
    XERIAL_MAGIC,
    Compression,
    CorruptRecordError,
    compress,
    decompress,
)

CODECS = list(Compression)
COMPRESSED = [c for c in Compression if c != Compression.NONE]
MiB = 1024 * 1024


@pytest.mark.parametrize("codec", CODECS)
@given(data=st.binary(max_size=4096))
def test_round_trip(codec: Compression, data: bytes) -> None:
    assert decompress(codec, compress(codec, data), max_size=len(data)) == data


@pytest.mark.parametrize("codec", COMPRESSED)
def test_round_trip_of_highly_compressible_data_grows_the_output_buffer(codec: Compression) -> None:
    data = b"\x00" * (3 * MiB) + b"tail"
    assert decompress(codec, compress(codec, data), max_size=64 * MiB) == data


@pytest.mark.parametrize("codec", COMPRESSED)
def test_output_of_exactly_max_size_is_accepted_and_one_byte_more_is_not(
    codec: Compression,
) -> None:
    data = bytes(range(256)) * 1000
    compressed = compress(codec, data)
    assert decompress(codec, compressed, max_size=len(data)) == data
    with pytest.raises(CorruptRecordError):
        decompress(codec, compressed, max_size=len(data) - 1)


def test_uncompressed_data_is_bounded_too() -> None:
    with pytest.raises(CorruptRecordError):
        decompress(Compression.NONE, b"abc", max_size=2)


@pytest.mark.parametrize("codec", COMPRESSED)
def test_corrupt_input_raises_corrupt_record_error(codec: Compression) -> None:
    compressed = bytearray(compress(codec, bytes(range(256)) * 100))
    for broken in (b"", bytes(compressed[: len(compressed) // 2]), b"\x00" * 32):
        with pytest.raises(CorruptRecordError):
            decompress(codec, broken, max_size=MiB)


def test_an_unknown_codec_is_corrupt() -> None:
    with pytest.raises(CorruptRecordError):
        decompress(5, b"data", max_size=MiB)  # type: ignore[arg-type]


# -- snappy: xerial framing out, xerial or raw in -----------------------------------------------


def test_snappy_output_is_xerial_framed_in_32k_blocks() -> None:
    data = bytes(range(256)) * 300  # 76,800 bytes: three blocks
    out = compress(Compression.SNAPPY, data)
    assert out[:8] == XERIAL_MAGIC
    assert struct.unpack(">ii", out[8:16]) == (1, 1)
    pos, blocks = 16, []
    while pos < len(out):
        (length,) = struct.unpack_from(">i", out, pos)
        blocks.append(bytes(cramjam.snappy.decompress_raw(out[pos + 4 : pos + 4 + length])))
        pos += 4 + length
    assert [len(b) for b in blocks] == [32768, 32768, 11264]
    assert b"".join(blocks) == data


def test_raw_snappy_as_librdkafka_writes_it_is_accepted() -> None:
    data = b"librdkafka" * 1000
    raw = bytes(cramjam.snappy.compress_raw(data))
    assert decompress(Compression.SNAPPY, raw, max_size=len(data)) == data


def test_xerial_snappy_written_by_aiokafka_is_accepted() -> None:
    data = bytes(range(256)) * 100
    framed = aiokafka.codec.snappy_encode(data, xerial_compatible=True, xerial_blocksize=1000)
    assert decompress(Compression.SNAPPY, framed, max_size=len(data)) == data


def test_our_snappy_is_read_by_other_clients() -> None:
    data = bytes(range(256)) * 300
    ours = compress(Compression.SNAPPY, data)
    assert aiokafka.codec.snappy_decode(ours) == data
    if kafka.codec.has_snappy():
        assert kafka.codec.snappy_decode(ours) == data


@pytest.mark.parametrize(
    "framed",
    [
        XERIAL_MAGIC + struct.pack(">ii", 1, 1) + struct.pack(">i", 100) + b"\x05",
        XERIAL_MAGIC + struct.pack(">ii", 1, 1) + struct.pack(">i", -1),
        XERIAL_MAGIC + struct.pack(">ii", 1, 1) + b"\x00\x00",
        XERIAL_MAGIC + struct.pack(">ii", 1, 1) + struct.pack(">i", 0),
    ],
)
def test_malformed_xerial_framing_is_corrupt(framed: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        decompress(Compression.SNAPPY, framed, max_size=MiB)


# -- lz4: the frame format with independent blocks, as Java requires ------------------------------


def test_lz4_output_is_a_frame_with_independent_blocks() -> None:
    data = bytes(range(256)) * 1000  # several 64 KiB blocks
    out = compress(Compression.LZ4, data)
    assert struct.unpack_from("<I", out)[0] == 0x184D2204
    flags = out[4]
    assert flags >> 6 == 1  # version 01
    assert flags & 0x20  # block independence: Java rejects linked blocks
    assert not flags & 0x03  # reserved bits and dictionary id clear
    assert (out[5] >> 4) & 0x07 in (4, 5, 6, 7)  # a block size Java accepts
    assert aiokafka.codec.lz4_decode(out) == data
    if kafka.codec.has_lz4():
        assert kafka.codec.lz4_decode(out) == data


def test_lz4_written_by_aiokafka_is_accepted() -> None:
    data = b"aiokafka" * 10000
    assert decompress(Compression.LZ4, aiokafka.codec.lz4_encode(data), max_size=len(data)) == data


# -- gzip and zstd interoperate with other implementations ---------------------------------------


def test_gzip_interoperates() -> None:
    data = b"gzip" * 10000
    assert gzip.decompress(compress(Compression.GZIP, data)) == data
    assert kafka.codec.gzip_decode(compress(Compression.GZIP, data)) == data
    assert decompress(Compression.GZIP, kafka.codec.gzip_encode(data), max_size=len(data)) == data


def test_zstd_interoperates() -> None:
    data = b"zstd" * 10000
    assert aiokafka.codec.zstd_decode(compress(Compression.ZSTD, data)) == data
    assert (
        decompress(Compression.ZSTD, aiokafka.codec.zstd_encode(data), max_size=len(data)) == data
    )


# -- decompression bombs -------------------------------------------------------------------------


def test_a_snappy_block_declaring_4_gib_is_refused_before_allocation() -> None:
    # Raw snappy starts with the uncompressed length as a varint: here 2**32 - 1.
    bomb = b"\xff\xff\xff\xff\x0f" + b"\x00" * 16
    with pytest.raises(CorruptRecordError, match="exceed"):
        decompress(Compression.SNAPPY, bomb, max_size=MiB)


def test_xerial_blocks_are_summed_against_the_bound() -> None:
    block = bytes(cramjam.snappy.compress_raw(b"\x00" * 32768))
    framed = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
    framed += (struct.pack(">i", len(block)) + block) * 64  # 2 MiB declared in total
    assert len(decompress(Compression.SNAPPY, framed, max_size=2 * MiB)) == 2 * MiB
    with pytest.raises(CorruptRecordError, match="exceed"):
        decompress(Compression.SNAPPY, framed, max_size=2 * MiB - 1)


@pytest.mark.parametrize("codec", COMPRESSED)
def test_a_one_gib_bomb_stays_within_the_memory_bound(codec: Compression) -> None:
    """Run in a child so its peak RSS measures only the bomb: 1 GiB of zeros, bound 8 MiB."""
    script = textwrap.dedent(
        f"""
        import resource, struct
        import cramjam
        from rafka.protocol.compression import (
            XERIAL_MAGIC, Compression, CorruptRecordError, compress, decompress)
        codec = Compression({int(codec)})
        if codec == Compression.SNAPPY:
            block = bytes(cramjam.snappy.compress_raw(b"\\0" * 32768))
            bomb = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
            bomb += (struct.pack(">i", len(block)) + block) * 32768
        else:
            # Concatenated frames/members are valid streams: 64 x 16 MiB = 1 GiB.
            bomb = compress(codec, bytes(16 << 20)) * 64
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            decompress(codec, bomb, max_size=8 << 20)
        except CorruptRecordError:
            pass
        else:
            raise SystemExit("bomb was not refused")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(len(bomb), (after - before) // 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    bomb_size, growth_mib = map(int, result.stdout.split())
    assert bomb_size < 64 * MiB
    assert growth_mib < 64, f"peak RSS grew by {growth_mib} MiB for an 8 MiB bound"
