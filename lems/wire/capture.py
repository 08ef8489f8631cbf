"""Traffic capture: every frame in and out, per terminal, as JSON Lines (PROTOCOL.md 7).

    {"t": 1.2345, "terminal": "T0100001", "dir": "in", "ref": "R000000001", "cls": null, "text": "HBT"}

``lems serve --capture FILE`` gives the link a ``Capture``.  The link hands it
each good input frame as it arrives and each output payload as the outbox
writes it; lines are kept in memory and written once per reactor turn (when the
outbox flushes), so a busy turn costs one ``write`` and not one per frame.
``read`` loads a capture back for ``lems replay``, checking every line.

Life-cycle frames (PROTOCOL.md 7): what the switch sends about its own life and
the session's, not about a terminal's traffic, is recorded with ``"life": true``
and ``lems replay`` does not compare it.  They are ``S`` frames with a blank REF:

* the banner: the first frame the switch writes to a terminal in the capture
  (the banner always comes first on a connection), and any later frame with the
  text of a banner already seen (the terminal connected again);
* ``SWITCH SHUTTING DOWN``;
* ``SESSION REPLACED BY A NEW CONNECTION FROM THIS TERMINAL``;
* the idle notices ``SESSION LOCKED AFTER ... WITHOUT ACTIVITY ...`` and
  ``DISCONNECTED AFTER ... WITHOUT ACTIVITY``.

Notices that follow from an administrator's action (revocation, a reload that no
longer admits the terminal), SM, ``.02.`` and every other ``S`` frame are traffic
and are compared.  ``LifeCycle`` is that rule; ``lems replay`` applies it to the
out frames of captures written before the mark and of journal exports (``lems
audit export``), which carry none, and to the frames it receives itself.

A capture never holds a sign-on password or one-time code: every input is
written through ``lems.wire.secrets.mask`` (``PWD/*``, ``OTP/*``), and ``lems
replay`` puts the passwords back from ``--password`` or ``--credentials``.  It is
still a record of the traffic: treat it like the audit journal.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Optional

from lems.wire import framing
from lems.wire.secrets import mask
from lems.wire.headers import CLASSES, INPUT_HEADER_LEN, Input, Output

DIRECTIONS = ("in", "out")

# The switch's notices about its own life and the session's (first line, whole).
LIFE_NOTICES = re.compile(
    r"SWITCH SHUTTING DOWN"
    r"|SESSION REPLACED BY A NEW CONNECTION FROM THIS TERMINAL"
    r"|SESSION LOCKED AFTER [0-9.e+-]+ MINUTES WITHOUT ACTIVITY( - .*)?"
    r"|DISCONNECTED AFTER [0-9.e+-]+ MINUTES WITHOUT ACTIVITY( - .*)?")


def life_notice(cls: Optional[str], ref: str, text: str) -> bool:
    """A shutdown, session-replaced or idle notice (the banner is known by its place, not its text)."""
    return cls == "S" and not ref and LIFE_NOTICES.fullmatch(text.split("\n", 1)[0]) is not None


class CaptureError(ValueError):
    """A capture line that is not a PROTOCOL.md 7 frame object."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")


class LifeCycle:
    """Tells the switch's life-cycle frames among the out frames of a capture, given in order."""

    def __init__(self) -> None:
        self.written_to: set[str] = set()  # terminals the switch has written to
        self.banners: set[str] = set()  # banner texts seen

    def __call__(self, terminal: str, cls: Optional[str], ref: str, text: str) -> bool:
        first = terminal not in self.written_to
        self.written_to.add(terminal)
        if cls != "S" or ref:
            return False
        if first:  # the banner comes first on every connection
            self.banners.add(text)
            return True
        return text in self.banners or life_notice(cls, ref, text)


class Capture:
    """Buffers frame lines and writes them out when told to (once per reactor turn)."""

    def __init__(self, out: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.start = clock()
        self.lines: list[str] = []
        self.count = 0
        self.life = LifeCycle()

    @classmethod
    def open(cls, path: Path | str) -> "Capture":
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(open(path, "w", encoding="ascii", newline="\n"))

    def _add(self, terminal: str, direction: str, ref: str, cls: Optional[str], text: str,
             life: bool = False) -> None:
        frame = {"t": round(self.clock() - self.start, 4), "terminal": terminal, "dir": direction, "ref": ref,
                 "cls": cls, "text": text}
        if life:
            frame["life"] = True
        self.lines.append(json.dumps(frame) + "\n")

    def inbound(self, terminal: str, events: Iterable[framing.Event]) -> None:
        """The good frames among one read's framing events (bad framing is not a frame)."""
        for event in events:
            if isinstance(event, framing.Frame):
                payload = event.payload
                if len(payload) >= INPUT_HEADER_LEN:
                    inp = Input.from_wire(payload)
                    self._add(terminal, "in", inp.ref, None, mask(inp.text))
                else:  # too short for a header: the switch answers .10. with a blank REF
                    self._add(terminal, "in", "", None, mask(payload.decode("ascii")))

    def outbound(self, terminal: str, payload: bytes) -> None:
        """One output payload (32-byte header + text) as the outbox writes it."""
        out = Output.from_wire(payload)
        self._add(terminal, "out", out.ref, out.cls, out.text, self.life(terminal, out.cls, out.ref, out.text))


    def flush(self) -> None:
        if self.lines:
            self.out.write("".join(self.lines))
            self.out.flush()
            self.count += len(self.lines)
            self.lines.clear()

    def close(self) -> None:
        self.flush()
        self.out.close()


def parse_line(raw: str, path: Path | str = "<capture>", number: int = 0) -> dict[str, Any]:
    """One capture line, checked; raises ``CaptureError`` naming the line."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CaptureError(path, number, f"not JSON: {exc.msg}") from None
    if not isinstance(obj, dict):
        raise CaptureError(path, number, "not a JSON object")
    missing = [k for k in ("t", "terminal", "dir", "ref", "cls", "text") if k not in obj]
    if missing:
        raise CaptureError(path, number, f"missing {', '.join(missing)}")
    if not isinstance(obj["t"], (int, float)) or obj["t"] < 0:
        raise CaptureError(path, number, "t must be a number of seconds, not negative")
    if obj["dir"] not in DIRECTIONS:
        raise CaptureError(path, number, "dir must be \"in\" or \"out\"")
    if obj["dir"] == "out" and obj["cls"] not in CLASSES:
        raise CaptureError(path, number, f"an out frame's cls must be one of {', '.join(CLASSES)}")
    for key in ("terminal", "ref", "text"):
        if not isinstance(obj[key], str):
            raise CaptureError(path, number, f"{key} must be a string")
    if len(obj["ref"]) > 10:
        raise CaptureError(path, number, "ref is longer than 10 characters")
    if "life" in obj and (not isinstance(obj["life"], bool) or obj["dir"] != "out"):
        raise CaptureError(path, number, "life must be true or false, on an out frame")
    obj["terminal"] = obj["terminal"].upper()
    return obj


def read(path: Path | str) -> Iterator[dict[str, Any]]:
    """The frames of a capture file in order; blank lines are skipped."""
    with open(path, encoding="ascii") as lines:
        for number, raw in enumerate(lines, 1):
            if raw.strip():
                yield parse_line(raw, path, number)
