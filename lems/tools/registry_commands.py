"""``lems ca issue``, ``lems terminal add``, ``lems operator add``: the registry and the PKI from the command line.

Each writes terminals/ (and var/pki/) of a home, then announces the change in
the home's store, so a running switch takes it at its next handshake, sign-on
or one-second tick (PROTOCOL.md 8): a re-issued certificate's predecessor is
refused, a new terminal or operator is admitted, without a reload.
"""

from __future__ import annotations

import argparse

import attrs

from lems.base.registry import LEVELS, TERMINAL_TYPES
from lems.tools.args import EXIT_OK, add_home, fail, home_of


def register(subparsers: argparse._SubParsersAction) -> None:
    _ca(subparsers)

    q = _one_action(subparsers, "terminal", "terminal registry",
                    "add", "register a terminal and issue its certificate", terminal_add, "terminal")
    q.add_argument("--ori", required=True)
    q.add_argument("--type", required=True, choices=TERMINAL_TYPES)
    q.add_argument("--ack", action="store_true", help="the terminal acknowledges U and S frames")

    q = _one_action(subparsers, "operator", "operator registry",
                    "add", "register an operator (certified and background-checked today), or give one a new "
                    "password; the password rules are docs/SECURITY.md's", operator_add, "operator")
    q.add_argument("--ori", required=True)
    q.add_argument("--level", required=True, choices=LEVELS)
    q.add_argument("--password", required=True)
    q.add_argument("--totp", help="base32 TOTP secret to enrol the operator in two-factor sign-on")
    q.add_argument("--training", choices=("completed", "issued", "none"), default="completed",
                   help="training on record (PROTOCOL.md 11): completed today (the default), guide issued "
                        "today, or none yet (the guide is then due 10 days after the first sign-on)")
    q.add_argument("--representative", action="store_true",
                   help="the agency's LEDS representative (the first operator of an agency becomes it anyway)")
    # `lems operator training OPERATOR issued|completed [--level L] [--date CCYYMMDD]`
    operator_actions = q._lems_group_actions  # type: ignore[attr-defined]
    t = operator_actions.add_parser("training", help="record an operator's training guide issued or training "
                                                     "completed (PROTOCOL.md 11; the LEDS representative rule holds)")
    t.add_argument("operator")
    t.add_argument("event", choices=("issued", "completed"))
    t.add_argument("--level", choices=LEVELS, help="the training level (default: the operator's own)")
    t.add_argument("--date", help="CCYYMMDD (default: today on the switch clock)")
    add_home(t)
    t.set_defaults(func=operator_training)


def _one_action(subparsers: argparse._SubParsersAction, group: str, group_help: str, action: str,
                action_help: str, handler, subject: str) -> argparse.ArgumentParser:
    """``lems GROUP ACTION SUBJECT [--home DIR]``; the caller adds the action's own options."""
    p = subparsers.add_parser(group, help=group_help)
    actions = p.add_subparsers(dest=f"{group}_command", required=True, metavar="ACTION")
    q = actions.add_parser(action, help=action_help)
    q._lems_group_actions = actions  # type: ignore[attr-defined]  # more actions of the group (operator training)
    q.add_argument(subject)
    add_home(q)
    q.set_defaults(func=handler)
    return q


def _ca(subparsers: argparse._SubParsersAction) -> None:
    """``lems ca issue TERMINAL`` and ``lems ca renew [--switch] [TERMINAL ...]``."""
    p = subparsers.add_parser("ca", help="the switch's certificate authority")
    actions = p.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    q = actions.add_parser("issue", help="issue and register a new certificate for a terminal")
    q.add_argument("terminal")
    add_home(q)
    q.set_defaults(func=ca_issue)
    q = actions.add_parser("renew", help="renew the switch certificate and/or terminals' certificates "
                                         "(new keys, [pki] lifetimes; a terminal's new fingerprint is registered)")
    q.add_argument("terminals", nargs="*", metavar="TERMINAL")
    q.add_argument("--switch", action="store_true", help="renew the switch certificate (same names, new key)")
    add_home(q)
    q.set_defaults(func=ca_renew)


def _registry_and_pki(args: argparse.Namespace):
    from lems.base.conf import Settings
    from lems.base.registry import Registry
    from lems.net import pki

    settings = Settings.load(home_of(args))
    return Registry.load(settings.home / "terminals"), pki.Pki(settings.pki_dir, lifetimes=settings.pki)


