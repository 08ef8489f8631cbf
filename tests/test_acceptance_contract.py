"""Acceptance tests written against /work/shared/PROTOCOL.md only (sections 8-11, appendices A-C).

Black box: a fresh home made by `lems init` (a process), `lems serve` as a process, terminals
over real mutual TLS with the home's own certificates, the console as `lems console --home H
COMMAND`, the dealer interface over HTTPS trusting var/pki/ca.crt, and the commands of
appendix B. One switch serves the whole module; time-based rules move its clock with the
console's `clock advance` (the home says `[clock] adjustable = true`), never with sleeps.
The tests run in file order: the clock only moves forward.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lems.tools.client import LinkClosed, ReplyTimeout, TerminalClient

PASSWORD = "LemsDemo#2026"
DEMO_KEY = "demo-dealer-key-2026"
TOTP_SECRET = "JBSWY3DPEHPK3PXP"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

AGENCIES = {
    "OR9990000": "LEMS TEST CONTROL TERMINAL AGENCY",
    "OR9990100": "TEST CITY POLICE DEPARTMENT",
    "OR9990200": "TEST COUNTY SHERIFFS OFFICE",
    "OR999030C": "TEST COUNTY 911 DISPATCH",
    "OR999040Y": "TEST STATE SCHOOL BUS OFFICE",
    "OR999050H": "TEST STATE HEALTH AUTHORITY",
    "OR999060J": "TEST COUNTY CIRCUIT COURT",
    "OR999070S": "TEST PSYCHIATRIC SECURITY REVIEW BOARD",
    "WA9990100": "TEST WASHINGTON CITY PD",
}
TERMINALS = {
    "T0000001": ("OR9990000", "workstation"), "T0100001": ("OR9990100", "workstation"),
    "T0100002": ("OR9990100", "mobile"), "T0200001": ("OR9990200", "workstation"),
    "T0300001": ("OR999030C", "dispatch"), "T0400001": ("OR999040Y", "workstation"),
    "T0500001": ("OR999050H", "workstation"), "T0600001": ("OR999060J", "workstation"),
    "T0700001": ("OR999070S", "workstation"), "IF010001": ("OR9990100", "interface"),
}
# operator -> (ORI, the agency's terminal it signs on at)
OPERATORS = {
    "OP000001": ("OR9990000", "T0000001"), "OP010001": ("OR9990100", "T0100001"),
    "OP010002": ("OR9990100", "T0100001"), "OP010003": ("OR9990100", "T0100001"),
    "OP020001": ("OR9990200", "T0200001"), "OP030001": ("OR999030C", "T0300001"),
    "OP040001": ("OR999040Y", "T0400001"), "OP050001": ("OR999050H", "T0500001"),
    "OP060001": ("OR999060J", "T0600001"), "OP070001": ("OR999070S", "T0700001"),
}
STANDARD = {"T0000001": ("OR9990000", "OP000001"), "T0100001": ("OR9990100", "OP010001"),
            "T0100002": ("OR9990100", "OP010001"), "T0200001": ("OR9990200", "OP020001"),
            "T0400001": ("OR999040Y", "OP040001"), "T0500001": ("OR999050H", "OP050001"),
            "T0600001": ("OR999060J", "OP060001"), "T0700001": ("OR999070S", "OP070001")}


def totp(secret: str, at: float | None = None) -> str:
    key = base64.b32decode(secret)
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def lems(*args: str, timeout: float = 90, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lems", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=cwd)


class Switch:
    """One `lems serve` process on a fresh home, and the ways a third party reaches it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lems", "serve", "--home", str(home), "--port", "0", "--console-port", "0",
             "--dealer-port", "0", "--host", "127.0.0.1"],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("home "):
                break
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()
        text = "".join(self.lines)

        def port(pattern: str) -> int:
            m = re.search(pattern, text)
            if not m:
                self.stop()
                pytest.fail("lems serve did not print " + pattern + ":\n" + text)
            return int(m.group(1))

        self.port = port(r"terminals on 127\.0\.0\.1:(\d+)")
        self.console_port = port(r"console \(SSH\): 127\.0\.0\.1:(\d+)")
        self.dealer_port = port(r"dealer interface \(HTTPS\): 127\.0\.0\.1:(\d+)")
        self.clients: list[TerminalClient] = []

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    # -- the console --------------------------------------------------------------------------

    def console(self, *words: str) -> tuple[int, str]:
        done = lems("console", "--home", str(self.home), "--port", str(self.console_port), *words)
        return done.returncode, done.stdout + done.stderr

    def ok(self, *words: str) -> str:
        status, out = self.console(*words)
        assert status == 0, (words, out)
        return out

    def advance(self, span: str) -> str:
        return self.ok("clock", "advance", span)

    # -- terminals ----------------------------------------------------------------------------

    def client(self, terminal: str, cert: str | None = None) -> TerminalClient:
        pki = self.home / "var" / "pki"
        c = TerminalClient("127.0.0.1", self.port, pki / "ca.crt", pki / "terminals" / f"{cert or terminal}.crt",
                           pki / "terminals" / f"{cert or terminal}.key", "stx", timeout=20)
        self.clients.append(c)
        return c.connect()

    def sign_on(self, terminal: str, ori: str | None = None, operator: str | None = None,
                password: str = PASSWORD, otp: str | None = None):
        if ori is None:
            ori, operator = STANDARD[terminal]
        c = self.client(terminal)
        banner = c.banner()
        assert banner.cls == "S", banner
        return c, c.sign_on(ori, operator, password, otp)

    def signed_on(self, terminal: str, ori: str | None = None, operator: str | None = None) -> TerminalClient:
        c, reply = self.sign_on(terminal, ori, operator)
        assert reply.cls == "R" and reply.text.startswith("SIGN-ON ACCEPTED"), reply
        return c

    # -- the dealer interface -----------------------------------------------------------------

    def https(self) -> http.client.HTTPSConnection:
        ctx = ssl.create_default_context(cafile=str(self.home / "var" / "pki" / "ca.crt"))
        return http.client.HTTPSConnection("localhost", self.dealer_port, context=ctx, timeout=20)

    def dealer(self, method: str, path: str, body=None, key: str | None = DEMO_KEY, raw: bytes | None = None,
               headers: dict | None = None):
        conn = self.https()
        try:
            hdrs = {"Accept": "application/json"}
            if key is not None:
                hdrs["Authorization"] = f"Bearer {key}"
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            if data is not None:
                hdrs["Content-Type"] = "application/json"
            hdrs.update(headers or {})
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("Content-Type") or ""
            parsed = json.loads(payload) if "json" in ctype and payload else payload
            return resp.status, parsed, resp
        finally:
            conn.close()

    def check(self, key: str = DEMO_KEY, **kw):
        return self.dealer("POST", "/fics/v1/checks", check_body(**kw), key=key)


def check_body(last="CLEAN", first="CAROL", middle="C", dob="1990-09-09", sex="F", serials=("ACCSER0001",),
               ref="INV-ACC-1"):
    buyer = {"last_name": last, "first_name": first, "dob": dob, "sex": sex, "id_type": "DL",
             "id_number": "A1234567", "id_state": "OR"}
    if middle:
        buyer["middle_name"] = middle
    return {"dealer_reference": ref, "buyer": buyer,
            "firearms": [{"type": "handgun", "make": "GLOCK", "model": "19", "caliber": "9MM", "serial": s}
                         for s in serials]}


def wait_for(c: TerminalClient, needle: str, timeout: float = 10):
    """The next U or S frame containing ``needle`` (frames set aside while waiting for replies included)."""
    for i, out in enumerate(c.unsolicited):
        if needle in out.text:
            return c.unsolicited.pop(i)
    deadline = time.monotonic() + timeout
    while True:
        out = c.receive(max(0.05, deadline - time.monotonic()))
        if out.cls in ("U", "S") and needle in out.text:
            return out
        c.unsolicited.append(out)


