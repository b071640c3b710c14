"""A partition's voter sets in its log: the KRAFT_VOTERS record value (Kafka's VotersRecord) and
the `voters-checkpoint` history the Raft replica reads its voters from."""

from __future__ import annotations

from pathlib import Path

import pytest

from rafka.protocol.records import CorruptRecordError
from rafka.protocol.voters_record import decode_voters_record, encode_voters_record
from rafka.storage.voter_sets import VOTERS_CHECKPOINT_FILE, VoterSetHistory

DIRECTORY = "12345678-1234-5678-1234-567812345678"


def test_voters_record_round_trips_ids_and_directories() -> None:
    voters = ((3, DIRECTORY), (1, None), (2, None))
    value = encode_voters_record(voters)
    assert value[:2] == b"\x00\x00"  # version 0
    assert decode_voters_record(value) == ((1, None), (2, None), (3, DIRECTORY))


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\x01\x01\x00", b"\x00\x00\x7f", encode_voters_record(((1, None),))[:-3]],
    ids=["empty", "version-1", "count-past-end", "truncated"],
)
def test_a_bad_voters_record_is_refused(value: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        decode_voters_record(value)


def _load(directory: Path, end: int, holds: set[int] | None = None) -> VoterSetHistory:
    return VoterSetHistory.load(
        directory, end, lambda offset: holds is None or offset in holds, lambda: [(0, ((9, None),))]
    )


def test_history_is_durable_before_the_record_and_survives_a_restart(tmp_path: Path) -> None:
    history = _load(tmp_path, 0)
    assert history.latest() is None
    history.record(5, ((1, None), (2, None)))
    history.record(9, ((1, None), (2, None), (3, DIRECTORY)))
    again = _load(tmp_path, 10)
    assert again.latest() == (9, {1: None, 2: None, 3: DIRECTORY})
    assert [offset for offset, _ in again.entries] == [5, 9]


def test_records_the_log_lost_or_does_not_hold_are_dropped_at_load(tmp_path: Path) -> None:
    history = _load(tmp_path, 0)
    history.record(5, ((1, None), (2, None)))
    history.record(9, ((1, None),))
    # A crash lost offset 9 (the log ends there): the voters before it are in force again.
    assert _load(tmp_path, 9).latest() == (5, {1: None, 2: None})
    # And an entry whose offset holds no voters record (a truncation a crash undid) goes too.
    assert _load(tmp_path, 20, holds=set()).latest() is None
    assert _load(tmp_path, 20).latest() is None  # the file was rewritten without them


def test_truncation_forgets_later_records_durably(tmp_path: Path) -> None:
    history = _load(tmp_path, 0)
    history.record(5, ((1, None), (2, None)))
    history.record(9, ((1, None),))
    history.truncate_from(9)
    assert history.latest() == (5, {1: None, 2: None})
    assert _load(tmp_path, 100).latest() == (5, {1: None, 2: None})


def test_an_unreadable_checkpoint_is_rebuilt_from_the_log(tmp_path: Path) -> None:
    (tmp_path / VOTERS_CHECKPOINT_FILE).write_text("0\n1\nnot a voters entry at all\n")
    assert _load(tmp_path, 10).latest() == (0, {9: None})
