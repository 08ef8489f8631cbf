"""The audit journal: hash chain, tamper detection, retention, search and export."""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import os
import random
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lems.store import journal
from lems.base.clock import UTC, FakeClock, stamp
from lems.store import query, schema
from lems.store.journal import GENESIS, JOURNAL, Journal, prune, search, verify

QW = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"


def connect(path: Path | str) -> sqlite3.Connection:
    # The store's settings: explicit transactions, WAL.
    conn = sqlite3.connect(str(path), isolation_level=None)
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
    return conn


def create(path: Path | str) -> sqlite3.Connection:
    conn = connect(path)
    conn.executescript(schema.JOURNAL)
    return conn


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "lems.db"
    create(path).close()
    return path


def attack(path: Path, *statements: tuple[str, tuple]) -> None:
    """Change the database file from outside the switch, as an intruder would."""
    conn = sqlite3.connect(str(path))
    for sql, params in statements:
        conn.execute(sql, params)
    conn.commit()
    conn.close()


def add_mixed(j: Journal, clock: FakeClock, rng: random.Random, n: int, conn: sqlite3.Connection,
              commit_every: int = 50) -> list[int]:
    """``n`` records of every kind, committed in groups like the switch's reactor turns."""
    seqs = []
    conn.execute("BEGIN")
    for i in range(n):
        clock.advance(rng.choice((0, 0.01, 0.37, 2, 61)))
        terminal = rng.choice(("T0100001", "T0200001", "T0300001", "IF010001"))
        ori = {"T0100001": "OR9990100", "T0200001": "OR9990200", "T0300001": "OR999030C",
               "IF010001": "OR9990100"}[terminal]
        kind = rng.choice(("in", "out", "out", "security", "admin"))
        common = dict(terminal=terminal, ori=ori, operator=rng.choice(("OP010001", "OP020001", None)),
                      session=f"{rng.getrandbits(48):012x}", remote=f"127.0.0.1:{rng.randint(1024, 65535)}")
        if kind == "in":
            seqs.append(j.append("in", ref=f"R{i:09d}", mke="QW", text=QW, nbytes=18 + len(QW), **common))
        elif kind == "out":
            seqs.append(j.append("out", ref=f"R{i:09d}", cls=rng.choice("RUSE"), osn=i % 99999 + 1,
                                 outcome=rng.choice(("OK", "HIT", "NO HIT", ".22.")), mke="QW",
                                 text=f"NO LEDS WANT NAM/DOE, JANE\nNO NCIC WANT {i}", nbytes=80, **common))
        elif kind == "security":
            seqs.append(j.append("security", event=rng.choice(("SIGN-ON", "SIGN-ON FAILED", "LOCK", "CONNECT")),
                                 outcome=rng.choice(("OK", ".20.")), **common))
        else:
            seqs.append(j.append("admin", event="UNLOCK", operator="OP010002", text="BY ADMIN"))
        if rng.random() < 0.05:
            j.disseminate("OP010001", ori, terminal, "QH", "DET TEST", "C", "DOE, JOHN Q")
        if i % commit_every == commit_every - 1:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
    conn.execute("COMMIT")
    return seqs


def filled(path: Path, n: int = 20, seed: int = 1) -> FakeClock:
    clock = FakeClock()
    conn = connect(path)
    add_mixed(Journal(conn, clock), clock, random.Random(seed), n, conn)
    conn.close()
    return clock


def check(path: Path) -> journal.VerifyResult:
    conn = connect(path)
    try:
        return verify(conn)
    finally:
        conn.close()


# -- appending ----------------------------------------------------------------------------

