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
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TextIO

import attrs

from lems.files.index import RecordFiles, encode_fields, key_rules, record_keys
from lems.files.records import RecordFileError, record_from_json, registration_from_line
from lems.wire.message import Record

BATCH = 5000
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


def _records_of(path: Path, catalogue: Any) -> Iterator[tuple[int, int, Optional[Record], Optional[str]]]:
    """(line number, bytes read so far, record or None, error or None) for each line with data."""
    done = 0
    fixed = path.suffix == ".fw"
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            done += len(raw)
            line = raw.rstrip(b"\r\n")
            if not line.strip() or (fixed and line.startswith(b"#")):
                continue
            try:
                if fixed:
                    yield number, done, registration_from_line(line, catalogue), None
                else:
                    yield number, done, record_from_json(json.loads(line.decode("ascii")), catalogue), None
            except UnicodeDecodeError:
                yield number, done, None, "not ASCII"
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                yield number, done, None, str(exc)


def sync(files: RecordFiles, directory: Path, force: bool = False, progress: Optional[Progress] = None,
         routes: Optional[Path] = None, commit: Optional[Callable[[], None]] = None) -> ImportResult:
    """Bring the store's records of ``directory`` up to date with its files.

    ``force``: import every file even if its fingerprint is unchanged.  Raises
    ``RecordImportError`` (nothing imported) when any line is bad.  ``commit``
    is called once the import is in the turn's transaction (the store's commit:
    durable before anything depends on it)."""
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
    try:
        result = _import(files, changed, removed, adopt, rekey, progress)
        records.set_meta("keys", rules)
    except BaseException:
        records.rollback_to(SAVEPOINT)
        files.forget_homes()
        raise
    records.release(SAVEPOINT)
    if commit:
        commit()
    return attrs.evolve(result, unchanged=unchanged, seconds=time.monotonic() - started)


def _import(files: RecordFiles, changed: list, removed: list, adopt: list, rekey: bool,
            progress: Optional[Progress]) -> ImportResult:
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

    errors: list[RecordFileError] = []
    more = 0
    seen: dict[str, str] = {}
    total_bytes = sum(st.st_size for _, _, st, _ in changed)
    progress = progress if progress is not None else Progress(total_bytes)
    progress.total = max(total_bytes, 1)
    done_before = 0
    imported = skipped = 0
    next_id = records.next_id()
    numbers: dict[str, frozenset[str]] = {}
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    for path, name, st, digest in changed:
        sid = records.save_source(name, st.st_size, st.st_mtime_ns, digest, 0, now)
        rows: list[tuple] = []
        keys: list[tuple[str, int, int]] = []
        count = 0

        def flush() -> None:
            nonlocal rows, keys
            if rows and not errors:
                clash = records.bulk(rows, keys)
                if clash is not None:
                    line = next(r[9] for r in rows if r[1] == clash)
                    errors.append(RecordFileError(path, line, f"nic {clash} already used at {records.where(clash)}"))
            rows, keys = [], []

        for number, done, record, problem in _records_of(path, catalogue):
            if problem is None and record is not None:
                if record.nic in seen:
                    problem = f"nic {record.nic} already used at {seen[record.nic]}"
                else:
                    seen[record.nic] = f"{path.name}:{number}"
            if problem is not None:
                if len(errors) < MAX_REPORTED:
                    errors.append(RecordFileError(path, number, problem))
                else:
                    more += 1
                continue
            assert record is not None
            if record.nic in keep:
                skipped += 1
                continue
            if errors:
                continue  # only checking now: the import will not be kept
            home = records.home(record.file, record.record_set, create=True)
            assert home is not None
            file_numbers = numbers.get(record.file)
            if file_numbers is None:
                file_numbers = numbers[record.file] = frozenset(catalogue.search_rule(record.file).numbers)
            rid = next_id
            next_id += 1
            rows.append((rid, record.nic, home, record.status, record.ori, record.entered, record.caution,
                         encode_fields(record.fields), sid, number))
            keys.extend((key, home, rid) for key in record_keys(record, file_numbers))
            count += 1
            if len(rows) >= BATCH:
                flush()
                progress.update(path.name, done_before + done, imported + count)
        flush()
        done_before += st.st_size
        imported += count
        records.save_source(name, st.st_size, st.st_mtime_ns, digest, count, now)
    progress.update("done", done_before, imported, final=bool(changed))
    if errors:
        raise RecordImportError(errors, more)
    for nic, raw in adopt:  # entries of a store made before the record tables
        try:
            record = record_from_json(json.loads(raw), catalogue)
        except ValueError as exc:
            raise RecordImportError([RecordFileError("entered_record", 0, f"entered record {nic}: {exc}")]) from None
        files.add(record)
    return ImportResult(files=tuple(name for _, name, _, _ in changed), removed=tuple(n for n, _ in removed),
                        records=imported, skipped=skipped, bytes=sum(st.st_size for _, _, st, _ in changed))


def _all_keys(files: RecordFiles) -> Iterator[tuple[str, int, int]]:
    records = files.records
    for row in records.rows():
        index = files.index(*records.home_name(row[2]))
        for key in index.keys(index._record(row)):
            yield key, row[2], row[0]
