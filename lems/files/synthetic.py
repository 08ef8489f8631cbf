"""Synthetic records for the benchmark and the property tests.

Plausible-looking, entirely made up, numbered from ``SYNTHETIC_BASE`` so they
never collide with the demo records or run-time entries; the same seed gives
the same records.
"""

from __future__ import annotations

import functools
import random
from typing import Iterator, Optional

from lems.files.records import SYNTHETIC_BASE, TEXT
from lems.wire.catalogue import Catalogue, FileSpec, shipped_formats
from lems.wire.message import Record


# --- synthetic records (benchmark, property tests) ---------------------------

_ONSETS = ["B", "BR", "C", "CH", "D", "DR", "F", "G", "GR", "H", "J", "K", "KL", "L", "M",
           "N", "P", "PR", "R", "S", "SH", "ST", "T", "TR", "V", "W", "Z"]
_VOWELS = ["A", "E", "I", "O", "U", "AI", "EA", "OO"]
_CODAS = ["", "", "N", "R", "L", "M", "S", "T", "CK", "ND", "RT", "X", "LD"]
_ENDINGS = ["", "SON", "MAN", "TON", "BY", "LEY", "ER", "INE", "SKI", "OW", "ETT", "FORD"]
_FIRST = ["TEST", "SAMPLE", "DEMO", "FAKE", "MOCK", "DUMMY", "PLACEHOLDER", "EXAMPLE",
          "SYNTH", "TRIAL"]
_RACES = ["W", "W", "W", "B", "A", "I", "U"]
_EYES = ["BRO", "BLU", "GRN", "HAZ", "GRY"]
_HAIR = ["BRO", "BLK", "BLN", "RED", "GRY", "BLD"]
_STATES = ["OR", "WA", "CA", "ID", "NV"]
_MAKES = [("FORD", "F15", "PK"), ("TOYT", "CAM", "4D"), ("HOND", "CIV", "4D"),
          ("CHEV", "SIL", "PK"), ("SUBA", "OUT", "SW"), ("DODG", "RAM", "PK")]
_COLORS = ["BLK", "WHI", "SIL", "RED", "BLU", "GRN", "GRY"]
_GUNS = [("GLK", "9MM", "PI"), ("SMW", "38", "RV"), ("RUG", "22", "RI"),
         ("REM", "12", "SG"), ("SIG", "45", "PI")]
_ARTICLES = ["CAMERA", "LAPTOP", "BICYCL", "TOOLS", "JEWELR", "PHONE", "TV"]
_SECURITIES = ["CK", "MO", "TC", "BD"]
_BOATS = [("BAYL", "CF"), ("SEAR", "RB"), ("TRAC", "FB"), ("ALUM", "JB")]
_ALNUM = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O or Q: VINs and plates avoid them


def _alnum(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, len(_ALNUM))
        digits.append(_ALNUM[rest])
    return "".join(reversed(digits))


def synthetic_surname(rng: random.Random) -> str:
    """A made-up, pronounceable surname.  These syllables give thousands of
    Soundex codes, so name buckets stay small however many records are made."""
    return (rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
            + rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_ENDINGS))


def _date(rng: random.Random, first_year: int, last_year: int) -> str:
    return f"{rng.randint(first_year, last_year):04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def _person(rng: random.Random) -> list[tuple[str, str]]:
    return [("NAM", f"{synthetic_surname(rng)}, {rng.choice(_FIRST)} {rng.choice('ABCDEFGHJKLMNPRSTW')}"),
            ("SEX", rng.choice("MF")), ("RAC", rng.choice(_RACES)), ("DOB", _date(rng, 1945, 2008)),
            ("HGT", f"{rng.randint(5, 6)}{rng.randint(0, 11):02d}"), ("WGT", f"{rng.randint(110, 280):03d}"),
            ("EYE", rng.choice(_EYES)), ("HAI", rng.choice(_HAIR))]