def test_append_stores_every_field_and_numbers_from_one(db):
    clock = FakeClock(dt.datetime(2026, 11, 3, 15, 4, 5, 670000, tzinfo=UTC))
    conn = connect(db)
    j = Journal(conn, clock)
    assert j.head == (0, GENESIS)
    first = j.append("in", terminal="T0100001", ori="OR9990100", operator="OP010001", session="s1",
                     remote="127.0.0.1:5000", mke="AM", dests=["OR9990200", "WA"], ref="REF1", control="CTL1",
                     outcome="OK", bytes=61, text="AM.OR9990100.OR9990200,WA.*CTL1.TXTHELLO")
    second = j.append("out", terminal="T0100001", cls="R", osn=7, nbytes=40, text="OK")
    assert (first, second) == (1, 2)
    rec = search(conn)[0]
    assert rec.seq == 1 and rec.ts == "2026110315040567" and rec.kind == "in"
    assert (rec.terminal, rec.ori, rec.operator, rec.session, rec.remote) == \
        ("T0100001", "OR9990100", "OP010001", "s1", "127.0.0.1:5000")
    assert (rec.mke, rec.dests, rec.ref, rec.control, rec.outcome, rec.bytes, rec.cls) == \
        ("AM", "OR9990200,WA", "REF1", "CTL1", "OK", 61, None)
    assert rec.prev == GENESIS and rec.hash == journal.digest(GENESIS, [getattr(rec, c) for c in JOURNAL.columns])
    out = search(conn)[1]
    assert (out.cls, out.osn, out.bytes, out.prev) == ("R", 7, 40, rec.hash)
    assert j.head == (2, out.hash)


def test_append_rejects_unknown_kinds_fields_and_classes(db):
    j = Journal(connect(db), FakeClock())
    with pytest.raises(ValueError):
        j.append("debug", text="X")
    with pytest.raises(TypeError):
        j.append("in", colour="red")
    with pytest.raises(ValueError):
        j.append("out", cls="X")


def test_head_survives_restart(db):
    clock = filled(db, 30)
    conn = connect(db)
    j = Journal(conn, clock)
    assert j.head[0] == 30
    assert j.append("security", event="SWITCH START") == 31
    conn.close()
    assert check(db).ok and check(db).checked == 31


def test_rolled_back_turn_does_not_break_the_chain(db):
    conn = connect(db)
    j = Journal(conn, FakeClock())
    conn.execute("BEGIN")
    for _ in range(3):
        j.append("in", text="HBT")
    conn.execute("COMMIT")
    conn.execute("BEGIN")
    j.append("in", text="LOST 1")
    j.append("out", cls="R", text="LOST 2")
    j.disseminate("OP1", "OR9990100", "T0100001", "QH", "DET", "C", "DOE, JOHN Q")
    conn.execute("ROLLBACK")
    conn.execute("BEGIN")
    assert j.append("in", text="KEPT") == 4
    assert j.disseminate("OP1", "OR9990100", "T0100001", "QH", "DET", "C", "DOE, JOHN Q") == 1
    assert j.append("in", text="KEPT 2") == 5
    conn.execute("COMMIT")
    result = verify(conn)
    assert result.ok and result.checked == 5 and result.disseminations == 1
    assert [r.text for r in search(conn)] == ["HBT", "HBT", "HBT", "KEPT", "KEPT 2"]


def test_appends_inside_the_callers_transaction_only(db):
    conn = connect(db)
    j = Journal(conn, FakeClock())
    conn.execute("BEGIN")
    j.append("in", text="HBT")
    other = connect(db)
    assert other.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0  # not committed by append
    conn.execute("COMMIT")
    assert other.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 1


# -- verification and tampering --------------------------------------------------------------

def test_fresh_and_empty_journals_verify(db):
    result = check(db)
    assert result.ok and result.checked == 0 and result.head_hash == GENESIS
    filled(db, 20)
    result = check(db)
    assert result.ok and result.checked == 20 and result.head_seq == 20


def test_edited_field_is_named(db):
    filled(db, 20)
    attack(db, ("UPDATE journal SET operator = ? WHERE seq = ?", ("OP999999", 7)))
    result = check(db)
    assert (result.ok, result.table, result.bad_seq, result.reason) == (False, "journal", 7, "edited")
    assert result.checked == 6


def test_edited_hash_or_prev_is_named(db):
    filled(db, 20)
    attack(db, ("UPDATE journal SET hash = ? WHERE seq = ?", ("f" * 64, 12)))
    assert (check(db).bad_seq, check(db).reason) == (12, "edited")


def test_deleted_record_is_named(db):
    filled(db, 20)
    attack(db, ("DELETE FROM journal WHERE seq = ?", (9,)))
    result = check(db)
    assert (result.ok, result.bad_seq, result.reason) == (False, 9, "removed")


def test_deleted_newest_records_are_named(db):
    filled(db, 20)
    attack(db, ("DELETE FROM journal WHERE seq >= ?", (18,)))
    result = check(db)
    assert (result.ok, result.bad_seq, result.reason) == (False, 18, "removed")


