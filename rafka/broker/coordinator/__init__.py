"""The coordinators over internal topics: the shared machinery (internal_topic, placement), the
group coordinator (groups/), the transaction coordinator (txn/), and TxnOffsetCommit, which
joins the two."""
