"""Logging: structlog everywhere, key=value on a terminal, JSON lines otherwise (containers).

Both structlog loggers and the standard library's (asyncio, third-party code) end in one stderr
handler, so every line has the same shape. RAFKA_LOG_FORMAT=json|console overrides the choice.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger, Processor

LOG_FORMAT_ENV = "RAFKA_LOG_FORMAT"
_LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}


def parse_level(level: str | int) -> int:
    """A logging level from a name (any case; WARN and FATAL accepted) or number."""
    if isinstance(level, int):
        return level
    name = level.strip().upper()
    name = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name, name)
    if name not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of debug, info, warning, error")
    return logging.getLevelNamesMapping()[name]


def _use_json(json: bool | None, stream: TextIO) -> bool:
    choice = os.environ.get(LOG_FORMAT_ENV, "").strip().lower()
    if choice == "json":
        return True
    if choice == "console":
        return False
    if json is not None:
        return json
    return not stream.isatty()


def configure_logging(
    level: str | int = "INFO", json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to `stream` (default stderr) at `level`.

    json=None picks JSON unless the stream is a terminal; RAFKA_LOG_FORMAT wins over both.
    Safe to call again (tests, reconfiguration): it replaces its own handler.
    """
    numeric_level = parse_level(level)
    stream = sys.stderr if stream is None else stream
    as_json = _use_json(json, stream)

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if as_json:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name("rafka")

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "rafka"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)

    structlog.configure(
        processors=[
            structlog.stdlib.PositionalArgumentsFormatter(),
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # Drops calls below the level before any processor runs: cheap debug lines on hot paths.
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # Loggers bind on first use, so configure before anything logs (the CLI does it first).
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None, **initial_values: Any) -> FilteringBoundLogger:
    """A structlog logger named `name` (use __name__), optionally with bound key/values."""
    logger: FilteringBoundLogger = structlog.get_logger(name, **initial_values)
    return logger