def test_deleted_oldest_record_is_named(db):
    filled(db, 20)
    attack(db, ("DELETE FROM journal WHERE seq = ?", (1,)))
    assert (check(db).bad_seq, check(db).reason) == (1, "removed")


def test_swapped_records_are_named(db):
    filled(db, 20)
    attack(db, ("UPDATE journal SET seq = -1 WHERE seq = ?", (11,)),
           ("UPDATE journal SET seq = 11 WHERE seq = ?", (12,)),
           ("UPDATE journal SET seq = 12 WHERE seq = -1", ()))
    result = check(db)
    assert (result.ok, result.bad_seq, result.reason) == (False, 11, "reordered")


def test_swapped_contents_are_named(db):
    # Content moved between rows that keep their hashes: an edit of the first one.
    filled(db, 20)
    conn = connect(db)
    a, b = (conn.execute("SELECT text, kind, ref FROM journal WHERE seq = ?", (s,)).fetchone() for s in (4, 5))
    conn.close()
    attack(db, ("UPDATE journal SET text = ?, kind = ?, ref = ? WHERE seq = 4", b),
           ("UPDATE journal SET text = ?, kind = ?, ref = ? WHERE seq = 5", a))
    assert (check(db).bad_seq, check(db).reason) == (4, "edited")


def test_deletion_hidden_by_renumbering_is_named(db):
    filled(db, 20)
    steps = [("DELETE FROM journal WHERE seq = ?", (9,))]
    steps += [("UPDATE journal SET seq = ? WHERE seq = ?", (s - 1, s)) for s in range(10, 21)]
    steps += [("UPDATE sqlite_sequence SET seq = 19 WHERE name = 'journal'", ())]
    attack(db, *steps)
    result = check(db)
    assert (result.ok, result.bad_seq, result.reason) == (False, 9, "chain broken")


def test_edit_with_recomputed_hash_breaks_the_next_link(db):
    filled(db, 20)
    conn = connect(db)
    row = conn.execute(f"SELECT {', '.join(JOURNAL.columns)}, prev FROM journal WHERE seq = 6").fetchone()
    conn.close()
    values = list(row[:-1])
    values[JOURNAL.columns.index("text")] = "NOTHING HAPPENED"
    attack(db, ("UPDATE journal SET text = ?, hash = ? WHERE seq = 6",
                ("NOTHING HAPPENED", journal.digest(row[-1], values))))
    result = check(db)
    assert (result.ok, result.bad_seq, result.reason) == (False, 7, "chain broken")


def test_byte_changed_in_the_database_file_is_named(tmp_path):
    path = tmp_path / "lems.db"
    conn = create(path)
    clock = FakeClock()
    j = Journal(conn, clock)
    conn.execute("BEGIN")
    for i in range(1, 41):
        j.append("in", terminal="T0100001", text=f"AM.OR9990100.OR9990200.TXTMARKER-{i:04d}-PAYLOAD")
    conn.execute("COMMIT")
    conn.close()  # the last close checkpoints the WAL into the file
    raw = bytearray(path.read_bytes())
    where = raw.index(b"MARKER-0023-PAYLOAD")
    raw[where + 12] ^= 0x01  # one bit of one byte: 'P' becomes 'Q'
    path.write_bytes(bytes(raw))
    result = check(path)
    assert (result.ok, result.bad_seq, result.reason) == (False, 23, "edited")


def test_dissemination_log_is_chained_and_linked_to_the_journal(db):
    conn = connect(db)
    j = Journal(conn, FakeClock())
    conn.execute("BEGIN")
    inquiry = j.append("in", terminal="T0100001", mke="QH", text="QH.OR9990100.NAM/DOE, JOHN Q.PUR/C.ATN/DET")
    first = j.disseminate("OP010001", "OR9990100", "T0100001", "QH", "DET TEST", "C", "DOE, JOHN Q")
    j.append("out", terminal="T0100001", cls="R", text="NO RECORD")
    second = j.disseminate("OP010001", "OR9990100", "T0100001", "QR", "DET TEST", "C", "FBI/123", journal_seq=1)
    conn.execute("COMMIT")
    rows = journal.search_disseminations(conn, ori="or9990100")
    assert [(r.seq, r.journal_seq, r.subject) for r in rows] == [(first, inquiry, "DOE, JOHN Q"), (second, 1, "FBI/123")]
    assert journal.search_disseminations(conn, subject="DOE, JOHN Q")[0].atn == "DET TEST"
    result = verify(conn)
    assert result.ok and (result.checked, result.disseminations) == (2, 2)
    conn.close()
    attack(db, ("UPDATE dissemination SET pur = 'X' WHERE seq = 2", ()))
    result = check(db)
    assert (result.ok, result.table, result.bad_seq, result.reason) == (False, "dissemination", 2, "edited")


