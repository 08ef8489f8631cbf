"""The switch: identify, sign on, and run each input through the chain

    frame -> session admits it -> parse -> authorise -> route (a step) -> deliver notices -> reply

Sans-IO like the session: it holds the registry, the catalogues, the router,
the store and the audit trail, and reaches live sessions only through the
``Hub`` (which the link fills).  The link hands it every framing event with
the session it belongs to (``receive``) and carries out the actions it
returns.  Nothing here imports Twisted.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import re
import uuid
from typing import Any, Callable, Optional, Sequence

import attrs
import structlog

from lems.base import credentials
from lems.base.conf import Settings
from lems.base.errors import Reject
from lems.base.events import Action, CheckPassword, Note, Notice, Send, Transaction
from lems.base.registry import Operator, Registry, RegistryError, Terminal
from lems.core.policy import Policy
from lems.core.router import Router
from lems.core.schedule import Scheduler
from lems.core.session import PendingSignOn, Session, Step
from lems.store import Retention, Store
from lems.store import training as training_store
from lems.traffic.delivery import QueueFull
from lems.wire import framing, secrets
from lems.wire.codec import Codec
from lems.wire.headers import INPUT_HEADER_LEN, Input
from lems.wire.message import Message

# Access refusals (PROTOCOL.md 5.6) are security events as well as replies.
AUDITED_REFUSALS = frozenset({".21.", ".22.", ".23.", ".24.", ".25."})

class Hub:
    """The live sessions by terminal id; the link registers a writer for each."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.writers: dict[str, Callable[[list[Action]], None]] = {}
        # (due, n, session): when each session's inactivity rules may next act (Session.due_at),
        # so a tick looks at the sessions that are due, not at ten thousand idle ones.
        self.timers: list[tuple[float, int, Session]] = []
        self._timer_order = itertools.count()

    def wake_at(self, session: Session, due: float) -> None:
        heapq.heappush(self.timers, (due, next(self._timer_order), session))

    def attach(self, session: Session, writer: Callable[[list[Action]], None]) -> None:
        """Register a session; an older session of the same terminal is closed (one per terminal)."""
        terminal_id = session.terminal.id
        old, old_writer = self.sessions.get(terminal_id), self.writers.get(terminal_id)
        self.sessions[terminal_id] = session
        self.writers[terminal_id] = writer
        self.wake_at(session, float("-inf"))  # looked at on the next tick, then when it is due
        if old is not None and old_writer is not None:
            old_writer(old.close("replaced by a new connection",
                                 ("S", "SESSION REPLACED BY A NEW CONNECTION FROM THIS TERMINAL")))

    def detach(self, session: Session) -> None:
        if self.sessions.get(session.terminal.id) is session:
            del self.sessions[session.terminal.id]
            del self.writers[session.terminal.id]

    def live(self, terminal_id: str) -> Optional[Session]:
        """The terminal's session when it is connected and not closing."""
        session = self.sessions.get(terminal_id)
        return session if session is not None and not session.closed else None

    def connected(self, terminal_id: str) -> bool:
        return self.live(terminal_id) is not None

    def write(self, terminal_id: str, actions: list[Action]) -> None:
        writer = self.writers.get(terminal_id)
        if writer is not None:
            writer(actions)


