"""Share-group configs applied per group (KIP-932, Kafka 4.3.1's GroupConfig): the checks of an
alteration, a group's settings over the broker's, their use by membership and share partitions
(read at each use, so a change reaches loaded share partitions), and read_committed's filtering
of aborted transactions."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from rafka.broker import group_configs
from rafka.broker.config import BrokerConfig
from rafka.broker.config_catalog import ConfigRequestError
from rafka.broker.share.committed import committed_spans
from rafka.broker.share.group import ShareGroups
from rafka.broker.share.partition_state import BatchSpan, RecordState, SharePartitionState
from rafka.broker.share.service import ShareConfig, ShareService
from rafka.protocol.errors import ErrorCode
from rafka.protocol.records import ControlRecordType, build_batch, build_control_batch

DEFAULTS = ShareConfig(record_lock_duration_ms=30_000, delivery_count_limit=5)


def node(group_configs_: dict[str, dict[str, str]] | None = None, **broker: object) -> Any:
    """What group_configs reads of a broker: its config and the applied metadata image."""
    image = SimpleNamespace(broker_configs={}, group_configs=group_configs_ or {})
    return SimpleNamespace(
        config=BrokerConfig.from_dict(broker),
        node_id=1,
        metadata=SimpleNamespace(image=image),
        topic_lock=asyncio.Lock(),
    )


def alter(target: Any, configs: dict[str, str]) -> None:
    asyncio.run(group_configs.alter(target, "g", lambda _: dict(configs), validate_only=True))


def refusal(target: Any, configs: dict[str, str]) -> str:
    with pytest.raises(ConfigRequestError) as refused:
        alter(target, configs)
    assert refused.value.code == ErrorCode.invalid_config
    return refused.value.message


# -- checks --------------------------------------------------------------------------------------


def test_applied_share_configs_are_accepted_within_kafkas_bounds() -> None:
    alter(
        node(),
        {
            "share.session.timeout.ms": "45000",
            "share.heartbeat.interval.ms": "15000",
            "share.record.lock.duration.ms": "15000",
            "share.delivery.count.limit": "2",
            "share.partition.max.record.locks": "100",
            "share.isolation.level": "read_committed",
            "share.renew.acknowledge.enable": "false",
            "share.auto.offset.reset": "earliest",
        },
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("share.session.timeout.ms", "0", "Value must be at least 1"),
        (
            "share.session.timeout.ms",
            "44999",
            "share.session.timeout.ms must be greater than or equal to "
            "group.share.min.session.timeout.ms",
        ),
        (
            "share.heartbeat.interval.ms",
            "15001",
            "share.heartbeat.interval.ms must be less than or equal to "
            "group.share.max.heartbeat.interval.ms",
        ),
        (
            "share.record.lock.duration.ms",
            "14999",
            "share.record.lock.duration.ms must be greater than or equal to "
            "group.share.min.record.lock.duration.ms",
        ),
        ("share.delivery.count.limit", "1", "Value must be at least 2"),
        (
            "share.delivery.count.limit",
            "11",
            "share.delivery.count.limit must be less than or equal to "
            "group.share.max.delivery.count.limit",
        ),
        ("share.partition.max.record.locks", "99", "Value must be at least 100"),
        (
            "share.partition.max.record.locks",
            "4001",
            "share.partition.max.record.locks must be less than or equal to "
            "group.share.max.partition.max.record.locks",
        ),
        ("share.isolation.level", "serializable", "String must be one of"),
    ],
)
def test_out_of_bounds_values_are_refused_as_kafka_does(name: str, value: str, message: str):
    assert message in refusal(node(), {name: value})


def test_session_timeout_must_exceed_the_heartbeat_interval() -> None:
    # The broker's own default takes part where the group sets only one of the two.
    slow = node(**{"group.share.heartbeat.interval.ms": 50_000})
    assert refusal(slow, {"share.session.timeout.ms": "45000"}) == (
        "share.session.timeout.ms must be greater than share.heartbeat.interval.ms"
    )
    alter(slow, {"share.session.timeout.ms": "60000"})
    # A broker default rafka lets lie outside Kafka's bounds is not checked on its own.
    alter(node(**{"group.share.heartbeat.interval.ms": 500}), {"share.auto.offset.reset": "latest"})


@pytest.mark.parametrize(
    "name",
    [
        "consumer.assignment.interval.ms",
        "share.assignment.interval.ms",
        "streams.num.standby.replicas",
    ],
)
def test_configs_rafka_does_not_apply_are_refused(name: str) -> None:
    value = group_configs.GROUP_CONFIGS[name].default
    assert refusal(node(), {name: value}).startswith(
        f"rafka does not implement the group config {name} yet"
    )


def test_consumer_session_timeout_and_heartbeat_interval_are_accepted() -> None:
    target = node(**{"group.consumer.min.session.timeout.ms": 1000})
    alter(target, {"consumer.session.timeout.ms": "6000", "consumer.heartbeat.interval.ms": "5000"})


# -- settings ------------------------------------------------------------------------------------


def test_a_groups_settings_are_its_overrides_over_the_broker_defaults() -> None:
    overrides = {
        "g": {
            "share.record.lock.duration.ms": "15000",
            "share.delivery.count.limit": "2",
            "share.session.timeout.ms": "50000",
            "share.heartbeat.interval.ms": "7000",
            "share.partition.max.record.locks": "100",
            "share.isolation.level": " read_committed",
            "share.renew.acknowledge.enable": "FALSE",
        }
    }
    target = node(overrides)
    settings = group_configs.ShareGroupSettings(target, DEFAULTS)
    g = settings("g")
    assert (
        g.record_lock_duration_ms,
        g.delivery_count_limit,
        g.session_timeout_ms,
        g.heartbeat_interval_ms,
        g.partition_max_record_locks,
        g.read_committed,
        g.renew_acknowledge_enabled,
    ) == (15_000, 2, 50_000, 7_000, 100, True, False)
    assert settings("g") is g  # evaluated once while the overrides stay
    assert settings("other") is DEFAULTS
    # A metadata record replaces the group's overrides: the next use sees them.
    target.metadata.image.group_configs["g"] = {"share.delivery.count.limit": "3"}
    assert settings("g").delivery_count_limit == 3
    assert settings("g").record_lock_duration_ms == 30_000
    del target.metadata.image.group_configs["g"]
    assert settings("g") is DEFAULTS


def test_a_heartbeat_renews_the_session_for_the_given_timeout() -> None:
    groups = ShareGroups(session_timeout_ms=45_000, heartbeat_interval_ms=5_000, max_size=10)
    lookup = {"t": (uuid.uuid4(), 1)}.get

    def beat(member: str, epoch: int, now: int, timeout: int | None) -> int:
        return groups.heartbeat(
            group_id="g", member_id=member, member_epoch=epoch, rack_id=None,
            subscribed_topic_names=("t",) if epoch == 0 else None, client_id=member,
            client_host="/127.0.0.1", lookup=lookup, now_ms=now, session_timeout_ms=timeout,
        ).member_epoch  # fmt: skip

    a_epoch = beat("a", 0, 0, None)
    beat("b", 0, 0, 10_000)
    assert groups.next_deadline() == 10_000
    assert groups.expire(10_000) == [("g", "b")]
    beat("a", a_epoch, 1_000, 3_000)  # a changed config reaches a member at its next heartbeat
    assert groups.expire(4_000) == [("g", "a")]


def test_loaded_share_partitions_follow_their_groups_settings() -> None:
    service = ShareService(DEFAULTS, clock=lambda: 0)
    limits = {"g": ShareConfig(record_lock_duration_ms=15_000, delivery_count_limit=2)}
    service.group_settings = lambda group_id: limits.get(group_id, DEFAULTS)
    key = ("g", uuid.uuid4(), 0)
    assert asyncio.run(service.load(key, 0, lambda: 0)) is ErrorCode.none
    state = service.partition(key)
    assert state is not None
    assert (state.lock_duration_ms, state.delivery_limit) == (15_000, 2)
    limits["g"] = ShareConfig(record_lock_duration_ms=20_000, delivery_count_limit=3)
    state = service.partition(key)
    assert state is not None
    assert (state.lock_duration_ms, state.delivery_limit) == (20_000, 3)
    acquired = state.acquire("m", [BatchSpan(0, 0)], 1, 10, now_ms=0)
    assert state.next_deadline() == 20_000 and acquired[0].delivery_count == 1


# -- read_committed ------------------------------------------------------------------------------


def _txn(base: int, producer: int, count: int, transactional: bool = True) -> bytes:
    return build_batch(
        [(None, f"{producer}-{i}".encode(), (), 0) for i in range(count)],
        base_offset=base,
        producer_id=producer,
        producer_epoch=0,
        base_sequence=0,
        is_transactional=transactional,
    )


def _marker(base: int, producer: int, kind: ControlRecordType) -> bytes:
    return build_control_batch(
        kind, timestamp=0, base_offset=base, producer_id=producer, producer_epoch=0
    )


def test_aborted_transactions_are_marked_until_their_abort_marker() -> None:
    data = b"".join(
        [
            _txn(0, 7, 2),  # 0-1: producer 7, aborted
            _txn(2, 8, 2),  # 2-3: producer 8, committed
            _txn(4, 0, 1, transactional=False),  # 4: plain
            _marker(5, 7, ControlRecordType.ABORT),  # 5
            _marker(6, 8, ControlRecordType.COMMIT),  # 6
            _txn(7, 7, 1),  # 7: producer 7's next transaction, committed
            _marker(8, 7, ControlRecordType.COMMIT),  # 8
        ]
    )
    spans = committed_spans(data, [(7, 0)])
    assert [(s.base_offset, s.last_offset, s.is_control, s.aborted) for s in spans] == [
        (0, 1, False, True),
        (2, 3, False, False),
        (4, 4, False, False),
        (5, 5, True, False),
        (6, 6, True, False),
        (7, 7, False, False),
        (8, 8, True, False),
    ]
    state = SharePartitionState(0, lock_duration_ms=1000, delivery_limit=5, max_in_flight=100)
    acquired = state.acquire("m", spans, 9, 100, now_ms=0)
    assert [(r.first_offset, r.last_offset) for r in acquired] == [(2, 4), (7, 7)]
    assert state.state_of(0) is None  # archived, and the start offset moved past it
    assert state.take_changes()[5] == (RecordState.ARCHIVED, 0)


def test_a_released_record_of_an_aborted_transaction_is_archived_when_next_read() -> None:
    state = SharePartitionState(0, lock_duration_ms=1000, delivery_limit=5, max_in_flight=100)
    state.acquire("m", [BatchSpan(0, 1)], 2, 100, now_ms=0)  # read_uncommitted
    state.expire(1000)
    assert state.state_of(0) is RecordState.AVAILABLE
    assert state.acquire("m", [BatchSpan(0, 1, aborted=True)], 2, 100, now_ms=1000) == []
    assert state.start_offset == 2
