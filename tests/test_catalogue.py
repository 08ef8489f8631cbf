"""The catalogues load, carry what the access rules need, and refuse broken edits by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lems.tools import icd
from lems.wire.catalogue import Catalogue, CatalogueError
from lems.wire.codec import Codec

FORMATS = Path(__file__).resolve().parent.parent / "formats"

NCIC_KEYS = """QW QM EW EWJ MW XW LW CW EMD EME EMI EMJ EMV EMO MM XM LM CM EPO MPO XPO CPO ESR MSR XSR
CSR EXS MXS XXS CXS QV EV EL MV ML XV XL LV LL CV CL QG EG MG XG LG CG QA EA MA XA LA CA QB EB MB XB LB CB
QS ES MS XS LS CS QH QR""".split()
NLETS_KEYS = "AM AML SM RQ RR DQ DR KQ KR IQ IR FQ FR AQ AR BQ BR CPQ CPR YQ YR".split()
LEDS_KEYS = "QPP EPP MPP XPP".split()
CONTROL_KEYS = "SON SOF HBT ACK".split()


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(FORMATS)


def test_every_protocol_key_is_catalogued(catalogue):
    for family, keys in (("ncic", NCIC_KEYS), ("nlets", NLETS_KEYS), ("leds", LEDS_KEYS), ("control", CONTROL_KEYS)):
        for mke in keys:
            assert catalogue.keys[mke].family == family, mke


def test_nic_letters_and_titles(catalogue):
    letters = {f.letter: f.title for f in catalogue.files.values() if f.letter}
    assert letters == {"W": "WANTED PERSON", "M": "MISSING PERSON", "H": "PROTECTION ORDER",
                       "C": "SUPERVISED RELEASE", "X": "SEX OFFENDER", "V": "STOLEN VEHICLE",
                       "L": "STOLEN LICENSE PLATE", "G": "STOLEN GUN", "A": "STOLEN ARTICLE", "B": "STOLEN BOAT",
                       "S": "STOLEN SECURITIES", "P": "PROHIBITED PERSON"}
    assert catalogue.files["wanted"].record_word == "WANT"
    assert catalogue.files["vehicle"].record_word == "RECORD"
    assert catalogue.files["gun"].confirm_line == "IMMED CONFIRM RECORD WITH ORI"
    assert catalogue.files["wanted"].confirm_line == "IMMED CONFIRM WARRANT AND EXTRADITION WITH ORI"
    assert catalogue.files["missing"].confirm_line == "IMMED CONFIRM WARRANT AND EXTRADITION WITH ORI"
    # PROTOCOL.md 5.2: each file's own instruction line; files that are not hit-confirmed have none.
    assert catalogue.files["protection"].confirm_line == "CONFIRM PROTECTION ORDER WITH ORI"
    for name in ("history", "prohibited", "sexoffender", "supervised", "registration", "driver", "driverhistory",
                 "boatreg", "corrections"):
        assert catalogue.files[name].confirm_line == "", name
    assert {f.name: f.id_letter for f in catalogue.files.values() if f.id_letter} == {
        "history": "I", "registration": "R", "driver": "D", "driverhistory": "K", "boatreg": "E", "corrections": "Q"}
    assert catalogue.file_letters["boatreg"] == "E" and catalogue.file_letters["boat"] == "B"


def test_hit_confirmation_types(catalogue):
    """RTY -> the file it confirms (PROTOCOL.md 5.4) and the data set a request of that type carries."""
    letters = {rty: catalogue.file_for_rty(rty).letter for rty in catalogue.codes["HIT_TYPE"]}
    assert letters == {"WP": "W", "MP": "M", "PO": "H", "SR": "C", "SO": "X", "PP": "P", "VE": "V", "LP": "L",
                       "GU": "G", "AR": "A", "BO": "B", "SE": "S"}
    assert catalogue.file_for_rty("VE").identified_by == (("VIN",), ("LIC",))
    assert catalogue.file_for_rty("WP").identified_by == (("NAM",),)
    assert catalogue.file_for_rty("XX") is None
    assert catalogue.compared[:4] == ("NAM", "DOB", "SEX", "RAC")


def test_search_rules(catalogue):
    """A file's numbers and narrowing are [search]'s plus its own; an unknown file gets [search]'s."""
    default = catalogue.search_rule("nosuchfile")
    assert default == catalogue.search and "SOR" in default.numbers and "DOB" not in default.numbers
    assert dict(default.narrowing) == {"LIC": "LIS", "OLN": "OLS"}
    assert dict(catalogue.search_rule("article").narrowing) == {"LIC": "LIS", "OLN": "OLS", "SER": "TYP", "OAN": "TYP"}
    assert catalogue.search_rule("wanted") == default


