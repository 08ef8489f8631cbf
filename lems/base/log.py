"""structlog set-up: JSON lines for people and log shippers (not the audit journal).

``lems serve`` writes every event to the home's log file as one JSON object per
line (structlog's own ``JSONRenderer`` and ``WriteLoggerFactory``), with the
context a connection's logger is bound with (terminal, ORI, operator, session)
and anything bound with ``structlog.contextvars``; warnings and errors are also
echoed to stderr, one readable line each, when asked.  The log file is
owner-only (0600 in a 0700 directory) whatever the umask: it names terminals,
operators and addresses.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

import structlog

from lems.base.private import open_private, private_dir

ECHOED = frozenset({"warning", "error", "critical"})
_open: Optional[TextIO] = None


class EchoToStderr:
    """A processor: warnings and errors to stderr as ``level: event key=value ...``."""

    def __call__(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("level") in ECHOED:
            details = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "level", "timestamp"))
            # sys.stderr looked up on each event, so a redirected stderr (pytest's capsys) is honoured.
            sys.stderr.write(f"{event.get('level')}: {event.get('event')} {details}\n")
        return event


def configure(path: Optional[Path] = None, echo: bool = False) -> None:
    """Log to ``path`` (JSON lines, appended; nowhere when None), echoing warnings to stderr if ``echo``."""
    global _open
    if _open is not None:
        _open.close()
        _open = None
    factory: Any
    if path is not None:
        private_dir(path.parent)
        _open = open_private(path, "a")
        factory = structlog.WriteLoggerFactory(file=_open)
    else:
        factory = structlog.ReturnLoggerFactory()  # renders and drops
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *([EchoToStderr()] if echo else []),
            structlog.processors.JSONRenderer(default=str),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
