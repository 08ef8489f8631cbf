"""Journal retention: once a switch-clock day, never below the floor, an anchor verify checks."""

from __future__ import annotations

import datetime as dt

import pytest

from lems.base.clock import UTC, FakeClock
from lems.store import Store
from lems.store.journal import RETENTION_FLOOR_DAYS, Journal, prune, search, verify
from lems.store.retention import Retention

DAY = 86400


def store_with_history(clock: FakeClock, ages: list[int], path=":memory:") -> tuple[Store, Journal]:
    """One ``in`` record (and one dissemination) per age in days, oldest first, then the clock is today."""
    today = clock.now()
    store = Store.open(path)
    j = Journal(store.conn, clock)
    for age in sorted(ages, reverse=True):
        clock.current = today - dt.timedelta(days=age)
        store.write()
        j.append("in", terminal="T0100001", ori="OR9990100", mke="QH", text=f"{age} DAYS OLD")
        j.disseminate("OP010001", "OR9990100", "T0100001", "QH", "DET", "C", f"AGE {age}")
        store.commit()
    clock.current = today
    return store, j


def texts(store: Store) -> list[str]:
    return [r.text for r in search(store.conn, kind="in")]


def test_records_older_than_the_window_go_and_younger_ones_stay():
    clock = FakeClock()
    store, j = store_with_history(clock, [500, 401, 399, 10])
    retention = Retention(store, 400, clock, journal=j)
    assert retention.tick(clock.now()) == 4  # two journal and two dissemination records
    assert texts(store) == ["399 DAYS OLD", "10 DAYS OLD"]
    record = search(store.conn, kind="admin")[-1]
    assert (record.event, record.outcome) == ("RETENTION", "OK")
    assert record.text.startswith("PRUNED 2 JOURNAL AND 2 DISSEMINATION RECORDS STAMPED BEFORE 2025-09-29 15:00:00 UTC"
                                  " (400 DAYS); ANCHORS JOURNAL 2 ")
    result = verify(store.conn)
    assert result.ok and (result.checked, result.disseminations) == (3, 2)
    # The switch's own journal goes on writing after the record retention appended.
    store.write()
    assert j.append("in", text="AFTER") == 6
    store.commit()
    assert verify(store.conn).ok


def test_the_floor_holds():
    clock = FakeClock()
    store, j = store_with_history(clock, [366, 364, 100])
    assert Retention(store, 30, clock).tick(clock.now()) == 2
    assert texts(store) == ["364 DAYS OLD", "100 DAYS OLD"]
    assert f"({RETENTION_FLOOR_DAYS} DAYS)" in search(store.conn, kind="admin")[-1].text
    assert verify(store.conn).ok


def test_once_a_switch_clock_day_and_not_again_after_a_restart(tmp_path):
    clock = FakeClock(dt.datetime(2026, 11, 3, 0, 0, 30, tzinfo=UTC))
    path = tmp_path / "lems.sqlite"
    store, _ = store_with_history(clock, [370, 364.5], path)
    assert Retention(store, 365, clock).tick(clock.now()) == 2
    assert texts(store) == ["364.5 DAYS OLD"]
    store.close()

    clock.advance(DAY - 60)  # 23:59:30 the same day, after a restart: nothing runs, nothing is written
    store = Store.open(path)
    top = store.conn.execute("SELECT MAX(seq) FROM journal").fetchone()[0]
    retention = Retention(store, 365, clock)
    assert retention.tick(clock.now()) == 0 and retention.tick(clock.now()) == 0
    assert store.conn.execute("SELECT MAX(seq) FROM journal").fetchone()[0] == top
    assert texts(store) == ["364.5 DAYS OLD"]

    clock.advance(30)  # midnight UTC: a new switch-clock day
    assert retention.tick(clock.now()) == 2
    assert texts(store) == []
    assert retention.tick(clock.now()) == 0
    assert store.conn.execute("SELECT day, pruned FROM retention_run").fetchone() == ("2026-11-04", 2)
    store.close()

    store = Store.open(path)
    clock.advance(DAY)  # due again, nothing old enough: the day is noted, the journal untouched
    top = store.conn.execute("SELECT MAX(seq) FROM journal").fetchone()[0]
    assert Retention(store, 365, clock).tick(clock.now()) == 0
    assert store.conn.execute("SELECT MAX(seq) FROM journal").fetchone()[0] == top
    assert store.conn.execute("SELECT day, pruned FROM retention_run").fetchone() == ("2026-11-05", 0)
    assert verify(store.conn).ok
    store.close()


def test_a_clock_set_back_waits_for_the_day_after_the_last_run():
    clock = FakeClock()
    store, _ = store_with_history(clock, [370])
    retention = Retention(store, 365, clock)
    assert retention.tick(clock.now()) == 2
    assert not retention.due(clock.now() - dt.timedelta(days=3))
    assert retention.due(clock.now() + dt.timedelta(days=1))


def test_the_emulated_clock_moved_forward_runs_it():
    clock = FakeClock()
    store, _ = store_with_history(clock, [300])
    retention = Retention(store, 365, clock)
    assert retention.tick(clock.now()) == 0
    clock.advance(70 * DAY)  # `clock advance 70d` on the console
    assert retention.tick(clock.now()) == 2
    assert texts(store) == []
    assert verify(store.conn).ok


