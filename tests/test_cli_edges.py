"""Rough edges of the command line, as a user meets them: the init's last line can be run as printed,
an interface terminal's banner does not tell it to sign on, the help points at documents that exist."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from test_cli import lems

ROOT = Path(__file__).resolve().parents[1]


def test_init_prints_a_serve_command_that_runs_as_printed(tmp_path):
    script = Path(sys.executable).parent / "lems"  # .venv/bin/lems, as README.md runs it
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(script), "init", "demo"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"run it with: {shlex.quote(str(script))} serve --home demo"
    as_module = subprocess.run([sys.executable, "-m", "lems", "init", "two"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
    assert as_module.stdout.splitlines()[-1] == f"run it with: {shlex.quote(sys.executable)} -m lems serve --home two"


def test_an_interface_terminal_gets_the_banner_without_the_sign_on_line(running):
    workstation = running.client("T0100001").connect().banner()
    interface = running.client("IF010001", listener="interfaces").connect().banner()
    assert re.search(r"^SIGN ON: SON\.", workstation.text, re.M)
    assert "SON." not in interface.text
    assert interface.text.split("\n") == [line for line in workstation.text.split("\n") if "SON." not in line]


def test_bench_help_points_at_documents_in_the_repository(tmp_path):
    done = lems("bench", "--help", cwd=tmp_path)
    assert done.returncode == 0
    for cited in re.findall(r"[\w/]*\.md", done.stdout):
        assert (ROOT / cited).exists(), cited
    assert "docs/PERFORMANCE.md" in done.stdout