class Switch:
    def __init__(self, settings: Settings, registry: Registry, codec: Codec, router: Router,
                 store: Store, clock: Any, log: Any = None) -> None:
        self.settings = settings
        self.registry = registry
        self.codec = codec
        self.router = router
        self.store = store
        self.clock = clock
        self.log = log or structlog.get_logger("lems")
        credentials.set_target_cost(2 ** settings.session.password_cost)
        # One writer of the journal: the router's steps and the sessions share it.
        self.trail = router.routing.trail
        self.journal = self.trail.journal
        self.policy = Policy(settings, clock, lambda operator_id: training_store.first_signon(store.conn, operator_id))
        # [audit] retention_days: the journal pruned once a switch-clock day, never below the floor.
        self.retention = Retention(store, settings.retention_days, clock, journal=self.journal)
        self.hub = Hub()
        # Scheduled work on switch time (NICS transmission, validation lists, ...): features add jobs.
        self.schedule = Scheduler(store, clock)
        self.started = clock.monotonic()
        # Registry changes announced in the store up to here are in the registry just loaded.
        self.registry_seen = store.registry_change_seq()

    @property
    def counters(self) -> dict[str, int]:
        return self.trail.counters

    # -- journal ----------------------------------------------------------------

    def audit(self, kind: str, session: Optional[Session] = None, **fields: Any) -> int:
        """One journal record, inside the current turn's transaction."""
        return self.trail.record(kind, session, **fields)

    # -- identification (PROTOCOL.md 1) -------------------------------------------

    def identify(self, fingerprint: Optional[str]) -> Terminal:
        """The registered terminal a certificate belongs to, or a .21./.25. reject."""
        self.refresh_registry()
        terminal = self.registry.terminal_for(fingerprint or "")
        if terminal is None:
            raise Reject(".21.", "CERTIFICATE NOT REGISTERED TO ANY TERMINAL")
        if terminal.status != "active":
            raise Reject(".21.", f"TERMINAL {terminal.id} IS {terminal.status.upper()}")
        agency = self.registry.agency(terminal.ori)
        if agency is None or agency.status in ("revoked", "suspended"):
            status = agency.status.upper() if agency else "UNKNOWN"
            raise Reject(".21.", f"AGENCY {terminal.ori} IS {status}")
        self.policy.agreement_in_force(agency)
        return terminal

    # -- registry changes (PROTOCOL.md 8) -------------------------------------------

    @staticmethod
    def not_admitted(session: Session, registry: Registry) -> Optional[str]:
        """Why ``registry`` no longer admits a live session (None when it does)."""
        current = registry.terminals.get(session.terminal.id)
        agency = registry.agency(session.terminal.ori)
        if current is None:
            return f"TERMINAL {session.terminal.id} IS NO LONGER REGISTERED"
        if current.fingerprint != session.terminal.fingerprint:
            return f"TERMINAL {session.terminal.id} HAS A NEW CERTIFICATE; THIS ONE NO LONGER IDENTIFIES IT"
        if current.status != "active":
            return f"TERMINAL {session.terminal.id} IS {current.status.upper()}"
        if agency is None or agency.status in ("revoked", "suspended"):
            return f"AGENCY {session.terminal.ori} IS {agency.status.upper() if agency else 'UNKNOWN'}"
        return None

    def adopt_registry(self, registry: Registry, reason: str, notice: str,
                       keep: Optional[Session] = None) -> tuple[str, ...]:
        """Take a new registry; the live sessions it no longer admits are closed with ``notice``
        (all but ``keep``, whose own input the caller answers).  Returns the terminals closed."""
        self.registry = registry
        closed = []
        for terminal_id, session in list(self.hub.sessions.items()):
            if session is keep or self.not_admitted(session, registry) is None:
                continue
            self.hub.write(terminal_id, session.close(reason, ("S", notice)))
            closed.append(terminal_id)
        return tuple(sorted(closed))

    def refresh_registry(self, keep: Optional[Session] = None) -> None:
        """Read terminals/ again when another process announced a change in the store.

        Checked at every handshake and sign-on and on every tick, so a change made
        with ``lems ca issue`` / ``terminal add`` / ``operator add`` is in force for
        the next connection or sign-on and closes what it no longer admits within a
        second.  A registry that does not load keeps the running one (logged).
        """
        latest = self.store.registry_change_seq()
        if latest <= self.registry_seen:
            return
        self.registry_seen = latest
        try:
            registry = Registry.load(self.registry.directory)
        except (RegistryError, OSError) as exc:  # a broken or unreadable file: keep what runs
            self.log.error("registry change not taken, running registry kept", error=str(exc))
            self.audit("admin", None, event="REGISTRY CHANGE REFUSED", outcome=".30.", text=str(exc)[:200])
            return
        closed = self.adopt_registry(registry, "registry changed",
                                     "TERMINAL NO LONGER ADMITTED AFTER A REGISTRY CHANGE - DISCONNECTED", keep)
        self.audit("admin", None, event="REGISTRY CHANGE TAKEN", outcome="OK",
                   text=f"CHANGE {latest}" + (f"; CLOSED {' '.join(closed)}" if closed else ""))

    def new_session(self, terminal: Terminal, remote: str) -> Session:
        return Session(terminal, remote, uuid.uuid4().hex[:12], self.clock, self.settings.session, self.trail,
                       self.store.next_osn)

    def start(self, session: Session) -> list[Action]:
        """A terminal identified: its banner (an interface terminal's without the line showing SON)."""
        banner = self.settings.banner
        if session.terminal.type == "interface":  # it may not sign on (PROTOCOL.md 4.8)
            banner = "\n".join(line for line in banner.split("\n") if not re.search(r"\bSON\.", line))
        return session.start(banner)

    # -- parsing -------------------------------------------------------------------

    @staticmethod
    def peek_key(text: str) -> str:
        """The message key, cheaply, for the checks that come before parsing."""
        end = text.find(".")
        return (text if end < 0 else text[:end])[:5].strip().upper()

    def parse(self, text: str) -> Message:
        return self.codec.parse(text)

    # -- one input (PROTOCOL.md 3, 4) -------------------------------------------------

    def receive(self, session: Session, event: framing.Event) -> list[Action]:
        """A framing event from a session's link: exactly one reply per input."""
        if session.closed:
            return []
        if isinstance(event, framing.Overrun):
            self.audit("security", session, event="GARBAGE OVERRUN", outcome=".10.", text=event.reason)
            return [*session.refuse(Reject(".10.", event.reason)), *session.hang_up(event.reason)]
        # Every text journaled or echoed here has its sign-on secrets masked (PROTOCOL.md 4 item 4).
        # Refused by the framing: the REF is given back whenever its 10 bytes were read (PROTOCOL.md 3;
        # blank when they hold a byte that cannot be echoed, framing.ref_of).
        if isinstance(event, framing.FrameError):
            original = secrets.mask(event.original.decode("ascii"))
            self.audit("in", session, ref=event.ref, outcome=event.code, text=original, nbytes=len(event.original))
            return session.refuse(Reject(event.code, event.reason, original), event.ref)
        payload = event.payload
        if len(payload) < INPUT_HEADER_LEN:
            text, ref = secrets.mask(payload.decode("ascii")), framing.ref_of(payload)
            self.audit("in", session, ref=ref, outcome=".10.", text=text, nbytes=len(payload))
            return session.refuse(Reject(".10.", f"INPUT HEADER MUST BE {INPUT_HEADER_LEN} CHARACTERS", text), ref)
        inp = Input.from_wire(payload)
        mke = self.peek_key(inp.text)
        seq = self.audit("in", session, ref=inp.ref, mke=mke, text=secrets.mask(inp.text), nbytes=len(payload))
        try:
            step = session.admit(mke)
            if step is None:
                return []
            if isinstance(step, Reject):
                raise Reject(step.code, step.reason)
            if step is Step.HEARTBEAT:
                self.parse(inp.text)
                return [session.emit("R", "HBT", inp.ref)]
            if step is Step.ACKNOWLEDGE:
                return [session.emit("R", self.acknowledge(session, self.parse(inp.text)), inp.ref)]
            if step is Step.SIGN_ON:
                self.refresh_registry(keep=session)
                problem = self.not_admitted(session, self.registry)
                if problem is not None:
                    self.audit("security", session, event="SIGN-ON REFUSED, TERMINAL NOT ADMITTED", ref=inp.ref,
                               mke=mke, outcome=".21.", text=problem)
                    return [*session.refuse(Reject(".21.", problem), inp.ref), *session.hang_up(problem)]
                return self._sign_on(session, inp)
            if step is Step.SIGN_OFF:
                return self._sign_off(session, inp)
            # The operator as the registry in force says now: a training or level recorded while
            # the operator is signed on counts from the next input (PROTOCOL.md 8).
            operator = (self.interface_operator(session, inp.opr) if step is Step.INTERFACE
                        else self.registry.operators.get(session.operator.id, session.operator))
            return self.transact(session, inp, operator, seq)
        except Reject as reject:
            reject.original = secrets.mask(reject.original or inp.text)
            return session.refuse(reject, inp.ref)

    # -- sign-on (PROTOCOL.md 4) ---------------------------------------------------

    def _sign_on(self, session: Session, inp: Input) -> list[Action]:
        # A period in a password would make the codec read the rest as fields and name them
        # in its reason: refuse it first, naming only the field.
        split = secrets.period_in_secret(inp.text)
        if split is not None:
            raise Reject(".12.", f"INVALID FIELD {split} - MUST NOT CONTAIN A PERIOD")
        msg = self.parse(inp.text)
        if msg.ori not in self.registry.oris_for(session.terminal):
            raise Reject(".21.", f"TERMINAL {session.terminal.id} MAY NOT SIGN ON FOR {msg.ori}")
        operator_id = msg.get("OPR", "")
        operator = self.registry.operators.get(operator_id)
        # An operator of another agency than the ORI given is checked like an unknown id:
        # against the dummy hash, and (in sign_on) never counted against that operator.
        mine = operator is not None and operator.ori == msg.ori
        # Not ours: checked against the dummy hash, so a refusal costs what a real check costs
        # and timing does not tell whether the id exists.
        stored = operator.password if mine else credentials.DUMMY_HASH
        token = session.begin_sign_on(PendingSignOn(inp.ref, msg.ori, operator_id, msg.get("OTP"), inp.text))
        return [CheckPassword(token, stored, msg.get("PWD", ""))]

    def signon_checked(self, session: Session, token: int, password_ok: bool) -> list[Action]:
        """The link's answer to ``CheckPassword``."""
        pending = session.end_sign_on(token)
        if pending is None:
            return []
        try:
            operator, lines = self.sign_on(session, pending.ori, pending.operator_id, password_ok, pending.otp)
        except Reject as reject:
            reject.with_original(secrets.mask(pending.raw))
            return session.refuse(reject, pending.ref)
        session.signed_on(self._rehashed(session, operator))
        return [session.emit("R", "\n".join(lines), pending.ref)]

    def _rehashed(self, session: Session, operator: Operator) -> Operator:
        """After a good sign-on: a hash below today's cost is replaced in the registry by the one
        the password check made (in its worker thread) at today's cost."""
        upgraded = credentials.take_upgrade(operator.password)
        if upgraded is None:
            return operator
        current = self.registry.operators.get(operator.id)
        if current is None or current.password != operator.password:
            return operator  # changed meanwhile: the new entry wins
        new = attrs.evolve(operator, password=upgraded)
        try:
            self.registry = self.registry.with_operator(new)
        except (OSError, RegistryError) as exc:  # the old hash still works; the next sign-on tries again
            self.log.warning("password rehash not saved", operator=operator.id, error=str(exc))
            return operator
        self.audit("security", session, event="PASSWORD REHASHED", operator=operator.id,
                   text=f"SCRYPT N={credentials.target_n}")
        return new

    def _sign_off(self, session: Session, inp: Input) -> list[Action]:
        msg = self.parse(inp.text)
        if msg.ori != (session.operator.ori if session.operator else ""):
            raise Reject(".21.", f"SIGN-OFF ORI {msg.ori} IS NOT THE SIGNED-ON OPERATOR'S AGENCY")
        self.audit("security", session, event="SIGN-OFF", ref=inp.ref)
        session.signed_off()
        return [session.emit("R", f"SIGN-OFF ACCEPTED {msg.ori}", inp.ref)]

    def sign_on(self, session: Session, ori: str, operator_id: str, password_ok: bool,
                otp: Optional[str]) -> tuple[Operator, list[str]]:
        now = self.clock.now()
        operator = self.registry.operators.get(operator_id)
        rules = self.settings.session
        # Failures count against an operator only when the sign-on named the operator's own
        # agency.  Any other pairing (an unknown id, or another agency's operator) counts
        # under a key of its own, "<id>@<ORI>", so it locks the same way after the same
        # number of tries (the words never say whether the id exists) but locks nobody real.
        mine = operator is not None and operator.ori == ori
        key = operator_id if mine else f"{operator_id}@{ori}"
        state = self._operator_state(key)
        window = rules.failed_window_minutes * 60
        failures = [t for t in state["failures"] if now.timestamp() - t < window]
        if state["locked"]:
            self.audit("security", session, event="SIGN-ON REFUSED, OPERATOR LOCKED", operator=operator_id,
                       outcome=".20.", text=None if mine else f"COUNTED AS {key}")
            raise Reject(".20.", "SIGN-ON REJECTED - OPERATOR LOCKED, CONTACT THE CONTROL TERMINAL AGENCY")
        ok = (mine and password_ok and operator.status == "active"
              and (not operator.totp or (otp is not None
                                         and credentials.verify_totp(operator.totp, otp, now.timestamp()))))
        if not ok:
            failures.append(now.timestamp())
            locked = len(failures) >= rules.failed_signons
            self._save_operator_state(key, failures, locked)
            self.audit("security", session, event="SIGN-ON FAILED", operator=operator_id, outcome=".20.",
                       text=None if mine else f"COUNTED AS {key}")
            if locked:
                self.audit("security", session, event="OPERATOR LOCKED", operator=operator_id, outcome=".20.",
                           text=None if mine else f"COUNTED AS {key}")
                self.log.warning("operator locked", operator=key, terminal=session.terminal.id)
            # The same words whether the id exists, the password was wrong or the OTP was.
            raise Reject(".20.", "SIGN-ON REJECTED")
        self._save_operator_state(key, [], False)
        first = self._training_checked(session, operator)
        self.audit("security", session, event="SIGN-ON", operator=operator_id, outcome="OK")
        lines = [f"SIGN-ON ACCEPTED {operator.id} {ori} TERMINAL {session.terminal.id}"]
        lines += self.policy.signon_warnings(self.registry.agencies[operator.ori], operator, first)
        return operator, lines

    def _training_checked(self, session: Optional[Session], operator: Operator) -> dt.date:
        """PROTOCOL.md 11: refuse (.20.) an operator past a training deadline, else keep the first
        sign-on (the guide's 10 days run from it); the first sign-on's date."""
        today = self.policy.today()
        first = training_store.first_signon(self.store.conn, operator.id)
        problem = self.policy.training_problem(operator, first, today)
        if problem:
            self.audit("security", session, event="SIGN-ON REFUSED, TRAINING", operator=operator.id,
                       outcome=".20.", text=problem)
            raise Reject(".20.", f"SIGN-ON REJECTED - {problem}")
        if first is None:
            first = training_store.note_signon(self.store.write(), operator.id, today)
        return first

    def _operator_state(self, operator_id: str) -> dict[str, Any]:
        row = self.store.conn.execute("SELECT failures, locked FROM operator_state WHERE operator = ?",
                                      (operator_id,)).fetchone()
        if row is None:
            return {"failures": [], "locked": False}
        return {"failures": [float(t) for t in row[0].split()], "locked": bool(row[1])}

    def _save_operator_state(self, operator_id: str, failures: list[float], locked: bool) -> None:
        known = operator_id in self.registry.operators
        if not failures and not locked and not known:
            # Nothing to keep for an id no operator has (an unknown id, or <id>@<ORI>): forget it.
            self.store.write().execute("DELETE FROM operator_state WHERE operator = ?", (operator_id,))
            return
        self.store.write().execute(
            "INSERT INTO operator_state (operator, failures, locked, locked_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(operator) DO UPDATE SET failures = excluded.failures, locked = excluded.locked, "
            "locked_at = CASE WHEN excluded.locked THEN COALESCE(operator_state.locked_at, excluded.locked_at) "
            "ELSE NULL END",
            (operator_id, " ".join(f"{t:.2f}" for t in failures), int(locked),
             self.clock.now().isoformat() if locked else None))

    def unlock_operator(self, operator_id: str, by: str = "console") -> bool:
        """Release a locked operator (the console's ``unlock``)."""
        state = self._operator_state(operator_id)
        self._save_operator_state(operator_id, [], False)
        self.audit("security", None, event="UNLOCK", operator=operator_id, text=f"BY {by}")
        self.store.commit()
        return state["locked"]

    def locked_operators(self) -> list[str]:
        return [r[0] for r in self.store.conn.execute("SELECT operator FROM operator_state WHERE locked = 1")]

    def interface_operator(self, session: Session, operator_id: str) -> Operator:
        """An interface terminal names the operator in each input header (PROTOCOL.md 4.8),
        in any case (folded like the text, PROTOCOL.md 2)."""
        operator_id = operator_id.strip().upper()
        if not operator_id:
            raise Reject(".20.", "INTERFACE INPUT MUST NAME THE OPERATOR IN THE HEADER")
        operator = self.registry.operators.get(operator_id)
        if operator is None or operator.ori not in self.registry.oris_for(session.terminal):
            raise Reject(".20.", f"OPERATOR {operator_id} NOT VALID FOR TERMINAL {session.terminal.id}")
        if operator.status != "active" or self._operator_state(operator_id)["locked"]:
            raise Reject(".20.", f"OPERATOR {operator_id} IS NOT IN GOOD STANDING")
        if not operator.trained:  # a trained operator has no deadline: no store read on every input
            self._training_checked(session, operator)
        return operator

    # -- the transaction chain ------------------------------------------------------

    def transact(self, session: Session, inp: Input, operator: Operator, seq: int = 0) -> list[Action]:
        """One input from a signed-on operator: its notices delivered, then exactly one R or E frame."""
        try:
            msg = self.parse(inp.text)
            spec = self.codec.spec(msg.mke)
            agency = self.registry.agencies[session.terminal.ori]
            self.policy.authorise(self.registry, session.terminal, agency, operator, msg, spec)
            if spec.category == "criminal-history":
                self.trail.disseminate(operator=operator.id, ori=msg.ori, terminal=session.terminal.id,
                                       mke=msg.mke, atn=msg.get("ATN", ""), pur=msg.get("PUR", ""),
                                       subject=msg.get("NAM") or msg.get("FBI") or msg.get("SID") or "",
                                       journal_seq=None)
            txn = Transaction(session.terminal, operator, msg, spec, inp.ref, self.clock.now(), self.registry,
                              self.hub, session.id, seq)
            outcome = self.router.route(txn)
        except Reject as reject:
            reject.original = secrets.mask(reject.original or inp.text)
            if reject.code in AUDITED_REFUSALS:
                self.audit("security", session, event="REFUSED", ref=inp.ref, mke=self.peek_key(inp.text),
                           outcome=reject.code, text=reject.reason, operator=operator.id)
            return session.refuse(reject, inp.ref)
        self.deliver(outcome.notices)
        osn = self.store.peek_osn(session.terminal.id)
        reply = session.emit(outcome.cls, outcome.text_for(osn), inp.ref)
        return [reply]

    # -- delivering notices ------------------------------------------------------------

    def deliver(self, notices: Sequence[Notice | Note]) -> None:
        """Carry out a step's notices, in order: written to a connected terminal, else queued.

        A frame for a terminal that acknowledges (``keep``) is written and also kept,
        with its OSN and bytes, until its ``ACK``.  A ``Note`` is journaled in its place.
        """
        courier = self.router.delivery
        for notice in notices:
            if isinstance(notice, Note):
                self.audit(notice.kind, None, **notice.fields)
                continue
            session = self.hub.live(notice.terminal)
            try:
                if session is None:
                    self._hold(courier, notice)
                    continue
                if notice.keep and courier.depth(notice.terminal) >= self.settings.limits.queue_depth:
                    raise QueueFull(notice.terminal, courier.depth(notice.terminal))
                send = session.emit(notice.cls, notice.text, notice.ref)
                if notice.keep:
                    courier.hold(notice, send.osn, send.payload)
                self.hub.write(notice.terminal, [send])
            except QueueFull as exc:
                # The plan counted the queue; only a frame planned twice in one turn can meet this.
                self.log.warning("queue full, frame refused", terminal=exc.terminal, depth=exc.depth)

    def _hold(self, courier: Any, notice: Notice) -> None:
        depth = courier.depth(notice.terminal)
        if depth >= self.settings.limits.queue_depth:
            raise QueueFull(notice.terminal, depth)
        courier.hold(notice)

    def send_to_terminal(self, terminal_id: str, cls: str, text: str, priority: int) -> str:
        """One frame for a terminal outside any input (the console's ``send SM``):
        ``delivered`` or ``queued``; QueueFull when its queue is full."""
        plan = self.router.delivery.plan(self.registry, self.hub)
        result = plan.to_terminal(terminal_id, cls, text, priority)
        self.deliver(plan.notices)
        return result

    def acknowledge(self, session: Session, msg: Message) -> str:
        if msg.ori not in self.registry.oris_for(session.terminal):
            raise Reject(".21.", f"TERMINAL {session.terminal.id} IS NOT AUTHORIZED TO SEND FOR ORI {msg.ori}")
        return self.router.delivery.acknowledge(session.terminal.id, int(msg.get("OSN", "0") or 0))

    # -- reaching terminals ------------------------------------------------------------

    def notify(self, terminal_id: str, cls: str, text: str) -> bool:
        """Write an unsolicited frame to a live terminal; False when it is not connected."""
        session = self.hub.live(terminal_id)
        if session is None:
            return False
        self.hub.write(terminal_id, [session.emit(cls, text)])
        return True

    # -- the service's hooks ------------------------------------------------------------

    def session_started(self, session: Session) -> None:
        """A terminal connected and got its banner: send what waits for it, highest priority first."""
        terminal = session.terminal
        courier = self.router.delivery
        sends: list[Action] = []
        for item in courier.waiting(terminal.id):
            if item.osn is not None:
                # Unacknowledged: the very frame again, same OSN (PROTOCOL.md 4.9).
                sends.append(Send(bytes(item.payload), item.osn, item.cls))
                self.audit("out", session, ref=item.ref, cls=item.cls, osn=item.osn, text=item.text,
                           nbytes=len(item.payload), event="RESENT, AWAITING ACK")
                continue
            send = session.emit(item.cls, item.text, item.ref)
            sends.append(send)
            if terminal.ack:
                courier.sent(item.id, send.osn, send.payload)
            else:
                courier.sent(item.id)
        if sends:
            self.hub.write(terminal.id, sends)

    def tick(self) -> None:
        """Run every schedule once: session locks and idle disconnects, registry changes,
        routed traffic's timers, journal retention, the scheduled jobs (lems.core.schedule).

        Each job runs on its own: one that fails is logged and the others (and the
        next tick) still run, so a bad moment never stops every timer.
        """
        for name, job in (("sessions", self._tick_sessions), ("registry", self.refresh_registry),
                          ("traffic", lambda: self.deliver(self.router.tick(self.registry, self.hub))),
                          ("retention", lambda: self.retention.tick(self.clock.now())),
                          ("schedule", self.schedule.tick)):
            try:
                job()
            except Exception:  # noqa: BLE001 - logged with its traceback; the switch goes on
                self.log.exception("scheduled job failed", job=name)
        self.store.commit()

    def _tick_sessions(self) -> None:
        """Session locks and idle disconnects: the sessions whose time may have come (Hub.timers).

        A session's time in the heap is never later than its rules could act (activity and
        sign-on only move that later), so one taken early is put back at its time now; a
        session replaced or gone is dropped.
        """
        hub, now = self.hub, self.clock.monotonic()
        while hub.timers and hub.timers[0][0] <= now:
            _, _, session = heapq.heappop(hub.timers)
            terminal_id = session.terminal.id
            if hub.sessions.get(terminal_id) is not session:
                continue
            actions = session.tick()
            if actions:
                hub.write(terminal_id, actions)
            due = session.due_at()
            if due is not None:
                hub.wake_at(session, max(due, now + 1.0))

    def close_sessions(self, reason: str, notice: tuple[str, str]) -> None:
        """Close every live session with a notice (shutdown)."""
        for terminal_id, session in list(self.hub.sessions.items()):
            self.hub.write(terminal_id, session.close(reason, notice))

    def replace(self, codec: Codec, registry: Registry, router: Router) -> None:
        """Take a reloaded configuration (the console's ``reload``) in one step."""
        self.codec, self.registry, self.router = codec, registry, router

    def today(self) -> dt.date:
        return self.clock.now().astimezone(self.settings.timezone).date()
