"""What the administrators' console does, without the console.

Every operation takes the running ``Switch`` (and, for the connection count,
the ``Service``) and runs in the reactor thread like the rest of the switch, so
nothing here locks.  Views return plain values; actions change the switch and
the home and raise ``AdminError`` with a reason when they refuse.  The console's
shell (lems.admin.shell) only parses lines and prints these; tests call them
directly.

* revoke / suspend / reinstate: the new status is written to terminals/ through
  the Registry (atomic file replacement), the switch takes the new Registry, and
  the live sessions it no longer admits are closed at once.
* reload: catalogues, registry and routes are all built first; if any of them
  fails the running configuration is kept untouched.
* advance_clock: switch time forward on an adjustable home (PROTOCOL.md 8); the
  new offset is kept in the store and journaled before the clock moves, then the
  switch's timers run at once.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Optional

import attrs

from lems.base.clock import ClockError, EmulatedClock, span, stamp
from lems.base.registry import Agency, Registry, Terminal
from lems.core.build import load_router
from lems.store import journal as journal_mod
from lems.store import switch_time
from lems.traffic.delivery import PRIORITY_STATUS, QueueFull
from lems.wire.codec import Codec

if TYPE_CHECKING:  # pragma: no cover
    from lems.core.switch import Switch

# The window for "messages per second" in status.
RATE_WINDOW_SECONDS = 60
AGREEMENT_HORIZON_DAYS = 30
STATUS_FOR = {"revoke": "revoked", "suspend": "suspended", "reinstate": "active"}


class AdminError(Exception):
    """An operation refused; the message says why in the console's words."""


@attrs.frozen
class Status:
    name: str
    uptime: float
    connections: int
    sessions: int
    signed_on: int
    rate_in: float
    rate_out: float
    locked: tuple[str, ...]    # registered operators locked after failed sign-ons
    depths: dict[str, int]
    open_hits: int
    throttled: int = 0         # other lockout keys: unknown ids, or an operator named with another ORI


@attrs.frozen
class SessionView:
    terminal: str
    ori: str
    type: str
    state: str
    operator: str
    remote: str
    idle: float


@attrs.frozen
class Change:
    """The outcome of revoke, suspend or reinstate."""

    kind: str          # "terminal" or "agency"
    target: str
    before: str
    after: str
    closed: tuple[str, ...]  # terminals whose live session was closed


@attrs.frozen
class Reloaded:
    keys: int
    agencies: int
    terminals: int
    operators: int
    closed: tuple[str, ...]


@attrs.frozen
class ClockView:
    """The console's ``clock``: switch time and how far it is ahead of the system clock."""

    now: dt.datetime
    local: dt.datetime            # in the switch's time zone
    ahead: Optional[dt.timedelta]  # None: the switch runs on the system clock
    adjustable: bool
    advances: int


@attrs.frozen
class Advanced:
    """The outcome of ``clock advance``."""

    before: dt.datetime
    after: dt.datetime
    ahead: dt.timedelta


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


NOT_ADJUSTABLE_HINT = "(A TEST SYSTEM SETS [clock] adjustable = true IN conf/lems.toml)"


class _Delivery:
    """The switch's queues and hit confirmation (lems.traffic.delivery), as the console uses them.

    The one place here that reaches into delivery: when the core moves it, only
    this class changes.
    """

    def __init__(self, switch: "Switch") -> None:
        self.switch = switch
        self.delivery = switch.router.delivery

    def depths(self) -> dict[str, int]:
        return self.delivery.depths()

    def queue_for(self, ori: str) -> list[Any]:
        return self.delivery.queue_for(ori)

    def open_hits(self) -> list[Any]:
        return self.switch.router.hits.open_hits()

    def send_status(self, terminal_id: str, body: str) -> str:
        """Through the queues, so an ack terminal gets it again until it acknowledges."""
        try:
            return self.switch.send_to_terminal(terminal_id, "S", body, PRIORITY_STATUS)
        except QueueFull:
            return "queue full"


