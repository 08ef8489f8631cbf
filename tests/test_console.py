"""The administrators' console over real SSH on loopback.

The tests connect with lems.net.console's own conch client (twisted.conch, which
lems depends on), so they need nothing beyond what `.ci/run` installs; one test
also drives the stock OpenSSH client through `lems console` when `ssh` exists.
The shell's commands without SSH are in test_admin.py.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import PASSWORD, in_reactor
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.error import ConchError
from twisted.conch.ssh import keys
from twisted.internet import reactor

from lems.net import console as console_mod
from lems.net import sshkeys
from lems.tools.client import LinkClosed
from lems.store.journal import search
from lems.base.registry import Registry

QW_DOE = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"


def admin_key(running) -> keys.Key:
    return keys.Key.fromFile(str(running.home / "var" / "console" / sshkeys.ADMIN_KEY))


def host_key(running) -> bytes:
    return keys.Key.fromFile(str(running.home / "var" / "console" / f"{sshkeys.HOST_KEY}.pub")).blob()


def open_call(running, command=None, key=None, pty=False) -> console_mod.ConsoleCall:
    call = console_mod.ConsoleCall(key or admin_key(running), command=command, pty=pty, host_key=host_key(running))
    in_reactor(console_mod.connect, reactor, "127.0.0.1", running.service.console.port, call)
    return call


def run(running, command: str, key=None) -> tuple[int, str]:
    """One console command over SSH (exec); (exit status, output)."""
    call = open_call(running, command, key)
    return in_reactor(lambda: call.done)


def wait_for(call: console_mod.ConsoleCall, text: str, count: int = 1, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = in_reactor(lambda: call.text)
        if seen.count(text) >= count:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"{text!r} x{count} never came; got {in_reactor(lambda: call.text)!r}")


def journal(running, **filters):
    return running.call(lambda: search(running.switch.store.conn, limit=1000, **filters))


def test_admin_key_runs_a_command_and_it_is_audited(running):
    status, out = run(running, "status")
    assert status == 0
    assert out.startswith("LEMS EMULATOR  up ")
    assert "connections   0 (0 sessions, 0 signed on)" in out
    assert "messages/s" in out and "locked        none" in out
    records = journal(running, kind="admin")
    assert [(r.event, r.text, r.operator, r.outcome) for r in records] == [
        ("CONSOLE STATUS", "status", "LEMS-ADMIN", "OK")]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the server sees the hang-up a moment after the client
        events = [r.event for r in journal(running, kind="security", operator="lems-admin")]
        if events == ["CONSOLE SIGN-IN", "CONSOLE SIGN-OUT"]:
            break
        time.sleep(0.02)
    assert events == ["CONSOLE SIGN-IN", "CONSOLE SIGN-OUT"]


def test_wrong_key_is_refused(running):
    stranger = keys.Key(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(console_mod.AuthRefused):
        run(running, "status", key=stranger)
    refused = [r for r in journal(running, kind="security") if r.event == "CONSOLE KEY REFUSED"]
    assert refused and stranger.fingerprint(keys.FingerprintFormats.SHA256_BASE64) in refused[-1].text
    assert not journal(running, kind="admin")


def test_the_client_refuses_a_console_with_another_host_key(running):
    call = console_mod.ConsoleCall(admin_key(running), command="status",
                                   host_key=keys.Key(ed25519.Ed25519PrivateKey.generate()).public().blob())
    in_reactor(console_mod.connect, reactor, "127.0.0.1", running.service.console.port, call)
    with pytest.raises(ConchError, match="host key"):
        in_reactor(lambda: call.done)
    assert not journal(running, kind="admin")


def test_refused_and_unknown_commands_exit_1(running):
    assert run(running, "revoke NOSUCH1")[0] == 1
    status, out = run(running, "frobnicate")
    assert (status, out) == (1, "unknown command 'frobnicate'; type help\n")
    assert run(running, "stauts") == (1, "unknown command 'stauts', did you mean 'status'?; type help\n")
    assert [r.outcome for r in journal(running, kind="admin")] == ["REFUSED", "REFUSED", "REFUSED"]


def test_status_and_locked_list_registered_operators_and_count_the_other_keys(running):
    c = running.client("T0100001").connect()
    c.banner()
    for _ in range(5):  # an id nobody has, and a real operator named with another agency's ORI
        assert c.sign_on("OR9990100", "OP019999", "bad").cls == "E"
    running.clock.advance(60)
    for _ in range(5):
        assert c.sign_on("OR9990100", "OP020001", "bad").cls == "E"
    status, out = run(running, "status")
    assert "locked        none" in out
    assert ("throttled     2 sign-on id(s) that are no registered operator of the ORI they named "
            "(`locked` names them)") in out
    assert "OP019999" not in out
    assert run(running, "locked")[1].splitlines() == [
        "no operator is locked",
        "throttled, not registered operators of the ORI named: OP019999@OR9990100 OP020001@OR9990100"]


def test_revoke_closes_the_live_session_and_the_next_connection_gets_21(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    assert run(running, "revoke agency T0100001") == (1, "REFUSED: NO AGENCY T0100001\n")
    status, out = run(running, "revoke terminal t0100001")  # README's words; "revoke t0100001" too
    assert status == 0
    assert out == "terminal T0100001 revoked (was active)\nclosed live session(s): T0100001\n"
    notice = c.receive()
    assert notice.cls == "S" and "T0100001 REVOKED" in notice.text
    with pytest.raises(LinkClosed):
        c.receive(timeout=5)
    assert Registry.load(running.home / "terminals").terminals["T0100001"].status == "revoked"
    again = running.client("T0100001").connect()
    refused = again.receive()
    assert refused.cls == "E" and refused.text.startswith(".21.") and "REVOKED" in refused.text
    # The revocation is found by terminal in the journal, from the console too.
    status, out = run(running, "audit terminal T0100001 last 50")
    assert status == 0 and "CONSOLE REVOKE OK  revoke terminal t0100001" in out


def test_reload_with_a_broken_catalogue_is_refused_and_the_switch_keeps_working(running):
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    (running.home / "formats" / "ncic.toml").write_text("this is [not a catalogue\n")
    status, out = run(running, "reload")
    assert status == 1
    assert out.startswith("REFUSED: RUNNING CONFIGURATION KEPT: ")  # the reason once, no class name
    assert "ncic.toml" in out and "Error" not in out and out.count("REFUSED") == 1
    reply = c.request(QW_DOE)
    assert reply.cls == "R" and "MKE/WANTED PERSON" in reply.text.split("\n")
    assert [r.outcome for r in journal(running, kind="admin") if r.event == "CONSOLE RELOAD"] == ["REFUSED"]


def test_unlock_releases_a_locked_operator(running):
    c = running.client("T0100001").connect()
    c.banner()
    for _ in range(5):
        assert c.sign_on("OR9990100", "OP010001", "bad").cls == "E"
    locked = c.sign_on("OR9990100", "OP010001", PASSWORD)
    assert locked.cls == "E" and "LOCKED" in locked.text
    assert "locked        OP010001" in run(running, "status")[1]
    assert run(running, "unlock OP010001") == (0, "operator OP010001 unlocked\n")
    assert run(running, "locked") == (0, "no operator is locked\n")
    accepted = c.sign_on("OR9990100", "OP010001", PASSWORD)
    assert accepted.cls == "R" and accepted.text.startswith("SIGN-ON ACCEPTED")


def test_send_sm_reaches_every_connected_terminal(running):
    a = running.signed_on("T0100001", "OR9990100", "OP010001")
    b = running.signed_on("T0200001", "OR9990200", "OP020001")
    status, out = run(running, "send SM Switch restart at 0200 tonight")
    assert status == 0 and out.startswith("SM sent to 2 connected terminal(s)\n")
    for c in (a, b):
        frame = c.receive()
        assert frame.cls == "S"
        assert frame.text.split("\n") == ["SM.OR9990000.ALL", "TXT", "Switch restart at 0200 tonight"]


def test_interactive_shell_history_and_tab_completion(running):
    call = open_call(running, pty=True)
    wait_for(call, "lems> ")
    in_reactor(call.write, b"sta\t")
    wait_for(call, "status ")
    in_reactor(call.write, b"\r")
    wait_for(call, "connections")
    in_reactor(call.write, b"\x1b[A\r")  # up arrow recalls "status"
    wait_for(call, "connections", count=2)
    in_reactor(call.write, b"rev\tT01\t")
    wait_for(call, "revoke T010000")
    in_reactor(call.write, b"\t")  # two candidates left: they are listed
    wait_for(call, "T0100001  T0100002")
    in_reactor(call.write, b"\x03quit\r")
    status, text = in_reactor(lambda: call.done)
    assert status == 0 and "bye" in text
    assert [r.text for r in journal(running, kind="admin")] == ["status", "status", "quit"]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client on this machine")
def test_lems_console_with_openssh_checks_the_host_key_and_offers_no_password(running):
    port = str(running.service.console.port)
    base = [sys.executable, "-c", "import sys; from lems.net.console import main; sys.exit(main(sys.argv[1:]))",
            "--home", str(running.home), "--port", port]
    done = subprocess.run([*base, "terminals"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("TERMINAL ORI")
    builtin = subprocess.run([*base, "--builtin", "locked"], capture_output=True, text=True, timeout=30, check=False)
    assert (builtin.returncode, builtin.stdout) == (0, "no operator is locked\n"), builtin.stderr
    password = subprocess.run(
        ["ssh", "-p", port, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "BatchMode=yes",
         "admin@127.0.0.1", "status"], capture_output=True, text=True, timeout=30, check=False)
    assert password.returncode == 255 and "Permission denied (publickey)" in password.stderr


def test_stopping_the_switch_hangs_up_administrators_before_the_store_closes(running):
    call = open_call(running, pty=True)
    wait_for(call, "lems> ")
    store_path = running.service.settings.store_path
    running.stop()
    in_reactor(lambda: call.done)
    with sqlite3.connect(store_path) as conn:
        events = [row[0] for row in conn.execute("SELECT event FROM journal WHERE kind = 'security' ORDER BY seq")]
    assert events[-2:] == ["CONSOLE SIGN-OUT", "SWITCH STOP"]


def test_admin_key_checker_names_the_key_by_its_comment_and_reports_strangers(tmp_path):
    """Unit test of the checker (no SSH): Conch verifies the signature, the comment is the who-name."""
    from twisted.conch.error import ValidPublicKey
    from twisted.cred.credentials import SSHPrivateKey
    from twisted.cred.error import UnauthorizedLogin

    mine, stranger = (keys.Key(ed25519.Ed25519PrivateKey.generate()) for _ in range(2))
    listed = tmp_path / "admin_keys"
    listed.write_text(f"# administrators\nfrom=\"10.0.0.0/8\" {mine.public().toString('openssh').decode()} "
                      f"alice@example\nnot a key line\n")
    refused = []
    checker = sshkeys.AdminKeyChecker(listed, lambda user, fp: refused.append((user, fp)))

    def attempt(key, signer=None):
        data = b"session data"
        signature = signer.sign(data) if signer is not None else None
        creds = SSHPrivateKey(b"admin", b"ssh-ed25519", key.public().blob(), data, signature)
        outcome = []
        checker.requestAvatarId(creds).addBoth(outcome.append)
        return outcome[0]

    assert attempt(mine, mine) == "alice@example"
    assert attempt(mine).check(ValidPublicKey)  # a probe: the client signs next
    assert attempt(mine, stranger).check(UnauthorizedLogin)  # a signature by another key
    assert refused == []
    assert attempt(stranger).check(UnauthorizedLogin)  # not listed: refused before the signature matters
    assert refused == [("admin", stranger.fingerprint(keys.FingerprintFormats.SHA256_BASE64))]