def _announce(args: argparse.Namespace, what: str) -> None:
    """Tell a switch running on this home (or the next to start) that terminals/ changed."""
    from lems.base.clock import SystemClock, stamp
    from lems.base.conf import Settings
    from lems.store import Store

    store = Store.open(Settings.load(home_of(args)).store_path)
    try:
        store.announce_registry_change(what, stamp(SystemClock().now()))
    finally:
        store.close()


def ca_issue(args: argparse.Namespace) -> int:
    from lems.tools.home import issue_terminal

    registry, ca = _registry_and_pki(args)
    terminal = registry.terminals.get(args.terminal.upper())
    if terminal is None:
        return fail(f"no terminal {args.terminal}; register it with `lems terminal add`")
    registry = issue_terminal(registry, ca, terminal)
    new = registry.terminals[terminal.id]
    _announce(args, f"TERMINAL {new.id} NEW CERTIFICATE {new.fingerprint[:16]}")
    print(f"issued {ca.terminal_paths(new.id)[0]} for {new.id}; fingerprint {new.fingerprint} registered")
    print("the previous certificate no longer identifies the terminal (a running switch refuses it now)")
    return EXIT_OK


def ca_renew(args: argparse.Namespace) -> int:
    from cryptography import x509

    from lems.net.pki import PkiError
    from lems.tools.home import issue_terminal

    if not args.switch and not args.terminals:
        return fail("say what to renew: --switch, one or more terminals, or both")
    registry, ca = _registry_and_pki(args)
    wanted = [t.upper() for t in args.terminals]
    unknown = [t for t in wanted if t not in registry.terminals]
    if unknown:
        return fail(f"no terminal {', '.join(unknown)}; register it with `lems terminal add`")
    if args.switch:
        try:
            issued = ca.renew_server()
        except PkiError as exc:
            return fail(str(exc))
        until = issued.certificate.not_valid_after_utc.date().isoformat()
        print(f"renewed {issued.cert_path} for {', '.join(ca.server_names())}, valid until {until}; "
              f"fingerprint {issued.fingerprint} (a running switch presents it from its next start)")
    for tid in wanted:
        registry = issue_terminal(registry, ca, registry.terminals[tid])
        new = registry.terminals[tid]
        _announce(args, f"TERMINAL {tid} RENEWED CERTIFICATE {new.fingerprint[:16]}")
        cert = ca.terminal_paths(tid)[0]
        until = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc.date().isoformat()
        print(f"renewed {cert} for {tid}, valid until {until}; fingerprint {new.fingerprint} registered "
              "(the previous certificate no longer identifies the terminal)")
    return EXIT_OK


def terminal_add(args: argparse.Namespace) -> int:
    from lems.base.registry import RegistryError, Terminal
    from lems.tools.home import issue_terminal

    registry, ca = _registry_and_pki(args)
    tid = args.terminal.upper()
    if tid in registry.terminals:
        return fail(f"terminal {tid} is already registered (use `lems ca issue {tid}` for a new certificate)")
    try:
        terminal = Terminal.from_dict({"id": tid, "ori": args.ori, "type": args.type, "ack": args.ack},
                                      "command line")
        registry = issue_terminal(registry.with_terminal(terminal), ca, terminal)
    except RegistryError as exc:
        return fail(str(exc))
    _announce(args, f"TERMINAL {tid} ADDED")
    print(f"registered {tid} ({terminal.ori} {terminal.type}{', ack' if terminal.ack else ''}); "
          f"certificate {ca.terminal_paths(tid)[0]}")
    return EXIT_OK


def operator_add(args: argparse.Namespace) -> int:
    """Register an operator, or give a registered one a new password (docs/SECURITY.md's rules)."""
    import datetime as dt

    from lems.base import credentials
    from lems.base.registry import Operator, RegistryError

    registry, _ = _registry_and_pki(args)
    oid = args.operator.upper()
    problem = credentials.password_problem(args.password, oid, args.ori.upper(), _banned(registry.directory))
    if problem is not None:
        return fail(f"password refused: {problem}")
    history_path = registry.directory.parent / "var" / HISTORY_FILE
    history = _history(history_path)
    old = registry.operators.get(oid)
    previous = ([old.password] if old is not None else []) + history.get(oid, [])
    if credentials.reused(args.password, previous[:credentials.HISTORY]):
        return fail(f"password refused: a password is none of the operator's previous "
                    f"{credentials.HISTORY} passwords")
    today = switch_today(args)
    ori = args.ori.upper()
    try:
        if old is not None:  # a new password (or level, or TOTP): the training on record stays
            operator = attrs.evolve(old, ori=ori, level=args.level, password=credentials.hash_password(args.password),
                                    totp=args.totp if args.totp is not None else old.totp,
                                    representative=old.representative or args.representative)
            training = "kept"
        else:
            operator, training = _new_operator(registry, oid, ori, args, today, credentials.hash_password(args.password))
        if operator.representative:
            rep = registry.representative(ori)
            if rep is not None and rep.id != oid:
                return fail(f"{ori} already has a LEDS representative, {rep.id}")
        registry.with_operator(operator)
    except RegistryError as exc:
        return fail(str(exc))
    if old is not None:
        history[oid] = previous[:credentials.HISTORY]
        _save_history(history_path, history)
    _announce(args, f"OPERATOR {oid} {'CHANGED' if old is not None else 'ADDED'}")
    print(f"registered operator {oid} ({operator.ori} {operator.level}), {training}, background-checked today"
          + ("; LEDS representative of " + operator.ori if operator.representative else ""))
    return EXIT_OK


