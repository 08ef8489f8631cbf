"""A new record file is a catalogue change, not a code change (DESIGN.md).

A stolen drone file is added to a copy of formats/ (files.toml, a field and two
keys in ncic.toml, its RTY in nlets.toml) and to the route table: it is entered,
found by its own number field, refused as a duplicate and confirmed by its RTY
through the switch as it is, with no module edited.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_maintenance import CITY, COUNTY, TODAY, nic_of, signed_on

from lems.files.records import validate
from lems.files.index import RecordFiles
from lems.wire.catalogue import Catalogue
from lems.wire.message import Record

FORMATS = Path(__file__).resolve().parent.parent / "formats"

DRONE_FILE = '''
[file.drone]
letter = "Z"
title = "STOLEN DRONE"
kind = "property"
duplicate = ["DSN"]
numbers = ["DSN"]
rty = "DR"
identified_by = [["DSN"]]
'''
DRONE_FIELDS_AND_KEYS = '''
[field.DSN]
title = "DRONE SERIAL NUMBER"
format = "text"
max = 20
pattern = "[A-Z0-9][A-Z0-9-]*"

[key.QDR]
title = "INQUIRY - STOLEN DRONE"
file = "drone"
action = "inquiry"
fields = ["DSN", "NIC", "MAK"]
required = ["DSN | NIC"]
example = "QDR.OR9990100.DSN/TESTDRONE01"

[key.EDR]
title = "ENTER STOLEN DRONE"
file = "drone"
action = "enter"
fields = ["DSN", "MAK", "DOT", "OCA", "MIS"]
required = ["DSN", "DOT", "OCA"]
example = "EDR.OR9990100.DSN/TESTDRONE01.MAK/DJI.DOT/20260101.OCA/DRONE-1"
'''
EDR = "EDR.OR9990100.DSN/ACC-DRONE-1.MAK/DJI.DOT/20260101.OCA/ACC-D-1"
YQ = ("YQ.OR9990200.OR9990100.*YQDRONE001.TXTRTY/DR.RNO/1.PRI/U.OCA/ACC-D-1.NIC/{nic}{data}"
      ".RNA/DEP TEST.RAG/TEST COUNTY SO.PHO/5555550200")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def add_drones(formats: Path, routes: Path | None = None) -> None:
    """The whole change: data in formats/ (and routes/routes.toml when given)."""
    with (formats / "files.toml").open("a") as f:
        f.write(DRONE_FILE)
    _edit(formats / "files.toml", '"TYP", "REG", "BHN"]', '"TYP", "REG", "BHN", "DSN"]')  # compared in a YQ
    with (formats / "ncic.toml").open("a") as f:
        f.write(DRONE_FIELDS_AND_KEYS)
    _edit(formats / "nlets.toml", '"SE", "PP"]', '"SE", "PP", "DR"]')
    _edit(formats / "nlets.toml", '"TYP-ART", "REG", "BHN",', '"TYP-ART", "REG", "BHN", "DSN",')
    if routes is not None:
        _edit(routes / "routes.toml", '"securities", "prohibited"]', '"securities", "prohibited", "drone"]')
        with (routes / "routes.toml").open("a") as f:
            f.write('\n[[inquiry]]\nkeys = ["QDR"]\nfiles = ["drone"]\nsets = ["LEDS", "NCIC"]\nhandler = "records"\n')


@pytest.fixture
def drones(tmp_path) -> Catalogue:
    shutil.copytree(FORMATS, tmp_path / "formats")
    add_drones(tmp_path / "formats")
    return Catalogue.load(tmp_path / "formats")


def test_the_catalogue_knows_the_new_file(drones):
    drone = drones.files["drone"]
    assert (drone.letter, drone.record_word, drone.confirm_line) == ("Z", "RECORD", "IMMED CONFIRM RECORD WITH ORI")
    assert drones.file_for_rty("DR") is drone and drone.identified_by == (("DSN",),)
    assert drones.search_rule("drone").numbers[-1] == "DSN" and "DSN" not in drones.search_rule("gun").numbers
    assert "Z" in drones.keys["QDR"].fields["NIC"].codes


def test_the_index_finds_the_new_file_by_its_number(drones):
    files = RecordFiles(drones)
    record = Record("drone", "Z000100001", "OR9990100", (("DSN", "ACC-DRONE-1"), ("MAK", "DJI")), "20260101", "LEDS")
    validate(record, drones)
    files.add(record)
    assert files.index("drone", "LEDS").search({"DSN": "ACC DRONE 1"}) == [record]
    assert files.find("Z000100001") == record
    with pytest.raises(ValueError, match="must start with Z"):
        validate(Record("drone", "W000100001", "OR9990100", (("DSN", "X"),), "20260101", "LEDS"), drones)


def test_a_new_file_is_entered_found_and_confirmed_without_code(home, switch_factory):
    add_drones(home / "formats", home / "routes")
    running = switch_factory()
    city = signed_on(running, CITY)

    entry = city.request(EDR)
    assert entry.cls == "R", entry.text
    nic = nic_of(entry.text)
    assert entry.text.split("\n") == ["OR9990100", "EDR ACCEPTED - STOLEN DRONE ENTERED", f"NIC/{nic} OCA/ACC-D-1"]
    assert nic == "Z000100000"

    hit = city.request("QDR.OR9990100.DSN/ACC-DRONE-1")
    assert hit.cls == "R", hit.text
    lines = hit.text.split("\n")
    assert "MKE/STOLEN DRONE" in lines and "DSN/ACC-DRONE-1" in lines
    assert lines[lines.index(f"NIC/{nic} DTE/{TODAY}") + 1] == "IMMED CONFIRM RECORD WITH ORI"
    assert "NO NCIC RECORD DSN/ACC-DRONE-1" in lines
    duplicate = city.request(EDR)
    assert duplicate.cls == "E" and duplicate.text.startswith("REJECT ON FILE\n"), duplicate.text

    county = signed_on(running, COUNTY)
    missing = county.request(YQ.format(nic=nic, data=""))
    assert missing.cls == "E" and "DATA SET FOR RTY/DR NEEDS DSN" in missing.text, missing.text
    wrong = county.request(YQ.format(nic=nic, data=".DSN/OTHER-DRONE"))
    assert wrong.cls == "E" and "INVALID FIELD DSN - DOES NOT MATCH" in wrong.text, wrong.text
    confirmed = county.request(YQ.format(nic=nic, data=".DSN/ACC-DRONE-1"))
    assert confirmed.cls == "R" and f"NIC/{nic} RNO/1 PRI/U" in confirmed.text, confirmed.text
