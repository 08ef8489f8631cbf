"""Record files, their indexes and the name/number search semantics (PROTOCOL.md 5.1)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lems.wire.catalogue import Catalogue
from lems.wire.message import Record
from lems.files.records import (
    REGISTRATION_FIELDS,
    REGISTRATION_LINE,
    REGISTRATION_WIDTH,
    RecordFileError,
    data_fields,
    load_record_files,
    record_from_json,
    record_to_json,
    registration_from_line,
    registration_to_line,
    text_lines,
    validate,
)
from lems.files.index import RecordFiles, RecordIndex
from lems.files.synthetic import synthetic_records

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "routes" / "records"
CATALOGUE = Catalogue.load(ROOT / "formats")
FILE_LETTERS = dict(CATALOGUE.file_letters)
PERSONS = ("wanted", "missing", "protection", "supervised", "sexoffender")


@pytest.fixture(scope="module")
def demo() -> RecordFiles:
    return RecordFiles.load(DEMO, CATALOGUE)


def nics(records):
    return [r.nic for r in records]


# --- the demo files (PROTOCOL.md appendix A) ---------------------------------


def test_demo_files_load_with_every_file_populated(demo):
    for file in FILE_LETTERS:
        assert demo.sets_for(file), f"no demo records for {file}"
    for record in demo:
        assert int(record.nic[1:]) < 100_000  # run-time entries are numbered above
        assert record.ori.startswith(("OR999", "WA999"))
    assert demo.sets_for("wanted") == ("LEDS", "NCIC")
    assert demo.sets_for("registration") == ("OR", "WA")
    assert demo.sets_for("prohibited") == ("LEDS",)


def test_wanted_doe_john_q(demo):
    q = {"NAM": "DOE, JOHN Q", "DOB": "19800101"}
    leds = demo.index("wanted", "LEDS").search(q)
    ncic = demo.index("wanted", "NCIC").search(q)
    assert [r.get("NAM") for r in leds] == ["DOE, JOHN Q"]
    assert [r.get("NAM") for r in ncic] == ["DOE, JOHN Q"]
    doe = leds[0]
    assert doe.ori == "OR9990200" and doe.get("SEX") == "M" and doe.get("RAC") == "W"
    assert doe.caution == "WARNING - SUBJECT MAY BE ARMED AND DANGEROUS"
    assert doe.record_set == "LEDS" and doe.nic.startswith("W")
    assert nics(demo.index("wanted", "LEDS").search({**q, "SEX": "M", "RAC": "W"})) == [doe.nic]


def test_no_want_for_doe_jane(demo):
    q = {"NAM": "DOE, JANE", "DOB": "19900101"}
    for file in PERSONS:
        for record_set in ("LEDS", "NCIC"):
            assert demo.index(file, record_set).search(q) == []


def test_expanded_date_of_birth(demo):
    index = demo.index("wanted", "LEDS")
    exact = index.search({"NAM": "DOE, JOHN Q", "DOB": "19800101"})
    expanded = index.search({"NAM": "DOE, JOHN Q", "DOB": "19800101", "EDB": "1"})
    assert [r.get("NAM") for r in exact] == ["DOE, JOHN Q"]
    assert [r.get("NAM") for r in expanded] == ["DOE, JOHN Q", "DOE, JONATHAN R"]
    # Another month or day is not an expanded-DOB match.
    assert index.search({"NAM": "DOE", "DOB": "19800102", "EDB": "1"}) == []


def test_race_narrows_like_ncic(demo):
    index = demo.index("wanted", "LEDS")
    q = {"NAM": "DOE, JOHN Q", "DOB": "19800101"}
    assert index.search({**q, "RAC": "B"}) == []
    assert len(index.search({**q, "RAC": "A"})) == 1  # A, I and U search every race
    assert len(index.search({**q, "RAC": "U"})) == 1
    assert index.search({**q, "SEX": "F"}) == []
    # A record of race U is found whatever race is asked.
    prot = demo.index("protection", "LEDS")
    assert len(prot.search({"NAM": "BADGUY, TEST", "DOB": "19830808", "RAC": "W"})) == 1


def test_status(demo):
    index = demo.index("wanted", "LEDS")
    assert len(index.search({"NAM": "GRAYTEST, MARK", "DOB": "19770909"})) == 1  # located: still on file
    assert index.search({"NAM": "CLEARTEST, OLD R", "DOB": "19700101"}) == []  # cleared
    cleared = [r for r in index if r.status == "cleared"][0]
    assert index.by_nic(cleared.nic) == cleared
    assert index.search({"NIC": cleared.nic}) == []


def test_stolen_vehicle_test123(demo):
    leds, ncic = demo.index("vehicle", "LEDS"), demo.index("vehicle", "NCIC")
    hit = leds.search({"LIC": "TEST123", "LIS": "OR"})
    assert len(hit) == 1 and hit[0].get("VIN") == "1TESTVIN000000001"
    assert nics(leds.search({"VIN": "1TESTVIN000000001"})) == nics(hit)
    assert nics(leds.search({"NIC": hit[0].nic})) == nics(hit)
    # The plate TEST123 is also stolen in Idaho: LIS narrows, no LIS does not.
    assert [r.get("LIS") for r in ncic.search({"LIC": "TEST123", "LIS": "OR"})] == ["OR"]
    assert sorted(r.get("LIS") for r in ncic.search({"LIC": "TEST123"})) == ["ID", "OR"]
    assert ncic.search({"LIC": "TEST 123", "LIS": "or"})  # spacing and case do not matter


def test_stolen_gun_and_article(demo):
    guns = demo.index("gun", "LEDS").search({"SER": "TESTGUN001"})
    assert len(guns) == 1 and guns[0].get("MAK") == "GLK"
    articles = demo.index("article", "NCIC")
    assert [r.get("TYP") for r in articles.search({"SER": "TESTCAM001", "TYP": "TOOLS"})] == ["TOOLS"]
    assert articles.search({"SER": "TESTCAM001", "TYP": "CAMERA"}) == []
    assert [r.get("TYP") for r in demo.index("article", "LEDS").search({"SER": "TESTCAM001", "TYP": "CAMERA"})] == ["CAMERA"]


def test_criminal_history_doe(demo):
    ncic = demo.index("history", "NCIC")
    by_name = ncic.search({"NAM": "DOE, JOHN Q", "SEX": "M", "RAC": "W", "DOB": "19800101", "PUR": "C"})
    assert len(by_name) == 1
    doe = by_name[0]
    assert doe.get("FBI") and doe.get("SID")
    assert nics(ncic.search({"FBI": doe.get("FBI")})) == [doe.nic]
    assert nics(demo.index("history", "LEDS").search({"SID": doe.get("SID")}))
    assert text_lines(doe) and all(code != "RTX" for code, _ in data_fields(doe))
    # III searches three years either side of the birth year, same month and day...
    assert nics(ncic.search({"NAM": "DOE", "DOB": "19830101"})) == [doe.nic]
    assert ncic.search({"NAM": "DOE", "DOB": "19840101"}) == []
    # ...and needs the sex to agree.
    assert ncic.search({"NAM": "DOE", "DOB": "19800101", "SEX": "F"}) == []


def test_registrations_and_licences(demo):
    reg = demo.index("registration", "OR").search({"LIC": "TEST123"})
    assert [r.get("VIN") for r in reg] == ["1TESTVIN000000001"]
    wa = demo.index("registration", "WA").search({"LIC": "WATEST1"})
    assert len(wa) == 1 and wa[0].get("LIS") == "WA"
    for state in ("OR", "WA"):
        lic = demo.index("driver", state).search({"NAM": "DOE, JOHN Q", "DOB": "19800101"})
        assert len(lic) == 1 and lic[0].get("OLS") == state
        assert nics(demo.index("driver", state).search({"OLN": lic[0].get("OLN")})) == nics(lic)


def test_prohibited_roe_richard(demo):
    hits = demo.index("prohibited", "LEDS").search({"NAM": "ROE, RICHARD", "DOB": "19750505", "PUR": "F"})
    assert len(hits) == 1 and hits[0].ori == "OR999050H" and hits[0].nic.startswith("P")


def test_find_by_nic_across_files(demo):
    doe = demo.index("wanted", "LEDS").search({"NAM": "DOE, JOHN Q", "DOB": "19800101"})[0]
    assert demo.find(doe.nic) == doe
    assert demo.find("W000099999") is None


# --- loading errors ----------------------------------------------------------

GOOD = {"file": "gun", "nic": "G000000001", "ori": "OR9990100", "entered": "20250101", "set": "LEDS",
        "fields": [["SER", "X1"]]}


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    (tmp_path / name).write_text("".join(line + "\n" for line in lines))
    return tmp_path


@pytest.mark.parametrize("change, words", [
    ({"nic": "W000000001"}, "must start with G"),
    ({"nic": "G1"}, "one letter and 9 digits"),
    ({"entered": "2025-01-01"}, "CCYYMMDD"),
    ({"set": "national"}, "set"),
    ({"status": "gone"}, "status"),
    ({"fields": [["SERIAL", "X"]]}, "three capital letters"),
    ({"fields": [["DOB", "1980"]]}, "DOB"),
    ({"fields": [["SER", "lower"]]}, "upper-case"),
    ({"fields": []}, "non-empty"),
    ({"extra": 1}, "unknown key"),
])
def test_bad_record_names_file_and_line(tmp_path, change, words):
    write(tmp_path, "a.jsonl", json.dumps(GOOD), "", json.dumps({**GOOD, "nic": "G000000002", **change}))
    with pytest.raises(RecordFileError) as err:
        load_record_files(tmp_path, CATALOGUE)
    assert err.value.line == 3 and err.value.path.endswith("a.jsonl")
    assert "a.jsonl:3:" in str(err.value) and words in str(err.value)


def test_bad_json_and_duplicate_nic(tmp_path):
    write(tmp_path, "a.jsonl", "{not json")
    with pytest.raises(RecordFileError, match=r"a\.jsonl:1:"):
        load_record_files(tmp_path, CATALOGUE)
    write(tmp_path, "a.jsonl", json.dumps(GOOD))
    write(tmp_path, "b.jsonl", json.dumps(GOOD))
    with pytest.raises(RecordFileError, match=r"b\.jsonl:1: nic G000000001 already used at a\.jsonl:1"):
        load_record_files(tmp_path, CATALOGUE)


def test_bad_fixed_width_line(tmp_path):
    line = registration_to_line(next(synthetic_records("registration", 1, 0)))
    (tmp_path / "x.fw").write_bytes(b"# header\n" + line + b"\n" + line[:-3] + b"\n")
    with pytest.raises(RecordFileError, match=rf"x\.fw:3: line is {REGISTRATION_WIDTH - 3} characters"):
        load_record_files(tmp_path, CATALOGUE)
    too_long = next(synthetic_records("registration", 1, 0))
    with pytest.raises(ValueError, match="does not fit the layout"):
        registration_to_line(attrs.evolve(too_long, fields=(("LIC", "X" * 11),)))
    bad_status = line[:29] + b"Z" + line[30:]
    with pytest.raises(ValueError, match="status column"):
        registration_from_line(bad_status, CATALOGUE)


# --- round trips -------------------------------------------------------------

EVERY_FILE = sorted(FILE_LETTERS)


@given(st.sampled_from(EVERY_FILE), st.integers(0, 2**32))
@settings(max_examples=60)
def test_synthetic_records_are_valid_and_round_trip_json(file, seed):
    records = list(synthetic_records(file, 5, seed))
    assert records == list(synthetic_records(file, 5, seed))
    assert len({r.nic for r in records}) == 5
    for record in records:
        validate(record, CATALOGUE)
        assert record_from_json(json.loads(json.dumps(record_to_json(record))), CATALOGUE) == record


printable = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x5A), max_size=8)


WIDTHS = {sub.name: sub.sizeof() for sub in REGISTRATION_LINE.subcons}


@given(st.integers(0, 2**32), st.sampled_from(["OR", "WA"]), st.sampled_from(["active", "located", "cleared", "cancelled"]),
       st.dictionaries(st.sampled_from(REGISTRATION_FIELDS), printable))
def test_fixed_width_round_trip(seed, state, status, overrides):
    base = next(synthetic_records("registration", 1, seed, record_set=state))
    fields = dict(base.fields)
    for code, value in overrides.items():
        fields[code] = value.strip()[:WIDTHS[code]]
    record = attrs.evolve(base, status=status, fields=tuple(
        (code, fields[code]) for code in REGISTRATION_FIELDS if fields.get(code)))
    line = registration_to_line(record)
    assert len(line) == REGISTRATION_WIDTH
    assert registration_from_line(line, CATALOGUE) == record


# --- index maintenance -------------------------------------------------------


def person(nic: str, name: str, dob: str, **more: str) -> Record:
    fields = [("NAM", name), ("DOB", dob)] + list(more.items())
    return Record(file="wanted", nic=nic, ori="OR9990100", fields=tuple(fields), entered="20250101",
                  record_set="LEDS")


def test_add_replace_remove():
    index = RecordIndex("wanted", "LEDS", CATALOGUE)
    first = person("W000100001", "TESTER, ONE", "19900101", SOC="999-11-0001")
    index.add(first)
    with pytest.raises(ValueError, match="already on file"):
        index.add(first)
    with pytest.raises(ValueError, match="this index holds wanted/LEDS"):
        index.add(attrs.evolve(first, nic="W000100002", record_set="NCIC"))
    assert nics(index.search({"SOC": "999110001"})) == ["W000100001"]
    renamed = person("W000100001", "RENAMED, ONE", "19910202", SOC="999110009")
    assert index.replace(renamed) == first
    assert index.search({"NAM": "TESTER, ONE", "DOB": "19900101"}) == []
    assert index.search({"SOC": "999110001"}) == []
    assert nics(index.search({"NAM": "RENAMED", "DOB": "19910202"})) == ["W000100001"]
    index.replace(attrs.evolve(renamed, status="cancelled"))
    assert index.search({"SOC": "999110009"}) == []
    assert index.remove("W000100001").status == "cancelled"
    assert len(index) == 0
    # No search key is left behind in the store.
    assert index.records.conn.execute("SELECT COUNT(*) FROM record_key").fetchone()[0] == 0
    with pytest.raises(KeyError):
        index.remove("W000100001")
    with pytest.raises(KeyError):
        index.replace(first)


def test_aliases_and_extra_dates_of_birth_are_searched():
    index = RecordIndex("wanted", "LEDS", CATALOGUE)
    index.add(person("W000100001", "O'TESTER, PAT", "19880101", AKA="SAMPLER, PAT"))
    index.add(Record("wanted", "W000100002", "OR9990100",
                     (("NAM", "MULTI, DOB"), ("DOB", "19700101"), ("DOB", "19710202")), "20250101", "LEDS"))
    assert nics(index.search({"NAM": "SAMPLER", "DOB": "19880101"})) == ["W000100001"]
    assert nics(index.search({"NAM": "TESTER", "DOB": "19880101"})) == ["W000100001"]
    assert nics(index.search({"NAM": "MULTI", "DOB": "19710202"})) == ["W000100002"]


def test_records_files_make_indexes_on_demand():
    files = RecordFiles(CATALOGUE)
    index = files.index("gun", "LEDS")
    assert files.index("gun", "LEDS") is index and files.sets_for("gun") == ()
    files.add(Record("gun", "G000100001", "OR9990100", (("SER", "A1"),), "20250101", "WA"))
    files.add(Record("gun", "G000100002", "OR9990100", (("SER", "A1"),), "20250101", "NCIC"))
    assert files.sets_for("gun") == ("NCIC", "WA")


# --- search agrees with a brute-force scan -----------------------------------

SURNAMES = ["SMITH", "SMYTH", "SMITH-JONES", "JONES", "DOE", "DOH", "O'BRIEN", "BRIEN", "MCDONALD",
            "MACDONALD", "DE LA CRUZ", "CRUZ", "ROE"]
DOBS = ["19800101", "19810101", "19790101", "19830101", "19800202", "19771231"]


@st.composite
def records(draw, file: str, i: int) -> Record:
    fields = [("NAM", f"{draw(st.sampled_from(SURNAMES))}, {draw(st.sampled_from(['A', 'B']))}")]
    fields += [("DOB", dob) for dob in draw(st.lists(st.sampled_from(DOBS), max_size=2))]
    if draw(st.booleans()):
        fields.append(("AKA", f"{draw(st.sampled_from(SURNAMES))}, X"))
    for code, values in (("RAC", "WBAIU"), ("SEX", "MFU"), ("SOC", "123"), ("LIC", "XY"), ("LIS", "OW"),
                         ("SER", "PQ"), ("TYP", "CD"), ("OLN", "12"), ("OLS", "OW")):
        if draw(st.booleans()):
            fields.append((code, draw(st.sampled_from(values))))
    status = draw(st.sampled_from(["active", "active", "located", "cleared", "cancelled"]))
    letter = FILE_LETTERS[file]
    return Record(file, f"{letter}{i:09d}", "OR9990100", tuple(fields), "20250101", "NCIC", status=status)


criteria = st.dictionaries(
    st.sampled_from(["NAM", "DOB", "EDB", "RAC", "SEX", "SOC", "LIC", "LIS", "SER", "TYP", "OLN", "OLS", "NIC", "PUR"]),
    st.sampled_from(["1", "2", "3", "X", "Y", "O", "W", "P", "Q", "C", "D", "M", "F", "B", "A", "U"]),
)


@st.composite
def inquiry(draw):
    asked = draw(criteria)
    if draw(st.booleans()):
        asked["NAM"] = draw(st.sampled_from(SURNAMES)) + ", Q"
        asked["DOB"] = draw(st.sampled_from(DOBS))
    elif "DOB" in asked:
        del asked["DOB"]
    if "NIC" in asked:
        asked["NIC"] = f"W{draw(st.integers(0, 12)):09d}"
    return asked


@given(st.sampled_from(["wanted", "history", "article"]), st.data())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_search_agrees_with_scan(file, data):
    index = RecordIndex(file, "NCIC", CATALOGUE)
    count = data.draw(st.integers(0, 12))
    for i in range(count):
        index.add(data.draw(records(file, i)))
    # Some maintenance, so the indexes are exercised after changes too.
    for i in data.draw(st.lists(st.integers(0, max(count - 1, 0)), max_size=4)):
        if count and index.by_nic(f"{FILE_LETTERS[file]}{i:09d}") is not None:
            if data.draw(st.booleans()):
                index.replace(data.draw(records(file, i)))
            else:
                index.remove(f"{FILE_LETTERS[file]}{i:09d}")
    for _ in range(5):
        asked = data.draw(inquiry())
        if file != "wanted" and "NIC" in asked:
            asked["NIC"] = FILE_LETTERS[file] + asked["NIC"][1:]
        assert index.search(asked) == index.scan(asked), asked


# --- scaling: the search reads its buckets, never the file ---------------------


def examined(index: RecordIndex, asked) -> int:
    before = index.candidates_examined
    index.search(asked)
    return index.candidates_examined - before


@pytest.mark.parametrize("file, asks", [
    ("wanted", lambda r: [{"NAM": r.get("NAM"), "DOB": r.get("DOB"), "EDB": "1"}, {"SOC": r.get("SOC")},
                          {"NIC": r.nic}]),
    ("vehicle", lambda r: [{"LIC": r.get("LIC"), "LIS": r.get("LIS")}, {"VIN": r.get("VIN")}]),
    ("history", lambda r: [{"NAM": r.get("NAM"), "DOB": r.get("DOB"), "SEX": r.get("SEX")}, {"FBI": r.get("FBI")}]),
])
def test_search_touches_only_its_buckets(file, asks):
    small, large = RecordIndex(file, "NCIC", CATALOGUE), RecordIndex(file, "NCIC", CATALOGUE)
    generated = list(synthetic_records(file, 20_000, seed=7))
    for record in generated[:1_000]:
        small.add(record)
    for record in generated:
        large.add(record)
    for record in generated[:200]:
        for asked in asks(record):
            hits_large = large.search(asked)
            assert record in hits_large
            # Buckets are tiny and do not grow with a twenty times larger file.
            assert examined(large, asked) <= 12
            assert examined(large, asked) <= examined(small, asked) + 6


@given(st.data())
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_one_query_for_many_indexes_agrees_with_each_search(data):
    """search_many (one SQL query per inquiry, as a QW uses) gives each index what its own search gives."""
    files = RecordFiles(CATALOGUE)
    homes = [("wanted", "LEDS"), ("wanted", "NCIC"), ("history", "NCIC"), ("article", "NCIC")]
    n = 0
    for file, record_set in homes:
        for _ in range(data.draw(st.integers(0, 6))):
            files.add(attrs.evolve(data.draw(records(file, n)), record_set=record_set))
            n += 1
    for _ in range(4):
        asked = data.draw(inquiry())
        everything = files.search_many(asked)
        chosen = files.search_many(asked, homes[:2])
        for file, record_set in homes:
            index = files.index(file, record_set)
            expected = index.search(asked)
            assert everything.get(index) == expected == index.scan(asked), (asked, file, record_set)
            if (file, record_set) in homes[:2]:
                assert chosen.get(index) == expected
