"""The persisted Raft quorum state of one log: `quorum-state`, JSON as KRaft writes it.

Written atomically (temp file, fsync, rename, fsync dir) before a vote or leadership is acted
upon, so a node never votes twice in one epoch across a crash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from msgspec import Struct

from rafka.storage.files import read_small_file

FILE_NAME = "quorum-state"


class StoredQuorumState(Struct, frozen=True):
    """What `quorum-state` keeps: the epoch, the vote cast in it, the leader known in it."""

    epoch: int = 0
    voted_for: int | None = None
    leader_id: int | None = None


def read_quorum_state(directory: Path) -> StoredQuorumState | None:
    """None if the file does not exist (a replica that never voted nor led)."""
    path = directory / FILE_NAME
    try:
        data = json.loads(read_small_file(path))
    except FileNotFoundError:
        return None
    voted = data.get("votedId", -1)
    leader = data.get("leaderId", -1)
    return StoredQuorumState(
        epoch=int(data.get("leaderEpoch", 0)),
        voted_for=None if voted < 0 else int(voted),
        leader_id=None if leader < 0 else int(leader),
    )


def write_quorum_state(directory: Path, state: StoredQuorumState, voters: list[int]) -> None:
    payload = json.dumps(
        {
            "leaderId": -1 if state.leader_id is None else state.leader_id,
            "leaderEpoch": state.epoch,
            "votedId": -1 if state.voted_for is None else state.voted_for,
            "appliedOffset": 0,
            "currentVoters": [{"voterId": v} for v in voters],
            "data_version": 0,
        }
    ).encode()
    temp = directory / (FILE_NAME + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, directory / FILE_NAME)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