def test_access_attributes(catalogue):
    keys = catalogue.keys
    for mke in NCIC_KEYS + LEDS_KEYS:
        spec = keys[mke]
        assert spec.level == ("inquiry" if spec.action == "inquiry" else "entry"), mke
    assert keys["SM"].level == "full" and keys["SM"].category == "status"
    assert {keys[k].category for k in ("QH", "QR", "IQ", "FQ", "AQ")} == {"criminal-history"}
    assert {keys[k].category for k in ("RQ", "DQ", "KQ")} == {"motor-vehicle"}
    assert {keys[k].category for k in ("QPP", "EPP", "MPP", "XPP")} == {"prohibited"}
    assert keys["CPQ"].category == "corrections"
    assert keys["AM"].category == keys["AML"].category == "admin"
    assert keys["YQ"].category == "hit-confirmation"
    assert keys["QW"].category == "investigative" and keys["EW"].action == "enter"
    replies = {"RQ": "RR", "DQ": "DR", "KQ": "KR", "IQ": "IR", "FQ": "FR", "AQ": "AR", "BQ": "BR",
               "CPQ": "CPR", "YQ": "YR"}
    for inquiry, reply in replies.items():
        assert keys[inquiry].reply == reply and keys[reply].answers == inquiry
    assert {k for k, s in keys.items() if s.free_text and not s.fold_body} == {"AM", "AML", "SM"}
    assert keys["MW"].file == "wanted" and keys["XM"].file == "missing"


def test_chri_purpose_and_attention_reject_23(catalogue):
    for mke in ("QH", "QR", "IQ", "FQ", "AQ"):
        spec = catalogue.keys[mke]
        assert spec.fields["PUR"].invalid_code == ".23."
        assert spec.fields["ATN"].invalid_code == ".23."
        assert "R" not in spec.fields["PUR"].codes
        assert [r.code for r in spec.required if r.alternatives == (("PUR",),)] == [".23."]
    assert catalogue.keys["QPP"].fields["PUR"].invalid_code == ".12."


# -- broken catalogues are refused, naming the file ---------------------------------------


