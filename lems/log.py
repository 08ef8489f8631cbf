"""structlog set-up: JSON lines for people and log shippers (not the audit journal)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional, TextIO

import structlog

_configured_file: Optional[TextIO] = None


def configure(path: Optional[Path] = None, echo: bool = False) -> None:
    """Write JSON lines to ``path`` (and a short form to stderr when ``echo``)."""
    global _configured_file
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if _configured_file is not None:
            _configured_file.close()
        _configured_file = path.open("a", encoding="utf-8", buffering=1)
    json_out = _configured_file
    human = sys.stderr if echo else None

    def emit(_logger, _name, event_dict):
        return event_dict

    class Sink:
        def msg(self, **event):
            rendered = structlog.processors.JSONRenderer()(None, "", dict(event))
            if json_out is not None:
                json_out.write(rendered + "\n")
            if human is not None and event.get("level") in ("warning", "error", "critical") or \
                    (human is not None and event.get("event") in ECHOED):
                human.write(f"{event.get('timestamp', '')} {event.get('level', '')}: {event.get('event')} "
                            + " ".join(f"{k}={v}" for k, v in event.items()
                                       if k not in ("event", "level", "timestamp", "logger")) + "\n")

        debug = info = warning = warn = error = critical = exception = msg

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            emit,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *args: Sink(),
        cache_logger_on_first_use=False,
    )


# Events worth a line on the operator's screen when the switch runs in the foreground.
ECHOED = frozenset({"switch listening", "switch stopped", "console listening"})
