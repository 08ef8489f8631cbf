"""Time as a parameter.

Every rule that depends on time (locks, idle timers, hit confirmation, agreement
dates, message windows) asks a clock instead of the system, so tests drive time.

Three clocks: ``SystemClock`` (a switch whose home does not say otherwise),
``EmulatedClock`` (the system clock moved forward by an offset that only grows:
a test system's ``[clock] adjustable = true``, PROTOCOL.md 8, advanced from the
console) and ``FakeClock`` (unit tests, moved by hand).
"""

from __future__ import annotations

import datetime as _dt
import re as _re
import time as _time

import attrs

UTC = _dt.timezone.utc


class SystemClock:
    """Wall-clock UTC time."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(UTC)

    def monotonic(self) -> float:
        return _time.monotonic()


# The most one ``clock advance`` may move switch time (a bigger jump is several advances).
MAX_ADVANCE = _dt.timedelta(days=400)


class ClockError(ValueError):
    """An advance refused: the message says why."""


class EmulatedClock:
    """Switch time: another clock (the system's) plus an offset, both ``now()`` and ``monotonic()``.

    ``advance`` moves it forward and never back: the offset only grows, and
    ``floor`` (the switch time the last advance reached) is the earliest time
    ``now()`` can say, so a switch restarted on a system clock that was set back
    still resumes where it was.  ``adjustable`` False: a clock that keeps the
    offset an earlier adjustable run left but cannot be advanced any more.
    """

    def __init__(self, base: object = None, offset: float = 0.0, floor: _dt.datetime | None = None,
                 adjustable: bool = True) -> None:
        if offset < 0:
            raise ClockError("an emulated clock is never behind the system clock")
        self.base = base if base is not None else SystemClock()
        self.offset = float(offset)
        self.floor = floor
        self.adjustable = adjustable

    def now(self) -> _dt.datetime:
        moment = self.base.now() + _dt.timedelta(seconds=self.offset)  # type: ignore[attr-defined]
        return max(moment, self.floor) if self.floor is not None else moment

    def monotonic(self) -> float:
        return self.base.monotonic() + self.offset  # type: ignore[attr-defined]

    def ahead(self) -> _dt.timedelta:
        """How far switch time is ahead of the clock it wraps (the system clock)."""
        base = self.base.now()  # type: ignore[attr-defined]
        shift = _dt.timedelta(seconds=self.offset)
        return max(shift, self.floor - base) if self.floor is not None else shift

    def check(self, by: _dt.timedelta) -> None:
        """Raise ClockError, in the console's words, when ``by`` is not an advance this clock may make."""
        if not self.adjustable:
            raise ClockError("THE CLOCK IS NOT ADJUSTABLE ON THIS SWITCH")
        if by < _dt.timedelta(0):
            raise ClockError("SWITCH TIME NEVER MOVES BACKWARDS")
        if by < _dt.timedelta(minutes=1):
            raise ClockError("NOTHING TO ADVANCE - GIVE 1 MINUTE OR MORE")
        if by > MAX_ADVANCE:
            raise ClockError(f"AT MOST {MAX_ADVANCE.days} DAYS IN ONE ADVANCE - ADVANCE AGAIN FOR MORE")

    def advance(self, by: _dt.timedelta) -> tuple[_dt.datetime, _dt.datetime]:
        """Move switch time forward by ``by``; (before, after)."""
        self.check(by)
        before = self.now()
        after = before + by
        self.offset += by.total_seconds()
        self.floor = after
        return before, after


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


UNITS = {"m": 60, "h": 3600, "d": 86400}
_AMOUNT = _re.compile(r"^([+-]?\d{1,9})([mhd])$", _re.IGNORECASE)


def parse_advance(text: str) -> _dt.timedelta:
    """``31m``, ``2h``, ``60d`` (a sign is read, so that ``-5m`` is refused for what it is);
    ValueError for anything else."""
    m = _AMOUNT.match(text.strip())
    if m is None:
        raise ValueError(f"not an amount of time: {text!r} (say <N>m, <N>h or <N>d)")
    return _dt.timedelta(seconds=int(m.group(1)) * UNITS[m.group(2).lower()])


def span(delta: _dt.timedelta) -> str:
    """A duration the way the console says it: ``31m``, ``1d 2h 31m``, ``400d``, ``0m``."""
    seconds = int(round(delta.total_seconds()))
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + (" ".join(parts) or "0m")
