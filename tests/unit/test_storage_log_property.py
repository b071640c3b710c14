"""Property: a read at any offset returns the batch containing it, whatever the batch sizes,
segment sizes and index density."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_storage_support import append_batch, base_offsets

from rafka.protocol.records import read_batch_header
from rafka.storage.config import LogConfig
from rafka.storage.log import PartitionLog


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 20), min_size=1, max_size=40),
    value_sizes=st.lists(st.integers(0, 300), min_size=1, max_size=40),
    segment_bytes=st.integers(200, 5000),
    index_interval=st.integers(0, 2000),
    reads=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3000)), max_size=30),
    reopen=st.booleans(),
)
def test_reads_return_the_containing_batch(
    counts: list[int],
    value_sizes: list[int],
    segment_bytes: int,
    index_interval: int,
    reads: list[tuple[int, int]],
    reopen: bool,
) -> None:
    config = LogConfig(segment_bytes=segment_bytes, index_interval_bytes=index_interval)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t-0"
        log = PartitionLog.open(path, config, now_ms=0)
        batches = [
            append_batch(log, count, value_size=value_sizes[i % len(value_sizes)])
            for i, count in enumerate(counts)
        ]
        if reopen:
            log.close()
            log = PartitionLog.open(path, config, now_ms=0, recovery_point=0)
        starts = [read_batch_header(batch).base_offset for batch in batches]
        end = log.log_end_offset
        for raw_offset, max_bytes in reads:
            offset = raw_offset % end
            containing = max(i for i, start in enumerate(starts) if start <= offset)
            data = log.read(offset, max_bytes)
            assert data.startswith(batches[containing])
            assert len(data) <= max(max_bytes, len(batches[containing]))
            got = base_offsets(data)
            assert got == starts[containing : containing + len(got)]
            # Bounded by a high watermark, nothing at or past it comes back.
            high_watermark = min(offset + 5, end)
            bounded = base_offsets(log.read(offset, 100_000, max_offset=high_watermark))
            assert all(base < high_watermark for base in bounded)
            assert bounded == [s for s in starts[containing:] if s < high_watermark]
        log.close()