# -- a long life: restarts, rollbacks, pruning -----------------------------------------------

def test_thousand_records_across_restarts_and_pruning(db):
    clock = FakeClock(dt.datetime(2024, 1, 1, tzinfo=UTC))
    rng = random.Random(7)
    for _ in range(10):  # ten switch runs, 80 days apart: 720 days of traffic
        conn = connect(db)
        add_mixed(Journal(conn, clock), clock, rng, 100, conn, commit_every=rng.choice((1, 7, 50)))
        conn.close()
        clock.advance(80 * 86400)
    result = check(db)
    assert result.ok and result.checked == 1000 and result.head_seq == 1000
    total_dissem = result.disseminations

    conn = connect(db)
    pruned = prune(conn, clock, 365)
    assert pruned.refused is None and not pruned.floor_applied
    assert 0 < pruned.journal_pruned < 1000 and pruned.anchor_seq == pruned.journal_pruned
    oldest = conn.execute("SELECT MIN(seq), MIN(ts) FROM journal").fetchone()
    assert oldest[0] == pruned.anchor_seq + 1 and oldest[1] >= pruned.cutoff
    conn.close()
    result = check(db)  # what is left, and the RETENTION record that vouches for the anchor
    assert result.ok and result.checked == 1000 - pruned.journal_pruned + 1 and pruned.record_seq == 1001
    assert result.disseminations == total_dissem - pruned.dissemination_pruned

    conn = connect(db)  # restart after pruning, keep writing
    add_mixed(Journal(conn, clock), clock, rng, 50, conn)
    conn.close()
    result = check(db)
    assert result.ok and result.head_seq == 1051

    attack(db, ("DELETE FROM journal WHERE seq = ?", (pruned.anchor_seq + 1,)))
    result = check(db)
    assert (result.ok, result.bad_seq, result.reason) == (False, pruned.anchor_seq + 1, "removed")


def test_pruning_everything_keeps_the_chain_going(db):
    clock = filled(db, 30)
    clock.advance(400 * 86400)
    conn = connect(db)
    result = prune(conn, clock, 365)
    assert result.journal_pruned == 30 and result.anchor_seq == 30 and result.record_seq == 31
    assert verify(conn).ok and verify(conn).checked == 1  # the RETENTION record
    conn.close()
    conn = connect(db)
    j = Journal(conn, clock)
    assert j.head[0] == 31
    assert j.append("security", event="SWITCH START") == 32
    result = verify(conn)
    assert result.ok and result.checked == 2


def test_prune_refuses_to_destroy_evidence(db):
    clock = filled(db, 30)
    attack(db, ("UPDATE journal SET text = 'NOTHING' WHERE seq = 3", ()))
    clock.advance(400 * 86400)
    conn = connect(db)
    result = prune(conn, clock, 365)
    assert result.refused and "journal record 3 edited" in result.refused
    assert result.journal_pruned == 0
    assert conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 31  # and the refusal, recorded
    refusal = search(conn, kind="admin")[-1]
    assert (refusal.event, refusal.outcome) == ("RETENTION", "REFUSED") and "record 3 edited" in refusal.text
    assert (verify(conn).bad_seq, verify(conn).reason) == (3, "edited")


def test_prune_refused_by_the_dissemination_log_prunes_nothing(db):
    clock = FakeClock()
    conn = connect(db)
    j = Journal(conn, clock)
    conn.execute("BEGIN")
    for _ in range(5):
        j.append("in", mke="QH", text="QH")
        j.disseminate("OP010001", "OR9990100", "T0100001", "QH", "DET", "C", "DOE, JOHN Q")
    conn.execute("COMMIT")
    conn.close()
    attack(db, ("UPDATE dissemination SET subject = 'ROE, RICHARD' WHERE seq = 2", ()))
    clock.advance(400 * 86400)
    conn = connect(db)
    result = prune(conn, clock, 365)
    assert result.refused and result.refused.startswith("dissemination record 2 edited")
    # the journal pruning is undone too
    assert conn.execute("SELECT COUNT(*) FROM journal WHERE kind = 'in'").fetchone()[0] == 5
    assert conn.execute("SELECT COUNT(*) FROM journal_anchor").fetchone()[0] == 0


