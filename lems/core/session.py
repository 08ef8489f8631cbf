"""One terminal's session: its state, the legal transitions, numbered output.

Sans-IO and switch-free.  The session knows what state it is in and what each
kind of input may do in that state (``TRANSITIONS``, below); it numbers,
stamps, journals and encodes every frame it sends (``emit``) and applies the
inactivity rules on ``tick``.  It never calls the switch: the switch's
transaction chain (lems.core.switch) asks it what an input may do, runs the
step, and hands it the result to send.  Time comes from the injected clock.

States (the legal transitions; everything else is refused with a code):

    IDENTIFIED --SON ok--> SIGNED_ON --SOF--> IDENTIFIED
    SIGNED_ON --30 min without operator activity--> LOCKED --SON ok--> SIGNED_ON
    any --60 min without operator activity--> CLOSED     (exempt terminal types never lock or idle out)
    INTERFACE: no SON; every input names its operator in the header
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import attrs

from lems.base.clock import stamp
from lems.base.errors import Reject
from lems.base.events import Action, Close, Send
from lems.wire.headers import output_bytes

if TYPE_CHECKING:  # pragma: no cover
    from lems.base.conf import SessionRules
    from lems.base.registry import Operator, Terminal
    from lems.store.trail import AuditTrail


class State(enum.Enum):
    IDENTIFIED = "identified"
    SIGNED_ON = "signed-on"
    LOCKED = "locked"
    INTERFACE = "interface"
    CLOSED = "closed"


class Step(enum.Enum):
    """What the switch does with an input the session admits."""

    HEARTBEAT = "heartbeat"
    ACKNOWLEDGE = "acknowledge"
    SIGN_ON = "sign-on"
    SIGN_OFF = "sign-off"
    TRANSACT = "transact"                 # the signed-on operator's message
    INTERFACE = "interface"               # the operator named in the input header


# Keys that are not operator activity (they do not hold a session open).
NOT_ACTIVITY = frozenset({"HBT", "ACK"})

_SIGN_ON_REQUIRED = Reject(".20.", "SIGN-ON REQUIRED")
_LOCKED = Reject(".20.", "SESSION LOCKED AFTER INACTIVITY - SIGN ON AGAIN")
_NO_SIGN_ON = Reject(".22.", "INTERFACE TERMINALS NAME THE OPERATOR IN THE INPUT HEADER; NO SIGN-ON")

Admitted = Union[Step, Reject]

# (state, kind of input) -> the step it starts, or the refusal.  The kinds are
# the session keys and "*" for every other key.  HBT and ACK are taken in every
# live state; a closed session takes nothing.
TRANSITIONS: dict[tuple[State, str], Admitted] = {
    **{(state, "HBT"): Step.HEARTBEAT for state in State if state is not State.CLOSED},
    **{(state, "ACK"): Step.ACKNOWLEDGE for state in State if state is not State.CLOSED},
    (State.IDENTIFIED, "SON"): Step.SIGN_ON,
    (State.IDENTIFIED, "SOF"): _SIGN_ON_REQUIRED,
    (State.IDENTIFIED, "*"): _SIGN_ON_REQUIRED,
    (State.SIGNED_ON, "SON"): Step.SIGN_ON,
    (State.SIGNED_ON, "SOF"): Step.SIGN_OFF,
    (State.SIGNED_ON, "*"): Step.TRANSACT,
    (State.LOCKED, "SON"): Step.SIGN_ON,
    (State.LOCKED, "SOF"): _LOCKED,
    (State.LOCKED, "*"): _LOCKED,
    (State.INTERFACE, "SON"): _NO_SIGN_ON,
    (State.INTERFACE, "SOF"): _NO_SIGN_ON,
    (State.INTERFACE, "*"): Step.INTERFACE,
}


def admitted(state: State, mke: str) -> Optional[Admitted]:
    """The transition for key ``mke`` in ``state`` (None: a closed session ignores it)."""
    kind = mke if mke in ("HBT", "ACK", "SON", "SOF") else "*"
    return TRANSITIONS.get((state, kind))


@attrs.define
class PendingSignOn:
    ref: str
    ori: str
    operator_id: str
    otp: Optional[str]
    raw: str


@attrs.define(eq=False)
class Session:
    terminal: "Terminal"
    remote: str
    id: str
    clock: Any
    rules: "SessionRules"
    trail: "AuditTrail"
    number: Callable[[str], int]          # the next output sequence number of a terminal
    state: State = State.IDENTIFIED
    operator: Optional["Operator"] = None
    last_activity: float = 0.0
    pending: Optional[PendingSignOn] = None
    _tokens: int = 0

    @property
    def exempt(self) -> bool:
        return self.terminal.type in self.rules.exempt_types or self.terminal.type == "interface"

    @property
    def busy(self) -> bool:
        """A sign-on is being checked; the link holds further input until it is done."""
        return self.pending is not None

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    # -- output ---------------------------------------------------------------

    def emit(self, cls: str, text: str, ref: str = "") -> Send:
        """Number, stamp, journal and encode one output frame for this terminal."""
        osn = self.number(self.terminal.id)
        payload = output_bytes(osn, ref, cls, stamp(self.clock.now()), text)
        self.trail.record("out", self, ref=ref, cls=cls, osn=osn, text=text, nbytes=len(payload))
        return Send(payload, osn, cls)

    def refuse(self, reject: Reject, ref: str = "") -> list[Action]:
        return [self.emit("E", reject.text(), ref)]

    # -- life cycle -------------------------------------------------------------

    def start(self, banner: str) -> list[Action]:
        """The handshake is done and the terminal identified: send the banner."""
        self.last_activity = self.clock.monotonic()
        self.trail.record("security", self, event="CONNECT")
        if self.terminal.type == "interface":
            self.state = State.INTERFACE
        return [self.emit("S", banner)]

    def admit(self, mke: str) -> Optional[Admitted]:
        """What an input with key ``mke`` may do now; operator activity restarts the timers."""
        if self.state is State.CLOSED:
            return None
        if mke not in NOT_ACTIVITY:
            self.last_activity = self.clock.monotonic()
        return admitted(self.state, mke)

    # -- sign-on ----------------------------------------------------------------

    def begin_sign_on(self, pending: PendingSignOn) -> int:
        """A sign-on waits for its password check; returns the token the answer must carry."""
        self._tokens += 1
        self.pending = pending
        return self._tokens

    def end_sign_on(self, token: int) -> Optional[PendingSignOn]:
        """The password check answered: the sign-on it was for, or None when it is stale."""
        pending, self.pending = self.pending, None
        if pending is None or token != self._tokens or self.state is State.CLOSED:
            return None
        return pending

    def signed_on(self, operator: "Operator") -> None:
        self.operator = operator
        self.state = State.SIGNED_ON
        self.last_activity = self.clock.monotonic()

    def signed_off(self) -> None:
        self.operator = None
        self.state = State.IDENTIFIED

    # -- timers -------------------------------------------------------------------

    def tick(self) -> list[Action]:
        """Apply the inactivity rules (PROTOCOL.md 4.7)."""
        if self.state is State.CLOSED or self.exempt:
            return []
        idle = self.clock.monotonic() - self.last_activity
        rules = self.rules
        if idle >= rules.disconnect_after_minutes * 60:
            self.trail.record("security", self, event="IDLE DISCONNECT")
            notice = self.emit("S", f"DISCONNECTED AFTER {rules.disconnect_after_minutes:g} MINUTES WITHOUT ACTIVITY")
            return [notice, *self.hang_up("idle timeout")]
        if self.state is State.SIGNED_ON and idle >= rules.lock_after_minutes * 60:
            self.state = State.LOCKED
            self.trail.record("security", self, event="SESSION LOCK")
            self.operator = None
            return [self.emit("S", f"SESSION LOCKED AFTER {rules.lock_after_minutes:g} MINUTES WITHOUT "
                                   "ACTIVITY - SIGN ON AGAIN")]
        return []

    # An exempt terminal's type can change with the registry: look at it again this often.
    EXEMPT_RECHECK_SECONDS = 60.0

    def due_at(self) -> Optional[float]:
        """The switch-clock monotonic time from which ``tick`` may act, None once closed.

        The switch keeps its sessions in a heap by this time, so that one tick visits the
        sessions whose lock or disconnect may have come, not every connected terminal.
        """
        if self.state is State.CLOSED:
            return None
        if self.exempt:
            return self.clock.monotonic() + self.EXEMPT_RECHECK_SECONDS
        rules = self.rules
        # Never later than the rules could act: a session not yet signed on may sign on and
        # then lock (from a later activity, so no sooner than this); a locked one only
        # disconnects, and signing on again moves its time later still.
        minutes = (rules.disconnect_after_minutes if self.state is State.LOCKED
                   else min(rules.lock_after_minutes, rules.disconnect_after_minutes))
        return self.last_activity + minutes * 60

    def hang_up(self, reason: str) -> list[Action]:
        self.state = State.CLOSED
        return [Close(reason)]

    def close(self, reason: str, notice: Optional[tuple[str, str]] = None) -> list[Action]:
        """End the session from outside (revocation, replacement, shutdown)."""
        if self.state is State.CLOSED:
            return []
        actions: list[Action] = [self.emit(*notice)] if notice else []
        self.trail.record("security", self, event="DISCONNECT", text=reason)
        return actions + self.hang_up(reason)
