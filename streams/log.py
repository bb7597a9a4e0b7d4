"""Logging: structlog configured once per process.

JSON (orjson) when stderr is not a TTY, a readable console renderer when it is;
contextvars merged into every line; ISO UTC timestamps. Event names are snake_case
past tense; fixed field names: stream, group, consumer, entry_id, event_type,
notification_id, user, attempt, duration_ms.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

_configured = False
_generation = 0  # bumped by configure_logging; lazy loggers rebind when it changes


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and stdlib logging; safe to call more than once."""
    global _configured, _generation
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer()
    )
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line: lines of several processes on one stream never interleave.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
    _configured = True
    _generation += 1


class _LazyLogger:
    """A ``logger=name`` bound logger, rebuilt after each :func:`configure_logging`.

    Module-level loggers are made at import time, before logging is configured;
    binding then would freeze structlog's default (console) configuration.
    """

    __slots__ = ("_bound", "_generation", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._bound: Any = None
        self._generation = -1

    def __getattr__(self, attr: str) -> Any:
        if self._generation != _generation:
            self._bound = structlog.get_logger(self._name).bind(logger=self._name)
            self._generation = _generation
        return getattr(self._bound, attr)


def get_logger(name: str) -> Any:
    """A structlog logger bound with ``logger=name`` (follows later configuration)."""
    return _LazyLogger(name)