def test_the_hash_recipe_is_plain_sha256_over_json(db):
    # What an outside verifier implements: pin it so it never drifts.
    import hashlib

    clock = FakeClock()
    conn = connect(db)
    j = Journal(conn, clock)
    j.append("out", terminal="T0100001", cls="R", osn=3, nbytes=50, text="HBT")
    canonical = json.dumps([GENESIS, "2026110315000000", "out", "T0100001", None, None, None, None, None, None,
                            None, None, "R", None, 50, 3, "HBT", None], separators=(",", ":"))
    assert search(conn)[0].hash == hashlib.sha256(canonical.encode()).hexdigest()


def test_prune_joins_an_open_transaction(db):
    clock = filled(db, 10)
    clock.advance(400 * 86400)
    conn = connect(db)
    conn.execute("BEGIN")
    assert prune(conn, clock, 365).journal_pruned == 10
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 10
    assert verify(conn).ok


def test_retention_cannot_go_below_a_year():
    clock = FakeClock(dt.datetime(2025, 1, 1, tzinfo=UTC))
    conn = create(":memory:")
    j = Journal(conn, clock)
    old = j.append("in", text="400 DAYS OLD")
    clock.advance(100 * 86400)
    kept = j.append("in", text="300 DAYS OLD")
    clock.advance(300 * 86400)
    j.append("in", text="NEW")
    result = prune(conn, clock, 30)
    assert (result.requested_days, result.days, result.floor_applied) == (30, 365, True)
    assert result.cutoff == stamp(clock.now() - dt.timedelta(days=365))
    assert result.journal_pruned == 1 and result.anchor_seq == old
    assert [r.seq for r in search(conn, kind="in")] == [kept, kept + 1]
    result = prune(conn, clock, 0)
    assert result.days == 365 and result.journal_pruned == 0
    result = prune(conn, clock, 400)
    assert (result.days, result.floor_applied, result.journal_pruned) == (400, False, 0)
    assert verify(conn).ok


def test_prune_stops_at_the_first_record_to_keep_even_if_the_clock_stepped_back():
    clock = FakeClock(dt.datetime(2025, 1, 1, tzinfo=UTC))
    conn = create(":memory:")
    j = Journal(conn, clock)
    j.append("in", text="OLD")
    clock.advance(500 * 86400)
    j.append("in", text="NEW")
    clock.current = dt.datetime(2025, 1, 2, tzinfo=UTC)  # clock stepped back a long way
    j.append("in", text="OLD STAMP, NEWER RECORD")
    clock.current = dt.datetime(2026, 6, 1, tzinfo=UTC)
    result = prune(conn, clock, 365)
    assert result.journal_pruned == 1
    assert [r.text for r in search(conn, kind="in")] == ["OLD STAMP, NEWER RECORD", "NEW"]  # time order
    assert verify(conn).ok


# -- property: any tampering of a record is named -------------------------------------------

TEMPLATE_RECORDS = 40
NOT_NULL = frozenset({"ts", "kind", "prev", "hash"})  # the schema refuses NULL there, attacker or not


@functools.lru_cache(maxsize=None)
def _template() -> sqlite3.Connection:
    conn = create(":memory:")
    clock = FakeClock()
    add_mixed(Journal(conn, clock), clock, random.Random(3), TEMPLATE_RECORDS, conn)
    return conn


@st.composite
def tampering(draw):
    seq = draw(st.integers(1, TEMPLATE_RECORDS))
    column = draw(st.sampled_from(JOURNAL.columns + ("prev", "hash")))
    old = _template().execute(f"SELECT {column} FROM journal WHERE seq = ?", (seq,)).fetchone()[0]
    if column in JOURNAL.ints:
        new = draw(st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)).filter(lambda v: v != old))
    elif old is None:
        new = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=5))
    else:
        pos = draw(st.integers(0, len(old))) if old else 0
        ways = ("replace", "insert", "delete") + (() if column in NOT_NULL else ("null",))
        how = draw(st.sampled_from(ways))
        char = draw(st.characters(min_codepoint=0, max_codepoint=255))
        if how == "null":
            new = None
        elif how == "insert" or not old:
            new = old[:pos] + char + old[pos:]
        elif how == "delete":
            pos = min(pos, len(old) - 1)
            new = old[:pos] + old[pos + 1:]
        else:
            pos = min(pos, len(old) - 1)
            new = old[:pos] + draw(st.characters(min_codepoint=0, max_codepoint=255)
                                   .filter(lambda c: c != old[pos])) + old[pos + 1:]
    return seq, column, new


