"""Share groups (KIP-932, issue 20's first slice) with Java KafkaShareConsumers (kafka-clients
4.3.1): three consumers on a 1-partition topic consume 10,000 records between them, each record
accepted exactly once; one consumer releases some records, which come back with delivery count
2; the records a killed consumer held come back once their acquisition lock (3 s here) expires.

The consumer is compat-tests/java/src/test-only/ShareGroupMember.java, run as a single source
file. KafkaShareConsumer needs kafka-clients 4.2+, newer than compat-tests/java's kafka-4
profile, so its jars are fetched into compat-tests/java/target/share-lib/ with Maven if missing:

    mvn -B -q dependency:copy -Dartifact=org.apache.kafka:kafka-clients:4.3.1 \
        -DoutputDirectory=target/share-lib     (and org.slf4j:slf4j-api/slf4j-nop:1.7.36)

The share-partition start offset is `latest` (share.auto.offset.reset's default; the test
leaves the group config alone), so it opens a share session with a raw ShareFetch before
producing.
"""

from __future__ import annotations

from collections import Counter

import pytest
from cluster import wait_until
from kio.schema.share_group_describe.v1.request import ShareGroupDescribeRequest
from kio.schema.share_group_describe.v1.response import ShareGroupDescribeResponse
from raw_client import RawClient
from share_support import (
    JAVA_GROUP,
    JAVA_TOPIC,
    ShareMember,
    acquired,
    java_share_broker,
    produce_values,
    share_classpath,
    share_fetch,
    start_share_partition,
)

from rafka.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(300)

TOPIC = JAVA_TOPIC
GROUP = JAVA_GROUP  # also the Java consumers' default group
RECORDS = 10_000
RELEASE_MODULUS = 50
LOCK_MS = 3000


def member_client_ids(client: RawClient) -> set[str]:
    described = client.request(
        ShareGroupDescribeRequest(group_ids=(GROUP,), include_authorized_operations=False),
        ShareGroupDescribeResponse,
    )
    group = described.groups[0]
    if group.error_code != ErrorCode.none:
        return set()
    return {m.client_id for m in group.members}


def test_three_java_share_consumers_accept_every_record_once(broker_factory) -> None:
    classpath = share_classpath()
    bootstrap = java_share_broker(broker_factory, LOCK_MS).bootstrap
    members: list[ShareMember] = []
    with RawClient(bootstrap) as client:
        # Set the share-partition start offset (latest) before any record exists.
        topic_id = start_share_partition(client)
        try:
            # A consumer takes the first records and is killed without acknowledging them.
            produce_values(bootstrap, range(300), 300)
            holder = ShareMember("holder", bootstrap, classpath, "hold")
            members.append(holder)
            wait_until(holder.snapshot, 60, f"the holder's records ({holder.output[-5:]})")
            holder.kill()
            held = {value for value, _, _ in holder.snapshot()}
            assert held and all(d == 1 for _, d, _ in holder.snapshot())

            consumers = [
                ShareMember("c1", bootstrap, classpath, "accept", str(RELEASE_MODULUS)),
                ShareMember("c2", bootstrap, classpath, "accept"),
                ShareMember("c3", bootstrap, classpath, "accept"),
            ]
            members += consumers
            wait_until(
                lambda: {"c1", "c2", "c3"} <= member_client_ids(client),
                60,
                f"the three consumers to join ({[c.output[-3:] for c in consumers]})",
            )
            produce_values(bootstrap, range(300, RECORDS), 100)

            def accepted() -> Counter[int]:
                return Counter(
                    value for c in consumers for value, _, how in c.snapshot() if how == "A"
                )

            wait_until(
                lambda: len(accepted()) == RECORDS,
                120,
                f"every record accepted ({len(accepted())} of {RECORDS})",
            )
            for consumer in consumers:
                consumer.finish()
        finally:
            for member in members:
                member.kill()

        counts = accepted()
        assert set(counts) == set(range(RECORDS))
        assert max(counts.values()) == 1, [v for v, n in counts.items() if n > 1][:20]
        for consumer in consumers:
            assert not [line for line in consumer.output if line.startswith("ack-failed")]
        assert all(c.snapshot() for c in consumers), [len(c.snapshot()) for c in consumers]
        deliveries = [d for c in consumers for d in c.snapshot()]
        accepted_at = {value: delivery for value, delivery, how in deliveries if how == "A"}
        released = {value for value, delivery, how in deliveries if how == "R"}
        assert released and all(v % RELEASE_MODULUS == 0 for v in released)
        # Released records came back, to some consumer, with their delivery count raised.
        assert all(accepted_at[v] == 2 for v in released), {v: accepted_at[v] for v in released}
        # So did the killed holder's, once their lock expired.
        assert all(accepted_at[v] >= 2 for v in held)
        assert {accepted_at[v] for v in set(range(RECORDS)) - held - released} == {1}
        print(
            "accepted per consumer:",
            {c.name: sum(how == "A" for _, _, how in c.snapshot()) for c in consumers},
            f"released {len(released)}, held {len(held)}",
        )
        # Nothing is left to deliver.
        assert acquired(share_fetch(client, GROUP, "last", 0, topic_id, wait_ms=200)) == []
