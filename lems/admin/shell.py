"""The administrators' console's command shell, without I/O: a line in, a ``Reply`` out.

``Console`` parses one line, runs it through ``lems.admin.operations``, writes
it to the audit journal (kind ``admin``, event ``CONSOLE <COMMAND>``, the line as
text, the administrator as operator), commits, and returns the lines to show.
It also completes a half-typed line.  The SSH server (lems.net.console_server)
puts a terminal in front of it; the tests call it directly.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Optional

import attrs
import structlog

from lems.admin.operations import Admin, AdminError
from lems.base.clock import UTC, parse_advance, span
from lems.wire import secrets

log = structlog.get_logger("lems.admin.shell")

AUDIT_DEFAULT, AUDIT_MAX = 20, 1000


@attrs.frozen
class Reply:
    lines: list[str]
    ok: bool = True
    close: bool = False


@attrs.frozen
class Command:
    usage: str
    help: str


COMMANDS: dict[str, Command] = {
    "help": Command("help [COMMAND]", "list the commands, or explain one"),
    "status": Command("status", "uptime, connections, messages per second, locked operators, queues, open hits"),
    "sessions": Command("sessions", "live terminal sessions"),
    "terminals": Command("terminals", "registered terminals: agency, type, status, connected"),
    "agencies": Command("agencies", "agencies: type, status, user agreement"),
    "agreements": Command("agreements due [DAYS]", "user agreement reviews and lapses in the next 30 days (or DAYS)"),
    "queue": Command("queue ORI", "traffic waiting for the terminals of an agency"),
    "hits": Command("hits", "open hit confirmation requests"),
    "locked": Command("locked", "operators locked after failed sign-ons"),
    "revoke": Command("revoke [agency|terminal] ID", "revoke an agency or terminal; its live sessions are closed now"),
    "suspend": Command("suspend [agency|terminal] ID", "suspend an agency or terminal; its live sessions are closed now"),
    "reinstate": Command("reinstate [agency|terminal] ID", "make a revoked or suspended agency or terminal active again"),
    "unlock": Command("unlock OPERATOR", "release an operator locked after failed sign-ons"),
    "send": Command("send SM TEXT", "status message from the control terminal agency to every connected terminal"),
    "reload": Command("reload", ("re-read formats/, terminals/ and routes/; refused, keeping the running "
                                 "configuration, when any of them is broken")),
    "clock": Command("clock [advance <N>m|h|d]",
                     "switch time; on a test system, move it forward N minutes, hours or days (at most 400 days)"),
    "audit": Command(("audit [ori ORI] [terminal ID] [operator ID] [mke KEY] [kind KIND] [text WORD] "
                      "[since WHEN] [until WHEN] [last N]"),
                     f"search the audit journal: the newest N records (default {AUDIT_DEFAULT}), oldest first"),
    "quit": Command("quit", "close the console (also: exit, Ctrl-D)"),
}
ALIASES = {"exit": "quit", "?": "help"}

Handler = Callable[["Console", list[str], str, dict], Reply]


def command(name: str, usage: str, help: str) -> Callable[[Handler], Handler]:
    """Register a console command from a feature's own module (``lems.admin.*_console``).

    The decorated function is called as ``handler(console, args, line, target)``
    and returns a ``Reply``; it becomes ``Console.do_<name>``, listed by ``help``,
    completed, journaled and committed like the built-in commands.
    """
    def register(handler: Handler) -> Handler:
        if name in COMMANDS and name != "quit":
            raise ValueError(f"console command {name!r} is registered twice")
        COMMANDS[name] = Command(usage, help)
        COMMANDS["quit"] = COMMANDS.pop("quit")  # quit stays last in help
        setattr(Console, f"do_{name}", handler)
        return handler
    return register
STATUS_KINDS = ("agency", "terminal")  # revoke|suspend|reinstate [agency|terminal] ID
AUDIT_FILTERS = ("ori", "terminal", "operator", "mke", "kind", "text", "since", "until")


def _did_you_mean(word: str) -> str:
    """", did you mean 'status'?" for a mistyped command, or nothing when no command is near."""
    near = difflib.get_close_matches(word.lower(), [*COMMANDS, *(a for a in ALIASES if a.isalpha())], n=1)
    return f", did you mean {ALIASES.get(near[0], near[0])!r}?" if near else ""


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def _utc(moment: Any) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _first_line(text: Optional[str], width: int = 60) -> str:
    line = (text or "").split("\n", 1)[0]
    return line if len(line) <= width else line[:width - 3] + "..."


class Console:
    """One administrator's shell: a line in, a Reply out, the line audited."""

    def __init__(self, admin: Admin, who: str = "admin", remote: str = "") -> None:
        self.admin = admin
        self.who = who
        self.remote = remote

    @property
    def switch(self) -> Any:
        return self.admin.switch

    def execute(self, line: str) -> Reply:
        words = line.split()
        if not words:
            return Reply([])
        name = ALIASES.get(words[0].lower(), words[0].lower())
        handler = getattr(self, f"do_{name}", None) if name in COMMANDS else None
        target: dict[str, str] = {}
        try:
            if handler is None:
                reply = Reply([f"unknown command {words[0]!r}{_did_you_mean(words[0])}; type help"], ok=False)
            else:
                reply = handler(words[1:], line, target)
        except AdminError as exc:
            reply = Reply([f"REFUSED: {exc}"], ok=False)
        except Exception as exc:  # a bug in one command must not end the administrator's session
            log.exception("console command failed", command=line)
            reply = Reply([f"ERROR: {type(exc).__name__}: {exc}"], ok=False)
        event = f"CONSOLE {name.upper()}" if handler is not None else "CONSOLE UNKNOWN COMMAND"
        self.switch.audit("admin", None, event=event, text=line.strip(), operator=self.who.upper(),
                          remote=self.remote or None, outcome="OK" if reply.ok else "REFUSED", **target)
        self.switch.store.commit()
        return reply

    # -- completion --------------------------------------------------------------------------

    def complete(self, before: str) -> tuple[str, list[str]]:
        """The word being typed and what it can become."""
        words = before.split()
        if before and not before[-1].isspace():
            word, done = words[-1], words[:-1]
        else:
            word, done = "", words
        registry = self.switch.registry
        if not done:
            options = list(COMMANDS)
        else:
            command = ALIASES.get(done[0].lower(), done[0].lower())
            previous = done[-1].lower()
            options = []
            if len(done) == 1:
                options = self._first_arguments(command)
            elif len(done) == 2 and command in ("revoke", "suspend", "reinstate") and previous in STATUS_KINDS:
                options = list(registry.agencies if previous == "agency" else registry.terminals)
            elif command == "audit" and len(done) % 2 == 1:
                options = [*AUDIT_FILTERS, "last"]
            elif command == "audit":
                options = {"ori": list(registry.agencies), "terminal": list(registry.terminals),
                           "operator": list(registry.operators), "kind": ["in", "out", "security", "admin"]
                           }.get(previous, [])
        return word, sorted(o for o in options if o.lower().startswith(word.lower()))

    def _first_arguments(self, command: str) -> list[str]:
        registry = self.switch.registry
        if command in ("revoke", "suspend", "reinstate"):
            return [*STATUS_KINDS, *registry.agencies, *registry.terminals]
        if command == "unlock":
            return sorted({*self.switch.locked_operators(), *registry.operators})
        if command == "clock":
            return ["advance"]
        return {"help": list(COMMANDS), "agreements": ["due"], "send": ["SM"], "audit": [*AUDIT_FILTERS, "last"],
                "queue": list(registry.agencies)}.get(command, [])

    # -- views -------------------------------------------------------------------------------

    def do_help(self, args: list[str], line: str, target: dict) -> Reply:
        if args:
            name = ALIASES.get(args[0].lower(), args[0].lower())
            if name not in COMMANDS:
                return Reply([f"no command {args[0]!r}{_did_you_mean(args[0])}"], ok=False)
            return Reply([COMMANDS[name].usage, f"  {COMMANDS[name].help}"])
        width = max(len(c.usage) for c in COMMANDS.values() if len(c.usage) < 30)
        lines = []
        for c in COMMANDS.values():
            if len(c.usage) <= width:
                lines.append(f"{c.usage:<{width}}  {c.help}")
            else:  # too long to share a line with its help
                lines += [c.usage, f"{'':<{width}}  {c.help}"]
        lines.append("TAB completes commands and identifiers; up and down arrows recall earlier lines.")
        return Reply(lines)

    def do_status(self, args: list[str], line: str, target: dict) -> Reply:
        s = self.admin.status()
        lines = [f"{s.name}  up {_duration(s.uptime)}",
                 f"connections   {s.connections} ({s.sessions} sessions, {s.signed_on} signed on)",
                 f"messages/s    {s.rate_in:.2f} in  {s.rate_out:.2f} out  (last 60 s)",
                 f"locked        {' '.join(s.locked) if s.locked else 'none'}",
                 *([f"throttled     {s.throttled} sign-on id(s) that are no registered operator of the ORI "
                    "they named (`locked` names them)"] if s.throttled else []),
                 f"queues        {'  '.join(f'{t} {n}' for t, n in s.depths.items()) or 'empty'}",
                 f"open hits     {s.open_hits}"]
        return Reply(lines)

    def do_sessions(self, args: list[str], line: str, target: dict) -> Reply:
        rows = self.admin.sessions()
        lines = [f"{'TERMINAL':<9}{'ORI':<10}{'TYPE':<13}{'STATE':<11}{'OPERATOR':<9} {'IDLE':>8}  REMOTE"]
        lines += [f"{r.terminal:<9}{r.ori:<10}{r.type:<13}{r.state:<11}{r.operator or '-':<9} "
                  f"{_duration(r.idle)[3:]:>8}  {r.remote}" for r in rows]
        lines.append(f"{len(rows)} session(s)")
        return Reply(lines)

    def do_terminals(self, args: list[str], line: str, target: dict) -> Reply:
        lines = [f"{'TERMINAL':<9}{'ORI':<10}{'TYPE':<13}{'STATUS':<10}{'ACK':<4}CONNECTED"]
        lines += [f"{t.id:<9}{t.ori:<10}{t.type:<13}{t.status:<10}{'yes' if t.ack else 'no':<4}"
                  f"{'yes' if live else 'no'}" for t, live in self.admin.terminals()]
        return Reply(lines)

    def do_agencies(self, args: list[str], line: str, target: dict) -> Reply:
        lines = [f"{'ORI':<10}{'TYPE':<21}{'STATUS':<10}{'AGREEMENT':<10}NAME"]
        for a, problem in self.admin.agencies():
            lines.append(f"{a.ori:<10}{a.type:<21}{a.status:<10}{'in force' if problem is None else 'NOT':<10}"
                         f"{a.name}{' (control terminal)' if a.control else ''}")
            if problem:
                lines.append(f"{'':<10}{problem}")
        return Reply(lines)

    def do_agreements(self, args: list[str], line: str, target: dict) -> Reply:
        if not args or args[0].lower() != "due" or len(args) > 2 or (len(args) == 2 and not args[1].isdigit()):
            return Reply([f"usage: {COMMANDS['agreements'].usage}"], ok=False)
        days = int(args[1]) if len(args) == 2 else 30
        due = self.admin.agreements_due(days)
        lines = [f"{a.ori}  {a.name}: {what}" for a, what in due]
        return Reply(lines or [f"no user agreement review or lapse in the next {days} days"])

    def do_queue(self, args: list[str], line: str, target: dict) -> Reply:
        if len(args) != 1:
            return Reply([f"usage: {COMMANDS['queue'].usage}"], ok=False)
        frames = self.admin.queue(args[0])
        target["ori"] = args[0].upper()
        lines = [f"{'TERMINAL':<9}{'PRI':<4}{'CLS':<4}{'QUEUED':<17}{'ACK':<10}TEXT"]
        lines += [f"{f.terminal:<9}{f.priority:<4}{f.cls:<4}{f.queued:<17}"
                  f"{f'OSN/{f.osn:05d}' if f.awaiting_ack else '-':<10}{_first_line(f.text, 40)}" for f in frames]
        lines.append(f"{len(frames)} frame(s) waiting for {args[0].upper()}")
        return Reply(lines)

    def do_hits(self, args: list[str], line: str, target: dict) -> Reply:
        hits = self.admin.open_hits()
        lines = [f"{'ID':>5} {'NIC':<11}{'REQUESTER':<10}{'ENTERING':<10}RNO PRI {'STATE':<8}DUE"]
        lines += [f"{h.id:>5} {h.nic:<11}{h.requester:<10}{h.entering:<10}{h.rno:<4}{h.priority:<4}"
                  f"{h.state:<8}{h.due}" for h in hits]
        lines.append(f"{len(hits)} open hit confirmation request(s)")
        return Reply(lines)

    def do_locked(self, args: list[str], line: str, target: dict) -> Reply:
        locked = self.admin.locked()
        lines = [" ".join(locked) if locked else "no operator is locked"]
        throttled = self.admin.throttled()
        if throttled:
            lines.append(f"throttled, not registered operators of the ORI named: {' '.join(throttled)}")
        return Reply(lines)

    def do_audit(self, args: list[str], line: str, target: dict) -> Reply:
        filters: dict[str, str] = {}
        limit = AUDIT_DEFAULT
        if len(args) % 2:
            return Reply([f"usage: {COMMANDS['audit'].usage}"], ok=False)
        for key, value in zip(args[::2], args[1::2], strict=True):
            key = key.lower()
            if key == "last" and value.isdigit():
                limit = min(int(value), AUDIT_MAX)
            elif key in AUDIT_FILTERS:
                filters[key] = value.lower() if key == "kind" else value
            else:
                return Reply([f"usage: {COMMANDS['audit'].usage}"], ok=False)
        # Shown (and text-searched) masked: PWD/* and OTP/*, journals from before the masking too.
        records = self.admin.audit(limit=limit, redact=secrets.mask, **filters)
        lines = [f"{r.seq:>7} {r.ts} {r.kind:<8} {r.terminal or '-':<8} {r.ori or '-':<9} {r.operator or '-':<10} "
                 f"{r.event or ' '.join(x for x in (r.cls, r.mke) if x) or '-'}"
                 f"{' ' + r.outcome if r.outcome else ''}  {_first_line(r.text)}".rstrip() for r in records]
        lines.append(f"{len(records)} record(s)")
        return Reply(lines)

    # -- actions -----------------------------------------------------------------------------

    def _status_change(self, action: str, args: list[str], target: dict) -> Reply:
        kind = args[0].lower() if len(args) == 2 else None
        if len(args) not in (1, 2) or (kind is not None and kind not in STATUS_KINDS):
            return Reply([f"usage: {COMMANDS[action].usage}"], ok=False)
        change = self.admin.set_status(action, args[-1], kind)
        target["terminal" if change.kind == "terminal" else "ori"] = change.target
        lines = [f"{change.kind} {change.target} {change.after} (was {change.before})"]
        if change.closed:
            lines.append(f"closed live session(s): {' '.join(change.closed)}")
        return Reply(lines)

    def do_revoke(self, args: list[str], line: str, target: dict) -> Reply:
        return self._status_change("revoke", args, target)

    def do_suspend(self, args: list[str], line: str, target: dict) -> Reply:
        return self._status_change("suspend", args, target)

    def do_reinstate(self, args: list[str], line: str, target: dict) -> Reply:
        return self._status_change("reinstate", args, target)

    def do_unlock(self, args: list[str], line: str, target: dict) -> Reply:
        if len(args) != 1:
            return Reply([f"usage: {COMMANDS['unlock'].usage}"], ok=False)
        was_locked = self.admin.unlock(args[0], by=self.who)
        operator = args[0].upper()
        return Reply([f"operator {operator} unlocked" if was_locked else f"operator {operator} was not locked"])

    def do_send(self, args: list[str], line: str, target: dict) -> Reply:
        if len(args) < 2 or args[0].upper() != "SM":
            return Reply([f"usage: {COMMANDS['send'].usage}"], ok=False)
        # The text is free text: keep its case and spacing as typed.
        text = line.split(None, 2)[2]
        outcomes = self.admin.send_status_message(text)
        if not outcomes:
            return Reply(["no terminal is connected; nothing sent"])
        return Reply([f"SM sent to {len(outcomes)} connected terminal(s)",
                      *(f"{t} {outcome}" for t, outcome in outcomes)])

    def do_reload(self, args: list[str], line: str, target: dict) -> Reply:
        r = self.admin.reload()
        lines = [(f"reloaded: {r.keys} message keys, {r.agencies} agencies, {r.terminals} terminals, "
                  f"{r.operators} operators, routes")]
        if r.closed:
            lines.append(f"closed live session(s) no longer admitted: {' '.join(r.closed)}")
        return Reply(lines)

    def do_clock(self, args: list[str], line: str, target: dict) -> Reply:
        usage = Reply([f"usage: {COMMANDS['clock'].usage}"], ok=False)
        if args and (len(args) != 2 or args[0].lower() != "advance"):
            return usage
        if args:
            try:
                by = parse_advance(args[1])
            except ValueError:
                return usage
            done = self.admin.advance_clock(by, who=self.who)
            return Reply([f"switch time advanced {span(by)}: {_utc(done.before)} -> {_utc(done.after)}",
                          f"now {span(done.ahead)} ahead of the system clock; timers due by then have run"])
        view = self.admin.clock()
        lines = [f"switch time  {_utc(view.now)}  ({view.local:%Y-%m-%d %H:%M:%S %Z} local)"]
        if view.ahead is None:
            lines.append("the system clock; the clock is not adjustable on this switch")
        elif not view.ahead:
            lines.append("offset       none: the system clock's time until `clock advance <N>m|h|d`")
        else:
            lines.append(f"offset       {span(view.ahead)} ahead of the system clock "
                         f"({view.advances} advance(s) kept in the store)")
            if not view.adjustable:
                lines.append("not adjustable on this switch any more: the offset stays, time never moves backwards")
        return Reply(lines)

    def do_quit(self, args: list[str], line: str, target: dict) -> Reply:
        return Reply(["bye"], close=True)


# Commands of features that live in modules of their own; each registers itself with ``command``.
from lems.admin import schedule_console  # noqa: E402,F401
from lems.admin import fics_console  # noqa: E402,F401
from lems.admin import validation_console  # noqa: E402,F401
