"""Password rules at `lems operator add` and the rehash at sign-on (issue 14 finding 10)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from lems import cli
from lems.base import credentials
from lems.base.registry import Registry

from conftest import PASSWORD, edit_registry


def add(home, operator: str, password: str, capsys) -> tuple[int, str]:
    status = cli.main(["operator", "add", operator, "--ori", "OR9990100", "--level", "inquiry",
                       "--password", password, "--home", str(home)])
    return status, capsys.readouterr().err


def test_operator_add_refuses_a_weak_password_naming_the_rule(home, capsys):
    status, err = add(home, "OP019997", "a", capsys)
    assert status == 2 and "password refused: a password has at least 8 characters" in err
    status, err = add(home, "OP019997", "OP019997#x", capsys)
    assert status == 2 and "operator id" in err
    status, err = add(home, "OP019997", "Welcome2026!", capsys)
    assert status == 2 and "banned list" in err
    (home / "conf" / "banned-passwords.txt").write_text("# this agency's own words\nriverside\n")
    status, err = add(home, "OP019997", "Riverside#44", capsys)
    assert status == 2 and "banned list" in err
    assert "OP019997" not in Registry.load(home / "terminals").operators


def test_a_new_password_is_none_of_the_previous_ten(home, capsys):
    assert add(home, "OP019997", "First#Pass1", capsys)[0] == 0
    status, err = add(home, "OP019997", "First#Pass1", capsys)  # the current one
    assert status == 2 and "previous 10 passwords" in err
    assert add(home, "OP019997", "Second#Pass2", capsys)[0] == 0
    status, err = add(home, "OP019997", "First#Pass1", capsys)  # an earlier one, from the history
    assert status == 2 and "previous 10 passwords" in err
    history = home / "var" / "password-history.json"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    kept = json.loads(history.read_text())["OP019997"]
    assert len(kept) == 1 and "First#Pass1" not in history.read_text()
    assert credentials.verify_password("First#Pass1", kept[0])


def test_the_demo_password_satisfies_the_rules():
    registry = Registry.load(Path(__file__).resolve().parent.parent / "terminals")
    for operator in registry.operators.values():
        assert credentials.password_problem(PASSWORD, operator.id, operator.ori) is None
        assert not credentials.needs_rehash(operator.password), operator.id


def test_sign_on_rehashes_an_old_hash_into_the_registry(home, switch_factory):
    old = credentials.hash_password(PASSWORD, n=2**14)
    edit_registry(home, operators={"OP010001": {"password": old}})
    running = switch_factory()
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    saved = Registry.load(home / "terminals").operators["OP010001"].password
    assert saved != old and saved.startswith(f"scrypt${2**17}$8$1$")
    assert credentials.verify_password(PASSWORD, saved)
    assert running.switch.registry.operators["OP010001"].password == saved
    events = running.call(lambda: [r[0] for r in running.switch.store.conn.execute(
        "SELECT event FROM journal WHERE operator = 'OP010001' AND kind = 'security'")])
    assert "PASSWORD REHASHED" in events
    # The new hash signs on as the old one did.
    assert c.request("SOF.OR9990100").cls == "R"
    assert c.sign_on("OR9990100", "OP010001", PASSWORD).text.startswith("SIGN-ON ACCEPTED")
