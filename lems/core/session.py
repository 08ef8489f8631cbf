"""One terminal's session: sign-on, locks, timers, one reply per input.

Sans-IO.  The link feeds it framing events and calls ``tick`` on a timer; it
returns actions: ``Send(payload)`` to write, ``Close(reason)`` to hang up and
``CheckPassword`` when a sign-on needs the (slow, ~50 ms) scrypt comparison,
which the link runs off the reactor thread and answers with ``signon_checked``.
Time comes from the injected clock.

States (legal transitions; everything else is refused with a code):

    IDENTIFIED --SON ok--> SIGNED_ON --SOF--> IDENTIFIED
    SIGNED_ON --30 min without operator activity--> LOCKED --SON ok--> SIGNED_ON
    any --60 min without operator activity--> CLOSED     (exempt terminal types never lock or idle out)
    INTERFACE: no SON; every input names its operator in the header
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Optional, Union

import attrs

from lems.wire import framing
from lems.base.clock import stamp
from lems.base.errors import Reject
from lems.wire.headers import INPUT_HEADER_LEN, Input, output_bytes

if TYPE_CHECKING:  # pragma: no cover
    from lems.base.registry import Operator, Terminal
    from lems.core.switch import Switch


class State(enum.Enum):
    IDENTIFIED = "identified"
    SIGNED_ON = "signed-on"
    LOCKED = "locked"
    INTERFACE = "interface"
    CLOSED = "closed"


# Keys a terminal may send without a signed-on operator.
BEFORE_SIGNON = frozenset({"SON", "HBT", "ACK"})
# Keys that are not operator activity (they do not hold a session open).
NOT_ACTIVITY = frozenset({"HBT", "ACK"})


@attrs.frozen
class Send:
    payload: bytes
    osn: int
    cls: str


@attrs.frozen
class Close:
    reason: str


@attrs.frozen
class CheckPassword:
    """Ask the link to verify a sign-on's password off the reactor thread."""

    token: int
    stored: str
    password: str


Action = Union[Send, Close, CheckPassword]


@attrs.define
class PendingSignOn:
    ref: str
    ori: str
    operator_id: str
    otp: Optional[str]
    raw: str


