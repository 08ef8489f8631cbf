"""A home made by an older lems keeps working with this one.

``tests/data/files-0.1.toml`` is formats/files.toml as ``lems init`` wrote it
before the file knowledge (letters, search numbers, hit confirmation types,
reply wording) moved out of the code into that file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lems.wire.catalogue import Catalogue, shipped_formats

OLD_FILES = Path(__file__).parent / "data" / "files-0.1.toml"


def old_formats(into: Path) -> Path:
    shutil.copytree(shipped_formats(), into)
    shutil.copy(OLD_FILES, into / "files.toml")
    return into


def test_an_old_files_toml_loads_to_the_shipped_catalogue(tmp_path):
    old, new = Catalogue.load(old_formats(tmp_path / "formats")), Catalogue.load(shipped_formats())
    assert old.files == new.files
    assert (old.search, old.identifiers, old.compared) == (new.search, new.identifiers, new.compared)
    assert old.file_for_rty("WP").name == "wanted"


def test_an_old_home_serves_inquiries_entries_and_hit_confirmation(home, switch_factory):
    shutil.copy(OLD_FILES, home / "formats" / "files.toml")
    running = switch_factory()
    c = running.signed_on("T0100001", "OR9990100", "OP010001")
    assert "MKE/WANTED PERSON" in c.request("QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101").text
    entry = c.request("EW.OR9990100.NAM/TESTER, UPGRADE A.SEX/M.RAC/W.DOB/19900101.HGT/510.WGT/180"
                      ".OFF/4901.DOW/20261101.OCA/UPG-0001")
    assert entry.cls == "R" and "ENTERED" in entry.text, entry.text
