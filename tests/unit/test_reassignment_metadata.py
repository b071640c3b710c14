"""The reassignment records in the metadata image (what every broker replays), and the
controller's checks and records around them."""

from __future__ import annotations

import uuid

import pytest

from rafka.broker.cluster.cluster_metadata import MetadataImage, Reassignment, TopicImage
from rafka.broker.cluster.reassignment_control import (
    ReassignmentRefused,
    check_cancel,
    check_partition,
    check_target,
    done_already,
    done_record,
    ongoing,
    reassign_record,
)
from rafka.protocol.errors import ErrorCode

TOPIC_ID = uuid.UUID(int=7)


def image_with(*replicas: list[int], brokers: tuple[int, ...] = (1, 2, 3, 4)) -> MetadataImage:
    image = MetadataImage()
    image.apply({"type": "topic", "name": "t", "id": str(TOPIC_ID), "replicas": list(replicas)})
    for node in brokers:
        image.apply({"type": "broker", "id": node, "host": "h", "port": 9000 + node,
                     "incarnation": "x"})  # fmt: skip
    return image


def reassign(image: MetadataImage, *targets: tuple[int, list[int]]) -> None:
    image.apply({"type": "reassign_partitions", "id": str(TOPIC_ID),
                 "partitions": [{"partition": i, "target": t} for i, t in targets]})  # fmt: skip


def cancel(image: MetadataImage, *indexes: int) -> None:
    image.apply({"type": "cancel_reassignments", "id": str(TOPIC_ID), "partitions": list(indexes)})


def done(image: MetadataImage, index: int, replicas: list[int]) -> None:
    image.apply({"type": "reassignment_done", "id": str(TOPIC_ID), "partition": index,
                 "replicas": replicas})  # fmt: skip


def report_isr(image: MetadataImage, index: int, leader: int, isr: list[int]) -> None:
    state = {"id": str(TOPIC_ID), "partition": index, "leader": leader, "epoch": 1, "isr": isr}
    image.apply({"type": "partition_states", "states": [state]})


def topic(image: MetadataImage) -> TopicImage:
    return image.topics["t"]


# -- applying the records ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "target", "during"),
    [([1], [2, 3], [2, 3, 1]), ([1, 2, 3], [2, 3, 4], [2, 3, 4, 1]), ([1, 2], [2], [2, 1])],
)
def test_replicas_during_a_reassignment_are_the_target_then_the_others(
    before: list[int], target: list[int], during: list[int]
) -> None:
    image = image_with(before)
    reassign(image, (0, target))
    assert topic(image).replicas == [during]
    assert topic(image).reassignments == {0: Reassignment(tuple(before), tuple(target))}


def test_done_sets_the_target_and_ends_the_reassignment() -> None:
    image = image_with([1, 2, 3], [2, 3, 1])
    reassign(image, (0, [2, 3, 4]))
    done(image, 0, [2, 3, 4])
    assert topic(image).replicas == [[2, 3, 4], [2, 3, 1]]
    assert topic(image).reassignments == {}


def test_a_target_equal_to_the_replicas_changes_nothing() -> None:
    image = image_with([1, 2])
    reassign(image, (0, [1, 2]))
    assert topic(image).replicas == [[1, 2]]
    assert topic(image).reassignments == {}


def test_a_new_order_of_the_same_replicas_only_changes_the_preferred_leader() -> None:
    image = image_with([1, 2, 3])
    reassign(image, (0, [3, 1, 2]))
    assert topic(image).replicas == [[3, 1, 2]]
    assert topic(image).reassignments == {}


def test_a_new_target_keeps_the_first_original_and_every_hosting_broker() -> None:
    image = image_with([1])
    reassign(image, (0, [2, 3]))
    reassign(image, (0, [4]))
    # Broker 2 and 3 may be voters by now: they keep their replicas until it is done.
    assert topic(image).replicas == [[4, 2, 3, 1]]
    assert topic(image).reassignments[0] == Reassignment((1,), (4,))
    done(image, 0, [4])
    assert topic(image).replicas == [[4]]


def test_cancel_moves_back_to_the_original_and_keeps_the_others_until_done() -> None:
    image = image_with([1, 2, 3])
    reassign(image, (0, [2, 3, 4]))
    cancel(image, 0)
    assert topic(image).replicas == [[1, 2, 3, 4]]
    assert topic(image).reassignments[0] == Reassignment((1, 2, 3), (1, 2, 3), cancelled=True)
    done(image, 0, [1, 2, 3])
    assert topic(image).replicas == [[1, 2, 3]]
    assert topic(image).reassignments == {}


def test_a_cancel_without_a_reassignment_changes_nothing() -> None:
    image = image_with([1, 2])
    cancel(image, 0, 5)
    assert topic(image).replicas == [[1, 2]]
    assert topic(image).reassignments == {}


def test_a_stale_done_is_ignored() -> None:
    image = image_with([1])
    reassign(image, (0, [2]))
    reassign(image, (0, [3]))
    done(image, 0, [2])  # decided for the replaced target
    assert topic(image).replicas == [[3, 2, 1]]
    done(image, 0, [3])
    done(image, 0, [3])  # twice: the second is stale too
    assert topic(image).replicas == [[3]]


