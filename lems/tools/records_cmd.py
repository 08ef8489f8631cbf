"""``lems records``: the record files in the store.

    lems records import [--home DIR] [--force]
    lems records status [--home DIR]

``import`` brings the store's records up to date with the record files of
``routes/records/`` (and of every other directory a ``records`` handler of
``routes/routes.toml`` names with its ``records`` option): the files that
changed since the last import (size, time, SHA-256), or every file with
``--force``.  The switch does the same when it starts and at a console
``reload``; a running switch finds what this imported at once, since every
search reads the store.  A progress bar goes to stderr on a terminal.  Every
bad line is reported as ``FILE:LINE: reason``; if there is any, nothing is
imported and the exit status is 1.

``status`` lists the records per file and record set and the imported files.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path

from lems.tools.args import EXIT_OK, EXIT_REJECT, add_home, fail, home_of


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("records", help="import the record files into the store; records per file",
                              description=__doc__.splitlines()[0], epilog=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="import the record files that changed (all with --force)")
    add_home(imp)
    imp.add_argument("--force", action="store_true", help="import every file, changed or not")
    imp.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is no terminal")
    imp.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                     help="processes reading the lines of a large import (default: one per core)")
    imp.set_defaults(func=run_import)
    status = actions.add_parser("status", help="records per file and record set, and the imported files")
    add_home(status)
    status.set_defaults(func=run_status)


def record_directories(home: Path) -> list[Path]:
    """The directories the ``records`` handlers of the route table serve (routes/records by default)."""
    routes = home / "routes"
    found: list[Path] = []
    try:
        table = tomllib.loads((routes / "routes.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        table = {}
    for handler in table.get("handler", []):
        if isinstance(handler, dict) and handler.get("use") == "records":
            path = routes / str(handler.get("records", "records"))
            if path not in found:
                found.append(path)
    return found or [routes / "records"]


def _open(home: Path):
    from lems.base.conf import Settings
    from lems.files.index import RecordFiles
    from lems.store.records import RecordStore, open_store
    from lems.wire.catalogue import Catalogue

    settings = Settings.load(home)
    catalogue = Catalogue.load(home / "formats")
    store = open_store(settings.store_path)
    return store, RecordFiles(catalogue, store=RecordStore(store))


def run_import(args: argparse.Namespace) -> int:
    from lems.files.importer import Progress, RecordImportError, record_paths, sync

    home = home_of(args)
    store, files = _open(home)
    files.records.tune_for_import()
    status = EXIT_OK
    try:
        for directory in record_directories(home):
            total = sum(p.stat().st_size for p in record_paths(directory))
            progress = Progress(total, force=args.progress)
            try:
                result = sync(files, directory, force=args.force, progress=progress, routes=home / "routes",
                              commit=store.commit, workers=args.workers)
            except RecordImportError as exc:
                store.rollback()
                print(f"lems records import: {directory}:", file=sys.stderr)
                print(str(exc), file=sys.stderr)
                status = EXIT_REJECT
                continue
            if result.files or result.removed:
                print(f"{directory}: {len(result.files)} file(s) imported, {result.records:,} records in "
                      f"{result.seconds:.1f} s ({result.rate:,.0f} records/s)"
                      + (f", {len(result.removed)} file(s) gone" if result.removed else "")
                      + (f", {result.skipped} kept as changed at run time" if result.skipped else "")
                      + f"; {result.unchanged} unchanged")
            else:
                print(f"{directory}: up to date ({result.unchanged} file(s) unchanged)")
    except OSError as exc:
        return fail(str(exc), EXIT_REJECT, prog="lems records import")
    finally:
        store.close()
    return status


def run_status(args: argparse.Namespace) -> int:
    home = home_of(args)
    store, files = _open(home)
    try:
        counts = files.counts()
        for (file, record_set), n in counts.items():
            print(f"{file:16} {record_set:5} {n:>10,}")
        print(f"{'total':22} {sum(counts.values()):>10,}")
        for name, records, imported in files.records.source_list():
            print(f"  {name}: {records:,} records, imported {imported}")
    finally:
        store.close()
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    from lems.tools.args import standalone

    raise SystemExit(standalone(register, "records", sys.argv[1:]))