@settings(max_examples=300, deadline=None)
@given(tampering())
def test_any_change_to_a_record_is_named(change):
    seq, column, new = change
    conn = sqlite3.connect(":memory:", isolation_level=None)
    _template().backup(conn)
    assert verify(conn).ok
    conn.execute(f"UPDATE journal SET {column} = ? WHERE seq = ?", (new, seq))
    result = verify(conn)
    assert (result.ok, result.table, result.bad_seq, result.reason) == (False, "journal", seq, "edited")


@functools.lru_cache(maxsize=None)
def _file_template() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lems.db"
        conn = create(path)
        j = Journal(conn, FakeClock())
        conn.execute("BEGIN")
        for i in range(1, 31):
            j.append("out", terminal="T0100001", cls="R", osn=i, text=f"MARK{i:04d} NO NCIC WANT NAM/DOE, JANE")
        conn.execute("COMMIT")
        conn.close()
        return path.read_bytes()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 30), st.integers(0, 38), st.integers(1, 255))
def test_any_byte_changed_in_a_records_text_on_disk_is_named(seq, offset, xor):
    raw = bytearray(_file_template())
    start = raw.index(f"MARK{seq:04d} ".encode())
    raw[start + offset] ^= xor
    fd, name = tempfile.mkstemp(suffix=".db")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(bytes(raw))
        conn = sqlite3.connect(name)
        result = verify(conn)
        conn.close()
    finally:
        os.unlink(name)
    assert (result.ok, result.bad_seq, result.reason) == (False, seq, "edited")


# -- search ------------------------------------------------------------------------------------

@pytest.fixture
def searchable():
    clock = FakeClock(dt.datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC))
    conn = create(":memory:")
    j = Journal(conn, clock)
    j.append("in", terminal="T0100001", ori="OR9990100", operator="OP010001", mke="QW", ref="A1", text=QW)
    j.append("out", terminal="T0100001", ori="OR9990100", operator="OP010001", mke="QW", ref="A1", cls="R",
             outcome="HIT", text="MKE/WANTED PERSON\nNAM/DOE, JOHN Q")
    clock.advance(1)  # 2026-11-02 00:00:00
    j.append("security", terminal="T0200001", ori="OR9990200", operator="OP020001", event="SIGN-ON FAILED",
             outcome=".20.")
    j.append("in", terminal="T0200001", ori="OR9990200", operator="OP020001", mke="QV", ref="B1",
             text="QV.OR9990200.LIC/TEST123.LIS/OR")
    clock.advance(86400)  # 2026-11-03
    j.append("admin", operator="OP000001", event="UNLOCK", text="UNLOCK OP020001 100%_DONE")
    return conn


def test_search_filters(searchable):
    conn = searchable
    assert [r.seq for r in search(conn)] == [1, 2, 3, 4, 5]
    assert [r.seq for r in search(conn, ori="OR9990200")] == [3, 4]
    assert [r.seq for r in search(conn, terminal="t0100001")] == [1, 2]
    assert [r.seq for r in search(conn, operator="OP020001", mke="QV")] == [4]
    assert [r.seq for r in search(conn, mke="QW")] == [1, 2]
    assert [r.seq for r in search(conn, kind="security")] == [3]
    assert [r.seq for r in search(conn, text="doe, john")] == [1, 2]
    assert [r.seq for r in search(conn, text="100%_")] == [5]
    assert search(conn, text="100%X") == []  # % and _ are literal


def test_search_time_window(searchable):
    conn = searchable
    assert [r.seq for r in search(conn, since="20261102")] == [3, 4, 5]
    assert [r.seq for r in search(conn, until="20261101")] == [1, 2]  # a date includes the whole day
    assert [r.seq for r in search(conn, since="2026-11-02", until="2026-11-02")] == [3, 4]
    assert [r.seq for r in search(conn, until="2026-11-01T23:59:59")] == [1, 2]
    assert [r.seq for r in search(conn, since=dt.datetime(2026, 11, 2, tzinfo=UTC),
                                  until=dt.datetime(2026, 11, 2, tzinfo=UTC))] == [3, 4]
    assert [r.seq for r in search(conn, since="202611030000")] == [5]


