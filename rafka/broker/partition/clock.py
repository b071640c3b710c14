"""The partition's two clocks, shared with the broker's other parts: the wall clock stamps
records and decides retention and expiry; the Raft state machines' timers run on a monotonic one.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def raft_clock_ms() -> int:
    """The Raft state machines' clock: monotonic, so a wall-clock step never fires a timer."""
    return time.monotonic_ns() // 1_000_000