@pytest.fixture
def formats_copy(tmp_path) -> Path:
    target = tmp_path / "formats"
    shutil.copytree(FORMATS, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


BROKEN = [
    ("ncic.toml", '[key.QW]\ntitle', '[key.QW]\ntitel = "X"\ntitle', "ncic.toml: key QW: unknown attribute"),
    ("ncic.toml", 'fields = ["SER", "NIC", "MAK", "CAL"]', 'fields = ["SER", "NIX"]', "ncic.toml: key QG: field 'NIX'"),
    ("ncic.toml", 'codelist = "EYE"', 'codelist = "EYES"', "ncic.toml: field EYE: code list 'EYES'"),
    ("ncic.toml", 'required = ["SER | NIC"]', 'required = ["SER | VIN"]', "ncic.toml: key QG: required names VIN"),
    ("ncic.toml", 'family = "ncic"', 'family = "ncicx"', "ncic.toml: family"),
    ("ncic.toml", '[key.QW]', '[key.QW\n', "ncic.toml: not valid TOML"),
    ("ncic.toml", 'pattern = "[1-8][01][0-9]"', 'pattern = "[1-8"', "ncic.toml: field HGT: pattern"),
    ("nlets.toml", 'reply = "RR"', 'reply = "RX"', "nlets.toml: key RQ: reply key RX"),
    ("nlets.toml", '[key.AML]\ntitle = "ADMINISTRATIVE MESSAGE - LAW ENFORCEMENT ONLY"\nlike = "AM"',
     '[key.AML]\ntitle = "X"\nlike = "SM"', "like makes a loop"),
    ("leds.toml", 'category = "prohibited"', 'category = "secret"', "leds.toml: key QPP: category"),
    ("files.toml", 'letter = "G"', 'letter = "W"', "files.toml: file gun: letter W already belongs to file wanted"),
    ("control.toml", 'example = "HBT"', 'example = "HBT.X"', "control.toml: key HBT: example is rejected"),
    ("ncic.toml", 'file = "gun"\naction = "inquiry"', 'file = "guns"\naction = "inquiry"', "ncic.toml: key QG: file 'guns'"),
    # files.toml: every new entry is checked and named
    ("files.toml", '[file.gun]\nletter = "G"\n', '[file.gun]\n', "files.toml: file gun: give letter"),
    ("files.toml", 'id_letter = "R"', 'id_letter = "RR"', "files.toml: file registration: id_letter must be one capital"),
    ("files.toml", 'id_letter = "E"', 'id_letter = "B"', "files.toml: file boatreg: letter B already belongs to file boat"),
    ("files.toml", 'rty = "LP"', 'rty = "VE"', "files.toml: file plate: rty VE already belongs to file vehicle"),
    ("files.toml", 'rty = "GU"', 'rty = "GUN"', "files.toml: file gun: rty must be two capital letters"),
    ("files.toml", 'identified_by = [["SER"]]\nnarrowing = { SER = "TYP" }', 'identified_by = [["SER", "XYZ"]]',
     "files.toml: file securities: identified_by field XYZ is not a defined field"),
    ("files.toml", 'rty = "GU"\nidentified_by = [["SER"]]', 'rty = "GU"', "files.toml: file gun: rty GU needs identified_by"),
    ("files.toml", 'identified_by = [["REG"], ["BHN"]]', 'identified_by = "REG"', "files.toml: file boat: rty BO needs identified_by"),
    ("files.toml", '[file.boatreg]\nid_letter = "E"\n', '[file.boatreg]\nid_letter = "E"\nrty = "BR"\n',
     "files.toml: file boatreg: rty BR needs a NIC letter"),
    ("files.toml", 'rty = "GU"', 'rty = "GX"', "files.toml: file gun: rty GX is not a code of field RTY"),
    ("files.toml", 'kind = "property"\nduplicate = ["SER", "MAK", "CAL"]', 'kind = "thing"\nduplicate = ["SER"]',
     "files.toml: file gun: kind must be one of person, property"),
    ("files.toml", 'record_word = "RECORD"\n', '', "files.toml: kind property: record_word missing"),
    # confirm_line: one line of text, or "" for no line at all; nothing else
    ("files.toml", 'title = "CRIMINAL HISTORY"\nkind = "person"\nconfirm_line = ""',
     'title = "CRIMINAL HISTORY"\nkind = "person"\nconfirm_line = " "',
     "files.toml: file history: confirm_line must be one line of text"),
    ("files.toml", 'confirm_line = "CONFIRM PROTECTION ORDER WITH ORI"', 'confirm_line = "CONFIRM\\nPROTECTION ORDER"',
     "files.toml: file protection: confirm_line must be one line of text"),
    ("files.toml", 'confirm_line = "CONFIRM PROTECTION ORDER WITH ORI"', 'confirm_line = false',
     "files.toml: file protection: confirm_line must be one line of text"),
    ("files.toml", 'confirm_line = "IMMED CONFIRM RECORD WITH ORI"\n', '',
     "files.toml: kind property: confirm_line missing"),
    ("files.toml", 'record_word = "RECORD"', 'record_word = ""',
     "files.toml: kind property: record_word must be one line of text"),
    ("files.toml", '[search]\nnumbers', '[search]\nnumbrs', "files.toml: [search]: unknown attribute(s) numbrs"),
    ("files.toml", '"PNO", "SOR"]', '"PNO", "SOX"]', "files.toml: [search]: numbers field SOX is not a defined field"),
    ("files.toml", 'narrowing = { LIC = "LIS", OLN = "OLS" }', 'narrowing = ["LIC"]',
     "files.toml: [search] narrowing must be a table"),
    ("files.toml", '[maintenance]\nidentifiers = [', '[maintenance]\nidentifier = [', "files.toml: [maintenance]"),
    ("files.toml", '[hit_confirmation]\ncompared', '[hit_confirmations]\ncompared', "files.toml: unknown table(s) hit_confirmations"),
    ("files.toml", 'narrowing = { SER = "TYP", OAN = "TYP" }', 'narrowing = { SER = "TYQ" }',
     "files.toml: file article: narrowing field TYQ is not a defined field"),
    ("files.toml", '[file.registration]\nid_letter = "R"\n', '[file.registration]\n',
     "files.toml: file registration: give letter"),
]


@pytest.mark.parametrize("name,old,new,message", BROKEN)
def test_broken_catalogue_names_file_and_problem(formats_copy, name, old, new, message):
    if name == "nlets.toml" and "loop" in message:
        _edit(formats_copy / name, '[key.SM]\ntitle = "STATUS MESSAGE (CONTROL TERMINAL ONLY)"\nlike = "AM"',
              '[key.SM]\ntitle = "STATUS MESSAGE (CONTROL TERMINAL ONLY)"\nlike = "AML"')
    _edit(formats_copy / name, old, new)
    with pytest.raises(CatalogueError) as info:
        Codec.from_dir(formats_copy)
    assert message in str(info.value)


def test_no_confirm_line_is_expressible(formats_copy):
    """confirm_line = "" in a [kind.*] default means no line for every file of that kind that does not word its own."""
    _edit(formats_copy / "files.toml", 'confirm_line = "IMMED CONFIRM RECORD WITH ORI"', 'confirm_line = ""')
    files = Codec.from_dir(formats_copy).catalogue.files
    assert files["gun"].confirm_line == "" and files["registration"].confirm_line == ""
    assert files["wanted"].confirm_line == "IMMED CONFIRM WARRANT AND EXTRADITION WITH ORI"


def test_entry_key_for_a_file_without_nic_letter(formats_copy):
    with (formats_copy / "nlets.toml").open("a") as f:
        f.write('\n[key.RE]\ntitle = "X"\nfile = "registration"\naction = "enter"\nlevel = "entry"\nfields = ["LIC"]\n')
    with pytest.raises(CatalogueError, match="nlets.toml: key RE: file registration has no NIC letter"):
        Catalogue.load(formats_copy)


def test_missing_files_toml(formats_copy):
    (formats_copy / "files.toml").unlink()
    with pytest.raises(CatalogueError, match="files.toml: missing"):
        Catalogue.load(formats_copy)


def test_a_new_key_is_a_catalogue_change(formats_copy):
    with (formats_copy / "leds.toml").open("a") as f:
        f.write('\n[key.QPX]\ntitle = "TEST KEY"\nfile = "prohibited"\naction = "inquiry"\n'
                'fields = ["NAM", "DOB"]\nrequired = ["NAM+DOB"]\nexample = "QPX.OR9990100.NAM/DOE, J.DOB/19800101"\n')
    codec = Codec.from_dir(formats_copy)
    assert codec.parse("QPX.OR9990100.NAM/DOE, J.DOB/19800101").fields == (("NAM", "DOE, J"), ("DOB", "19800101"))


# -- the ICD section -------------------------------------------------------------------------


def test_icd_render_write_and_check(tmp_path):
    codec = Codec.from_dir(FORMATS)
    section = icd.render_keys(codec)
    for mke in codec.keys:
        assert f"#### {mke} - " in section
    doc = tmp_path / "ICD.md"
    doc.write_text(f"# ICD\n\nbefore\n\n{icd.BEGIN}\nstale\n{icd.END}\n\nafter\n")
    assert icd.main(["--check", str(doc)]) == 1
    assert icd.main(["--write", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# ICD\n\nbefore\n\n") and text.endswith(f"{icd.END}\n\nafter\n")
    assert "stale" not in text and "#### QW - " in text
    assert icd.main(["--check", str(doc)]) == 0
    doc.write_text("no markers\n")
    assert icd.main(["--check", str(doc)]) == 2