def test_records_for_unknown_topics_and_partitions_are_skipped() -> None:
    image = image_with([1])
    other = str(uuid.UUID(int=99))
    image.apply({"type": "reassign_partitions", "id": other,
                 "partitions": [{"partition": 0, "target": [2]}]})  # fmt: skip
    image.apply({"type": "cancel_reassignments", "id": other, "partitions": [0]})
    image.apply({"type": "reassignment_done", "id": other, "partition": 0, "replicas": [2]})
    reassign(image, (3, [2]))
    assert topic(image).replicas == [[1]]
    assert topic(image).reassignments == {}


def test_elect_preferred_has_no_image_state() -> None:
    image = image_with([1, 2])
    image.apply({"type": "elect_preferred", "id": str(TOPIC_ID), "partitions": [0]})
    assert topic(image).replicas == [[1, 2]]
    assert topic(image).reassignments == {}


def test_a_deleted_topic_takes_its_reassignments_with_it() -> None:
    image = image_with([1])
    reassign(image, (0, [2]))
    image.apply({"type": "remove_topic", "id": str(TOPIC_ID)})
    assert "t" not in image.topics
    reassign(image, (0, [3]))  # a late record of the deleted topic
    assert image.topics_by_id == {}


# -- the controller's checks and records ------------------------------------------------------


def refused(call, *args) -> ErrorCode:
    with pytest.raises(ReassignmentRefused) as caught:
        call(*args)
    return caught.value.code


def test_targets_are_checked_as_kafka_does() -> None:
    image = image_with([1, 2], brokers=(1, 2, 3))
    t = topic(image)
    assert refused(check_target, image, t, 0, ()) == ErrorCode.invalid_replica_assignment
    assert refused(check_target, image, t, 0, (1, 1)) == ErrorCode.invalid_replica_assignment
    assert refused(check_target, image, t, 0, (1, 9)) == ErrorCode.invalid_replica_assignment
    assert (
        refused(check_target, image, t, 0, (1, 2, 3), False) == ErrorCode.invalid_replication_factor
    )
    check_target(image, t, 0, (3, 1), False)
    check_target(image, t, 0, (3,))
    # A fenced broker is still registered.
    image.apply({"type": "broker_fenced", "id": 3, "fenced": True})
    check_target(image, t, 0, (3,))


def test_unknown_partitions_and_cancels_without_a_reassignment_are_refused() -> None:
    image = image_with([1, 2])
    assert refused(check_partition, None, "x", 0) == ErrorCode.unknown_topic_or_partition
    assert refused(check_partition, topic(image), "t", 1) == ErrorCode.unknown_topic_or_partition
    assert refused(check_partition, topic(image), "t", -1) == ErrorCode.unknown_topic_or_partition
    assert check_partition(topic(image), "t", 0) is topic(image)
    assert refused(check_cancel, topic(image), 0) == ErrorCode.no_reassignment_in_progress
    reassign(image, (0, [3]))
    check_cancel(topic(image), 0)
    cancel(image, 0)
    assert refused(check_cancel, topic(image), 0) == ErrorCode.no_reassignment_in_progress


def test_the_replication_factor_check_counts_the_original_replicas() -> None:
    image = image_with([1, 2])
    reassign(image, (0, [3, 4]))  # four replicas meanwhile
    check_target(image, topic(image), 0, (2, 4), False)


def test_done_once_the_leader_reports_exactly_the_target_in_sync() -> None:
    image = image_with([1, 2, 3])
    reassign(image, (0, [2, 3, 4]))
    t = topic(image)
    assert done_record(t, 0, [1, 2, 3]) is None
    assert done_record(t, 0, [1, 2, 3, 4]) is None
    assert done_record(t, 0, [4, 3, 2]) == {
        "type": "reassignment_done", "id": str(TOPIC_ID), "partition": 0, "replicas": [2, 3, 4],
    }  # fmt: skip
    assert done_record(t, 1, [1]) is None  # no such reassignment


def test_reassignments_in_sync_already_are_done_at_once() -> None:
    image = image_with([1, 2, 3], [1, 2, 3])
    report_isr(image, 0, 1, [1, 2])  # 3 fell behind
    report_isr(image, 1, 1, [1, 2, 3])
    reassign(image, (0, [1, 2]), (1, [1, 2]))
    assert [r["partition"] for r in done_already(topic(image), [0, 1])] == [0]
    # A cancel before the new replica joined: the original ones are in sync.
    reassign(image, (1, [1, 2, 3, 4]))
    cancel(image, 1)
    assert [r["partition"] for r in done_already(topic(image), [1])] == [1]


def test_ongoing_shows_adding_and_removing_replicas_but_not_cancelled_ones() -> None:
    image = image_with([1, 2, 3], [1], [2])
    reassign(image, (0, [2, 3, 4]), (1, [2, 3]), (2, [3]))
    cancel(image, 2)
    assert ongoing(topic(image)) == [
        {"partition_index": 0, "replicas": [2, 3, 4, 1], "adding_replicas": [4],
         "removing_replicas": [1]},
        {"partition_index": 1, "replicas": [2, 3, 1], "adding_replicas": [2, 3],
         "removing_replicas": [1]},
    ]  # fmt: skip
    assert [e["partition_index"] for e in ongoing(topic(image), [1, 5])] == [1]


def test_reassign_record_lists_targets_by_partition() -> None:
    image = image_with([1], [1])
    record = reassign_record(topic(image), {1: (3,), 0: (2, 3)})
    assert record == {
        "type": "reassign_partitions", "id": str(TOPIC_ID),
        "partitions": [{"partition": 0, "target": [2, 3]}, {"partition": 1, "target": [3]}],
    }  # fmt: skip