def _synthetic_fields(file: str, record_set: str, i: int, rng: random.Random) -> list[tuple[str, str]]:
    oca = ("OCA", f"SYN-{i:09d}")
    state = record_set if len(record_set) == 2 else "OR"
    soc = ("SOC", f"9{i % 10**8:08d}")  # 9xx areas are never issued: obviously synthetic
    if file in ("wanted", "missing", "protection", "supervised", "sexoffender", "prohibited"):
        extra = {
            "wanted": lambda: [("OFF", rng.choice(["2399", "1313", "5499", "3562"])),
                               ("DOW", _date(rng, 2015, 2025)), oca],
            "missing": lambda: [("MNP", rng.choice(["D", "EME", "EMI", "EMJ", "EMV", "EMO"])),
                                ("DLC", _date(rng, 2015, 2025)), oca],
            "protection": lambda: [("PNO", f"SYNPO{i:09d}"), ("EXP", _date(rng, 2026, 2030)),
                                   ("PPN", f"{synthetic_surname(rng)}, {rng.choice(_FIRST)}"), oca],
            "supervised": lambda: [("OFF", rng.choice(["3562", "2399", "1313"])),
                                   ("SON", f"PO {synthetic_surname(rng)}"), ("EXP", _date(rng, 2026, 2030)), oca],
            "sexoffender": lambda: [("SOR", f"SYNSOR{i:09d}"), ("ERD", _date(rng, 2000, 2025))],
            "prohibited": lambda: [("PPT", rng.choice(["MENTAL HEALTH COMMITMENT", "COURT ORDER"])), oca],
        }[file]
        return _person(rng) + [soc] + extra()
    if file == "history":
        return _person(rng) + [("FBI", f"{i:09d}Y"), ("SID", f"{state}{i:09d}"), soc,
                               (TEXT, "ARREST " + _date(rng, 1995, 2025) + " SYNTHETIC PD"),
                               (TEXT, "  CHARGE 1 SYNTHETIC OFFENSE - DISPOSITION CONVICTED")]
    if file == "corrections":
        return _person(rng) + [("SID", f"{state}{i:09d}"), ("CST", rng.choice(["PAROLE", "PROBATION"])),
                               ("SON", f"PO {synthetic_surname(rng)}"), ("EXP", _date(rng, 2026, 2030))]
    if file == "driver":
        return _person(rng) + [("OLN", f"S{i:09d}"), ("OLS", state), ("OLY", str(rng.randint(2026, 2032))),
                               ("OLC", "C"), ("DLS", rng.choice(["VALID", "VALID", "SUSPENDED"]))]
    if file == "driverhistory":
        return _person(rng) + [("OLN", f"S{i:09d}"), ("OLS", state),
                               (TEXT, _date(rng, 2015, 2025) + " CONV SPEEDING SYNTHETIC")]
    if file in ("vehicle", "plate", "registration"):
        make, model, style = rng.choice(_MAKES)
        plate = [("LIC", "SY" + _alnum(i, 6)), ("LIS", state if file == "registration" else rng.choice(_STATES)),
                 ("LIY", str(rng.randint(2025, 2028))), ("LIT", "PC")]
        if file == "plate":
            return plate + [("DOT", _date(rng, 2020, 2025)), oca]
        vehicle = [("VIN", "5SYN" + _alnum(i, 13)), ("VYR", str(rng.randint(1995, 2025))), ("VMA", make),
                   ("VMO", model), ("VST", style), ("VCO", rng.choice(_COLORS))]
        if file == "registration":
            return plate + vehicle + [("NAM", f"{synthetic_surname(rng)}, {rng.choice(_FIRST)}"),
                                      ("ADR", f"{rng.randint(1, 9999)} SYNTHETIC ST")]
        return plate + vehicle + [("DOT", _date(rng, 2020, 2025)), oca]
    if file == "gun":
        make, caliber, kind = rng.choice(_GUNS)
        return [("SER", "SYG" + _alnum(i, 7)), ("MAK", make), ("CAL", caliber), ("TYP", kind),
                ("DOT", _date(rng, 2015, 2025)), oca]
    if file == "article":
        return [("SER", "SYA" + _alnum(i, 7)), ("TYP", rng.choice(_ARTICLES)), ("BRA", "SYNBRAND"),
                ("DOT", _date(rng, 2020, 2025)), oca]
    if file == "securities":
        return [("SER", "SYS" + _alnum(i, 7)), ("TYP", rng.choice(_SECURITIES)),
                ("DEN", str(rng.choice([20, 50, 100, 500]))), ("ISS", "SYNTHETIC BANK"),
                ("DOT", _date(rng, 2020, 2025)), oca]
    if file in ("boat", "boatreg"):
        make, kind = rng.choice(_BOATS)
        fields = [("REG", f"{state}{i:09d}"), ("BHN", "SYB" + _alnum(i, 9)),
                  ("BYR", str(rng.randint(1980, 2025))), ("BMA", make), ("BTY", kind)]
        if file == "boatreg":
            return fields + [("NAM", f"{synthetic_surname(rng)}, {rng.choice(_FIRST)}")]
        return fields + [("DOT", _date(rng, 2020, 2025)), oca]
    raise ValueError(f"no synthetic records for file {file!r}")


def default_record_set(file: FileSpec) -> str:
    """Where a file's records usually live: NCIC, LEDS for prohibited persons,
    OR for the Nlets-emulated state data sets (inquiry only, but for III history)."""
    if file.name == "prohibited":
        return "LEDS"
    if file.letter is None and file.name != "history":
        return "OR"
    return "NCIC"


@functools.cache
def shipped_catalogue() -> Catalogue:
    """The catalogues lems ships with (``lems.wire.catalogue.shipped_formats``)."""
    return Catalogue.load(shipped_formats())


def synthetic_records(file: str, n: int, seed: int, record_set: Optional[str] = None,
                      first: int = SYNTHETIC_BASE, catalogue: Optional[Catalogue] = None) -> Iterator[Record]:
    """``n`` plausible, obviously fake records of ``file``, the same for the same seed.

    NICs run from ``first`` (500000000 by default, clear of demo and run-time
    numbers); the numbers on a record (VIN, LIC, SER, SOC, OLN...) come from its
    NIC number, so they are unique within one call.  ``record_set`` defaults to
    ``default_record_set(file)``.  The file's letter comes from ``catalogue``
    (default: ``shipped_catalogue()``, for callers without a home at hand).
    """
    spec = (catalogue or shipped_catalogue()).files.get(file)
    if spec is None:
        raise ValueError(f"no synthetic records for file {file!r}")
    record_set = record_set or default_record_set(spec)
    letter = spec.record_letter
    rng = random.Random(f"{file}/{record_set}/{seed}")
    ori = "WA9990100" if record_set == "WA" else "OR9990100"
    for i in range(n):
        number = first + i
        fields = _synthetic_fields(file, record_set, number, rng)
        caution = None
        if file == "wanted" and rng.random() < 0.1:
            caution = "WARNING - SUBJECT MAY BE ARMED AND DANGEROUS"
            fields.append(("CMC", "00"))
        yield Record(file=file, nic=f"{letter}{number:09d}", ori=ori, fields=tuple(fields),
                     entered=_date(rng, 2015, 2025), record_set=record_set, caution=caution)
