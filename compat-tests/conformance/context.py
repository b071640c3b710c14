"""What a scenario gets: the broker's address, a way to restart it, and the recorder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from observe import Recorder


@dataclass
class Context:
    bootstrap: str
    restart: Callable[[], None]  # SIGTERM, then start on the same data dir and port
    base_ts: int  # the run's record timestamps (ms): the same on both brokers
    recorder: Recorder

    def record(self, step: str, value: Any) -> Any:
        return self.recorder.record(step, value)