def drain(c: TerminalClient, seconds: float = 1.0) -> list:
    """Every frame that arrives within ``seconds`` (and those set aside)."""
    got, c.unsolicited = list(c.unsolicited), []
    deadline = time.monotonic() + seconds
    try:
        while True:
            got.append(c.receive(max(0.05, deadline - time.monotonic())))
    except ReplyTimeout:
        pass
    return got


def nic_of(text: str, letter: str = "") -> str:
    m = re.search(rf"NIC/({letter or '[A-Z]'}\d{{9}})", text)
    assert m, text
    return m.group(1)


@pytest.fixture(scope="module")
def sw(tmp_path_factory):
    home = tmp_path_factory.mktemp("acceptance") / "home"
    done = lems("init", str(home))
    assert done.returncode == 0, done.stdout + done.stderr
    sw_init_output = done.stdout
    conf = home / "conf" / "lems.toml"
    text = conf.read_text()
    assert "adjustable = false" in text
    assert "attempts_per_address = 10\n" in text
    # A test drives the console many times a minute: the per-address SSH limit is configuration.
    conf.write_text(text.replace("adjustable = false", "adjustable = true")
                    .replace("attempts_per_address = 10\n", "attempts_per_address = 10000\n"))
    switch = Switch(home)
    switch.init_output = sw_init_output
    yield switch
    switch.stop()


# == Appendix A and B: the demo home ======================================================================