def test_search_limit_keeps_the_newest_oldest_first(searchable):
    records = search(searchable, limit=2)
    assert [r.seq for r in records] == [4, 5]
    assert records[1].time == dt.datetime(2026, 11, 3, 0, 0, tzinfo=UTC)


def test_parse_when_rejects_nonsense():
    with pytest.raises(ValueError):
        journal.parse_when("yesterday")
    assert journal.parse_when("20261103") == dt.date(2026, 11, 3)
    assert journal.parse_when("2026-11-03T10:00:00+02:00") == dt.datetime(2026, 11, 3, 8, tzinfo=UTC)


@pytest.mark.parametrize("filters, index", [
    ({}, "journal_ts"),
    ({"ori": "OR9990100"}, "journal_ori_ts"),
    ({"terminal": "T0100001"}, "journal_terminal_ts"),
    ({"operator": "OP010001"}, "journal_operator_ts"),
    ({"mke": "QW"}, "journal_mke_ts"),
    ({"ori": "OR9990100", "since": "20260101", "until": "20260201"}, "journal_ori_ts"),
])
def test_search_uses_an_index_and_no_sort(filters, index):
    conn = create(":memory:")
    filters = dict(filters)
    where, params = query._where(filters.pop("since", None), filters.pop("until", None), filters, None)
    plan = " / ".join(row[3] for row in conn.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM journal{where} ORDER BY ts DESC, seq DESC LIMIT 10", params))
    assert f"INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan


# -- export --------------------------------------------------------------------------------------

def test_export_writes_the_replay_capture_format(db):
    filled(db, 200, seed=5)
    conn = connect(db)
    out = io.StringIO()
    count = journal.export(conn, out)
    lines = out.getvalue().splitlines()
    assert count == len(lines) == conn.execute(
        "SELECT COUNT(*) FROM journal WHERE kind IN ('in', 'out')").fetchone()[0]
    frames = [json.loads(line) for line in lines]
    assert all(list(f) == ["t", "terminal", "dir", "ref", "cls", "text"] for f in frames)
    assert frames[0]["t"] == 0
    ts = [f["t"] for f in frames]
    assert ts == sorted(ts) and ts[-1] > 0
    records = [r for r in search(conn, limit=1000) if r.kind in ("in", "out")]
    for f, rec in zip(frames, records, strict=True):
        assert (f["terminal"], f["dir"], f["ref"], f["text"]) == (rec.terminal, rec.kind, rec.ref, rec.text)
        assert f["cls"] == (rec.cls if rec.kind == "out" else None)
        assert f["t"] == round((rec.time - records[0].time).total_seconds(), 2)


def test_export_times_count_from_the_first_exported_frame():
    clock = FakeClock(dt.datetime(2026, 11, 3, 10, 0, tzinfo=UTC))
    conn = create(":memory:")
    j = Journal(conn, clock)
    j.append("in", terminal="T0100001", ref="A", text="HBT")
    clock.advance(90)
    j.append("in", terminal="T0100001", ref="B", text=QW)
    j.append("security", terminal="T0100001", event="SIGN-ON")
    clock.advance(0.25)
    j.append("out", terminal="T0100001", ref="B", cls="R", text="NO NCIC WANT")
    clock.advance(1.5)
    j.append("out", terminal="T0100001", ref="", cls="U", text="LOCATE")
    out = io.StringIO()
    assert journal.export(conn, out, since=dt.datetime(2026, 11, 3, 10, 1, tzinfo=UTC)) == 3
    frames = [json.loads(line) for line in out.getvalue().splitlines()]
    assert frames == [
        {"t": 0.0, "terminal": "T0100001", "dir": "in", "ref": "B", "cls": None, "text": QW},
        {"t": 0.25, "terminal": "T0100001", "dir": "out", "ref": "B", "cls": "R", "text": "NO NCIC WANT"},
        {"t": 1.75, "terminal": "T0100001", "dir": "out", "ref": "", "cls": "U", "text": "LOCATE"},
    ]
