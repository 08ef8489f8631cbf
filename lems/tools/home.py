"""Homes: the demo home that ships with lems, and ``lems init DIR``.

A home is formats/, terminals/, routes/ and conf/ (data, in git for the demo)
plus var/ (the running switch's state: store, PKI, logs; never in git).
var/ is owner-only (directories 0700, files 0600), whatever the umask.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import attrs

from lems.base.clock import SystemClock
from lems.base.conf import Settings
from lems.base.private import private_dir, tighten
from lems.base.registry import Registry, Terminal
from lems.tools.args import EXIT_OK, fail

if TYPE_CHECKING:
    from lems.net import pki as pki_mod

HOME_PARTS = ("formats", "terminals", "routes", "conf")
DEMO_PASSWORD = "LemsDemo#2026"


def demo_source() -> Path:
    """The demo home: the checkout this lems runs from, or the copy pip installed."""
    checkout = Path(__file__).resolve().parents[2]
    if all((checkout / part).is_dir() for part in HOME_PARTS) and (checkout / "conf" / "lems.toml").exists():
        return checkout
    for prefix in (sys.prefix, sys.base_prefix, str(Path.home() / ".local")):
        installed = Path(prefix) / "share" / "lems" / "demo"
        if (installed / "conf" / "lems.toml").exists():
            return installed
    raise FileNotFoundError("the demo home is missing from this installation of lems")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("init", help="write a fresh home with the demo data and a new PKI")
    p.add_argument("dir")
    p.add_argument("--exist-ok", action="store_true", help="keep DIR as it is when it already is a home")
    p.set_defaults(func=run_init)


def run_init(args: argparse.Namespace) -> int:
    dest = Path(args.dir)
    if args.exist_ok and is_home(dest):
        print(f"{dest} is already a LEMS home; keeping it")
        return EXIT_OK
    try:
        registry = init(dest)
    except FileExistsError as exc:
        return fail(str(exc))
    print(f"LEMS home written to {dest.resolve()}")
    print(f"  CA certificate:        {dest / 'var/pki/ca.crt'}")
    print(f"  terminal certificates: {dest / 'var/pki/terminals'}/<TERMINAL>.crt and .key")
    print("  terminals: " + ", ".join(f"{t.id} ({t.ori} {t.type})" for t in registry.terminals.values()))
    print("  operators: " + ", ".join(f"{o.id} ({o.ori} {o.level})" for o in registry.operators.values()))
    print(f"  every demo operator's password is {DEMO_PASSWORD}")
    print("  OP010003 also needs a TOTP code from secret JBSWY3DPEHPK3PXP (SHA-1, 6 digits, 30 s)")
    print(f"run it with: {own_command()} serve --home {shlex.quote(str(dest))}")
    return EXIT_OK


def own_command() -> str:
    """This lems as the user can type it: ``lems`` when that is on PATH, else the path it was started by."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if Path(argv0).name in ("__main__.py", "-c", "-m", ""):  # python -m lems
        found = shutil.which("lems")
        if found and Path(found).parent == Path(sys.executable).parent:
            return "lems"
        return f"{shlex.quote(sys.executable)} -m lems"
    found = shutil.which(Path(argv0).name)
    if found and Path(found).resolve() == Path(argv0).resolve():
        return Path(argv0).name
    return shlex.quote(argv0)


def is_home(path: Path) -> bool:
    return (Path(path) / "conf" / "lems.toml").exists()


def init(dest: Path, clock: Any = None, source: Optional[Path] = None, refresh_dates: bool = True) -> Registry:
    """Write a fresh home at ``dest``: the demo data, a new CA, the switch's and every terminal's certificate.

    Agreement and certification dates are moved relative to today so that a
    fresh demo home is always in force (the repository's copy ages; a new home does not).
    """
    from lems.net import sshkeys  # conch and the PKI: only for a new home, not for every `lems` command
    from lems.net import pki as pki_mod

    clock = clock or SystemClock()
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty; `lems init` writes a fresh home into an empty directory")
    source = source or demo_source()
    dest.mkdir(parents=True, exist_ok=True)
    for part in HOME_PARTS:
        shutil.copytree(source / part, dest / part,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    registry = Registry.load(dest / "terminals")
    if refresh_dates:
        registry = _refresh_dates(registry, clock.now().date())
    settings = Settings.load(dest)
    private_dir(dest / "var")  # before anything is written under it
    ca = pki_mod.Pki(settings.pki_dir, clock=clock, lifetimes=settings.pki)  # [pki] lifetimes
    ca.create_ca()
    ca.issue_server()
    for terminal in list(registry.terminals.values()):
        registry = issue_terminal(registry, ca, terminal)
    # The console's host key and a local administrator's key pair, listed in admin_keys.
    sshkeys.init_keys(dest, settings.authorized_keys)
    # The store, its journal's signing key and signed head file (lems.store.head).
    from lems.store import Store  # the schema and the chain: only for a new home

    Store.open(settings.store_path).close()
    tighten(dest / "var")
    return registry


def issue_terminal(registry: Registry, ca: "pki_mod.Pki", terminal: Terminal) -> Registry:
    """Issue a certificate for a terminal and bind the terminal to its fingerprint."""
    issued = ca.issue_terminal(terminal.id, terminal.ori)
    return registry.with_terminal(attrs.evolve(terminal, fingerprint=issued.fingerprint))


def _refresh_dates(registry: Registry, today: dt.date) -> Registry:
    days = dt.timedelta
    for agency in list(registry.agencies.values()):
        agreement = attrs.evolve(agency.agreement, signed=today - days(60), review_due=today + days(300))
        registry = registry.with_agency(attrs.evolve(agency, agreement=agreement))
    # Training (PROTOCOL.md 11): every demo operator completed it at its level, current for
    # about 21 more months; an agency whose operators name no LEDS representative gets its
    # first operator listed as one (appendix A).
    represented = {o.ori for o in registry.operators.values() if o.representative}
    for op in list(registry.operators.values()):
        representative = op.representative or op.ori not in represented
        represented.add(op.ori)
        registry = registry.with_operator(attrs.evolve(
            op, guide_issued=today - days(120), certified=today - days(90), background_check=today - days(150),
            representative=representative))
    return registry
