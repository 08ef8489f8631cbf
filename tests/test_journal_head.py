"""The signed head file: a cut tail, a forged anchor and a too young anchor are reported (issue 14 finding 5)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from test_retention import store_with_history

from lems.base.clock import UTC, FakeClock, stamp
from lems.store import Store
from lems.store import head as head_mod
from lems.store.journal import Journal, verify
from lems.store.retention import Retention
from lems.store.sqlite import HeadMismatchError
from lems.tools import audit



def switch_store(tmp_path: Path, ages=(500, 400, 30, 20, 10), clock: FakeClock | None = None):
    """A store as the switch writes it (a file store with its head file): one commit per age in days."""
    clock = clock or FakeClock(dt.datetime(2027, 6, 1, 12, 0, tzinfo=UTC))
    path = tmp_path / "var" / "lems.sqlite"
    store, j = store_with_history(clock, list(ages), path)
    return store, j, clock, path


def attack(path: Path, *statements) -> None:
    """Edit the database alone, from outside the switch."""
    conn = sqlite3.connect(str(path))
    for sql in statements:
        if isinstance(sql, str):
            conn.execute(sql)
        else:
            conn.execute(*sql)
    conn.commit()
    conn.close()


def verify_out(path: Path, capsys) -> tuple[int, list[str]]:
    code = audit.main(["verify"], path)
    return code, capsys.readouterr().out.splitlines()


def test_a_clean_store_verifies_with_its_head_file(tmp_path, capsys):
    store, *_, path = switch_store(tmp_path)
    store.close()
    code, out = verify_out(path, capsys)
    assert code == 0 and out[0] == "OK 5 records"
    assert out[3].startswith(f"signed head file {path}-head: matches (written ")


def test_a_cut_tail_is_reported(tmp_path, capsys):
    """The attack that passed before: delete the newest records and lower sqlite_sequence."""
    store, *_, path = switch_store(tmp_path)
    store.close()
    attack(path, "DELETE FROM journal WHERE seq > 3", "UPDATE sqlite_sequence SET seq = 3 WHERE name = 'journal'")
    code, out = verify_out(path, capsys)
    assert code == 1
    assert out[0].startswith(f"FAILED: journal record 4 cut tail (record 4-5 missing at the end: the signed head "
                             f"file names record 5 hash ")
    assert out[0].endswith("and the journal ends at record 3)")
    # the dissemination log's tail too
    attack(path, "DELETE FROM journal_anchor")  # no effect: there is none
    with pytest.raises(HeadMismatchError, match="cut tail"):
        Store.open(path)  # the switch will not start on it and overwrite the evidence


def test_a_forged_anchor_is_reported(tmp_path, capsys):
    """The other attack that passed: delete the oldest records, forge the anchor and a RETENTION record."""
    store, j, clock, path = switch_store(tmp_path)
    store.close()
    conn = sqlite3.connect(str(path), isolation_level=None)
    seq, hash_, ts = conn.execute("SELECT seq, hash, ts FROM journal WHERE seq = 3").fetchone()
    dseq, dhash = conn.execute("SELECT seq, hash FROM dissemination WHERE seq = 3").fetchone()
    conn.execute("BEGIN")
    conn.execute("DELETE FROM journal WHERE seq <= 3")
    conn.execute("DELETE FROM dissemination WHERE seq <= 3")
    now = stamp(clock.now())
    for table, s, h in (("journal", seq, hash_), ("dissemination", dseq, dhash)):
        conn.execute("INSERT INTO journal_anchor (chain, seq, hash, pruned_at, cutoff, stamped) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (table, s, h, now, stamp(clock.now() - dt.timedelta(days=365)), ts))
    Journal(conn, clock).append("admin", event="RETENTION", outcome="OK",
                                text=f"PRUNED 3 JOURNAL AND 3 DISSEMINATION RECORDS STAMPED BEFORE 2026-06-01 "
                                     f"12:00:00 UTC (365 DAYS); ANCHORS JOURNAL {seq} {hash_} DISSEMINATION "
                                     f"{dseq} {dhash}")
    conn.execute("COMMIT")
    conn.close()
    code, out = verify_out(path, capsys)
    assert code == 1
    assert out[0] == (f"FAILED: journal record 3 forged anchor (the journal retention anchor is record 3 hash "
                      f"{hash_[:16]}...; the signed head file names none (nothing pruned))")

    # Without the head file (a home from before them), the anchor's age still gives it away.
    head_mod.head_path(path).unlink()
    head_mod.key_path(path).unlink()
    head_mod.public_key_path(path).unlink()
    code, out = verify_out(path, capsys)
    assert code == 1
    assert out[0] == ("FAILED: journal record 3 anchor too young (the journal retention anchor, record 3 stamped "
                      "2027-05-02 12:00:00 UTC, was pruned at 2027-06-01 12:00:00 UTC, 30 days after it was "
                      "written; retention keeps records 365 days)")


def test_a_prune_by_the_switch_verifies_and_moves_the_anchor_in_the_head(tmp_path, capsys):
    store, j, clock, path = switch_store(tmp_path)
    assert Retention(store, 365, clock, journal=j).tick(clock.now()) == 4
    store.close()
    code, out = verify_out(path, capsys)
    assert code == 0 and out[0] == "OK 4 records" and "matches" in out[3]
    anchor = head_mod.read(path).committed["anchors"]["journal"]
    assert anchor[0] == 2 and anchor[4] == "2026042712000000"  # the 400-day-old record's stamp
    # Moving the anchor by a database edit alone is seen, even with a matching RETENTION record gone
    attack(path, "UPDATE journal_anchor SET seq = 1 WHERE chain = 'journal'")
    code, out = verify_out(path, capsys)
    assert code == 1 and "anchor broken" in out[0]


def test_records_past_the_head_and_a_rewritten_head_are_reported(tmp_path, capsys):
    store, j, clock, path = switch_store(tmp_path)
    store.close()
    conn = sqlite3.connect(str(path), isolation_level=None)
    Journal(conn, clock).append("admin", event="UNLOCK", text="NOT BY THE SWITCH")
    conn.close()
    code, out = verify_out(path, capsys)
    assert code == 1
    assert out[0].startswith("FAILED: journal record 6 not in head (record 6 after record 5, the newest the signed "
                             "head file names: the switch did not write them)")
    attack(path, "DELETE FROM journal WHERE seq >= 5", "UPDATE sqlite_sequence SET seq = 4 WHERE name = 'journal'")
    conn = sqlite3.connect(str(path), isolation_level=None)
    Journal(conn, clock).append("in", text="A DIFFERENT RECORD 5")
    conn.close()
    code, out = verify_out(path, capsys)
    assert code == 1 and out[0].startswith("FAILED: journal record 5 head mismatch (the journal ends at record 5 hash ")
    assert out[0].endswith(": the chain was rewritten)")


def test_an_edited_or_removed_head_file_is_reported(tmp_path, capsys):
    store, *_, path = switch_store(tmp_path)
    store.close()
    head = head_mod.head_path(path)
    body = json.loads(head.read_text())
    body["committed"]["journal"][0] = 3
    head.write_text(json.dumps(body))
    code, out = verify_out(path, capsys)
    assert code == 1 and out[0] == (f"FAILED: head file invalid (the head file {head} does not carry a valid "
                                    f"signature of {head_mod.public_key_path(path)}: it was edited or forged)")
    head.unlink()
    code, out = verify_out(path, capsys)
    assert code == 1 and out[0].startswith(f"FAILED: head file missing (the store has its signing key "
                                           f"{head_mod.key_path(path)} but no head file {head}: it was removed")


def test_a_store_from_before_head_files_verifies_and_says_so_and_opening_makes_them(tmp_path, capsys):
    store, *_, path = switch_store(tmp_path)
    store.close()
    for made in (head_mod.head_path(path), head_mod.key_path(path), head_mod.public_key_path(path)):
        made.unlink()
    code, out = verify_out(path, capsys)
    assert code == 0 and out[0] == "OK 5 records"
    assert out[3] == (f"no head file {path}-head: this store was made before head files, so a cut tail or a moved "
                      "anchor cannot be seen (the chains were checked); `lems serve` makes one, and its key, at start")
    Store.open(path).close()  # what `lems serve` does at start
    code, out = verify_out(path, capsys)
    assert code == 0 and "matches" in out[3]


def test_a_crash_on_either_side_of_the_commit_verifies(tmp_path, capsys):
    """The head file is written before the COMMIT: dying before it leaves the database one turn behind
    the head's pending state (it is the committed one), dying after it leaves it at the pending one."""
    store, j, clock, path = switch_store(tmp_path, ages=(10, 5))
    store.write()
    j.append("in", text="NEVER COMMITTED")
    pending = head_mod.state(store.conn)
    store._head.write(store._committed, pending)  # the commit's first half, then the process dies
    store.conn.close()
    code, out = verify_out(path, capsys)
    assert code == 0 and out[0] == "OK 2 records"
    again = Store.open(path)  # the restarted switch accepts it and goes on
    jj = Journal(again.conn, clock)
    again.write()
    assert jj.append("in", text="AFTER THE CRASH") == 3
    again.commit()
    again.close()
    assert verify_out(path, capsys)[0] == 0


