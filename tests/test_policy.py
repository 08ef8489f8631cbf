"""Identity and policy (PROTOCOL.md 4 and 5.6): every rule both ways; the important ones over TLS."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from lems.base import credentials
from lems.base.clock import UTC, FakeClock
from lems.base.conf import Settings
from lems.base.errors import Reject
from lems.wire.message import Message
from lems.core.policy import Policy
from lems.base.registry import Registry

from conftest import PASSWORD, edit_registry

QW = "QW.{ori}.NAM/DOE, JOHN Q.DOB/19800101"
PACIFIC = dt.timezone(dt.timedelta(hours=-8))  # November: PST




def code(out):
    return out.text[:4]


# -- ORIs and management control agreements -------------------------------------------

def test_dispatch_sends_for_served_agency_not_for_others(running):
    c = running.signed_on("T0300001", "OR999030C", "OP030001")
    assert c.request(QW.format(ori="OR9990100")).cls == "R"
    assert c.request(QW.format(ori="OR9990200")).cls == "R"
    refused = c.request(QW.format(ori="OR9990000"))
    assert refused.cls == "E" and code(refused) == ".21."
    assert "OR9990000" in refused.text


def test_ori_spoofing_is_21(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    out = c.request(QW.format(ori="OR9990200"))
    assert code(out) == ".21." and "ORIGINAL MESSAGE" in out.text


# -- criminal history ------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("QH.OR9990100.NAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101.ATN/DET TEST", ".23."),
    ("QH.OR9990100.NAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101.PUR/R.ATN/DET TEST", ".23."),
    ("QR.OR9990100.FBI/999000A01.PUR/C", ".23."),
])
def test_iii_purpose_and_attention(running, text, expected):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    assert code(c.request(text)) == expected


def test_iii_allowed_and_disseminated(running):
    from lems.store import journal

    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    out = c.request("QH.OR9990100.NAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101.PUR/C.ATN/DET TEST")
    assert out.cls == "R", out.text
    rows = running.call(lambda: journal.search_disseminations(running.switch.store.conn, ori="OR9990100"))
    assert rows and rows[-1].atn == "DET TEST" and rows[-1].pur == "C"


def test_iii_refused_to_non_criminal_justice(running):
    c = running.signed_on("T0400001", "OR999040Y", "OP040001")
    assert code(c.request("QH.OR999040Y.FBI/999000A01.PUR/C.ATN/CLERK")) == ".22."


# -- investigative files -------------------------------------------------------------------

def test_investigative_files_refused_to_non_criminal_justice(running):
    c = running.signed_on("T0400001", "OR999040Y", "OP040001")
    assert code(c.request(QW.format(ori="OR999040Y"))) == ".22."


# -- Oregon motor vehicle purposes ------------------------------------------------------------

def test_school_bus_dq_needs_purpose(running):
    c = running.signed_on("T0400001", "OR999040Y", "OP040001")
    refused = c.request("DQ.OR999040Y.OR.TXTNAM/DOE, JOHN Q.DOB/19800101")
    assert code(refused) == ".22." and "PUR" in refused.text
    wrong = c.request("DQ.OR999040Y.OR.TXTNAM/DOE, JOHN Q.DOB/19800101.PUR/C")
    assert code(wrong) == ".22."


def test_school_bus_dq_with_purpose_f_passes_policy(running):
    c = running.signed_on("T0400001", "OR999040Y", "OP040001")
    out = c.request("DQ.OR999040Y.OR.TXTNAM/DOE, JOHN Q.DOB/19800101.PUR/F")
    assert code(out) not in (".21.", ".22.", ".23.", ".25."), out.text


# -- prohibited persons -------------------------------------------------------------------------

def test_prohibited_persons_inquiry_needs_pur_f_and_firearms_grant(running):
    health = running.signed_on("T0500001", "OR999050H", "OP050001")
    assert health.request("QPP.OR999050H.NAM/ROE, RICHARD.DOB/19750505.PUR/F").cls == "R"
    assert code(health.request("QPP.OR999050H.NAM/ROE, RICHARD.DOB/19750505.PUR/C")) == ".22."
    bus = running.signed_on("T0400001", "OR999040Y", "OP040001")
    assert code(bus.request("QPP.OR999040Y.NAM/ROE, RICHARD.DOB/19750505.PUR/F")) == ".22."


def test_prohibited_persons_entry_only_by_designated_agency(running):
    police = running.signed_on("T0100001", "OR9990100", "OP010001")
    health = running.signed_on("T0500001", "OR999050H", "OP050001")
    text = "EPP.{}.NAM/ROE, ROBERTA.SEX/F.RAC/W.DOB/19760606.PPT/COMMITMENT.ISD/20260101.OCA/PP-1"
    allowed = health.request(text.format("OR999050H"))
    assert code(allowed) not in (".21.", ".22.", ".12.", ".13."), allowed.text
    out = police.request(text.format("OR9990100"))
    assert code(out) == ".22." and "DESIGNATED" in out.text


# -- operators ------------------------------------------------------------------------------------

def test_training_level_limits_keys(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010002")  # inquiry level
    assert c.request(QW.format(ori="OR9990100")).cls == "R"
    out = c.request("EG.OR9990100.SER/LVLGUN0001.MAK/GLK.CAL/9MM.TYP/PI.DOT/20260101.OCA/LVL-1")
    assert code(out) == ".22." and "TRAINING LEVEL" in out.text


def test_expired_certification_is_22_with_warning_at_signon(home, switch_factory, clock):
    edit_registry(home, operators={"OP010001": {"certified": dt.date(2024, 1, 2)}})
    running = switch_factory()
    c = running.client("T0100001").connect()
    c.banner()
    signed = c.sign_on("OR9990100", "OP010001", PASSWORD)
    assert signed.cls == "R" and "CERTIFICATION EXPIRED" in signed.text
    out = c.request(QW.format(ori="OR9990100"))
    assert code(out) == ".22." and "CERTIFICATION EXPIRED" in out.text


def test_certification_due_soon_warns(home, switch_factory, clock):
    edit_registry(home, operators={"OP010001": {"certified": clock.now().date().replace(year=2024) + dt.timedelta(days=10)}})
    c = switch_factory().signed_on("T0100001", "OR9990100", "OP010001")
    assert c.request(QW.format(ori="OR9990100")).cls == "R"


def test_no_background_check_is_22(home, switch_factory):
    edit_registry(home, operators={"OP010001": {"background_check": None}})
    c = switch_factory().signed_on("T0100001", "OR9990100", "OP010001")
    assert code(c.request(QW.format(ori="OR9990100"))) == ".22."


def test_five_bad_passwords_lock_the_operator(running):
    c = running.client("T0100001").connect()
    c.banner()
    for _ in range(5):
        assert code(c.sign_on("OR9990100", "OP010001", "Wrong#1")) == ".20."
    locked = c.sign_on("OR9990100", "OP010001", PASSWORD)
    assert code(locked) == ".20." and "LOCKED" in locked.text
    assert running.call(lambda: running.switch.unlock_operator("OP010001"))
    assert c.sign_on("OR9990100", "OP010001", PASSWORD).cls == "R"


def test_failures_outside_the_window_do_not_lock(running, clock):
    c = running.client("T0100001").connect()
    c.banner()
    for _ in range(4):
        c.sign_on("OR9990100", "OP010001", "Wrong#1")
    clock.advance(16 * 60)
    c.sign_on("OR9990100", "OP010001", "Wrong#1")
    assert c.sign_on("OR9990100", "OP010001", PASSWORD).cls == "R"


def test_unknown_operator_locks_the_same_way(running):
    c = running.client("T0100001").connect()
    c.banner()
    replies = [c.sign_on("OR9990100", "OP999999", "Wrong#1").text.split("\n")[0] for _ in range(6)]
    assert replies[0] == ".20. SIGN-ON REJECTED" and "LOCKED" in replies[5]


def test_another_agencys_operator_cannot_be_locked_from_here(running, monkeypatch):
    """Issue 14 finding 6: six SONs naming OP020001 (OR9990200) from a terminal of OR9990100."""
    checked = []
    real = credentials.verify_password
    monkeypatch.setattr(credentials, "verify_password", lambda pw, stored: checked.append(stored) or real(pw, stored))
    c = running.client("T0100001").connect()
    c.banner()
    foreign = [c.sign_on("OR9990100", "OP020001", "x").text.split("\n")[0] for _ in range(6)]
    running.clock.advance(10)  # the terminal's sign-on rate (a burst of 10) fills again
    unknown = [c.sign_on("OR9990100", "OP999999", "x").text.split("\n")[0] for _ in range(6)]
    # The same words as for an unknown id, and the same lock after five (under a key of its own) ...
    assert foreign == unknown
    assert foreign[0] == ".20. SIGN-ON REJECTED" and "LOCKED" in foreign[5]
    # ... checked against the dummy hash, as an unknown id is (same cost), never the operator's own ...
    assert checked[:5] == [credentials.DUMMY_HASH] * 5
    # ... and OP020001 itself is not locked: it signs on at its own agency.
    assert "OP020001" not in running.call(running.switch.locked_operators)
    running.signed_on("T0200001", "OR9990200", "OP020001")  # asserts SIGN-ON ACCEPTED
    # A served agency's operator is another matter: the dispatch terminal may sign OP020001 on
    # for OR9990200, and failures there do count against it.
    d = running.client("T0300001").connect()
    d.banner()
    for _ in range(5):
        assert code(d.sign_on("OR9990200", "OP020001", "x")) == ".20."
    assert "OP020001" in running.call(running.switch.locked_operators)


def test_interface_header_operator_is_folded_to_upper_case(running):
    """Issue 14 finding 11 (PROTOCOL.md 2): "op010001" in an interface header is OP010001."""
    c = running.client("IF010001").connect()
    c.banner()
    reply = c.request(QW.format(ori="OR9990100"), opr="op010001")
    assert reply.cls == "R", reply


def test_two_factor_operator(running, clock):
    c = running.client("T0100001").connect()
    c.banner()
    assert code(c.sign_on("OR9990100", "OP010003", PASSWORD)) == ".20."  # OTP missing
    assert code(c.sign_on("OR9990100", "OP010003", PASSWORD, otp="000000")) == ".20."
    otp = credentials.totp_now("JBSWY3DPEHPK3PXP", clock.now().timestamp())
    assert c.sign_on("OR9990100", "OP010003", PASSWORD, otp=otp).cls == "R"


# -- agreements, agencies, terminals ----------------------------------------------------------------

def test_lapsed_agreement_is_25_at_connect(home, switch_factory, clock):
    registry = Registry.load(home / "terminals")
    agreement = attrs.evolve(registry.agencies["OR9990100"].agreement,
                             review_due=clock.now().date() - dt.timedelta(days=60))
    edit_registry(home, agencies={"OR9990100": {"agreement": agreement}})
    c = switch_factory().client("T0100001").connect()
    out = c.receive()
    assert out.cls == "E" and code(out) == ".25." and "REVIEW OVERDUE" in out.text


def test_review_due_soon_warns_at_signon(home, switch_factory, clock):
    registry = Registry.load(home / "terminals")
    agreement = attrs.evolve(registry.agencies["OR9990100"].agreement,
                             review_due=clock.now().date() + dt.timedelta(days=10))
    edit_registry(home, agencies={"OR9990100": {"agreement": agreement}})
    c = switch_factory().client("T0100001").connect()
    c.banner()
    signed = c.sign_on("OR9990100", "OP010001", PASSWORD)
    assert signed.cls == "R" and "WARNING - USER AGREEMENT REVIEW DUE" in signed.text


def test_served_agency_agreement_lapsed_refuses_traffic_for_it(home, switch_factory, clock):
    registry = Registry.load(home / "terminals")
    agreement = attrs.evolve(registry.agencies["OR9990200"].agreement,
                             notice=clock.now().date() - dt.timedelta(days=31))
    edit_registry(home, agencies={"OR9990200": {"agreement": agreement}})
    c = switch_factory().signed_on("T0300001", "OR999030C", "OP030001")
    assert c.request(QW.format(ori="OR9990100")).cls == "R"
    assert code(c.request(QW.format(ori="OR9990200"))) == ".25."


@pytest.mark.parametrize("status", ["revoked", "suspended"])
def test_revoked_or_suspended_terminal_is_21(home, switch_factory, status):
    edit_registry(home, terminals={"T0100001": {"status": status}})
    out = switch_factory().client("T0100001").connect().receive()
    assert code(out) == ".21." and status.upper() in out.text


def test_revoked_agency_is_21(home, switch_factory):
    edit_registry(home, agencies={"OR9990100": {"status": "revoked"}})
    out = switch_factory().client("T0100002").connect().receive()
    assert code(out) == ".21."


def test_receive_only_terminal_sends_nothing(home, switch_factory):
    edit_registry(home, terminals={"T0100002": {"type": "receive-only"}})
    c = switch_factory().signed_on("T0100002", "OR9990100", "OP010001")
    assert code(c.request(QW.format(ori="OR9990100"))) == ".22."


# -- session timers with the injected clock ----------------------------------------------------------

def test_workstation_locks_after_30_minutes_and_disconnects_after_60(running, clock):
    from lems.tools.client import LinkClosed

    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    clock.advance(29 * 60)
    running.tick()
    assert c.request("HBT").text == "HBT"  # heartbeats are not operator activity
    clock.advance(60)
    running.tick()
    notice = c.receive()
    assert notice.cls == "S" and "SESSION LOCKED" in notice.text
    # Input while locked is still someone at the terminal: the 60 minutes start again from it.
    assert code(c.request(QW.format(ori="OR9990100"))) == ".20."
    clock.advance(59 * 60)
    running.tick()
    assert c.request("HBT").text == "HBT"
    clock.advance(60)
    running.tick()
    assert "DISCONNECTED" in c.receive().text
    with pytest.raises(LinkClosed):
        c.receive(timeout=5)


def test_activity_keeps_the_session_open(running, clock):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    for _ in range(3):
        clock.advance(20 * 60)
        running.tick()
        assert c.request(QW.format(ori="OR9990100")).cls == "R"


@pytest.mark.parametrize("terminal, ori, operator", [("T0100002", "OR9990100", "OP010001"),
                                                     ("T0300001", "OR999030C", "OP030001")])
def test_mobile_and_dispatch_are_exempt(running, clock, terminal, ori, operator):
    c = running.signed_on(terminal, ori, operator)
    clock.advance(3 * 3600)
    running.tick()
    assert c.request(QW.format(ori="OR9990100")).cls == "R"


# -- administrative message windows (unit: the rule itself, in the configured zone) ----------------------

@pytest.fixture
def policy(home):
    return Policy(Settings.load(home), FakeClock())


def _am(body="PLEASE CALL"):
    return Message("AM", "OR999040Y", (), ("OR9990100",), None, body)


def _at(policy, local: dt.datetime):
    policy.clock.current = local.astimezone(UTC)


class _Spec:
    category, action, level = "admin", "admin", "inquiry"


@pytest.mark.parametrize("local, allowed", [
    (dt.datetime(2026, 11, 3, 10, 0, tzinfo=PACIFIC), False),   # Tuesday 10:00
    (dt.datetime(2026, 11, 3, 12, 30, tzinfo=PACIFIC), True),   # lunch window
    (dt.datetime(2026, 11, 3, 13, 0, tzinfo=PACIFIC), False),
    (dt.datetime(2026, 11, 3, 17, 0, tzinfo=PACIFIC), True),
    (dt.datetime(2026, 11, 3, 7, 59, tzinfo=PACIFIC), True),
    (dt.datetime(2026, 11, 3, 8, 0, tzinfo=PACIFIC), False),
    (dt.datetime(2026, 11, 7, 10, 0, tzinfo=PACIFIC), True),    # Saturday
    (dt.datetime(2026, 11, 11, 10, 0, tzinfo=PACIFIC), True),   # Veterans Day, a state holiday
])
def test_non_criminal_justice_am_window(policy, home, local, allowed):
    registry = Registry.load(home / "terminals")
    _at(policy, local)
    agency = registry.agencies["OR999040Y"]
    if allowed:
        policy._administrative(agency, _am(), _Spec())
    else:
        with pytest.raises(Reject) as refused:
            policy._administrative(agency, _am(), _Spec())
        assert refused.value.code == ".24."


def test_emergency_am_always_allowed_and_cj_unrestricted(policy, home):
    registry = Registry.load(home / "terminals")
    _at(policy, dt.datetime(2026, 11, 3, 10, 0, tzinfo=PACIFIC))
    policy._administrative(registry.agencies["OR999040Y"], _am("EMR/Y BUS ACCIDENT"), _Spec())
    policy._administrative(registry.agencies["OR9990100"], _am(), _Spec())


def test_non_criminal_justice_may_not_send_aml(policy, home):
    registry = Registry.load(home / "terminals")
    aml = Message("AML", "OR999040Y", (), ("OR9990100",), None, "X")
    with pytest.raises(Reject) as refused:
        policy._administrative(registry.agencies["OR999040Y"], aml, _Spec())
    assert refused.value.code == ".24."


def test_agreement_rules_table(policy, home):
    agency = Registry.load(home / "terminals").agencies["OR9990100"]
    today = policy.today()
    ok = agency.agreement
    cases = {
        "signed in future": (attrs.evolve(ok, signed=today + dt.timedelta(days=1)), "NO SIGNED"),
        "review overdue past grace": (attrs.evolve(ok, review_due=today - dt.timedelta(days=31)), "OVERDUE"),
        "review overdue within grace": (attrs.evolve(ok, review_due=today - dt.timedelta(days=29)), None),
        "notice 30 days ago": (attrs.evolve(ok, notice=today - dt.timedelta(days=30)), "TERMINATED"),
        "notice 29 days ago": (attrs.evolve(ok, notice=today - dt.timedelta(days=29)), None),
        "official left 30 days ago": (attrs.evolve(ok, official_left=today - dt.timedelta(days=30)), "LAPSED"),
    }
    for name, (agreement, expected) in cases.items():
        problem = policy.agreement_problem(attrs.evolve(agency, agreement=agreement))
        assert (problem is None) if expected is None else (expected in (problem or "")), name


def test_status_message_control_terminal_only(policy, home):
    registry = Registry.load(home / "terminals")
    sm = Message("SM", "OR9990100", (), ("APB",), None, "X")
    with pytest.raises(Reject) as refused:
        policy._status(registry.agencies["OR9990100"], sm, _Spec())
    assert refused.value.code == ".22."
    policy._status(registry.agencies["OR9990000"], sm, _Spec())
