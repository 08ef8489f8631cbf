"""Firearms instant checks for dealers (PROTOCOL.md 10) over real HTTPS against a running switch.

Every request opens a TLS connection to the switch's dealer listener trusting
only the home's var/pki/ca.crt; the console is the real one (in process), the
clock the switch's (a FakeClock under the emulated clock for the 30-minute rule).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import serve_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_delivery import wait_for

from lems.admin.operations import Admin
from lems.admin.shell import Console
from lems.base.dealers import Dealers, hash_key
from lems.core import fics as fics_mod

DEMO_KEY = "demo-dealer-key-2026"
TXN = re.compile(r"^F\d{4}-\d{6}$")


def buyer(last="CLEAN", first="CAROL", middle="C", dob="1990-09-09", sex="F", **extra):
    out = {"last_name": last, "first_name": first, "dob": dob, "sex": sex, "id_type": "DL",
           "id_number": "OR1234567", "id_state": "OR", **extra}
    if middle is not None:
        out["middle_name"] = middle
    return out


def check_body(serials=("ABC12345",), ref="INV-1", **kw):
    return {"dealer_reference": ref, "buyer": buyer(**kw),
            "firearms": [{"type": "handgun", "make": "GLOCK", "model": "19", "caliber": "9MM", "serial": s}
                         for s in serials]}


class Dealer:
    """A dealer's point-of-sale system: HTTPS to the dealer listener, trusting the home's CA only."""

    def __init__(self, home: Path, port: int, key: str | None = DEMO_KEY) -> None:
        self.port = port
        self.key = key
        self.context = ssl.create_default_context(cafile=str(home / "var" / "pki" / "ca.crt"))

    def request(self, method: str, path: str, body=None, raw: bytes | None = None, key: str | None = "default",
                headers=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=15)
        try:
            hdrs = {"Content-Type": "application/json", **(headers or {})}
            key = self.key if key == "default" else key
            if key is not None:
                hdrs["Authorization"] = f"Bearer {key}"
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            conn.request(method, path, body=data, headers=hdrs)
            reply = conn.getresponse()
            text = reply.read()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text.decode()
            return reply.status, parsed, {k.lower(): v for k, v in reply.getheaders()}
        finally:
            conn.close()

    def submit(self, body=None, **kw):
        return self.request("POST", "/fics/v1/checks", body if body is not None else check_body(**kw))


def dealer_of(running, key=DEMO_KEY) -> Dealer:
    return Dealer(running.home, running.service.dealer_port, key)


def console(running) -> Console:
    return Console(Admin(running.switch, running.service), who="examiner1")


def run(running, line):
    return running.call(console(running).execute, line)


def stored(running) -> int:
    return running.call(lambda: running.switch.store.conn.execute("SELECT COUNT(*) FROM fics_check").fetchone()[0])


def conf(home: Path, **values) -> None:
    path = home / "conf" / "lems.toml"
    text = path.read_text()
    for key, value in values.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n, key
    path.write_text(text)


def journal(running, event_like: str):
    return running.call(lambda: running.switch.store.conn.execute(
        "SELECT event, operator, text, outcome FROM journal WHERE event LIKE ? ORDER BY seq", (event_like,)).fetchall())


# -- decisions -------------------------------------------------------------------------------


def test_clean_buyer_is_approved_with_unique_approval_numbers(running):
    dealer = dealer_of(running)
    code, first, headers = dealer.submit()
    assert code == 201, first
    assert set(first) == {"transaction", "status", "approval_number", "estimated_completion", "received",
                          "dealer_reference", "firearms"}
    assert TXN.match(first["transaction"]) and first["status"] == "approved" and first["approval_number"]
    assert first["estimated_completion"] is None and first["dealer_reference"] == "INV-1" and first["firearms"] == 1
    assert dt.datetime.fromisoformat(first["received"].replace("Z", "+00:00"))
    assert headers["location"] == f"/fics/v1/checks/{first['transaction']}"
    assert headers["content-type"].startswith("application/json")
    code, second, _ = dealer.submit(ref="INV-2", serials=("X1", "X2"))
    assert code == 201 and second["status"] == "approved" and second["firearms"] == 2
    assert second["transaction"] != first["transaction"] and second["approval_number"] != first["approval_number"]
    assert dealer.request("GET", f"/fics/v1/checks/{first['transaction']}")[1] == first
    code, listed, _ = dealer.request("GET", "/fics/v1/checks?status=approved")
    assert code == 200 and [c["transaction"] for c in listed["checks"]] == [second["transaction"],
                                                                             first["transaction"]]
    assert dealer.request("GET", "/fics/v1/checks?status=pending")[1] == {"checks": []}
    assert dealer.request("GET", "/fics/v1/checks?status=maybe")[0] == 422
    # Journaled, and the criminal-history part disseminated with PUR/F and the dealer as ATN.
    assert [r[0] for r in journal(running, "FICS %")][:2] == ["FICS CHECK", "FICS APPROVED"]
    rows = running.call(lambda: running.switch.store.conn.execute(
        "SELECT mke, pur, atn, subject, ori FROM dissemination ORDER BY seq").fetchall())
    assert rows[-2:] == [("QH", "F", "D0000001", "CLEAN, CAROL C", "OR9990000")] * 2


def test_prohibited_person_is_denied_without_saying_why(running):
    code, body, _ = dealer_of(running).submit(last="ROE", first="RICHARD", middle=None, dob="1975-05-05", sex="M")
    assert code == 201 and body["status"] == "denied" and body["approval_number"] is None
    text = json.dumps(body)
    for leak in ("PPF", "PROHIBIT", "P000000001", "OR999050H", "HISTORY", "reason"):
        assert leak.lower() not in text.lower()
    check = running.call(running.switch.fics.get, body["transaction"])
    assert any(r["search"] == "QPP" and r["note"] == "PROHIBITED" for r in check.reasons)


def test_relief_granted_is_not_a_prohibition(home, switch_factory):
    # Contract with the prohibited-persons work: a PPF record carrying RLD is not a prohibition.
    with (home / "routes" / "records" / "prohibited.jsonl").open("a") as f:
        for nic, name, fields in (("P000000901", "RELIEVED, RITA", [["RLD", "20250101"]]),
                                  ("P000000902", "STILLBARRED, SAM", [])):
            f.write(json.dumps({"file": "prohibited", "nic": nic, "ori": "OR999050H", "entered": "20240101",
                                "set": "LEDS", "fields": [["NAM", name], ["SEX", "F"], ["DOB", "19700303"],
                                                          ["PPT", "COMMITMENT"], *fields]}) + "\n")
    running = switch_factory()
    dealer = dealer_of(running)
    assert dealer.submit(last="RELIEVED", first="RITA", middle=None, dob="1970-03-03")[1]["status"] == "approved"
    assert dealer.submit(last="STILLBARRED", first="SAM", middle=None, dob="1970-03-03")[1]["status"] == "denied"


def test_stolen_gun_is_denied_and_its_agency_notified_queued_when_offline(running):
    code, body, _ = dealer_of(running).submit(serials=("SAFE0001", "TESTGUN001"))
    assert code == 201 and body["status"] == "denied"
    assert "TESTGUN001" not in json.dumps(body) and "STOLEN" not in json.dumps(body).upper()
    # Nobody of OR9990100 (which entered TESTGUN001) is connected: queued, and delivered at sign-in.
    queued = running.call(running.switch.router.delivery.queue_for, "OR9990100")
    assert any(body["transaction"] in f.text for f in queued)
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    notice = wait_for(c, body["transaction"])
    assert notice.cls == "U"
    assert "DEALER/D0000001 TEST SPORTING GOODS" in notice.text and "SER/TESTGUN001" in notice.text
    assert "NIC/G000000001" in notice.text and "NIC/G000000002" in notice.text
    # Connected now: the next one is delivered at once.
    code, again, _ = dealer_of(running).submit(serials=("TESTGUN001",))
    assert wait_for(c, again["transaction"]).cls == "U"
    assert journal(running, "FICS STOLEN GUN NOTICE")


def test_wanted_person_is_pending_for_an_examiner_who_approves(running):
    dealer = dealer_of(running)
    code, body, _ = dealer.submit(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M", race="W")
    assert code == 201 and body["status"] == "pending" and body["approval_number"] is None
    assert "WANT" not in json.dumps(body).upper()
    txn = body["transaction"]
    assert [c["transaction"] for c in dealer.request("GET", "/fics/v1/checks?status=pending")[1]["checks"]] == [txn]
    pending = run(running, "fics pending")
    assert pending.ok and txn in "\n".join(pending.lines) and "wanted" in "\n".join(pending.lines)
    approved = run(running, f"fics approve {txn}")
    assert approved.ok and "APPROVED" in approved.lines[0], approved
    now = dealer.request("GET", f"/fics/v1/checks/{txn}")[1]
    assert now["status"] == "approved" and now["approval_number"]
    again = run(running, f"fics deny {txn}")
    assert not again.ok and "NOT PENDING" in again.lines[0]
    assert journal(running, "FICS EXAMINER APPROVED")[0][1] == "EXAMINER1"
    assert not run(running, "fics approve F2026-999999").ok


def test_protection_order_and_history_hold_and_examiner_denies(running):
    dealer = dealer_of(running)
    code, body, _ = dealer.submit(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M")
    assert body["status"] == "pending"
    assert run(running, f"fics deny {body['transaction']}").ok
    assert dealer.request("GET", f"/fics/v1/checks/{body['transaction']}")[1]["status"] == "denied"


def test_pending_check_gets_an_estimate_after_30_minutes_of_switch_time(home, switch_factory):
    conf(home, adjustable="true")
    running = switch_factory()
    dealer = dealer_of(running)
    txn = dealer.submit(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M")[1]["transaction"]
    assert run(running, "clock advance 29m").ok
    assert dealer.request("GET", f"/fics/v1/checks/{txn}")[1]["estimated_completion"] is None
    assert run(running, "clock advance 2m").ok
    shown = dealer.request("GET", f"/fics/v1/checks/{txn}")[1]
    assert shown["status"] == "pending" and shown["estimated_completion"]
    received = dt.datetime.fromisoformat(shown["received"].replace("Z", "+00:00"))
    assert dt.datetime.fromisoformat(shown["estimated_completion"].replace("Z", "+00:00")) > received
    assert journal(running, "FICS ESTIMATED COMPLETION")


def test_checks_are_purged_after_retention_days(home, switch_factory):
    conf(home, adjustable="true")
    path = home / "conf" / "lems.toml"
    path.write_text(path.read_text().replace("retention_days = 1826", "retention_days = 2"))
    running = switch_factory()
    assert running.switch.settings.dealer.retention_days == 2 and running.switch.settings.retention_days == 400
    dealer = dealer_of(running)
    txn = dealer.submit()[1]["transaction"]
    assert run(running, "clock advance 1d").ok
    assert dealer.request("GET", f"/fics/v1/checks/{txn}")[0] == 200
    assert run(running, "clock advance 2d").ok
    assert dealer.request("GET", f"/fics/v1/checks/{txn}")[0] == 404
    assert journal(running, "FICS RETENTION")


# -- status codes ----------------------------------------------------------------------------


def test_401_403_and_immediate_dealer_status_changes(running):
    dealer = dealer_of(running)
    code, body, headers = dealer.request("POST", "/fics/v1/checks", check_body(), key=None)
    assert code == 401 and "www-authenticate" in headers and body["error"]
    assert dealer.request("POST", "/fics/v1/checks", check_body(), key="not-the-key")[0] == 401
    assert dealer.request("GET", "/fics/v1/checks", headers={"Authorization": "Basic Zm9vOmJhcg=="}, key=None)[0] == 401
    assert run(running, "dealer suspend D0000001").ok
    code, body, _ = dealer.submit()
    assert code == 403 and "suspended" in body["error"]
    assert dealer.request("GET", "/fics/v1/checks")[0] == 403
    assert run(running, "reinstate dealer D0000001").ok
    assert dealer.submit()[0] == 201
    assert run(running, "revoke D0000001").ok
    assert dealer.submit()[1]["error"] == "dealer D0000001 is revoked"
    assert run(running, "dealer reinstate D0000001").ok and dealer.submit()[0] == 201
    assert Dealers.load(running.home / "terminals").get("D0000001").status == "active"
    assert [r[0] for r in journal(running, "FICS DEALER %")] == ["FICS DEALER SUSPENDED", "FICS DEALER ACTIVE",
                                                                  "FICS DEALER REVOKED", "FICS DEALER ACTIVE"]


def test_dealer_add_takes_effect_at_once_and_keeps_only_a_hash(running, capsys):
    from lems.cli import main

    assert main(["dealer", "add", "D0000002", "--ffl", "9-93-999-01-2A-00002", "--name", "Other Test Guns",
                 "--home", str(running.home)]) == 0
    out = capsys.readouterr().out
    assert "API key (shown only this once, only its hash is kept" in out
    key = out.strip().splitlines()[-1]
    assert len(key) > 40
    for path in running.home.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    assert Dealers.load(running.home / "terminals").get("D0000002").key_hash == hash_key(key)
    assert main(["dealer", "add", "D0000002", "--ffl", "9-93-999-01-2A-00002", "--name", "X",
                 "--home", str(running.home)]) == 2
    assert main(["dealer", "add", "X1", "--ffl", "9-93-999-01-2A-00002", "--name", "X",
                 "--home", str(running.home)]) == 2
    # The running switch accepts the new key at once; each dealer sees only its own checks (404).
    other = dealer_of(running, key)
    code, mine, _ = other.submit()
    assert code == 201
    demo = dealer_of(running)
    code, body, _ = demo.request("GET", f"/fics/v1/checks/{mine['transaction']}")
    assert code == 404 and body["error"]
    assert demo.request("GET", "/fics/v1/checks")[1] == {"checks": []}
    assert other.request("GET", f"/fics/v1/checks/{mine['transaction']}")[0] == 200
    assert demo.request("GET", "/fics/v1/checks/F2026-000999")[0] == 404
    assert demo.request("GET", "/fics/v1/checks/nonsense")[0] == 404
    assert "D0000002" in "\n".join(run(running, "dealer list").lines)


def test_400_422_413_store_nothing(running):
    dealer = dealer_of(running)
    before = stored(running)
    code, body, _ = dealer.request("POST", "/fics/v1/checks", raw=b"{not json")
    assert code == 400 and body["error"]
    assert dealer.request("POST", "/fics/v1/checks", raw=b"\xff\xfe")[0] == 400
    bad = check_body()
    bad["buyer"]["dob"] = "1990-02-30"
    del bad["buyer"]["sex"]
    bad["firearms"][0]["type"] = "cannon"
    bad["firearms"].append({"type": "long gun"})
    code, body, _ = dealer.submit(body=bad)
    assert code == 422
    fields = {e["field"] for e in body["errors"]}
    assert {"buyer.dob", "buyer.sex", "firearms[0].type", "firearms[1].make", "firearms[1].serial"} <= fields
    assert all(e["reason"] for e in body["errors"])
    assert dealer.submit(body=[1, 2])[0] == 422
    assert dealer.submit(body={**check_body(), "firearms": []})[1]["errors"] == [
        {"field": "firearms", "reason": "must list at least one firearm"}]
    big = check_body()
    big["dealer_reference"] = "X" * 70000
    code, body, headers = dealer.submit(body=big)
    assert code == 413 and "larger" in body["error"]
    assert stored(running) == before == 0


def test_429_with_retry_after_per_dealer(home, switch_factory, clock):
    conf(home, requests_per_second="1.0", request_burst="3")
    running = switch_factory()
    dealer = dealer_of(running)
    assert [dealer.submit()[0] for _ in range(3)] == [201, 201, 201]
    code, body, headers = dealer.submit()
    assert code == 429 and int(headers["retry-after"]) >= 1 and body["error"]
    assert dealer.request("GET", "/fics/v1/checks")[0] == 429
    assert stored(running) == 3
    clock.advance(2.0)
    assert dealer.submit()[0] == 201


def test_openapi_describes_the_interface(running):
    code, spec, _ = dealer_of(running).request("GET", "/fics/v1/openapi.json", key=None)
    assert code == 200 and spec["openapi"].startswith("3.")
    assert {"/fics/v1/checks", "/fics/v1/checks/{transaction}", "/fics/v1/openapi.json"} <= set(spec["paths"])
    responses = spec["paths"]["/fics/v1/checks"]["post"]["responses"]
    assert {"201", "400", "401", "403", "413", "422", "429"} <= set(responses)
    assert spec["servers"][0]["url"] == f"https://127.0.0.1:{running.service.dealer_port}"
    shipped = json.loads((Path(__file__).parent.parent / "docs" / "fics-openapi.json").read_text())
    assert shipped["paths"] == spec["paths"] and shipped["components"] == spec["components"]


def test_wrong_methods_and_paths(running):
    dealer = dealer_of(running)
    code, _, headers = dealer.request("DELETE", "/fics/v1/checks")
    assert code == 405 and headers["allow"] == "GET, POST"
    assert dealer.request("GET", "/fics/v1/nothing")[0] == 404
    assert dealer.request("GET", "/elsewhere")[0] == 404


# -- never a 500, never stored when refused ---------------------------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3), max_leaves=8)
field_text = st.one_of(st.text(max_size=35), st.sampled_from(["", " ", "CLEAN", "O'NEIL-SMITH", "1990-09-09",
                                                              "1990-02-30", "M", "X", "handgun", "long gun"]),
                       st.integers(), st.none())


def mutated_body():
    keys = list(check_body()["buyer"])
    return st.builds(lambda b, g, r, drop: _mutate(b, g, r, drop),
                     st.dictionaries(st.sampled_from(keys + ["race", "extra"]), field_text, max_size=4),
                     st.dictionaries(st.sampled_from(["type", "make", "model", "caliber", "serial"]), field_text,
                                     max_size=3),
                     field_text, st.sets(st.sampled_from(["buyer", "firearms", "dealer_reference"]), max_size=1))


def _mutate(buyer_changes, gun_changes, ref, drop):
    body = check_body()
    body["buyer"].update(buyer_changes)
    body["firearms"][0].update(gun_changes)
    body["dealer_reference"] = ref
    for key in drop:
        del body[key]
    return body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, mutated_body()))
def test_validation_never_raises_and_names_fields(body):
    request, errors = fics_mod.validate(body, dt.date(2026, 6, 1))
    assert (request is None) == bool(errors)
    for error in errors:
        assert error.field and error.reason


def test_random_bodies_over_https_never_500_and_refusals_store_nothing(home, switch_factory):
    conf(home, requests_per_second="0")
    running = switch_factory()
    dealer = dealer_of(running)
    seen = {"stored": 0}

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                     HealthCheck.function_scoped_fixture])
    @given(st.one_of(json_values, mutated_body(), st.binary(max_size=40)))
    def one(body):
        before = stored(running)
        if isinstance(body, bytes):
            code, reply, _ = dealer.request("POST", "/fics/v1/checks", raw=body)
        else:
            code, reply, _ = dealer.submit(body=body)
        assert code in (201, 400, 422), (code, reply)
        after = stored(running)
        if code == 201:
            assert after == before + 1 and reply["status"] in fics_mod.STATUSES
            seen["stored"] += 1
        else:
            assert after == before, reply
            if code == 422:
                assert reply["errors"] and all(e["field"] and e["reason"] for e in reply["errors"])

    one()


# -- lems serve ---------------------------------------------------------------------------------


def test_serve_prints_the_dealer_address_and_takes_checks(home):
    proc, _ = serve_process(home)
    try:
        deadline = time.monotonic() + 10
        line = None
        while time.monotonic() < deadline and line is None:
            line = next((l for l in proc.lines if "dealer interface (HTTPS)" in l), None)
            time.sleep(0.05)
        assert line, proc.lines
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        record = json.loads((home / "var" / "run" / "listeners.json").read_text())
        assert record["listeners"]["dealer"]["port"] == port
        code, body, _ = Dealer(home, port).submit()
        assert code == 201 and body["status"] == "approved"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0


def test_dealer_port_option_moves_the_listener(home):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "lems", "serve", "--home", str(home), "--port", "0",
                             "--host", "127.0.0.1", "--dealer-port", str(free)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if not line or "dealer interface" in line:
                break
        assert f"dealer interface (HTTPS): 127.0.0.1:{free} " in lines[-1], lines
        assert Dealer(home, free).request("GET", "/fics/v1/openapi.json", key=None)[0] == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_console_reload_reads_an_edited_dealer_file(running):
    path = running.home / "terminals" / "dealers.toml"
    text = path.read_text()
    path.write_text(text.replace('status = "active"', 'status = "suspended"'))
    dealer = dealer_of(running)
    assert dealer.submit()[0] == 201  # not announced: the running registry is still in force
    reply = run(running, "reload")
    assert reply.ok and reply.lines[-1] == "dealers: 1", reply
    assert dealer.submit()[0] == 403
    path.write_text("[[dealer]]\nid = 'nonsense'\n")
    refused = run(running, "reload")
    assert not refused.ok and "REFUSED" in refused.lines[0]
    assert dealer.submit()[0] == 403  # the running one kept
    path.write_text(text)
    assert run(running, "reload").ok and dealer.submit()[0] == 201


def test_console_fics_usage_and_show(running):
    txn = dealer_of(running).submit(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M")[1]["transaction"]
    shown = run(running, f"fics show {txn}")
    assert shown.ok and "BUYER DOE, JOHN Q" in shown.lines[1] and any("wanted" in l for l in shown.lines)
    assert not run(running, "fics").ok and not run(running, "fics frobnicate").ok
    assert not run(running, "dealer suspend D0000009").ok
    assert not run(running, "dealer reinstate D0000001").ok  # already active
    assert run(running, "help fics").ok


# -- the portal without a browser (tests/test_dealer_portal.py has the browser) --------------------

def test_portal_forms_need_the_csrf_token(running):
    """A form posted without the session's token (another site's page) is refused 403."""
    context = ssl.create_default_context(cafile=str(running.home / "var" / "pki" / "ca.crt"))
    port = running.service.dealer_port

    def post(path, body, cookie=""):
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        conn.request("POST", path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                      "Cookie": cookie})
        reply = conn.getresponse()
        text = reply.read().decode()
        cookies = [v for k, v in reply.getheaders() if k.lower() == "set-cookie"]
        conn.close()
        return reply.status, text, cookies

    code, _, _ = post("/fics/signin", "dealer_id=D0000001&key=demo-dealer-key-2026")
    assert code == 403  # no token bound to a pre-session cookie
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    conn.request("GET", "/fics/")
    reply = conn.getresponse()
    page = reply.read().decode()
    pre = next(v for k, v in reply.getheaders() if k.lower() == "set-cookie").split(";")[0]
    conn.close()
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    code, _, cookies = post("/fics/signin", f"csrf={token}&dealer_id=D0000001&key=demo-dealer-key-2026", pre)
    assert code == 303
    session = next(c for c in cookies if c.startswith("fics_session="))
    assert all(flag in session for flag in ("HttpOnly", "Secure", "SameSite=Strict"))
    code, _, _ = post("/fics/check", "last_name=CLEAN", session.split(";")[0])
    assert code == 403
    assert running.call(running.switch.fics.of_dealer, "D0000001") == []
    # Sign-in attempts from one address: 10 at once, then one a second (switch time).
    codes = [post("/fics/signin", f"csrf={token}&dealer_id=D0000001&key=wrong", pre)[0] for _ in range(10)]
    assert 429 in codes and set(codes) <= {401, 429}


# -- a `lems serve` process, its clock moved with `lems console` --------------------------------


def test_serve_process_pending_estimate_and_examiner_over_lems_console(home):
    from test_emulated_clock import console_port, lems_console, printed, stop

    conf(home, adjustable="true")
    proc, _ = serve_process(home)
    try:
        port = int(printed(proc, r"dealer interface \(HTTPS\): 127\.0\.0\.1:(\d+)").group(1))
        cport = console_port(proc)
        dealer = Dealer(home, port)
        txn = dealer.submit(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M")[1]["transaction"]
        assert lems_console(home, cport, "clock", "advance", "29m")[0] == 0
        assert dealer.request("GET", f"/fics/v1/checks/{txn}")[1]["estimated_completion"] is None
        status, out = lems_console(home, cport, "clock", "advance", "2m")
        assert status == 0, out
        shown = dealer.request("GET", f"/fics/v1/checks/{txn}")[1]
        assert shown["status"] == "pending" and shown["estimated_completion"], shown
        status, out = lems_console(home, cport, "fics", "pending")
        assert status == 0 and txn in out, out
        status, out = lems_console(home, cport, "fics", "approve", txn)
        assert status == 0 and "APPROVED" in out, out
        assert dealer.request("GET", f"/fics/v1/checks/{txn}")[1]["status"] == "approved"
        # `lems dealer add` on the running process's home: the key works at once.
        added = subprocess.run([sys.executable, "-m", "lems", "dealer", "add", "D0000003", "--ffl",
                                "9-93-999-01-2A-00003", "--name", "PROCESS TEST", "--home", str(home)],
                               capture_output=True, text=True, timeout=60)
        key = added.stdout.strip().splitlines()[-1]
        assert Dealer(home, port, key).submit()[0] == 201
        assert lems_console(home, cport, "dealer", "suspend", "D0000003")[0] == 0
        assert Dealer(home, port, key).submit()[0] == 403
    finally:
        stop(proc)


def test_portal_form_becomes_the_api_body():
    from lems.net.dealer_pages import form_to_body, label_of

    body = form_to_body({"dealer_reference": "R", "last_name": "CLEAN", "first_name": "CAROL", "dob": "9/9/1990",
                         "sex": "F", "race": "", "id_type": "DL", "id_number": "X1", "id_state": "OR",
                         "type": "handgun", "make": "A", "model": "B", "caliber": "9MM", "serial": "S1",
                         "serial_2": "S2", "type_2": "long gun"})
    assert body["buyer"]["dob"] == "1990-09-09" and "race" not in body["buyer"]
    assert [g["serial"] for g in body["firearms"]] == ["S1", "S2"] and body["firearms"][1]["make"] is None
    request, errors = fics_mod.validate(body, dt.date(2026, 6, 1))
    assert [e.field for e in errors] == ["firearms[1].make", "firearms[1].model", "firearms[1].caliber"]
    assert label_of("firearms[1].make") == "Firearm 2 make" and label_of("buyer.dob") == "Date of birth"


def test_records_entered_a_moment_ago_count_at_once(running):
    """The checks search the switch's own files: an entry by an agency is found by the next check."""
    dealer = dealer_of(running)
    assert dealer.submit(last="TESTER", first="NEWLY", middle=None, dob="1976-06-06", sex="M")[1]["status"] == \
        "approved"
    health = running.signed_on("T0500001", "OR999050H", "OP050001")
    reply = health.request("EPP.OR999050H.NAM/TESTER, NEWLY.SEX/M.RAC/W.DOB/19760606.PRC/MH.DOP/20260101.OCA/DC-1")
    assert reply.cls == "R", reply
    assert dealer.submit(last="TESTER", first="NEWLY", middle=None, dob="1976-06-06", sex="M")[1]["status"] == \
        "denied"
    police = running.signed_on("T0100001", "OR9990100", "OP010001")
    assert police.request("EG.OR9990100.SER/DCGUN0001.MAK/GLK.CAL/9MM.TYP/PI.DOT/20260101.OCA/DC-G-1").cls == "R"
    code, body, _ = dealer.submit(serials=("DC-GUN 0001",))  # spaces and hyphens are not part of a serial
    assert body["status"] == "denied"
    assert wait_for(police, body["transaction"]).cls == "U"