def test_a_verify_inside_the_writers_transaction_does_not_compare(tmp_path):
    store, j, _, _ = switch_store(tmp_path, ages=(1,))
    store.write()
    j.append("in", text="IN FLIGHT")
    result = verify(store.conn)
    assert result.ok and result.head_note.startswith("head file not compared")
    store.commit()
    assert verify(store.conn).head_note.startswith("signed head file ")


def test_a_verify_that_races_the_running_switch_accepts_what_it_wrote_meanwhile(tmp_path):
    """verify reads the head file before and after its snapshot: a database that moved on between
    the two is the switch's own work, not a tampered one; outside that window the rule is exact."""
    store, j, _, path = switch_store(tmp_path, ages=(3, 2, 1))
    states = []
    for _ in range(4):
        store.write()
        j.append("in", text="LOAD")
        store.commit()
        states.append(head_mod.state(store.conn))
    s1, s2, s3, s4 = states
    before, after = head_mod.Head(s1, s2, "t1"), head_mod.Head(s3, s4, "t2")
    assert head_mod.compare(s3, before, after) is None
    assert head_mod.compare(s3, before).reason == "not in head"
    cut = {**s1, "journal": [s1["journal"][0] - 1, "0" * 64]}
    assert head_mod.compare(cut, before, after).reason == "cut tail"
    store.close()


def test_a_store_from_before_the_anchor_stamp_migrates_and_its_old_anchor_is_judged_by_its_cutoff(tmp_path, capsys):
    from lems.store.schema import MIGRATIONS

    clock = FakeClock(dt.datetime(2027, 6, 1, 12, 0, tzinfo=UTC))
    path = tmp_path / "var" / "lems.sqlite"
    old = Store.open(path, migrations=[m for m in MIGRATIONS if m[0] != "0007_anchor_stamped"])
    j = Journal(old.conn, clock)
    for age in (500, 10):
        clock.current = dt.datetime(2027, 6, 1, 12, 0, tzinfo=UTC) - dt.timedelta(days=age)
        old.write()
        j.append("in", text=f"{age} DAYS OLD")
        old.commit()
    clock.current = dt.datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
    assert Retention(old, 365, clock, journal=j).tick(clock.now()) == 1  # an anchor without its stamp
    old.close()
    store = Store.open(path)  # applies 0007
    assert store.conn.execute("SELECT seq, stamped FROM journal_anchor").fetchall() == [(1, None)]
    store.close()
    code, out = verify_out(path, capsys)
    assert code == 0 and out[0] == "OK 2 records" and "matches" in out[3]