def pruned_store() -> tuple[Store, FakeClock]:
    clock = FakeClock()
    store, j = store_with_history(clock, [500, 450, 10])
    assert Retention(store, 400, clock, journal=j).tick(clock.now()) == 4
    assert verify(store.conn).ok
    return store, clock


def tamper(store: Store, sql: str, *params) -> None:
    store.conn.execute(sql, params)


def test_a_changed_anchor_hash_fails_verify():
    store, _ = pruned_store()
    tamper(store, "UPDATE journal_anchor SET hash = ? WHERE chain = 'journal'", "ab" * 32)
    result = verify(store.conn)
    assert (result.ok, result.table, result.bad_seq, result.reason) == (False, "journal", 2, "anchor broken")
    assert result.detail.startswith("the journal retention anchor is record 2 hash abababababababab...; "
                                    "RETENTION record 4 left record 2 hash ")


def test_a_deleted_anchor_fails_verify():
    store, _ = pruned_store()
    tamper(store, "DELETE FROM journal_anchor WHERE chain = 'dissemination'")
    result = verify(store.conn)
    assert (result.ok, result.table, result.bad_seq, result.reason) == (False, "dissemination", 2, "anchor broken")
    assert "the dissemination retention anchor is missing" in result.detail


def test_records_deleted_behind_a_moved_anchor_fail_verify():
    """The attack the anchor row alone allowed: delete the oldest kept records, move the anchor past them."""
    store, _ = pruned_store()
    seq, hash_ = store.conn.execute("SELECT seq, hash FROM journal WHERE seq = 3").fetchone()
    tamper(store, "DELETE FROM journal WHERE seq = 3")
    tamper(store, "UPDATE journal_anchor SET seq = ?, hash = ? WHERE chain = 'journal'", seq, hash_)
    result = verify(store.conn)
    assert (result.ok, result.bad_seq, result.reason) == (False, 2, "anchor broken")
    assert "anchor is record 3" in result.detail
    # and the next prune will not launder it
    clock = FakeClock(dt.datetime(2030, 1, 1, tzinfo=UTC))
    refused = prune(store.conn, clock, 365)
    assert refused.refused.startswith("journal anchor broken") and refused.pruned == 0


def test_an_anchor_with_no_retention_record_fails_verify():
    store, _ = pruned_store()
    tamper(store, "UPDATE journal SET outcome = 'DONE' WHERE event = 'RETENTION'")  # now it fails its hash
    result = verify(store.conn)
    assert (result.ok, result.bad_seq, result.reason) == (False, 4, "edited")
    tamper(store, "DELETE FROM journal WHERE event = 'RETENTION'")
    assert (verify(store.conn).bad_seq, verify(store.conn).reason) == (4, "removed")
    tamper(store, "UPDATE sqlite_sequence SET seq = 3 WHERE name = 'journal'")  # hide the gap at the end
    result = verify(store.conn)
    assert (result.ok, result.bad_seq, result.reason) == (False, 2, "anchor broken")
    assert result.detail == ("the journal retention anchor (record 2) has no RETENTION record in the journal "
                             "that left it")


def test_a_refused_prune_is_recorded_and_waits_for_the_next_day():
    clock = FakeClock()
    store, _ = store_with_history(clock, [500, 10])
    tamper(store, "UPDATE journal SET text = 'NOTHING' WHERE seq = 1")
    retention = Retention(store, 365, clock)
    assert retention.tick(clock.now()) == 0
    assert retention.last_result.refused.startswith("journal record 1 edited")
    record = search(store.conn, kind="admin")[-1]
    assert (record.event, record.outcome) == ("RETENTION", "REFUSED")
    assert retention.tick(clock.now()) == 0 and len(search(store.conn, kind="admin")) == 1
    assert texts(store) == ["NOTHING", "10 DAYS OLD"]


@pytest.mark.parametrize("days", [0, 365, 10_000])
def test_nothing_old_enough_writes_nothing(days):
    clock = FakeClock()
    store, _ = store_with_history(clock, [100])
    assert Retention(store, days, clock).tick(clock.now()) == 0
    assert search(store.conn, kind="admin") == []


def test_bytes_that_are_not_utf8_refuse_the_prune_instead_of_stopping_the_tick():
    clock = FakeClock()
    store, _ = store_with_history(clock, [500, 10])
    tamper(store, "UPDATE journal SET text = CAST(x'ff4f4c44' AS TEXT) WHERE seq = 1")
    retention = Retention(store, 365, clock)
    assert retention.tick(clock.now()) == 0
    assert retention.last_result.refused.startswith("journal record 1 edited")


def test_a_running_switch_prunes_on_its_tick_and_the_journal_still_verifies(running, clock):
    """[audit] retention_days of the home, kept by the switch's own one-second tick."""
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    assert c.request("QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101").cls == "R"
    days = running.switch.settings.retention_days
    conn = running.switch.store.conn
    before = running.call(lambda: conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0])
    clock.advance((days + 1) * 86400)
    running.tick()
    records = running.call(lambda: search(conn, kind="admin"))
    # (The scheduled jobs that fell due in the same jump, such as the NICS transmission, journal after it.)
    assert "RETENTION" in [r.event for r in records]
    assert running.call(lambda: conn.execute("SELECT MIN(seq) FROM journal").fetchone()[0]) > before
    assert running.call(verify, conn).ok
    # Once a day: the next tick the same day prunes nothing more.
    assert running.call(running.switch.retention.tick, clock.now()) == 0
