"""lems.admin.operations and the console's shell (lems.admin.shell), without SSH (the switch runs for real; calls go to its reactor)."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from lems.admin.operations import Admin, AdminError
from lems.tools.client import LinkClosed
from lems.admin.shell import Console
from lems.base.registry import Registry

QW_DOE = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"


def admin(running) -> Admin:
    return Admin(running.switch, running.service)


def test_status_counts_connections_traffic_and_queues(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    assert c.request(QW_DOE).cls == "R"
    s = running.call(lambda: admin(running).status())
    assert (s.connections, s.sessions, s.signed_on) == (1, 1, 1)
    # SON and QW in; the banner and the two replies out, all within the last minute
    assert s.rate_in == pytest.approx(2 / 60) and s.rate_out == pytest.approx(3 / 60)
    assert s.locked == ()
    assert s.depths == {} and s.open_hits == 0
    running.clock.advance(61)
    assert running.call(lambda: admin(running).status()).rate_in == 0


def test_revoke_agency_closes_its_sessions_and_reinstate_lets_it_back(running):
    mine = running.signed_on("T0200001", "OR9990200", "OP020001")
    other = running.signed_on("T0100001", "OR9990100", "OP010001")
    change = running.call(lambda: admin(running).set_status("revoke", "or9990200"))
    assert (change.kind, change.target, change.before, change.after, change.closed) == (
        "agency", "OR9990200", "active", "revoked", ("T0200001",))
    assert "AGENCY OR9990200 REVOKED" in mine.receive().text
    with pytest.raises(LinkClosed):
        mine.receive(timeout=5)
    assert other.request("HBT").cls == "R"  # nobody else is touched
    assert Registry.load(running.home / "terminals").agencies["OR9990200"].status == "revoked"
    refused = running.client("T0200001").connect().receive()
    assert refused.cls == "E" and refused.text.startswith(".21. AGENCY OR9990200 IS REVOKED")

    change = running.call(lambda: admin(running).set_status("reinstate", "OR9990200"))
    assert (change.before, change.after, change.closed) == ("revoked", "active", ())
    assert Registry.load(running.home / "terminals").agencies["OR9990200"].status == "active"
    running.signed_on("T0200001", "OR9990200", "OP020001")


def test_suspend_a_terminal_and_unknown_targets(running):
    change = running.call(lambda: admin(running).set_status("suspend", "T0100002"))
    assert (change.kind, change.after, change.closed) == ("terminal", "suspended", ())
    assert running.switch.registry.terminals["T0100002"].status == "suspended"
    with pytest.raises(AdminError, match="NO AGENCY OR TERMINAL XX1"):
        running.call(lambda: admin(running).set_status("suspend", "xx1"))
    with pytest.raises(AdminError, match="NO OPERATOR OP999999"):
        running.call(lambda: admin(running).unlock("OP999999", by="test"))


def test_reload_swaps_in_a_changed_registry_and_closes_who_it_no_longer_admits(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    on_disk = Registry.load(running.home / "terminals")
    on_disk.with_terminal(attrs.evolve(on_disk.terminals["T0100001"], status="suspended"))
    before = running.switch.registry
    done = running.call(lambda: admin(running).reload())
    assert done.closed == ("T0100001",) and done.terminals == len(on_disk.terminals)
    assert running.switch.registry is not before
    assert running.switch.registry.terminals["T0100001"].status == "suspended"
    assert "NO LONGER ADMITTED" in c.receive().text


def test_reload_with_broken_routes_keeps_everything(running):
    sw = running.switch
    kept = (sw.codec, sw.registry, sw.router)
    (running.home / "routes" / "routes.toml").write_text("[[inquiry]\nbroken")
    with pytest.raises(AdminError, match="^RUNNING CONFIGURATION KEPT: "):
        running.call(lambda: admin(running).reload())
    assert (sw.codec, sw.registry, sw.router) == kept
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    assert c.request(QW_DOE).cls == "R"


def test_agreements_due_lists_reviews_within_the_horizon(running):
    today = running.switch.policy.today()
    reg = running.switch.registry
    agency = reg.agencies["OR999040Y"]
    running.switch.registry = reg.with_agency(attrs.evolve(
        agency, agreement=attrs.evolve(agency.agreement, review_due=today + dt.timedelta(days=10))))
    due = running.call(lambda: admin(running).agreements_due(30))
    assert [(a.ori, line) for a, line in due] == [
        ("OR999040Y", f"USER AGREEMENT REVIEW DUE {(today + dt.timedelta(days=10)).isoformat()}")]
    assert running.call(lambda: admin(running).agreements_due(5)) == []


def test_console_lines_are_parsed_printed_and_audited(running):
    console = Console(admin(running), "alice@example")
    reply = running.call(lambda: console.execute("suspend T0500001"))
    assert reply.ok and reply.lines == ["terminal T0500001 suspended (was active)"]
    # The record is found by the terminal it touched, with the administrator as operator.
    rows = running.call(lambda: admin(running).audit(terminal="T0500001", kind="admin"))
    assert [(r.event, r.operator, r.text, r.outcome) for r in rows] == [
        ("CONSOLE SUSPEND", "ALICE@EXAMPLE", "suspend T0500001", "OK")]
    assert running.call(lambda: console.execute("agreements")).lines == ["usage: agreements due [DAYS]"]
    # One grammar for revoke, suspend and reinstate: the kind word is optional, and checked when given.
    assert running.call(lambda: console.execute("reinstate terminal t0500001")).lines == [
        "terminal T0500001 active (was suspended)"]
    assert running.call(lambda: console.execute("suspend agency OR999050H")).lines[0] == (
        "agency OR999050H suspended (was active)")
    assert running.call(lambda: console.execute("reinstate OR999050H")).ok
    assert running.call(lambda: console.execute("suspend terminal OR999050H")).lines == [
        "REFUSED: NO TERMINAL OR999050H"]
    assert running.call(lambda: console.execute("suspend ori OR999050H")).lines == [
        "usage: suspend [agency|terminal] ID"]
    assert running.call(lambda: console.execute("help sessons")).lines == [
        "no command 'sessons', did you mean 'sessions'?"]
    assert running.call(lambda: console.execute("audit last x")).ok is False
    assert running.call(lambda: console.execute("help unlock")).lines == [
        "unlock OPERATOR", "  release an operator locked after failed sign-ons"]
    assert running.call(lambda: console.execute("   ")).lines == []
    assert running.call(lambda: console.execute("exit")).close


def test_completion(running):
    console = Console(admin(running))
    def complete(text):
        return running.call(lambda: console.complete(text))

    # The built-in commands, and those features register (schedule, validation, training ...).
    from lems.admin.shell import COMMANDS
    word, everything = complete("")
    assert word == "" and everything == sorted(COMMANDS)
    assert {"help", "status", "sessions", "terminals", "agencies", "agreements", "queue", "hits", "locked", "revoke",
            "suspend", "reinstate", "unlock", "send", "reload", "clock", "audit", "quit"} <= set(everything)
    assert complete("s") == ("s", sorted(c for c in COMMANDS if c.startswith("s")))
    assert {"send", "sessions", "status", "suspend"} <= set(complete("s")[1])
    assert complete("REV") == ("REV", ["revoke"])
    assert complete("revoke t01") == ("t01", ["T0100001", "T0100002"])
    assert complete("revoke OR99902") == ("OR99902", ["OR9990200"])
    assert complete("revoke te") == ("te", ["terminal"])
    assert complete("suspend terminal T02") == ("T02", ["T0200001"])
    assert complete("reinstate agency T02") == ("T02", [])
    assert complete("agreements ") == ("", ["due"])
    assert complete("audit ori OR99902") == ("OR99902", ["OR9990200"])
    assert complete("audit ori OR9990200 l") == ("l", ["last"])
    assert complete("status x") == ("x", [])