class Admin:
    def __init__(self, switch: "Switch", service: Any = None) -> None:
        self.switch = switch
        self.service = service

    # -- views ---------------------------------------------------------------------------

    def status(self) -> Status:
        sw = self.switch
        sessions = list(sw.hub.sessions.values())
        delivery = _Delivery(sw)
        return Status(
            name=sw.settings.name, uptime=sw.clock.monotonic() - sw.started,
            connections=self.connections(), sessions=len(sessions),
            signed_on=sum(1 for s in sessions if s.operator is not None),
            rate_in=self.rate("in"), rate_out=self.rate("out"), locked=tuple(self.locked()),
            depths=delivery.depths(), open_hits=len(delivery.open_hits()), throttled=len(self.throttled()))

    def connections(self) -> int:
        """Open terminal connections, identified or not (the service knows the sockets)."""
        factories = getattr(self.service, "factories", None)
        if factories is None:
            return len(self.switch.hub.sessions)
        return sum(len(f.protocols) for f in factories)

    def rate(self, kind: str) -> float:
        """Frames per second of one direction over the last minute, from the journal's time index."""
        since = stamp(self.switch.clock.now() - dt.timedelta(seconds=RATE_WINDOW_SECONDS))
        count = self.switch.store.conn.execute("SELECT COUNT(*) FROM journal WHERE ts >= ? AND kind = ?",
                                               (since, kind)).fetchone()[0]
        return count / RATE_WINDOW_SECONDS

    def sessions(self) -> list[SessionView]:
        now = self.switch.clock.monotonic()
        return [SessionView(s.terminal.id, s.terminal.ori, s.terminal.type, s.state.value,
                            s.operator.id if s.operator else "", s.remote, max(0.0, now - s.last_activity))
                for _, s in sorted(self.switch.hub.sessions.items())]

    def terminals(self) -> list[tuple[Terminal, bool]]:
        """Every registered terminal and whether it is connected now."""
        live = self.switch.hub.sessions
        return [(t, t.id in live) for _, t in sorted(self.switch.registry.terminals.items())]

    def agencies(self) -> list[tuple[Agency, Optional[str]]]:
        """Every agency with the reason its agreement is not in force (None when it is)."""
        policy = self.switch.policy
        return [(a, policy.agreement_problem(a)) for _, a in sorted(self.switch.registry.agencies.items())]

    def agreements_due(self, days: int = AGREEMENT_HORIZON_DAYS) -> list[tuple[Agency, str]]:
        today = self.switch.policy.today()
        return [(a, line) for _, a in sorted(self.switch.registry.agencies.items())
                for line in self.switch.policy.agreement_due(a, today, days)]

    def queue(self, ori: str) -> list[Any]:
        ori = ori.upper()
        if ori not in self.switch.registry.agencies:
            raise AdminError(f"NO AGENCY {ori}")
        return _Delivery(self.switch).queue_for(ori)

    def open_hits(self) -> list[Any]:
        return _Delivery(self.switch).open_hits()

    def locked(self) -> list[str]:
        """Registered operators locked after failed sign-ons for their own agency."""
        operators = self.switch.registry.operators
        return sorted(k for k in self.switch.locked_operators() if k in operators)

    def throttled(self) -> list[str]:
        """The other locked sign-on keys, ``<id>@<ORI>``: an unknown id, or an operator named with another ORI.

        They lock nobody real (PROTOCOL.md 4.6, ICD section 4.6) and are not listed as locked operators.
        """
        operators = self.switch.registry.operators
        return sorted(k for k in self.switch.locked_operators() if k not in operators)

    def audit(self, limit: int = 20, **filters: Any) -> list[journal_mod.Record]:
        try:
            return journal_mod.search(self.switch.store.conn, limit=limit, **filters)
        except ValueError as exc:  # a bad since/until
            raise AdminError(str(exc).upper()) from None

    # -- actions ------------------------------------------------------------------------------

    def set_status(self, action: str, target: str, kind: Optional[str] = None) -> Change:
        """revoke, suspend or reinstate an agency (by ORI) or a terminal (by id); ``kind`` says which it must be."""
        status = STATUS_FOR[action]
        target = target.upper()
        registry = self.switch.registry
        if kind == "agency" and target not in registry.agencies:
            raise AdminError(f"NO AGENCY {target}")
        if kind == "terminal" and target not in registry.terminals:
            raise AdminError(f"NO TERMINAL {target}")
        if target in registry.terminals and kind != "agency":
            old = registry.terminals[target]
            kind, before = "terminal", old.status
            new_registry = registry.with_terminal(attrs.evolve(old, status=status)) if before != status else registry
        elif target in registry.agencies:
            old_agency = registry.agencies[target]
            kind, before = "agency", old_agency.status
            new_registry = (registry.with_agency(attrs.evolve(old_agency, status=status))
                            if before != status else registry)
        else:
            raise AdminError(f"NO AGENCY OR TERMINAL {target}")
        self.switch.registry = new_registry
        closed: tuple[str, ...] = ()
        if status != "active":
            victims = [s for s in self.switch.hub.sessions.values()
                       if (s.terminal.id if kind == "terminal" else s.terminal.ori) == target]
            notice = f"{kind.upper()} {target} {status.upper()} BY THE CONTROL TERMINAL AGENCY - DISCONNECTED"
            closed = self._close(victims, f"{kind} {status} by console", notice)
        return Change(kind, target, before, status, closed)

    def unlock(self, operator_id: str, by: str) -> bool:
        """Release a locked operator; False when it was not locked."""
        operator_id = operator_id.upper()
        if operator_id not in self.switch.registry.operators and operator_id not in self.switch.locked_operators():
            raise AdminError(f"NO OPERATOR {operator_id}")
        return self.switch.unlock_operator(operator_id, by=by)

    def send_status_message(self, text: str) -> list[tuple[str, str]]:
        """An SM from the control terminal agency to every connected terminal: (terminal, outcome) pairs."""
        text = text.strip()
        if not text:
            raise AdminError("NOTHING TO SEND")
        control = next((a.ori for _, a in sorted(self.switch.registry.agencies.items()) if a.control), None)
        if control is None:
            raise AdminError("NO CONTROL TERMINAL AGENCY IN THE REGISTRY")
        body = f"SM.{control}.ALL\nTXT\n{text}"
        delivery = _Delivery(self.switch)
        out = []
        for terminal_id in sorted(self.switch.hub.sessions):
            if terminal_id in self.switch.registry.terminals:
                out.append((terminal_id, delivery.send_status(terminal_id, body)))
            else:
                out.append((terminal_id, "delivered" if self.switch.notify(terminal_id, "S", body) else "gone"))
        return out

    def reload(self) -> Reloaded:
        """Swap in catalogues, registry and routes read afresh from the home; all or nothing."""
        sw = self.switch
        home = sw.settings.home
        try:
            codec = Codec.from_dir(home / "formats")
            registry = Registry.load(home / "terminals")
            router = load_router(home, sw.settings, codec, sw.store, sw.clock, sw.trail)
        except Exception as exc:  # any failure, whatever its kind, must leave the running switch as it was
            # The console prints "REFUSED: " before this: the reason once, in the file's own words.
            reason = str(exc).strip() or "a file of formats/, terminals/ or routes/ could not be read"
            raise AdminError(f"RUNNING CONFIGURATION KEPT: {reason}") from None
        sw.replace(codec, sw.registry, router)
        # A terminal the new registry no longer admits (revoked, new certificate, agency suspended) goes now.
        closed = sw.adopt_registry(registry, "not admitted after reload",
                                   "TERMINAL NO LONGER ADMITTED AFTER RELOAD - DISCONNECTED")
        return Reloaded(len(codec.keys), len(registry.agencies), len(registry.terminals), len(registry.operators),
                        closed)

    def clock(self) -> ClockView:
        sw = self.switch
        clock = sw.clock
        now = clock.now()
        emulated = isinstance(clock, EmulatedClock)
        saved = switch_time.load(sw.store.conn) if emulated else None
        return ClockView(now, now.astimezone(sw.settings.timezone), clock.ahead() if emulated else None,
                         emulated and clock.adjustable, saved.advances if saved else 0)

    def advance_clock(self, by: dt.timedelta, who: str) -> Advanced:
        """Move switch time forward by ``by``; journaled and kept before it moves, then the timers run."""
        sw = self.switch
        clock = sw.clock
        if not isinstance(clock, EmulatedClock) or not clock.adjustable:
            raise AdminError(f"THE CLOCK IS NOT ADJUSTABLE ON THIS SWITCH {NOT_ADJUSTABLE_HINT}")
        try:
            clock.check(by)
        except ClockError as exc:
            raise AdminError(str(exc)) from None
        before = clock.now()
        after = before + by
        offset = clock.offset + by.total_seconds()
        conn = sw.store.write()
        switch_time.save(conn, offset, after)
        sw.audit("admin", None, event="CLOCK ADVANCE", operator=who.upper(),
                 text=(f"SWITCH TIME ADVANCED {span(by)} FROM {_iso(before)} TO {_iso(after)}, "
                       f"{span(clock.ahead() + by)} AHEAD OF THE SYSTEM CLOCK"))
        sw.store.commit()  # kept before anything runs on the new time: a restart resumes there
        clock.advance(by)
        sw.tick()  # what fell due in the jump happens now, not at the next one-second tick
        return Advanced(before, after, clock.ahead())

    def _close(self, sessions: list[Any], reason: str, notice: str) -> tuple[str, ...]:
        closed = []
        for session in sessions:
            terminal_id = session.terminal.id
            self.switch.hub.write(terminal_id, session.close(reason, ("S", notice)))
            closed.append(terminal_id)
        return tuple(sorted(closed))
