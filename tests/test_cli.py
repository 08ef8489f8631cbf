"""The command line as a user runs it: separate processes, started outside the checkout.

Run from a temporary directory, ``python -m lems`` imports the installed lems
(CI installs it with pip), so this also proves an installed lems carries its
demo home and can init and serve one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import serve_process

PASSWORD = "LemsDemo#2026"
QW = "QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101"


def lems(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "lems", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def served(tmp_path):
    """`lems init` then `lems serve --port 0` in its own process; yields (home, port)."""
    home = tmp_path / "home"
    done = lems("init", str(home), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "LemsDemo#2026" in done.stdout
    proc, port = serve_process(home, cwd=tmp_path)
    try:
        yield home, port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_init_serve_send_hit_and_clean_stop(served, tmp_path):
    home, port, proc = served
    ok = lems("send", "T0100001", QW, "--home", str(home), "--port", str(port),
              "--operator", "OP010001", "--password", PASSWORD, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert "MKE/WANTED PERSON" in ok.stdout and "NIC/W" in ok.stdout
    refused = lems("send", "T0100001", QW, "--home", str(home), "--port", str(port), cwd=tmp_path)
    assert refused.returncode == 1 and refused.stdout.startswith(".20.")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    proc.reader.join(5)
    out = "".join(proc.lines)
    assert proc.returncode == 0 and "stopped" in out
    verify = lems("audit", "--home", str(home), "verify", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The form of PROTOCOL.md appendix B: the home after the action.
    for action in ("verify", "search", "export"):
        done = lems("audit", action, "--home", str(home), cwd=tmp_path)
        assert done.returncode == 0, action + done.stdout + done.stderr
    assert "OK" in lems("audit", "verify", "--home", str(home), cwd=tmp_path).stdout
    not_a_home = lems("audit", "verify", "--home", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert not_a_home.returncode == 2 and "Traceback" not in not_a_home.stderr


def test_keys_are_private_and_init_refuses_a_used_directory(tmp_path):
    home = tmp_path / "home"
    assert lems("init", str(home), cwd=tmp_path).returncode == 0
    key = home / "var" / "pki" / "terminals" / "T0100001.key"
    assert key.stat().st_mode & 0o077 == 0
    again = lems("init", str(home), cwd=tmp_path)
    assert again.returncode == 2 and "not empty" in again.stderr
    assert lems("init", str(home), "--exist-ok", cwd=tmp_path).returncode == 0


def test_terminal_and_operator_add(tmp_path):
    home = tmp_path / "home"
    assert lems("init", str(home), cwd=tmp_path).returncode == 0
    added = lems("terminal", "add", "T0100009", "--ori", "OR9990100", "--type", "mobile", "--home", str(home),
                 cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert (home / "var" / "pki" / "terminals" / "T0100009.crt").exists()
    assert 'id = "T0100009"' in (home / "terminals" / "terminals.toml").read_text()
    op = lems("operator", "add", "OP019999", "--ori", "OR9990100", "--level", "inquiry", "--password", "Secret#1",
              "--home", str(home), cwd=tmp_path)
    assert op.returncode == 0, op.stderr
    text = (home / "terminals" / "operators.toml").read_text()
    assert "OP019999" in text and "Secret#1" not in text
    issued = lems("ca", "issue", "T0100009", "--home", str(home), cwd=tmp_path)
    assert issued.returncode == 0 and "fingerprint" in issued.stdout


@pytest.mark.parametrize("command", ["bench", "replay", "console"])
def test_subcommands_with_their_own_parser_take_leading_options(command, capsys):
    """`lems bench --terminals 2 ...`: options right after the name reach the subcommand."""
    from lems import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: lems {command}" in capsys.readouterr().out
