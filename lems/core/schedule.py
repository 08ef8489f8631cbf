"""Scheduled work on switch time: daily at a local time, every N days, every N months.

Features register a ``Job`` with the switch's ``Scheduler`` (``switch.schedule``);
every tick (once a second, and at once after a console ``clock advance``) the
scheduler runs each job whose next time has come, as PROTOCOL.md 8 asks: "every
time-based rule runs on switch time and fires as if that time had passed".

When a job last ran is kept in the store (table ``schedule_run``), so a restart
neither runs a job twice nor forgets one that fell due while the switch was down:
a job that fell due several times while time jumped runs once, at the current
time (a daily transmission after a ten-day advance is one transmission of ten
days of changes, not ten).  A job seen for the first time is anchored at the
current time: its first run is its first due time after that.

The same rows are what a multi-node store (PROTOCOL.md 12) needs to run a job
exactly once across the nodes: ``claim`` is the one place that decides.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any, Callable, Optional, Protocol
from zoneinfo import ZoneInfo

import attrs
import structlog

log = structlog.get_logger("lems.core.schedule")


class Rule(Protocol):
    def next_after(self, last: dt.datetime) -> dt.datetime:
        """The first due time after ``last`` (both aware datetimes)."""


@attrs.frozen
class DailyAt:
    """Once a day at ``hh:mm`` local time in ``zone``."""

    hour: int
    minute: int
    zone: dt.tzinfo

    @classmethod
    def parse(cls, text: str, zone: dt.tzinfo | str) -> "DailyAt":
        """``"02:00"``; ValueError for anything that is not a time of day."""
        try:
            hour, minute = (int(part) for part in text.split(":"))
        except ValueError:
            raise ValueError(f"not a time of day: {text!r} (say HH:MM)") from None
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError(f"not a time of day: {text!r} (say HH:MM)")
        return cls(hour, minute, ZoneInfo(zone) if isinstance(zone, str) else zone)

    def next_after(self, last: dt.datetime) -> dt.datetime:
        local = last.astimezone(self.zone)
        due = local.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        if due <= local:
            due = (local + dt.timedelta(days=1)).replace(hour=self.hour, minute=self.minute,
                                                         second=0, microsecond=0)
        return due


@attrs.frozen
class EveryDays:
    """Every ``days`` days after the last run."""

    days: float

    def next_after(self, last: dt.datetime) -> dt.datetime:
        return last + dt.timedelta(days=self.days)


@attrs.frozen
class EveryMonths:
    """Every ``months`` calendar months after the last run (the day clamped to the month's length)."""

    months: int

    def next_after(self, last: dt.datetime) -> dt.datetime:
        month0 = last.month - 1 + self.months
        year, month = last.year + month0 // 12, month0 % 12 + 1
        length = calendar.monthrange(year, month)[1]
        return last.replace(year=year, month=month, day=min(last.day, length))


@attrs.define
class Job:
    name: str
    rule: Rule
    run: Callable[[dt.datetime], Any]


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat()


class Scheduler:
    """The switch's scheduled jobs, their last runs in ``store`` (a lems.store.sqlite.Store)."""

    def __init__(self, store: Any, clock: Any) -> None:
        self.store = store
        self.clock = clock
        self.jobs: dict[str, Job] = {}

    def add(self, name: str, rule: Rule, run: Callable[[dt.datetime], Any]) -> Job:
        """Register (or replace, on reload) a job; anchored now when the store has never seen it."""
        job = Job(name, rule, run)
        self.jobs[name] = job
        conn = self.store.write()
        conn.execute("INSERT OR IGNORE INTO schedule_run (job, last_run) VALUES (?, ?)",
                     (name, _iso(self.clock.now())))
        return job

    def last_run(self, name: str) -> Optional[dt.datetime]:
        row = self.store.conn.execute("SELECT last_run FROM schedule_run WHERE job = ?", (name,)).fetchone()
        return dt.datetime.fromisoformat(row[0]) if row else None

    def next_run(self, name: str) -> Optional[dt.datetime]:
        last = self.last_run(name)
        return self.jobs[name].rule.next_after(last) if last is not None and name in self.jobs else None

    def claim(self, name: str, now: dt.datetime) -> bool:
        """Mark ``name`` as run at ``now`` if it is due; True when this caller is to run it."""
        last = self.last_run(name)
        if last is None or now < self.jobs[name].rule.next_after(last):
            return False
        self.store.write().execute("UPDATE schedule_run SET last_run = ? WHERE job = ?", (_iso(now), name))
        return True

    def run_now(self, name: str) -> Any:
        """Run a job on demand (a console command): it counts as its latest run."""
        now = self.clock.now()
        self.store.write().execute("UPDATE schedule_run SET last_run = ? WHERE job = ?", (_iso(now), name))
        return self.jobs[name].run(now)

    def tick(self) -> None:
        """Run every job that is due, each on its own: one that fails is logged, the rest run."""
        now = self.clock.now()
        for name, job in list(self.jobs.items()):
            try:
                if self.claim(name, now):
                    job.run(now)
            except Exception:  # noqa: BLE001 - logged with its traceback; the switch goes on
                log.exception("scheduled job failed", job=name)
