"""Group configs' value checks that need no broker: share.auto.offset.reset's formats (Kafka's
ShareGroupAutoOffsetResetStrategy) and ISO-8601 durations as Java's Duration.parse reads them;
which configs rafka applies. The checks of whole alterations and the applied settings are in
test_share_group_configs.py."""

from __future__ import annotations

import pytest

from rafka.broker.group_configs import (
    APPLIED,
    CONSUMER_APPLIED,
    GROUP_CONFIGS,
    SHARE_AUTO_OFFSET_RESET,
    SHARE_INT_FIELDS,
    parse_duration,
)
from rafka.broker.share.service import ShareConfig


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT1H", 3600),
        ("P1D", 86400),
        ("pt30m", 1800),
        ("PT0S", 0),
        ("PT1.5S", 1.5),
        ("P1DT2H3M4.5S", 93784.5),
        ("-PT1H", -3600),
        ("PT1H-30M", 1800),
        ("P", None),
        ("PT", None),
        ("P1DT", None),
        ("1H", None),
        ("", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("earliest", True),
        ("latest", True),
        ("by_duration:PT1H", True),
        ("by_duration:P1D", True),
        ("by_duration:PT0S", True),
        ("by_duration:-PT1H", False),  # negative durations are refused
        ("by_duration:P-1D", False),
        ("by_duration:", False),
        ("by_duration:xx", False),
        ("EARLIEST", False),
        ("", False),
        ("none", False),
    ],
)
def test_share_auto_offset_reset_values(value: str, valid: bool) -> None:
    check = GROUP_CONFIGS[SHARE_AUTO_OFFSET_RESET].check
    assert check is not None
    error = check(value)
    assert (error is None) == valid, error
    if not valid:
        assert error == (
            f"Invalid value `{value}` for configuration share.auto.offset.reset. The value must "
            "be either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."
        )


def test_every_share_group_config_but_the_assignment_interval_is_applied() -> None:
    shares = {name for name in GROUP_CONFIGS if name.startswith("share.")}
    assert shares - APPLIED == {"share.assignment.interval.ms"}
    # Of consumer.* only the session timeout and heartbeat interval apply; streams.* are refused.
    assert APPLIED - shares == CONSUMER_APPLIED
    assert CONSUMER_APPLIED == {"consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"}
    fields = {f.name for f in ShareConfig.__dataclass_fields__.values()}
    assert set(SHARE_INT_FIELDS.values()) <= fields
    for name, field in SHARE_INT_FIELDS.items():
        # The broker key each overrides is the one ShareConfig's field comes from.
        assert GROUP_CONFIGS[name].synonym == "group." + name
        assert field in fields
