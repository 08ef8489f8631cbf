"""var/ is owner-only whatever the umask (issue 14 finding 2, SECURITY.md "The store, the journal and var/")."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from lems.base import log
from lems.base.clock import FakeClock
from lems.base.private import tighten
from lems.store import Store
from lems.store.journal import Journal
from lems.tools import home as home_mod
from lems.tools import serve


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def open_under(umask: int, fn, *args):
    old = os.umask(umask)
    try:
        return fn(*args)
    finally:
        os.umask(old)


def assert_owner_only(root: Path) -> list[Path]:
    seen = [root, *root.rglob("*")]
    for path in seen:
        want = 0o700 if path.is_dir() else 0o600
        assert mode(path) == want, f"{path} is {oct(mode(path))}"
    return seen


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_the_store_its_wal_shm_head_and_key_are_owner_only(tmp_path, umask):
    var = tmp_path / "var"
    store = open_under(umask, Store.open, var / "lems.sqlite")
    journal = Journal(store.conn, FakeClock())
    open_under(umask, lambda: (store.write(), journal.append("in", text="QW"), store.commit()))
    names = {p.name for p in var.iterdir()}
    assert {"lems.sqlite", "lems.sqlite-wal", "lems.sqlite-shm", "lems.sqlite-head", "journal_ed25519",
            "journal_ed25519.pub"} <= names
    assert_owner_only(var)
    store.close()


def test_an_open_store_from_before_is_tightened_when_opened(tmp_path):
    var = tmp_path / "var"
    Store.open(var / "lems.sqlite").close()
    for path in [var, *var.iterdir()]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    Store.open(var / "lems.sqlite").close()
    assert mode(var) == 0o700 and mode(var / "lems.sqlite") == 0o600


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_the_log_is_owner_only(tmp_path, umask):
    path = tmp_path / "var" / "log" / "lems.jsonl"
    try:
        open_under(umask, log.configure, path)
        log.structlog.get_logger("test").info("written")
    finally:
        log.configure(None)
    assert path.read_text().strip()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


def test_lems_init_leaves_var_owner_only_under_umask_zero(tmp_path):
    home = tmp_path / "home"
    open_under(0o000, home_mod.init, home, FakeClock())
    var = home / "var"
    seen = {p.relative_to(var).as_posix() for p in assert_owner_only(var)}
    # the store, its head file and key, the PKI and the console's keys are all in it
    assert {"lems.sqlite", "lems.sqlite-head", "journal_ed25519", "pki/ca.crt", "console"} <= seen
    assert any(p.startswith("pki/terminals/") and p.endswith(".key") for p in seen)


def test_serve_tightens_an_open_var_in_one_line(demo_template, tmp_path, capsys):
    home = tmp_path / "home"
    shutil.copytree(demo_template, home)
    var = home / "var"
    for path in [var, *var.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    capture = var / "captures" / "today.jsonl"
    serve._owner_only(home, capture)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("var/ was readable by others: ")
    assert out[0].endswith("set to owner-only (files 0600, directories 0700)")
    assert_owner_only(var)
    assert capture.exists() and mode(capture) == 0o600
    serve._owner_only(home, None)  # nothing left to say
    assert capsys.readouterr().out == ""
    assert tighten(var) == []


def test_lems_serve_tightens_an_open_home_at_start_and_its_store_stays_owner_only(home):
    import signal

    from conftest import serve_process

    var = home / "var"
    for path in [var, *var.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    proc, _port = serve_process(home)
    try:
        said = [line for line in proc.lines if line.startswith("var/ was readable by others: ")]
        assert len(said) == 1, proc.lines
        assert mode(var) == 0o700
        for name in ("lems.sqlite", "lems.sqlite-wal", "lems.sqlite-shm", "lems.sqlite-head", "journal_ed25519"):
            assert mode(var / name) == 0o600, name
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert_owner_only(var)
