"""The scheduler of lems.core.schedule on an injected clock: due times, restarts, jumps."""

from __future__ import annotations

import datetime as dt

import pytest

from lems.base.clock import UTC, FakeClock
from lems.core.schedule import DailyAt, EveryDays, EveryMonths, Scheduler
from lems.store import Store

PACIFIC = "America/Los_Angeles"


def test_daily_at_is_local_time_and_the_next_day_once_past() -> None:
    rule = DailyAt.parse("02:00", PACIFIC)
    # 2026-11-03 15:00 UTC is 07:00 in Portland: the next 02:00 is tomorrow, 10:00 UTC.
    assert rule.next_after(dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)) == dt.datetime(2026, 11, 4, 10, 0, tzinfo=UTC)
    assert rule.next_after(dt.datetime(2026, 11, 4, 9, 59, tzinfo=UTC)) == dt.datetime(2026, 11, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2", "24:00", "02:60", "ab:cd", ""])
def test_daily_at_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match="not a time of day"):
        DailyAt.parse(text, PACIFIC)


def test_every_months_clamps_the_day() -> None:
    rule = EveryMonths(3)
    assert rule.next_after(dt.datetime(2026, 11, 30, tzinfo=UTC)) == dt.datetime(2027, 2, 28, tzinfo=UTC)
    assert rule.next_after(dt.datetime(2026, 1, 15, tzinfo=UTC)) == dt.datetime(2026, 4, 15, tzinfo=UTC)


def test_a_job_runs_when_due_once_per_jump_and_not_again_after_a_restart(tmp_path) -> None:
    clock = FakeClock()
    path = tmp_path / "s.sqlite"
    store = Store.open(path)
    runs: list[dt.datetime] = []
    scheduler = Scheduler(store, clock)
    scheduler.add("lists", EveryDays(30), runs.append)
    store.commit()
    scheduler.tick()
    assert runs == []  # anchored now: first due in 30 days
    clock.advance(29 * 86400)
    scheduler.tick()
    assert runs == []
    clock.advance(86400)
    scheduler.tick()
    assert runs == [clock.now()]
    clock.advance(95 * 86400)  # three periods in one jump: one run, now
    scheduler.tick()
    scheduler.tick()
    assert len(runs) == 2
    store.commit()
    store.close()

    again = Store.open(path)
    later = Scheduler(again, clock)
    later.add("lists", EveryDays(30), runs.append)
    later.tick()
    assert len(runs) == 2  # the restart remembers the last run
    assert later.next_run("lists") == clock.now() + dt.timedelta(days=30)
    again.close()


def test_a_failing_job_does_not_stop_the_others() -> None:
    clock = FakeClock()
    store = Store.open(":memory:")
    scheduler = Scheduler(store, clock)
    ran: list[str] = []

    def broken(now: dt.datetime) -> None:
        raise RuntimeError("boom")

    scheduler.add("broken", EveryDays(1), broken)
    scheduler.add("fine", EveryDays(1), lambda now: ran.append("fine"))
    clock.advance(86400)
    scheduler.tick()
    assert ran == ["fine"]


def test_run_now_counts_as_the_latest_run() -> None:
    clock = FakeClock()
    store = Store.open(":memory:")
    scheduler = Scheduler(store, clock)
    ran: list[dt.datetime] = []
    scheduler.add("transmit", EveryDays(1), ran.append)
    clock.advance(3600)
    scheduler.run_now("transmit")
    clock.advance(23 * 3600)
    scheduler.tick()
    assert len(ran) == 1  # due 24 h after the manual run, not after the anchor
    clock.advance(3600)
    scheduler.tick()
    assert len(ran) == 2
