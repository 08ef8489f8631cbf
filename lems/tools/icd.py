"""The message-key section of docs/ICD.md, generated from the catalogues.

    python -m lems.tools.icd --write docs/ICD.md   replace the text between the markers
    python -m lems.tools.icd --check docs/ICD.md   exit 1 when the section is out of date
    python -m lems.tools.icd                       print the section

The section sits between the lines ``<!-- keys:begin -->`` and
``<!-- keys:end -->``; everything else in the file is left alone.  The
catalogue is the single source of the key list, so a CI ``--check`` keeps the
document honest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from lems.wire.catalogue import CatalogueError
from lems.wire.codec import Codec

BEGIN = "<!-- keys:begin -->"
END = "<!-- keys:end -->"
FAMILY_TITLES = {
    "control": "Session control keys",
    "ncic": "NCIC-style keys (inquiries and record maintenance)",
    "leds": "LEDS (state) keys",
    "nlets": "Nlets-style keys (state to state, agency to agency)",
}


def _field_line(field, required_codes: set[str], positional: tuple[str, ...]) -> str:
    size = str(field.max) if field.min == field.max else f"{field.min}-{field.max}"
    what = field.format
    if field.codes and field.format == "code":
        codes = " ".join(field.codes)
        what = f"code: {codes}" if len(field.codes) <= 14 else f"code ({len(field.codes)} values)"
    notes = []
    if field.code in required_codes:
        notes.append("required")
    if field.code in positional:
        notes.append(f"position {positional.index(field.code) + 1}")
    if field.repeat:
        notes.append("repeatable")
    if field.reject:
        notes.append(f"missing or invalid is {field.reject}")
    if not field.fold:
        notes.append("case kept")
    if field.pattern:
        notes.append(f"pattern `{field.pattern}`")
    return f"| `{field.code}` | {field.title} | {size} | {what} | {', '.join(notes)} |"


def render_keys(codec: Codec) -> str:
    """Markdown: for every key, its attributes, the fields it takes and an example."""
    out: list[str] = [
        "The tables below are generated from the catalogues in `formats/` "
        "(`python -m lems.tools.icd --write docs/ICD.md`); the catalogue is the reference.",
        "",
    ]
    by_family: dict[str, list] = {}
    for spec in codec.keys.values():
        by_family.setdefault(spec.family, []).append(spec)
    for family in sorted(by_family, key=lambda f: list(FAMILY_TITLES).index(f) if f in FAMILY_TITLES else 99):
        out += [f"### {FAMILY_TITLES.get(family, family)}", ""]
        out += ["| key | meaning | file | action | category | level |", "|---|---|---|---|---|---|"]
        specs = sorted(by_family[family], key=lambda s: s.mke)
        for spec in specs:
            out.append(f"| `{spec.mke}` | {spec.title} | {spec.file or ''} | {spec.action} | "
                       f"{spec.category} | {spec.level} |")
        out.append("")
        for spec in specs:
            out += [f"#### {spec.mke} - {spec.title}", ""]
            facts = [f"family {spec.family}", f"action {spec.action}", f"category {spec.category}",
                     f"operator level {spec.level}", f"at most {spec.max_length} characters"]
            if spec.file:
                facts.insert(0, f"file {spec.file} ({codec.file(spec.file).title})")
            if spec.reply:
                facts.append(f"answered with {spec.reply}")
            if spec.answers:
                facts.append(f"answers {spec.answers}")
            if spec.nlets:
                facts.append(f"up to {spec.max_dests} destination{'s' if spec.max_dests > 1 else ''}")
            if spec.free_text:
                facts.append("free-text body" + ("" if spec.fold_body else " (case kept)"))
            if not spec.ori_required:
                facts.append("may be sent without an ORI")
            out += ["; ".join(facts) + ".", ""]
            if spec.required:
                out.append("Required: " + "; ".join(
                    f"{r.describe()}" + (f" (else {r.code})" if r.code != ".13." else "") for r in spec.required) + ".")
                out.append("")
            if spec.positional:
                out += ["Positional order: " + " ".join(spec.positional) + ".", ""]
            if spec.fields:
                required_codes = {c for r in spec.required if len(r.alternatives) == 1 and r.when is None
                                  for c in r.alternatives[0]}
                out += ["| MFC | field | length | format | notes |", "|---|---|---|---|---|"]
                out += [_field_line(f, required_codes, spec.positional) for f in spec.fields.values()]
                out.append("")
            if spec.example:
                out += ["Example:", "", f"    {spec.example}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def splice(document: str, section: str) -> str:
    """The document with the text between the markers replaced; ValueError without markers."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"the document needs the lines {BEGIN} and {END}, in that order")
    head = document[:start + len(BEGIN)]
    return head + "\n" + section + document[end:]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="lems.tools.icd", description="message-key section of the ICD")
    parser.add_argument("--formats", type=Path, default=Path(__file__).resolve().parents[2] / "formats")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="ICD", help="replace the section in this file")
    group.add_argument("--check", type=Path, metavar="ICD", help="exit 1 when the section is out of date")
    args = parser.parse_args(argv)
    try:
        section = render_keys(Codec.from_dir(args.formats))
    except CatalogueError as exc:
        print(f"catalogue error: {exc}", file=sys.stderr)
        return 2
    if args.write is None and args.check is None:
        sys.stdout.write(section)
        return 0
    path = args.write or args.check
    try:
        document = path.read_text()
        updated = splice(document, section)
    except (OSError, ValueError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    if args.check is not None:
        if updated != document:
            print(f"{path}: the message-key section is out of date (python -m lems.tools.icd --write {path})",
                  file=sys.stderr)
            return 1
        return 0
    path.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
