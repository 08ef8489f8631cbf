"""Registry changes take effect on the running switch at once (PROTOCOL.md 8, issue 14 finding 7).

The commands run as a user runs them (``python -m lems ...`` in a subprocess)
against the home of a switch that is running over real TLS; nothing reloads it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import PASSWORD, in_reactor

QW = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"


def lems(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "lems", *args, "--home", str(home)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def keep_old_certificate(home: Path, terminal: str, into: Path) -> tuple[Path, Path]:
    pki = home / "var" / "pki" / "terminals"
    into.mkdir()
    cert, key = into / f"{terminal}.crt", into / f"{terminal}.key"
    shutil.copy(pki / f"{terminal}.crt", cert)
    shutil.copy(pki / f"{terminal}.key", key)
    return cert, key


def test_a_reissued_certificates_predecessor_is_refused_at_the_next_handshake(running, tmp_path):
    old_cert, old_key = keep_old_certificate(running.home, "T0200001", tmp_path / "old")
    assert running.client("T0200001", cert=old_cert, key=old_key).connect().banner().cls == "S"
    lems(running.home, "ca", "issue", "T0200001")
    refused = running.client("T0200001", cert=old_cert, key=old_key).connect().receive()
    assert refused.cls == "E" and refused.text.startswith(".21. CERTIFICATE NOT REGISTERED TO ANY TERMINAL")
    # The new certificate works at once.
    fresh = running.signed_on("T0200001", "OR9990200", "OP020001")
    assert fresh.request(QW.replace("OR9990100", "OR9990200")).cls == "R"


def test_a_live_session_on_the_old_certificate_is_refused_at_sign_on(running, tmp_path):
    old_cert, old_key = keep_old_certificate(running.home, "T0200001", tmp_path / "old")
    live = running.client("T0200001", cert=old_cert, key=old_key).connect()
    assert live.banner().cls == "S"
    # The sign-on is what this test is about: hold the one-second tick, which would otherwise
    # close the session first if it fell between the re-issue and the sign-on (the next test).
    ticker = running.service.getServiceNamed("tick")
    in_reactor(ticker.stopService)
    try:
        lems(running.home, "ca", "issue", "T0200001")
        refused = live.sign_on("OR9990200", "OP020001", PASSWORD)
    finally:
        in_reactor(ticker.startService)
    assert refused.cls == "E"
    assert refused.text.startswith(".21. TERMINAL T0200001 HAS A NEW CERTIFICATE; THIS ONE NO LONGER IDENTIFIES IT")


def test_a_signed_on_session_on_the_old_certificate_is_closed_on_the_next_tick(running, tmp_path):
    old_cert, old_key = keep_old_certificate(running.home, "T0200001", tmp_path / "old")
    live = running.client("T0200001", cert=old_cert, key=old_key).connect()
    live.banner()
    assert live.sign_on("OR9990200", "OP020001", PASSWORD).cls == "R"
    lems(running.home, "ca", "issue", "T0200001")
    running.tick()
    notice = live.receive()
    assert notice.cls == "S" and notice.text == "TERMINAL NO LONGER ADMITTED AFTER A REGISTRY CHANGE - DISCONNECTED"
    events = [r[0] for r in running.call(lambda: running.switch.store.conn.execute(
        "SELECT event FROM journal WHERE kind = 'admin' ORDER BY seq").fetchall())]
    assert "REGISTRY CHANGE TAKEN" in events


def test_a_terminal_and_an_operator_added_while_running_work_at_once(running):
    lems(running.home, "terminal", "add", "T0100009", "--ori", "OR9990100", "--type", "workstation")
    lems(running.home, "operator", "add", "OP010009", "--ori", "OR9990100", "--level", "full",
         "--password", PASSWORD)
    c = running.signed_on("T0100009", "OR9990100", "OP010009")
    assert c.request(QW).cls == "R"


def test_a_registry_that_does_not_load_keeps_the_running_one(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    agencies = running.home / "terminals" / "agencies.toml"
    agencies.write_text(agencies.read_text() + "\n[[agency]]\nthis is not toml\n")
    running.call(running.switch.store.announce_registry_change, "HAND EDIT", "2026110315000000")
    running.tick()
    assert c.request(QW).cls == "R"
    events = [r[0] for r in running.call(lambda: running.switch.store.conn.execute(
        "SELECT event FROM journal WHERE kind = 'admin' ORDER BY seq").fetchall())]
    assert "REGISTRY CHANGE REFUSED" in events


def test_the_commands_writing_the_store_beside_a_running_switch_leave_the_journal_verifiable(running):
    """The change notice shares the store with the running switch; its head file still matches."""
    lems(running.home, "terminal", "add", "T0100008", "--ori", "OR9990100", "--type", "workstation")
    c = running.signed_on("T0100008", "OR9990100", "OP010001")
    assert c.request(QW).cls == "R"
    running.tick()
    running.call(running.switch.store.commit)
    done = subprocess.run([sys.executable, "-m", "lems", "audit", "verify", "--home", str(running.home)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "matches" in done.stdout
