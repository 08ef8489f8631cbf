"""The registry's writes keep the administrators' files as they wrote them (tomlkit)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import attrs
import pytest

from lems import cli
from lems.base.registry import Registry, RegistryError, Terminal, write_atomically

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path) -> Path:
    for part in ("conf", "terminals"):
        shutil.copytree(REPO / part, tmp_path / part)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_status_change_keeps_the_comments_and_reloads_to_the_same_registry(home):
    agencies = home / "terminals" / "agencies.toml"
    edit(agencies, 'name = "TEST CITY POLICE DEPARTMENT"\n',
         'name = "TEST CITY POLICE DEPARTMENT"   # renamed 2025, see ticket 42\n'
         '# The records unit asked for this entry to stay first.\n')
    edit(agencies, 'signed = "2026-01-15"', 'signed = 2026-01-15  # a TOML date, as an administrator may write it')
    edit(agencies, 'ori = "OR9990200"\n', 'ori = "OR9990200"\nliaison = "SGT TEST"\n')  # a key the switch ignores
    before = agencies.read_text()
    registry = Registry.load(home / "terminals")

    # what the console's `suspend OR9990100` does
    suspended = registry.with_agency(attrs.evolve(registry.agencies["OR9990100"], status="suspended"))

    after = agencies.read_text()
    assert after == before.replace('status = "active"\nserves = []\n[agency.agreement]\nsigned = "2026-01-15"\n'
                                   'review_due = "2027-09-30"\ngrants = ["criminal-history", "firearms"]\n'
                                   'dmv_purposes = "ABCDEFGHI"\n\n[[agency]]\nori = "OR9990200"',
                                   'status = "suspended"\nserves = []\n[agency.agreement]\nsigned = "2026-01-15"\n'
                                   'review_due = "2027-09-30"\ngrants = ["criminal-history", "firearms"]\n'
                                   'dmv_purposes = "ABCDEFGHI"\n\n[[agency]]\nori = "OR9990200"', 1)
    assert after != before
    for kept in ("# renamed 2025, see ticket 42", "# The records unit asked", "# a TOML date",
                 'liaison = "SGT TEST"', "# grants: criminal-history, firearms"):
        assert kept in after
    reloaded = Registry.load(home / "terminals")
    assert reloaded == suspended and reloaded.agencies["OR9990100"].status == "suspended"

    # and back: the file is byte for byte what the administrator wrote
    reloaded.with_agency(attrs.evolve(reloaded.agencies["OR9990100"], status="active"))
    assert agencies.read_text() == before


def test_an_agreement_change_edits_the_sub_table_in_place(home):
    registry = Registry.load(home / "terminals")
    agency = registry.agencies["OR9990200"]
    changed = registry.with_agency(attrs.evolve(agency, agreement=attrs.evolve(
        agency.agreement, notice=agency.agreement.signed, grants=("criminal-history",))))
    text = (home / "terminals" / "agencies.toml").read_text()
    assert 'grants = ["criminal-history"]\ndmv_purposes = "ABCDEFGHI"\nnotice = "2026-01-15"\n' in text
    assert Registry.load(home / "terminals") == changed


def test_terminal_revocation_and_a_new_terminal_keep_the_file_and_its_mode(home):
    terminals = home / "terminals" / "terminals.toml"
    edit(terminals, 'id = "T0100002"\n', 'id = "T0100002"   # the patrol car laptop\n')
    os.chmod(terminals, 0o640)
    before = terminals.read_text()
    registry = Registry.load(home / "terminals")
    registry = registry.with_terminal(attrs.evolve(registry.terminals["T0100002"], status="revoked"))
    registry = registry.with_terminal(Terminal("T0100009", "OR9990100", "mobile", fingerprint="ab" * 32))
    after = terminals.read_text()
    assert after.startswith(before.split('[[terminal]]\nid = "T0100002"')[0])
    assert 'id = "T0100002"   # the patrol car laptop\nori = "OR9990100"\ntype = "mobile"\nack = false\n' \
           'status = "revoked"\n' in after
    assert after.endswith('fingerprint = ""\n\n[[terminal]]\nid = "T0100009"\nori = "OR9990100"\ntype = "mobile"\n'
                          'ack = false\nstatus = "active"\nfingerprint = "' + "ab" * 32 + '"\n')
    assert stat.S_IMODE(terminals.stat().st_mode) == 0o640
    assert Registry.load(home / "terminals") == registry
    assert [p.name for p in terminals.parent.iterdir() if p.name.startswith(".")] == []


def test_lems_operator_add_keeps_the_file(home, capsys):
    operators = home / "terminals" / "operators.toml"
    edit(operators, 'id = "OP010002"\n', '# on leave until March\nid = "OP010002"\n')
    before = operators.read_text()
    assert cli.main(["operator", "add", "OP010009", "--ori", "OR9990100", "--level", "inquiry",
                     "--password", "Secret#2026", "--home", str(home)]) == 0
    after = operators.read_text()
    assert after.startswith(before) and "# on leave until March\n" in after
    added = Registry.load(home / "terminals").operators["OP010009"]
    assert (added.ori, added.level) == ("OR9990100", "inquiry")


def test_a_write_that_would_not_load_back_is_refused_and_the_file_kept(home):
    terminals = home / "terminals" / "terminals.toml"
    before = terminals.read_text()
    registry = Registry.load(home / "terminals")
    bad = attrs.evolve(registry, terminals={**registry.terminals,
                                            "T0100001": attrs.evolve(registry.terminals["T0100001"], type="toaster")})
    with pytest.raises(RegistryError, match="type must be one of"):
        bad.save("terminal")
    assert terminals.read_text() == before
    with pytest.raises(Exception):
        write_atomically(terminals, "[[terminal]\n")
    assert terminals.read_text() == before
    assert [p.name for p in terminals.parent.iterdir() if p.name.startswith(".")] == []
