"""``lems bench``, the home: a fresh demo home with the bench terminals, operator and records.

The home gets ``N`` extra terminals ``TB000001``... (type ``mobile``, so they
never idle-lock; the switch allows one session per terminal) and one operator
``OPBENCH1`` whose password hash is cheap, so that signing 200 terminals on
does not take minutes of scrypt (sign-on is not measured).
"""

from __future__ import annotations

import json
from pathlib import Path

BENCH_ORI = "OR9990100"
BENCH_OPERATOR = "OPBENCH1"
BENCH_PASSWORD = "BenchOnly#1"
# scrypt cost of the bench operator's hash: cheap, because sign-on is not what is measured.
BENCH_SCRYPT_N = 2**4
# The bench home's settings: hashes stay at the bench cost (no rehash at sign-on), and the
# per-terminal input rate is off: a closed-loop terminal sends as fast as it is answered.
BENCH_SETTINGS = {"session": {"password_cost": 4}, "limits": {"inputs_per_second": 0.0}}


def prepare_home(home: Path, terminals: int, records: int) -> list[str]:
    """A fresh home with ``terminals`` bench terminals, the bench operator and extra records.

    The connection limits are raised to let every bench terminal in: they all come from
    one address (127.0.0.1), and a 10,000-connection run is the point of ``--connections``."""
    import datetime as dt

    import attrs

    from lems.base import credentials
    from lems.net import pki
    from lems.tools import home as home_mod
    from lems.base.conf import Settings
    from lems.base.registry import Operator, Terminal

    registry = home_mod.init(home)
    _bench_settings(home / "conf" / "lems.toml", terminals)
    settings = Settings.load(home)
    ca = pki.Pki(settings.pki_dir)
    today = dt.date.today()
    registry = registry.with_operator(Operator(
        id=BENCH_OPERATOR, ori=BENCH_ORI, level="full",
        password=credentials.hash_password(BENCH_PASSWORD, n=BENCH_SCRYPT_N),
        certified=today - dt.timedelta(days=30), guide_issued=today - dt.timedelta(days=30),
        background_check=today - dt.timedelta(days=30)))
    ids = [f"TB{i:06d}" for i in range(1, terminals + 1)]
    new = [Terminal(id=tid, ori=BENCH_ORI, type="mobile") for tid in ids]
    # One registry write for all of them: issue the certificates first, then register.
    issued = [ca.issue_terminal(t.id, t.ori) for t in new]
    terminals_by_id = dict(registry.terminals)
    for term, cert in zip(new, issued):
        terminals_by_id[term.id] = attrs.evolve(term, fingerprint=cert.fingerprint)
    registry = attrs.evolve(registry, terminals=terminals_by_id)
    registry.check()
    registry.save("terminal")
    if records:
        from lems.files.records import record_to_json
        from lems.files.synthetic import synthetic_records
        from lems.wire.catalogue import Catalogue

        catalogue = Catalogue.load(home / "formats")

        # As many wanted persons as stolen vehicles: QW and QV both search a file of the size asked for.
        for file in ("wanted", "vehicle"):
            with open(home / "routes" / "records" / f"bench-{file}.jsonl", "w", encoding="ascii") as out:
                out.writelines(json.dumps(record_to_json(record)) + "\n"
                               for record in synthetic_records(file, records, seed=1, catalogue=catalogue))
    return ids


def _bench_settings(path: Path, terminals: int = 0) -> None:
    import tomlkit

    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    limits = doc["limits"]
    limits["max_connections"] = max(int(limits.get("max_connections", 1000)), terminals + 100)
    limits["max_connections_per_address"] = max(int(limits.get("max_connections_per_address", 300)),
                                                terminals + 100)
    for section, values in BENCH_SETTINGS.items():
        for key, value in values.items():
            doc[section][key] = value
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
