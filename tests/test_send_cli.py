"""`lems send` as a user runs it (a process) against a real switch over TLS: nothing it receives is
swallowed, a refusal says the switch's reason, and its mistakes of use are sentences, not tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import PASSWORD, edit_registry
from test_cli import lems

from lems.admin.operations import Admin

AM = "AM.OR9990100.OR9990200.TXT/HELLO SHERIFF FROM THE CITY"


def send(running, tmp_path, terminal, text, *extra, **kw) -> subprocess.CompletedProcess:
    return lems("send", terminal, text, "--home", str(running.home), "--port", str(running.port), *extra,
                cwd=tmp_path, **kw)


def queue_am(running) -> None:
    city = running.signed_on("T0100001", "OR9990100", "OP010001")
    reply = city.request(AM)
    assert reply.cls == "R" and "QUEUED" in reply.text, reply
    city.close()


def waiting(running) -> list:
    return running.call(lambda: Admin(running.switch).queue("OR9990200"))


def test_queued_traffic_delivered_to_a_one_shot_connection_is_shown_on_stderr(running, tmp_path):
    queue_am(running)
    done = send(running, tmp_path, "T0200001", "HBT")
    assert (done.returncode, done.stdout) == (0, "HBT\n"), done.stderr
    heading, *text = done.stderr.splitlines()
    assert heading.startswith("lems send: --- UNSOLICITED OSN ") and "REF -" in heading
    assert heading.endswith("(delivered to T0200001 by this connection)")
    assert "HELLO SHERIFF FROM THE CITY" in "\n".join(text)
    assert waiting(running) == []  # written to the connection: delivered, and shown
    again = send(running, tmp_path, "T0200001", "HBT")
    assert (again.returncode, again.stdout, again.stderr) == (0, "HBT\n", "")


def test_an_ack_terminal_keeps_its_traffic_queued(home, switch_factory, tmp_path):
    edit_registry(home, terminals={"T0200001": {"ack": True}})
    running = switch_factory()
    assert running.switch.registry.terminals["T0200001"].ack
    queue_am(running)
    for _ in range(2):  # shown each time, acknowledged never: it is still there for the real terminal
        done = send(running, tmp_path, "T0200001", "HBT")
        assert (done.returncode, done.stdout) == (0, "HBT\n"), done.stderr
        assert "HELLO SHERIFF FROM THE CITY" in done.stderr
        assert "(not acknowledged: the switch sends it again to the next connection)" in done.stderr
        assert len(waiting(running)) == 1


def test_a_refused_terminal_prints_the_switchs_reason(running, tmp_path):
    running.call(lambda: Admin(running.switch).set_status("revoke", "T0200001"))
    done = send(running, tmp_path, "T0200001", "HBT")
    assert done.returncode == 1
    assert done.stdout.startswith(".21. TERMINAL T0200001 IS REVOKED"), (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "closed the connection" not in done.stderr


def test_mistakes_of_use_are_said_in_a_sentence(running, tmp_path):
    unknown = lems("term", "T0199999", "--home", str(running.home), cwd=tmp_path)
    assert unknown.returncode == 2
    assert "terminal T0199999 is not registered in" in unknown.stderr
    assert "lems terminal add T0199999 --ori ORI --type TYPE" in unknown.stderr
    cert = running.home / "var" / "pki" / "terminals" / "T0100002.crt"
    cert.unlink()
    for command in ("send", "term"):
        done = lems(command, "T0100002", *(["HBT"] if command == "send" else []), "--home", str(running.home),
                    cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert f"terminal T0100002 has no certificate: {cert} is missing" in done.stderr
        assert "lems ca issue T0100002" in done.stderr
    not_home = lems("send", "T0100001", "HBT", cwd=tmp_path)  # no --home, and tmp_path is not one
    assert not_home.returncode == 2
    assert f"{tmp_path}/conf/lems.toml: no such file" in not_home.stderr
    assert "lems init DIR" in not_home.stderr
    # No terminal to ask for the password on (a new session has no controlling terminal), nothing on stdin.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    asked = subprocess.run([sys.executable, "-m", "lems", "send", "T0100001", "HBT", "--home", str(running.home),
                            "--port", str(running.port), "--operator", "OP010001"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                           start_new_session=True)
    assert asked.returncode == 2
    assert asked.stderr == "lems: no terminal to ask for the password of OP010001 on: give --password PW\n"
    piped = subprocess.run([sys.executable, "-m", "lems", "send", "T0100001", "HBT", "--home", str(running.home),
                            "--port", str(running.port), "--operator", "OP010001"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60, input=PASSWORD + "\n",
                           start_new_session=True)
    assert (piped.returncode, piped.stdout) == (0, "HBT\n"), piped.stderr
    for done in (unknown, not_home, asked):
        assert "Traceback" not in done.stderr
