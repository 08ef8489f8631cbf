"""`lems ppf load` (PROTOCOL.md 9 "first file") against a running switch, and the schedules on `lems serve`.

The loader runs as its own process, as an agency's administrator would run it,
while the switch serves terminals over TLS; what it loads is found at once.  The
daily transmission and the quarterly reconciliation are driven by moving the
switch's clock from the console of a `lems serve` process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_delivery import wait_for
from test_emulated_clock import adjustable, console_port, lems_console, signed_on, stop
from test_ppf import CONTROL, HEALTH, POLICE, console

from conftest import serve_process

from lems.admin.operations import Admin
from lems.tools.ppf_cmd import read_rows, row_message
from lems.wire.codec import Codec

GOOD = """NAM,DOB,SEX,RAC,SOC,PPT,ISD,OCA
"LOADED, FIRST A",19700101,M,W,999000101,COMMITMENT,20200101,OHA-20-0001
"LOADED, SECOND B",19710202,F,B,,GEI,20210202,OHA-21-0002
"ROE, RICHARD",19750505,M,W,999000009,COMMITMENT,20231101,OHA-23-0001

"LOADED, THIRD C",19720303,F,U,,UNFIT,20220303,OHA-22-0003
"""
BAD = """NAM,DOB,SEX,PPT
"LOADED, FOURTH D",19730404,M,PSRB
"LOADED, FIFTH E",1973-05-05,M,PSRB
"LOADED, SIXTH F",19730606,Q,PSRB
"LOADED, SEVENTH G",19730707,M
"MÜLLER, HANS",19730808,M,PSRB
"""


def load(home, path, ori="OR999050H"):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "lems", "ppf", "load", str(path), "--ori", ori, "--home", str(home)],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def test_a_first_file_loads_on_a_running_switch_and_is_found_at_once(running, tmp_path):
    path = tmp_path / "first.csv"
    path.write_text(GOOD, encoding="utf-8")
    police = running.signed_on(*POLICE)
    assert police.request("QPP.OR9990100.NAM/LOADED, FIRST A.DOB/19700101.PUR/F").text.startswith("NO LEDS")
    done = load(running.home, path)
    assert done.returncode == 0, done.stderr
    # Row numbers as a spreadsheet shows them: the header is row 1.
    assert "row 4: ROE, RICHARD 19750505 is on file as NIC/P000000001 - skipped" in done.stdout
    assert "4 rows for OR999050H: 3 entered (NIC/P000100000 to NIC/P000100002), 1 duplicate(s) skipped" in done.stdout
    # Found at once: no tick in between.
    hit = police.request("QPP.OR9990100.NAM/LOADED, THIRD C.DOB/19720303.PUR/F")
    assert hit.cls == "R" and "NIC/P000100002" in hit.text and "COR/OR999050H" in hit.text, hit.text
    # The switch's own next entry gets the next number, and a duplicate of a loaded row is refused.
    health = running.signed_on(*HEALTH)
    again = health.request("EPP.OR999050H.NAM/LOADED, FIRST A.DOB/19700101.SEX/M")
    assert again.cls == "E" and again.text.startswith("REJECT ON FILE") and "P000100000" in again.text
    new = health.request("EPP.OR999050H.NAM/LOADED, EIGHTH H.DOB/19740101.SEX/M")
    assert "NIC/P000100003" in new.text, new.text
    # Journaled by the switch, once; and pending transmission to NICS.
    running.tick()
    running.tick()
    loads = [r for r in running.call(lambda: Admin(running.switch).audit(limit=100)) if r.event == "PPF LOAD"]
    assert len(loads) == 1 and loads[0].text.startswith("3 ENTERED 1 DUPLICATES SKIPPED NIC/P000100000"), loads
    control = running.signed_on(*CONTROL)
    line = console(running, "ppf transmit").lines[0]
    assert line.endswith(" - 7 ENTERED 0 MODIFIED 0 CANCELLED 0 RELIEF"), line  # 3 demo + 3 loaded + 1 entered
    assert "NRN/NR" in control.request("QDP.OR9990000.NAM/LOADED, SECOND B.DOB/19710202").text


def test_a_bad_row_loads_nothing_and_every_bad_row_is_named(running, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD, encoding="utf-8")
    done = load(running.home, path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith("row 3: .12. INVALID FIELD DOB"), lines
    assert lines[1].startswith("row 4: .12. INVALID FIELD SEX"), lines
    assert lines[2] == "row 5: 3 values for 4 columns", lines
    assert lines[3].startswith("row 6: NAM has a character the switch cannot take"), lines
    assert lines[4] == f"lems: {path}: 4 bad row(s) of 5; nothing loaded"
    police = running.signed_on(*POLICE)
    assert police.request("QPP.OR9990100.NAM/LOADED, FOURTH D.DOB/19730404.PUR/F").text.startswith("NO LEDS")
    # Not minimum information in the header; not a designated agency.
    path.write_text('NAM,DOB,SEX,MIS\n"LOADED, NINTH I",19750101,M,SEEN BY DR X\n', encoding="utf-8")
    done = load(running.home, path)
    assert done.returncode == 1 and "header: MIS IS NOT MINIMUM INFORMATION" in done.stderr, done.stderr
    path.write_text(GOOD, encoding="utf-8")
    done = load(running.home, path, ori="OR9990100")
    assert done.returncode == 1 and "NOT A DESIGNATED AGENCY" in done.stderr
    conn = running.switch.store.conn
    assert running.call(lambda: conn.execute("SELECT COUNT(*) FROM ppf_load").fetchone()[0]) == 0


CODEC = Codec.from_dir(os.path.join(os.path.dirname(__file__), "..", "formats"))
CELL = st.text(st.characters(min_codepoint=32, max_codepoint=0x17F), max_size=12)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.lists(st.lists(CELL, min_size=1, max_size=5), min_size=1, max_size=4))
def test_any_csv_is_loaded_or_refused_row_by_row(tmp_path, rows):
    """Whatever a file holds, each row either makes a minimum-information EPP or has a reason."""
    import csv

    path = tmp_path / "any.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["NAM", "DOB", "SEX", "PPT", "OCA"][:max(len(r) for r in rows)])
        writer.writerows(rows)
    header, read = read_rows(path)
    for number, row in read:
        msg, problem = row_message(CODEC, "OR999050H", header, number, row)
        assert (msg is None) != (problem is None)
        if problem:
            assert problem.startswith(f"row {number}: ")
        else:
            assert {code for code, _ in msg.fields} <= {"NAM", "DOB", "SEX", "PPT", "OCA"}


def test_the_schedules_run_on_switch_time_from_the_console(home):
    """`lems serve` on an adjustable home: clock advance fires the daily transmission and the reconciliation."""
    adjustable(home)
    proc, port = serve_process(home)
    clients = []
    try:
        cport = console_port(proc)
        control, _ = signed_on(home, port, *CONTROL)
        health, _ = signed_on(home, port, *HEALTH)
        clients += [control, health]
        assert health.request("EPP.OR999050H.NAM/SCHEDULED, SAM.DOB/19800808.SEX/M").cls == "R"
        status, out = lems_console(home, cport, "schedule")
        assert status == 0 and "nics transmit" in out and "ppf reconcile" in out, out
        def advanced(by):
            """Advance switch time; the terminals, idle that long, were disconnected: sign on again.
            What the switch sent meanwhile was queued for them and arrives as they connect."""
            status, out = lems_console(home, cport, "clock", "advance", by)
            assert status == 0, out
            for c in clients:
                c.close()
            clients[:] = [signed_on(home, port, *CONTROL)[0], signed_on(home, port, *HEALTH)[0]]
            return clients

        control, health = advanced("1d")
        notice = wait_for(control, "NICS TRANSMISSION", timeout=20)
        assert notice.cls == "S" and notice.text.endswith(" - 4 ENTERED 0 MODIFIED 0 CANCELLED 0 RELIEF"), notice
        status, out = lems_console(home, cport, "nics", "down")
        assert status == 0 and "DOWN" in out, out
        assert health.request("EPP.OR999050H.NAM/SCHEDULED, SUE.DOB/19800909.SEX/F").cls == "R"
        control, health = advanced("1d")
        assert wait_for(control, "NICS UNAVAILABLE", timeout=20).text == "NICS UNAVAILABLE - 1 CHANGES PENDING"
        lems_console(home, cport, "nics", "up")
        control, health = advanced("95d")
        sent = wait_for(control, "NICS TRANSMISSION", timeout=20)
        assert sent.text.endswith(" - 1 ENTERED 0 MODIFIED 0 CANCELLED 0 RELIEF"), sent
        summary = wait_for(control, "PPF RECONCILIATION", timeout=20)
        assert summary.cls == "S" and summary.text.endswith(" - 5 RECORDS 0 DISCREPANCIES"), summary
        status, out = lems_console(home, cport, "status")
        assert status == 0 and "5 records  0 pending transmission  0 relieved" in out, out
    finally:
        for c in clients:
            c.close()
        stop(proc)


def test_a_big_file_draws_a_progress_bar_on_a_terminal_only():
    import io

    from lems.tools.ppf_cmd import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(2000, stream)
        for done in range(1, 2001):
            bar(done, "checked")
        bar.end()
    assert pipe.getvalue() == ""
    assert tty.getvalue().count("\r") == 101 and "[#########################] 100% 2000/2000 checked" in tty.getvalue()
    small = Tty()
    Progress(999, small)(999, "checked")
    assert small.getvalue() == ""  # a small file needs none


def test_init_issues_the_new_demo_terminals_certificates(home):
    from lems.base.registry import Registry

    registry = Registry.load(home / "terminals")
    for terminal, ori in (("T0600001", "OR999060J"), ("T0700001", "OR999070S")):
        assert registry.terminals[terminal].ori == ori and registry.terminals[terminal].fingerprint
        assert (home / "var" / "pki" / "terminals" / f"{terminal}.crt").exists()
    assert {a for a in registry.agencies if registry.agencies[a].designated} == {"OR999050H", "OR999060J",
                                                                                 "OR999070S"}
    assert registry.operators["OP060001"].ori == "OR999060J" and registry.operators["OP070001"].level == "entry"


def test_a_load_made_while_no_switch_ran_is_found_and_journaled_by_the_next(home, switch_factory, tmp_path):
    path = tmp_path / "first.csv"
    path.write_text(GOOD, encoding="utf-8")
    assert load(home, path).returncode == 0
    running = switch_factory()
    police = running.signed_on(*POLICE)
    assert "NIC/P000100001" in police.request("QPP.OR9990100.NAM/LOADED, SECOND B.DOB/19710202.PUR/F").text
    running.tick()
    loads = [r for r in running.call(lambda: Admin(running.switch).audit(limit=100)) if r.event == "PPF LOAD"]
    assert len(loads) == 1 and loads[0].ori == "OR999050H", loads
