"""Share-partition state survives a crash (issue 20, done-when 2, single node): two Java
KafkaShareConsumers consume 10,000 records while the broker is killed with SIGKILL and
restarted on the same log directory. The state is in `__share_group_state`, and an
acknowledgement is answered only once its record is committed, so:

* no record whose acknowledgement the broker confirmed before the kill (ACCEPT) is delivered
  again after the restart;
* a record whose RELEASE was confirmed comes back with its delivery count raised (2+), never
  with a fresh count; delivery counts of one record never go backwards;
* no record is lost: every record is accepted, which the durable state shows at the end (its
  start offset past the last record, ReadShareGroupState).

An acknowledgement the kill cut off fails on the client ("ack-failed", a disconnect) whether
or not the broker had committed it: such a record is either delivered again after the restart
(the write was lost) or not (it was accepted), as with Kafka. The consumers' confirmed
acceptances plus those cut off therefore cover every record, and the durable state decides.

Consumers report confirmed acknowledgements through their AcknowledgementCommitCallback
("acked OFFSET/KIND"); values equal offsets here (one producer, one partition, from 0).
Membership and share sessions are in memory: the consumers join again after the restart.
"""

from __future__ import annotations

import pytest
from cluster import wait_until
from raw_client import RawClient
from share_support import (
    ShareMember,
    check_no_loss_or_redelivery,
    confirmed,
    durable_start,
    java_share_broker,
    produce_values,
    share_classpath,
    start_share_partition,
)

pytestmark = pytest.mark.timeout(300)

RECORDS = 10_000
RELEASE_MODULUS = 40
LOCK_MS = 3000


def test_share_state_survives_kill_9(broker_factory) -> None:
    classpath = share_classpath()
    broker = java_share_broker(broker_factory, LOCK_MS)
    bootstrap = broker.bootstrap
    with RawClient(bootstrap) as client:
        # The share-partition start offset (latest) is set, and persisted, before producing.
        topic_id = start_share_partition(client)
    produce_values(bootstrap, range(RECORDS), 1000)

    members = [
        ShareMember("c1", bootstrap, classpath, "accept", str(RELEASE_MODULUS)),
        ShareMember("c2", bootstrap, classpath, "accept", str(RELEASE_MODULUS)),
    ]
    try:

        def accepted() -> set[int]:
            return {o for m in members for o, kind in confirmed(m) if kind == "A"}

        wait_until(
            lambda: len(accepted()) >= RECORDS // 3,
            120,
            f"a third of the records accepted ({len(accepted())}; "
            f"{[m.output[-3:] for m in members]})",
        )
        broker.kill()
        accepted_before = accepted()
        released_before = {o for m in members for o, kind in confirmed(m) if kind == "R"}
        marks = [len(m.snapshot()) for m in members]
        broker.start()

        wait_until(
            lambda: durable_start([bootstrap], topic_id) == RECORDS,
            120,
            f"every record acknowledged durably ({len(accepted())} of {RECORDS} confirmed; "
            f"{[m.output[-3:] for m in members]})",
        )
        for member in members:
            member.finish()
    except AssertionError:
        # What the broker warned of and what the consumers said besides acknowledgements.
        print("\n".join(line for line in broker.log_lines if '"error"' in line or "warn" in line))
        for m in members:
            print(m.name, [line[:300] for line in m.output if not line.startswith("acked")][-8:])
        raise
    finally:
        for member in members:
            member.kill()

    check_no_loss_or_redelivery(members, RECORDS, accepted_before, released_before, marks)
