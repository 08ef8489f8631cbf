"""Records in the store: the import of the record files (fingerprints, bad lines, one
transaction), the fast import path held to the reference, and what another process writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings, strategies as st

from lems.files.importer import LineReader, Progress, RecordImportError, _as_row, sync
from lems.files.index import RecordFiles, fast_surname_keys, record_keys
from lems.files.phonetic import surname_keys
from lems.files.records import record_from_json, record_to_json, registration_from_line, \
    registration_from_line_fast, registration_to_line
from lems.files.synthetic import synthetic_records
from lems.store.records import RecordStore, open_store
from lems.store.sqlite import Store
from lems.wire.catalogue import Catalogue

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "routes" / "records"
CATALOGUE = Catalogue.load(ROOT / "formats")


def store_files(path: Path) -> tuple[Store, RecordFiles]:
    store = Store.open(path)
    return store, RecordFiles(CATALOGUE, store=RecordStore(store))


def write_jsonl(path: Path, records) -> None:
    path.write_text("".join(json.dumps(record_to_json(r)) + "\n" for r in records), encoding="ascii")


@pytest.fixture
def records_dir(tmp_path) -> Path:
    directory = tmp_path / "records"
    shutil.copytree(DEMO, directory)
    return directory


def test_import_once_then_only_what_changed(tmp_path, records_dir):
    store, files = store_files(tmp_path / "lems.sqlite")
    first = sync(files, records_dir, commit=store.commit)
    assert len(first.files) == len(list(records_dir.glob("*.jsonl"))) + 1 and first.records == len(files)
    assert files.index("wanted", "LEDS").search({"NAM": "DOE, JOHN Q", "DOB": "19800101"})
    # Nothing changed: nothing is read again.
    again = sync(files, records_dir, commit=store.commit)
    assert again.files == () and again.records == 0 and again.unchanged == len(first.files)
    # A new time but the same bytes: the hash says unchanged.
    os.utime(records_dir / "gun.jsonl", ns=(1, 1))
    assert sync(files, records_dir, commit=store.commit).files == ()
    # A changed file is imported again, alone.
    extra = list(synthetic_records("gun", 3, seed=2))
    write_jsonl(records_dir / "gun.jsonl", extra)
    changed = sync(files, records_dir, commit=store.commit)
    assert changed.files == ("records/gun.jsonl",) and changed.records == 3
    assert files.index("gun", "LEDS").search({"SER": "TESTGUN001"}) == []
    assert files.index("gun", extra[0].record_set).search({"SER": extra[0].get("SER")}) == [extra[0]]
    # A file taken away takes its records with it.
    (records_dir / "gun.jsonl").unlink()
    gone = sync(files, records_dir, commit=store.commit)
    assert gone.removed == ("records/gun.jsonl",) and files.find(extra[0].nic) is None
    assert "gun" not in files.files()
    store.close()
    # A restart reads nothing at all.
    store, files = store_files(tmp_path / "lems.sqlite")
    restart = sync(files, records_dir, commit=store.commit)
    assert restart.files == () and restart.records == 0
    assert files.index("wanted", "NCIC").search({"NAM": "DOE, JOHN Q", "DOB": "19800101"})
    store.close()


def test_every_bad_line_is_reported_and_nothing_is_imported(tmp_path, records_dir):
    store, files = store_files(tmp_path / "lems.sqlite")
    sync(files, records_dir, commit=store.commit)
    before = files.counts()
    good = [json.dumps(record_to_json(r)) for r in synthetic_records("wanted", 4, seed=3)]
    lines = [good[0], "{not json", good[1], json.dumps({**json.loads(good[2]), "status": "gone"}), good[3],
             json.dumps({**json.loads(good[2]), "nic": "W000000001"})]  # a NIC wanted.jsonl has
    (records_dir / "zz-new.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordImportError) as err:
        sync(files, records_dir, commit=store.commit)
    where = [(Path(e.path).name, e.line) for e in err.value.errors]
    assert where == [("zz-new.jsonl", 2), ("zz-new.jsonl", 4), ("zz-new.jsonl", 6)]
    text = str(err.value)
    assert "zz-new.jsonl:4: status 'gone'" in text and "nothing was imported" in text
    assert "zz-new.jsonl:6: nic W000000001 already used at wanted.jsonl:1" in text
    assert files.counts() == before and files.find(json.loads(good[0])["nic"]) is None
    (records_dir / "zz-new.jsonl").write_text("\n".join(good) + "\n")
    assert sync(files, records_dir, commit=store.commit).records == 4
    store.close()


def test_a_run_time_change_survives_the_file_changing(tmp_path, records_dir):
    store, files = store_files(tmp_path / "lems.sqlite")
    sync(files, records_dir, commit=store.commit)
    doe = files.index("wanted", "LEDS").search({"NAM": "DOE, JOHN Q", "DOB": "19800101"})[0]
    located = attrs.evolve(doe, status="located", fields=doe.fields + (("LOR", "OR9990100"),))
    files.index("wanted", "LEDS").replace(located)
    store.write().execute("INSERT INTO entered_record (nic, file, record_set, status, record, action, ori, changed) "
                          "VALUES (?, 'wanted', 'LEDS', 'located', ?, 'locate', 'OR9990100', 'now')",
                          (doe.nic, json.dumps(record_to_json(located))))
    store.commit()
    with open(records_dir / "wanted.jsonl", "a") as f:
        f.write(json.dumps(record_to_json(next(synthetic_records("wanted", 1, seed=4)))) + "\n")
    result = sync(files, records_dir, commit=store.commit)
    assert result.files == ("records/wanted.jsonl",) and result.skipped == 1
    assert files.find(doe.nic) == located
    store.close()


def test_another_process_writes_and_the_running_one_finds_it_at_once(tmp_path, records_dir):
    store, files = store_files(tmp_path / "lems.sqlite")  # the "switch"
    sync(files, records_dir, commit=store.commit)
    vehicle = next(synthetic_records("vehicle", 1, seed=5))
    assert files.index("vehicle", "NCIC").search({"VIN": vehicle.get("VIN")}) == []
    other = open_store(tmp_path / "lems.sqlite")  # e.g. lems records import, a loader of another feature
    RecordFiles(CATALOGUE, store=RecordStore(other)).add(vehicle)
    other.commit()
    assert files.index("vehicle", "NCIC").search({"VIN": vehicle.get("VIN")}) == [vehicle]
    assert files.find(vehicle.nic) == vehicle and files.counts()[("vehicle", "NCIC")] >= 1
    other.close()
    store.close()


def test_records_import_command(tmp_path, home):
    with open(home / "routes" / "records" / "bench-gun.jsonl", "w") as f:
        for record in synthetic_records("gun", 50, seed=6):
            f.write(json.dumps(record_to_json(record)) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "lems", "records", "import", "--home", str(home), "--progress"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "records in" in run.stdout and "records/s" in run.stdout
    assert "[" in run.stderr and "100.0%" in run.stderr  # the progress bar
    again = subprocess.run([sys.executable, "-m", "lems", "records", "import", "--home", str(home)],
                           capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "up to date" in again.stdout and again.stderr == ""
    with open(home / "routes" / "records" / "bench-gun.jsonl", "a") as f:
        f.write('{"file": "gun"}\n')
    bad = subprocess.run([sys.executable, "-m", "lems", "records", "import", "--home", str(home)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "bench-gun.jsonl:51: missing 'nic'" in bad.stderr
    status = subprocess.run([sys.executable, "-m", "lems", "records", "status", "--home", str(home)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert status.returncode == 0 and "records/bench-gun.jsonl: 50 records" in status.stdout


def test_progress_bar_only_on_a_terminal(tmp_path):
    class Stream(list):
        def write(self, text):
            self.append(text)

        def flush(self):
            pass

        def isatty(self):
            return False

    quiet = Stream()
    Progress(100, quiet).update("x", 50, 10, final=True)
    assert quiet == []
    shown = Stream()
    Progress(100, shown, force=True).update("x", 50, 10, final=True)
    assert "50.0%" in "".join(shown) and "10 records" in "".join(shown)


# --- the fast path is the reference path ----------------------------------------------

EVERY_FILE = sorted(CATALOGUE.file_letters)
_mutations = st.sampled_from([
    ("nic", "W1"), ("status", "gone"), ("set", "national"), ("entered", "2025-1-1"), ("ori", "short"),
    ("file", "Gun"), ("caution", 5), ("extra", 1), ("fields", []), ("fields", [["SERIAL", "X"]]),
    ("fields", [["DOB", "1980"]]), ("fields", [["SER", "lower"]]), ("fields", [{"NAM": "X", "DOB": "Y"}]),
    ("fields", [["NAM", "A\x1fB"]]), ("fields", [["NAM", "TAB\tHERE"]]), ("fields", [["SER"]]),
    ("fields", [["SER", 5]]), ("fields", "SER"), ("fields", [["NAM", "Ü"]]), None,
])


@given(st.sampled_from(EVERY_FILE), st.integers(0, 2**32), _mutations)
@settings(max_examples=150, deadline=None)
def test_line_reader_agrees_with_the_reference(file, seed, mutation):
    record = next(synthetic_records(file, 1, seed))
    obj = record_to_json(record)
    if mutation is not None:
        obj[mutation[0]] = mutation[1]
    text = json.dumps(obj)
    reader = LineReader(CATALOGUE)
    try:
        expected = _as_row(record_from_json(json.loads(text), CATALOGUE), reader)
    except ValueError as exc:
        expected = str(exc)
    fast = reader.read(text)
    if fast is not None:  # what it vouches for, the reference accepts as the same row and keys
        assert expected == (fast[0], fast[1]) or (expected[0] == fast[0] and sorted(expected[1]) == sorted(fast[1]))


@given(st.integers(0, 2**32), st.sampled_from(["OR", "WA"]))
@settings(max_examples=40, deadline=None)
def test_fixed_width_fast_path_agrees(seed, state):
    line = registration_to_line(next(synthetic_records("registration", 1, seed, record_set=state)))
    assert registration_from_line_fast(line, CATALOGUE) == registration_from_line(line, CATALOGUE)
    for bad in (line[:-1], line[:29] + b"Z" + line[30:], line.replace(b" ", b"\xff", 1)):
        with pytest.raises(ValueError) as fast:
            registration_from_line_fast(bad, CATALOGUE)
        with pytest.raises(ValueError) as slow:
            registration_from_line(bad, CATALOGUE)
        assert str(fast.value) == str(slow.value)


names = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ ,-'.", min_size=0, max_size=20)


@given(names)
@settings(max_examples=400)
def test_fast_surname_keys_are_the_surname_keys(name):
    assert frozenset(fast_surname_keys(name)) == surname_keys(name)


def test_record_keys_are_what_searches_read():
    record = next(synthetic_records("wanted", 1, seed=9))
    keys = record_keys(record, frozenset(CATALOGUE.search_rule("wanted").numbers))
    assert f"SOC={record.get('SOC')}" in keys
    assert any(k.startswith("~") and k.endswith("|" + record.get("DOB")) for k in keys)


def test_the_handler_imports_once_and_searches_the_store(tmp_path):
    """The record file handler: the first build imports, a rebuild (restart, reload) reads nothing,
    entries go to the store and are found by a handler built later on the same store."""
    from lems.base.clock import FakeClock
    from lems.files.filehandler import RecordFileHandler
    from lems.files.handlers import HandlerContext
    from lems.wire.codec import Codec

    home = tmp_path / "home"
    shutil.copytree(DEMO, home / "routes" / "records")
    codec = Codec(CATALOGUE)
    store = Store.open(tmp_path / "lems.sqlite")
    context = HandlerContext(home=home, settings=None, codec=codec, store=store, clock=FakeClock())
    first = RecordFileHandler(context)
    assert first.imported.records == len(first.files) > 0
    qw = codec.parse("QW.OR9990100.NAM/DOE, JOHN Q.DOB/19800101")
    assert [r.get("NAM") for r in first.inquire(qw, "wanted", "LEDS")] == ["DOE, JOHN Q"]
    entry = codec.parse("EG.OR9990100.SER/STORE1.MAK/GLK.CAL/9MM.TYP/PI.DOT/20260101.OCA/ST-1")
    gun = first.enter(entry, "gun", "LEDS")
    store.commit()
    first.refresh()  # kept for callers; nothing to reload
    again = RecordFileHandler(context)
    assert again.imported.files == () and again.imported.records == 0
    hits = again.inquire(codec.parse("QG.OR9990100.SER/STORE1"), "gun", "LEDS")
    assert hits == [gun]
    store.close()
