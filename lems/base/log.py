"""structlog set-up: JSON lines for people and log shippers (not the audit journal).

``lems serve`` writes every event to the home's log file as one JSON object per
line; warnings and errors are also echoed to stderr when asked.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

import structlog


class JsonLinesSink:
    """The final logger: one JSON line per event, optionally echoing warnings to stderr."""

    def __init__(self, out: Optional[TextIO], echo: Optional[TextIO]) -> None:
        self.out = out
        self.echo = echo

    def msg(self, **event: Any) -> None:
        if self.out is not None:
            self.out.write(json.dumps(event, default=str) + "\n")
        if self.echo is not None and event.get("level") in ("warning", "error", "critical"):
            details = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "level", "timestamp"))
            self.echo.write(f"{event.get('level')}: {event.get('event')} {details}\n")

    debug = info = warning = warn = error = critical = exception = msg


_open: Optional[TextIO] = None


def configure(path: Optional[Path] = None, echo: bool = False) -> None:
    global _open
    if _open is not None:
        _open.close()
        _open = None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _open = path.open("a", encoding="utf-8", buffering=1)
    sink = JsonLinesSink(_open, sys.stderr if echo else None)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            # The last processor hands the event dict to the sink as keyword arguments.
            lambda _logger, _name, event: event,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *args: sink,
        cache_logger_on_first_use=False,
    )