def test_rate_buckets_on_the_switch_clock():
    from lems.base.clock import FakeClock

    clock = FakeClock()
    buckets = fics_mod.Buckets(clock, 0.5, 2)
    buckets.take("D1")
    buckets.take("D1")
    with pytest.raises(fics_mod.TooMany) as exc:
        buckets.take("D1")
    assert exc.value.retry_after == 2
    buckets.take("D2")  # per dealer
    clock.advance(2.0)
    buckets.take("D1")
    unlimited = fics_mod.Buckets(clock, 0, 1)  # 0: no limit
    for _ in range(5):
        unlimited.take("D1")


def test_console_completes_dealer_commands(running):
    txn = dealer_of(running).submit(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M")[1]["transaction"]
    c = console(running)

    def complete(text):
        return running.call(lambda: c.complete(text))

    assert complete("fics ") == ("", ["approve", "deny", "pending", "show"])
    assert complete("fics approve F") == ("F", [txn])
    assert complete("dealer s") == ("s", ["suspend"])
    assert complete("dealer suspend D") == ("D", ["D0000001"])
    assert complete("suspend dealer ") == ("", ["D0000001"])
    assert "D0000001" in complete("suspend D")[1]
    assert complete("revoke t01") == ("t01", ["T0100001", "T0100002"])  # the built-in completion still works