def test_init_writes_the_demo_home_with_its_pki(sw):
    pki = sw.home / "var" / "pki"
    assert (pki / "ca.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    for terminal in TERMINALS:
        assert (pki / "terminals" / f"{terminal}.crt").exists(), terminal
        key = pki / "terminals" / f"{terminal}.key"
        assert key.read_text().startswith("-----BEGIN") and "ENCRYPTED" not in key.read_text()
        assert key.stat().st_mode & 0o077 == 0, oct(key.stat().st_mode)
    assert PASSWORD in sw.init_output  # demo passwords are printed by lems init
    registry = "".join((sw.home / "terminals" / f).read_text() for f in os.listdir(sw.home / "terminals"))
    for ori, name in AGENCIES.items():
        if ori.startswith("OR"):
            assert ori in registry and name in registry, (ori, name)


def test_serve_warns_that_the_clock_is_adjustable(sw):
    assert any(line.startswith("WARNING") and "adjustable" in line for line in sw.lines), sw.lines
    out = sw.ok("clock")
    assert re.search(r"20\d\d-\d\d-\d\d", out), out
    status, out = sw.console("clock", "advance", "-1d")  # time never moves backwards
    assert status != 0, out


def test_every_demo_operator_signs_on_with_the_demo_password(sw):
    for operator, (ori, terminal) in OPERATORS.items():
        otp = totp(TOTP_SECRET) if operator == "OP010003" else None
        c, reply = sw.sign_on(terminal, ori, operator, otp=otp)
        assert reply.cls == "R" and reply.text.startswith("SIGN-ON ACCEPTED"), (operator, reply)
        assert c.request(f"SOF.{ori}").cls == "R"
        c.close()


def test_two_factor_operator_needs_the_code(sw):
    c, reply = sw.sign_on("T0100001", "OR9990100", "OP010003")
    assert reply.cls == "E" and reply.text.startswith(".20."), reply
    c.close()


def test_banner_and_terminal_types(sw):
    c = sw.client("T0100001")
    banner = c.banner()
    assert banner.cls == "S" and "MONITORED" in banner.text and "CONSENT" in banner.text
    c.close()
    # The interface terminal names the operator in the header instead of signing on.
    i = sw.client("IF010001")
    i.banner()
    reply = i.request("QW.OR9990100.NAM/CLEAN, CAROL C.DOB/19900909", opr="OP010001")
    assert reply.cls == "R" and "NO LEDS WANT" in reply.text and "NO NCIC WANT" in reply.text, reply
    i.close()
    # The dispatch centre works for the agencies it serves under management control agreements.
    d = sw.signed_on("T0300001", "OR999030C", "OP030001")
    assert d.request("QV.OR9990200.LIC/TEST123.LIS/OR").cls == "R"
    d.close()


def test_demo_records(sw):
    c = sw.signed_on("T0100001")
    wanted = c.request("QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101")
    assert wanted.cls == "R" and "MKE/WANTED PERSON" in wanted.text, wanted
    assert "ARMED AND DANGEROUS" in wanted.text and "ORI IS TEST COUNTY SHERIFFS OFFICE" in wanted.text, wanted
    assert "LEDS RESPONSE" in wanted.text and "NCIC RESPONSE" in wanted.text
    vehicle = c.request("QV.OR9990100.VIN/1TESTVIN000000001")
    assert "MKE/STOLEN VEHICLE" in vehicle.text and "TEST123" in vehicle.text, vehicle
    gun = c.request("QG.OR9990100.SER/TESTGUN001")
    assert "TESTGUN001" in gun.text and "NIC/G" in gun.text, gun
    history = c.request("QH.OR9990100.NAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101.PUR/C.ATN/DET TEST")
    assert history.cls == "R" and "MKE/CRIMINAL HISTORY" in history.text and "FBI/" in history.text, history
    assert "IMMED CONFIRM" not in history.text
    # The out-of-state agency is reached through the Nlets emulation.
    assert c.request("AM.OR9990100.WA9990100.TXTACCEPTANCE TEST TO WASHINGTON").cls == "R"
    ppf = c.request("QPP.OR9990100.NAM/ROE, RICHARD.DOB/19750505.PUR/F")
    assert ppf.cls == "R" and "ROE, RICHARD" in ppf.text and "NIC/P" in ppf.text, ppf
    assert "IMMED CONFIRM" not in ppf.text
    for text in ("QW.OR9990100.NAM/CLEAN, CAROL C.DOB/19900909",
                 "QPP.OR9990100.NAM/CLEAN, CAROL C.DOB/19900909.PUR/F",
                 "QH.OR9990100.NAM/CLEAN, CAROL C.SEX/F.RAC/W.DOB/19900909.PUR/C.ATN/DET TEST"):
        reply = c.request(text)
        assert reply.cls == "R" and "NIC/" not in reply.text and "MKE/" not in reply.text, (text, reply)
    c.close()


# == Appendix C: every example as written ===================================================================


def test_appendix_c_examples_are_accepted_as_written(sw):
    police = sw.signed_on("T0100001")
    sheriff = sw.signed_on("T0200001")
    school = sw.signed_on("T0400001")
    control = sw.signed_on("T0000001")

    def ok(c, text):
        reply = c.request(text)
        assert reply.cls == "R", (text, reply)
        return reply

    ok(police, "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101")
    doe = ok(police, "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101.SEX/M.RAC/W.EDB/1")
    doe_nic = nic_of(doe.text, "W")
    ok(police, "QV.OR9990100.LIC/TEST123.LIS/OR")
    ok(police, "QV.OR9990100.VIN/1TESTVIN000000001")
    ok(police, "QG.OR9990100.SER/TESTGUN001")
    entered = ok(police, "EW.OR9990100.NAM/TESTER, ACCEPT A.SEX/M.RAC/W.DOB/19910203.HGT/510.WGT/170.EYE/BRO"
                         ".HAI/BRO.OFF/2399.DOW/20260101.OCA/ACC-0001.MIS/TEST RECORD")
    nic = nic_of(entered.text, "W")
    assert "ACC-0001" in entered.text
    ok(sheriff, f"LW.OR9990200.NAM/TESTER, ACCEPT A.NIC/{nic}.DOL/20260102.LCA/ACC-L-1")
    located = wait_for(police, nic)
    assert located.cls == "U" and "OR9990200" in located.text, located
    ok(police, f"CW.OR9990100.NAM/TESTER, ACCEPT A.NIC/{nic}.DCL/20260103")
    # Each example on its own: the cancel gets a record of its own (the cleared one is off file).
    again = ok(police, "EW.OR9990100.NAM/TESTER, ACCEPT A.SEX/M.RAC/W.DOB/19910203.HGT/510.WGT/170.EYE/BRO"
                       ".HAI/BRO.OFF/2399.DOW/20260101.OCA/ACC-0001.MIS/TEST RECORD")
    nic = nic_of(again.text, "W")
    ok(police, f"XW.OR9990100.NAM/TESTER, ACCEPT A.NIC/{nic}.DOC/20260103")
    ok(police, "EG.OR9990100.SER/ACCGUN0001.MAK/GLK.CAL/9MM.TYP/PI.DOT/20260101.OCA/ACC-G-1")
    ok(police, "EA.OR9990100.SER/ACCART0001.TYP/CAMERA.BRA/TESTBRAND.DOT/20260101.OCA/ACC-A-1")
    article = ok(police, "QA.OR9990100.SER/ACCART0001.TYP/CAMERA")
    assert "ACCART0001" in article.text
    ok(police, "QH.OR9990100.NAM/DOE, JOHN Q.SEX/M.RAC/W.DOB/19800101.PUR/C.ATN/DET TEST")
    rq = ok(police, "RQ.OR9990100.OR.*CTL0000001.TXTLIC/TEST123")
    assert "*CTL0000001" in rq.text
    ok(police, "RQ.OR9990100.WA.TXTLIC/WATEST1")
    ok(police, "DQ.OR9990100.NL.TXTNAM/DOE, JOHN Q.DOB/19800101")
    ok(school, "DQ.OR999040Y.OR.TXTNAM/DOE, JOHN Q.DOB/19800101.PUR/F")
    ok(police, "AM.OR9990100.OR9990200.*AMCTL00001.TXTPLEASE CALL RECORDS RE CASE ACC-0001")
    assert "ACC-0001" in wait_for(sheriff, "PLEASE CALL RECORDS").text
    ok(police, "AML.OR9990100.OR9990200.TXTOFFICER SAFETY BULLETIN TEST")
    assert "FOR LAW ENFORCEMENT DISSEMINATION ONLY" in wait_for(sheriff, "OFFICER SAFETY BULLETIN").text
    ok(control, "SM.OR9990000.APB.TXTLEMS TEST STATUS NOTICE")
    ok(police, "YQ.OR9990100.OR9990200.*YQCTL00001.TXTRTY/WP.RNO/1.PRI/U.OCA/ANY.NIC/"
               f"{doe_nic}.NAM/DOE, JOHN Q.DOB/19800101.SEX/M.RNA/SGT TEST.RAG/TEST CITY PD.PHO/5555550100")
    assert wait_for(sheriff, doe_nic).cls == "U"
    ok(sheriff, f"YR.OR9990200.OR9990100.*YQCTL00001.TXTRTY/WP.RNO/1.OCA/ANY.NIC/{doe_nic}.CNF/Y"
                ".NAM/DOE, JOHN Q.RNA/DEP TEST")
    assert "*YQCTL00001" in wait_for(police, "YQCTL00001").text
    for c in (police, sheriff, school, control):
        c.close()


def test_appendix_b_commands_as_written(sw):
    status = sw.console("status")
    assert status[0] == 0, status
    sent = lems("send", "T0100001", "QV.OR9990100.LIC/TEST123.LIS/OR", "--home", str(sw.home), "--port",
                str(sw.port), "--operator", "OP010001", "--password", PASSWORD)
    assert sent.returncode == 0 and "TEST123" in sent.stdout, sent.stdout + sent.stderr
    refused = lems("send", "T0100001", "ZZ.OR9990100.LIC/TEST123", "--home", str(sw.home), "--port",
                   str(sw.port), "--operator", "OP010001", "--password", PASSWORD)
    assert refused.returncode == 1, refused.stdout + refused.stderr


# == Section 8: live administration =========================================================================


def test_terminal_add_and_ca_issue_take_effect_at_once(sw):
    done = lems("terminal", "add", "T0100009", "--ori", "OR9990100", "--type", "workstation", "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr
    c = sw.signed_on("T0100009", "OR9990100", "OP010001")
    assert c.request("QV.OR9990100.LIC/TEST123.LIS/OR").cls == "R"
    c.close()
    old = sw.home / "var" / "pki" / "terminals" / "T0100009.crt"
    old_copy = sw.home / "old-T0100009.crt"
    old_key = sw.home / "old-T0100009.key"
    old_copy.write_bytes(old.read_bytes())
    old_key.write_bytes((sw.home / "var" / "pki" / "terminals" / "T0100009.key").read_bytes())
    os.chmod(old_key, 0o600)
    done = lems("ca", "issue", "T0100009", "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr
    assert old.read_bytes() != old_copy.read_bytes()
    pki = sw.home / "var" / "pki"
    stale = TerminalClient("127.0.0.1", sw.port, pki / "ca.crt", old_copy, old_key, "stx", timeout=10)
    sw.clients.append(stale)
    try:
        stale.connect()
        first = stale.receive()
        assert first.cls == "E" and first.text.startswith(".21."), first
    except (ssl.SSLError, LinkClosed, ConnectionError):
        pass  # refused on the handshake
    c = sw.signed_on("T0100009", "OR9990100", "OP010001")
    c.close()


# == Section 10: the dealer interface =======================================================================


ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def test_dealer_https_trusts_the_home_ca_and_speaks_json(sw):
    ctx = ssl.create_default_context(cafile=str(sw.home / "var" / "pki" / "ca.crt"))
    for host in ("localhost", "127.0.0.1"):
        conn = http.client.HTTPSConnection(host, sw.dealer_port, context=ctx, timeout=20)
        conn.request("GET", "/fics/v1/openapi.json", headers={"Authorization": f"Bearer {DEMO_KEY}"})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        assert resp.status == 200
        assert resp.getheader("Content-Type", "").startswith("application/json")
        spec = json.loads(body)
        assert str(spec["openapi"]).startswith("3."), spec.get("openapi")
        assert any("/fics/v1/checks" in p for p in spec["paths"]), spec["paths"].keys()
    with pytest.raises(ssl.SSLError):  # the switch certificate is not trusted without the home's CA
        conn = http.client.HTTPSConnection("localhost", sw.dealer_port, context=ssl.create_default_context(),
                                           timeout=20)
        try:
            conn.request("GET", "/fics/v1/openapi.json")
        finally:
            conn.close()


def test_clean_buyer_is_approved_201_with_the_check(sw):
    code, body, resp = sw.check(ref="INV-ACC-CLEAN", serials=("ACCSER0001", "ACCSER0002"))
    assert code == 201, body
    assert resp.getheader("Content-Type", "").startswith("application/json")
    assert re.fullmatch(r"F\d{4}-\d{6}", body["transaction"]), body
    assert body["status"] == "approved"
    assert isinstance(body["approval_number"], str) and body["approval_number"]
    assert body["estimated_completion"] is None
    assert ISO.match(body["received"]), body["received"]
    assert body["dealer_reference"] == "INV-ACC-CLEAN"
    assert body["firearms"] == 2
    code2, body2, _ = sw.check(ref="INV-ACC-CLEAN-2")
    assert code2 == 201 and body2["status"] == "approved"
    assert body2["approval_number"] != body["approval_number"]
    assert body2["transaction"] != body["transaction"]
    code, shown, _ = sw.dealer("GET", f"/fics/v1/checks/{body['transaction']}")
    assert code == 200 and shown["transaction"] == body["transaction"] and shown["status"] == "approved"
    assert shown["approval_number"] == body["approval_number"]


def test_authentication_401_and_403(sw):
    assert sw.check(key=None)[0] == 401
    assert sw.check(key="not-the-key")[0] == 401
    assert sw.dealer("GET", "/fics/v1/checks?status=pending", key="wrong")[0] == 401
    done = lems("dealer", "add", "D0000002", "--ffl", "9-93-999-01-2A-00002", "--name", "ACCEPTANCE ARMS",
                "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr
    key = done.stdout.strip().splitlines()[-1].split()[-1]
    assert key and key in done.stdout
    assert key not in (sw.home / "terminals" / "dealers.toml").read_text()  # only a hash is kept
    code, body, _ = sw.check(key=key, ref="D2-1")  # takes effect on the running switch at once
    assert code == 201, body
    # Another dealer's transaction is 404.
    assert sw.dealer("GET", f"/fics/v1/checks/{body['transaction']}")[0] == 404
    assert sw.dealer("GET", f"/fics/v1/checks/{body['transaction']}", key=key)[0] == 200
    sw.ok("dealer", "suspend", "D0000002")
    assert sw.check(key=key, ref="D2-2")[0] == 403
    sw.ok("dealer", "reinstate", "D0000002")
    assert sw.check(key=key, ref="D2-3")[0] == 201
    sw.ok("dealer", "revoke", "D0000002")
    assert sw.check(key=key, ref="D2-4")[0] == 403
    sw.key_d2 = key


def _pending(sw) -> list[str]:
    code, body, _ = sw.dealer("GET", "/fics/v1/checks?status=pending")
    assert code == 200, body
    items = body if isinstance(body, list) else next(v for v in body.values() if isinstance(v, list))
    return [item["transaction"] for item in items]


def test_bad_bodies_400_422_413_and_nothing_stored(sw):
    before = _pending(sw)
    code, body, _ = sw.dealer("POST", "/fics/v1/checks", raw=b"{not json")
    assert code == 400, body
    bad = check_body(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M")
    bad["buyer"]["dob"] = "01/01/1980"
    code, body, _ = sw.dealer("POST", "/fics/v1/checks", bad)
    assert code == 422, body
    assert any(e["field"] == "buyer.dob" and e["reason"] for e in body["errors"]), body
    missing = check_body(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M")
    del missing["buyer"]["dob"]
    code, body, _ = sw.dealer("POST", "/fics/v1/checks", missing)
    assert code == 422 and any(e["field"] == "buyer.dob" for e in body["errors"]), body
    sex = check_body(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="Q")
    code, body, _ = sw.dealer("POST", "/fics/v1/checks", sex)
    assert code == 422 and any(e["field"] == "buyer.sex" for e in body["errors"]), body
    gun = check_body(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M")
    gun["firearms"][0]["type"] = "cannon"
    code, body, _ = sw.dealer("POST", "/fics/v1/checks", gun)
    assert code == 422 and all(set(e) >= {"field", "reason"} for e in body["errors"]), body
    assert any(e["field"].startswith("firearms") for e in body["errors"]), body
    empty = check_body()
    empty["firearms"] = []
    code, body, _ = sw.dealer("POST", "/fics/v1/checks", empty)
    assert code == 422 and any(e["field"].startswith("firearms") for e in body["errors"]), body
    for key in ("last_name", "id_number"):
        lacking = check_body()
        del lacking["buyer"][key]
        code, body, _ = sw.dealer("POST", "/fics/v1/checks", lacking)
        assert code == 422 and any(e["field"] == f"buyer.{key}" for e in body["errors"]), body
    code, body, resp = sw.dealer("POST", "/fics/v1/checks", ["not", "an", "object"])
    assert code in (400, 422), body
    big = check_body()
    big["dealer_reference"] = "X" * (1 << 20)
    code, body, _ = sw.dealer("POST", "/fics/v1/checks", big)
    assert code == 413, body
    assert _pending(sw) == before  # DOE would have been pending: nothing was stored


def test_prohibited_person_and_stolen_gun_are_denied_without_saying_why(sw):
    code, body, _ = sw.check(last="ROE", first="RICHARD", middle=None, dob="1975-05-05", sex="M", ref="INV-ROE")
    assert code == 201 and body["status"] == "denied" and body["approval_number"] is None, body
    text = json.dumps(body).upper()
    for word in ("PPF", "PROHIBIT", "NIC", "ROE, RICHARD", "OR999050H", "COMMITMENT"):
        assert word not in text, (word, body)
    police = sw.signed_on("T0100001")
    reply = police.request("EG.OR9990100.SER/ACCDENY001.MAK/GLK.CAL/9MM.TYP/PI.DOT/20260101.OCA/ACC-G-2")
    assert reply.cls == "R", reply
    code, body, _ = sw.check(serials=("ACCSER0009", "ACCDENY001"), ref="INV-GUN")
    assert code == 201 and body["status"] == "denied" and body["approval_number"] is None, body
    sw.denied_txn = body["transaction"]
    notice = wait_for(police, body["transaction"])
    assert notice.cls == "U" and "D0000001" in notice.text, notice
    police.close()


def test_wanted_person_is_pending_then_estimate_and_examiner(sw):
    code, first, _ = sw.check(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M", ref="INV-DOE-1")
    assert code == 201 and first["status"] == "pending" and first["approval_number"] is None, first
    assert first["estimated_completion"] is None
    code, second, _ = sw.check(last="DOE", first="JOHN", middle="Q", dob="1980-01-01", sex="M", ref="INV-DOE-2")
    assert second["status"] == "pending"
    listed = _pending(sw)
    assert listed[:2] == [second["transaction"], first["transaction"]], listed  # newest first
    workstation = sw.signed_on("T0200001")
    mobile = sw.signed_on("T0100002")  # mobile terminals are exempt from the idle lock
    sw.advance("29m")
    assert sw.dealer("GET", f"/fics/v1/checks/{first['transaction']}")[1]["estimated_completion"] is None
    sw.advance("2m")
    try:
        locked = workstation.request("QV.OR9990200.LIC/TEST123.LIS/OR")
        assert locked.cls == "E" and locked.text.startswith(".20."), locked
    except LinkClosed:
        pass
    assert mobile.request("QV.OR9990100.LIC/TEST123.LIS/OR").cls == "R"
    workstation.close()
    mobile.close()
    shown = sw.dealer("GET", f"/fics/v1/checks/{first['transaction']}")[1]
    assert shown["status"] == "pending" and ISO.match(shown["estimated_completion"] or ""), shown
    out = sw.ok("fics", "pending")
    assert first["transaction"] in out and second["transaction"] in out, out
    sw.ok("fics", "approve", first["transaction"])
    sw.ok("fics", "deny", second["transaction"])
    a = sw.dealer("GET", f"/fics/v1/checks/{first['transaction']}")[1]
    d = sw.dealer("GET", f"/fics/v1/checks/{second['transaction']}")[1]
    assert a["status"] == "approved" and a["approval_number"], a
    assert d["status"] == "denied" and d["approval_number"] is None, d
    assert first["transaction"] not in _pending(sw)


def test_rate_limit_is_429_with_retry_after(sw):
    done = lems("dealer", "add", "D0000003", "--ffl", "9-93-999-01-2A-00003", "--name", "ACCEPTANCE RATE",
                "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr
    key = done.stdout.strip().splitlines()[-1].split()[-1]
    conn = sw.https()
    seen = None
    try:
        for _ in range(400):
            conn.request("GET", "/fics/v1/checks?status=pending", headers={"Authorization": f"Bearer {key}"})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 429:
                seen = resp
                break
            assert resp.status == 200
    finally:
        conn.close()
    assert seen is not None, "no 429 in 400 requests"
    assert int(seen.getheader("Retry-After")) >= 1


def test_edited_dealer_file_takes_effect_on_reload(sw):
    done = lems("dealer", "add", "D0000004", "--ffl", "9-93-999-01-2A-00004", "--name", "ACCEPTANCE RELOAD",
                "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr
    key = done.stdout.strip().splitlines()[-1].split()[-1]
    assert sw.check(key=key, ref="D4-1")[0] == 201
    path = sw.home / "terminals" / "dealers.toml"
    text = path.read_text()
    start = text.index('id = "D0000004"')
    path.write_text(text[:start] + text[start:].replace('status = "active"', 'status = "suspended"', 1))
    sw.ok("reload")
    assert sw.check(key=key, ref="D4-2")[0] == 403
    assert sw.check(ref="D1-AFTER-RELOAD")[0] == 201  # the others are untouched


def test_portal_page_is_self_contained(sw):
    code, page, resp = sw.dealer("GET", "/fics/", key=None, headers={"Accept": "text/html"})
    assert code == 200 and resp.getheader("Content-Type", "").startswith("text/html")
    html = page.decode("utf-8")
    assert "<form" in html.lower()
    outside = re.findall(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not outside, outside
    assert "@import" not in html


# == Section 9: prohibited persons file and NICS ===========================================================


def ymd_near(text: str, ts: str) -> None:
    """The notice's date is the switch's date (local or UTC) of the frame's time stamp."""
    m = re.search(r"(\d{8})", text)
    assert m, text
    stamp = dt.datetime.strptime(ts[:8], "%Y%m%d").date()
    day = dt.datetime.strptime(m.group(1), "%Y%m%d").date()
    assert abs((day - stamp).days) <= 1, (text, ts)


TRANSMISSION = re.compile(r"NICS TRANSMISSION (\d{8}) - (\d+) ENTERED (\d+) MODIFIED (\d+) CANCELLED (\d+) RELIEF")


def transmit(sw, control) -> tuple[int, int, int, int]:
    sw.ok("ppf", "transmit")
    notice = wait_for(control, "NICS TRANSMISSION")
    assert notice.cls == "S", notice
    assert control.request("HBT").cls == "R"  # anything sent meanwhile has arrived: one notice a transmission
    assert not [f for f in drain(control, 0.2) if "NICS TRANSMISSION" in f.text]
    m = TRANSMISSION.search(notice.text)
    assert m and notice.text.startswith("NICS TRANSMISSION"), notice.text
    ymd_near(notice.text, notice.ts)
    return tuple(int(m.group(i)) for i in range(2, 6))


EPP = "EPP.OR999050H.NAM/{name}.SEX/M.RAC/W.DOB/{dob}.PPT/COMMITMENT.ISD/20260101.OCA/{oca}"


def test_ppf_minimum_information_and_designated_agencies(sw):
    health = sw.signed_on("T0500001")
    reply = health.request(EPP.format(name="TESTER, MINIMUM", dob="19700101", oca="ACC-P-0") + ".MIS/DIAGNOSIS TEXT")
    assert reply.cls == "E" and reply.text.startswith(".12. MIS IS NOT MINIMUM INFORMATION"), reply
    for extra in ("HGT/510", "REM/CASE HISTORY NOTES", "SMT/TAT L ARM", "MNU/AS-123456789"):
        reply = health.request(EPP.format(name="TESTER, MINIMUM", dob="19700101", oca="ACC-P-0") + "." + extra)
        code = extra.split("/")[0]
        assert reply.cls == "E" and reply.text.startswith(f".12. {code} IS NOT MINIMUM INFORMATION"), reply
    reply = health.request("EPP.OR999050H.NAM/TESTER, MINIMUM.SEX/M.DOB/19700101.PPT/DIAGNOSIS")
    assert reply.cls == "E" and reply.text.startswith(".12.") and "PPT" in reply.text.split("\n")[0], reply
    full = health.request("EPP.OR999050H.NAM/TESTER, EVERYFIELD.DOB/19690909.SEX/F.RAC/W.SOC/999001234"
                          ".OLN/TESTOLN99.OLS/OR.PPT/UNFIT.ISD/20260105.OCA/ACC-P-9.COR/OR999060J")
    assert full.cls == "R" and "NIC/P" in full.text and "ACC-P-9" in full.text, full
    nic_full = nic_of(full.text, "P")
    reply = health.request(f"MPP.OR999050H.NAM/TESTER, EVERYFIELD.NIC/{nic_full}.MIS/DIAGNOSIS TEXT")
    assert reply.cls == "E" and reply.text.startswith(".12. MIS IS NOT MINIMUM INFORMATION"), reply
    police = sw.signed_on("T0100001")
    shown = police.request("QPP.OR9990100.NAM/TESTER, EVERYFIELD.DOB/19690909.PUR/F")
    assert "COR/OR999060J" in shown.text and "OLN/TESTOLN99" in shown.text and "MIS/" not in shown.text, shown
    reply = police.request("EPP.OR9990100.NAM/TESTER, NOTDESIG.SEX/M.DOB/19700101.PPT/COMMITMENT")
    assert reply.cls == "E" and reply.text.startswith(".22."), reply
    # Only minimum information back: the refused entry stored nothing.
    reply = police.request("QPP.OR9990100.NAM/TESTER, MINIMUM.DOB/19700101.PUR/F")
    assert reply.cls == "R" and "NIC/P" not in reply.text, reply
    reply = police.request("QPP.OR9990100.NAM/ROE, RICHARD.DOB/19750505")  # PUR/F is required
    assert reply.cls == "E", reply
    reply = police.request("QPP.OR9990100.NAM/ROE, RICHARD.DOB/19750505.PUR/C")
    assert reply.cls == "E", reply
    court = sw.signed_on("T0600001")
    entered = court.request("EPP.OR999060J.NAM/TESTER, COURTCASE.SEX/F.DOB/19720202.PPT/GEI.COR/OR999060J.OCA/ACC-J-1")
    assert entered.cls == "R" and "ACC-J-1" in entered.text, entered
    sw.nic_court = nic_of(entered.text, "P")
    again = court.request("EPP.OR999060J.NAM/TESTER, COURTCASE.SEX/F.DOB/19720202.PPT/GEI.COR/OR999060J.OCA/ACC-J-1")
    assert again.cls == "E" and again.text.startswith("REJECT ON FILE") and sw.nic_court in again.text, again
    # Only the entering ORI changes its record; a designated agency is not enough.
    reply = health.request(f"MPP.OR999050H.NAM/TESTER, COURTCASE.NIC/{sw.nic_court}.PPT/UNFIT")
    assert reply.cls == "E" and reply.text.startswith(".22."), reply
    reply = police.request(f"XPP.OR9990100.NAM/TESTER, COURTCASE.NIC/{sw.nic_court}.DOC/20260103")
    assert reply.cls == "E" and reply.text.startswith(".22."), reply
    reply = court.request(f"MPP.OR999060J.NAM/TESTER, NOBODY.NIC/P999999999.PPT/UNFIT")
    assert reply.cls == "E" and reply.text.startswith("REJECT NOT ON FILE"), reply
    school = sw.signed_on("T0400001")  # an agreement that does not grant firearms checks
    reply = school.request("QPP.OR999040Y.NAM/ROE, RICHARD.DOB/19750505.PUR/F")
    assert reply.cls == "E" and reply.text.startswith(".22."), reply
    reply = police.request("QDP.OR9990100.NAM/ROE, RICHARD.DOB/19750505")  # NICS side: control terminal agency
    assert reply.cls == "E" and "MKE/NICS INDEX" not in reply.text, reply
    school.close()
    for c in (health, police, court):
        c.close()


MINIMUM = {"NAM", "DOB", "SEX", "COR", "RAC", "SOC", "OLN", "OLS", "PPT", "ISD", "OCA", "NIC", "DOC"}


def test_any_other_field_is_not_minimum_information(sw):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    health = sw.signed_on("T0500001")
    codes = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3).filter(lambda c: c not in MINIMUM)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(code=codes, value=st.sampled_from(["X", "ABC123", "20260101", "FREE TEXT NOTE"]))
    def one(code, value):
        reply = health.request(EPP.format(name="TESTER, PROPERTY", dob="19700303", oca="ACC-PROP") + f".{code}/{value}")
        assert reply.cls == "E" and reply.text.startswith(f".12. {code} IS NOT MINIMUM INFORMATION"), reply

    one()
    police = sw.signed_on("T0100001")
    reply = police.request("QPP.OR9990100.NAM/TESTER, PROPERTY.DOB/19700303.PUR/F")
    assert reply.cls == "R" and "NIC/P" not in reply.text, reply  # nothing was stored
    police.close()
    health.close()


def test_daily_transmission_relief_and_the_nics_index(sw):
    control = sw.signed_on("T0000001")
    health = sw.signed_on("T0500001")
    transmit(sw, control)  # everything pending so far goes
    assert transmit(sw, control) == (0, 0, 0, 0)
    a = health.request(EPP.format(name="TESTER, ALPHA", dob="19710101", oca="ACC-P-1"))
    assert a.cls == "R", a
    nic_a = nic_of(a.text, "P")
    assert "ACC-P-1" in a.text
    assert transmit(sw, control) == (1, 0, 0, 0)
    shown = health.request("QPP.OR999050H.NAM/TESTER, ALPHA.DOB/19710101.PUR/F")
    if shown.cls == "E":  # the health authority's agreement may not grant inquiries; the police's does
        police = sw.signed_on("T0100001")
        shown = police.request("QPP.OR9990100.NAM/TESTER, ALPHA.DOB/19710101.PUR/F")
        police.close()
    assert shown.cls == "R" and nic_a in shown.text, shown
    assert "COR/OR999050H" in shown.text and "MKE/PROHIBITED PERSON" in shown.text, shown.text  # default COR
    ntd = re.search(r"NTD/(\d{8})", shown.text)
    nrn = re.search(r"NRN/(\S+)", shown.text)
    assert ntd and nrn, shown.text
    nrn_a = nrn.group(1).rstrip(".")
    b = health.request(EPP.format(name="TESTER, BRAVO", dob="19720101", oca="ACC-P-2"))
    c = health.request(EPP.format(name="TESTER, CHARLIE", dob="19730101", oca="ACC-P-3"))
    nic_b, nic_c = nic_of(b.text, "P"), nic_of(c.text, "P")
    assert transmit(sw, control) == (2, 0, 0, 0)
    reply = health.request(f"MPP.OR999050H.NAM/TESTER, ALPHA.NIC/{nic_a}.PPT/PSRB")
    assert reply.cls == "R" and nic_a in reply.text, reply
    reply = health.request(f"XPP.OR999050H.NAM/TESTER, BRAVO.NIC/{nic_b}.DOC/20260103")
    assert reply.cls == "R" and nic_b in reply.text, reply
    d = health.request(EPP.format(name="TESTER, DELTA", dob="19740101", oca="ACC-P-4"))
    assert d.cls == "R", d
    # NICS down: nothing is lost, the notice says how many are pending, the next one sends them.
    sw.ok("nics", "down")
    sw.ok("ppf", "transmit")
    down = wait_for(control, "NICS UNAVAILABLE")
    assert down.cls == "S" and "NICS UNAVAILABLE - 3 CHANGES PENDING" in down.text, down.text
    sw.ok("nics", "up")
    assert transmit(sw, control) == (1, 1, 1, 0)
    # Relief, by the PSRB: sent to NICS at once, not with the next batch.
    health_relief = health.request(f"RPP.OR999050H.NIC/{nic_c}.RLD/20260201")
    assert health_relief.cls == "E" and health_relief.text.startswith(".22."), health_relief
    psrb = sw.signed_on("T0700001")
    relief = psrb.request(f"RPP.OR999070S.NIC/{nic_c}.RLD/20260201.OCA/ACC-R-1")
    assert relief.cls == "R", relief
    police = sw.signed_on("T0100001")
    after = police.request("QPP.OR9990100.NAM/TESTER, CHARLIE.DOB/19730101.PUR/F")
    assert after.cls == "R" and "RELIEF GRANTED 20260201" in after.text, after
    assert "PROHIBITED FROM" not in after.text, after.text  # on file, no longer a prohibition
    code, check, _ = sw.check(last="TESTER", first="CHARLIE", middle=None, dob="1973-01-01", sex="M",
                              ref="INV-RELIEF")
    assert code == 201 and check["status"] == "approved", check
    code, check, _ = sw.check(last="TESTER", first="ALPHA", middle=None, dob="1971-01-01", sex="M", ref="INV-ALPHA")
    assert code == 201 and check["status"] == "denied", check
    index = control.request("QDP.OR9990000.NAM/TESTER, CHARLIE.DOB/19730101")
    assert index.cls == "R" and "MKE/NICS INDEX - MENTAL HEALTH" in index.text, index
    assert "RELIEF GRANTED 20260201" in index.text, index.text  # sent at once
    by_nrn = control.request(f"QDP.OR9990000.NRN/{nrn_a}")
    assert by_nrn.cls == "R" and "MKE/NICS INDEX - MENTAL HEALTH" in by_nrn.text, by_nrn
    assert "TESTER, ALPHA" in by_nrn.text, by_nrn.text
    none = control.request("QDP.OR9990000.NAM/CLEAN, CAROL C.DOB/19900909")
    assert none.cls == "R" and "NO NICS RECORD" in none.text, none
    # The relief went at once: the next batch has nothing (it is not counted again as a change).
    counts = transmit(sw, control)
    assert counts[:3] == (0, 0, 0), counts
    sw.nrn_a, sw.nic_a = nrn_a, nic_a
    for x in (control, health, psrb, police):
        x.close()


RECON = re.compile(r"PPF RECONCILIATION (\d{8}) - (\d+) RECORDS (\d+) DISCREPANCIES")


def test_reconciliation_and_fault_injection(sw):
    control = sw.signed_on("T0000001")
    sw.ok("ppf", "reconcile")
    summary = wait_for(control, "PPF RECONCILIATION")
    assert summary.cls == "S", summary
    m = RECON.search(summary.text)
    assert m and summary.text.startswith("PPF RECONCILIATION"), summary.text
    ymd_near(summary.text, summary.ts)
    records = int(m.group(2))
    assert records >= 3 and m.group(3) == "0", summary.text
    # NICS loses one record; the health authority is not connected: the discrepancy is queued.
    sw.ok("nics", "forget", sw.nrn_a)
    sw.ok("ppf", "reconcile")
    summary = wait_for(control, "PPF RECONCILIATION")
    m = RECON.search(summary.text)
    assert m and m.group(3) == "1", summary.text
    health = sw.signed_on("T0500001")
    found = wait_for(health, "PPF RECONCILIATION DISCREPANCY")
    assert found.cls == "U" and found.text.startswith("PPF RECONCILIATION DISCREPANCY"), found
    assert sw.nic_a in found.text and sw.nrn_a in found.text, found.text
    health.close()
    control.close()


def test_relief_while_nics_is_down_goes_with_the_next_transmission(sw):
    control = sw.signed_on("T0000001")
    court = sw.signed_on("T0600001")
    transmit(sw, control)
    sw.ok("nics", "down")
    reply = court.request(f"RPP.OR999060J.NIC/{sw.nic_court}.RLD/20260301")
    assert reply.cls == "R" and "RELIEF GRANTED 20260301" in reply.text, reply
    sw.ok("nics", "up")
    assert transmit(sw, control) == (0, 0, 0, 1)
    index = control.request("QDP.OR9990000.NAM/TESTER, COURTCASE.DOB/19720202")
    assert "MKE/NICS INDEX - MENTAL HEALTH" in index.text and "RELIEF GRANTED 20260301" in index.text, index
    court.close()
    control.close()


def test_nics_faults_and_dealer_checks_are_journaled(sw):
    for words, needle in ((("--text", "NICS DOWN"), "DOWN"), (("--text", "FORGET"), sw.nrn_a)):
        done = lems("audit", "search", "--home", str(sw.home), "--full", *words)
        assert done.returncode == 0 and needle in done.stdout.upper(), (words, done.stdout + done.stderr)
    done = lems("audit", "search", "--home", str(sw.home), "--full", "--text", sw.denied_txn)
    assert done.returncode == 0 and sw.denied_txn in done.stdout, done.stdout + done.stderr
    # The check's criminal-history part is in the dissemination log with PUR/F, the dealer as ATN.
    done = lems("audit", "dissemination", "--home", str(sw.home), "--subject", "ROE, RICHARD")
    line = next((l for l in done.stdout.splitlines() if "ROE, RICHARD" in l), "")
    assert done.returncode == 0 and re.search(r"\bQH\b", line) and re.search(r"\bF\b", line) \
        and "D0000001" in line, done.stdout + done.stderr


def test_ppf_load_checks_every_row_then_loads_on_the_running_switch(sw, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("NAM,DOB,SEX,PPT,OCA\n"
                   "TESTER, LOADONE,19600101,M,COMMITMENT,L-1\n"
                   "TESTER, LOADTWO,1960-01-02,M,COMMITMENT,L-2\n"
                   "TESTER, LOADTHREE,19600103,Q,COMMITMENT,L-3\n", encoding="utf-8")
    # A name holds a comma: a CSV writer quotes it.
    bad.write_text("NAM,DOB,SEX,PPT,OCA\n"
                   '"TESTER, LOADONE",19600101,M,COMMITMENT,L-1\n'
                   '"TESTER, LOADTWO",1960-01-02,M,COMMITMENT,L-2\n'
                   '"TESTER, LOADTHREE",19600103,Q,COMMITMENT,L-3\n', encoding="utf-8")
    done = lems("ppf", "load", str(bad), "--ori", "OR999050H", "--home", str(sw.home))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout + done.stderr
    lines = out.splitlines()
    assert any("DOB" in line and re.search(r"\b(3|2)\b", line) for line in lines), out  # every bad row, by number
    assert any("SEX" in line and re.search(r"\b(4|3)\b", line) for line in lines), out
    assert not any("LOADONE" in line for line in lines if "DOB" not in line and "SEX" not in line and "row" in line)
    police = sw.signed_on("T0100001")
    reply = police.request("QPP.OR9990100.NAM/TESTER, LOADONE.DOB/19600101.PUR/F")
    assert reply.cls == "R" and "NIC/P" not in reply.text, reply  # nothing loaded
    good = tmp_path / "good.csv"
    good.write_text("NAM,DOB,SEX,PPT,OCA\n"
                    '"TESTER, LOADONE",19600101,M,COMMITMENT,L-1\n'
                    '"TESTER, LOADTWO",19600102,F,UNFIT,L-2\n'
                    '"ROE, RICHARD",19750505,M,COMMITMENT,\n', encoding="utf-8")
    done = lems("ppf", "load", str(good), "--ori", "OR999050H", "--home", str(sw.home))
    out = (done.stdout + done.stderr).lower()
    assert done.returncode == 0, out
    assert re.search(r"\b2\b[^\n]*entered", out) and re.search(r"\b1\b[^\n]*skipped", out), out
    assert "roe, richard" in out or "row 4" in out, out  # the duplicate is reported
    reply = police.request("QPP.OR9990100.NAM/TESTER, LOADTWO.DOB/19600102.PUR/F")
    assert reply.cls == "R" and "NIC/P" in reply.text, reply  # on the running switch at once
    extra = tmp_path / "extra.csv"
    extra.write_text('NAM,DOB,SEX,MIS\n"TESTER, LOADFOUR",19600104,M,DIAGNOSIS\n', encoding="utf-8")
    done = lems("ppf", "load", str(extra), "--ori", "OR999050H", "--home", str(sw.home))
    assert done.returncode == 1 and "MIS" in done.stdout + done.stderr, done.stdout + done.stderr
    not_designated = lems("ppf", "load", str(good), "--ori", "OR9990100", "--home", str(sw.home))
    assert not_designated.returncode != 0
    police.close()


def test_daily_transmission_runs_on_switch_time(sw):
    control = sw.signed_on("T0000001")
    health = sw.signed_on("T0500001")
    assert health.request(EPP.format(name="TESTER, ECHO", dob="19750101", oca="ACC-P-5")).cls == "R"
    health.close()
    control.close()  # the notice waits for the control terminal
    sw.advance("1d")
    control = sw.signed_on("T0000001")
    notice = wait_for(control, "NICS TRANSMISSION")
    m = TRANSMISSION.search(notice.text)
    assert m and int(m.group(2)) >= 1, notice.text
    control.close()


# == Section 11: training and validation ===================================================================


def test_operator_training_deadlines_at_sign_on(sw):
    # Appendix B: `lems operator add` registers an operator certified today; a new operator with
    # no training on record yet is the project's `--training none` (docs/ICD.md).
    done = lems("operator", "add", "OP010009", "--ori", "OR9990100", "--level", "inquiry", "--password",
                "Acceptance#2026", "--training", "none", "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr
    c, reply = sw.sign_on("T0100001", "OR9990100", "OP010009", password="Acceptance#2026")
    assert reply.cls == "R" and reply.text.startswith("SIGN-ON ACCEPTED"), reply  # first sign-on
    c.close()
    sw.advance("11d")
    c, reply = sw.sign_on("T0100001", "OR9990100", "OP010009", password="Acceptance#2026")
    assert reply.cls == "E" and reply.text.startswith(".20.") and "TRAINING GUIDE NOT ISSUED" in reply.text, reply
    c.close()
    done = lems("operator", "training", "OP010009", "issued", "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr
    c, reply = sw.sign_on("T0100001", "OR9990100", "OP010009", password="Acceptance#2026")
    assert reply.cls == "R" and reply.text.startswith("SIGN-ON ACCEPTED"), reply  # at once
    c.close()
    sw.advance("61d")
    c, reply = sw.sign_on("T0100001", "OR9990100", "OP010009", password="Acceptance#2026")
    assert reply.cls == "E" and reply.text.startswith(".20.") and "TRAINING NOT COMPLETED" in reply.text, reply
    c.close()
    sw.ok("training", "OP010009", "completed")  # the console's training command records it too
    c, reply = sw.sign_on("T0100001", "OR9990100", "OP010009", password="Acceptance#2026")
    assert reply.cls == "R" and reply.text.startswith("SIGN-ON ACCEPTED"), reply
    assert c.request("QV.OR9990100.LIC/TEST123.LIS/OR").cls == "R"
    c.close()


def test_representative_must_hold_the_highest_level_first(sw):
    done = lems("operator", "add", "OP050009", "--ori", "OR999050H", "--level", "full", "--password",
                "Acceptance#2026", "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr
    refused = lems("operator", "training", "OP050009", "issued", "--level", "full", "--home", str(sw.home))
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert "REPRESENTATIVE" in (refused.stdout + refused.stderr).upper(), refused.stdout + refused.stderr
    done = lems("operator", "training", "OP050001", "completed", "--level", "full", "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr
    done = lems("operator", "training", "OP050009", "issued", "--level", "full", "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr


def test_validation_lists_certification_and_retirement(sw):
    police = sw.signed_on("T0100001")
    sheriff = sw.signed_on("T0200001")
    nics = {}
    for name, oca, c, ori in (("TESTER, VALONE", "ACC-V-1", police, "OR9990100"),
                              ("TESTER, VALTWO", "ACC-V-2", police, "OR9990100"),
                              ("TESTER, VALTHREE", "ACC-V-3", sheriff, "OR9990200")):
        reply = c.request(f"EW.{ori}.NAM/{name}.SEX/M.RAC/W.DOB/19850505.HGT/510.WGT/170.EYE/BRO.HAI/BRO"
                          f".OFF/2399.DOW/20260101.OCA/{oca}.MIS/VALIDATION TEST")
        assert reply.cls == "R", reply
        nics[oca] = nic_of(reply.text, "W")
    gun = police.request("EG.OR9990100.SER/ACCVALGUN1.MAK/GLK.CAL/9MM.TYP/PI.DOT/20260101.OCA/ACC-V-G")
    assert gun.cls == "R", gun
    nics["ACC-V-G"] = nic_of(gun.text, "G")
    police.close()
    sheriff.close()
    sw.advance("61d")
    sw.ok("validation", "run")
    police = sw.signed_on("T0100001")
    sheriff = sw.signed_on("T0200001")

    def list_with(c, nic):
        frames = drain(c, 1.5)
        for out in frames:
            if out.text.startswith("$.V. VALIDATION LIST") and nic in out.text:
                assert out.cls == "U", out
                return out
        pytest.fail(f"no validation list with {nic}: {[f.text[:60] for f in frames]}")

    own = list_with(police, nics["ACC-V-1"])
    for oca, name in (("ACC-V-1", "TESTER, VALONE"), ("ACC-V-2", "TESTER, VALTWO")):  # NIC, MKE, OCA, identifier
        line = next((l for l in own.text.split("\n") if nics[oca] in l), "")
        assert oca in line and name in line and re.search(r"\bE?W\b|WANTED", line), own.text
    sheriff_list = list_with(sheriff, nics["ACC-V-3"])
    list_id = re.match(r"\$\.V\. VALIDATION LIST (\S+)", sheriff_list.text).group(1)
    assert police.request(f"MW.OR9990100.NAM/TESTER, VALONE.NIC/{nics['ACC-V-1']}.VLN/SGT VALIDATOR").cls == "R"
    assert nics["ACC-V-G"] in own.text, own.text  # the other modify keys validate with their own identifiers
    reply = police.request(f"MG.OR9990100.SER/ACCVALGUN1.NIC/{nics['ACC-V-G']}.VLN/SGT VALIDATOR")
    assert reply.cls == "R", reply
    certified = sheriff.request(f"VCL.OR9990200.LST/{list_id}.VLN/DEP VALIDATOR")
    assert certified.cls == "R", certified
    police.close()
    sheriff.close()
    sw.advance("31d")
    police = sw.signed_on("T0100001")
    retired = wait_for(police, "$.P. RECORD RETIRED - NOT VALIDATED")
    frames = [retired] + drain(police, 1.5)
    retirements = [f for f in frames if f.text.startswith("$.P. RECORD RETIRED - NOT VALIDATED")]
    assert all(f.cls == "U" for f in retirements)
    text = "\n".join(f.text for f in retirements)
    assert nics["ACC-V-2"] in text and nics["ACC-V-1"] not in text and nics["ACC-V-G"] not in text, text
    gone = police.request("QW.OR9990100.NAM/TESTER, VALTWO.DOB/19850505")
    assert nics["ACC-V-2"] not in gone.text, gone
    kept = police.request("QW.OR9990100.NAM/TESTER, VALONE.DOB/19850505")
    assert nics["ACC-V-1"] in kept.text, kept
    kept = police.request("QW.OR9990100.NAM/TESTER, VALTHREE.DOB/19850505")
    assert nics["ACC-V-3"] in kept.text, kept
    police.close()


def test_quarterly_reconciliation_runs_on_switch_time(sw):
    # More than three months of switch time have passed since the start of the module.
    control = sw.signed_on("T0000001")
    frames = drain(control, 1.5)
    assert any(RECON.search(f.text) and f.cls == "S" for f in frames), [f.text[:60] for f in frames]
    control.close()


def test_the_journal_still_verifies(sw):
    done = lems("audit", "verify", "--home", str(sw.home))
    assert done.returncode == 0, done.stdout + done.stderr


# == Section 10: the portal, as a person at the counter uses it ===============================================


class _Forms:
    """The forms of a page: action, method and the fields with their values."""

    def __init__(self, html: str) -> None:
        from html.parser import HTMLParser

        forms: list[dict] = []

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "form":
                    forms.append({"action": a.get("action", ""), "method": (a.get("method") or "get").lower(),
                                  "fields": {}})
                elif tag in ("input", "select", "textarea") and forms and a.get("name"):
                    forms[-1]["fields"][a["name"]] = a.get("value") or ""

        Parser().feed(html)
        self.forms = forms

    def having(self, name: str) -> dict:
        return next(f for f in self.forms if name in f["fields"])


def test_portal_sign_in_submit_and_recent_checks(sw):
    import urllib.error
    import urllib.parse
    import urllib.request
    from http.cookiejar import CookieJar

    ctx = ssl.create_default_context(cafile=str(sw.home / "var" / "pki" / "ca.crt"))
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                         urllib.request.HTTPCookieProcessor(CookieJar()))
    base = f"https://localhost:{sw.dealer_port}"

    def get(path):
        with opener.open(base + path, timeout=20) as resp:
            return resp.status, resp.geturl(), resp.read().decode("utf-8")

    def post(action, fields):
        data = urllib.parse.urlencode(fields).encode()
        try:
            with opener.open(urllib.request.Request(urllib.parse.urljoin(base + "/fics/", action), data=data),
                             timeout=20) as resp:
                return resp.status, resp.geturl(), resp.read().decode("utf-8")
        except urllib.error.HTTPError as err:
            return err.code, err.geturl(), err.read().decode("utf-8")

    status, _, page = get("/fics/")
    assert status == 200
    signin = _Forms(page).having("key")
    fields = dict(signin["fields"])
    id_field = next(n for n in fields if "dealer" in n.lower())
    fields.update({id_field: "D0000001", "key": "wrong-key"})
    assert post(signin["action"], fields)[0] in (401, 403)
    status, _, page = get("/fics/")
    signin = _Forms(page).having("key")
    fields = dict(signin["fields"])
    fields.update({id_field: "D0000001", "key": DEMO_KEY})
    status, _, page = post(signin["action"], fields)
    assert status == 200, page
    form = _Forms(page).having("last_name")
    values = dict(form["fields"])
    values.update({"dealer_reference": "PORTAL-ACC-1", "last_name": "CLEAN", "first_name": "CAROL",
                   "middle_name": "C", "dob": "1990-09-09", "sex": "F", "id_type": "DL", "id_number": "P1234567",
                   "id_state": "OR"})
    for name in list(values):
        for word, value in (("type", "handgun"), ("make", "GLOCK"), ("model", "19"), ("caliber", "9MM"),
                            ("serial", "PORTALSER1")):
            if name == word:
                values[name] = value
    status, url, page = post(form["action"], values)
    assert status == 200, page
    txn = re.search(r"F\d{4}-\d{6}", url + page)
    assert txn, (url, page[:500])
    assert "approved" in page.lower(), page[:2000]
    status, _, page = get("/fics/")
    assert txn.group(0) in page and "PORTAL-ACC-1" in page
    code, shown, _ = sw.dealer("GET", f"/fics/v1/checks/{txn.group(0)}")
    assert code == 200 and shown["status"] == "approved" and shown["dealer_reference"] == "PORTAL-ACC-1", shown
    assert txn.group(0)[1:5] == shown["received"][:4], shown  # F<CCYY>: the year of switch time
