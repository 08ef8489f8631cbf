"""Record validation and operator training (PROTOCOL.md 11): over TLS, the clock moved from the console.

In process: a switch on an adjustable home (the FakeClock under the emulated
clock), terminals over real TLS, the console's commands called as an
administrator types them.  As a process: `lems serve` with `lems console`,
`lems operator training` and terminals (the last tests).  Unit tests of the
deadlines and the LEDS representative rule with a FakeClock.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys

import attrs
import pytest
from conftest import PASSWORD, edit_registry, serve_process
from test_delivery import nothing_more, wait_for
from test_emulated_clock import adjustable, client, console_port, lems_console, stop

from lems.admin.operations import Admin
from lems.admin.shell import Console
from lems.base.clock import FakeClock
from lems.base.conf import Settings
from lems.base.registry import Operator, Registry, TrainingError
from lems.core.policy import Policy

MOBILE = ("T0100002", "OR9990100", "OP010001")   # exempt from the idle lock: stays connected over jumps
EW = ("EW.OR9990100.NAM/{name}.SEX/M.RAC/W.DOB/19910203.HGT/510.WGT/170.EYE/BRO.HAI/BRO.OFF/2399"
      ".DOW/20260101.OCA/{oca}.MIS/TEST RECORD")
QW = "QW.OR9990100.NAM/{name}.DOB/19910203"


def console(running):
    return Console(Admin(running.switch, running.service), who="admin")


def run(running, line):
    reply = running.call(console(running).execute, line)
    return reply


def enter(c, name, oca):
    reply = c.request(EW.format(name=name, oca=oca))
    assert reply.cls == "R", reply
    return re.search(r"NIC/(W\d{9})", reply.text).group(1)


def list_id(frame):
    return re.match(r"\$\.V\. VALIDATION LIST (VL\d{6})", frame.text).group(1)


@pytest.fixture
def adjustable_switch(home, switch_factory):
    adjustable(home)
    return switch_factory()


# -- validation lists, VLN, retirement --------------------------------------------------------

def test_list_validate_one_and_retire_the_other(adjustable_switch, switch_factory):
    running = adjustable_switch
    c = running.signed_on(*MOBILE)
    kept, lapsed = enter(c, "TESTER, KEPT A", "VAL-1"), enter(c, "TESTER, LAPSED B", "VAL-2")
    assert run(running, "validation run").lines == ["no records due for validation; no list sent"]
    assert run(running, "clock advance 59d").ok
    nothing_more(c)  # 59 days old: not due yet (the scheduled list ran at 30 days and found nothing)
    assert run(running, "clock advance 2d").ok  # 61 days old; the job next runs 30 days after its last run
    nothing_more(c)
    sent = run(running, "validation run")
    assert sent.ok and sent.lines[0].startswith("OR9990100 VL") and "2 record(s)" in sent.lines[0], sent
    frame = wait_for(c, "$.V. VALIDATION LIST")
    assert frame.cls == "U" and frame.text.startswith("$.V. VALIDATION LIST VL")
    lines = frame.text.split("\n")
    assert f"NIC/{kept} MKE/EW OCA/VAL-1 NAM/TESTER, KEPT A" in lines
    assert f"NIC/{lapsed} MKE/EW OCA/VAL-2 NAM/TESTER, LAPSED B" in lines
    assert "2 RECORD(S) DUE FOR VALIDATION" in lines
    lst = list_id(frame)
    # A record already on an outstanding list is not listed again.
    assert run(running, "validation run").lines == ["no records due for validation; no list sent"]

    done = c.request(f"MW.OR9990100.NAM/TESTER, KEPT A.NIC/{kept}.VLN/SGT VALIDATOR")
    assert done.cls == "R" and "MW ACCEPTED" in done.text, done
    assert done.text.split("\n")[-1].startswith("VALIDATED BY SGT VALIDATOR ")
    status = run(running, "validation status OR9990100")
    assert status.lines[0].endswith("1 list(s) outstanding, 1 record(s) at risk, 0 retired"), status
    assert lapsed in status.lines[1] and lst in status.lines[1]
    shown = run(running, "validation lists OR9990100")
    assert shown.ok and f"{lst}" in shown.lines[1] and "OUTSTANDING" in shown.lines[1]
    assert frame.text.split("\n")[0] in shown.lines  # the list as sent, retrievable later

    assert run(running, "clock advance 29d").ok
    nothing_more(c)
    assert run(running, "clock advance 1d").ok  # certify_days after the list went out
    retired = wait_for(c, "$.P. RECORD RETIRED - NOT VALIDATED")
    assert retired.cls == "U" and retired.text.startswith("$.P. RECORD RETIRED - NOT VALIDATED")
    assert f"NIC/{lapsed}" in retired.text and kept not in retired.text
    nothing_more(c)
    found = c.request(QW.format(name="TESTER, LAPSED B")).text  # the same surname and DOB: KEPT is a hit
    assert lapsed not in found and "NAM/TESTER, LAPSED B" not in found.replace("NO NCIC WANT NAM/TESTER, LAPSED B", "")
    assert kept in found
    gone = c.request(f"MW.OR9990100.NAM/TESTER, LAPSED B.NIC/{lapsed}.VLN/TOO LATE")
    assert gone.cls == "E" and "REJECT NOT ON FILE" in gone.text
    record = run(running, f"validation record {lapsed}")
    assert "RETIRED ENTERED" in record.lines[0] and record.lines[-1].startswith("RETIRED - NOT VALIDATED")
    assert "last validated" in run(running, f"validation record {kept}").lines[1]
    rows = running.switch.store.conn.execute(
        "SELECT event FROM journal WHERE event LIKE 'VALIDATION%' OR event LIKE 'RECORD RETIRED%' "
        "OR event = 'RECORD VALIDATED' ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == ["VALIDATION LIST SENT", "RECORD VALIDATED", "RECORD RETIRED - NOT VALIDATED"]

    running.stop()  # kept for audit, and still not found after a restart
    again = switch_factory()
    c = again.signed_on(*MOBILE)
    assert lapsed not in c.request(QW.format(name="TESTER, LAPSED B")).text
    assert kept in c.request(QW.format(name="TESTER, KEPT A")).text


def test_vcl_certifies_the_whole_list(adjustable_switch):
    running = adjustable_switch
    c = running.signed_on(*MOBILE)
    nic = enter(c, "TESTER, CERTIFIED C", "VAL-3")
    assert run(running, "clock advance 65d").ok
    lst = list_id(wait_for(c, "$.V. VALIDATION LIST"))
    county = running.signed_on("T0200001", "OR9990200", "OP020001")
    other = county.request(f"VCL.OR9990200.LST/{lst}.VLN/DEP OTHER")
    assert other.cls == "E" and other.text.startswith(".22.") and "OR9990100" in other.text, other
    unknown = c.request("VCL.OR9990100.LST/VL999999.VLN/SGT TEST")
    assert unknown.cls == "E" and unknown.text.startswith("REJECT NOT ON FILE"), unknown
    missing = c.request(f"VCL.OR9990100.LST/{lst}")
    assert missing.cls == "E" and missing.text.startswith(".13."), missing
    ok = c.request(f"VCL.OR9990100.LST/{lst}.VLN/SGT CERTIFIER")
    assert ok.cls == "R", ok
    assert ok.text.split("\n")[:3] == ["OR9990100", f"VCL ACCEPTED - VALIDATION LIST {lst} CERTIFIED",
                                       f"1 RECORD(S) VALIDATED BY SGT CERTIFIER {ok.text.split()[-1]}"]
    again = c.request(f"VCL.OR9990100.LST/{lst}.VLN/SGT CERTIFIER")
    assert again.cls == "E" and "ALREADY CERTIFIED" in again.text
    assert "CERTIFIED" in run(running, "validation lists OR9990100").lines[1]
    assert run(running, "clock advance 31d").ok
    nothing_more(c)
    assert nic in c.request(QW.format(name="TESTER, CERTIFIED C")).text
    # A year after its validation the record is due again.
    assert run(running, "clock advance 300d").ok
    assert run(running, "clock advance 40d").ok
    frame = wait_for(c, "$.V. VALIDATION LIST")
    assert f"NIC/{nic}" in frame.text and list_id(frame) != lst


def test_a_list_for_an_agency_not_connected_is_queued_and_kept(adjustable_switch):
    running = adjustable_switch
    county = running.signed_on("T0200001", "OR9990200", "OP020001")
    reply = county.request("EG.OR9990200.SER/VALGUN0001.MAK/GLK.CAL/9MM.TYP/PI.DOT/20260101.OCA/VAL-G-1")
    assert reply.cls == "R", reply
    nic = re.search(r"NIC/(G\d{9})", reply.text).group(1)
    county.close()
    assert run(running, "clock advance 70d").ok
    shown = run(running, "validation lists OR9990200")
    assert f"NIC/{nic} MKE/EG OCA/VAL-G-1 SER/VALGUN0001" in shown.lines, shown
    assert any("$.V. VALIDATION LIST" in line for line in run(running, "queue OR9990200").lines)
    back = running.client("T0200001").connect()
    back.banner()
    frame = wait_for(back, "$.V. VALIDATION LIST")
    assert frame.cls == "U" and f"NIC/{nic}" in frame.text


def test_validation_console_usage(adjustable_switch):
    running = adjustable_switch
    for line in ("validation", "validation lists", "validation frob"):
        assert run(running, line).lines == ["usage: validation run | lists ORI | status [ORI] | record NIC"]
    assert run(running, "validation lists OR0000000").lines == ["REFUSED: NO AGENCY OR0000000"]
    assert run(running, "validation status").lines == ["no validation list has been sent"]
    assert "validation lists" in "\n".join(run(running, "schedule").lines)


# -- operator training over TLS ------------------------------------------------------------------

def test_training_deadlines_at_signon(home, switch_factory, clock):
    adjustable(home)
    edit_registry(home, operators={"OP010002": {"guide_issued": None, "certified": None}})
    running = switch_factory()
    today = clock.now().astimezone(Settings.load(home).timezone).date()
    c = running.client("T0100001").connect()
    c.banner()
    first = c.sign_on("OR9990100", "OP010002", PASSWORD)
    assert first.cls == "R", first
    assert f"WARNING - TRAINING GUIDE MUST BE ISSUED BY {(today + dt.timedelta(days=10)).isoformat()}" in first.text
    assert c.request(QW.format(name="DOE, JOHN Q").replace("19910203", "19800101")).cls == "R"
    c.close()
    assert run(running, "clock advance 11d").ok
    c = running.client("T0100001").connect()
    c.banner()
    refused = c.sign_on("OR9990100", "OP010002", PASSWORD)
    assert refused.cls == "E" and refused.text.startswith(".20. SIGN-ON REJECTED - TRAINING GUIDE NOT ISSUED"), refused
    shown = run(running, "training OP010002")
    assert "SIGN-ON REFUSED: TRAINING GUIDE NOT ISSUED" in "\n".join(shown.lines)
    recorded = run(running, "training OP010002 issued")
    assert recorded.ok, recorded
    issued = today + dt.timedelta(days=11)
    accepted = c.sign_on("OR9990100", "OP010002", PASSWORD)
    assert accepted.cls == "R" and "TRAINING" not in accepted.text, accepted  # 60 days ahead: no warning yet
    c.close()
    assert run(running, "clock advance 40d").ok  # [agreements] warn_days (30) before the deadline: warned
    c = running.client("T0100001").connect()
    c.banner()
    warned = c.sign_on("OR9990100", "OP010002", PASSWORD)
    assert f"WARNING - TRAINING MUST BE COMPLETED BY {(issued + dt.timedelta(days=60)).isoformat()}" in warned.text
    c.close()
    assert run(running, "clock advance 21d").ok
    c = running.client("T0100001").connect()
    c.banner()
    late = c.sign_on("OR9990100", "OP010002", PASSWORD)
    assert late.cls == "E" and late.text.startswith(".20. SIGN-ON REJECTED - TRAINING NOT COMPLETED"), late
    assert run(running, "training OP010002 completed").ok
    done = c.sign_on("OR9990100", "OP010002", PASSWORD)
    assert done.cls == "R" and "TRAINING" not in done.text, done
    rows = running.switch.store.conn.execute(
        "SELECT outcome, text FROM journal WHERE event = 'SIGN-ON REFUSED, TRAINING' ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [".20.", ".20."] and "GUIDE NOT ISSUED" in rows[0][1]


def test_a_wrong_password_never_says_training(home, switch_factory):
    edit_registry(home, operators={"OP010002": {"guide_issued": dt.date(2020, 1, 1), "certified": None}})
    c = switch_factory().client("T0100001").connect()
    c.banner()
    wrong = c.sign_on("OR9990100", "OP010002", "Wrong#Password1")
    assert wrong.cls == "E" and wrong.text.startswith(".20. SIGN-ON REJECTED\n"), wrong
    right = c.sign_on("OR9990100", "OP010002", PASSWORD)
    assert right.text.startswith(".20. SIGN-ON REJECTED - TRAINING NOT COMPLETED WITHIN 60 DAYS")


def test_the_representative_rule_from_the_console(home, switch_factory):
    registry = Registry.load(home / "terminals")
    template = registry.operators["OP040001"]
    registry.with_operator(attrs.evolve(template, id="OP040002", representative=False, guide_issued=None,
                                        certified=None))
    running = switch_factory()
    refused = run(running, "training OP040002 issued --level full")
    assert not refused.ok and "LEDS REPRESENTATIVE OP040001 OF OR999040Y IS TRAINED TO INQUIRY" in refused.lines[0]
    assert run(running, "training OP040002 issued --level inquiry").ok
    assert run(running, "training OP040001 completed --level entry").ok  # the representative may go higher
    assert not run(running, "training OP040002 issued --level full").ok  # entry is below full
    assert run(running, "training OP040001 completed --level full").ok
    assert run(running, "training OP040002 completed --level full").ok
    agency = run(running, "training OR999040Y")
    assert agency.lines[0] == "OR999040Y TEST STATE SCHOOL BUS OFFICE"
    assert "LEDS REPRESENTATIVE" in agency.lines[1] and agency.lines[3].startswith("OP040002 OR999040Y full")
    lowered = run(running, "training OP040001 completed --level inquiry")
    assert not lowered.ok and "MUST HOLD THE HIGHEST TRAINING LEVEL IN OR999040Y" in lowered.lines[0]
    for line in ("training", "training OP040002 finished", "training OP040002 issued --level boss",
                 "training OP040002 issued --date"):
        assert run(running, line).lines[0].startswith("usage: training"), line
    assert run(running, "training OP040002 issued --date 2026-01-01").lines == [
        "REFUSED: --date 2026-01-01 IS NOT A DATE CCYYMMDD"]
    assert run(running, "training NOBODY").lines == ["REFUSED: NO OPERATOR OR AGENCY NOBODY"]
    # The registry file says it too (the switch took it at once).
    assert Registry.load(home / "terminals").operators["OP040002"].level == "full"


# -- unit: the deadlines and the rule on a FakeClock --------------------------------------------

def policy_at(home, day):
    settings = Settings.load(home)
    moment = dt.datetime.combine(day, dt.time(12), tzinfo=settings.timezone)
    return Policy(settings, FakeClock(current=moment.astimezone(dt.timezone.utc)))


def test_deadline_boundaries(home):
    registry = Registry.load(home / "terminals")
    new = attrs.evolve(registry.operators["OP010002"], guide_issued=None, certified=None)
    first = dt.date(2026, 3, 1)
    assert policy_at(home, first + dt.timedelta(days=10)).training_problem(new, first) is None
    problem = policy_at(home, first + dt.timedelta(days=11)).training_problem(new, first)
    assert problem == "TRAINING GUIDE NOT ISSUED WITHIN 10 DAYS OF FIRST SIGN-ON 2026-03-01 (DUE 2026-03-11)"
    assert policy_at(home, first).training_problem(new, None) is None  # this is the first sign-on
    issued = attrs.evolve(new, guide_issued=dt.date(2026, 3, 20))  # late, but issued: the 60 days run
    assert policy_at(home, dt.date(2026, 5, 19)).training_problem(issued, first) is None
    assert policy_at(home, dt.date(2026, 5, 20)).training_problem(issued, first).startswith(
        "TRAINING NOT COMPLETED WITHIN 60 DAYS OF THE GUIDE'S ISSUE 2026-03-20 (DUE 2026-05-19)")
    done = attrs.evolve(issued, certified=dt.date(2026, 5, 1))
    assert policy_at(home, dt.date(2027, 5, 20)).training_problem(done, first) is None
    # Transactions: allowed inside the windows, NOT CERTIFIED after, CERTIFICATION EXPIRED after two years.
    assert policy_at(home, dt.date(2026, 3, 5)).operator_problem(new, first_signon=first) is None
    assert policy_at(home, dt.date(2026, 5, 20)).operator_problem(issued, first_signon=first).endswith("NOT CERTIFIED")
    assert "CERTIFICATION EXPIRED 2028-05-01" in policy_at(home, dt.date(2028, 5, 1)).operator_problem(done)
    warned = policy_at(home, dt.date(2026, 5, 1)).signon_warnings(registry.agencies["OR9990100"], issued, first)
    assert "WARNING - TRAINING MUST BE COMPLETED BY 2026-05-19" in warned


def test_representative_rule_and_registry_checks(home):
    registry = Registry.load(home / "terminals")
    assert {o.id for o in registry.operators.values() if o.representative} == {
        "OP000001", "OP010001", "OP020001", "OP030001", "OP040001", "OP050001"}
    assert all(o.trained for o in registry.operators.values())  # every demo operator: trained and current
    bus = registry.with_operator(Operator("OP040009", "OR999040Y", "inquiry", "x"))
    with pytest.raises(TrainingError, match="MUST FIRST HOLD ENTRY"):
        bus.with_training("OP040009", "issued", dt.date(2026, 11, 1), "entry")
    with pytest.raises(TrainingError, match="RECORD THE GUIDE FIRST"):
        bus.with_training("OP040009", "completed", dt.date(2026, 11, 1))
    with pytest.raises(TrainingError, match="IN THE FUTURE"):
        bus.with_training("OP040009", "issued", dt.date(2026, 11, 5), today=dt.date(2026, 11, 3))
    bus = bus.with_training("OP040009", "issued", dt.date(2026, 11, 1))
    with pytest.raises(TrainingError, match="BEFORE THE GUIDE WAS ISSUED"):
        bus.with_training("OP040009", "completed", dt.date(2026, 10, 1))
    unrepresented = attrs.evolve(bus.operators["OP040001"], representative=False)
    assert "HAS NO LEDS REPRESENTATIVE" in bus.with_operator(unrepresented).guide_problem(
        bus.operators["OP040009"], "inquiry")
    with pytest.raises(Exception, match="two LEDS representatives"):
        bus.with_operator(attrs.evolve(bus.operators["OP040009"], representative=True))


# -- `lems serve` as a process: the CLI, the console and terminals ----------------------------------

def lems(home, *words):
    return subprocess.run([sys.executable, "-m", "lems", *words, "--home", str(home)], capture_output=True,
                          text=True, timeout=60, check=False)


def test_serve_training_and_validation_with_the_console_clock(home):
    adjustable(home)
    proc, port = serve_process(home)
    clients = []
    try:
        cport = console_port(proc)
        added = lems(home, "operator", "add", "OP010007", "--ori", "OR9990100", "--level", "entry",
                     "--password", "Trainee#2026x", "--training", "none")
        assert added.returncode == 0 and "no training on record yet" in added.stdout, added
        c = client(home, port, "T0100001")
        clients.append(c)
        c.banner()
        reply = c.sign_on("OR9990100", "OP010007", "Trainee#2026x")
        assert reply.cls == "R" and "WARNING - TRAINING GUIDE MUST BE ISSUED BY" in reply.text, reply
        work = client(home, port, "T0100002")
        clients.append(work)
        work.banner()
        assert work.sign_on("OR9990100", "OP010001", PASSWORD).cls == "R"
        entered = work.request(EW.format(name="TESTER, PROCESS P", oca="VAL-P"))
        nic = re.search(r"NIC/(W\d{9})", entered.text).group(1)

        status, out = lems_console(home, cport, "clock", "advance", "11d")
        assert status == 0, out
        c.close()
        c = client(home, port, "T0100001")
        clients.append(c)
        c.banner()
        refused = c.sign_on("OR9990100", "OP010007", "Trainee#2026x")
        assert refused.cls == "E" and "TRAINING GUIDE NOT ISSUED" in refused.text and refused.text.startswith(".20.")
        issued = lems(home, "operator", "training", "OP010007", "issued")
        assert issued.returncode == 0, issued
        assert c.sign_on("OR9990100", "OP010007", "Trainee#2026x").cls == "R"  # in force at once
        future = lems(home, "operator", "training", "OP010007", "completed", "--date", "20991231")
        assert future.returncode != 0 and "IN THE FUTURE" in future.stderr, future

        status, out = lems_console(home, cport, "clock", "advance", "50d")  # the record is 61 days old
        assert status == 0, out
        status, out = lems_console(home, cport, "validation", "run")
        assert status == 0, out
        frame = wait_for(work, "$.V. VALIDATION LIST", timeout=10)
        assert f"NIC/{nic} MKE/EW OCA/VAL-P NAM/TESTER, PROCESS P" in frame.text
        status, out = lems_console(home, cport, "validation", "lists", "OR9990100")
        assert status == 0 and f"NIC/{nic}" in out and list_id(frame) in out, out
        status, out = lems_console(home, cport, "clock", "advance", "30d")
        assert status == 0, out
        notice = wait_for(work, "$.P. RECORD RETIRED - NOT VALIDATED", timeout=10)
        assert f"NIC/{nic}" in notice.text
        assert nic not in work.request(QW.format(name="TESTER, PROCESS P")).text
        c.close()  # 91 days after the guide: not completed within 60
        c = client(home, port, "T0100001")
        clients.append(c)
        c.banner()
        late = c.sign_on("OR9990100", "OP010007", "Trainee#2026x")
        assert late.cls == "E" and "TRAINING NOT COMPLETED" in late.text, late
        status, out = lems_console(home, cport, "training", "OP010007", "completed")
        assert status == 0, out
        assert c.sign_on("OR9990100", "OP010007", "Trainee#2026x").cls == "R"
    finally:
        for each in clients:
            each.close()
        stop(proc)


def test_an_interface_operator_is_held_to_the_deadlines(home, switch_factory, clock):
    adjustable(home)
    edit_registry(home, operators={"OP010002": {"guide_issued": None, "certified": None}})
    running = switch_factory()
    c = running.client("IF010001", listener="interfaces").connect()
    c.banner()
    query = QW.format(name="DOE, JOHN Q").replace("19910203", "19800101")
    assert c.request(query, opr="OP010002").cls == "R"  # its first use: the 10 days start
    assert run(running, "clock advance 11d").ok
    late = c.request(query, opr="OP010002")
    assert late.cls == "E" and late.text.startswith(".20. SIGN-ON REJECTED - TRAINING GUIDE NOT ISSUED"), late
    assert c.request(query, opr="OP010001").cls == "R"  # a trained operator is not held up


# -- bad input: a clear refusal, never a crash -------------------------------------------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from lems.wire.codec import Codec  # noqa: E402

PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="."), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lst=PRINTABLE, vln=PRINTABLE)
def test_vcl_fields_parse_or_are_refused_by_name(home, lst, vln):
    from lems.base.errors import Reject

    codec = Codec.from_dir(home / "formats")
    try:
        msg = codec.parse(f"VCL.OR9990100.LST/{lst}.VLN/{vln}")
    except Reject as reject:
        assert reject.code in (".12.", ".13.", ".31."), reject
        assert "LST" in reject.reason or "VLN" in reject.reason or reject.code == ".31.", reject
        return
    assert msg.get("LST").isalnum() and 8 <= len(msg.get("LST")) <= 10
    assert 1 <= len(msg.get("VLN")) <= 30


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(["training", "validation", "OP040001", "OR999040Y", "issued", "completed",
                                       "--level", "--date", "full", "20261101", "x", "run", "lists", "status",
                                       "record", "W000000001"]), min_size=1, max_size=6))
def test_console_words_never_crash(running, words):
    reply = running.call(console(running).execute, " ".join(words))
    assert not any(line.startswith("ERROR:") for line in reply.lines), (words, reply)


def test_recertification_recorded_from_the_console(home, switch_factory, clock):
    adjustable(home)
    edit_registry(home, operators={"OP010002": {"certified": dt.date(2024, 1, 2), "guide_issued": dt.date(2023, 12, 1)}})
    running = switch_factory()
    c = running.client("T0100002").connect()
    c.banner()
    signed = c.sign_on("OR9990100", "OP010002", PASSWORD)
    assert signed.cls == "R" and "CERTIFICATION EXPIRED 2026-01-02 - TRANSACTIONS WILL BE REFUSED" in signed.text
    query = QW.format(name="DOE, JOHN Q").replace("19910203", "19800101")
    refused = c.request(query)
    assert refused.cls == "E" and refused.text.startswith(".22. OPERATOR OP010002 CERTIFICATION EXPIRED")
    assert run(running, "training OP010002 completed").ok  # the recertification
    assert c.request(query).cls == "R"  # the session's next input sees the registry in force


def test_the_representative_rule_from_the_command_line(home):
    added = lems(home, "operator", "add", "OP040002", "--ori", "OR999040Y", "--level", "full", "--password",
                 "Trainee#2026x")
    assert added.returncode == 0 and "NO TRAINING RECORDED: LEDS REPRESENTATIVE OP040001" in added.stdout, added
    refused = lems(home, "operator", "training", "OP040002", "issued", "--level", "full")
    assert refused.returncode != 0 and "MUST FIRST HOLD FULL" in refused.stderr, refused
    assert lems(home, "operator", "training", "OP040001", "completed", "--level", "full").returncode == 0
    issued = lems(home, "operator", "training", "OP040002", "issued", "--level", "full", "--date", "20261101")
    assert issued.returncode == 0 and "guide issued 2026-11-01" in issued.stdout, issued
    bad = lems(home, "operator", "training", "OP040002", "completed", "--date", "2026-11-02")
    assert bad.returncode != 0 and "is not a date CCYYMMDD" in bad.stderr
    operator = Registry.load(home / "terminals").operators["OP040002"]
    assert (operator.guide_issued, operator.certified, operator.representative) == (dt.date(2026, 11, 1), None, False)
    first = lems(home, "operator", "add", "OP990001", "--ori", "WA9990100", "--level", "entry", "--password",
                 "Trainee#2026x")
    assert first.returncode == 0 and "LEDS representative of WA9990100" in first.stdout, first


def test_a_long_list_comes_in_pages_and_a_cleared_record_is_not_retired(adjustable_switch):
    running = adjustable_switch
    validation = running.switch.router.validation
    items = [validation.item_for("VL000042", r) for r in
             [attrs.evolve(validation.find("W000000001")[0], nic=f"W{n:09d}") for n in range(1, 251)]]
    now = running.switch.clock.now()
    frames = validation.list_frames("VL000042", "OR9990200", "TEST COUNTY SHERIFFS OFFICE", now,
                                    now + dt.timedelta(days=30), items)
    assert [f.split("\n")[0] for f in frames] == [f"$.V. VALIDATION LIST VL000042 PAGE {n} OF 3" for n in (1, 2, 3)]
    assert sum(f.count("\nNIC/") for f in frames) == 250 and "VCL.OR9990200.LST/VL000042" in frames[-1]
    assert all(len(f) < running.switch.settings.limits.max_payload for f in frames)

    c = running.signed_on(*MOBILE)
    nic = enter(c, "TESTER, CLEARED D", "VAL-4")
    assert run(running, "clock advance 61d").ok
    assert f"NIC/{nic}" in wait_for(c, "$.V. VALIDATION LIST").text
    cleared = c.request(f"CW.OR9990100.NAM/TESTER, CLEARED D.NIC/{nic}.DCL/20270101")
    assert cleared.cls == "R", cleared
    assert run(running, "validation status OR9990100").lines[0].endswith("0 record(s) at risk, 0 retired")
    assert run(running, "clock advance 30d").ok
    nothing_more(c)
    assert "CLOSED" in run(running, "validation lists OR9990100").lines[1]
