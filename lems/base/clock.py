"""Time as a parameter.

Every rule that depends on time (locks, idle timers, hit confirmation, agreement
dates, message windows) asks a clock instead of the system, so tests drive time.
"""

from __future__ import annotations

import datetime as _dt
import time as _time

import attrs

UTC = _dt.timezone.utc


class SystemClock:
    """Wall-clock UTC time."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(UTC)

    def monotonic(self) -> float:
        return _time.monotonic()


@attrs.define
class FakeClock:
    """A clock that only moves when told to (tests)."""

    current: _dt.datetime = attrs.field(factory=lambda: _dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC))
    mono: float = 1000.0

    def now(self) -> _dt.datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.current += _dt.timedelta(seconds=seconds)
        self.mono += seconds


def stamp(moment: _dt.datetime) -> str:
    """CCYYMMDDhhmmssff in UTC, the output header's TS field."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 10000:02d}"
