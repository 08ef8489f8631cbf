"""``lems audit``: verify, search, export and the dissemination log from the command line."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from lems.tools import audit
from lems.base.clock import UTC, FakeClock
from lems.store import schema
from lems.store.journal import Journal, prune

QW = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"


@pytest.fixture
def store(tmp_path) -> Path:
    """A store as the switch leaves it: WAL, a day of traffic, closed cleanly."""
    path = tmp_path / "var" / "lems.db"
    path.parent.mkdir()
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(schema.JOURNAL)
    clock = FakeClock(dt.datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    j = Journal(conn, clock)
    conn.execute("BEGIN")
    j.append("security", terminal="T0100001", ori="OR9990100", remote="127.0.0.1:40000", event="CONNECT")
    j.append("out", terminal="T0100001", ori="OR9990100", cls="S", osn=1, text="AUTHORISED USE ONLY")
    clock.advance(5)
    j.append("security", terminal="T0100001", ori="OR9990100", operator="OP010001", event="SIGN-ON", outcome="OK")
    j.append("in", terminal="T0100001", ori="OR9990100", operator="OP010001", mke="QW", ref="REF0000001", text=QW)
    clock.advance(0.5)
    j.append("out", terminal="T0100001", ori="OR9990100", operator="OP010001", mke="QW", ref="REF0000001",
             cls="R", osn=2, outcome="HIT", text="WARNING - SUBJECT MAY BE ARMED AND DANGEROUS\nMKE/WANTED PERSON")
    clock.advance(86400)
    j.append("in", terminal="T0200001", ori="OR9990200", operator="OP020001", mke="QH", ref="REF0000002",
             text="QH.OR9990200.NAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101.PUR/C.ATN/DET TEST")
    j.disseminate("OP020001", "OR9990200", "T0200001", "QH", "DET TEST", "C", "DOE, JOHN Q")
    j.append("admin", operator="OP000001", event="UNLOCK", text="UNLOCK OP010002")
    conn.execute("COMMIT")
    conn.close()
    return path


def test_verify_ok(store, capsys):
    assert audit.main(["verify"], store) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "OK 7 records"
    assert out[1] == "dissemination log: OK 1 records"
    assert out[2].startswith("head: record 7 hash ")


def attack(store: Path, *statements: str) -> None:
    """Change the store from outside the switch."""
    attacker = sqlite3.connect(str(store))
    for sql in statements:
        attacker.execute(sql)
    attacker.commit()
    attacker.close()


def test_verify_names_the_first_bad_record(store, capsys):
    attack(store, "UPDATE journal SET outcome = 'NO HIT' WHERE seq = 5", "DELETE FROM journal WHERE seq = 6")
    assert audit.main(["verify"], store) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED: journal record 5 edited")


def test_verify_after_pruning_and_a_tampered_anchor(store, capsys):
    conn = sqlite3.connect(str(store), isolation_level=None)
    pruned = prune(conn, FakeClock(dt.datetime(2027, 11, 2, 12, 0, tzinfo=UTC)), 365)
    assert (pruned.journal_pruned, pruned.record_seq) == (5, 8)  # the first day's records, and the record of it
    conn.close()
    assert audit.main(["verify"], store) == 0
    assert capsys.readouterr().out.startswith("OK 3 records")
    attack(store, "UPDATE journal_anchor SET seq = 4 WHERE chain = 'journal'")
    assert audit.main(["verify"], store) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED: journal record 5 anchor broken (the journal retention anchor is record 4 hash ")
    assert "RETENTION record 8 left record 5 hash " in out


def test_search_prints_one_line_per_record(store, capsys):
    assert audit.main(["search", "--terminal", "t0100001", "--since", "20261102"], store) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["SEQ", "TIME", "(UTC)"]
    assert len(out) == 1 + 5
    hit = out[5].split()
    assert hit[:5] == ["5", "2026-11-02", "08:00:05.50", "out", "T0100001"]
    assert "HIT" in hit and "REF0000001" in hit
    assert "WARNING - SUBJECT MAY BE ARMED AND DANGEROUS | MKE/WANTED PERSON" in out[5]
    assert "SIGN-ON" in out[3]


def test_search_filters_and_limit(store, capsys):
    assert audit.main(["search", "--ori", "OR9990200", "--mke", "QH", "--text", "atn/det", "--until",
                       "2026-11-03T23:00:00"], store) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["6"]
    assert audit.main(["search", "--limit", "2"], store) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["6", "7"]
    assert audit.main(["search", "--operator", "OP010001", "--kind", "in"], store) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["4"]


def test_search_rejects_a_bad_date(store, capsys):
    assert audit.main(["search", "--since", "last tuesday"], store) == 2
    assert "not a date or time" in capsys.readouterr().err


def test_export_to_file_and_stdout(store, tmp_path, capsys):
    target = tmp_path / "capture.jsonl"
    assert audit.main(["export", "--out", str(target), "--until", "20261102"], store) == 0
    frames = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(f["dir"], f["cls"], f["t"]) for f in frames] == [("out", "S", 0.0), ("in", None, 5.0), ("out", "R", 5.5)]
    assert frames[1] == {"t": 5.0, "terminal": "T0100001", "dir": "in", "ref": "REF0000001", "cls": None,
                         "text": QW}
    assert audit.main(["export"], store) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 4 and "4 frames exported" in captured.err


def test_dissemination_log(store, capsys):
    assert audit.main(["dissemination", "--subject", "DOE, JOHN Q"], store) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[1].split()[:7] == ["1", "2026-11-03", "08:00:05.50", "OP020001", "OR9990200", "T0200001", "QH"]
    assert out[1].endswith("DOE, JOHN Q") and " 6 " in out[1] and "DET TEST" in out[1]


def test_reads_while_the_switch_writes_and_never_writes(store, capsys):
    switch = sqlite3.connect(str(store), isolation_level=None)
    switch.execute("PRAGMA journal_mode=WAL")
    j = Journal(switch, FakeClock())
    switch.execute("BEGIN")
    j.append("in", terminal="T0100001", text="HBT")  # a turn in progress, not committed
    assert audit.main(["verify"], store) == 0
    assert capsys.readouterr().out.startswith("OK 7 records")
    switch.execute("COMMIT")
    assert audit.main(["verify"], store) == 0
    assert capsys.readouterr().out.startswith("OK 8 records")
    ro = audit.connect_ro(store)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro.execute("DELETE FROM journal")
    ro.close()
    switch.close()


def test_missing_store_is_an_error_not_a_new_file(tmp_path, capsys):
    missing = tmp_path / "var" / "lems.db"
    assert audit.main(["verify"], missing) == 2
    assert "no store" in capsys.readouterr().err
    assert not missing.exists()


def test_usage_errors(store, capsys):
    assert audit.main([], store) == 2
    assert audit.main(["shred"], store) == 2
    assert audit.main(["--help"], store) == 0
