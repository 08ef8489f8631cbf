"""The switch: identify, sign on, and run each message through the chain

    parse -> authorise -> route -> reply (-> journal, by every step that acts)

Sans-IO like the session: it holds the registry, the catalogues, the handlers,
the store and the journal, and talks to live sessions only through the ``Hub``
(which the link fills).  Nothing here imports Twisted.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, Callable, Optional

import structlog

from lems.base import credentials
from lems.wire.codec import Codec
from lems.base.conf import Settings
from lems.base.errors import Reject
from lems.wire.headers import Input
from lems.store.journal import Journal
from lems.wire.message import Message
from lems.core.policy import Policy
from lems.base.registry import Operator, Registry, Terminal
from lems.core.router import Router
from lems.store.sqlite import Store

if TYPE_CHECKING:  # pragma: no cover
    from lems.core.session import Action, Send, Session

# Access refusals (PROTOCOL.md 5.6) are security events as well as replies.
AUDITED_REFUSALS = frozenset({".21.", ".22.", ".23.", ".24.", ".25."})

# Compared against when the operator id does not exist, so a rejected sign-on
# costs the same either way and timing does not tell whether the id exists.
_DUMMY_HASH = credentials.hash_password("no such operator")


class Hub:
    """The live sessions by terminal id; the link registers a writer for each."""

    def __init__(self) -> None:
        self.sessions: dict[str, "Session"] = {}
        self.writers: dict[str, Callable[[list["Action"]], None]] = {}

    def attach(self, session: "Session", writer: Callable[[list["Action"]], None]) -> None:
        """Register a session; an older session of the same terminal is closed (one per terminal)."""
        terminal_id = session.terminal.id
        old, old_writer = self.sessions.get(terminal_id), self.writers.get(terminal_id)
        self.sessions[terminal_id] = session
        self.writers[terminal_id] = writer
        if old is not None and old_writer is not None:
            old_writer(old.close("replaced by a new connection",
                                 ("S", "SESSION REPLACED BY A NEW CONNECTION FROM THIS TERMINAL")))

    def detach(self, session: "Session") -> None:
        if self.sessions.get(session.terminal.id) is session:
            del self.sessions[session.terminal.id]
            del self.writers[session.terminal.id]

    def live(self, terminal_id: str) -> Optional["Session"]:
        return self.sessions.get(terminal_id)

    def write(self, terminal_id: str, actions: list["Action"]) -> None:
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
        self.journal = Journal(store.conn, clock)
        self.policy = Policy(settings, clock)
        self.hub = Hub()
        self.started = clock.monotonic()
        self.counters = {"in": 0, "out": 0}

    # -- journal ----------------------------------------------------------------

    def audit(self, kind: str, session: Optional["Session"] = None, **fields: Any) -> int:
        """One journal record, inside the current turn's transaction."""
        self.store.write()
        if kind in self.counters:
            self.counters[kind] += 1
        if session is not None:
            fields.setdefault("terminal", session.terminal.id)
            fields.setdefault("ori", session.terminal.ori)
            fields.setdefault("session", session.id)
            fields.setdefault("remote", session.remote)
            if session.operator is not None:
                fields.setdefault("operator", session.operator.id)
        return self.journal.append(kind, **fields)

    # -- identification (PROTOCOL.md 1) -------------------------------------------

    def identify(self, fingerprint: Optional[str]) -> Terminal:
        """The registered terminal a certificate belongs to, or a .21./.25. reject."""
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

    def new_session_id(self) -> str:
        return uuid.uuid4().hex[:12]

    # -- parsing -------------------------------------------------------------------

    @staticmethod
    def peek_key(text: str) -> str:
        """The message key, cheaply, for the checks that come before parsing."""
        end = text.find(".")
        return (text if end < 0 else text[:end])[:5].strip().upper()

    def parse(self, text: str) -> Message:
        return self.codec.parse(text)

    # -- sign-on (PROTOCOL.md 4) ---------------------------------------------------

    def signon_precheck(self, session: "Session", msg: Message) -> str:
        """What must hold before the password is checked; returns the hash to check against."""
        if msg.ori not in self.registry.oris_for(session.terminal):
            raise Reject(".21.", f"TERMINAL {session.terminal.id} MAY NOT SIGN ON FOR {msg.ori}")
        operator = self.registry.operators.get(msg.get("OPR", ""))
        return operator.password if operator is not None else _DUMMY_HASH

    def sign_on(self, session: "Session", ori: str, operator_id: str, password_ok: bool,
                otp: Optional[str]) -> tuple[Operator, list[str]]:
        now = self.clock.now()
        operator = self.registry.operators.get(operator_id)
        rules = self.settings.session
        state = self._operator_state(operator_id)
        window = rules.failed_window_minutes * 60
        failures = [t for t in state["failures"] if now.timestamp() - t < window]
        if state["locked"]:
            self.audit("security", session, event="SIGN-ON REFUSED, OPERATOR LOCKED", operator=operator_id,
                       outcome=".20.")
            raise Reject(".20.", "SIGN-ON REJECTED - OPERATOR LOCKED, CONTACT THE CONTROL TERMINAL AGENCY")
        ok = (operator is not None and password_ok and operator.ori == ori and operator.status == "active"
              and (not operator.totp or (otp is not None
                                         and credentials.verify_totp(operator.totp, otp, now.timestamp()))))
        if not ok:
            failures.append(now.timestamp())
            locked = len(failures) >= rules.failed_signons
            self._save_operator_state(operator_id, failures, locked)
            self.audit("security", session, event="SIGN-ON FAILED", operator=operator_id, outcome=".20.")
            if locked:
                self.audit("security", session, event="OPERATOR LOCKED", operator=operator_id, outcome=".20.")
                self.log.warning("operator locked", operator=operator_id, terminal=session.terminal.id)
            # The same words whether the id exists, the password was wrong or the OTP was.
            raise Reject(".20.", "SIGN-ON REJECTED")
        self._save_operator_state(operator_id, [], False)
        self.audit("security", session, event="SIGN-ON", operator=operator_id, outcome="OK")
        lines = [f"SIGN-ON ACCEPTED {operator.id} {ori} TERMINAL {session.terminal.id}"]
        lines += self.policy.signon_warnings(self.registry.agencies[operator.ori], operator)
        return operator, lines

    def _operator_state(self, operator_id: str) -> dict[str, Any]:
        row = self.store.conn.execute("SELECT failures, locked FROM operator_state WHERE operator = ?",
                                      (operator_id,)).fetchone()
        if row is None:
            return {"failures": [], "locked": False}
        return {"failures": [float(t) for t in row[0].split()], "locked": bool(row[1])}

    def _save_operator_state(self, operator_id: str, failures: list[float], locked: bool) -> None:
        known = operator_id in self.registry.operators
        if not failures and not locked and not known:
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

    def interface_operator(self, session: "Session", operator_id: str) -> Operator:
        """An interface terminal names the operator in each input header (PROTOCOL.md 4.8)."""
        if not operator_id:
            raise Reject(".20.", "INTERFACE INPUT MUST NAME THE OPERATOR IN THE HEADER")
        operator = self.registry.operators.get(operator_id)
        if operator is None or operator.ori not in self.registry.oris_for(session.terminal):
            raise Reject(".20.", f"OPERATOR {operator_id} NOT VALID FOR TERMINAL {session.terminal.id}")
        if operator.status != "active" or self._operator_state(operator_id)["locked"]:
            raise Reject(".20.", f"OPERATOR {operator_id} IS NOT IN GOOD STANDING")
        return operator

    # -- the transaction chain ------------------------------------------------------

    def transact(self, session: "Session", inp: Input, operator: Operator) -> "Send":
        """One input from a signed-on operator: exactly one R or E frame back."""
        try:
            msg = self.parse(inp.text)
            spec = self.codec.spec(msg.mke)
            agency = self.registry.agencies[session.terminal.ori]
            self.policy.authorise(self.registry, session.terminal, agency, operator, msg, spec)
            if spec.category == "criminal-history":
                self.journal.disseminate(operator=operator.id, ori=msg.ori, terminal=session.terminal.id,
                                         mke=msg.mke, atn=msg.get("ATN", ""), pur=msg.get("PUR", ""),
                                         subject=msg.get("NAM") or msg.get("FBI") or msg.get("SID") or "",
                                         journal_seq=None)
            cls, text = self.router.route(self, session, operator, msg, spec, inp.ref)
        except Reject as reject:
            reject.with_original(inp.text)
            if reject.code in AUDITED_REFUSALS:
                self.audit("security", session, event="REFUSED", ref=inp.ref, mke=self.peek_key(inp.text),
                           outcome=reject.code, text=reject.reason, operator=operator.id)
            return session.emit("E", reject.text(), inp.ref)
        return session.emit(cls, text, inp.ref)

    def acknowledge(self, session: "Session", msg: Message) -> str:
        return self.router.acknowledge(self, session, msg)

    # -- reaching terminals ------------------------------------------------------------

    def notify(self, terminal_id: str, cls: str, text: str) -> bool:
        """Write an unsolicited frame to a live terminal; False when it is not connected."""
        session = self.hub.live(terminal_id)
        if session is None:
            return False
        self.hub.write(terminal_id, [session.emit(cls, text)])
        return True

    # -- the service's hooks ------------------------------------------------------------

    def session_started(self, session: "Session") -> None:
        """A terminal connected and got its banner: send what waits for it."""
        if self.router.delivery is not None:
            self.router.delivery.session_started(self, session)

    def tick(self) -> None:
        """Run every schedule once: session locks and idle disconnects, routed traffic's timers."""
        for terminal_id, session in list(self.hub.sessions.items()):
            actions = session.tick()
            if actions:
                self.hub.write(terminal_id, actions)
        self.router.tick(self)
        self.store.commit()

    def close_sessions(self, reason: str, notice: tuple[str, str]) -> None:
        """Close every live session with a notice (shutdown)."""
        for terminal_id, session in list(self.hub.sessions.items()):
            self.hub.write(terminal_id, session.close(reason, notice))

    def replace(self, codec: Codec, registry: Registry, router: Router) -> None:
        """Take a reloaded configuration (the console's ``reload``) in one step."""
        self.codec, self.registry, self.router = codec, registry, router

    def today(self) -> dt.date:
        return self.clock.now().astimezone(self.settings.timezone).date()
