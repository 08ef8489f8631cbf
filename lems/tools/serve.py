"""``lems serve``: run the switch in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
from pathlib import Path

from lems.tools.args import EXIT_OK, add_home, fail, home_of


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the switch in the foreground")
    add_home(p)
    p.add_argument("--port", type=int, help="port of the terminal listener (0: any free port)")
    p.add_argument("--host", help="listen on this address instead of the configured one")
    p.add_argument("--console-port", type=int, help="port of the SSH console")
    p.add_argument("--dealer-port", type=int, help="port of the dealers' HTTPS interface (0: any free port)")
    p.add_argument("--capture", help="record every frame to FILE (JSON Lines, PROTOCOL.md 7)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from twisted.internet import reactor

    from lems.base import log
    from lems.net.service import Service

    home = home_of(args)
    _owner_only(home, Path(args.capture) if args.capture else None)
    try:
        service = Service(home, port=args.port, console_port=args.console_port,
                          capture=Path(args.capture) if args.capture else None, host=args.host,
                          dealer_port=args.dealer_port)
    except Exception as exc:  # a bad home is reported, not a traceback
        return fail(f"cannot start the switch on {home}: {exc}")
    log.configure(service.settings.log_path, echo=True)
    try:
        bound = service.start()
    except Exception as exc:
        return fail(f"cannot listen: {exc}")
    _owner_only(home, None, quiet=True)  # what the start made (an older home's console host key)
    for name, port in bound.items():
        listener = next(lst for lst in service.settings.listeners if lst.name == name)
        print(f"LEMS switch listening: {name} on {args.host or listener.host}:{port} ({listener.framing} framing)",
              flush=True)
    if service.console is not None:
        console_host = args.host or service.settings.console_host
        print(f"administrators' console (SSH): {console_host}:{service.console.port}"
              f" (lems console --home {home})", flush=True)
    if service.dealer_url is not None:
        print(f"dealer interface (HTTPS): {service.dealer_host}:{service.dealer_port} "
              f"({service.dealer_url}/fics/ portal, {service.dealer_url}/fics/v1/ API)", flush=True)
    clock_line = _clock_warning(service)
    if clock_line:
        print(clock_line, flush=True)
    print(f"home {home}; log {service.settings.log_path}; stop with Ctrl-C", flush=True)
    reactor.addSystemEventTrigger("before", "shutdown", service.stop)
    reactor.run()
    print("LEMS switch stopped", flush=True)
    return EXIT_OK


def _clock_warning(service: object) -> "str | None":
    """One line when the switch does not run on the system clock (PROTOCOL.md 8)."""
    from lems.base.clock import EmulatedClock, span

    clock = service.clock  # type: ignore[attr-defined]
    if not isinstance(clock, EmulatedClock):
        return None
    now = f"{clock.now():%Y-%m-%d %H:%M:%S} UTC"
    ahead = clock.ahead()
    if clock.adjustable:
        where = f", {span(ahead)} ahead of the system clock" if ahead else ""
        return (f"WARNING: the switch clock is adjustable ([clock] adjustable = true): test systems only; "
                f"switch time {now}{where}")
    return (f"WARNING: switch time {now} is {span(ahead)} ahead of the system clock (advanced while [clock] was "
            f"adjustable; it stays ahead: time never moves backwards)")


def _owner_only(home: Path, capture: "Path | None", quiet: bool = False) -> None:
    """var/ holds switch state: owner-only (SECURITY.md); an older, more open home is tightened, in one line."""
    from lems.base.private import private_dir, private_file, tighten

    var = Path(home) / "var"
    changed = tighten(var)
    if changed and not quiet:
        print(f"var/ was readable by others: {len(changed)} files and directories under {var} set to owner-only "
              f"(files 0600, directories 0700)", flush=True)
    if capture is not None and var.resolve() in capture.resolve().parents:
        private_dir(capture.parent)
        private_file(capture)  # the capture holds traffic; its writer keeps this mode