def _new_operator(registry, oid: str, ori: str, args: argparse.Namespace, today, password_hash: str):
    """A new operator with its training set sensibly: completed (certified) today unless told
    otherwise; the agency's first operator is its LEDS representative; a guide the LEDS
    representative rule forbids is not recorded (the operator then has 10 days from its first
    sign-on), and the line printed says so."""
    from lems.base.registry import Operator

    representative = args.representative or registry.representative(ori) is None
    base = Operator.from_dict({"id": oid, "ori": ori, "level": args.level, "password": password_hash,
                               "background_check": today.isoformat(), "totp": args.totp or "",
                               "representative": representative}, "command line")
    if args.training == "none":
        return base, "no training on record yet (guide due 10 days after the first sign-on)"
    problem = registry.guide_problem(base, base.level) if base.ori in registry.agencies else None
    if problem:
        return base, f"NO TRAINING RECORDED: {problem}"
    if args.training == "issued":
        return attrs.evolve(base, guide_issued=today), "training guide issued today (complete it within 60 days)"
    return attrs.evolve(base, guide_issued=today, certified=today), "training completed (certified) today"


def switch_today(args: argparse.Namespace):
    """Today's date on the home's switch clock, in the switch's time zone: the emulated clock's
    offset kept in the store counts (PROTOCOL.md 8), so dates agree with the running switch."""
    from lems.base.conf import Settings
    from lems.store import Store, switch_time

    settings = Settings.load(home_of(args))
    store = Store.open(settings.store_path)
    try:
        clock = switch_time.switch_clock(store.conn, settings.clock.adjustable)
        return clock.now().astimezone(settings.timezone).date()
    finally:
        store.close()


def operator_training(args: argparse.Namespace) -> int:
    """``lems operator training OPERATOR issued|completed [--level L] [--date CCYYMMDD]``."""
    import datetime as dt

    from lems.base.registry import TrainingError

    registry, _ = _registry_and_pki(args)
    today = switch_today(args)
    day = today
    if args.date is not None:
        try:
            day = dt.datetime.strptime(args.date, "%Y%m%d").date()
        except ValueError:
            return fail(f"--date {args.date!r} is not a date CCYYMMDD")
    oid = args.operator.upper()
    try:
        registry = registry.with_training(oid, args.event, day, args.level, today=today)
    except TrainingError as exc:
        return fail(f"refused: {exc}")
    operator = registry.operators[oid]
    _announce(args, f"OPERATOR {oid} TRAINING {args.event.upper()} {day.isoformat()}")
    print(training_line(operator))
    return EXIT_OK


def training_line(operator) -> str:
    """One operator's training as `lems operator training` and the console print it."""
    return (f"operator {operator.id} ({operator.ori}) level {operator.level}: guide issued "
            f"{operator.guide_issued.isoformat() if operator.guide_issued else '-'}, training completed "
            f"{operator.certified.isoformat() if operator.certified else '-'}"
            + (" - LEDS representative" if operator.representative else ""))


# The hashes of operators' previous passwords (for the reuse rule), kept beside the store.
HISTORY_FILE = "password-history.json"


def _history(path) -> dict[str, list[str]]:
    import json

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): [str(h) for h in v] for k, v in raw.items()} if isinstance(raw, dict) else {}


def _save_history(path, history: dict[str, list[str]]) -> None:
    """Owner-only (hashes are still secrets to guard), replaced whole."""
    import json
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(history, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _banned(registry_dir) -> frozenset[str]:
    """The home's own banned passwords (conf/banned-passwords.txt, one a line, # comments), lower case."""
    path = registry_dir.parent / "conf" / "banned-passwords.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return frozenset()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.lstrip().startswith("#"))
