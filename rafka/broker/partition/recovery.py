"""Opening a partition replica from its directory: the log as recovery finds it, cut of leader
epochs the quorum state never entered; producer state and the aborted-transaction index replayed
up to its end; and the Raft replica, impaired if storage lost records it had acknowledged.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from msgspec import Struct

from rafka.broker.partition.clock import now_ms, raft_clock_ms
from rafka.broker.partition.voters import load_voter_sets
from rafka.replication.log import PartitionLogView
from rafka.replication.raft import QuorumState, RaftConfig, RaftReplica
from rafka.storage.config import LogConfig
from rafka.storage.files import list_files
from rafka.storage.log import PartitionLog
from rafka.storage.producer_state import ProducerStateManager
from rafka.storage.quorum_state import StoredQuorumState, read_quorum_state
from rafka.storage.txn_index import TransactionIndex, replay_into
from rafka.storage.voter_sets import VoterSetHistory

log = structlog.get_logger(__name__)


class RecoveredReplica(Struct, frozen=True):
    """A replica's parts as its directory gave them back."""

    log: PartitionLog
    producers: ProducerStateManager
    txn_index: TransactionIndex
    raft: RaftReplica
    voter_sets: VoterSetHistory


def recover_replica(
    name: str,
    directory: Path,
    config: LogConfig,
    *,
    node_id: int,
    voters: frozenset[int],
    recovery_point: int,
    log_start_offset: int,
    high_watermark: int,
    clean_shutdown: bool,
    producer_id_expiration_ms: int,
    raft_config: RaftConfig | None,
) -> RecoveredReplica:
    partition_log = PartitionLog.open(
        directory,
        config,
        recovery_point=recovery_point,
        log_start_offset=log_start_offset,
        clean_shutdown=clean_shutdown,
        now_ms=now_ms(),
    )
    found = read_quorum_state(directory)
    stored = found or StoredQuorumState()
    lost_end = 0 if found is None else _drop_epochs_never_entered(partition_log, found.epoch)
    # One listing for the snapshot and transaction-index files, after the log's recovery and
    # cut have deleted what they delete: each of those readers would otherwise list it again.
    names = list_files(directory)
    producers = ProducerStateManager(directory, producer_id_expiration_ms)
    replay_from = producers.load_latest_snapshot(
        partition_log.log_start_offset, partition_log.log_end_offset, names
    )
    txn_index = TransactionIndex.load(
        directory, partition_log.segments[0].base_offset, partition_log.log_end_offset, names
    )
    replay_into(partition_log, producers, txn_index, replay_from)
    voter_sets = load_voter_sets(directory, partition_log)
    raft = RaftReplica(
        node_id,
        voters,
        QuorumState(stored.epoch, stored.voted_for, stored.leader_id),
        PartitionLogView(partition_log, voter_sets),
        # A checkpoint above the recovered log end means data was lost: never claim it.
        min(high_watermark, partition_log.log_end_offset),
        config=raft_config,
        now_ms=raft_clock_ms(),
        lost_end_offset=max(partition_log.lost_end_offset, high_watermark, lost_end),
    )
    if raft.impaired:
        log.error(
            "storage lost acknowledged records: this replica neither votes nor stands for "
            "election until it has fetched them back from a leader",
            partition=name,
            log_end_offset=partition_log.log_end_offset,
            lost_end_offset=max(partition_log.lost_end_offset, high_watermark, lost_end),
        )
    return RecoveredReplica(partition_log, producers, txn_index, raft, voter_sets)


def _drop_epochs_never_entered(log_: PartitionLog, quorum_epoch: int) -> int:
    """Cut batches whose leader epoch is above the epoch in the quorum state, which is fsynced
    before a replica appends anything of a new epoch: such an epoch is a flipped byte (the CRC
    does not cover it), and a vote claiming it would beat logs holding committed records.
    Returns the log end before the cut (what storage had), 0 if nothing was cut."""
    first_bad = next(
        (e.start_offset for e in log_.leader_epochs.entries if e.epoch > quorum_epoch), None
    )
    if first_bad is None:
        return 0
    end = log_.log_end_offset
    log.error(
        "log holds a leader epoch above the quorum state's: cutting it as corrupt",
        directory=str(log_.directory),
        quorum_epoch=quorum_epoch,
        latest_epoch=log_.leader_epochs.latest_epoch,
        truncated_to=first_bad,
        log_end_offset=end,
    )
    log_.truncate_to(first_bad)
    return end
