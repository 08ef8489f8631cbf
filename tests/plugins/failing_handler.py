"""A LEMS file handler plug-in that always fails: a back end that is down.

Used to show that a failing handler costs one ``.30.`` section (or an NL
summary's NO ANSWER), never the switch.
"""

from __future__ import annotations

from collections.abc import Sequence

from lems.files.handlers import HandlerContext
from lems.wire.message import Message, Record


class BackendDown(RuntimeError):
    pass


class FailingHandler:
    def __init__(self, context: HandlerContext) -> None:
        self.reason = str(context.options.get("reason", "state back end not responding"))
        self.calls = 0

    def inquire(self, msg: Message, file: str, record_set: str) -> Sequence[Record]:
        self.calls += 1
        raise BackendDown(self.reason)


class SlowHandler:
    """Answers, but late: each inquiry moves the switch clock on by ``seconds`` (a FakeClock in tests)."""

    def __init__(self, context: HandlerContext) -> None:
        self.clock = context.clock
        self.seconds = float(context.options.get("seconds", 5))

    def inquire(self, msg: Message, file: str, record_set: str) -> Sequence[Record]:
        self.clock.advance(self.seconds)
        return []
