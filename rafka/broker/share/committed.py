"""What a read_committed share group may be delivered of a partition's records (Kafka 4.3's
share.isolation.level): the fetch reads below the last stable offset, and the batches of
aborted transactions there are marked so that the share partition archives them.

Sans-I/O: the records and the partition's aborted transactions come in as a read_committed
Fetch would answer them.
"""

from __future__ import annotations

from collections.abc import Iterable

from rafka.broker.share.partition_state import BatchSpan
from rafka.protocol.records import ControlRecordType, iter_batch_headers, parse_control_record_type


def committed_spans(data: bytes, aborted: Iterable[tuple[int, int]]) -> list[BatchSpan]:
    """The batches of `data` (whole batches of one partition, in offset order) as spans, with
    those of aborted transactions marked. `aborted` is (producer id, first offset) of every
    aborted transaction the read overlaps. As Kafka's consumer filters a read_committed
    fetch: from an aborted transaction's first offset on, its producer's transactional batches
    are aborted, until that producer's ABORT marker."""
    pending = sorted(aborted, key=lambda entry: entry[1], reverse=True)
    aborting: set[int] = set()
    spans: list[BatchSpan] = []
    for pos, header in iter_batch_headers(data):
        while pending and pending[-1][1] <= header.last_offset:
            aborting.add(pending.pop()[0])
        producer = header.producer_id
        if header.is_control:
            if producer in aborting and (
                parse_control_record_type(data, pos) == ControlRecordType.ABORT
            ):
                aborting.discard(producer)
            spans.append(BatchSpan(header.base_offset, header.last_offset, is_control=True))
        else:
            spans.append(
                BatchSpan(
                    header.base_offset,
                    header.last_offset,
                    aborted=header.is_transactional and producer in aborting,
                )
            )
    return spans