@attrs.define(eq=False)
class Session:
    switch: "Switch"
    terminal: "Terminal"
    remote: str
    id: str
    state: State = State.IDENTIFIED
    operator: Optional["Operator"] = None
    last_activity: float = 0.0
    pending: Optional[PendingSignOn] = None
    _tokens: int = 0

    @property
    def clock(self):
        return self.switch.clock

    @property
    def exempt(self) -> bool:
        return self.terminal.type in self.switch.settings.session.exempt_types or self.terminal.type == "interface"

    @property
    def busy(self) -> bool:
        """A sign-on is being checked; the link holds further input until it is done."""
        return self.pending is not None

    # -- output ---------------------------------------------------------------

    def emit(self, cls: str, text: str, ref: str = "") -> Send:
        """Number, stamp, journal and encode one output frame for this terminal."""
        osn = self.switch.store.next_osn(self.terminal.id)
        ts = stamp(self.clock.now())
        payload = output_bytes(osn, ref, cls, ts, text)
        self.switch.audit("out", self, ref=ref, cls=cls, osn=osn, text=text, nbytes=len(payload))
        return Send(payload, osn, cls)

    def _error(self, reject: Reject, ref: str) -> list[Action]:
        return [self.emit("E", reject.text(), ref)]

    # -- life cycle -------------------------------------------------------------

    def start(self) -> list[Action]:
        """The handshake is done and the terminal identified: send the banner."""
        self.last_activity = self.clock.monotonic()
        self.switch.audit("security", self, event="CONNECT")
        if self.terminal.type == "interface":
            self.state = State.INTERFACE
        return [self.emit("S", self.switch.settings.banner)]

    def receive(self, event: framing.Event) -> list[Action]:
        if self.state is State.CLOSED:
            return []
        if isinstance(event, framing.Overrun):
            self.switch.audit("security", self, event="GARBAGE OVERRUN", outcome=".10.", text=event.reason)
            return [self.emit("E", Reject(".10.", event.reason).text()), *self._close(event.reason)]
        if isinstance(event, framing.FrameError):
            original = event.original.decode("ascii")
            self.switch.audit("in", self, outcome=event.code, text=original, nbytes=len(event.original))
            return self._error(Reject(event.code, event.reason, original), "")
        return self._input(event.payload)

    def _input(self, payload: bytes) -> list[Action]:
        if len(payload) < INPUT_HEADER_LEN:
            text = payload.decode("ascii")
            self.switch.audit("in", self, outcome=".10.", text=text, nbytes=len(payload))
            return self._error(Reject(".10.", f"INPUT HEADER MUST BE {INPUT_HEADER_LEN} CHARACTERS", text), "")
        inp = Input.from_wire(payload)
        mke = self.switch.peek_key(inp.text)
        self.switch.audit("in", self, ref=inp.ref, mke=mke, text=inp.text, nbytes=len(payload))
        if mke not in NOT_ACTIVITY:
            self.last_activity = self.clock.monotonic()
        try:
            if mke == "HBT":
                self.switch.parse(inp.text)
                return [self.emit("R", "HBT", inp.ref)]
            if mke == "ACK":
                return [self.emit("R", self.switch.acknowledge(self, self.switch.parse(inp.text)), inp.ref)]
            if self.state is State.INTERFACE:
                return self._interface(inp, mke)
            if mke == "SON":
                return self._sign_on(inp)
            if self.state is not State.SIGNED_ON:
                reason = ("SESSION LOCKED AFTER INACTIVITY - SIGN ON AGAIN" if self.state is State.LOCKED
                          else "SIGN-ON REQUIRED")
                raise Reject(".20.", reason)
            if mke == "SOF":
                return self._sign_off(inp)
            return [self.switch.transact(self, inp, self.operator)]
        except Reject as reject:
            reject.with_original(inp.text)
            return self._error(reject, inp.ref)

    def _interface(self, inp: Input, mke: str) -> list[Action]:
        if mke in ("SON", "SOF"):
            raise Reject(".22.", "INTERFACE TERMINALS NAME THE OPERATOR IN THE INPUT HEADER; NO SIGN-ON")
        operator = self.switch.interface_operator(self, inp.opr)
        return [self.switch.transact(self, inp, operator)]

    # -- sign-on ----------------------------------------------------------------

    def _sign_on(self, inp: Input) -> list[Action]:
        msg = self.switch.parse(inp.text)
        operator_id = msg.get("OPR", "")
        stored = self.switch.signon_precheck(self, msg)
        self._tokens += 1
        self.pending = PendingSignOn(inp.ref, msg.ori, operator_id, msg.get("OTP"), inp.text)
        return [CheckPassword(self._tokens, stored, msg.get("PWD", ""))]

    def signon_checked(self, token: int, password_ok: bool) -> list[Action]:
        """The link's answer to ``CheckPassword``."""
        pending, self.pending = self.pending, None
        if pending is None or token != self._tokens or self.state is State.CLOSED:
            return []
        try:
            operator, lines = self.switch.sign_on(self, pending.ori, pending.operator_id, password_ok, pending.otp)
        except Reject as reject:
            reject.with_original(pending.raw[:pending.raw.find(".PWD/")] if ".PWD/" in pending.raw else "SON")
            return self._error(reject, pending.ref)
        self.operator = operator
        self.state = State.SIGNED_ON
        self.last_activity = self.clock.monotonic()
        return [self.emit("R", "\n".join(lines), pending.ref)]

    def _sign_off(self, inp: Input) -> list[Action]:
        msg = self.switch.parse(inp.text)
        if msg.ori != (self.operator.ori if self.operator else ""):
            raise Reject(".21.", f"SIGN-OFF ORI {msg.ori} IS NOT THE SIGNED-ON OPERATOR'S AGENCY")
        self.switch.audit("security", self, event="SIGN-OFF", ref=inp.ref)
        self.operator = None
        self.state = State.IDENTIFIED
        return [self.emit("R", f"SIGN-OFF ACCEPTED {msg.ori}", inp.ref)]

    # -- timers -------------------------------------------------------------------

    def tick(self) -> list[Action]:
        """Apply the inactivity rules (PROTOCOL.md 4.7)."""
        if self.state is State.CLOSED or self.exempt:
            return []
        idle = self.clock.monotonic() - self.last_activity
        rules = self.switch.settings.session
        if idle >= rules.disconnect_after_minutes * 60:
            self.switch.audit("security", self, event="IDLE DISCONNECT")
            notice = self.emit("S", f"DISCONNECTED AFTER {rules.disconnect_after_minutes:g} MINUTES WITHOUT ACTIVITY")
            return [notice, *self._close("idle timeout")]
        if self.state is State.SIGNED_ON and idle >= rules.lock_after_minutes * 60:
            self.state = State.LOCKED
            self.switch.audit("security", self, event="SESSION LOCK")
            self.operator = None
            return [self.emit("S", f"SESSION LOCKED AFTER {rules.lock_after_minutes:g} MINUTES WITHOUT "
                                   "ACTIVITY - SIGN ON AGAIN")]
        return []

    def _close(self, reason: str) -> list[Action]:
        self.state = State.CLOSED
        return [Close(reason)]

    def close(self, reason: str, notice: Optional[tuple[str, str]] = None) -> list[Action]:
        """End the session from outside (revocation, replacement, shutdown)."""
        if self.state is State.CLOSED:
            return []
        actions: list[Action] = [self.emit(*notice)] if notice else []
        self.switch.audit("security", self, event="DISCONNECT", text=reason)
        return actions + self._close(reason)
