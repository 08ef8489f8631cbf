"""The ``lems`` command (PROTOCOL.md appendix B)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Optional, Sequence

from lems import __version__
from lems.base.conf import ConfError
from lems.base.registry import LEVELS, TERMINAL_TYPES

EXIT_OK, EXIT_REJECT, EXIT_USAGE = 0, 1, 2


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home).resolve()


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"lems: {message}", file=sys.stderr)
    return code


# -- init ----------------------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> int:
    from lems.tools import home as home_mod

    dest = Path(args.dir)
    if args.exist_ok and home_mod.is_home(dest):
        print(f"{dest} is already a LEMS home; keeping it")
        return EXIT_OK
    try:
        registry = home_mod.init(dest)
    except FileExistsError as exc:
        return _fail(str(exc))
    print(f"LEMS home written to {dest.resolve()}")
    print(f"  CA certificate:        {dest / 'var/pki/ca.crt'}")
    print(f"  terminal certificates: {dest / 'var/pki/terminals'}/<TERMINAL>.crt and .key")
    print("  terminals: " + ", ".join(f"{t.id} ({t.ori} {t.type})" for t in registry.terminals.values()))
    print("  operators: " + ", ".join(f"{o.id} ({o.ori} {o.level})" for o in registry.operators.values()))
    print(f"  every demo operator's password is {home_mod.DEMO_PASSWORD}")
    print("  OP010003 also needs a TOTP code from secret JBSWY3DPEHPK3PXP (SHA-1, 6 digits, 30 s)")
    print(f"run it with: lems serve --home {dest}")
    return EXIT_OK


# -- serve -----------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    from twisted.internet import reactor

    from lems.base import log
    from lems.net.service import Service

    home = _home(args)
    try:
        service = Service(home, port=args.port, console_port=args.console_port,
                          capture=Path(args.capture) if args.capture else None, host=args.host)
    except Exception as exc:  # a bad home is reported, not a traceback
        return _fail(f"cannot start the switch on {home}: {exc}")
    log.configure(service.settings.log_path, echo=True)
    try:
        bound = service.start()
    except Exception as exc:
        return _fail(f"cannot listen: {exc}")
    for name, port in bound.items():
        listener = next(lst for lst in service.settings.listeners if lst.name == name)
        print(f"LEMS switch listening: {name} on {args.host or listener.host}:{port} ({listener.framing} framing)",
              flush=True)
    if service.console is not None:
        console_host = args.host or service.settings.console_host
        print(f"administrators' console (SSH): {console_host}:{service.console.port}"
              f" (lems console --home {home})", flush=True)
    print(f"home {home}; log {service.settings.log_path}; stop with Ctrl-C", flush=True)
    reactor.addSystemEventTrigger("before", "shutdown", service.stop)
    reactor.run()
    print("LEMS switch stopped", flush=True)
    return EXIT_OK


# -- clients ------------------------------------------------------------------------------

def _client(args: argparse.Namespace):
    from lems.tools import client

    return client.for_terminal(_home(args), args.terminal, port=args.port, host=args.host,
                               listener=args.listener, timeout=args.timeout)


def _registered(args: argparse.Namespace):
    from lems.base.registry import Registry

    term = Registry.load(_home(args) / "terminals").terminals.get(args.terminal.upper())
    if term is None:
        raise SystemExit(_fail(f"no terminal {args.terminal} in {_home(args) / 'terminals'}"))
    return term


def cmd_send(args: argparse.Namespace) -> int:
    from lems.tools.client import LinkClosed, ReplyTimeout

    registered = _registered(args)
    interface = registered.type == "interface"
    password = args.password
    if args.operator and not interface and password is None:
        password = getpass.getpass(f"password for {args.operator}: ")
    try:
        with _client(args) as term:
            term.banner()
            if args.operator and not interface:
                # Operators sign on for their own agency: the terminal's, unless --ori says otherwise.
                signed = term.sign_on(args.ori or registered.ori, args.operator, password, args.otp)
                if signed.cls != "R":
                    print(signed.text)
                    return EXIT_REJECT
            reply = term.request(args.text, opr=args.operator.upper() if interface and args.operator else "")
    except (LinkClosed, ReplyTimeout, OSError) as exc:
        return _fail(f"link: {exc}", EXIT_REJECT)
    print(reply.text)
    return EXIT_OK if reply.cls == "R" else EXIT_REJECT


def cmd_term(args: argparse.Namespace) -> int:
    from lems.tools.term import run_terminal

    return run_terminal(args, _client(args), _registered(args))


# -- registry and PKI -------------------------------------------------------------------------

def _registry_and_pki(args: argparse.Namespace):
    from lems.net import pki
    from lems.base.conf import Settings
    from lems.base.registry import Registry

    settings = Settings.load(_home(args))
    return Registry.load(settings.home / "terminals"), pki.Pki(settings.pki_dir)


def cmd_ca_issue(args: argparse.Namespace) -> int:
    from lems.tools.home import issue_terminal

    registry, ca = _registry_and_pki(args)
    terminal = registry.terminals.get(args.terminal.upper())
    if terminal is None:
        return _fail(f"no terminal {args.terminal}; register it with `lems terminal add`")
    registry = issue_terminal(registry, ca, terminal)
    new = registry.terminals[terminal.id]
    print(f"issued {ca.terminal_paths(new.id)[0]} for {new.id}; fingerprint {new.fingerprint} registered")
    print("the previous certificate no longer identifies the terminal (reload a running switch)")
    return EXIT_OK


def cmd_terminal_add(args: argparse.Namespace) -> int:
    from lems.tools.home import issue_terminal
    from lems.base.registry import RegistryError, Terminal

    registry, ca = _registry_and_pki(args)
    tid = args.terminal.upper()
    if tid in registry.terminals:
        return _fail(f"terminal {tid} is already registered (use `lems ca issue {tid}` for a new certificate)")
    try:
        terminal = Terminal.from_dict({"id": tid, "ori": args.ori, "type": args.type, "ack": args.ack},
                                      "command line")
        registry = issue_terminal(registry.with_terminal(terminal), ca, terminal)
    except RegistryError as exc:
        return _fail(str(exc))
    print(f"registered {tid} ({terminal.ori} {terminal.type}{', ack' if terminal.ack else ''}); "
          f"certificate {ca.terminal_paths(tid)[0]}")
    return EXIT_OK


def cmd_operator_add(args: argparse.Namespace) -> int:
    import datetime as dt

    from lems.base import credentials
    from lems.base.registry import Operator, RegistryError

    registry, _ = _registry_and_pki(args)
    oid = args.operator.upper()
    if "." in args.password:
        return _fail("a password cannot contain a period (it separates fields)")
    today = dt.date.today()
    try:
        operator = Operator.from_dict({
            "id": oid, "ori": args.ori, "level": args.level, "password": credentials.hash_password(args.password),
            "certified": today.isoformat(), "guide_issued": today.isoformat(),
            "background_check": today.isoformat(), "totp": args.totp or ""}, "command line")
        registry.with_operator(operator)
    except RegistryError as exc:
        return _fail(str(exc))
    print(f"registered operator {oid} ({operator.ori} {operator.level}), certified and background-checked today")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from lems.tools import audit
    from lems.base.conf import Settings

    # PROTOCOL.md appendix B writes `lems audit verify --home DIR`: the home may follow the action too.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--home")
    found, rest = pre.parse_known_args(args.rest)
    home = Path(found.home or args.home).resolve()
    return audit.main(rest, Settings.load(home).store_path)


# -- the parser ------------------------------------------------------------------------------

def _with_home(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", default=".", help="the LEMS home (default: current directory)")


def _with_link(p: argparse.ArgumentParser) -> None:
    _with_home(p)
    p.add_argument("--port", type=int, help="switch port (default: the home's first listener)")
    p.add_argument("--host", help="switch address (default: the listener's)")
    p.add_argument("--listener", help="which listener of the home to use (by name)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for a reply")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lems", description="LEMS law enforcement message switch emulator")
    parser.add_argument("--version", action="version", version=f"lems {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="write a fresh home with the demo data and a new PKI")
    p.add_argument("dir")
    p.add_argument("--exist-ok", action="store_true", help="keep DIR as it is when it already is a home")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", help="run the switch in the foreground")
    _with_home(p)
    p.add_argument("--port", type=int, help="port of the terminal listener (0: any free port)")
    p.add_argument("--host", help="listen on this address instead of the configured one")
    p.add_argument("--console-port", type=int, help="port of the SSH console")
    p.add_argument("--capture", help="record every frame to FILE (JSON Lines, PROTOCOL.md 7)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("term", help="interactive terminal for a person")
    p.add_argument("terminal")
    _with_link(p)
    p.add_argument("--operator", help="sign this operator on at start")
    p.add_argument("--password", help="(prompted for when --operator is given without it)")
    p.add_argument("--otp", help="TOTP code for two-factor operators")
    p.set_defaults(func=cmd_term)

    p = sub.add_parser("send", help="send one message, print the reply (exit 0 for R, 1 for E)")
    p.add_argument("terminal")
    p.add_argument("text")
    _with_link(p)
    p.add_argument("--operator", help="sign this operator on first (interface terminals: put it in the header)")
    p.add_argument("--password")
    p.add_argument("--otp")
    p.add_argument("--ori", help="ORI for the sign-on (default: the terminal's agency)")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("ca", help="the switch's certificate authority")
    ca_sub = p.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    q = ca_sub.add_parser("issue", help="issue and register a new certificate for a terminal")
    q.add_argument("terminal")
    _with_home(q)
    q.set_defaults(func=cmd_ca_issue)

    p = sub.add_parser("terminal", help="terminal registry")
    t_sub = p.add_subparsers(dest="terminal_command", required=True, metavar="ACTION")
    q = t_sub.add_parser("add", help="register a terminal and issue its certificate")
    q.add_argument("terminal")
    q.add_argument("--ori", required=True)
    q.add_argument("--type", required=True, choices=TERMINAL_TYPES)
    q.add_argument("--ack", action="store_true", help="the terminal acknowledges U and S frames")
    _with_home(q)
    q.set_defaults(func=cmd_terminal_add)

    p = sub.add_parser("operator", help="operator registry")
    o_sub = p.add_subparsers(dest="operator_command", required=True, metavar="ACTION")
    q = o_sub.add_parser("add", help="register an operator (certified and background-checked today)")
    q.add_argument("operator")
    q.add_argument("--ori", required=True)
    q.add_argument("--level", required=True, choices=LEVELS)
    q.add_argument("--password", required=True)
    q.add_argument("--totp", help="base32 TOTP secret to enrol the operator in two-factor sign-on")
    _with_home(q)
    q.set_defaults(func=cmd_operator_add)

    p = sub.add_parser("audit", help="the audit journal: search, verify, export, dissemination")
    _with_home(p)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="search|verify|export|dissemination [options]")
    p.set_defaults(func=cmd_audit)

    for name, module, helptext in EXTERNAL:
        p = sub.add_parser(name, help=helptext, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=_external(module))
    return parser


# Subcommands with their own argument parsers, in their own modules.
EXTERNAL: list[tuple[str, str, str]] = [
    ("replay", "lems.tools.replay", "replay a capture against a switch and compare the replies (PROTOCOL.md 7)"),
    ("bench", "lems.tools.bench", "load generator and benchmark against the switch and a bare TLS echo server"),
    ("console", "lems.net.console", "the administrators' console (SSH)"),
]


def _external(module: str):
    def run(args: argparse.Namespace) -> int:
        import importlib

        return importlib.import_module(module).main(args.rest)

    return run


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Subcommands with their own parsers get every argument after their name,
    # options first included (argparse's REMAINDER refuses a leading --option).
    external = {name: module for name, module, _ in EXTERNAL}
    if argv and argv[0] in external:
        args = argparse.Namespace(func=_external(external[argv[0]]), rest=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, PermissionError, ConfError) as exc:
        return _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
