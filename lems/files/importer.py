"""Importing the record files of routes/records/ into the store (``lems records import``).

The record files stay the way data gets in; the store is where records live
(``lems.files.index``).  ``sync`` compares each file with the fingerprint the
store keeps of it (size, modification time, SHA-256: table
``record_source``) and imports only the files that changed, were added or were
removed, so a restart reads nothing when nothing changed (the SHA-256 is
computed only for a file whose size or time changed).

One import is one transaction (a savepoint inside the turn's): every line of
every changed file is read and checked, every bad line is reported with its
file and line number (``RecordImportError``), and if there is any, nothing of
the import is kept.  A record that was entered or changed at run time (its NIC
is in ``entered_record``: a locate, a clear, a modify of a file record) keeps
its run-time version: the file's line for it is skipped.

Rows go in with ``executemany`` in batches of a few thousand, with their ids
given, so the search keys of a batch go in with one more ``executemany``.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TextIO

import attrs

from lems.files.index import RecordFiles, encode_fields, fast_surname_keys, key_rules, record_keys
from lems.files.records import (_DATE, _FILE, _KNOWN, _MFC, _NIC, _ORI, _REQUIRED, _SET, STATUSES, RecordFileError,
                                record_from_json, registration_from_line_fast)
from lems.wire.message import Record

BATCH = 20000
# Bad lines reported in full; beyond that they are counted.
MAX_REPORTED = 100
SAVEPOINT = "records_import"


class RecordImportError(ValueError):
    """Bad lines in record files: ``errors`` lists each (file, line, reason); nothing was imported."""

    def __init__(self, errors: list[RecordFileError], more: int = 0) -> None:
        self.errors = errors
        self.more = more
        lines = [str(e) for e in errors]
        if more:
            lines.append(f"... and {more} more bad line(s)")
        lines.append("nothing was imported")
        super().__init__("\n".join(lines))


@attrs.frozen
class ImportResult:
    files: tuple[str, ...] = ()        # files imported (changed or new)
    removed: tuple[str, ...] = ()      # files gone from the directory: their records taken off
    unchanged: int = 0                 # files left as they were
    records: int = 0                   # records imported
    skipped: int = 0                   # lines whose NIC was changed at run time (kept as changed)
    seconds: float = 0.0
    bytes: int = 0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def record_paths(directory: Path) -> list[Path]:
    """The record files of a directory, in the order they are imported (file name order)."""
    if not directory.is_dir():
        return []
    return sorted(list(directory.glob("*.jsonl")) + list(directory.glob("*.fw")))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Progress:
    """A progress bar on a terminal (stderr), silent otherwise."""

    def __init__(self, total_bytes: int, stream: Optional[TextIO] = None, force: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = force or (hasattr(self.stream, "isatty") and self.stream.isatty())
        self.total = max(total_bytes, 1)
        self.started = time.monotonic()
        self.shown = 0.0

    def update(self, name: str, done_bytes: int, records: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.shown < 0.2:
            return
        self.shown = now
        share = min(done_bytes / self.total, 1.0)
        width = 30
        bar = "#" * int(share * width) + "-" * (width - int(share * width))
        rate = records / max(now - self.started, 1e-9)
        self.stream.write(f"\r  [{bar}] {share * 100:5.1f}% {records:,} records {rate:,.0f}/s {name[:30]:30}")
        if final:
            self.stream.write("\n")
        self.stream.flush()


_US, _RS = "\x1f", "\x1e"
_NOT_STORED_TEXT = re.compile(r"[^ -~\x1e\x1f]")


class LineReader:
    """One JSON line straight to its row and keys, in one pass over its fields (the import's
    hot loop: no Record, no second pass for the keys or the stored text).  It checks what
    ``record_from_json`` and ``validate`` check; a line it cannot vouch for returns None,
    and the reference path then gives the record or the reason."""

    def __init__(self, catalogue: Any) -> None:
        self.catalogue = catalogue
        self.letters = dict(catalogue.file_letters)
        self.numbers: dict[str, frozenset[str]] = {}
        self.good: set[tuple[str, str]] = set()
        self.codes: set[str] = set()

    def _ok(self, kind: str, value: str, pattern: re.Pattern) -> bool:
        if (kind, value) in self.good:
            return True
        if pattern.fullmatch(value) is None:
            return False
        if len(self.good) < 100_000:
            self.good.add((kind, value))
        return True

    def read(self, text: str) -> Optional[tuple[tuple, list[str]]]:
        """((nic, file, set, status, ori, entered, caution, stored fields), keys) or None."""
        obj = json.loads(text)
        if type(obj) is not dict or not (obj.keys() <= _KNOWN and _REQUIRED <= obj.keys()):
            return None
        file, nic, ori, entered, record_set = obj["file"], obj["nic"], obj["ori"], obj["entered"], obj["set"]
        fields = obj["fields"]
        caution = obj.get("caution")
        status = obj.get("status", "active")
        if (type(file) is not str or type(nic) is not str or type(ori) is not str or type(entered) is not str
                or type(record_set) is not str or type(fields) is not list or not fields
                or (caution is not None and type(caution) is not str) or type(status) is not str):
            return None
        numbers = self.numbers.get(file)
        if numbers is None:
            if not self._ok("file", file, _FILE):
                return None
            numbers = self.numbers[file] = frozenset(self.catalogue.search_rule(file).numbers)
        keys: list[str] = []
        parts: list[str] = []
        dobs: list[str] = []
        names: list[str] = []
        codes = self.codes
        try:
            for code, value in fields:
                parts.append(code + _US + value)  # TypeError unless both are strings
                if code not in codes:
                    if type(code) is not str or _MFC.fullmatch(code) is None:
                        return None
                    codes.add(code)
                if code in numbers:
                    # Printable upper-case ASCII (checked below): normalize_number drops spaces and hyphens.
                    number = value.replace(" ", "").replace("-", "")
                    if number:
                        keys.append(code + "=" + number)
                elif code == "DOB":
                    if not _DATE.match(value):
                        return None
                    dobs.append(value)
                elif code == "NAM" or code == "AKA":
                    names.append(value)
        except (TypeError, ValueError):  # not a pair, or not of strings
            return None
        if len(parts) != len(fields) or any(type(pair) is not list for pair in fields):
            return None
        stored = _RS.join(parts)
        letter = self.letters.get(file)
        if (_NOT_STORED_TEXT.search(stored) is not None or stored != stored.upper()
                or stored.count(_US) != len(parts) or stored.count(_RS) != len(parts) - 1
                or status not in STATUSES or not _NIC.match(nic) or (letter is not None and nic[0] != letter)
                or not self._ok("ORI", ori, _ORI) or not _DATE.match(entered)
                or not self._ok("set", record_set, _SET)):
            return None
        if dobs and names:
            for name in names:
                for key in fast_surname_keys(name):
                    for dob in dobs:
                        keys.append("~" + key + "|" + dob)
        return (nic, file, record_set, status, ori, entered, caution or None, stored), keys


def _as_row(record: Record, reader: LineReader) -> tuple[tuple, list[str]]:
    numbers = reader.numbers.get(record.file)
    if numbers is None:
        numbers = reader.numbers[record.file] = frozenset(reader.catalogue.search_rule(record.file).numbers)
    return ((record.nic, record.file, record.record_set, record.status, record.ori, record.entered,
             record.caution, encode_fields(record.fields)), record_keys(record, numbers))


def _read_chunk(reader: LineReader, fixed: bool, chunk: list[tuple[int, bytes]]) -> list[tuple]:
    """(line number, (row, keys) or None, error or None) for each line of a chunk."""
    catalogue = reader.catalogue
    read = reader.read
    out: list[tuple] = []
    for number, line in chunk:
        try:
            if fixed:
                out.append((number, _as_row(registration_from_line_fast(line, catalogue), reader), None))
                continue
            text = line.decode("ascii")
            item = read(text)
            if item is None:  # the reference path: the record after all, or its reason
                item = _as_row(record_from_json(json.loads(text), catalogue), reader)
            out.append((number, item, None))
        except UnicodeDecodeError:
            out.append((number, None, "not ASCII"))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            out.append((number, None, str(exc)))
    return out


CHUNK_LINES = 4000
# Below this much to read, forking workers costs more than it saves.
PARALLEL_BYTES = 8 << 20
_worker_reader: Optional[LineReader] = None  # set in the parent before the workers fork


def _worker(job: tuple[bool, list[tuple[int, bytes]]]) -> list[tuple]:
    assert _worker_reader is not None
    gc.disable()
    return _read_chunk(_worker_reader, job[0], job[1])


def _chunks(path: Path) -> Iterator[tuple[int, list[tuple[int, bytes]]]]:
    """(bytes read so far, [(line number, line)...]) of the lines with data, a few thousand at a time."""
    fixed = path.suffix == ".fw"
    done = 0
    chunk: list[tuple[int, bytes]] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            done += len(raw)
            line = raw.rstrip(b"\r\n")
            if not line.strip() or (fixed and line.startswith(b"#")):
                continue
            chunk.append((number, line))
            if len(chunk) >= CHUNK_LINES:
                yield done, chunk
                chunk = []
    if chunk:
        yield done, chunk


def _records_of(path: Path, reader: LineReader, pool: Any = None) -> Iterator[tuple[int, int, Optional[tuple], Optional[str]]]:
    """(line number, bytes read so far, (row, keys) or None, error or None) for each line with data;
    with ``pool``, the lines are read in its worker processes, in order."""
    fixed = path.suffix == ".fw"
    if pool is None:
        for done, chunk in _chunks(path):
            for number, item, problem in _read_chunk(reader, fixed, chunk):
                yield number, done, item, problem
        return
    sizes: list[int] = []

    def jobs() -> Iterator[tuple[bool, list[tuple[int, bytes]]]]:
        for done, chunk in _chunks(path):
            sizes.append(done)
            yield fixed, chunk

    for i, results in enumerate(pool.imap(_worker, jobs())):
        for number, item, problem in results:
            yield number, sizes[i], item, problem


def sync(files: RecordFiles, directory: Path, force: bool = False, progress: Optional[Progress] = None,
         routes: Optional[Path] = None, commit: Optional[Callable[[], None]] = None,
         workers: int = 1) -> ImportResult:
    """Bring the store's records of ``directory`` up to date with its files.

    ``force``: import every file even if its fingerprint is unchanged.  Raises
    ``RecordImportError`` (nothing imported) when any line is bad.  ``commit``
    is called once the import is in the turn's transaction (the store's commit:
    durable before anything depends on it).  ``workers`` > 1: the lines of a large
    import are read in that many forked processes (``lems records import``; never
    from inside a running reactor)."""
    started = time.monotonic()
    records = files.records
    catalogue = files.catalogue
    prefix = f"{directory.name}/" if routes is None else f"{directory.relative_to(routes)}/"
    known = records.sources(prefix)
    present = record_paths(directory)
    changed: list[tuple[Path, str, os.stat_result, str]] = []
    unchanged = 0
    for path in present:
        name = prefix + path.name
        st = path.stat()
        old = known.get(name)
        if not force and old is not None and old[1] == st.st_size and old[2] == st.st_mtime_ns:
            unchanged += 1
            continue
        digest = _sha256(path)
        if not force and old is not None and old[3] == digest:
            records.touch_source(old[0], st.st_size, st.st_mtime_ns)
            unchanged += 1
            continue
        changed.append((path, name, st, digest))
    names = {prefix + p.name for p in present}
    removed = [(name, row[0]) for name, row in known.items() if name not in names]
    rules = key_rules(catalogue)
    rekey = records.meta("keys") not in (None, rules)
    adopt = records.unadopted_entries()
    if not changed and not removed and not rekey and not adopt:
        if records.meta("keys") is None:
            records.set_meta("keys", rules)
            if commit:
                commit()
        return ImportResult(unchanged=unchanged, seconds=time.monotonic() - started)

    records.savepoint(SAVEPOINT)
    collecting = gc.isenabled()
    gc.disable()  # millions of short-lived objects and no cycles: the collector would only cost time
    try:
        result = _import(files, changed, removed, adopt, rekey, progress, workers)
        records.set_meta("keys", rules)
    except BaseException:
        records.rollback_to(SAVEPOINT)
        files.forget_homes()
        raise
    finally:
        if collecting:
            gc.enable()
    records.release(SAVEPOINT)
    if commit:
        commit()
    return attrs.evolve(result, unchanged=unchanged, seconds=time.monotonic() - started)


def _import(files: RecordFiles, changed: list, removed: list, adopt: list, rekey: bool,
            progress: Optional[Progress], workers: int = 1) -> ImportResult:
    records = files.records
    catalogue = files.catalogue
    keep = records.entered_nics()
    for path, name, st, digest in changed:
        old = records.sources(name)
        if name in old:
            records.drop_source(old[name][0], keep)
    for name, sid in removed:
        records.drop_source(sid, keep)
        records.forget_source(sid)
    if rekey:  # the search rules changed: every record's keys again
        records.replace_keys(_all_keys(files))
    total_bytes = sum(st.st_size for _, _, st, _ in changed)
    progress = progress if progress is not None else Progress(total_bytes)
    progress.total = max(total_bytes, 1)
    records.begin_bulk()
    reader = LineReader(catalogue)
    pool = None
    if workers > 1 and total_bytes > PARALLEL_BYTES:
        global _worker_reader
        _worker_reader = reader
        pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        result = _import_files(files, changed, reader, pool, keep, progress)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    for nic, raw in adopt:  # entries of a store made before the record tables
        try:
            record = record_from_json(json.loads(raw), catalogue)
        except ValueError as exc:
            raise RecordImportError([RecordFileError("entered_record", 0, f"entered record {nic}: {exc}")]) from None
        files.add(record)
    return attrs.evolve(result, removed=tuple(n for n, _ in removed))


def _import_files(files: RecordFiles, changed: list, reader: LineReader, pool: Any, keep: set[str],
                  progress: Progress) -> ImportResult:
    records = files.records
    catalogue = files.catalogue
    errors: list[RecordFileError] = []
    more = 0
    seen: dict[str, str] = {}
    done_before = 0
    imported = skipped = 0
    next_id = records.next_id()
    homes: dict[tuple[str, str], int] = {}
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    for path, name, st, digest in changed:
        sid = records.save_source(name, st.st_size, st.st_mtime_ns, digest, 0, now)
        rows: list[tuple] = []
        keys: list[tuple[str, int, int]] = []
        count = 0
        path_name = path.name

        def flush() -> None:
            nonlocal rows, keys
            if rows and not errors:
                clash = records.bulk(rows, keys)
                if clash is not None:
                    line = next(r[9] for r in rows if r[1] == clash)
                    errors.append(RecordFileError(path, line, f"nic {clash} already used at {records.where(clash)}"))
            rows, keys = [], []

        for number, done, item, problem in _records_of(path, reader, pool):
            if problem is None:
                nic = item[0][0]
                if nic in seen:
                    problem = f"nic {nic} already used at {seen[nic]}"
                else:
                    seen[nic] = f"{path_name}:{number}"
            if problem is not None:
                if len(errors) < MAX_REPORTED:
                    errors.append(RecordFileError(path, number, problem))
                else:
                    more += 1
                continue
            if nic in keep:
                skipped += 1
                continue
            if errors:  # only checking now: the import will not be kept
                if records.by_nic(nic) is not None:
                    if len(errors) < MAX_REPORTED:
                        errors.append(RecordFileError(path, number, f"nic {nic} already used at {records.where(nic)}"))
                    else:
                        more += 1
                continue
            (nic, file, record_set, status, ori, entered, caution, stored), keys_of = item
            home = homes.get((file, record_set))
            if home is None:
                home = homes[(file, record_set)] = records.home(file, record_set, create=True)
            rid = next_id
            next_id += 1
            rows.append((rid, nic, home, status, ori, entered, caution, stored, sid, number))
            keys.extend([(key, home, rid) for key in keys_of])
            count += 1
            if len(rows) >= BATCH:
                flush()
                progress.update(path.name, done_before + done, imported + count)
        flush()
        done_before += st.st_size
        imported += count
        records.save_source(name, st.st_size, st.st_mtime_ns, digest, count, now)
    if errors:
        progress.update("failed", done_before, imported, final=bool(changed))
        raise RecordImportError(errors, more)
    progress.update("indexing", done_before, imported, final=False)
    records.end_bulk()
    progress.update("done", done_before, imported, final=bool(changed))
    return ImportResult(files=tuple(name for _, name, _, _ in changed), records=imported, skipped=skipped, bytes=sum(st.st_size for _, _, st, _ in changed))


def _all_keys(files: RecordFiles) -> Iterator[tuple[str, int, int]]:
    records = files.records
    for row in records.rows():
        index = files.index(*records.home_name(row[2]))
        for key in index.keys(index._record(row)):
            yield key, row[2], row[0]
