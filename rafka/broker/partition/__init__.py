"""One partition replica on this broker, the bottom layer of the broker (docs/architecture.md):
`replica.Partition` drives the Raft replica and owns the log; beside it, each module one part of
its work: `recovery` (opening from disk), `follower` (the leader's log copied and cut),
`durability` (the flushed offset across truncations), `waiters` (futures woken as offsets
advance), `append` (a client batch's checks and what an append answers), `transactions` (the
last stable offset, aborted transactions, the coordinators' batches) and `clock`.
"""
