"""The scenarios every suite runs, what each asserts, and the broker APIs some of them need."""

from __future__ import annotations

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
SCENARIOS: dict[str, str] = {
    "metadata": "create a 3-partition topic; the client's metadata shows the one broker at the "
    "bootstrap address (as controller, with a cluster id) and each partition led by it",
    **{
        f"produce-consume-{codec}": f"produce 100 keyed records (some keys null) with headers "
        f"(a repeated name among them), compression `{codec}`; read them back by manual "
        "assignment: same keys, values, headers, order, nothing after them"
        + ("" if codec == "none" else f"; the broker stored `{codec}` batches")
        for codec in CODECS
    },
    "idempotent-produce": "idempotent producer, acks=all, 500 records in small batches: read "
    "back exactly once in order; the stored batches carry a producer id and gapless sequences",
    "group-rebalance": "consumer group on a 4-partition topic: the first member owns all 4; a "
    "second joins and the partitions are split between them; together they read all 40 "
    "records; the second leaves and the first owns all 4 again",
    "commit-resume": "a group member reads 10 of 20 records and commits the next offset (with "
    "metadata where the client allows); the committed offset reads back; a new member of the "
    "group resumes exactly there, and its own commit lands",
    "consumer-protocol": "the consumer group protocol (KIP-848, `group.protocol=consumer`: the "
    "broker assigns) on a 4-partition topic holding 20 records: the first member owns all 4; a "
    "second joins and each owns 2, together all 4; ConsumerGroupDescribe shows a "
    "consumer-protocol group of those two members; 20 more records, of which the second reads "
    "its share; both commit what they read; the second leaves and the first owns all 4 again; "
    "all 40 records were read, and the committed offsets reach the end of every partition (40 "
    "in all)",
    "share-group": "share groups (KIP-932), two share consumers with explicit acknowledgement "
    "in one share group on a 1-partition topic. A share group starts at the end of the "
    "partition (`share.auto.offset.reset=latest`, the default), so probe records are produced "
    "until each consumer has received one; ShareGroupDescribe shows a share group of those two "
    "members, each assigned the partition (confluent-kafka: librdkafka has no share-group admin "
    "API, so that suite sends ShareGroupDescribe itself). Then 200 records in batches of 10: "
    "the second consumer releases those whose number ends in 3 on their first delivery, and "
    "each comes back (to either consumer) with delivery count 2 and is accepted; every other "
    "record is delivered once, with delivery count 1, and accepted. Each of the 200 is accepted "
    "exactly once, the broker confirming every acknowledgement; both consumers accept some; "
    "nothing is delivered again in the second after",
    "admin-topics": "create a 3-partition topic, describe it, list it, re-create it "
    "(TOPIC_ALREADY_EXISTS), delete it, see it leave the list (and describe fail)",
    "admin-configs": "create a topic with retention.ms; describe its configs (value, source, "
    "defaults); alter retention.ms (incrementally where the client can); describe the broker's",
    "transactions": "commit 5 records, abort 3, commit 1; read_committed sees the 6 committed, "
    "read_uncommitted all 9; the stored batches are transactional with 3 markers",
    "txn-pipeline": "one transactional producer, 20 transactions on an 8-partition topic; each "
    "sends 20 records (about 4 to a batch) to every partition without waiting and commits at "
    "once. With transaction version 2 each commit bumps the epoch, so the next transaction's "
    "first batches restart at sequence 0 while later ones are in flight behind them. "
    "read_committed sees all 3200 exactly once; the stored batches are transactional, each "
    "epoch's sequences start at 0 without gaps, with 20 markers",
    "security-sasl-plain": "over SASL_SSL (the broker's certificate checked against the run's "
    "CA) with PLAIN: produce 10 records and read them back; the same user with a wrong "
    "password is refused",
    "security-sasl-scram": "the same with SCRAM-SHA-512, for a user created with "
    "AlterUserScramCredentials",
    "security-mtls": "over SSL with a client certificate the broker requires: produce 10 "
    "records and read them back; a client without a certificate is refused",
    "security-acl": "ACLs (StandardAuthorizer): once an ACL for another principal names the "
    "topic, the SASL_SSL PLAIN user's produce fails with TOPIC_AUTHORIZATION_FAILED; after "
    "CreateAcls allows it WRITE and READ on the topic, it produces 10 records and reads them "
    "back",
}

# Scenarios that need broker APIs rafka does not serve yet: skipped, naming the issue, while the
# broker does not advertise them. Consumer groups are deliberately absent: without them the group
# scenarios must fail, not skip.
API_NAMES = {
    24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn",
    26: "EndTxn",
    28: "TxnOffsetCommit",
    32: "DescribeConfigs",
    33: "AlterConfigs",
    44: "IncrementalAlterConfigs",
    68: "ConsumerGroupHeartbeat",
    69: "ConsumerGroupDescribe",
    76: "ShareGroupHeartbeat",
    77: "ShareGroupDescribe",
    78: "ShareFetch",
    79: "ShareAcknowledge",
}
GATES: dict[str, tuple[list[int], str]] = {
    "admin-configs": ([32, 33, 44], "issue 3"),
    "transactions": ([24, 25, 26, 28], "issue 5"),
    "txn-pipeline": ([24, 26], "issue 5"),
}
# Gates for another broker only (--bootstrap, e.g. Kafka 3.x): rafka serves these, so there a
# missing API must fail the scenario rather than skip it.
FOREIGN_GATES: dict[str, list[int]] = {
    "consumer-protocol": [68, 69],
    # Kafka advertises the share APIs once the share.version feature is enabled (by default in
    # clusters formatted by 4.2 and later).
    "share-group": [76, 77, 78, 79],
}


def gated_skips(advertised: dict[int, tuple[int, int]], ours: bool) -> dict[str, str]:
    """Scenario -> why it is skipped, for the gated scenarios whose APIs the broker lacks."""
    skips = {}
    for scenario, (apis, issue) in GATES.items():
        missing = [API_NAMES[a] for a in apis if a not in advertised]
        if missing:
            what = f"not implemented in rafka yet: {issue}" if ours else "broker lacks"
            skips[scenario] = f"{what}; no {', '.join(missing)}"
    for scenario, apis in FOREIGN_GATES.items():
        missing = [API_NAMES[a] for a in apis if a not in advertised]
        if missing and not ours:
            skips[scenario] = f"broker lacks; no {', '.join(missing)}"
    return skips
